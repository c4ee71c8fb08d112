/**
 * Serving state over RPC: where a call runs (Consul's `ForwardRPC`), blocking reads with
 * `QueryMeta`, and writes through the backend. Every state endpoint — the catalog ones here, the
 * federation-state ones of other plugins — is defined with {@link StateServer.endpoint} and so
 * gets the same routing:
 *
 * 1. a request for another datacenter goes to one of its servers through the router
 *    (`forwardDC`; `Remote DC has no server currently reachable` / `No path to datacenter`);
 * 2. a write, or a read without `AllowStale`, on a server that does not lead goes to the leader
 *    (`No cluster leader` when none is known);
 * 3. everything else runs here: reads as blocking queries on the local store (`RequireConsistent`
 *    first waits for the backend's barrier), writes through {@link StateBackend.apply}.
 */
import { MeshfedError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import { RouterError, type Router } from '../router/index.js';
import type { ConnPool } from '../rpc/index.js';
import { defineEndpoint, RemoteRpcError, type AnySchema, type EndpointDefinition, type Infer, type InferInput } from '../rpc/msgpack/index.js';
import type { StateBackend } from './backend/types.js';
import type { Command, QueryResult, StateStore, WatchSet } from './store/index.js';
import type { QueryMeta, QueryOptions } from './structs.js';

/** Error codes of state serving. */
export const StateServerErrorCode = Object.freeze({
  /** No leader is known in this datacenter (election in progress, consensus store unreachable). */
  NO_LEADER: 'MESHFED_ERR_STATE_NO_LEADER',
} as const);

/** Consul's `structs.ErrNoLeader` text. */
export const ErrNoLeader = 'No cluster leader';

/** How a request reached {@link StateServer.endpoint}'s handler. */
export interface StateCallContext {
  /** Aborted when the caller goes away or the agent stops. */
  readonly signal: AbortSignal;
}

/** What {@link StateServer.endpoint} needs to know about one endpoint. */
export interface StateEndpointSpec<Req extends AnySchema, Res extends AnySchema> {
  /** `Service.Method`. */
  readonly method: string;
  readonly request: Req;
  readonly response: Res;
  /** A write (always runs on the leader) or a read (on the leader unless `AllowStale`). */
  readonly write: boolean;
  /** The datacenter the request is for (default: its `Datacenter` field; empty = local). */
  readonly datacenterOf?: (req: Infer<Req>) => string;
  /** Serves the call on the server that should run it. */
  readonly handle: (req: Infer<Req>, ctx: StateCallContext) => Promise<InferInput<Res>>;
}

/** Options of {@link StateServer}. */
export interface StateServerOptions {
  readonly store: StateStore;
  readonly backend: StateBackend;
  /** This server's datacenter. */
  readonly datacenter: string;
  /** For forwarding to the leader and to other datacenters. */
  readonly pool: ConnPool;
  /** For other datacenters; without it, such requests fail with `No path to datacenter`. */
  readonly router?: Router | undefined;
  readonly logger: Logger;
}

/** Routes and serves state RPCs for one server. */
export class StateServer {
  readonly #o: StateServerOptions;
  readonly #local = new Map<string, (req: unknown, ctx: StateCallContext) => Promise<unknown>>();

  /** A server over `options.store` and `options.backend`. */
  constructor(options: StateServerOptions) {
    this.#o = options;
  }

  /** The local store (read it directly for in-process, non-routed reads). */
  get store(): StateStore {
    return this.#o.store;
  }

  /** The backend. */
  get backend(): StateBackend {
    return this.#o.backend;
  }

  /**
   * Define a routed state endpoint: register the result in the RPC endpoint registry; the
   * HTTP API calls it in-process through {@link call}.
   */
  endpoint<Req extends AnySchema, Res extends AnySchema>(spec: StateEndpointSpec<Req, Res>): EndpointDefinition<Req, Res> {
    const def = defineEndpoint({
      method: spec.method,
      request: spec.request,
      response: spec.response,
      handler: (req: Infer<Req>, ctx): Promise<InferInput<Res>> => this.#route(spec, def, req, { signal: ctx.signal }),
    });
    this.#local.set(spec.method, (req, ctx) => this.#route(spec, def, req as Infer<Req>, ctx));
    return def;
  }

  /**
   * Call a state endpoint in-process (the HTTP API does, as Consul's agent calls its server),
   * with the same routing as an RPC. `req` is the decoded request shape; the result is the
   * response object as the handler (or the forwarded server) produced it.
   */
  async call<T = unknown>(method: string, req: unknown, ctx: StateCallContext): Promise<T> {
    const fn = this.#local.get(method);
    if (!fn) throw new MeshfedError('MESHFED_ERR_RPC_ENDPOINT', `no state endpoint ${method}`, { plugin: 'state' });
    return (await fn(req, ctx)) as T;
  }

  async #route<Req extends AnySchema, Res extends AnySchema>(
    spec: StateEndpointSpec<Req, Res>,
    def: EndpointDefinition<Req, Res>,
    req: Infer<Req>,
    ctx: StateCallContext,
  ): Promise<InferInput<Res>> {
    const o = this.#o;
    const dc = spec.datacenterOf ? spec.datacenterOf(req) : ((req as { Datacenter?: string }).Datacenter ?? '');
    const q = req as Partial<QueryOptions>;
    const waitMs = q.MinQueryIndex ? Math.ceil((q.MaxQueryTime ?? 0) / 1e6) : undefined;
    if (dc !== '' && dc.toLowerCase() !== o.datacenter.toLowerCase()) {
      const router = o.router;
      if (!router) throw new MeshfedError('MESHFED_ERR_ROUTER_NO_DC_PATH', 'No path to datacenter', { plugin: 'state' });
      const forward = (): Promise<unknown> =>
        router.forwardDC(dc, (s) =>
          o.pool.callEndpoint({ datacenter: s.datacenter, node: s.shortName, address: s.addr }, def, req as InferInput<Req>, { signal: ctx.signal, blockingWaitMs: waitMs }),
        );
      const out: unknown = await this.#retryRead(spec.write, ctx, forward);
      return out as InferInput<Res>;
    }
    if ((spec.write || !q.AllowStale) && !o.backend.isLeader()) {
      const leader = o.backend.leader();
      if (!leader) throw new MeshfedError(StateServerErrorCode.NO_LEADER, ErrNoLeader, { plugin: 'state' });
      const out: unknown = await this.#retryRead(spec.write, ctx, () =>
        o.pool.callEndpoint({ datacenter: o.datacenter, node: leader.node, address: leader.address }, def, req as InferInput<Req>, {
          signal: ctx.signal,
          blockingWaitMs: waitMs,
        }),
      );
      return out as InferInput<Res>;
    }
    return spec.handle(req, ctx);
  }

  /**
   * Forwarded reads are retried once when the connection failed (a gateway or server restarted
   * under a pooled session); errors the remote server returned, routing errors and writes are
   * not (a write may have landed before the connection broke), as Consul's `canRetry`.
   */
  async #retryRead<T>(write: boolean, ctx: StateCallContext, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (err) {
      if (write || ctx.signal.aborted || err instanceof RemoteRpcError || err instanceof RouterError) throw err;
      this.#o.logger.debug('forwarded read failed on the connection; retrying once', { err: err instanceof Error ? err.message : String(err) });
      return call();
    }
  }

  /**
   * Run a read as a blocking query (`MinQueryIndex`/`MaxQueryTime`; a consistent read first
   * waits for the backend's barrier) and describe it in `QueryMeta`.
   */
  async query<T>(opts: Partial<QueryOptions>, ctx: StateCallContext, read: (ws: WatchSet) => QueryResult<T>): Promise<{ value: T; meta: QueryMeta }> {
    const { store, backend } = this.#o;
    if (opts.RequireConsistent) await backend.barrier(ctx.signal);
    const maxMs = opts.MaxQueryTime ? Math.ceil(opts.MaxQueryTime / 1e6) : undefined;
    const r = await store.blockingQuery({ minQueryIndex: opts.MinQueryIndex ?? 0, ...(maxMs !== undefined ? { maxQueryTimeMs: maxMs } : {}), signal: ctx.signal }, read);
    return { value: r.value, meta: this.meta(r.index, opts) };
  }

  /** `QueryMeta` for a result at `index` served here. */
  meta(index: number, opts: Partial<QueryOptions>): QueryMeta {
    const { backend } = this.#o;
    return {
      Index: Math.max(1, index),
      LastContact: backend.isLeader() ? 0 : Math.round(backend.lastContactMs() * 1e6),
      KnownLeader: backend.leader() !== undefined,
      ConsistencyLevel: opts.RequireConsistent ? 'consistent' : opts.AllowStale ? 'stale' : 'default',
      NotModified: false,
      Backend: 0,
      ResultsFilteredByACLs: false,
    };
  }

  /** Apply a write on this server (the leader). */
  async write(command: Command): Promise<number> {
    return (await this.#o.backend.apply(command)).index;
  }
}
