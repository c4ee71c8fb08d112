/**
 * Client side of internal gRPC: clients whose channel targets the router's resolver scheme
 * (`<scheme>:///server.<dc>`) with {@link RpcPortChannelCredentials}, so a call to datacenter `dc`
 * reaches one of its servers' RPC ports, through mesh gateways when this server federates through
 * them (spec §1.6: a server, WAN federation via mesh gateways on, `dc` not the local one).
 */
import type * as grpcJs from '@grpc/grpc-js';
import type { TlsConfigurator } from '../tls/index.js';
import { GrpcErrorCode, grpcError } from './errors.js';
import { RpcPortChannelCredentials, type RpcPortPath } from './rpc-port-credentials.js';

/** A generated or `makeGenericClientConstructor` client class. */
export type GrpcClientConstructor<C extends grpcJs.Client> = new (address: string, credentials: grpcJs.ChannelCredentials, options?: grpcJs.ClientOptions) => C;

/** Settings of {@link GrpcChannels}. */
export interface GrpcChannelsOptions {
  /** Channel target of a datacenter's servers (the router's `GrpcResolverBuilder.target`). */
  readonly target: (dc: string) => string;
  /** The local datacenter. */
  readonly datacenter: string;
  /** Whether other datacenters are reached through mesh gateways (a server with wanfed on). */
  readonly viaMeshGateways: boolean;
  /** TLS configurator, if TLS is configured. */
  readonly tls: TlsConfigurator | undefined;
  /** Outgoing TLS on the RPC-port path (`tls.verify_outgoing`). */
  readonly useTls: boolean;
  /** Aborted when the agent stops: handshakes in progress fail. */
  readonly signal: AbortSignal;
  /** TLS handshake deadline in ms (default 10 s). */
  readonly handshakeTimeoutMs?: number;
}

/**
 * Makes gRPC clients of other servers for one agent and closes them when the agent stops.
 *
 * @example
 * ```ts
 * const channels = agent.services.get(GrpcTokens.Channels);
 * const client = channels.client(EchoClient, 'dc2'); // a dc2 server, through gateways if wanfed is on
 * ```
 */
export class GrpcChannels {
  readonly #o: GrpcChannelsOptions;
  readonly #credentials = new Map<string, RpcPortChannelCredentials>();
  readonly #clients = new Set<grpcJs.Client>();
  #closed = false;

  constructor(options: GrpcChannelsOptions) {
    this.#o = options;
  }

  /** The channel target of `dc`'s servers. */
  target(dc: string): string {
    return this.#o.target(dc);
  }

  /** How connections to `dc` travel: `mesh-gateway` (ALPN `consul/rpc-grpc`) or `rpc-port` (byte 8). */
  path(dc: string): RpcPortPath {
    return this.#o.viaMeshGateways && dc !== this.#o.datacenter ? 'mesh-gateway' : 'rpc-port';
  }

  /** The channel credentials for `dc` (one instance per datacenter, so channels to it share subchannels only within this agent). */
  credentials(dc: string): grpcJs.ChannelCredentials {
    let c = this.#credentials.get(dc);
    if (!c) {
      c = new RpcPortChannelCredentials({
        datacenter: dc,
        path: this.path(dc),
        tls: this.#o.tls,
        useTls: this.#o.useTls,
        signal: this.#o.signal,
        ...(this.#o.handshakeTimeoutMs !== undefined ? { handshakeTimeoutMs: this.#o.handshakeTimeoutMs } : {}),
      });
      this.#credentials.set(dc, c);
    }
    return c;
  }

  /** Channel options to pass with {@link credentials}: a per-channel subchannel pool (no sharing across agents), plus `extra`. */
  channelOptions(extra: grpcJs.ChannelOptions = {}): grpcJs.ChannelOptions {
    return { 'grpc.use_local_subchannel_pool': 1, ...extra };
  }

  /**
   * A client of `dc`'s servers. Reuse it: every client holds a channel until it is closed, and
   * the clients made here are closed when the agent stops.
   * @throws {MeshfedError} `MESHFED_ERR_GRPC_CLOSED` after the agent stopped
   */
  client<C extends grpcJs.Client>(ctor: GrpcClientConstructor<C>, dc: string, options: grpcJs.ClientOptions = {}): C {
    if (this.#closed) throw grpcError(GrpcErrorCode.CLOSED, `cannot make a gRPC client for ${dc}: the agent stopped`);
    const c = new ctor(this.target(dc), this.credentials(dc), this.channelOptions(options));
    this.#clients.add(c);
    return c;
  }

  /** Number of clients made and not yet closed by {@link close}. */
  get clients(): number {
    return this.#clients.size;
  }

  /** Close every client made here. Idempotent. */
  close(): void {
    this.#closed = true;
    for (const c of this.#clients) c.close();
    this.#clients.clear();
  }
}
