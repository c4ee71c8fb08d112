/**
 * A minimal xDS client for the mesh gateway: one Aggregated Discovery Service stream
 * (state-of-the-world, `envoy.service.discovery.v3.AggregatedDiscoveryService`) that subscribes to
 * every Listener, Cluster and ClusterLoadAssignment for the gateway's node id, decodes the `Any`
 * resources into plain objects (snake_case fields, nested `typed_config`s expanded, `'@type'`
 * kept), hands each accepted full set to an `apply` callback, and ACKs or NACKs each response.
 *
 * On a stream error it reconnects with exponential backoff, moving to the next server address.
 * The ACL token (`token`) rides as gRPC metadata `x-consul-token` (Consul's); a server that
 * refuses it (`PERMISSION_DENIED`, `UNAUTHENTICATED`) is logged as an error naming the server's
 * message, then retried like any failure. A server address `https://host:port` is dialed over TLS
 * (CA, server name and an optional client certificate from `tls`), `host:port` or
 * `http://host:port` in plaintext — Consul's `-grpc-addr` convention.
 */
import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import protobuf from 'protobufjs';
import type { Logger } from '../../core/logger.js';
import { CLUSTER_TYPE_URL, ENDPOINT_TYPE_URL, LISTENER_TYPE_URL, MeshGatewayErrorCode, meshGatewayError, type MeshGatewayResources, type XdsResource } from './routing.js';

/** The three resource types the gateway subscribes to, in request order. */
export const ADS_TYPE_URLS: readonly string[] = Object.freeze([CLUSTER_TYPE_URL, ENDPOINT_TYPE_URL, LISTENER_TYPE_URL]);

/** Resource protos loaded into the decoding root (nested `typed_config`s of these types are expanded). */
const RESOURCE_PROTOS = [
  'envoy/config/listener/v3/listener.proto',
  'envoy/config/cluster/v3/cluster.proto',
  'envoy/config/endpoint/v3/endpoint.proto',
  'envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.proto',
  'envoy/extensions/filters/network/sni_cluster/v3/sni_cluster.proto',
  'envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector.proto',
];

/** Loaded protos: the ADS service client constructor, the resource decoders and the include dirs. */
export interface AdsProtos {
  /** gRPC client constructor of `AggregatedDiscoveryService`. */
  readonly AdsClient: grpc.ServiceClientConstructor;
  /** The service definition (for in-process servers, tests). */
  readonly service: grpc.ServiceDefinition;
  /** Decoding root holding the resource messages. */
  readonly root: protobuf.Root;
  /** Proto include directories. */
  readonly includeDirs: readonly string[];
}

/** The `deps` folder of @grpc/grpc-js-xds, which ships the Envoy, xds, googleapis and validate protos. */
export function defaultProtoDirs(): string[] {
  const require = createRequire(import.meta.url);
  const deps = join(dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps');
  return ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => join(deps, d));
}

/**
 * Load the ADS service and the resource protos (a few hundred milliseconds; load once and pass the
 * result to every {@link AdsClient} through `protos`).
 */
export function loadAdsProtos(includeDirs: readonly string[] = defaultProtoDirs()): AdsProtos {
  const pd = protoLoader.loadSync('envoy/service/discovery/v3/ads.proto', {
    keepCase: true,
    longs: Number,
    enums: String,
    defaults: false,
    includeDirs: [...includeDirs],
  });
  const loaded = grpc.loadPackageDefinition(pd) as unknown as {
    envoy: { service: { discovery: { v3: { AggregatedDiscoveryService: grpc.ServiceClientConstructor } } } };
  };
  const AdsClient = loaded.envoy.service.discovery.v3.AggregatedDiscoveryService;
  const root = new protobuf.Root();
  root.resolvePath = (origin: string, target: string): string => {
    for (const d of includeDirs) {
      const p = join(d, target);
      if (existsSync(p)) return p;
    }
    return protobuf.util.path.resolve(origin, target);
  };
  root.loadSync(RESOURCE_PROTOS, { keepCase: true });
  root.resolveAll();
  return { AdsClient, service: AdsClient.service, root, includeDirs: [...includeDirs] };
}

/** A `google.protobuf.Any` as the stream decodes it. */
interface RawAny {
  readonly type_url?: string;
  readonly value?: Uint8Array;
}

/** A DiscoveryResponse as the stream decodes it. */
interface RawResponse {
  readonly version_info?: string;
  readonly resources?: readonly RawAny[];
  readonly type_url?: string;
  readonly nonce?: string;
}

const TO_OBJECT: protobuf.IConversionOptions = { defaults: false, enums: String, longs: Number, json: true };

/**
 * Decode one `Any` resource of type `typeUrl` into a plain object with `'@type'`. Throws a
 * `MESHFED_ERR_MESH_GATEWAY_DECODE` error when the bytes are not a valid message of that type.
 */
export function decodeResource(root: protobuf.Root, typeUrl: string, any: RawAny): XdsResource {
  if (any.type_url !== typeUrl) throw meshGatewayError(MeshGatewayErrorCode.DECODE, `resource of type ${String(any.type_url)} in a ${typeUrl} response`);
  const name = typeUrl.slice(typeUrl.lastIndexOf('/') + 1);
  let type: protobuf.Type;
  try {
    type = root.lookupType(name);
  } catch (err) {
    throw meshGatewayError(MeshGatewayErrorCode.DECODE, `unknown resource type ${typeUrl}`, err);
  }
  try {
    const msg = type.decode(any.value ?? new Uint8Array(0));
    return { '@type': typeUrl, ...type.toObject(msg, TO_OBJECT) };
  } catch (err) {
    throw meshGatewayError(MeshGatewayErrorCode.DECODE, `cannot decode a ${name}: ${err instanceof Error ? err.message : String(err)}`, err);
  }
}

/** TLS settings of {@link AdsClient} for `https://` servers. */
export interface AdsClientTlsOptions {
  /** PEM of the CA(s) the server certificate must chain to (default: Node's public roots). */
  readonly caPem?: string;
  /** Name the server certificate must carry (and the SNI sent; default: the address host). */
  readonly serverName?: string;
  /** Client certificate PEM, for servers that require one (`tls.verify_incoming`). */
  readonly certPem?: string;
  /** Key of `certPem`. */
  readonly keyPem?: string;
}

/** An ADS server address: `host:port` (plaintext) or `https://host:port` (TLS). */
export interface AdsServerAddress {
  /** `host:port`. */
  readonly address: string;
  /** Dial with TLS. */
  readonly tls: boolean;
}

/**
 * Split an ADS server address: `https://host:port` → TLS, `http://host:port` or `host:port` →
 * plaintext (a trailing `/` is ignored). The `host:port` part is not validated here.
 *
 * @example
 * ```ts
 * parseAdsServer('https://10.0.0.1:8503'); // { address: '10.0.0.1:8503', tls: true }
 * ```
 */
export function parseAdsServer(text: string): AdsServerAddress {
  const m = /^(https?):\/\/(.*?)\/?$/i.exec(text);
  if (!m) return { address: text, tls: false };
  return { address: m[2] as string, tls: (m[1] as string).toLowerCase() === 'https' };
}

/** Options of {@link AdsClient}. */
export interface AdsClientOptions {
  /**
   * xDS server addresses, tried in order, failing over on errors: `host:port` (plaintext) or
   * `https://host:port` (TLS with {@link AdsClientOptions.tls}).
   */
  readonly servers: readonly string[];
  /** ACL token sent as `x-consul-token` metadata (needs `service:write` on the gateway's service; never logged). */
  readonly token?: string;
  /** TLS settings for `https://` servers. */
  readonly tls?: AdsClientTlsOptions;
  /** `node.id`: the gateway's service ID. */
  readonly nodeId: string;
  /** `node.cluster` (default: the node id). */
  readonly nodeCluster?: string;
  /**
   * Called with the full set on every change before it is ACKed; throwing NACKs the response with
   * the error's message and keeps the previous set (e.g. `(r) => proxy.update(r)`).
   */
  readonly apply?: (resources: MeshGatewayResources) => void;
  /** Loaded protos (default: loaded by the constructor). */
  readonly protos?: AdsProtos;
  /** First reconnect delay (default 200 ms); doubles per failure up to `maxBackoffMs`. */
  readonly initialBackoffMs?: number;
  /** Largest reconnect delay (default 10 000 ms). */
  readonly maxBackoffMs?: number;
  /** Logger. */
  readonly logger?: Logger;
}

/** Events of {@link AdsClient}. */
export interface AdsClientEvents {
  /** A response was accepted; the argument is the full current set. */
  resources: [MeshGatewayResources];
  /** A response was rejected (NACKed). */
  nack: [{ readonly typeUrl: string; readonly nonce: string; readonly message: string }];
  /** A stream to `server` started. */
  connected: [{ readonly server: string }];
  /**
   * A stream ended or failed; a reconnect follows after `delayMs`. `code` is the gRPC status
   * (e.g. `grpc.status.PERMISSION_DENIED` when the server refused the token), when there is one.
   */
  disconnected: [{ readonly server: string; readonly error: string; readonly delayMs: number; readonly code?: grpc.status }];
}

type Stream = grpc.ClientDuplexStream<Record<string, unknown>, RawResponse>;

/**
 * The mesh gateway's ADS client.
 *
 * @example
 * ```ts
 * const ads = new AdsClient({ servers: ['127.0.0.1:8502'], nodeId: 'mesh-gateway', apply: (r) => proxy.update(r) });
 * ads.start();
 * // …
 * ads.close();
 * ```
 */
export class AdsClient extends EventEmitter<AdsClientEvents> {
  readonly #options: AdsClientOptions;
  readonly #protos: AdsProtos;
  readonly #initialBackoff: number;
  readonly #maxBackoff: number;
  #serverIndex = 0;
  #backoff: number;
  #client: grpc.Client | undefined;
  #stream: Stream | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  #started = false;
  /** Accepted resources per type URL, and their versions. */
  readonly #state = new Map<string, readonly XdsResource[]>();
  readonly #versions = new Map<string, string>();

  /** Create a client; nothing is sent until {@link start}. */
  constructor(options: AdsClientOptions) {
    super();
    if (options.servers.length === 0) throw meshGatewayError(MeshGatewayErrorCode.INVALID_CONFIG, 'AdsClient: at least one xDS server address (host:port) is required');
    this.#options = options;
    this.#protos = options.protos ?? loadAdsProtos();
    this.#initialBackoff = options.initialBackoffMs ?? 200;
    this.#maxBackoff = options.maxBackoffMs ?? 10_000;
    this.#backoff = this.#initialBackoff;
  }

  /** Open the stream (idempotent). */
  start(): void {
    if (this.#started || this.#closed) return;
    this.#started = true;
    this.#connect();
  }

  /** The server address in use (or to be tried next). */
  get server(): string {
    return this.#options.servers[this.#serverIndex % this.#options.servers.length] ?? '';
  }

  /** The accepted version per type URL. */
  versions(): ReadonlyMap<string, string> {
    return new Map(this.#versions);
  }

  /** The current full set of accepted resources. */
  current(): MeshGatewayResources {
    return {
      listeners: this.#state.get(LISTENER_TYPE_URL) ?? [],
      clusters: this.#state.get(CLUSTER_TYPE_URL) ?? [],
      endpoints: this.#state.get(ENDPOINT_TYPE_URL) ?? [],
    };
  }

  /** Stop: cancel the stream, close the channel, cancel any reconnect. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#teardown();
  }

  #teardown(): void {
    const stream = this.#stream;
    this.#stream = undefined;
    if (stream) {
      stream.removeAllListeners('data');
      stream.cancel();
    }
    this.#client?.close();
    this.#client = undefined;
  }

  #node(): Record<string, unknown> {
    return { id: this.#options.nodeId, cluster: this.#options.nodeCluster ?? this.#options.nodeId };
  }

  /** A channel to `server` with its credentials (TLS for `https://` addresses). */
  #channel(server: string): grpc.Client {
    const { address, tls } = parseAdsServer(server);
    if (!tls) return new this.#protos.AdsClient(address, grpc.credentials.createInsecure());
    const t = this.#options.tls ?? {};
    const creds = grpc.credentials.createSsl(
      t.caPem !== undefined ? Buffer.from(t.caPem) : null,
      t.keyPem !== undefined ? Buffer.from(t.keyPem) : null,
      t.certPem !== undefined ? Buffer.from(t.certPem) : null,
    );
    const channelOptions: grpc.ChannelOptions = t.serverName ? { 'grpc.ssl_target_name_override': t.serverName, 'grpc.default_authority': t.serverName } : {};
    return new this.#protos.AdsClient(address, creds, channelOptions);
  }

  #connect(): void {
    if (this.#closed) return;
    const server = this.server;
    const client = this.#channel(server);
    this.#client = client;
    const metadata = new grpc.Metadata();
    if (this.#options.token) metadata.set('x-consul-token', this.#options.token);
    const stream = (client as unknown as { StreamAggregatedResources(md: grpc.Metadata): Stream }).StreamAggregatedResources(metadata);
    this.#stream = stream;
    let failed = false;
    const fail = (why: string, code?: grpc.status): void => {
      if (failed || this.#stream !== stream) return;
      failed = true;
      this.#teardown();
      if (this.#closed) return;
      const delay = this.#backoff;
      this.#backoff = Math.min(this.#maxBackoff, this.#backoff * 2);
      this.#serverIndex = (this.#serverIndex + 1) % this.#options.servers.length;
      if (code === grpc.status.PERMISSION_DENIED || code === grpc.status.UNAUTHENTICATED) {
        this.#options.logger?.error(
          `the xDS server refused this gateway's ACL token (${grpc.status[code]}); it needs service:write on the gateway's service (-token / $MESHFED_HTTP_TOKEN); retrying`,
          { server, error: why, delay_ms: delay, next: this.server },
        );
      } else {
        this.#options.logger?.warn('xDS stream failed; reconnecting', { server, error: why, delay_ms: delay, next: this.server });
      }
      this.emit('disconnected', { server, error: why, delayMs: delay, ...(code !== undefined ? { code } : {}) });
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.#connect();
      }, delay);
    };
    stream.on('data', (res: RawResponse) => this.#onResponse(stream, res));
    stream.on('error', (err: Error & { code?: unknown }) => fail(err.message, typeof err.code === 'number' ? (err.code as grpc.status) : undefined));
    stream.on('end', () => fail('stream ended by the server'));
    for (const typeUrl of ADS_TYPE_URLS) {
      stream.write({ node: this.#node(), type_url: typeUrl, resource_names: [], version_info: this.#versions.get(typeUrl) ?? '', response_nonce: '' });
    }
    this.#options.logger?.debug('xDS stream opened', { server });
    this.emit('connected', { server });
  }

  #onResponse(stream: Stream, res: RawResponse): void {
    if (this.#stream !== stream) return;
    const typeUrl = res.type_url ?? '';
    const nonce = res.nonce ?? '';
    const version = res.version_info ?? '';
    if (!ADS_TYPE_URLS.includes(typeUrl)) {
      this.#nack(stream, typeUrl, nonce, `unexpected resource type ${typeUrl}`);
      return;
    }
    let decoded: XdsResource[];
    try {
      decoded = (res.resources ?? []).map((r) => decodeResource(this.#protos.root, typeUrl, r));
    } catch (err) {
      this.#nack(stream, typeUrl, nonce, err instanceof Error ? err.message : String(err));
      return;
    }
    const next = new Map(this.#state);
    next.set(typeUrl, decoded);
    const snapshot: MeshGatewayResources = {
      listeners: next.get(LISTENER_TYPE_URL) ?? [],
      clusters: next.get(CLUSTER_TYPE_URL) ?? [],
      endpoints: next.get(ENDPOINT_TYPE_URL) ?? [],
    };
    try {
      this.#options.apply?.(snapshot);
    } catch (err) {
      this.#nack(stream, typeUrl, nonce, err instanceof Error ? err.message : String(err));
      return;
    }
    this.#state.set(typeUrl, decoded);
    this.#versions.set(typeUrl, version);
    this.#backoff = this.#initialBackoff;
    stream.write({ node: this.#node(), type_url: typeUrl, resource_names: [], version_info: version, response_nonce: nonce });
    this.#options.logger?.debug('xDS response accepted', { type_url: typeUrl, version, resources: decoded.length });
    this.emit('resources', snapshot);
  }

  #nack(stream: Stream, typeUrl: string, nonce: string, message: string): void {
    this.#options.logger?.warn('xDS response rejected', { type_url: typeUrl, nonce, error: message });
    stream.write({
      node: this.#node(),
      type_url: typeUrl,
      resource_names: [],
      version_info: this.#versions.get(typeUrl) ?? '',
      response_nonce: nonce,
      error_detail: { code: 3, message },
    });
    this.emit('nack', { typeUrl, nonce, message });
  }
}
