/**
 * One highly available datacenter on loopback: a three-member etcd cluster and three meshfed
 * servers s1, s2, s3 of dc1 sharing it (`state.backend = "etcd"`). The servers elect one leader
 * through an etcd lease, gossip in one LAN pool, and follow the leader's command log. A service
 * registered through a follower's HTTP API is forwarded to the leader and becomes readable on
 * every server. Then the leader is stopped (with `--kill-etcd-member`, an etcd member is
 * SIGKILLed first and writes keep working on the remaining quorum): another server takes over and
 * writes continue; the stopped server comes back as a follower.
 *
 *   npm run build && node dist/examples/ha-datacenter/main.js [--ephemeral] [--once] [--kill-etcd-member] [--verbose]
 *
 * - `--ephemeral`: port 0 everywhere (default: HTTP APIs on 8501, 8502, 8503)
 * - `--once`: exit after the demonstration (default: keep running until Ctrl-C)
 * - `--kill-etcd-member`: SIGKILL one etcd member before the failover
 * - `--verbose`: agent logs (level info) on stderr
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createAgent, createLogger, silentLogger, type Agent } from '../../src/index.js';
import { federation } from '../../src/plugins/federation/index.js';
import { gossip, GossipTokens } from '../../src/plugins/gossip/index.js';
import { http, HttpTokens } from '../../src/plugins/http/index.js';
import { router } from '../../src/plugins/router/index.js';
import { rpc, RpcTokens } from '../../src/plugins/rpc/index.js';
import { state, StateTokens } from '../../src/plugins/state/index.js';
import { tls } from '../../src/plugins/tls/index.js';
import { ETCD_BIN, EtcdCluster, waitFor } from '../../src/testing/index.js';

const USAGE = 'usage: node dist/examples/ha-datacenter/main.js [--ephemeral] [--once] [--kill-etcd-member] [--verbose]';
const FLAGS = new Set(['--ephemeral', '--once', '--kill-etcd-member', '--verbose']);
const args = process.argv.slice(2);
for (const a of args) {
  if (a === '-h' || a === '--help') {
    console.log(USAGE);
    process.exit(0);
  }
  if (!FLAGS.has(a)) {
    console.error(`unknown argument "${a}"\n${USAGE}`);
    process.exit(2);
  }
}
const EPHEMERAL = args.includes('--ephemeral');
const ONCE = args.includes('--once');
const KILL_ETCD_MEMBER = args.includes('--kill-etcd-member');
const VERBOSE = args.includes('--verbose');

const HTTP_PORTS: Record<string, number> = { s1: 8501, s2: 8502, s3: 8503 };
/** Gossip timings for one host (memberlist's LAN defaults are for real networks). */
const FAST = { probe_interval: '200ms', probe_timeout: '100ms', gossip_interval: '50ms', push_pull_interval: '2s' };

const started = Date.now();
const log = (msg: string): void => console.log(`[${((Date.now() - started) / 1000).toFixed(1).padStart(5)}s] ${msg}`);

/** Everything this process started, for cleanup. */
const run: { etcd?: EtcdCluster; agents: Map<string, Agent>; leaving: Promise<void>[]; dirs: string[]; stopping?: Promise<void> } = { agents: new Map(), leaving: [], dirs: [] };

async function startServer(name: string, etcd: EtcdCluster, retryJoin: readonly string[]): Promise<Agent> {
  const dataDir = mkdtempSync(join(tmpdir(), `meshfed-ha-${name}-`));
  run.dirs.push(dataDir);
  const agent = await createAgent({
    config: {
      node_name: name,
      datacenter: 'dc1',
      server: true,
      data_dir: dataDir,
      bind_addr: '127.0.0.1',
      ports: { server: 0, serf_lan: 0, serf_wan: 0, http: EPHEMERAL ? 0 : (HTTP_PORTS[name] ?? 0), grpc: -1 },
      gossip_lan: FAST,
      gossip_wan: FAST,
      retry_join: [...retryJoin],
      retry_interval: '200ms',
      state: { backend: 'etcd', etcd: { endpoints: etcd.endpoints(), lease_ttl: '2s', dial_timeout: '2s', request_timeout: '3s' } },
    },
    logger: VERBOSE ? createLogger({ level: 'info' }).child({ node: name }) : silentLogger(),
    // On loopback a graceful leave needs no second of propagation time (serf's default).
    plugins: [tls({ dev: true }), rpc(), http(), gossip({ serf: { leavePropagateDelayMs: 200 } }), router(), state(), federation()],
  });
  await agent.start();
  run.agents.set(name, agent);
  return agent;
}

const api = (a: Agent): string => `http://${a.services.get(HttpTokens.HttpApi).address}`;
const rpcAddr = (a: Agent): string => `127.0.0.1:${a.services.get(RpcTokens.Listener).address?.split(':').pop()}`;
const lanAddr = (a: Agent): string => a.services.get(GossipTokens.Lan).advertiseAddress;
const running = (): Agent[] => [...run.agents.values()];
const nameOfRpc = (addr: string): string => running().find((a) => rpcAddr(a) === addr)?.config.node_name ?? addr;
const aliveLan = (a: Agent): string =>
  a.services
    .get(GossipTokens.Lan)
    .members()
    .filter((m) => m.status === 'alive')
    .map((m) => m.name)
    .sort()
    .join(' ');

async function getJson<T>(url: string): Promise<T> {
  const res = await fetch(url, { signal: AbortSignal.timeout(3000) });
  if (res.status !== 200) throw new Error(`GET ${url}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

/** Wait until every running server answers `/v1/status/leader` with the same, non-empty address; returns the leader agent. */
async function agreedLeader(timeoutMs: number): Promise<Agent> {
  const found = await waitFor(
    async () => {
      const answers = await Promise.all(running().map((a) => getJson<string>(`${api(a)}/v1/status/leader`)));
      const first = answers[0];
      if (!first || !answers.every((x) => x === first)) return undefined;
      const leader = running().find((a) => rpcAddr(a) === first);
      return leader && leader.services.get(StateTokens.Backend).isLeader() ? leader : undefined;
    },
    { timeoutMs, intervalMs: 50, message: 'the servers did not agree on a leader' },
  );
  return found as Agent;
}

/**
 * `PUT /v1/catalog/register` on `a`, retried until it is acknowledged (200) or the deadline
 * passes (registering is idempotent, so retrying a write that was not acknowledged is safe).
 * Prints each failed attempt.
 */
async function register(a: Agent, body: unknown, timeoutMs: number): Promise<number> {
  const t0 = Date.now();
  let last = '';
  let printed = '';
  const report = (what: string, t: number): void => {
    if (what === printed) return; // the same refusal again: say it once
    printed = what;
    log(`..  PUT /v1/catalog/register on ${a.config.node_name}: ${what.length > 140 ? `${what.slice(0, 140)}…` : what} (after ${Date.now() - t} ms); retrying`);
  };
  await waitFor(
    async () => {
      const t = Date.now();
      let res: Response;
      try {
        res = await fetch(`${api(a)}/v1/catalog/register`, { method: 'PUT', body: JSON.stringify(body), signal: AbortSignal.timeout(10_000) });
      } catch (err) {
        last = err instanceof Error ? err.message : String(err);
        report(last, t);
        throw err;
      }
      last = `${res.status} ${(await res.text()).trim()}`;
      if (res.status !== 200) report(last, t);
      return res.status === 200;
    },
    { timeoutMs, intervalMs: 100, message: `PUT ${api(a)}/v1/catalog/register not acknowledged (last answer ${last})` },
  );
  return Date.now() - t0;
}

interface ServiceNode {
  readonly Node: string;
  readonly Address: string;
  readonly ServiceID: string;
  readonly ServicePort: number;
}

/** Wait until `service` has `count` instances on every running server (read with `?stale`: each server's own store). */
async function visibleEverywhere(service: string, count: number): Promise<void> {
  await waitFor(
    async () => {
      const lists = await Promise.all(running().map((a) => getJson<ServiceNode[]>(`${api(a)}/v1/catalog/service/${service}?stale`)));
      return lists.every((l) => l.length === count);
    },
    { timeoutMs: 10_000, intervalMs: 50, message: `service "${service}" with ${count} instance(s) did not reach every server` },
  );
}

async function printCatalog(via: Agent): Promise<void> {
  const services = await getJson<Record<string, string[]>>(`${api(via)}/v1/catalog/services`);
  log(`catalog (via ${via.config.node_name}):`);
  for (const name of Object.keys(services).sort()) {
    const nodes = await getJson<ServiceNode[]>(`${api(via)}/v1/catalog/service/${name}`);
    console.log(`         ${name.padEnd(8)} ${nodes.map((n) => `${n.Node}@${n.Address}:${n.ServicePort}`).join(', ')}`);
  }
}

async function main(): Promise<void> {
  if (!existsSync(ETCD_BIN)) {
    throw new Error(`etcd not found at ${ETCD_BIN}: install it with \`sudo apt-get install etcd-server\` (or run scripts/setup.sh), or point ETCD_BIN at an etcd binary`);
  }
  const etcd = await EtcdCluster.start(3, { heartbeatMs: 100, electionMs: 1000 });
  run.etcd = etcd;
  log(`ok  etcd up: 3 members at ${etcd.endpoints().join(' ')}`);

  // s1 first; s2 and s3 join its LAN pool.
  const s1 = await startServer('s1', etcd, []);
  log(`ok  server s1 up: http ${api(s1)}  rpc ${rpcAddr(s1)}`);
  for (const name of ['s2', 's3']) {
    const a = await startServer(name, etcd, [lanAddr(s1)]);
    log(`ok  server ${name} up: http ${api(a)}  rpc ${rpcAddr(a)}`);
  }
  await waitFor(() => running().every((a) => aliveLan(a) === 's1 s2 s3'), { timeoutMs: 15_000, message: 'the LAN pool did not form' });
  log(`ok  LAN pool dc1: ${aliveLan(s1)}`);

  const leader = await agreedLeader(15_000);
  log(`ok  leader elected: ${leader.config.node_name} (${rpcAddr(leader)}); /v1/status/leader agrees on s1 s2 s3`);
  await waitFor(async () => (await Promise.all(running().map((a) => getJson<string[]>(`${api(a)}/v1/status/peers`)))).every((p) => p.length === 3), {
    timeoutMs: 10_000,
    message: '/v1/status/peers did not list three servers',
  });
  const peers = await getJson<string[]>(`${api(leader)}/v1/status/peers`);
  log(`ok  peers: ${peers.map((p) => `${nameOfRpc(p)}=${p}`).sort().join(' ')}`);

  // A write on a follower is forwarded to the leader; every server applies it from etcd.
  const follower = running().find((a) => a !== leader) as Agent;
  await register(follower, { Node: 'web1', Address: '10.0.0.5', Service: { Service: 'web', Port: 80 } }, 10_000);
  log(`ok  registered web on web1 through follower ${follower.config.node_name} (PUT ${api(follower)}/v1/catalog/register)`);
  await visibleEverywhere('web', 1);
  log('ok  service web visible on s1 s2 s3');
  await visibleEverywhere('consul', 3);
  log('ok  every server registered itself as service consul');

  if (KILL_ETCD_MEMBER) {
    // The hardest member to lose: etcd's raft leader (the others elect a new one within about electionMs).
    const victim = await etcd.raftLeader();
    await etcd.kill(victim);
    log(`ok  SIGKILLed etcd member m${victim} (${etcd.endpoints()[victim]}, the etcd raft leader); 2 of 3 left`);
    const via = running().find((a) => a !== leader) as Agent;
    const ms = await register(via, { Node: 'web2', Address: '10.0.0.6', Service: { Service: 'web', Port: 80 } }, 20_000);
    await visibleEverywhere('web', 2);
    log(`ok  write with one etcd member down: web2 registered through ${via.config.node_name} in ${ms} ms, visible on s1 s2 s3`);
  }

  // Failover: stop the leader; another server takes the lease. (Losing etcd's raft leader may
  // have moved meshfed's leadership already: ask again.)
  const current = await agreedLeader(15_000);
  if (current !== leader) log(`ok  leadership moved while etcd recovered: the leader is now ${current.config.node_name}`);
  const oldName = current.config.node_name;
  const t0 = Date.now();
  log(`..  stopping the leader ${oldName}`);
  run.agents.delete(oldName);
  const stopped = current.stop().then(() => log(`ok  stopped the leader ${oldName} (agent.stop() took ${Date.now() - t0} ms)`));
  run.leaving.push(stopped.catch(() => undefined));
  const next = await agreedLeader(15_000);
  log(`ok  new leader: ${next.config.node_name} (${rpcAddr(next)}) ${Date.now() - t0} ms after the stop began; /v1/status/leader agrees on ${running().map((a) => a.config.node_name).join(' ')}`);
  await stopped;
  const nextFollower = running().find((a) => a !== next) as Agent;
  const n = KILL_ETCD_MEMBER ? 3 : 2;
  const ms = await register(nextFollower, { Node: `web${n}`, Address: `10.0.0.${4 + n}`, Service: { Service: 'web', Port: 80 } }, 15_000);
  await visibleEverywhere('web', n);
  log(`ok  write after failover: web${n} registered through ${nextFollower.config.node_name} in ${ms} ms, visible on ${running().map((a) => a.config.node_name).join(' ')}`);

  // The stopped server comes back (same name, same HTTP port) and catches up as a follower.
  const back = await startServer(oldName, etcd, running().map(lanAddr));
  await waitFor(() => running().every((a) => aliveLan(a) === 's1 s2 s3'), { timeoutMs: 15_000, message: `${oldName} did not rejoin the LAN pool` });
  await visibleEverywhere('web', n);
  const still = await agreedLeader(10_000);
  log(`ok  ${oldName} restarted (http ${api(back)}) and caught up as a follower; the leader is ${still === next ? 'still ' : ''}${still.config.node_name}`);
  // It registers itself as service consul again, now with its new RPC port.
  await waitFor(
    async () => {
      const lists = await Promise.all(running().map((a) => getJson<ServiceNode[]>(`${api(a)}/v1/catalog/service/consul?stale`)));
      return lists.every((l) => l.find((x) => x.Node === oldName)?.ServicePort === Number(rpcAddr(back).split(':').pop()));
    },
    { timeoutMs: 10_000, intervalMs: 50, message: `${oldName} did not re-register as service consul` },
  );
  log(`ok  ${oldName} re-registered as service consul with its RPC address ${rpcAddr(back)}`);
  await printCatalog(back);

  if (ONCE) return;
  demoDone = true;
  const h = (name: string): string => (EPHEMERAL ? api(run.agents.get(name) as Agent).replace('http://', '') : `localhost:${HTTP_PORTS[name]}`);
  console.log(`
ha-datacenter is running; explore it (Ctrl-C stops everything):
  curl ${h('s1')}/v1/status/leader
  curl ${h('s1')}/v1/status/peers
  curl ${h('s2')}/v1/catalog/service/consul
  curl ${h('s3')}/v1/catalog/service/web?stale
  node dist/src/cli/meshfed.js members -http-addr ${h('s1').replace('localhost', '127.0.0.1')}
  ETCDCTL_API=3 etcdctl --endpoints ${etcd.endpoints().join(',')} get --prefix --keys-only /meshfed/dc1/
`);
  await interrupted;
  console.log('\nstopping…');
}

/** Stop the agents, then etcd; remove the temp dirs. Idempotent. */
async function cleanup(): Promise<void> {
  run.stopping ??= (async () => {
    await Promise.all(run.leaving);
    for (const [name, a] of [...run.agents].reverse()) {
      await a.stop().catch((err: unknown) => console.error(`stopping ${name}: ${String(err)}`));
    }
    run.agents.clear();
    await run.etcd?.stop().catch((err: unknown) => console.error(`stopping etcd: ${String(err)}`));
    for (const d of run.dirs) rmSync(d, { recursive: true, force: true });
  })();
  await run.stopping;
}

// Ctrl-C while the demonstration is still running: clean up too (etcd members, temp dirs).
let demoDone = false;
let onInterrupt: () => void = () => undefined;
const interrupted = new Promise<void>((resolve) => (onInterrupt = resolve));
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    if (demoDone) return onInterrupt();
    console.error(`\n${sig}: stopping…`);
    void cleanup().finally(() => process.exit(130));
  });
}

let code = 0;
try {
  await main();
  await cleanup();
  console.log('ha-datacenter example done');
} catch (err: unknown) {
  console.error(`ha-datacenter example failed: ${err instanceof Error ? err.message : String(err)}`);
  code = 1;
  await cleanup();
}
process.exit(code);
