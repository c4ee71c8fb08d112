/**
 * `rpc` plugin: the server RPC port (first-byte sniffing, TLS upgrade, native TLS + ALPN,
 * dispatch through `onRpcAccept`) and the default dialer on `onDial` (TCP, optional `0x03` +
 * TLS, type byte). Owns the `limits` and `performance` configuration sections.
 */
import type { AgentConfig } from '../../core/config/schema.js';
import { Stage } from '../../core/hooks.js';
import type { AgentPlugin } from '../../core/plugin.js';
import { Tokens, serviceToken } from '../../core/tokens.js';
import type { Dialer, RpcAcceptDispatcher } from '../../core/kernel-services.js';
import { TlsTokens, type TlsConfigurator } from '../tls/index.js';
import type { Duplex } from 'node:stream';
import { errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import { Alpn, RpcType } from '../../core/protocol.js';
import type { RpcAcceptInfo } from '../../core/types.js';
import { YamuxSession } from '../yamux/index.js';
import { ConnPool } from './conn-pool.js';
import { readFirstChunk, RpcListener } from './listener.js';
import { EndpointRegistry, serveRpcConn, statusEndpoints } from './msgpack/index.js';
import { dialTcp } from './tcp-dialer.js';

export { RpcErrorCode } from './errors.js';
export { readFirstChunk, RpcListener, type RpcListenerOptions, type RpcListenerStats } from './listener.js';
export { ConnPool, type ConnPoolOptions, type ConnPoolStats, type PoolCallOptions, type PoolTarget } from './conn-pool.js';
export * from './msgpack/index.js';
export { dialTcp, splitHostPort, tcpConnect, upgradeOutgoing, type OutgoingUpgradeOptions, type TcpDialOptions } from './tcp-dialer.js';

/** Tokens of the `rpc` plugin's services. */
export const RpcTokens = Object.freeze({
  /** The RPC port listener (bound on servers). */
  Listener: serviceToken<RpcListener>('rpc.Listener'),
  /** The msgpack-RPC endpoints this agent serves; register yours in your plugin's `apply`. */
  Endpoints: serviceToken<EndpointRegistry>('rpc.Endpoints'),
  /** The connection pool for calls to other servers. */
  Pool: serviceToken<ConnPool>('rpc.Pool'),
});

/** Serve one yamux session: every stream is a msgpack-RPC connection (spec §2.2, byte 4). */
function serveYamux(conn: Duplex, info: RpcAcceptInfo, registry: EndpointRegistry, logger: Logger, sessions: Set<YamuxSession>): void {
  const session = YamuxSession.server(conn, { logger });
  sessions.add(session);
  // The session logs its own failure once (no 'error' listener needed).
  session.on('close', () => sessions.delete(session));
  void (async () => {
    for (;;) {
      let stream;
      try {
        stream = await session.accept({ signal: info.signal });
      } catch {
        return;
      }
      // A failing session destroys its streams with its error, which the session already logged.
      stream.on('error', () => undefined);
      void (async () => {
        let first: Buffer;
        try {
          first = await readFirstChunk(stream, info.signal);
        } catch {
          stream.destroy();
          return;
        }
        if (first[0] === RpcType.Gossip) {
          logger.warn('network-area gossip streams are not supported', { remote: info.remoteAddress });
          stream.destroy();
          return;
        }
        stream.unshift(first);
        await serveRpcConn(stream, registry, { logger, signal: info.signal });
      })().catch((err: unknown) => logger.error('RPC stream failed', { err: errorMessage(err) }));
    }
  })();
}

/** The `limits` and `performance` sections, resolved (durations in ms). */
export interface RpcLimits {
  readonly rpc_max_conns_per_client: number;
  readonly rpc_handshake_timeout: number;
  readonly rpc_client_timeout: number;
}

/** Read the resolved `limits` section. */
export function rpcLimits(config: AgentConfig): RpcLimits {
  return config['limits'] as RpcLimits;
}

/** Read the resolved `performance.rpc_hold_timeout` (ms). */
export function rpcHoldTimeout(config: AgentConfig): number {
  return (config['performance'] as { rpc_hold_timeout: number }).rpc_hold_timeout;
}

/** Options of {@link rpc}. */
export interface RpcPluginOptions {
  /** Open the RPC port even on a client agent (default: servers only). */
  readonly listen?: boolean;
}

/**
 * The RPC plugin.
 *
 * @example
 * ```ts
 * const agent = await createAgent({ config: { server: true, ports: { server: 0 } }, plugins: [tls(), rpc()] });
 * await agent.start();
 * agent.services.get(RpcTokens.Listener).address; // "0.0.0.0:<port>"
 * ```
 */
export function rpc(options: RpcPluginOptions = {}): AgentPlugin {
  return {
    name: 'rpc',
    requires: ['tls-configurator'],
    provides: ['rpc-listener', 'tcp-dialer'],
    configSchema: {
      limits: {
        kind: 'object',
        doc: 'RPC limits.',
        fields: {
          rpc_max_conns_per_client: { kind: 'int', default: 100, min: 0, doc: 'Concurrent RPC connections per client IP (0 = unlimited).' },
          rpc_handshake_timeout: { kind: 'duration', default: '5s', doc: 'Time for a new RPC connection to send its first byte and finish any TLS handshake ("0" = none).' },
          rpc_client_timeout: { kind: 'duration', default: '60s', max: '1h', doc: 'Deadline of one outgoing RPC (blocking queries add their wait and rpc_hold_timeout).' },
        },
      },
      performance: {
        kind: 'object',
        doc: 'Performance tuning.',
        fields: {
          rpc_hold_timeout: { kind: 'duration', default: '7s', doc: 'Added to a blocking query’s wait for its RPC deadline.' },
        },
      },
    },
    register({ container, config, logger }) {
      container.bind(RpcTokens.Endpoints).toConstantValue(new EndpointRegistry());
      container
        .bind(RpcTokens.Pool)
        .toResolvedValue(
          (dialer: Dialer) =>
            new ConnPool({
              dialer,
              logger: logger.child({ component: 'rpc.pool' }),
              maxStreams: config.server ? 64 : 32,
              maxIdleTimeMs: config.server ? 120_000 : 127_000,
              rpcClientTimeoutMs: rpcLimits(config).rpc_client_timeout,
              rpcHoldTimeoutMs: rpcHoldTimeout(config),
            }),
          [Tokens.Dialer],
        )
        .inSingletonScope();
      if (!config.server && !options.listen) return;
      container
        .bind(RpcTokens.Listener)
        .toResolvedValue(
          (dispatcher: RpcAcceptDispatcher, signal: AbortSignal, tls: TlsConfigurator | undefined) => {
            const limits = rpcLimits(config);
            return new RpcListener({
              dispatcher,
              signal,
              logger,
              tls,
              verifyIncoming: config.tls.verify_incoming,
              maxConnsPerClient: limits.rpc_max_conns_per_client,
              handshakeTimeoutMs: limits.rpc_handshake_timeout,
            });
          },
          [Tokens.RpcAcceptDispatcher, Tokens.AgentSignal, { optional: true, serviceIdentifier: TlsTokens.Configurator }],
        )
        .inSingletonScope();
    },
    apply({ hooks, services, config, logger }) {
      const tlsConf = services.tryGet(TlsTokens.Configurator);
      hooks.onDial.tapPromise({ stage: Stage.FALLBACK }, (target, ctx) =>
        dialTcp(target, { tls: tlsConf, useTls: config.tls.verify_outgoing, signal: ctx.signal }),
      );
      const pool = services.get(RpcTokens.Pool);
      const registry = services.get(RpcTokens.Endpoints);
      const leadership = services.get(Tokens.Leadership);
      const listener = services.tryGet(RpcTokens.Listener);
      // The advertised RPC address; with port 0 (tests) the port the listener actually got.
      const self = (): string => `${config.advertise_addr}:${listener?.address?.split(':').pop() ?? config.ports.server}`;
      // Resolved per call: the state plugin binds the consensus view after this plugin applied.
      const consensus = () => services.tryGet(Tokens.Consensus);
      registry.registerAll(
        statusEndpoints({
          leader: () => consensus()?.leader() ?? (leadership.isLeader ? self() : ''),
          peers: () => consensus()?.peers() ?? (leadership.isLeader ? [self()] : []),
        }),
      );
      const sessions = new Set<YamuxSession>();
      const single = (conn: Duplex, info: RpcAcceptInfo): true => {
        void serveRpcConn(conn, registry, { logger, signal: info.signal });
        return true;
      };
      const multi = (conn: Duplex, info: RpcAcceptInfo): true => {
        serveYamux(conn, info, registry, logger, sessions);
        return true;
      };
      hooks.onRpcAccept.for(RpcType.Consul).tap({}, single);
      hooks.onRpcAccept.for(Alpn.RpcConsul).tap({}, single);
      hooks.onRpcAccept.for(RpcType.MultiplexV2).tap({}, multi);
      hooks.onRpcAccept.for(Alpn.RpcMultiplexV2).tap({}, multi);
      return {
        async start({ signal }) {
          if (!listener || config.ports.server < 0) return;
          const addr = await listener.listen(config.bind_addr, config.ports.server, signal);
          logger.info('RPC listening', { address: addr, tls: tlsConf?.mutualTlsCapable() ?? false });
        },
        async stop() {
          await pool.close();
          await listener?.close();
          await Promise.allSettled([...sessions].map((s) => s.close()));
        },
        status: () => ({ listening: listener?.address ?? 'disabled', connections: listener?.connections ?? 0, pooled_sessions: pool.sessions }),
      };
    },
  };
}
