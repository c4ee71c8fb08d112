/**
 * `grpc.ChannelCredentials` that make the sockets grpc-js connects speak what a meshfed/Consul
 * RPC port expects (spec §11.3 "Dialer"). grpc-js offers no custom dialer: a subchannel always
 * `net.connect`s the resolved address and hands the socket to its credentials' connector, so the
 * protocol prelude is written there.
 *
 * - **RPC port** (same datacenter; any datacenter without WAN federation via mesh gateways): the
 *   socket is connected to a server's RPC port. With outgoing TLS (`tls.verify_outgoing`), byte
 *   `0x03`, a TLS handshake (`server.<dc>.<domain>`) and byte `0x08` inside TLS; otherwise byte
 *   `0x08` in clear (spec §1.4).
 * - **Mesh gateway** (a server dialing another datacenter with WAN federation via mesh gateways):
 *   the socket is connected to a mesh gateway (the resolver pushes gateway addresses, see
 *   `GrpcResolverBuilder.setRemoteEndpoints`). A fully verified TLS handshake with exactly one
 *   ALPN id, `consul/rpc-grpc`, and no type byte (spec §1.5).
 *
 *   **Deviation from Consul:** Consul's dialer knows which server a connection is for and sends
 *   SNI `<node>.server.<dc>.<domain>`. A grpc-js connector is not told which endpoint it connects
 *   (only the socket), so the SNI names the datacenter, `server.<dc>.<domain>`: the gateways route
 *   it by their catch-all `sni_cluster` chain to any server of that datacenter (spec §9.3), and
 *   each server certificate carries `server.<dc>.<domain>`. A channel therefore cannot pin one
 *   remote server.
 */
import type { Socket } from 'node:net';
import * as grpcJs from '@grpc/grpc-js';
import { DEFAULT_DIAL_TIMEOUT_MS } from '../../core/kernel-services.js';
import { Alpn, RpcType } from '../../core/protocol.js';
import { upgradeOutgoing } from '../rpc/index.js';
import type { TlsConfigurator } from '../tls/index.js';
import { GrpcErrorCode, grpcError } from './errors.js';

/** The connector grpc-js asks the credentials for (grpc-js 1.14 `SecureConnector`). */
export type GrpcSecureConnector = ReturnType<grpcJs.ChannelCredentials['_createSecureConnector']>;

/** How the sockets of a channel reach the destination datacenter. */
export type RpcPortPath = 'rpc-port' | 'mesh-gateway';

/** Settings of {@link RpcPortChannelCredentials}. */
export interface RpcPortCredentialsOptions {
  /** Destination datacenter. */
  readonly datacenter: string;
  /** `rpc-port`: byte 8 (optionally inside `0x03` TLS); `mesh-gateway`: TLS with ALPN `consul/rpc-grpc`. */
  readonly path: RpcPortPath;
  /** TLS configurator (required for `mesh-gateway`, and for TLS on the `rpc-port` path). */
  readonly tls: TlsConfigurator | undefined;
  /** Outgoing TLS on the `rpc-port` path (`tls.verify_outgoing`). */
  readonly useTls: boolean;
  /** TLS handshake deadline in ms (default 10 s, Consul's dial timeout). */
  readonly handshakeTimeoutMs?: number;
  /** Aborts every handshake in progress (the agent stopping). */
  readonly signal: AbortSignal;
}

/**
 * Channel credentials for one destination datacenter of one agent. Equal only to themselves, so
 * grpc-js never shares a subchannel between agents or datacenters.
 */
export class RpcPortChannelCredentials extends grpcJs.ChannelCredentials {
  readonly #o: RpcPortCredentialsOptions;

  constructor(options: RpcPortCredentialsOptions) {
    super();
    if (options.path === 'mesh-gateway' && !options.tls) {
      throw grpcError(GrpcErrorCode.DIAL, 'cannot dial via a mesh gateway when outgoing TLS is disabled: configure tls.ca_file, tls.cert_file and tls.key_file');
    }
    this.#o = options;
  }

  /** Destination datacenter. */
  get datacenter(): string {
    return this.#o.datacenter;
  }

  /** How the sockets reach it. */
  get path(): RpcPortPath {
    return this.#o.path;
  }

  /** Whether connections are TLS (grpc-js sends call credentials only over secure channels). */
  _isSecure(): boolean {
    return this.#o.path === 'mesh-gateway' || (this.#o.useTls && this.#o.tls !== undefined);
  }

  /** Identity: each instance stands for one agent's channel to one datacenter. */
  _equals(other: grpcJs.ChannelCredentials): boolean {
    return other === this;
  }

  /** The connector: writes the RPC port's prelude on every socket grpc-js connects. */
  _createSecureConnector(_channelTarget: unknown, _options: unknown, callCredentials?: grpcJs.CallCredentials): GrpcSecureConnector {
    const o = this.#o;
    const own = new AbortController();
    const signal = AbortSignal.any([own.signal, o.signal]);
    const timeoutMs = o.handshakeTimeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS;
    const creds = callCredentials ?? grpcJs.CallCredentials.createEmpty();
    return {
      async connect(socket: Socket) {
        if (o.path === 'mesh-gateway') {
          // tls is checked by the constructor; the gateway routes SNI server.<dc>.<domain> to any server of dc
          const t = await (o.tls as TlsConfigurator).wrapAlpnClient(socket, { datacenter: o.datacenter, node: '*', alpn: Alpn.RpcGRPC, signal, timeoutMs });
          return { socket: t, secure: true };
        }
        const s = await upgradeOutgoing(socket, RpcType.GRPC, { tls: o.tls, useTls: o.useTls, datacenter: o.datacenter, signal });
        return { socket: s, secure: s !== socket };
      },
      waitForReady: () => Promise.resolve(),
      getCallCredentials: () => creds,
      destroy: () => own.abort(new Error('gRPC connector destroyed')),
    };
  }
}
