/**
 * The `gossip` plugin: a LAN pool per datacenter and, on servers, the WAN pool of all servers,
 * speaking HashiCorp memberlist 0.2.2 + serf 0.9.4 on the wire, with Consul's server tags so
 * HashiCorp tooling recognises meshfed servers (wanfed-reference.md §3.5). Membership changes are
 * published through the kernel's `onMembership` hook (the router plugin turns them into per-DC
 * server lists); nothing else reads the pools.
 *
 * The WAN pool's transport is swappable: a plugin that binds {@link GossipTokens.WanTransport}
 * (the wanfed plugin: gossip through mesh gateways) replaces the default UDP+TCP transport.
 *
 * @example
 * ```ts
 * import { createAgent } from 'meshfed';
 * import { tls } from 'meshfed/plugins/tls';
 * import { rpc } from 'meshfed/plugins/rpc';
 * import { gossip, GossipTokens } from 'meshfed/plugins/gossip';
 * const agent = await createAgent({
 *   config: { server: true, node_name: 's1', bind_addr: '127.0.0.1', ports: { server: 0, serf_lan: 0, serf_wan: 0 } },
 *   plugins: [tls({ dev: true }), rpc(), gossip()],
 * });
 * await agent.start();
 * agent.services.get(GossipTokens.Lan).members(); // [{ name: 's1', status: 'alive', tags: { role: 'consul', … } }]
 * await agent.stop();
 * ```
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { errorMessage, MeshfedError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { AgentPlugin } from '../../core/plugin.js';
import type { AgentConfig } from '../../core/config/schema.js';
import { serviceToken, Tokens } from '../../core/tokens.js';
import type { Member, MembershipPool } from '../../core/types.js';
import { MESHFED_VERSION } from '../../core/version.js';
import { HttpTokens } from '../http/index.js';
import { RpcTokens } from '../rpc/index.js';
import { TlsTokens } from '../tls/index.js';
import { LAN_TIMINGS, WAN_TIMINGS, type MemberlistTimings } from './memberlist/index.js';
import { GossipErrorCode, GossipPool } from './pool.js';
import type { SerfEvent, SerfMember, SerfUserEvent } from './serf/types.js';
import { createNetTransport, type GossipTransport } from './transport/index.js';
import { Keyring } from './wire/index.js';
import { membersJson } from './members-json.js';

export { GossipPool, GossipErrorCode, type GossipPoolOptions, type RetryJoinOptions } from './pool.js';
export { membersJson, memberStatusCode, memberStatusName, type AgentMemberJson } from './members-json.js';

/** Builds the WAN pool's transport from the default one (the wanfed plugin binds this). */
export type WanTransportFactory = (inner: GossipTransport) => GossipTransport;

/** Tokens of the `gossip` plugin's services. */
export const GossipTokens = Object.freeze({
  /** The LAN pool. */
  Lan: serviceToken<GossipPool>('gossip.Lan'),
  /** The WAN pool (servers only; unbound on clients). */
  Wan: serviceToken<GossipPool>('gossip.Wan'),
  /** Optional: wraps the WAN pool's default transport (bind it in your plugin's `register`). */
  WanTransport: serviceToken<WanTransportFactory>('gossip.WanTransport'),
});

/** Where the running pools live (bound per agent in `register`). */
const POOLS = serviceToken<{ lan?: GossipPool; wan?: GossipPool }>('gossip.Pools');

/** Consul's serf protocol tags: `vsn` 2, understood 2..3, raft 3. */
const CONSUL_VSN = { vsn: '2', vsn_min: '2', vsn_max: '3', raft_vsn: '3' } as const;
/** Consul's lower bound of `reconnect_timeout`. */
const MIN_RECONNECT = '8m';

/** The resolved gossip sections (durations in ms). */
interface GossipTuning {
  readonly probe_interval?: number;
  readonly probe_timeout?: number;
  readonly gossip_interval?: number;
  readonly gossip_nodes?: number;
  readonly suspicion_mult?: number;
  readonly retransmit_mult?: number;
  readonly push_pull_interval?: number;
}

interface GossipConfig {
  readonly encrypt?: string;
  readonly encrypt_verify_incoming: boolean;
  readonly encrypt_verify_outgoing: boolean;
  readonly reconnect_timeout: number;
  readonly reconnect_timeout_wan: number;
  readonly retry_max: number;
  readonly retry_max_wan: number;
  readonly advertise_addr_wan?: string;
  readonly serf_lan?: string;
  readonly serf_wan?: string;
  readonly node_id?: string;
  readonly gossip_lan: GossipTuning;
  readonly gossip_wan: GossipTuning;
}

function gossipConfig(config: AgentConfig): GossipConfig {
  const c = config as unknown as Record<string, unknown>;
  return {
    encrypt: c['encrypt'] as string | undefined,
    encrypt_verify_incoming: c['encrypt_verify_incoming'] as boolean,
    encrypt_verify_outgoing: c['encrypt_verify_outgoing'] as boolean,
    reconnect_timeout: c['reconnect_timeout'] as number,
    reconnect_timeout_wan: c['reconnect_timeout_wan'] as number,
    retry_max: c['retry_max'] as number,
    retry_max_wan: c['retry_max_wan'] as number,
    advertise_addr_wan: c['advertise_addr_wan'] as string | undefined,
    serf_lan: c['serf_lan'] as string | undefined,
    serf_wan: c['serf_wan'] as string | undefined,
    node_id: c['node_id'] as string | undefined,
    gossip_lan: (c['gossip_lan'] ?? {}),
    gossip_wan: (c['gossip_wan'] ?? {}),
  };
}

const tuningSchema = (what: string) =>
  ({
    kind: 'object',
    doc: `memberlist timings of the ${what} pool (defaults: memberlist's ${what === 'LAN' ? 'DefaultLANConfig' : 'DefaultWANConfig'}).`,
    fields: {
      probe_interval: { kind: 'duration', min: '1ms', doc: 'One member is probed this often.' },
      probe_timeout: { kind: 'duration', min: '1ms', doc: 'A direct probe waits this long before indirect probes start.' },
      gossip_interval: { kind: 'duration', min: '1ms', doc: 'Broadcasts are gossiped this often.' },
      gossip_nodes: { kind: 'int', min: 1, max: 64, doc: 'Members each gossip round reaches.' },
      suspicion_mult: { kind: 'int', min: 1, max: 100, doc: 'Suspicion timeout = suspicion_mult × log10(members) × probe_interval.' },
      retransmit_mult: { kind: 'int', min: 1, max: 100, doc: 'Broadcasts are sent retransmit_mult × log10(members + 1) times.' },
      push_pull_interval: { kind: 'duration', min: '1ms', doc: 'Full state sync with one random member this often.' },
    },
  }) as const;

function timings(base: MemberlistTimings, t: GossipTuning): MemberlistTimings {
  return {
    ...base,
    ...(t.probe_interval !== undefined ? { probeIntervalMs: t.probe_interval } : {}),
    ...(t.probe_timeout !== undefined ? { probeTimeoutMs: t.probe_timeout } : {}),
    ...(t.gossip_interval !== undefined ? { gossipIntervalMs: t.gossip_interval } : {}),
    ...(t.gossip_nodes !== undefined ? { gossipNodes: t.gossip_nodes } : {}),
    ...(t.suspicion_mult !== undefined ? { suspicionMult: t.suspicion_mult } : {}),
    ...(t.retransmit_mult !== undefined ? { retransmitMult: t.retransmit_mult } : {}),
    ...(t.push_pull_interval !== undefined ? { pushPullIntervalMs: t.push_pull_interval } : {}),
  };
}

function parseKey(encrypt: string): Buffer {
  const key = Buffer.from(encrypt, 'base64');
  if (key.toString('base64') !== encrypt.replace(/\s/g, '') || ![16, 24, 32].includes(key.length)) {
    throw new MeshfedError('MESHFED_ERR_CONFIG', `encrypt: expected a base64 key of 16, 24 or 32 bytes (e.g. from \`meshfed keygen\`), got ${key.length} bytes`);
  }
  return key;
}

/** This agent's node ID: `node_id`, else persisted in `<data_dir>/node-id`, else random per start. */
function nodeId(config: AgentConfig, g: GossipConfig, logger: Logger): string {
  if (g.node_id) return g.node_id;
  if (!config.data_dir) return randomUUID();
  const file = join(config.data_dir, 'node-id');
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    const id = randomUUID();
    try {
      mkdirSync(config.data_dir, { recursive: true });
      writeFileSync(file, `${id}\n`, { mode: 0o600 });
    } catch (err) {
      logger.warn(`could not persist the node ID in ${file}: ${errorMessage(err)}`);
    }
    return id;
  }
}

/** Options of {@link gossip}. */
export interface GossipPluginOptions {
  /** Called with every serf user event of either pool (besides the log line). */
  readonly onUserEvent?: (pool: MembershipPool, event: SerfUserEvent) => void;
  /** Interval of the LAN → WAN flood join check (default 60 s, as Consul). */
  readonly floodIntervalMs?: number;
  /** serf timers (tests shorten reap and reconnect intervals). */
  readonly serf?: GossipPoolSerfOverrides;
}

/** serf settings a test may shorten. */
export interface GossipPoolSerfOverrides {
  readonly reapIntervalMs?: number;
  readonly reconnectIntervalMs?: number;
  readonly tombstoneTimeoutMs?: number;
  readonly leavePropagateDelayMs?: number;
  readonly broadcastTimeoutMs?: number;
}

/** Whether a serf member is a Consul-style server of `dc` (for the LAN merge and the flood join). */
function isServer(m: Pick<Member, 'tags'>): boolean {
  return m.tags['role'] === 'consul';
}

/**
 * The gossip plugin (LAN pool on `ports.serf_lan`; WAN pool on `ports.serf_wan` on servers).
 * Requires the `rpc` plugin for the server `port` tag.
 */
export function gossip(options: GossipPluginOptions = {}): AgentPlugin {
  return {
    name: 'gossip',
    requires: ['rpc'],
    configSchema: {
      encrypt: { kind: 'string', doc: 'Base64 gossip encryption key (16, 24 or 32 bytes); both pools encrypt with it.' },
      encrypt_verify_incoming: { kind: 'bool', default: true, doc: 'Refuse unencrypted gossip when `encrypt` is set (turn off only while rolling encryption out).' },
      encrypt_verify_outgoing: { kind: 'bool', default: true, doc: 'Encrypt outgoing gossip when `encrypt` is set.' },
      reconnect_timeout: { kind: 'duration', default: '72h', min: MIN_RECONNECT, doc: 'Failed LAN members are forgotten (reaped) after this long.' },
      reconnect_timeout_wan: { kind: 'duration', default: '72h', min: MIN_RECONNECT, doc: 'Failed WAN members are forgotten after this long.' },
      retry_max: { kind: 'int', default: 0, min: 0, doc: 'Give up `retry_join` after this many attempts (0 = never).' },
      retry_max_wan: { kind: 'int', default: 0, min: 0, doc: 'Give up `retry_join_wan` after this many attempts (0 = never).' },
      advertise_addr_wan: { kind: 'string', doc: 'Address advertised in the WAN pool (default `advertise_addr`).' },
      serf_lan: { kind: 'string', doc: 'Address the LAN gossip port binds to (default `bind_addr`).' },
      serf_wan: { kind: 'string', doc: 'Address the WAN gossip port binds to (default `bind_addr`).' },
      node_id: { kind: 'string', doc: "This node's unique ID (tag `id`); default: persisted in `<data_dir>/node-id`, random without a data_dir." },
      gossip_lan: tuningSchema('LAN'),
      gossip_wan: tuningSchema('WAN'),
    },
    validate({ config }) {
      const g = gossipConfig(config);
      if (g.encrypt !== undefined) parseKey(g.encrypt);
      if (!config.node_name) throw new MeshfedError('MESHFED_ERR_CONFIG', 'gossip: node_name is required (members are named by it)');
    },
    register({ container, config }) {
      const holder: { lan?: GossipPool; wan?: GossipPool } = {};
      container.bind(POOLS).toConstantValue(holder);
      const get = (pool: MembershipPool) => (): GossipPool => {
        const p = holder[pool];
        if (p) return p;
        throw new MeshfedError(
          GossipErrorCode.NOT_RUNNING,
          pool === 'wan' && !config.server ? 'gossip: clients have no WAN pool' : `gossip: the ${pool} pool is not running (resolve it after agent.start())`,
        );
      };
      container.bind(GossipTokens.Lan).toDynamicValue(get('lan')).inTransientScope();
      container.bind(GossipTokens.Wan).toDynamicValue(get('wan')).inTransientScope();
    },
    apply({ services, config, logger, signal }) {
      const g = gossipConfig(config);
      const membership = services.get(Tokens.MembershipEmitter);
      const wanFactory = services.tryGet(GossipTokens.WanTransport);
      const listener = services.tryGet(RpcTokens.Listener);
      const tlsConf = services.tryGet(TlsTokens.Configurator);
      const keyring = g.encrypt !== undefined ? new Keyring(parseKey(g.encrypt)) : undefined;
      const id = nodeId(config, g, logger);
      const pools = services.get(POOLS);
      const onEvent = (pool: MembershipPool) => (e: SerfEvent) => {
        if (e.kind === 'member') {
          membership.emit({ type: e.type, pool, members: e.members });
          if (pool === 'lan' && (e.type === 'join' || e.type === 'update')) flood();
        } else if (e.kind === 'user') {
          logger.info(`${pool} user event: ${e.name}`, { ltime: String(e.ltime), bytes: e.payload.length });
          options.onUserEvent?.(pool, e);
        }
      };
      // LAN servers not in the WAN pool are joined into it (Consul's flood joiner).
      const flood = (): void => {
        const lan = pools.lan;
        const wan = pools.wan;
        if (!lan || !wan) return;
        const inWan = new Set(wan.members().filter((m) => m.status === 'alive').map((m) => m.name));
        for (const m of lan.members()) {
          if (m.status !== 'alive' || !isServer(m) || m.tags['dc'] !== config.datacenter) continue;
          const wanName = `${m.name}.${config.datacenter}`;
          const port = Number(m.tags['wan_join_port']);
          if (inWan.has(wanName) || !Number.isInteger(port) || port <= 0) continue;
          const host = m.address.includes(':') ? `[${m.address}]` : m.address;
          void wan.join([`${wanName}/${host}:${port}`]).then(
            () => logger.debug(`flood-joined ${wanName} into the WAN pool`),
            (err: unknown) => logger.debug(`flood join of ${wanName} failed: ${errorMessage(err)}`),
          );
        }
      };
      let floodTimer: NodeJS.Timeout | undefined;

      const baseTags = (): Record<string, string> => {
        const tags: Record<string, string> = {
          role: config.server ? 'consul' : 'node',
          dc: config.datacenter,
          segment: '',
          id,
          ...CONSUL_VSN,
          build: `${MESHFED_VERSION}:meshfed`,
        };
        if (config.server) {
          const rpcPort = Number(listener?.address?.split(':').pop() ?? config.ports.server);
          tags['port'] = String(rpcPort);
          tags['ft_fs'] = '1';
          if (tlsConf?.mutualTlsCapable()) tags['use_tls'] = '1';
          if (config.ports.grpc > 0) tags['grpc_port'] = String(config.ports.grpc);
        }
        return tags;
      };

      const startPool = async (pool: MembershipPool, extraTags: Record<string, string>): Promise<GossipPool> => {
        const isWan = pool === 'wan';
        const bindHost = (isWan ? g.serf_wan : g.serf_lan) ?? config.bind_addr;
        const port = isWan ? config.ports.serf_wan : config.ports.serf_lan;
        const plog = logger.child({ component: `gossip.${pool}` });
        const inner = await createNetTransport({ bindAddr: bindHost, bindPort: port, logger: plog });
        const transport = isWan && wanFactory ? wanFactory(inner) : inner;
        const advertiseAddr = isWan ? (g.advertise_addr_wan ?? config.advertise_addr) : config.advertise_addr;
        return GossipPool.create({
          pool,
          name: isWan ? `${config.node_name}.${config.datacenter}` : config.node_name,
          transport,
          ...(advertiseAddr && advertiseAddr !== '0.0.0.0' ? { advertiseAddr } : {}),
          timings: timings(isWan ? WAN_TIMINGS : LAN_TIMINGS, isWan ? g.gossip_wan : g.gossip_lan),
          tags: { ...baseTags(), ...extraTags },
          keyring,
          verifyIncoming: g.encrypt_verify_incoming,
          verifyOutgoing: g.encrypt_verify_outgoing,
          reconnectTimeoutMs: isWan ? g.reconnect_timeout_wan : g.reconnect_timeout,
          requireNodeNames: isWan && transport.capabilities.nodeAware,
          merge: isWan
            ? (ms: SerfMember[]) => {
                const bad = ms.find((m) => !isServer(m));
                return bad ? `Member '${bad.name}' is not a server` : undefined;
              }
            : (ms: SerfMember[]) => {
                const bad = ms.find((m) => m.tags['dc'] !== undefined && m.tags['dc'] !== config.datacenter);
                return bad ? `Member '${bad.name}' part of wrong datacenter '${bad.tags['dc']}'` : undefined;
              },
          onEvent: onEvent(pool),
          ...(options.serf ? { serf: options.serf } : {}),
          logger: plog,
        });
      };

      const joins: Promise<unknown>[] = [];
      const runtimeSignal = new AbortController();
      signal.addEventListener('abort', () => runtimeSignal.abort(), { once: true });

      const http = services.tryGet(HttpTokens.HttpApi);
      http?.route('GET', '/v1/agent/members', (req) => {
        const wan = req.query.get('wan');
        const want = wan !== null && wan !== '0' && wan !== 'false' ? pools.wan : pools.lan;
        if (!want) return { status: 400, json: { error: wan !== null ? 'WAN members are only available on servers' : 'the LAN pool is not running' } };
        return { json: membersJson(want.members()) };
      });

      return {
        async start() {
          if (config.server && config.ports.serf_wan >= 0) pools.wan = await startPool('wan', {});
          const wanPort = pools.wan ? Number(pools.wan.advertiseAddress.split(':').pop()) : undefined;
          pools.lan = await startPool('lan', wanPort !== undefined ? { wan_join_port: String(wanPort) } : {});
          logger.info('gossip pools started', { lan: pools.lan.advertiseAddress, wan: pools.wan?.advertiseAddress ?? 'disabled', encrypted: keyring !== undefined });
          if (config.retry_join.length > 0) {
            joins.push(pools.lan.retryJoin({ addresses: config.retry_join, intervalMs: config.retry_interval, maxAttempts: g.retry_max, signal: runtimeSignal.signal }));
          }
          if (pools.wan && config.retry_join_wan.length > 0) {
            joins.push(pools.wan.retryJoin({ addresses: config.retry_join_wan, intervalMs: config.retry_interval_wan, maxAttempts: g.retry_max_wan, signal: runtimeSignal.signal }));
          }
          if (pools.wan) {
            floodTimer = setInterval(flood, options.floodIntervalMs ?? 60_000);
            floodTimer.unref();
          }
        },
        async stop() {
          runtimeSignal.abort();
          const running = { ...pools };
          delete pools.lan;
          delete pools.wan;
          if (floodTimer) clearInterval(floodTimer);
          // Leave gracefully (members end `left`, not `failed`), WAN first as Consul does.
          for (const p of [running.wan, running.lan]) {
            if (!p) continue;
            try {
              await p.leave();
            } catch (err) {
              logger.warn(`leaving the ${p.pool} pool failed: ${errorMessage(err)}`);
            }
            await p.shutdown();
          }
          await Promise.allSettled(joins);
        },
        status: () => ({ lan: pools.lan?.stats() ?? 'not started', wan: pools.wan?.stats() ?? (config.server ? 'not started' : 'clients have no WAN pool'), encrypted: keyring !== undefined }),
      };
    },
  };
}
