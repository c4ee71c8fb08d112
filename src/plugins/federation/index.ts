/**
 * The `federation` plugin (servers): the brain of WAN federation (wanfed-reference §4–§8).
 *
 * - `FederationState.Apply/Get/List/ListMeshGateways` over RPC and the internal HTTP endpoints
 *   `/v1/internal/federation-states`, `/v1/internal/federation-states/mesh-gateways`,
 *   `/v1/internal/federation-state/<dc>`, gated by the `ft_fs` serf tag (sticky) and ACLs.
 * - On the leader of every datacenter, **anti-entropy** pushes the datacenter's mesh gateways into
 *   the primary (debounced by `federation.anti_entropy_interval`); on the primary's leader,
 *   **pruning** drops records of datacenters that left the WAN pool; on a secondary's leader,
 *   **replication** copies every record from the primary.
 * - On every server, the **gateway locator** decides which gateway to dial for any datacenter
 *   (candidates through the `onGatewayList` hook); `primary_gateways` seed its fallback list.
 * - `GET /v1/meshfed/federation` shows the feature flag, the locator's mode and lists (with where
 *   each address came from), replication and anti-entropy status.
 *
 * @example
 * ```ts
 * import { createAgent } from 'meshfed';
 * import { tls } from 'meshfed/plugins/tls';
 * import { rpc } from 'meshfed/plugins/rpc';
 * import { http } from 'meshfed/plugins/http';
 * import { gossip } from 'meshfed/plugins/gossip';
 * import { router } from 'meshfed/plugins/router';
 * import { state } from 'meshfed/plugins/state';
 * import { federation, FederationTokens } from 'meshfed/plugins/federation';
 * const agent = await createAgent({
 *   config: { server: true, node_name: 's1', datacenter: 'dc1', data_dir: '/var/lib/meshfed', federation: { anti_entropy_interval: '0s' } },
 *   plugins: [tls({ dev: true }), rpc(), http(), gossip(), router(), state(), federation()],
 * });
 * await agent.start();
 * agent.services.get(FederationTokens.Locator).status(); // { mode: 'primary', local: [...], primary: [...], … }
 * ```
 */
import type { AgentPlugin } from '../../core/plugin.js';
import { serviceToken, Tokens } from '../../core/tokens.js';
import { AclTokens } from '../acl/index.js';
import { HttpTokens } from '../http/index.js';
import { RouterTokens, type Router } from '../router/index.js';
import { RpcTokens } from '../rpc/index.js';
import { StateTokens, type StateBackend, type StateServer } from '../state/index.js';
import type { StateStore } from '../state/store/index.js';
import type { GatewayListResolver } from '../../core/kernel-services.js';
import { FederationAntiEntropy } from './anti-entropy.js';
import { allowAllAuthorizer, federationEndpoints, federationRoutes, type AuthorizeFn } from './endpoints.js';
import { FederationFeature } from './feature.js';
import { FederationStateReplicator } from './replication.js';
import { discoverPrimaryGateways } from './discovery.js';
import { GatewayLocator } from './locator.js';

export { FederationAntiEntropy, isSameFederationState, DEFAULT_ANTI_ENTROPY_INTERVAL_MS, DEFAULT_PRUNE_INTERVAL_MS, type AntiEntropyDetails, type AntiEntropyOptions } from './anti-entropy.js';
export { allowAllAuthorizer, federationEndpoints, federationRoutes, MAX_GATEWAYS_PER_STATE, type AuthorizeFn, type FederationAuthorizer, type FederationEndpointsOptions } from './endpoints.js';
export { ErrFederationStatesNotSupported, FederationFeature, type FederationFeatureOptions, type FederationRoutineOptions } from './feature.js';
export { ErrReplicationNotSupported, FederationStateReplicator, type ReplicationStatus, type ReplicatorOptions } from './replication.js';
export * as federationStructs from './structs.js';
export { GatewayLocator, bestAddress, isUsableFederationGateway, FAILURES_BEFORE_DIALING_DIRECTLY, WAN_FEDERATION_META_KEY, type GatewayLocatorOptions, type GatewayLocatorStatus, type PrimaryDialMode } from './locator.js';
export { discoverPrimaryGateways, type DiscoverPrimaryGatewaysOptions } from './discovery.js';

/** Tokens of the `federation` plugin's services. */
export const FederationTokens = Object.freeze({
  /** The sticky feature flag. */
  Feature: serviceToken<FederationFeature>('federation.Feature'),
  /** This server's anti-entropy (and pruning) routine; runs while it leads. */
  AntiEntropy: serviceToken<FederationAntiEntropy>('federation.AntiEntropy'),
  /** The gateway locator: which mesh gateway to dial for a datacenter (every server). */
  Locator: serviceToken<GatewayLocator>('federation.Locator'),
});

/** Options of {@link federation}. */
export interface FederationPluginOptions {
  /**
   * How a token is checked. Default: the `acl` plugin's resolver when present, else everything
   * is allowed.
   */
  readonly authorize?: AuthorizeFn;
  /** Run anti-entropy on leaders (default true; tests drive it by hand, as Consul's do). */
  readonly antiEntropy?: boolean;
}

interface FederationConfig {
  readonly anti_entropy_interval: number;
  readonly prune_interval: number;
  readonly replication_rate: number;
  readonly replication_burst: number;
  readonly replication_apply_batch: number;
}

/** The federation plugin. Requires `state` and `router`. No-op on clients. */
export function federation(options: FederationPluginOptions = {}): AgentPlugin {
  return {
    name: 'federation',
    requires: ['state', 'router'],
    configSchema: {
      federation: {
        kind: 'object',
        doc: 'Federation-state anti-entropy and replication (meshfed settings; Consul hard-codes these).',
        fields: {
          anti_entropy_interval: { kind: 'duration', default: '5s', doc: 'Debounce of anti-entropy syncs ("0s" = push every gateway change at once).' },
          prune_interval: { kind: 'duration', default: '1h', min: '1ms', doc: 'How often the primary prunes records of datacenters that left the WAN pool.' },
          replication_rate: { kind: 'int', default: 4, min: 0, doc: 'Replication rounds per second (0 = unlimited; Consul: 1); idle rounds block on the primary, so this only bounds bursts of changes.' },
          replication_burst: { kind: 'int', default: 10, min: 1, doc: 'Rounds that may run back to back before the rate applies (Consul: 5).' },
          replication_apply_batch: { kind: 'int', default: 128, min: 1, doc: 'Replicated records written concurrently (group-committed).' },
        },
      },
    },
    register({ container, config, logger }) {
      if (!config.server) return;
      container.bind(FederationTokens.Feature).toConstantValue(new FederationFeature({ datacenter: config.datacenter, primaryDatacenter: config.primary_datacenter, node: config.node_name }));
      const fc = (config as unknown as { federation: FederationConfig }).federation;
      container
        .bind(FederationTokens.AntiEntropy)
        .toResolvedValue(
          (feature: FederationFeature, server: StateServer, router: Router) =>
            new FederationAntiEntropy({
              datacenter: config.datacenter,
              primaryDatacenter: config.primary_datacenter,
              server,
              feature,
              token: () => config.acl.tokens.replication ?? '',
              logger: logger.child({ component: 'federation.anti-entropy' }),
              intervalMs: fc.anti_entropy_interval,
              pruneIntervalMs: fc.prune_interval,
              hasDatacenter: (dc) => router.hasDatacenter(dc),
            }),
          [FederationTokens.Feature, StateTokens.Server, RouterTokens.Router],
        )
        .inSingletonScope();
      container
        .bind(FederationTokens.Locator)
        .toResolvedValue(
          (feature: FederationFeature, store: StateStore, backend: StateBackend, gatewayLists: GatewayListResolver) =>
            new GatewayLocator({
              datacenter: config.datacenter,
              primaryDatacenter: config.primary_datacenter,
              store,
              logger: logger.child({ component: 'gateway_locator' }),
              gatewayLists,
              // a server's local store is current once it leads or knows a leader
              isLocalStateReady: () => backend.isLeader() || backend.leader() !== undefined,
              onFederationStatesSeen: () => feature.markSupported(),
            }),
          [FederationTokens.Feature, StateTokens.Store, StateTokens.Backend, Tokens.GatewayListResolver],
        )
        .inSingletonScope();
    },
    apply({ config, services, hooks, logger }) {
      if (!config.server) return;
      const fc = (config as unknown as { federation: FederationConfig }).federation;
      const feature = services.get(FederationTokens.Feature);
      const registry = services.get(RpcTokens.Endpoints);
      const server = services.get(StateTokens.Server);
      const primary = config.primary_datacenter;
      const isPrimary = config.datacenter === primary;
      const acl = services.tryGet(AclTokens.Resolver);
      const authorize: AuthorizeFn = options.authorize ?? (acl ? (token) => acl.resolve(token) : () => allowAllAuthorizer);
      const replicationToken = (): string => config.acl.tokens.replication ?? '';
      hooks.onMembership.tap({}, (e) => feature.observe(e));
      registry.registerAll(federationEndpoints({ server, primaryDatacenter: primary, feature, authorize }));
      const api = services.tryGet(HttpTokens.HttpApi);
      if (api) federationRoutes(api, server);

      const antiEntropy = services.get(FederationTokens.AntiEntropy);
      const locator = services.get(FederationTokens.Locator);
      const replicator = isPrimary
        ? undefined
        : new FederationStateReplicator({
            datacenter: config.datacenter,
            primaryDatacenter: primary,
            server,
            feature,
            token: replicationToken,
            logger: logger.child({ component: 'federation.replication' }),
            rate: fc.replication_rate === 0 ? Infinity : fc.replication_rate,
            burst: fc.replication_burst,
            applyBatch: fc.replication_apply_batch,
            onFetch: (err) => locator.setLastFederationStateReplicationError(err, true),
          });
      const routines = new Set<Promise<void>>();
      const spawn = (name: string, p: Promise<void>): void => {
        const tracked = p.catch((err: unknown) => logger.error(`federation ${name} stopped unexpectedly`, { err: String(err) })).finally(() => routines.delete(tracked));
        routines.add(tracked);
      };
      hooks.onLeadershipAcquired.tapPromise({}, async (ctx) => {
        if (server.store.federationStateList().value.length > 0) feature.markSupported();
        if (!isPrimary) {
          locator.setUseReplicationSignal(true);
          locator.setLastFederationStateReplicationError(undefined, false);
        }
        if (options.antiEntropy !== false) spawn('anti-entropy', antiEntropy.run(ctx.signal));
        if (isPrimary) spawn('pruning', antiEntropy.runPruning(ctx.signal));
        if (replicator) spawn('replication', replicator.run(ctx.signal));
      });
      hooks.onLeadershipLost.tapPromise({}, async () => {
        if (isPrimary) return;
        locator.setUseReplicationSignal(false);
        locator.setLastFederationStateReplicationError(undefined, false);
      });
      const statusOf = (): Record<string, unknown> => ({
        datacenter: config.datacenter,
        primary_datacenter: primary,
        federation_states_supported: feature.supported(),
        leader: services.get(Tokens.Leadership).isLeader,
        gateway_locator: locator.status(),
        anti_entropy: antiEntropy.status(),
        ...(replicator ? { replication: replicator.status() } : {}),
        federation_states: server.store.federationStateList().value.map((s) => ({ datacenter: s.Datacenter, gateways: s.MeshGateways.length, modify_index: s.ModifyIndex, primary_modify_index: s.PrimaryModifyIndex })),
      });
      api?.route('GET', '/v1/meshfed/federation', () => ({ json: statusOf() }));
      return {
        start() {
          // every server refreshes its gateway lists from the local federation states
          const agentSignal = services.get(Tokens.AgentSignal);
          spawn('gateway locator', locator.run(agentSignal));
          if (config.primary_gateways.length > 0) {
            spawn(
              'primary gateway discovery',
              discoverPrimaryGateways({
                addrs: config.primary_gateways,
                intervalMs: config.primary_gateways_interval,
                locator,
                signal: agentSignal,
                logger: logger.child({ component: 'gateway_locator' }),
              }),
            );
          }
        },
        async stop() {
          await Promise.allSettled([...routines]);
        },
        status: () => {
          const s = statusOf();
          delete s['federation_states'];
          return s;
        },
      };
    },
  };
}

/** Error codes of the federation plugin. */
export const FederationErrorCode = Object.freeze({
  /** The datacenter does not (yet) support federation states (`ft_fs`). */
  UNSUPPORTED: 'MESHFED_ERR_FEDERATION_UNSUPPORTED',
  /** A replication round failed (the message says why; the next round does a full resync). */
  REPLICATION: 'MESHFED_ERR_FEDERATION_REPLICATION',
} as const);
