/**
 * `router` plugin (spec §11): which server takes an RPC for a datacenter. It listens to
 * `onMembership` (LAN pool → area `lan`, WAN pool → area `wan`) and keeps, per area and DC, a
 * {@link ServerManager} whose front server is the route; managers rebalance every 2–3 minutes
 * (longer in big clusters) by pinging servers through the RPC pool (`Status.Ping`, through mesh
 * gateways for remote DCs). Server changes are pushed to the gRPC resolver builder, whose custom
 * scheme lets gRPC channels target `<scheme>:///server.<dc>`.
 *
 * @example
 * ```ts
 * import { createAgent, Tokens } from 'meshfed';
 * import { rpc } from 'meshfed/plugins/rpc';
 * import { router, RouterTokens } from 'meshfed/plugins/router';
 * import { tls } from 'meshfed/plugins/tls';
 *
 * const agent = await createAgent({
 *   config: { server: true, bind_addr: '127.0.0.1', ports: { server: 0 } },
 *   plugins: [tls({ dev: true }), rpc(), router()],
 * });
 * await agent.start();
 * // The gossip layer normally emits this; any plugin may.
 * agent.services.get(Tokens.MembershipEmitter).emit({
 *   type: 'join',
 *   pool: 'wan',
 *   members: [{ name: 's1.dc2', address: '10.0.0.2', port: 8302, status: 'alive', tags: { role: 'consul', dc: 'dc2', id: 'id-1', port: '8300' } }],
 * });
 * const route = agent.services.get(RouterTokens.Router).findRoute('dc2'); // { server: { addr: '10.0.0.2:8300', … }, manager }
 * await agent.stop();
 * ```
 */
import type { AgentPlugin } from '../../core/plugin.js';
import { serviceToken } from '../../core/tokens.js';
import type { MembershipPool } from '../../core/types.js';
import type { Clock } from '../../core/clock.js';
import { RpcTokens, type ConnPool } from '../rpc/index.js';
import { GrpcResolverBuilder } from './grpc-resolver.js';
import type { ServerPinger } from './manager.js';
import { AREA_LAN, AREA_WAN, Router } from './router.js';

export { ErrDCNotAvailable, ErrNoDCPath, RouterError, RouterErrorCode } from './errors.js';
export { describeServer, inspectServer, parseServer, serverParseError, type ServerMeta, type ServerParseResult } from './server-metadata.js';
export {
  CLIENT_RPC_JITTER_FRACTION,
  CLIENT_RPC_MIN_REUSE_DURATION_MS,
  NEW_REBALANCE_CONNS_PER_SEC_PER_SERVER,
  ServerManager,
  rebalanceTimeoutMs,
  shuffled,
  type ServerManagerOptions,
  type ServerPinger,
} from './manager.js';
export { AREA_LAN, AREA_WAN, Router, noOpServerTracker, type AreaId, type AreaOptions, type Route, type RouterOptions, type ServerTracker } from './router.js';
export { GLOBAL_ADDRS_ATTRIBUTE, GrpcResolverBuilder, type GrpcResolverOptions, type RemoteEndpointsProvider, type ResolvedEndpoint, type ResolvedServerAddress } from './grpc-resolver.js';

/** Tokens of the `router` plugin's services. */
export const RouterTokens = Object.freeze({
  /** The router: routes, datacenters, server lists. */
  Router: serviceToken<Router>('router.Router'),
  /** The gRPC resolver builder (a server tracker registered with the router); target `builder.target(dc)`. */
  GrpcResolver: serviceToken<GrpcResolverBuilder>('router.GrpcResolver'),
});

/** Options of {@link router}. */
export interface RouterPluginOptions {
  /** Time source of the rebalance timers (tests pass a `FakeClock`). */
  readonly clock?: Clock;
  /** Random source of shuffles and jitter. */
  readonly random?: () => number;
  /** Override the pinger (default: `Status.Ping` through the RPC pool). */
  readonly pinger?: ServerPinger;
  /** gRPC scheme to register (default `meshfed-<random>`, unique per agent). */
  readonly grpcScheme?: string;
}

/** A pinger doing `Status.Ping` through the RPC connection pool (spec §11.2). */
export function poolPinger(pool: ConnPool): ServerPinger {
  return {
    async ping(s, { signal }) {
      await pool.ping({ datacenter: s.datacenter, node: s.shortName, address: s.addr }, { signal });
      return true;
    },
  };
}

/**
 * The router plugin. Requires `rpc` (its pool pings servers). Binds {@link RouterTokens.Router}
 * and {@link RouterTokens.GrpcResolver}; servers get the `lan` and `wan` areas, clients `lan`.
 * Member counts for the rebalance interval come from the membership events themselves (joined
 * or updated members count until they are reaped, like serf's member list).
 */
export function router(options: RouterPluginOptions = {}): AgentPlugin {
  return {
    name: 'router',
    requires: ['rpc'],
    register({ container, config, logger }) {
      container
        .bind(RouterTokens.Router)
        .toResolvedValue(
          (pool: ConnPool) =>
            new Router({
              datacenter: config.datacenter,
              serverName: config.server ? config.node_name : undefined,
              pinger: options.pinger ?? poolPinger(pool),
              ...(options.clock ? { clock: options.clock } : {}),
              ...(options.random ? { random: options.random } : {}),
              logger,
            }),
          [RpcTokens.Pool],
        )
        .inSingletonScope();
      container
        .bind(RouterTokens.GrpcResolver)
        .toResolvedValue(
          () =>
            new GrpcResolverBuilder({
              datacenter: config.datacenter,
              agentType: config.server ? 'server' : 'client',
              ...(options.grpcScheme ? { scheme: options.grpcScheme } : {}),
              ...(options.random ? { random: options.random } : {}),
              logger: logger.child({ component: 'router.grpc' }),
            }),
          [],
        )
        .inSingletonScope();
    },
    apply({ hooks, services, config }) {
      const r = services.get(RouterTokens.Router);
      const builder = services.get(RouterTokens.GrpcResolver);
      const unregisterGrpc = r.registerTracker(builder);
      // The connection pool is a tracker too: sessions to a removed server are dropped at once.
      const pool = services.get(RpcTokens.Pool);
      const unregisterPool = r.registerTracker({
        newRebalancer: () => () => undefined,
        addServer: () => undefined,
        removeServer: (_area, s) => {
          if (!r.managers(s.datacenter).some((m) => m.servers().some((x) => x.name === s.name))) pool.forget(s.shortName);
        },
      });
      const unregister = (): void => {
        unregisterGrpc();
        unregisterPool();
      };
      const members: Record<MembershipPool, Set<string>> = { lan: new Set(), wan: new Set() };
      r.addArea(AREA_LAN, { numNodes: () => members.lan.size });
      if (config.server) r.addArea(AREA_WAN, { numNodes: () => members.wan.size });
      hooks.onMembership.tap({}, (event) => {
        const names = members[event.pool];
        for (const m of event.members) {
          if (event.type === 'reap') names.delete(m.name);
          else names.add(m.name);
        }
        r.handleMembership(event);
      });
      return {
        stop() {
          unregister();
          r.shutdown();
          builder.shutdown();
        },
        status: () => ({
          datacenters: r.getDatacenters(),
          areas: r.summary(),
          grpc_scheme: builder.scheme,
        }),
      };
    },
  };
}
