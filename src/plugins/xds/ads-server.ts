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
 * not pushed (the previous one stays). Plaintext only for now (the listener binds `client_addr`,
 * loopback by default); TLS is future work.
 */
import { createHash } from 'node:crypto';
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
}

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
  #stats = { streams_total: 0, responses: 0, acks: 0, nacks: 0, stale_requests: 0, encode_errors: 0, not_found: 0 };

  /** A stopped server; call {@link listen}. */
  constructor(options: AdsServerOptions) {
    this.#source = options.source;
    this.#codec = options.codec ?? new XdsCodec();
    this.#log = options.logger;
  }

  /** `host:port` once listening. */
  get address(): string | undefined {
    return this.#address;
  }

  /** The codec in use. */
  get codec(): XdsCodec {
    return this.#codec;
  }

  /** Listen on `host:port` (0 = a free port), plaintext; resolves with the bound `host:port`. */
  async listen(host: string, port: number): Promise<string> {
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
    const bound = await new Promise<number>((resolve, reject) => {
      server.bindAsync(joinHostPort(host, port), grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p)));
    });
    this.#server = server;
    this.#address = joinHostPort(host, bound);
    return this.#address;
  }

  /** End every stream (`UNAVAILABLE`, so proxies reconnect to another server) and stop listening. */
  async close(): Promise<void> {
    for (const s of [...this.#streams]) this.#fail(s, new XdsStreamError(grpc.status.UNAVAILABLE, 'the xDS server is shutting down'));
    const server = this.#server;
    this.#server = undefined;
    this.#address = undefined;
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
        const e = err instanceof XdsStreamError ? err : new XdsStreamError(grpc.status.INTERNAL, errorMessage(err));
        if (e.code === grpc.status.NOT_FOUND) this.#stats.not_found++;
        this.#log.warn('refused xDS stream', { node_id: id, peer: s.peer, err: e.message });
        this.#fail(s, e);
        return;
      }
      this.#log.info('xDS stream opened', { node_id: id, proxy: s.proxy.id, peer: s.peer });
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

  /** A new resource set for the stream's proxy: encode it, then send the types that changed. */
  #push(s: Stream, resources: XdsResources): void {
    if (s.closed) return;
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
