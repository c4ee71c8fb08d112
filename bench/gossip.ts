/**
 * Gossip pool benchmark: meshfed's memberlist vs HashiCorp memberlist 0.2.2 (the Go peer in
 * test/interop/memberlist-peer, bench mode), same timings, each pool of N nodes in its own
 * process on loopback, interleaved, median of the runs:
 *
 * - join convergence: nodes 1..N-1 join node 0 at once; time until every node sees N alive;
 * - failure detection: one node is shut down without leaving; time until every other node
 *   declared it dead;
 * - steady-state CPU per node (process user+sys over a quiet window, ÷ N) and RSS per node
 *   (RSS growth from before the nodes existed, ÷ N; the Go figure divides the whole RSS, runtime
 *   included, so it flatters Go's per-node cost when N is small).
 *
 *   node dist/bench/gossip.js                 # 48 nodes, LAN timings, 3 runs each (the README figures: --runs 5)
 *   node dist/bench/gossip.js --nodes 24 --runs 1
 *   node dist/bench/gossip.js ts-pool JSON    # one meshfed pool (prints a JSON result line)
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { silentLogger } from '../src/core/logger.js';
import { LAN_TIMINGS, Memberlist, type MemberlistTimings } from '../src/plugins/gossip/memberlist/index.js';
import { createNetTransport } from '../src/plugins/gossip/transport/index.js';
import { NodeState } from '../src/plugins/gossip/wire/index.js';
import { runGoPool, type GoPoolResult } from './go-pool.js';
import { machineBusyPercent, median } from './machine.js';

const SELF = fileURLToPath(import.meta.url);

interface PoolOptions {
  readonly nodes: number;
  readonly settleMs: number;
  readonly steadyMs: number;
  readonly killIndex: number;
}

interface PoolResult {
  readonly convergeMs: number;
  readonly failDetectMs: number;
  readonly cpuMsPerNodePerSec: number;
  /** Share of that CPU spent in user space (the rest is the kernel: socket syscalls). */
  readonly userShare: number;
  readonly rssBytesPerNode: number;
  readonly rssBytesTotalPerNode: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** One meshfed pool in this process. */
async function tsPool(o: PoolOptions): Promise<PoolResult> {
  const timings: MemberlistTimings = LAN_TIMINGS;
  (globalThis as { gc?: () => void }).gc?.();
  const rssBefore = process.memoryUsage().rss;
  const n = o.nodes;
  const seen: Set<string>[] = [];
  const dead: Set<string>[] = [];
  let onChange: () => void = () => undefined;
  const nodes: Memberlist[] = [];
  for (let i = 0; i < n; i++) {
    const transport = await createNetTransport({ bindAddr: '127.0.0.1', bindPort: 0, logger: silentLogger() });
    seen.push(new Set());
    dead.push(new Set());
    nodes.push(
      await Memberlist.create({
        ...timings,
        name: `ts-${i}`,
        transport,
        logger: silentLogger(),
        delegates: {
          events: {
            notifyJoin: (node) => {
              seen[i]!.add(node.name);
              onChange();
            },
            notifyLeave: (node) => {
              if (node.state === NodeState.dead) dead[i]!.add(node.name);
              onChange();
            },
            notifyUpdate: () => undefined,
          },
        },
      }),
    );
  }
  const until = (cond: () => boolean, timeoutMs: number, what: string): Promise<void> =>
    new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`${what} not reached in ${timeoutMs} ms`)), timeoutMs);
      onChange = () => {
        if (cond()) {
          clearTimeout(t);
          onChange = () => undefined;
          resolve();
        }
      };
      onChange();
    });
  const seed = `ts-0/${nodes[0]!.advertiseAddress}`;
  const t0 = performance.now();
  const converged = until(() => seen.every((s) => s.size >= n), 60_000, 'convergence');
  await Promise.all(nodes.slice(1).map((m) => m.join([seed])));
  await converged;
  const convergeMs = performance.now() - t0;

  await sleep(o.settleMs);
  const cpu0 = process.cpuUsage();
  const w0 = performance.now();
  await sleep(o.steadyMs);
  const cpu = process.cpuUsage(cpu0);
  const windowMs = performance.now() - w0;
  const rss = process.memoryUsage().rss;

  const victim = `ts-${o.killIndex}`;
  const t1 = performance.now();
  const detected = until(() => dead.every((d, i) => i === o.killIndex || d.has(victim)), 120_000, 'failure detection');
  await nodes[o.killIndex]!.shutdown();
  await detected;
  const failDetectMs = performance.now() - t1;
  await Promise.all(nodes.map((m) => m.shutdown()));
  return {
    convergeMs,
    failDetectMs,
    cpuMsPerNodePerSec: (cpu.user + cpu.system) / 1000 / n / (windowMs / 1000),
    userShare: cpu.user / (cpu.user + cpu.system),
    rssBytesPerNode: (rss - rssBefore) / n,
    rssBytesTotalPerNode: rss / n,
  };
}

/** Run one meshfed pool in a child process (fresh heap, its own CPU accounting). */
function tsPoolChild(o: PoolOptions): Promise<PoolResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--expose-gc', SELF, 'ts-pool', JSON.stringify(o)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('close', (code) => {
      const line = out.trim().split('\n').pop() ?? '';
      if (code !== 0) reject(new Error(`ts pool exited with ${code}: ${out}`));
      else resolve(JSON.parse(line) as PoolResult);
    });
  });
}

function fmt(x: number, digits = 0): string {
  return x.toFixed(digits);
}

async function main(): Promise<void> {
  const arg = (name: string, def: number): number => {
    const i = process.argv.indexOf(`--${name}`);
    return i > 0 ? Number(process.argv[i + 1]) : def;
  };
  const nodes = arg('nodes', 48);
  const runs = arg('runs', 3);
  const o: PoolOptions = { nodes, settleMs: 2_000, steadyMs: 10_000, killIndex: nodes - 1 };
  console.log(`gossip pool benchmark: ${nodes} nodes per pool, memberlist LAN timings, ${runs} run(s) each, interleaved`);
  console.log(`machine busy before: ${fmt(await machineBusyPercent())} %`);
  const go: GoPoolResult[] = [];
  const ts: PoolResult[] = [];
  // Both memberlists have a rare slow-join tail (a node misses one alive broadcast and waits for
  // the next push-pull, up to a minute): such a run is reported and redone, not averaged in.
  const tails = { go: 0, meshfed: 0 };
  const attempt = async <T>(who: 'go' | 'meshfed', f: () => Promise<T>): Promise<T> => {
    for (let i = 0; ; i++) {
      try {
        return await f();
      } catch (err) {
        if (i >= 2) throw err;
        tails[who]++;
        console.log(`  ${who} pool failed (${String((err as Error).message).split('\n')[0]}); redoing the run`);
      }
    }
  };
  for (let r = 0; r < runs; r++) {
    go.push(await attempt('go', () => runGoPool({ nodes, profile: 'lan', settleMs: o.settleMs, steadyMs: o.steadyMs, killIndex: o.killIndex })));
    ts.push(await attempt('meshfed', () => tsPoolChild(o)));
    const g = go[go.length - 1]!;
    const t = ts[ts.length - 1]!;
    console.log(
      `  run ${r + 1}: converge go ${fmt(g.convergeMs)} ms / meshfed ${fmt(t.convergeMs)} ms; fail-detect go ${fmt(g.failDetectMs)} / meshfed ${fmt(t.failDetectMs)} ms; ` +
        `cpu/node/s go ${fmt(g.cpuMsPerNodePerSec, 3)} / meshfed ${fmt(t.cpuMsPerNodePerSec, 3)} ms`,
    );
  }
  console.log(`machine busy after: ${fmt(await machineBusyPercent())} %`);
  console.log(`slow-join tails redone: go ${tails.go}, meshfed ${tails.meshfed}`);
  const m = <T>(xs: T[], f: (x: T) => number): number => median(xs.map(f));
  // The ratio column is the median of same-run ratios (each meshfed run against the Go run just
  // before it): the Go pool's own figures drift between runs on a shared machine.
  const r = (f: (x: { convergeMs: number; failDetectMs: number; cpuMsPerNodePerSec: number }) => number): number => median(ts.map((t, i) => f(t) / f(go[i]!)));
  const rows: [string, number, number, number, string][] = [
    ['join convergence, ms', m(go, (x) => x.convergeMs), m(ts, (x) => x.convergeMs), r((x) => x.convergeMs), '≤ 1.0×'],
    ['failure detection, ms', m(go, (x) => x.failDetectMs), m(ts, (x) => x.failDetectMs), r((x) => x.failDetectMs), '≤ 1.0×'],
    ['steady CPU per node, ms/s', m(go, (x) => x.cpuMsPerNodePerSec), m(ts, (x) => x.cpuMsPerNodePerSec), r((x) => x.cpuMsPerNodePerSec), '≤ 1.5×'],
  ];
  console.log('\n| measure | Go memberlist (median) | meshfed (median) | median of same-run ratios | ratio of medians | target |\n| --- | --- | --- | --- | --- | --- |');
  for (const [name, g, t, ratio, target] of rows) console.log(`| ${name} | ${fmt(g, 3)} | ${fmt(t, 3)} | ${fmt(ratio, 2)}× | ${fmt(t / g, 2)}× | ${target} |`);
  const goRss = m(go, (x) => x.rssBytesPerNode);
  const tsRss = m(ts, (x) => x.rssBytesTotalPerNode);
  console.log(`| RSS ÷ N (whole process, runtime included), KiB | ${fmt(goRss / 1024)} | ${fmt(tsRss / 1024)} | ${fmt(tsRss / goRss, 2)}× | |`);
  console.log(`| RSS growth per in-process node (nodes created + joined), KiB | | ${fmt(m(ts, (x) => x.rssBytesPerNode) / 1024)} | | < 8 MiB |`);
}

if (process.argv[1] === SELF) {
  if (process.argv[2] === 'ts-pool') {
    const o = JSON.parse(process.argv[3] ?? '{}') as PoolOptions;
    tsPool(o).then(
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
