/**
 * An Aggregated Discovery Service server (Envoy xDS v3, state of the world) on `@grpc/grpc-js`.
 *
 * One `StreamAggregatedResources` stream per Envoy. The first request's `node.id` names the proxy;
 * {@link XdsProxySource.open} resolves it (unknown → the stream ends with `NOT_FOUND`) and then
 * pushes every new resource set. Per resource type URL the server keeps what it last sent
 * (version, nonce), what the proxy acknowledged and what it rejected:
 *
 * - a request without a nonce subscribes to the type (the current resources are sent at once);
 * - a request whose nonce is not the last one sent for its type is stale and ignored;
 * - an ACK (last nonce, no `error_detail`) records the acknowledged version and sends nothing,
 *   unless the requested resource names changed what would be sent (EDS / RDS only);
 * - a NACK (last nonce with `error_detail`) is logged once per rejected version with the proxy
 *   id and the error; nothing is resent until the resource set changes (Envoy keeps serving the
 *   last version it accepted).
 *
 * The version of a type is a hash of its encoded resources, so an unchanged set is never resent.
 * Updates are pushed in the order CDS, EDS, LDS, RDS. Each resource is encoded with its protobuf
 * type and checked first ({@link XdsCodec}); a resource set that does not encode is logged and
 * not pushed (the previous one stays).
 *
 * ACLs: the stream's token is the gRPC metadata `x-consul-token` (Consul's). When the source has
 * an {@link XdsProxySource.authorize} check it runs right after the first request named a known
 * proxy (before anything is sent), again on every later request and before every push; a refusal
 * ends the stream (`PERMISSION_DENIED` / `UNAUTHENTICATED`) and is counted.
 *
 * One gRPC server serves the ADS service on every address it listens on: plaintext
 * ({@link AdsServer.listen}) and TLS ({@link AdsServer.listenTls}).
 */
import { createHash } from 'node:crypto';
import type { SecureContext } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { joinHostPort } from '../../core/address.js';
import { errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { XdsProxyInfo, XdsResource, XdsResources } from '../../core/types.js';
import { XdsCodec, XdsEncodeError, type EncodedAny } from './codec.js';
import { RESOURCE_KINDS, TypeUrl } from './resources.js';

/** Why a proxy cannot be served; ends its stream with `code`. */
export class XdsStreamError extends Error {
  /** gRPC status code sent to the proxy. */
  readonly code: grpc.status;
  constructor(code: grpc.status, message: string) {
    super(message);
    this.name = 'XdsStreamError';
    this.code = code;
  }
}

/** Where the ADS server gets proxies and their resources from (the `xds` plugin implements it). */
export interface XdsProxySource {
  /**
   * Resolve the proxy an Envoy node id names and start following its resources: call `push`
   * with each new resource set until `signal` aborts; call `fail` to end the stream (e.g. the
   * proxy was deregistered).
   * @throws {XdsStreamError} when the proxy cannot be served (`NOT_FOUND` for unknown ids)
   */
  open(nodeId: string, signal: AbortSignal, push: (resources: XdsResources) => void, fail: (err: XdsStreamError) => void): XdsProxyInfo;
  /**
   * May the stream carrying `token` (its `x-consul-token` metadata, `''` when absent) be served
   * `proxy` (as returned by {@link open})? Called after `open`, on every later request of the
   * stream and before every push, so it must be cheap. Absent: every stream is allowed.
   * @throws {XdsStreamError} `UNAUTHENTICATED` (unknown token) or `PERMISSION_DENIED`
   */
  authorize?(proxy: XdsProxyInfo, token: string): void;
}

/** Options of {@link AdsServer}. */
export interface AdsServerOptions {
  /** Resolves proxies and produces their resources. */
  readonly source: XdsProxySource;
  /** Encoder of resources (loads the Envoy protos; share one between servers to save time). */
  readonly codec?: XdsCodec;
  /** Component logger. */
  readonly logger: Logger;
}

/** Per-type state of one stream, as reported by {@link AdsServer.proxies}. */
export interface XdsTypeStatus {
  /** Version last sent (`''` = nothing sent yet). */
  readonly sent_version: string;
  /** Nonce of the last response. */
  readonly sent_nonce: string;
  /** Version the proxy last acknowledged (`''` = none). */
  readonly acked_version: string;
  /** Version the proxy last rejected (`''` = none). */
  readonly nacked_version: string;
  /** Error of the last rejection. */
  readonly last_error: string;
  /** Resource names requested (empty = all). */
  readonly resource_names: readonly string[];
  /** Responses sent for this type. */
  readonly responses: number;
}

/** One connected proxy, as reported by {@link AdsServer.proxies}. */
export interface XdsProxyStatus {
  /** Envoy node id. */
  readonly node_id: string;
  /** Service ID of the gateway. */
  readonly proxy_id: string;
  /** Service kind. */
  readonly kind: string;
  /** Remote `host:port` of the stream. */
  readonly peer: string;
  /** RFC 3339 time the stream opened. */
  readonly connected_at: string;
  /** Per subscribed type URL. */
  readonly types: Readonly<Record<string, XdsTypeStatus>>;
}

/** Counters of an {@link AdsServer}. */
export interface XdsStats {
  /** Streams accepted since start. */
  readonly streams_total: number;
  /** Streams open now. */
  readonly streams_active: number;
  /** Responses sent. */
  readonly responses: number;
  /** ACKs received. */
  readonly acks: number;
  /** NACKs received. */
  readonly nacks: number;
  /** Requests ignored because of a stale nonce. */
  readonly stale_requests: number;
  /** Resource sets not pushed because a resource did not encode. */
  readonly encode_errors: number;
  /** Streams refused because the proxy is unknown. */
  readonly not_found: number;
  /** Streams ended because their token lacks a permission (`PERMISSION_DENIED`). */
  readonly permission_denied: number;
  /** Streams ended because their token is unknown (`UNAUTHENTICATED`, `ACL not found`). */
  readonly unauthenticated: number;
}

/** Counters of a server that has not started (all zero). */
export const EMPTY_XDS_STATS: XdsStats = Object.freeze({
  streams_total: 0,
  streams_active: 0,
  responses: 0,
  acks: 0,
  nacks: 0,
  stale_requests: 0,
  encode_errors: 0,
  not_found: 0,
  permission_denied: 0,
  unauthenticated: 0,
});

interface DiscoveryRequest {
  version_info?: string;
  node?: { id?: string; cluster?: string };
  resource_names?: string[];
  type_url?: string;
  response_nonce?: string;
  error_detail?: { code?: number; message?: string } | null;
}

interface DiscoveryResponse {
  version_info: string;
  resources: EncodedAny[];
  type_url: string;
  nonce: string;
}

interface TypeState {
  subscribed: boolean;
  names: string[];
  sentVersion: string;
  sentNonce: string;
  ackedVersion: string;
  nackedVersion: string;
  lastError: string;
  responses: number;
}

interface EncodedSet {
  /** Encoded resources per type URL, in resource order, with their names. */
  readonly byType: ReadonlyMap<string, readonly { readonly name: string; readonly any: EncodedAny }[]>;
}

interface Stream {
  readonly call: grpc.ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>;
  readonly ctl: AbortController;
  readonly peer: string;
  readonly connectedAt: Date;
  /** `x-consul-token` metadata of the stream (`''` when absent); never logged. */
  readonly token: string;
  nodeId: string;
  proxy: XdsProxyInfo | undefined;
  encoded: EncodedSet | undefined;
  readonly types: Map<string, TypeState>;
  nonce: number;
  closed: boolean;
}

const KNOWN_TYPES = new Set<string>(RESOURCE_KINDS.map((k) => k.typeUrl));
/** Types whose requests name the resources they want (the others are wildcard). */
const NAMED_TYPES = new Set<string>([TypeUrl.ClusterLoadAssignment, TypeUrl.RouteConfiguration]);

function resourceName(r: XdsResource): string {
  if (r['@type'] === TypeUrl.ClusterLoadAssignment && typeof r['cluster_name'] === 'string') return r['cluster_name'];
  return r.name;
}

/** The ADS server. */
export class AdsServer {
  readonly #source: XdsProxySource;
  readonly #codec: XdsCodec;
  readonly #log: Logger;
  readonly #streams = new Set<Stream>();
  #server: grpc.Server | undefined;
  #address: string | undefined;
  #tlsAddress: string | undefined;
  #stats = { ...EMPTY_XDS_STATS };

  /** A stopped server; call {@link listen}. */
  constructor(options: AdsServerOptions) {
    this.#source = options.source;
    this.#codec = options.codec ?? new XdsCodec();
    this.#log = options.logger;
  }

  /** `host:port` of the plaintext listener once listening. */
  get address(): string | undefined {
    return this.#address;
  }

  /** `host:port` of the TLS listener once listening. */
  get tlsAddress(): string | undefined {
    return this.#tlsAddress;
  }

  /** The codec in use. */
  get codec(): XdsCodec {
    return this.#codec;
  }

  /** Listen on `host:port` (0 = a free port), plaintext; resolves with the bound `host:port`. */
  async listen(host: string, port: number): Promise<string> {
    this.#address = await this.#bind(host, port, grpc.ServerCredentials.createInsecure());
    return this.#address;
  }

  /**
   * Also (or only) listen on `host:port` with TLS `credentials` (e.g. {@link adsServerCredentials});
   * the same streams, counters and ACL checks. Resolves with the bound `host:port`.
   */
  async listenTls(host: string, port: number, credentials: grpc.ServerCredentials): Promise<string> {
    this.#tlsAddress = await this.#bind(host, port, credentials);
    return this.#tlsAddress;
  }

  async #bind(host: string, port: number, credentials: grpc.ServerCredentials): Promise<string> {
    const server = this.#server ?? this.#newServer();
    this.#server = server;
    const bound = await new Promise<number>((resolve, reject) => {
      server.bindAsync(joinHostPort(host, port), credentials, (err, p) => (err ? reject(err) : resolve(p)));
    });
    return joinHostPort(host, bound);
  }

  #newServer(): grpc.Server {
    const server = new grpc.Server();
    const loaded = grpc.loadPackageDefinition(this.#codec.packageDefinition) as unknown as {
      envoy: { service: { discovery: { v3: { AggregatedDiscoveryService: { service: grpc.ServiceDefinition } } } } };
    };
    server.addService(loaded.envoy.service.discovery.v3.AggregatedDiscoveryService.service, {
      StreamAggregatedResources: (call: grpc.ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>) => this.#onStream(call),
      DeltaAggregatedResources: (call: grpc.ServerDuplexStream<unknown, unknown>) => {
        call.emit('error', { code: grpc.status.UNIMPLEMENTED, details: 'delta xDS is not supported: use the state-of-the-world ADS stream' });
      },
    });
    return server;
  }

  /** End every stream (`UNAVAILABLE`, so proxies reconnect to another server) and stop listening. */
  async close(): Promise<void> {
    for (const s of [...this.#streams]) this.#fail(s, new XdsStreamError(grpc.status.UNAVAILABLE, 'the xDS server is shutting down'));
    const server = this.#server;
    this.#server = undefined;
    this.#address = undefined;
    this.#tlsAddress = undefined;
    if (!server) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => server.forceShutdown(), 1000);
      server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** The connected proxies (those whose first request named a known proxy). */
  proxies(): XdsProxyStatus[] {
    const out: XdsProxyStatus[] = [];
    for (const s of this.#streams) {
      if (!s.proxy) continue;
      const types: Record<string, XdsTypeStatus> = {};
      for (const [url, t] of s.types) {
        types[url] = {
          sent_version: t.sentVersion,
          sent_nonce: t.sentNonce,
          acked_version: t.ackedVersion,
          nacked_version: t.nackedVersion,
          last_error: t.lastError,
          resource_names: [...t.names],
          responses: t.responses,
        };
      }
      out.push({ node_id: s.nodeId, proxy_id: s.proxy.id, kind: s.proxy.kind, peer: s.peer, connected_at: s.connectedAt.toISOString(), types });
    }
    return out.sort((a, b) => (a.node_id < b.node_id ? -1 : a.node_id > b.node_id ? 1 : a.connected_at < b.connected_at ? -1 : 1));
  }

  /** Counters since start. */
  stats(): XdsStats {
    return { ...this.#stats, streams_active: this.#streams.size };
  }

  #onStream(call: grpc.ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>): void {
    const s: Stream = {
      call,
      ctl: new AbortController(),
      peer: call.getPeer(),
      connectedAt: new Date(),
      token: tokenOf(call.metadata),
      nodeId: '',
      proxy: undefined,
      encoded: undefined,
      types: new Map(),
      nonce: 0,
      closed: false,
    };
    this.#streams.add(s);
    this.#stats.streams_total++;
    call.on('data', (req: DiscoveryRequest) => {
      try {
        this.#onRequest(s, req);
      } catch (err) {
        this.#log.error('xDS request handling failed', { err: errorMessage(err), node_id: s.nodeId });
        this.#fail(s, new XdsStreamError(grpc.status.INTERNAL, `internal error: ${errorMessage(err)}`));
      }
    });
    call.on('end', () => {
      this.#cleanup(s);
      if (!call.writableEnded) call.end();
    });
    call.on('cancelled', () => this.#cleanup(s));
    call.on('close', () => this.#cleanup(s));
    call.on('error', () => this.#cleanup(s));
  }

  #cleanup(s: Stream): void {
    if (!this.#streams.delete(s)) return;
    s.closed = true;
    s.ctl.abort();
    if (s.proxy) this.#log.debug('xDS stream closed', { node_id: s.nodeId, peer: s.peer });
  }

  #fail(s: Stream, err: XdsStreamError): void {
    if (s.closed) return;
    this.#cleanup(s);
    if (!s.call.writableEnded) s.call.emit('error', { code: err.code, details: err.message });
  }

  #onRequest(s: Stream, req: DiscoveryRequest): void {
    if (s.closed) return;
    if (!s.proxy) {
      const id = req.node?.id ?? '';
      if (id === '') {
        this.#fail(s, new XdsStreamError(grpc.status.INVALID_ARGUMENT, 'the first DiscoveryRequest of a stream must carry node.id (the mesh gateway service ID)'));
        return;
      }
      s.nodeId = id;
      try {
        s.proxy = this.#source.open(
          id,
          s.ctl.signal,
          (r) => this.#push(s, r),
          (e) => this.#fail(s, e),
        );
      } catch (err) {
        this.#refuse(s, err);
        return;
      }
      // Synchronously after open: the source pushes only after an await, so a refused stream
      // never receives a resource.
      if (!this.#authorized(s)) return;
      this.#log.info('xDS stream opened', { node_id: id, proxy: s.proxy.id, peer: s.peer });
    } else if (!this.#authorized(s)) {
      return;
    }
    const type = req.type_url ?? '';
    if (!KNOWN_TYPES.has(type)) {
      this.#log.debug('ignoring xDS request for an unserved type', { node_id: s.nodeId, type_url: type });
      return;
    }
    let st = s.types.get(type);
    if (!st) {
      st = { subscribed: false, names: [], sentVersion: '', sentNonce: '', ackedVersion: '', nackedVersion: '', lastError: '', responses: 0 };
      s.types.set(type, st);
    }
    const nonce = req.response_nonce ?? '';
    if (nonce !== '') {
      if (nonce !== st.sentNonce) {
        this.#stats.stale_requests++;
        this.#log.trace('ignoring xDS request with a stale nonce', { node_id: s.nodeId, type_url: type, nonce, current: st.sentNonce });
        return;
      }
      const detail = req.error_detail;
      if (detail) {
        this.#stats.nacks++;
        const error = detail.message ?? `code ${detail.code ?? '?'}`;
        if (st.nackedVersion !== st.sentVersion) {
          this.#log.warn('proxy rejected xDS update', { node_id: s.nodeId, proxy: s.proxy.id, type_url: type, version: st.sentVersion, error });
        }
        st.nackedVersion = st.sentVersion;
        st.lastError = error;
      } else {
        this.#stats.acks++;
        st.ackedVersion = req.version_info ?? st.sentVersion;
      }
    }
    st.subscribed = true;
    st.names = NAMED_TYPES.has(type) ? [...(req.resource_names ?? [])] : [];
    this.#send(s, type);
  }

  /** Run the source's ACL check for the stream; on refusal end it and answer false. */
  #authorized(s: Stream): boolean {
    if (!s.proxy || !this.#source.authorize) return true;
    try {
      this.#source.authorize(s.proxy, s.token);
      return true;
    } catch (err) {
      this.#refuse(s, err);
      return false;
    }
  }

  /** End a stream the source refused (unknown proxy, ACLs), counting and logging why. */
  #refuse(s: Stream, err: unknown): void {
    const e = err instanceof XdsStreamError ? err : new XdsStreamError(grpc.status.INTERNAL, errorMessage(err));
    if (e.code === grpc.status.NOT_FOUND) this.#stats.not_found++;
    else if (e.code === grpc.status.PERMISSION_DENIED) this.#stats.permission_denied++;
    else if (e.code === grpc.status.UNAUTHENTICATED) this.#stats.unauthenticated++;
    this.#log.warn('refused xDS stream', { node_id: s.nodeId, peer: s.peer, code: grpc.status[e.code], err: e.message });
    this.#fail(s, e);
  }

  /** A new resource set for the stream's proxy: encode it, then send the types that changed. */
  #push(s: Stream, resources: XdsResources): void {
    if (s.closed || !this.#authorized(s)) return;
    const byType = new Map<string, { name: string; any: EncodedAny }[]>();
    try {
      for (const { kind, typeUrl } of RESOURCE_KINDS) {
        const list = resources[kind] ?? [];
        const seen = new Set<string>();
        const out: { name: string; any: EncodedAny }[] = [];
        for (const r of list) {
          const name = resourceName(r);
          if (r['@type'] !== typeUrl) throw new XdsEncodeError(String(r['@type']), name, `it is in the ${kind} list, which holds ${typeUrl} only`);
          if (seen.has(name)) throw new XdsEncodeError(typeUrl, name, 'duplicate resource name');
          seen.add(name);
          out.push({ name, any: this.#codec.encode(r) });
        }
        byType.set(typeUrl, out);
      }
    } catch (err) {
      this.#stats.encode_errors++;
      this.#log.error('xDS resources do not encode; keeping the previous ones (this is a bug in the plugin that built them)', {
        node_id: s.nodeId,
        err: errorMessage(err),
      });
      return;
    }
    s.encoded = { byType };
    for (const { typeUrl } of RESOURCE_KINDS) this.#send(s, typeUrl);
  }

  /** Send `type` if the stream subscribed to it and what it would get differs from what it got last. */
  #send(s: Stream, type: string): void {
    const st = s.types.get(type);
    if (!st?.subscribed || !s.encoded || s.closed) return;
    let list = s.encoded.byType.get(type) ?? [];
    if (st.names.length > 0) {
      const wanted = new Set(st.names);
      list = list.filter((e) => wanted.has(e.name));
    }
    const hash = createHash('sha256');
    for (const e of list) {
      hash.update(e.name).update('\0').update(e.any.value).update('\0');
    }
    const version = hash.digest('hex').slice(0, 16);
    if (version === st.sentVersion) return;
    const nonce = String(++s.nonce);
    st.sentVersion = version;
    st.sentNonce = nonce;
    st.responses++;
    this.#stats.responses++;
    s.call.write({ version_info: version, resources: list.map((e) => e.any), type_url: type, nonce });
    this.#log.debug('sent xDS response', { node_id: s.nodeId, type_url: type, version, nonce, resources: list.length });
  }
}

/** The `x-consul-token` metadata of a stream (`''` when absent). */
function tokenOf(metadata: grpc.Metadata): string {
  const v = metadata.get('x-consul-token')[0];
  return typeof v === 'string' ? v : (v?.toString('utf8') ?? '');
}

/** What {@link adsServerCredentials} needs: the agent's PEMs and an SNI callback (`TlsConfigurator.incomingOptions`). */
export interface AdsTlsMaterial {
  readonly ca: string | Buffer;
  readonly cert: string | Buffer;
  readonly key: string | Buffer;
  /** Require and verify client certificates (`tls.verify_incoming`). */
  readonly requireClientCert: boolean;
  /** Picks the current context per ClientHello with SNI (certificate rotation). */
  readonly SNICallback?: (servername: string, cb: (err: Error | null, ctx?: SecureContext) => void) => void;
}

/** grpc-js credentials that pass Node's `SNICallback` through to `http2.createSecureServer`. */
class SniServerCredentials extends grpc.ServerCredentials {
  _equals(other: grpc.ServerCredentials): boolean {
    return other === this;
  }
}

/**
 * Server credentials for {@link AdsServer.listenTls}: TLS 1.2+ with the agent's certificate, the
 * CA that verifies client certificates when `requireClientCert`, and (when given) the SNI
 * callback through which a rotated certificate applies from the next handshake that sends SNI.
 */
export function adsServerCredentials(m: AdsTlsMaterial): grpc.ServerCredentials {
  const pem = (v: string | Buffer): Buffer => (typeof v === 'string' ? Buffer.from(v) : v);
  if (!m.SNICallback) return grpc.ServerCredentials.createSsl(pem(m.ca), [{ private_key: pem(m.key), cert_chain: pem(m.cert) }], m.requireClientCert);
  return new SniServerCredentials(
    { requestCert: m.requireClientCert, rejectUnauthorized: m.requireClientCert, minVersion: 'TLSv1.2', SNICallback: m.SNICallback },
    { ca: pem(m.ca), cert: pem(m.cert), key: pem(m.key) },
  );
}
