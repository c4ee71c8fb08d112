/**
 * Federation-state convergence benchmark (issue 6): servers of N datacenters (one server each)
 * in one process on 127.0.0.1, WAN-joined to the primary dc1 (`retry_join_wan`), with the
 * plugins of a real server (tls dev, rpc, http, gossip, router, state, federation), fast gossip
 * timings (probe 200 ms, gossip 50 ms) and a silent logger. Each scenario runs in its own child
 * process (fresh heap, its own CPU accounting); run with `node --cpu-prof …` to profile them.
 *
 * 1. Convergence: once the WAN pool and the initial federation states (one mesh gateway per
 *    datacenter) have converged, repeatedly pick a random datacenter and re-register its mesh
 *    gateway (`PUT /v1/catalog/register`, meta `consul-wan-federation=1`) with a new port; the
 *    latency runs from just BEFORE the PUT until EVERY datacenter's local store shows the new
 *    port in that datacenter's federation state (one `store.blockingQuery` per store, armed
 *    before the PUT, so the wake-up is event-driven, no polling). Also split out: the PUT's own
 *    time, the time until the primary has it (anti-entropy: local write → blocking query →
 *    `FederationState.Apply` to the primary) and the rest (replication to every secondary).
 *    Cases: anti-entropy debounce 0 with `replication_rate: 0` (unlimited) for N = 3, 10, 30;
 *    debounce 0 with the default replication rate (1/s, burst 5) for N = 10; the all-defaults
 *    configuration (debounce 5 s, rate 1/s burst 5) for N = 3, 10. Samples are taken back to
 *    back (the next PUT as soon as the previous change has converged).
 * 2. Full sync: a primary holds 1 000 federation states (alt-1 … alt-1000, 2 gateways each,
 *    written through the state server) plus its own; a fresh secondary is created and started
 *    with `retry_join_wan` to it; the target is judged from the secondary's leadership (its
 *    `onLeadershipAcquired`, which fires inside `start()`) until its store holds every state the
 *    primary held; the times from just before `agent.start()` to leadership, `start()` resolving,
 *    the WAN join, the first and the last state are shown too. 3 runs (a new secondary
 *    datacenter each, the earlier ones keep running), median; with the default
 *    `replication_apply_batch` (128) and with 1 (--quick: 1 run, batch 128 only).
 *
 *   node dist/bench/federation.js            # full (~3–4 min)
 *   node dist/bench/federation.js --quick    # N = 3 and 10, fewer samples, no defaults run at N = 10 (~1 min)
 *   node dist/bench/federation.js child '<json scenario>'   # one scenario (prints a JSON line)
 */
import { spawn } from 'node:child_process';
import { setMaxListeners } from 'node:events';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { createAgent, type Agent } from '../src/index.js';
import { federation } from '../src/plugins/federation/index.js';
import { gossip, GossipTokens } from '../src/plugins/gossip/index.js';
import { http, HttpTokens } from '../src/plugins/http/index.js';
import { router } from '../src/plugins/router/index.js';
import { rpc } from '../src/plugins/rpc/index.js';
import { state, StateTokens } from '../src/plugins/state/index.js';
import { MessageType, type StateStore } from '../src/plugins/state/store/index.js';
import { tls } from '../src/plugins/tls/index.js';
import { createMemoryLogger } from '../src/testing/index.js';
import { machineBusyPercent, median } from './machine.js';

const SELF = fileURLToPath(import.meta.url);
const host = { hostname: 'h', privateIPv4: '127.0.0.1' };
const FAST = { probe_interval: '200ms', probe_timeout: '100ms', gossip_interval: '50ms', suspicion_mult: 3, push_pull_interval: '2s' };

interface FedSettings {
  /** Anti-entropy debounce, ms (default 5 000). */
  readonly aeMs: number;
  /** Replication rounds per second (0 = unlimited; default 1). */
  readonly rate: number;
  readonly burst: number;
  readonly applyBatch: number;
}

const DEFAULTS: FedSettings = { aeMs: 5000, rate: 1, burst: 5, applyBatch: 128 };

interface ConvergenceScenario {
  readonly kind: 'convergence';
  readonly label: string;
  readonly n: number;
  readonly samples: number;
  readonly fed: FedSettings;
}

interface FullSyncScenario {
  readonly kind: 'fullsync';
  readonly label: string;
  readonly states: number;
  readonly runs: number;
  readonly fed: FedSettings;
}

type Scenario = ConvergenceScenario | FullSyncScenario;

interface ConvergenceResult {
  readonly setupMs: number;
  readonly wanConvergeMs: number;
  readonly initialStatesMs: number;
  /** From just before the PUT until every store has the change. */
  readonly totalMs: number[];
  /** The PUT's own latency (until its 200). */
  readonly putMs: number[];
  /** From just before the PUT until the primary's store has it. */
  readonly primaryMs: number[];
  /** From the primary having it until every store has it. */
  readonly replicateMs: number[];
  /** Process CPU (user+sys) during the samples, % of one core. */
  readonly cpuPercent: number;
  readonly loopDelayP99Ms: number;
  readonly loopDelayMaxMs: number;
  readonly rssMiB: number;
  readonly timeouts: number;
}

interface FullSyncRun {
  readonly leaderMs: number;
  readonly startMs: number;
  readonly wanMs: number;
  readonly firstStateMs: number;
  readonly doneMs: number;
  /** The secondary's replication status at the end (rounds, last error). */
  readonly replication: { rounds?: number; last_error?: string };
}

interface FullSyncResult {
  readonly seedMs: number;
  readonly runs: FullSyncRun[];
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const now = (): number => performance.now();

function fedConfig(f: FedSettings): Record<string, unknown> {
  return { anti_entropy_interval: `${f.aeMs}ms`, replication_rate: f.rate, replication_burst: f.burst, replication_apply_batch: f.applyBatch };
}

/** A server of `dc` (primary dc1), not started. */
function makeServer(name: string, dc: string, fed: FedSettings, joinWan: string[]): Promise<Agent> {
  return createAgent({
    config: {
      node_name: name,
      datacenter: dc,
      primary_datacenter: 'dc1',
      server: true,
      bind_addr: '127.0.0.1',
      ports: { server: 0, serf_lan: 0, serf_wan: 0, http: 0 },
      gossip_lan: FAST,
      gossip_wan: FAST,
      federation: fedConfig(fed),
      ...(joinWan.length > 0 ? { retry_join_wan: joinWan, retry_interval_wan: '200ms' } : {}),
    },
    host,
    logger: createMemoryLogger('silent'),
    plugins: [tls({ dev: true }), rpc(), http(), gossip({ serf: { leavePropagateDelayMs: 0 } }), router(), state(), federation()],
  });
}

const storeOf = (a: Agent): StateStore => a.services.get(StateTokens.Store);
const apiOf = (a: Agent): string => `http://${a.services.get(HttpTokens.HttpApi).address}`;
const wanAddr = (a: Agent): string => a.services.get(GossipTokens.Wan).advertiseAddress;
const aliveWan = (a: Agent): number => a.services.get(GossipTokens.Wan).members().filter((m) => m.status === 'alive').length;

/** Poll `cond` every 10 ms (setup phases only, never inside a measured interval). */
async function until(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const end = now() + timeoutMs;
  while (!cond()) {
    if (now() > end) throw new Error(`${what}: not reached in ${timeoutMs} ms`);
    await sleep(10);
  }
}

/** Register (or re-register) the mesh gateway of datacenter number `i` with `port`. */
async function registerGateway(a: Agent, i: number, port: number, rev: number): Promise<void> {
  const res = await fetch(`${apiOf(a)}/v1/catalog/register`, {
    method: 'PUT',
    body: JSON.stringify({
      Node: `gw${i}`,
      Address: `10.${i}.0.1`,
      Service: {
        Kind: 'mesh-gateway',
        Service: 'mesh-gateway',
        ID: `mgw-gw${i}`,
        Port: port,
        Meta: { 'consul-wan-federation': '1', rev: String(rev) },
        TaggedAddresses: { lan: { Address: `10.${i}.0.1`, Port: port }, wan: { Address: `198.18.${i}.1`, Port: port } },
      },
      Checks: [{ CheckID: `mgw-gw${i}-tcp`, Name: 'tcp', Status: 'passing', ServiceID: `mgw-gw${i}` }],
    }),
  });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`register in dc${i}: ${res.status} ${text}`);
}

const hasPort = (store: StateStore, dc: string, port: number): boolean => store.federationStateGet(dc).value?.MeshGateways.some((g) => g.Service.Port === port) ?? false;

/** Resolve with the time `store` first shows `port` in `dc`'s federation state (event-driven). */
async function seenAt(store: StateStore, dc: string, port: number, signal: AbortSignal): Promise<number> {
  let index = 0;
  for (;;) {
    const r = await store.blockingQuery({ minQueryIndex: index, maxQueryTimeMs: 60_000, signal }, (ws) => store.federationStateGet(dc, ws));
    if (r.value?.MeshGateways.some((g) => g.Service.Port === port)) return now();
    index = r.index;
  }
}

function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] as number;
}

async function runConvergence(sc: ConvergenceScenario): Promise<ConvergenceResult> {
  const t0 = now();
  const agents: Agent[] = [];
  try {
    const primary = await makeServer('s1', 'dc1', sc.fed, []);
    agents.push(primary);
    await primary.start();
    const seed = wanAddr(primary);
    const rest = await Promise.all(Array.from({ length: sc.n - 1 }, (_, k) => makeServer(`s${k + 2}`, `dc${k + 2}`, sc.fed, [seed])));
    agents.push(...rest);
    await Promise.all(rest.map((a) => a.start()));
    const setupMs = now() - t0;
    const t1 = now();
    await until(() => agents.every((a) => aliveWan(a) === sc.n), 60_000 + sc.n * 2000, 'WAN pool convergence');
    const wanConvergeMs = now() - t1;
    const t2 = now();
    const basePort = 8443;
    await Promise.all(agents.map((a, k) => registerGateway(a, k + 1, basePort, 0)));
    const dcs = agents.map((_, k) => `dc${k + 1}`);
    const stores = agents.map(storeOf);
    await until(() => stores.every((s) => dcs.every((dc) => hasPort(s, dc, basePort))), 60_000 + sc.n * 2000, 'initial federation states');
    const initialStatesMs = now() - t2;
    await sleep(200);

    const totalMs: number[] = [];
    const putMs: number[] = [];
    const primaryMs: number[] = [];
    const replicateMs: number[] = [];
    let timeouts = 0;
    const loop = monitorEventLoopDelay({ resolution: 5 });
    loop.enable();
    const cpu0 = process.cpuUsage();
    const w0 = now();
    for (let s = 0; s < sc.samples; s++) {
      const k = Math.floor(Math.random() * sc.n);
      const dc = dcs[k] as string;
      const port = 20_000 + s;
      const ac = new AbortController();
      setMaxListeners(0, ac.signal); // one blocking query per store listens to it
      const seen = stores.map((st) => seenAt(st, dc, port, ac.signal));
      const timeout = setTimeout(() => ac.abort(), 30_000);
      const start = now();
      await registerGateway(agents[k] as Agent, k + 1, port, s + 1);
      const put = now() - start;
      try {
        const times = await Promise.all(seen);
        const primaryAt = times[0] as number;
        const allAt = Math.max(...times);
        totalMs.push(allAt - start);
        putMs.push(put);
        primaryMs.push(primaryAt - start);
        replicateMs.push(allAt - primaryAt);
      } catch {
        timeouts++;
        await Promise.allSettled(seen);
      } finally {
        clearTimeout(timeout);
      }
    }
    const windowMs = now() - w0;
    const cpu = process.cpuUsage(cpu0);
    loop.disable();
    return {
      setupMs,
      wanConvergeMs,
      initialStatesMs,
      totalMs,
      putMs,
      primaryMs,
      replicateMs,
      cpuPercent: ((cpu.user + cpu.system) / 1000 / windowMs) * 100,
      loopDelayP99Ms: loop.percentile(99) / 1e6,
      loopDelayMaxMs: loop.max / 1e6,
      rssMiB: process.memoryUsage().rss / 2 ** 20,
      timeouts,
    };
  } catch (err) {
    // on success the child prints its line and exits without stopping the agents (saves seconds)
    await Promise.allSettled([...agents].reverse().map((a) => a.stop()));
    throw err;
  }
}

const gatewayOf = (i: number, k: number) => ({
  Node: { ID: '', Node: `alt${i}-gw${k}`, Address: `10.9.${i % 256}.${k}`, Datacenter: `alt-${i}`, TaggedAddresses: {}, Meta: {}, CreateIndex: 0, ModifyIndex: 0 },
  Service: {
    ID: 'mgw',
    Service: 'mesh-gateway',
    Kind: 'mesh-gateway' as const,
    Tags: [],
    Address: '',
    TaggedAddresses: {},
    Port: 443,
    Meta: { 'consul-wan-federation': '1' },
    CreateIndex: 0,
    ModifyIndex: 0,
  },
  Checks: [],
});

async function runFullSync(sc: FullSyncScenario): Promise<FullSyncResult> {
  const agents: Agent[] = [];
  try {
    const primary = await makeServer('s1', 'dc1', sc.fed, []);
    agents.push(primary);
    await primary.start();
    await registerGateway(primary, 1, 8443, 0);
    const srv = primary.services.get(StateTokens.Server);
    const t0 = now();
    for (let i = 1; i <= sc.states; i += 100) {
      await Promise.all(
        Array.from({ length: Math.min(100, sc.states - i + 1) }, (_, j) =>
          srv.write({
            Type: MessageType.FederationState,
            Body: { Datacenter: 'dc1', Op: 'upsert', State: { Datacenter: `alt-${i + j}`, MeshGateways: [gatewayOf(i + j, 1), gatewayOf(i + j, 2)] } },
          }),
        ),
      );
    }
    const pstore = storeOf(primary);
    await until(() => pstore.federationStateGet('dc1').value !== undefined, 10_000, "primary's own state");
    const seedMs = now() - t0;
    const seed = wanAddr(primary);
    const runs: FullSyncRun[] = [];
    for (let r = 0; r < sc.runs; r++) {
      await sleep(300);
      const want = pstore.federationStateList().value.map((s) => s.Datacenter.toLowerCase());
      const wantSet = new Set(want);
      const dc = `dc${r + 2}`;
      const sec = await makeServer(`s${r + 2}`, dc, sc.fed, [seed]);
      agents.push(sec);
      const store = storeOf(sec);
      let leaderAt = NaN;
      let startAt = NaN;
      let wanAt = NaN;
      let firstAt = NaN;
      sec.hooks.onLeadershipAcquired.tapPromise('bench', async () => {
        leaderAt = now();
      });
      sec.hooks.onMembership.tap('bench', (e) => {
        if (e.pool === 'wan' && Number.isNaN(wanAt) && e.members.some((m) => m.tags['dc'] === 'dc1' && m.status === 'alive')) wanAt = now();
      });
      const ac = new AbortController();
      const complete = (): boolean => {
        const list = store.federationStateList().value;
        if (list.length > 0 && Number.isNaN(firstAt)) firstAt = now();
        if (list.length < want.length) return false;
        let have = 0;
        for (const s of list) if (wantSet.has(s.Datacenter.toLowerCase())) have++;
        return have === want.length;
      };
      const done = (async (): Promise<number> => {
        let index = 0;
        for (;;) {
          const res = await store.blockingQuery({ minQueryIndex: index, maxQueryTimeMs: 60_000, signal: ac.signal }, (ws) => store.federationStateList(ws));
          if (complete()) return now();
          index = res.index;
        }
      })();
      const timer = setTimeout(() => ac.abort(), 60_000);
      const start = now();
      await sec.start();
      startAt = now();
      const doneAt = await done;
      clearTimeout(timer);
      ac.abort();
      const status = (await (await fetch(`${apiOf(sec)}/v1/meshfed/federation`)).json()) as { replication?: { rounds?: number; last_error?: string } };
      const replication = { rounds: status.replication?.rounds, last_error: status.replication?.last_error };
      runs.push({ leaderMs: leaderAt - start, startMs: startAt - start, wanMs: wanAt - start, firstStateMs: firstAt - start, doneMs: doneAt - start, replication });
    }
    return { seedMs, runs };
  } catch (err) {
    // on success the child prints its line and exits without stopping the agents (saves seconds)
    await Promise.allSettled([...agents].reverse().map((a) => a.stop()));
    throw err;
  }
}

/** Run one scenario in a child process (fresh heap, its own CPU accounting). */
function inChild<T>(sc: Scenario): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...process.execArgv, SELF, 'child', JSON.stringify(sc)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('close', (code) => {
      const line = out.trim().split('\n').pop() ?? '';
      if (code !== 0) reject(new Error(`scenario "${sc.label}" exited with ${code}: ${out}`));
      else resolve(JSON.parse(line) as T);
    });
  });
}

const fmt = (x: number, digits = 0): string => (Number.isFinite(x) ? x.toFixed(digits) : '–');

async function main(): Promise<void> {
  const quick = process.argv.includes('--quick');
  const ae0: FedSettings = { ...DEFAULTS, aeMs: 0, rate: 0 };
  const ae0Rate: FedSettings = { ...DEFAULTS, aeMs: 0 };
  const conv: (ConvergenceScenario & { target: number })[] = [
    { kind: 'convergence', label: 'debounce 0, rate unlimited', n: 3, samples: 20, fed: ae0, target: 300 },
    { kind: 'convergence', label: 'debounce 0, rate unlimited', n: 10, samples: 20, fed: ae0, target: 300 },
    ...(quick ? [] : [{ kind: 'convergence' as const, label: 'debounce 0, rate unlimited', n: 30, samples: 12, fed: ae0, target: 300 }]),
    { kind: 'convergence', label: 'debounce 0, rate 1/s burst 5 (default)', n: 10, samples: quick ? 6 : 20, fed: ae0Rate, target: 300 },
    { kind: 'convergence', label: 'all defaults: debounce 5 s, rate 1/s burst 5', n: 3, samples: quick ? 2 : 5, fed: DEFAULTS, target: 5500 },
    ...(quick ? [] : [{ kind: 'convergence' as const, label: 'all defaults: debounce 5 s, rate 1/s burst 5', n: 10, samples: 5, fed: DEFAULTS, target: 5500 }]),
  ];
  const syncs: (FullSyncScenario & { target: number })[] = [
    { kind: 'fullsync', label: 'apply batch 128 (default), rate 1/s burst 5 (default)', states: 1000, runs: quick ? 1 : 3, fed: { ...DEFAULTS, aeMs: 0 }, target: 2000 },
    ...(quick ? [] : [{ kind: 'fullsync' as const, label: 'apply batch 1, rate 1/s burst 5 (default)', states: 1000, runs: 3, fed: { ...DEFAULTS, aeMs: 0, applyBatch: 1 }, target: NaN }]),
  ];
  const began = now();
  console.log(`federation-state convergence benchmark${quick ? ' (--quick)' : ''}: one server per datacenter, one process per scenario, 127.0.0.1, fast gossip (probe 200 ms, gossip 50 ms)`);
  console.log(`machine busy before: ${await machineBusyPercent()} %`);
  console.log('latency = from just before the PUT /v1/catalog/register until EVERY datacenter store shows the change (blocking-query wake-ups, no polling)\n');

  const summary: string[] = [];
  console.log('| case | N | samples | p50 ms | p99 ms | max ms | PUT p50 | →primary p50 / max | →all secondaries p50 / max | CPU % (1 core) | loop delay p99 / max ms | RSS MiB | setup / WAN / initial ms | target p99 |');
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const sc of conv) {
    let r: ConvergenceResult;
    try {
      r = await inChild<ConvergenceResult>(sc);
    } catch (err) {
      console.log(`| ${sc.label} | ${sc.n} | failed: ${String((err as Error).message).split('\n')[0]} |`);
      summary.push(`| convergence p99, ${sc.label}, N=${sc.n} | failed | ≤ ${sc.target} ms | **missed** |`);
      continue;
    }
    const p99 = percentile(r.totalMs, 99);
    console.log(
      `| ${sc.label} | ${sc.n} | ${r.totalMs.length}${r.timeouts ? ` (+${r.timeouts} timed out)` : ''} | ${fmt(percentile(r.totalMs, 50))} | ${fmt(p99)} | ${fmt(Math.max(...r.totalMs))} | ${fmt(median(r.putMs), 1)} | ` +
        `${fmt(median(r.primaryMs))} / ${fmt(Math.max(...r.primaryMs))} | ${fmt(median(r.replicateMs))} / ${fmt(Math.max(...r.replicateMs))} | ${fmt(r.cpuPercent)} | ${fmt(r.loopDelayP99Ms, 1)} / ${fmt(r.loopDelayMaxMs, 1)} | ${fmt(r.rssMiB)} | ` +
        `${fmt(r.setupMs)} / ${fmt(r.wanConvergeMs)} / ${fmt(r.initialStatesMs)} | ≤ ${sc.target} |`,
    );
    const targeted = (sc.fed.aeMs === 0 && sc.fed.rate === 0 && sc.n === 10) || sc.fed.aeMs > 0;
    if (targeted) summary.push(`| convergence p99, ${sc.label}, N=${sc.n} | ${fmt(p99)} ms | ≤ ${sc.target} ms | ${p99 <= sc.target && r.timeouts === 0 ? 'met' : '**missed**'} |`);
    else summary.push(`| convergence p99, ${sc.label}, N=${sc.n} | ${fmt(p99)} ms | (info) | |`);
  }

  console.log('\nfull sync of 1 000 federation states into a fresh secondary (times from just before agent.start() of the secondary; the target is judged from its leadership)\n');
  console.log('| case | run | leadership ms | start() resolved ms | WAN joined ms | first state ms | all states ms | **leadership → all** ms | replication rounds / last error | seed 1 000 in primary ms |');
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const sc of syncs) {
    let r: FullSyncResult;
    try {
      r = await inChild<FullSyncResult>(sc);
    } catch (err) {
      console.log(`| ${sc.label} | failed: ${String((err as Error).message).split('\n')[0]} |`);
      summary.push(`| full sync of 1 000, ${sc.label} | failed | ${Number.isNaN(sc.target) ? '(comparison)' : `< ${sc.target} ms`} | **missed** |`);
      continue;
    }
    r.runs.forEach((x, i) =>
      console.log(
        `| ${sc.label} | ${i + 1} | ${fmt(x.leaderMs)} | ${fmt(x.startMs)} | ${fmt(x.wanMs)} | ${fmt(x.firstStateMs)} | ${fmt(x.doneMs)} | **${fmt(x.doneMs - x.leaderMs)}** | ` +
          `${x.replication.rounds ?? '–'} / ${x.replication.last_error ?? 'none'} | ${i === 0 ? fmt(r.seedMs) : ''} |`,
      ),
    );
    const med = median(r.runs.map((x) => x.doneMs - x.leaderMs));
    const medStart = median(r.runs.map((x) => x.doneMs));
    const sinceFirst = median(r.runs.map((x) => x.doneMs - x.firstStateMs));
    const label = `full sync of 1 000 from leadership (median of ${r.runs.length}), ${sc.label}`;
    const measured = `${fmt(med)} ms (from start(): ${fmt(medStart)} ms; first → all states: ${fmt(sinceFirst)} ms)`;
    if (Number.isNaN(sc.target)) summary.push(`| ${label} | ${measured} | (comparison) | |`);
    else summary.push(`| ${label} | ${measured} | < ${sc.target} ms | ${med < sc.target ? 'met' : '**missed**'} |`);
  }
  console.log(`\nmachine busy after: ${await machineBusyPercent()} %   (wall time ${fmt((now() - began) / 1000)} s)`);
  console.log('\n| summary | measured | target | |\n| --- | --- | --- | --- |');
  for (const line of summary) console.log(line);
}

if (process.argv[1] === SELF) {
  if (process.argv[2] === 'child') {
    const sc = JSON.parse(process.argv[3] ?? '{}') as Scenario;
    (sc.kind === 'convergence' ? runConvergence(sc) : runFullSync(sc)).then(
      (r) => {
        process.stdout.write(`${JSON.stringify(r)}\n`);
        process.exit(0);
      },
      (err: unknown) => {
        console.error(err);
        process.exit(1);
      },
    );
  } else {
    main().catch((err: unknown) => {
      console.error(err);
      process.exit(1);
    });
  }
}
