/**
 * `grpc` plugin: internal gRPC on the RPC port (spec §1.1 byte 8, §1.2 `consul/rpc-grpc`, §11.3).
 *
 * - **Server**: one `@grpc/grpc-js` server per agent ({@link GrpcTokens.Server}). Connections the
 *   RPC listener accepts with type byte 8 (in clear or inside the `0x03` TLS upgrade) or with
 *   native TLS + ALPN `consul/rpc-grpc` (what mesh gateways deliver) are injected into it; TLS is
 *   terminated by the listener. Other plugins add services in their `apply` with
 *   `services.get(GrpcTokens.Server).addService(definition, implementation)`.
 * - **Client**: {@link GrpcTokens.Channels} makes clients targeting the router's resolver scheme
 *   (`<scheme>:///server.<dc>`) whose credentials write the RPC port's prelude: byte 8 (after
 *   `0x03` + TLS with `tls.verify_outgoing`), or — from a server with WAN federation via mesh
 *   gateways to another datacenter — TLS with SNI `server.<dc>.<domain>` and ALPN
 *   `consul/rpc-grpc` to a mesh gateway the `wanfed` plugin put in the resolver.
 *
 * @example
 * ```ts
 * import * as grpcJs from '@grpc/grpc-js';
 * import { createAgent } from 'meshfed';
 * import { grpc, GrpcTokens } from 'meshfed/plugins/grpc';
 * import { router } from 'meshfed/plugins/router';
 * import { rpc } from 'meshfed/plugins/rpc';
 * import { tls } from 'meshfed/plugins/tls';
 *
 * const raw = { serialize: (b: Buffer) => b, deserialize: (b: Buffer) => b };
 * const Echo = { echo: { path: '/example.Echo/Echo', requestStream: false, responseStream: false, requestSerialize: raw.serialize, requestDeserialize: raw.deserialize, responseSerialize: raw.serialize, responseDeserialize: raw.deserialize } };
 * const echoPlugin = { name: 'echo', requires: ['grpc'], apply: ({ services }) => services.get(GrpcTokens.Server).addService(Echo, { echo: (call, cb) => cb(null, call.request) }) };
 * const agent = await createAgent({ config: { server: true, bind_addr: '127.0.0.1', ports: { server: 0 } }, plugins: [tls(), rpc(), router(), grpc(), echoPlugin] });
 * await agent.start();
 * const EchoClient = grpcJs.makeGenericClientConstructor(Echo, 'Echo');
 * const client = agent.services.get(GrpcTokens.Channels).client(EchoClient, 'dc1'); // a dc1 server's RPC port, byte 8
 * ```
 * (`examples/grpc-service/main.ts` runs this between two agents.)
 */
import type { ServerOptions } from '@grpc/grpc-js';
import { DEFAULT_DIAL_TIMEOUT_MS } from '../../core/kernel-services.js';
import type { AgentPlugin } from '../../core/plugin.js';
import { Alpn, RpcType } from '../../core/protocol.js';
import { serviceToken, Tokens } from '../../core/tokens.js';
import type { RpcAcceptInfo } from '../../core/types.js';
import type { Duplex } from 'node:stream';
import { RouterTokens, type GrpcResolverBuilder } from '../router/index.js';
import { rpcLimits } from '../rpc/index.js';
import { TlsTokens, type TlsConfigurator } from '../tls/index.js';
import { GrpcChannels } from './grpc-channels.js';
import { InternalGrpcServer } from './grpc-server.js';

export { GrpcErrorCode, grpcError, type GrpcErrorCodeValue } from './errors.js';
export { GrpcChannels, type GrpcChannelsOptions, type GrpcClientConstructor } from './grpc-channels.js';
export { HTTP2_CLIENT_PREFACE, InternalGrpcServer, type InternalGrpcServerOptions, type InternalGrpcServerStats } from './grpc-server.js';
export { RpcPortChannelCredentials, type GrpcSecureConnector, type RpcPortCredentialsOptions, type RpcPortPath } from './rpc-port-credentials.js';

/** Tokens of the `grpc` plugin's services. */
export const GrpcTokens = Object.freeze({
  /**
   * The agent's internal gRPC server: `addService(definition, implementation)` in your plugin's
   * `apply` (before start). Bound on every agent; only agents with an RPC listener serve.
   */
  Server: serviceToken<InternalGrpcServer>('grpc.Server'),
  /** Clients of a datacenter's servers: `client(ctor, dc)`, or `target(dc)` + `credentials(dc)` + `channelOptions()`. */
  Channels: serviceToken<GrpcChannels>('grpc.Channels'),
});

/** Options of {@link grpc}. */
export interface GrpcPluginOptions {
  /** grpc-js options of the internal server (message size limits, keepalive, …). */
  readonly serverOptions?: ServerOptions;
  /** TLS handshake deadline of outgoing connections in ms (default 10 s, Consul's dial timeout). */
  readonly handshakeTimeoutMs?: number;
}

/**
 * The gRPC plugin. Requires `rpc` (the RPC port and its TLS upgrade) and `router` (the resolver
 * scheme); with `wanfed`, remote datacenters resolve to mesh gateways.
 *
 * @example
 * ```ts
 * const agent = await createAgent({ config: { server: true, ports: { server: 0 } }, plugins: [tls(), rpc(), router(), grpc()] });
 * await agent.start();
 * agent.status().plugins.find((p) => p.name === 'grpc'); // { services: [...], accepted_type_byte: 0, … }
 * ```
 */
export function grpc(options: GrpcPluginOptions = {}): AgentPlugin {
  return {
    name: 'grpc',
    requires: ['rpc', 'router'],
    register({ container, config, logger }) {
      container.bind(GrpcTokens.Server).toConstantValue(
        new InternalGrpcServer({
          logger: logger.child({ component: 'grpc.server' }),
          prefaceTimeoutMs: rpcLimits(config).rpc_handshake_timeout,
          ...(options.serverOptions ? { serverOptions: options.serverOptions } : {}),
        }),
      );
      container
        .bind(GrpcTokens.Channels)
        .toResolvedValue(
          (builder: GrpcResolverBuilder, signal: AbortSignal, tlsConf: TlsConfigurator | undefined) =>
            new GrpcChannels({
              target: (dc) => builder.target(dc),
              datacenter: config.datacenter,
              // spec §1.6: servers with WAN federation via mesh gateways reach other DCs only through gateways
              viaMeshGateways: config.server && config.connect.enable_mesh_gateway_wan_federation,
              tls: tlsConf,
              useTls: config.tls.verify_outgoing,
              signal,
              handshakeTimeoutMs: options.handshakeTimeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS,
            }),
          [RouterTokens.GrpcResolver, Tokens.AgentSignal, { optional: true, serviceIdentifier: TlsTokens.Configurator }],
        )
        .inSingletonScope();
    },
    apply({ hooks, services }) {
      const server = services.get(GrpcTokens.Server);
      const channels = services.get(GrpcTokens.Channels);
      const take = (conn: Duplex, info: RpcAcceptInfo): true => {
        server.accept(conn, info);
        return true;
      };
      hooks.onRpcAccept.for(RpcType.GRPC).tap({}, take);
      hooks.onRpcAccept.for(Alpn.RpcGRPC).tap({}, take);
      return {
        start() {
          server.markStarted();
        },
        stop() {
          channels.close();
          server.close();
        },
        status: () => ({
          services: server.services,
          accepted_type_byte: server.stats.acceptedTypeByte,
          accepted_alpn: server.stats.acceptedAlpn,
          injected: server.stats.injected,
          rejected: server.stats.rejected,
          clients: channels.clients,
        }),
      };
    },
  };
}
