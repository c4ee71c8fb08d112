/**
 * A third-party plugin that taps all four named hooks. It shows the shape every plugin has: a
 * factory taking options, returning a plain object with a name, declared capabilities, options
 * validation, a DI registration and taps.
 *
 * - `onGatewayList`: operator pins — gateways listed in `pins` go first, `exclude`d ones are dropped.
 * - `onDial`: reaches a lab datacenter through an in-memory network (a stand-in for a custom transport).
 * - `onRpcAccept`: serves a tiny line-echo protocol under its own ALPN id.
 * - `onXdsBuild`: adds a cluster for a metrics sink to every mesh gateway's resources.
 */
import type { Duplex } from 'node:stream';
import { MeshfedError, serviceToken, Stage, type AgentPlugin } from '../../src/index.js';
import type { MemoryNetwork } from '../../src/testing/index.js';

/** ALPN id of the example's echo protocol. */
export const ECHO_ALPN = 'example/echo';

/** Options of {@link gatewayPinning}. */
export interface GatewayPinningOptions {
  /** Gateways (`host:port`) to prefer, in order. */
  readonly pins?: readonly string[];
  /** Gateways never to use. */
  readonly exclude?: readonly string[];
  /** Datacenter reached through `network` instead of the normal dialers. */
  readonly labDatacenter?: string;
  /** The in-memory network that carries the lab datacenter's connections. */
  readonly network?: MemoryNetwork;
  /** Address of the metrics sink added to gateways' xDS resources. */
  readonly metricsSink?: string;
}

/** Counters this plugin keeps per agent (a service other code can read). */
export interface PinningStats {
  reordered: number;
  dials: number;
  echoed: number;
}

/** Token of the per-agent {@link PinningStats}. */
export const PinningStatsToken = serviceToken<PinningStats>('example.PinningStats');

function serveEcho(conn: Duplex, stats: PinningStats): void {
  conn.on('data', (chunk: Buffer) => {
    stats.echoed++;
    conn.write(chunk);
  });
  conn.on('end', () => conn.end());
  conn.on('error', () => conn.destroy());
}

/**
 * The gateway-pinning example plugin.
 *
 * @example
 * ```ts
 * const agent = await createAgent({
 *   config: { datacenter: 'dc1' },
 *   plugins: [gatewayPinning({ pins: ['10.0.0.9:8443'], exclude: ['10.0.0.1:8443'] })],
 * });
 * await agent.start();
 * ```
 */
export function gatewayPinning(options: GatewayPinningOptions = {}): AgentPlugin {
  const pins = [...(options.pins ?? [])];
  const exclude = new Set(options.exclude ?? []);
  return {
    name: 'example-gateway-pinning',
    provides: ['gateway-pinning'],
    validate() {
      for (const a of [...pins, ...exclude]) {
        if (!/^[^:\s]+:\d{1,5}$/.test(a)) {
          throw new MeshfedError('EXAMPLE_ERR_OPTIONS', `gateway "${a}" is not host:port: write pins and exclusions as "10.0.0.1:8443"`);
        }
      }
      if (options.labDatacenter !== undefined && options.network === undefined) {
        throw new MeshfedError('EXAMPLE_ERR_OPTIONS', 'labDatacenter needs a network to dial through: pass options.network');
      }
    },
    register({ container }) {
      container.bind(PinningStatsToken).toConstantValue({ reordered: 0, dials: 0, echoed: 0 });
    },
    apply({ hooks, services }) {
      const stats = services.get(PinningStatsToken);

      hooks.onGatewayList.tap({ stage: Stage.LATE }, (gateways) => {
        const kept = gateways.filter((g) => !exclude.has(g.address));
        const rank = (a: string): number => (pins.includes(a) ? pins.indexOf(a) : pins.length);
        const sorted = [...kept].sort((a, b) => rank(a.address) - rank(b.address));
        if (sorted.some((g, i) => g !== gateways[i]) || sorted.length !== gateways.length) stats.reordered++;
        return sorted;
      });

      hooks.onDial.tapPromise({}, async (target, ctx) => {
        if (target.datacenter !== options.labDatacenter || !options.network) return undefined;
        stats.dials++;
        return options.network.connect(`${target.node}.${target.datacenter}`, { signal: ctx.signal });
      });

      hooks.onRpcAccept.for(ECHO_ALPN).tap({}, (conn) => {
        serveEcho(conn, stats);
        return true;
      });

      hooks.onXdsBuild.tap({}, (resources, ctx) => {
        if (ctx.proxy.kind !== 'mesh-gateway' || !options.metricsSink) return undefined;
        const [host, port] = options.metricsSink.split(':');
        return {
          ...resources,
          clusters: [
            ...resources.clusters,
            {
              '@type': 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
              name: 'example-metrics-sink',
              type: 'STATIC',
              connect_timeout: '5s',
              load_assignment: {
                cluster_name: 'example-metrics-sink',
                endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: host, port_value: Number(port) } } } }] }],
              },
            },
          ],
        };
      });
    },
  };
}
