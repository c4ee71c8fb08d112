/**
 * The catalog's HTTP API (Consul v1 paths, shapes and status codes) and the helpers every
 * state-backed HTTP endpoint shares: query options from `?dc=&index=&wait=&stale&consistent` and
 * `X-Consul-Token`, blocking headers from `QueryMeta`, JSON bodies decoded through the RPC
 * schema (a wrong type is a 400 naming the field), errors mapped to status codes.
 */
import { parseDuration } from '../../core/config/duration.js';
import { errorMessage, MeshfedError } from '../../core/errors.js';
import type { HttpApi, HttpRequest, HttpResponse } from '../http/index.js';
import { decode, encode, type AnySchema, type Infer } from '../rpc/msgpack/index.js';
import { ErrNoLeader, StateServerErrorCode, type StateServer } from './server.js';
import { StateErrorCode } from './store/index.js';
import type {
  DCSpecificRequest,
  ServiceSpecificRequest} from './structs.js';
import {
  DeregisterRequest,
  RegisterRequest,
  type IndexedCheckServiceNodes,
  type IndexedNodes,
  type IndexedServiceNodes,
  type IndexedServices,
  type QueryMeta,
  type QueryOptions,
} from './structs.js';

/** A request the client got wrong: answered with 400 and this message. */
export class BadRequestError extends MeshfedError {
  /** @param message shown to the client as the response body */
  constructor(message: string) {
    super('MESHFED_ERR_HTTP_BAD_REQUEST', message, { plugin: 'state' });
    this.name = 'BadRequestError';
  }
}

/**
 * Read Consul's query parameters: `dc`, `index`, `wait` (a duration with unit, e.g. `30s`),
 * `stale`, `consistent`, and the token from `X-Consul-Token` (or `?token=`).
 * @throws {BadRequestError} for an unparsable index or wait, or `stale` with `consistent`
 */
export function parseQueryOptions(req: HttpRequest): QueryOptions {
  const q = req.query;
  const index = q.get('index');
  let minIndex = 0;
  if (index !== null && index !== '') {
    if (!/^\d+$/.test(index) || !Number.isSafeInteger(Number(index))) throw new BadRequestError('Invalid index');
    minIndex = Number(index);
  }
  const wait = q.get('wait');
  let waitNs = 0;
  if (wait !== null && wait !== '') {
    // Consul requires a unit (`wait=10` is refused); the agent caps the wait at max_query_time.
    const ms = /^\d+$/.test(wait) ? undefined : parseDuration(wait);
    if (ms === undefined || ms < 0) throw new BadRequestError('Invalid wait time');
    waitNs = Math.round(ms * 1e6);
  }
  const stale = q.has('stale');
  const consistent = q.has('consistent');
  if (stale && consistent) throw new BadRequestError('Cannot specify ?stale with ?consistent, conflicting semantics.');
  return {
    Datacenter: q.get('dc') ?? '',
    Token: tokenOf(req),
    MinQueryIndex: minIndex,
    MaxQueryTime: waitNs,
    AllowStale: stale,
    RequireConsistent: consistent,
    UseCache: false,
    MaxStaleDuration: 0,
    MaxAge: 0,
    MustRevalidate: false,
    StaleIfError: 0,
    Filter: q.get('filter') ?? '',
  };
}

/** The ACL token of a request (`X-Consul-Token`, `Authorization: Bearer`, or `?token=`). */
export function tokenOf(req: HttpRequest): string {
  const h = req.headers['x-consul-token'];
  if (typeof h === 'string' && h !== '') return h;
  const auth = req.headers.authorization;
  if (typeof auth === 'string' && /^bearer\s+/i.test(auth)) return auth.replace(/^bearer\s+/i, '').trim();
  return req.query.get('token') ?? '';
}

/**
 * Consul's blocking-query headers for a response described by `meta`, with
 * `X-Consul-Results-Filtered-By-ACLs: true` when ACLs removed something from it.
 */
export function queryMetaHeaders(meta: QueryMeta): Record<string, string> {
  return {
    'X-Consul-Index': String(meta.Index),
    'X-Consul-KnownLeader': String(meta.KnownLeader),
    'X-Consul-LastContact': String(Math.floor(meta.LastContact / 1e6)),
    'X-Consul-Effective-Consistency': meta.ConsistencyLevel || 'default',
    ...(meta.ResultsFilteredByACLs ? { 'X-Consul-Results-Filtered-By-ACLs': 'true' } : {}),
  };
}

const JSON_TYPES = new Set(['application/json', 'text/json', 'text/plain', 'application/x-www-form-urlencoded']);

/**
 * Decode a JSON request body into `schema`'s shape (missing fields get Go's zero values). Absent
 * or `application/json` content types are accepted, and — as long as the body is JSON — the
 * defaults of common clients: curl's form type (Consul's own docs use `curl --data @file`) and
 * `text/plain` (fetch with a string body). Anything else (XML, multipart, …) is refused.
 * @throws {BadRequestError} for another content type, invalid JSON, a non-object, or a field of
 *   the wrong type (the message names the field)
 */
export function decodeJsonBody<S extends AnySchema>(req: HttpRequest, schema: S): Infer<S> {
  const ct = req.headers['content-type'];
  if (typeof ct === 'string' && ct !== '') {
    const type = (ct.split(';')[0] ?? '').trim().toLowerCase();
    if (!JSON_TYPES.has(type)) throw new BadRequestError(`Request decode failed: unsupported Content-Type ${JSON.stringify(type)}: send a JSON body (application/json)`);
  }
  if (req.body.length === 0) throw new BadRequestError('Request decode failed: empty body: send a JSON object');
  let json: unknown;
  try {
    json = JSON.parse(req.body.toString('utf8'));
  } catch (err) {
    throw new BadRequestError(`Request decode failed: invalid JSON: ${errorMessage(err)}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new BadRequestError('Request decode failed: expected a JSON object');
  try {
    return decode(encode(json as never, schema), schema);
  } catch (err) {
    throw new BadRequestError(`Request decode failed: ${errorMessage(err).replace(/^msgpack: cannot encode /, 'wrong type: cannot use ')}`);
  }
}

/** Map an error of a state endpoint to Consul's HTTP status: 400 for bad input, 403 for ACL refusals, 500 otherwise. */
export function errorResponse(err: unknown): HttpResponse {
  const code = err instanceof MeshfedError ? err.code : undefined;
  const message = errorMessage(err);
  if (err instanceof BadRequestError || code === StateErrorCode.INVALID || code === StateErrorCode.UNKNOWN_COMMAND) return { status: 400, text: message };
  if (code === StateServerErrorCode.NO_LEADER) return { status: 500, text: ErrNoLeader };
  // ACL refusals (local, or a forwarded server's text): 403 with Consul's text.
  if (code?.startsWith('MESHFED_ERR_ACL_') || /^(Permission denied|ACL not found)/.test(message)) return { status: 403, text: message };
  // A remote server's error text (forwarded calls) arrives as the message.
  if (/^invalid [A-Z]/.test(message) || /^(Must provide|invalid request|Invalid federation state)/.test(message)) return { status: 400, text: message };
  return { status: 500, text: message };
}

/** Wrap a handler so thrown errors become Consul-style responses (only unexpected ones are 500s). */
export function handled(fn: (req: HttpRequest) => Promise<HttpResponse>): (req: HttpRequest) => Promise<HttpResponse> {
  return async (req) => {
    try {
      return await fn(req);
    } catch (err) {
      return errorResponse(err);
    }
  };
}

/** Whether a query flag is present (`?passing`, `?passing=true`; `?passing=false` is off). */
function flag(req: HttpRequest, name: string): boolean {
  const v = req.query.get(name);
  return v !== null && v.toLowerCase() !== 'false' && v !== '0';
}

/** Node-meta filters from repeated `?node-meta=key:value`. */
function nodeMetaFilters(req: HttpRequest): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of req.query.getAll('node-meta')) {
    const i = v.indexOf(':');
    if (i <= 0) throw new BadRequestError(`Invalid node-meta filter ${JSON.stringify(v)}: expected key:value`);
    out[v.slice(0, i)] = v.slice(i + 1);
  }
  return out;
}

/** Add the catalog and health routes to `api`. */
export function catalogRoutes(api: HttpApi, srv: StateServer): void {
  const serviceQuery = (req: HttpRequest): Infer<typeof ServiceSpecificRequest> => {
    const tags = req.query.getAll('tag');
    return { ...parseQueryOptions(req), NodeMetaFilters: nodeMetaFilters(req), ServiceName: req.params['name'] ?? '', ServiceTags: tags, TagFilter: tags.length > 0 };
  };
  const writeRoute = (path: string, method: string, schema: typeof RegisterRequest | typeof DeregisterRequest): void => {
    api.route(
      'PUT',
      path,
      handled(async (req) => {
        const body = decodeJsonBody(req, schema as AnySchema) as Record<string, unknown>;
        // Consul: the request's datacenter is the body's, else ?dc, else the agent's.
        if (!body['Datacenter']) body['Datacenter'] = req.query.get('dc') ?? '';
        if (!body['Token']) body['Token'] = tokenOf(req);
        await srv.call(method, body, { signal: req.signal });
        return { json: true };
      }),
    );
  };
  writeRoute('/v1/catalog/register', 'Catalog.Register', RegisterRequest);
  writeRoute('/v1/catalog/deregister', 'Catalog.Deregister', DeregisterRequest);

  api.route(
    'GET',
    '/v1/catalog/nodes',
    handled(async (req) => {
      const r = await srv.call<Infer<typeof IndexedNodes>>('Catalog.ListNodes', { ...parseQueryOptions(req), NodeMetaFilters: nodeMetaFilters(req) } satisfies Infer<typeof DCSpecificRequest>, { signal: req.signal });
      return { json: r.Nodes, headers: queryMetaHeaders(r) };
    }),
  );
  api.route(
    'GET',
    '/v1/catalog/services',
    handled(async (req) => {
      const r = await srv.call<Infer<typeof IndexedServices>>('Catalog.ListServices', { ...parseQueryOptions(req), NodeMetaFilters: nodeMetaFilters(req) }, { signal: req.signal });
      return { json: r.Services, headers: queryMetaHeaders(r) };
    }),
  );
  api.route(
    'GET',
    '/v1/catalog/service/:name',
    handled(async (req) => {
      const r = await srv.call<Infer<typeof IndexedServiceNodes>>('Catalog.ServiceNodes', serviceQuery(req), { signal: req.signal });
      return { json: r.ServiceNodes, headers: queryMetaHeaders(r) };
    }),
  );
  api.route(
    'GET',
    '/v1/health/service/:name',
    handled(async (req) => {
      const r = await srv.call<Infer<typeof IndexedCheckServiceNodes>>('Health.ServiceNodes', serviceQuery(req), { signal: req.signal });
      const nodes = flag(req, 'passing') ? r.Nodes.filter((n) => n.Checks.every((c) => c.Status === 'passing')) : r.Nodes;
      return { json: nodes, headers: queryMetaHeaders(r) };
    }),
  );
}
