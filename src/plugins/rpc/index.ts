/**
 * `rpc` plugin: the server RPC port (first-byte sniffing, TLS upgrade, native TLS + ALPN,
 * dispatch through `onRpcAccept`) and the default dialer on `onDial` (TCP, optional `0x03` +
 * TLS, type byte). Owns the `limits` and `performance` configuration sections.
 */
import type { AgentConfig } from '../../core/config/schema.js';
import { Stage } from '../../core/hooks.js';
import type { AgentPlugin } from '../../core/plugin.js';
import { Tokens, serviceToken } from '../../core/tokens.js';
import type { RpcAcceptDispatcher } from '../../core/kernel-services.js';
import { TlsTokens, type TlsConfigurator } from '../tls/index.js';
import { RpcListener } from './listener.js';
import { dialTcp } from './tcp-dialer.js';

export { RpcErrorCode } from './errors.js';
export { RpcListener, type RpcListenerOptions, type RpcListenerStats } from './listener.js';
export { dialTcp, splitHostPort, type TcpDialOptions } from './tcp-dialer.js';

/** Tokens of the `rpc` plugin's services. */
export const RpcTokens = Object.freeze({
  /** The RPC port listener (bound on servers). */
  Listener: serviceToken<RpcListener>('rpc.Listener'),
});

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
          rpc_client_timeout: { kind: 'duration', default: '60s', doc: 'Deadline of one outgoing RPC (blocking queries add their wait and rpc_hold_timeout).' },
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
      const listener = services.tryGet(RpcTokens.Listener);
      if (!listener) return;
      return {
        async start({ signal }) {
          if (config.ports.server < 0) return;
          const addr = await listener.listen(config.bind_addr, config.ports.server, signal);
          logger.info('RPC listening', { address: addr, tls: tlsConf?.mutualTlsCapable() ?? false });
        },
        async stop() {
          await listener.close();
        },
        status: () => ({ listening: listener.address ?? 'disabled', connections: listener.connections }),
      };
    },
  };
}
