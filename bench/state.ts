/**
 * State store benchmark: the in-memory StateStore behind its embedded durable backend
 * (EmbeddedBackend: SQLite WAL, synchronous=FULL, group commit), all in one process, temp
 * databases under os.tmpdir() (removed at the end):
 *
 * 1. Acknowledged durable writes/s, EmbeddedBackend.apply vs a bare better-sqlite3 log with the
 *    same durability (WAL, synchronous=FULL, `log(idx INTEGER PRIMARY KEY, command TEXT)`, one
 *    row = JSON.stringify of the same register command). c=1: each write awaited before the
 *    next (bare: one transaction per write, acknowledged after commit). c=64: 64 concurrent
 *    writers (bare: the backend's group-commit shape — pending writes flushed by setImmediate in
 *    one transaction). Fresh database per run, runs interleaved, 3 rounds, median; the ratio
 *    that counts is embedded/bare. Target ≥ 0.8×.
 * 2. Blocking-query wake latency: 1 000 services (one instance each) behind an EmbeddedBackend,
 *    1 000 blocking queries on store.checkServiceNodes('svc-<i>'); one random service is
 *    re-registered (changed Meta) per write; latency from just before backend.apply() until
 *    that service's query resolves; also the durable-ack latency of the same writes, and how
 *    many OTHER queries woke (must be 0). Target p99 < 5 ms.
 * 3. Memory for 10 000 service instances (2 000 nodes × 5 services, one service check each):
 *    RSS and heap growth after gc, through an EmbeddedBackend, then for a bare StateStore
 *    (store.apply directly) measured on top of it. Target < 100 MiB RSS (embedded).
 *
 * Absolute times on the shared 2-core machine are noise; compare ratios, and check the busy %
 * printed before and after.
 *
 *   node --expose-gc dist/bench/state.js           # full run (~35 s)
 *   node --expose-gc dist/bench/state.js --quick   # shorter runs (~12 s)
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import { EmbeddedBackend } from '../src/plugins/state/backend/index.js';
import { MessageType, StateStore, type Command } from '../src/plugins/state/store/index.js';
import { prng } from '../src/testing/prng.js';
import { machineBusyPercent, median } from './machine.js';

const require = createRequire(import.meta.url);
const Database = require('better-sqlite3') as typeof BetterSqlite3;

const QUICK = process.argv.includes('--quick');
const MiB = 1024 * 1024;
const gc = (globalThis as { gc?: () => void }).gc;

// ---- helpers ---------------------------------------------------------------------------------

const ROOT = mkdtempSync(join(tmpdir(), 'meshfed-bench-state-'));
let dirSeq = 0;
/** A fresh directory under this run's temp root. */
function freshDir(what: string): string {
  return join(ROOT, `${what}-${dirSeq++}`);
}

/** Deterministic random in [0, 1) (the testing xorshift32) so every run picks the same services. */
function uniform(seed: number): () => number {
  const next = prng(seed);
  return () => next() / 0x1_0000_0000;
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * p) - 1)] as number;
}

function ip(n: number, last: number): string {
  return `10.${(n >> 8) & 255}.${n & 255}.${last}`;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

const fmt = (n: number, digits = 0): string => n.toFixed(digits).replace(/\B(?=(\d{3})+(?!\d))/g, ' ');
const verdict = (ok: boolean): string => (ok ? 'met' : '**MISSED**');

/**
 * A register command: node `node-<n>` with one service instance and its check. `version`
 * changes the service's Meta so every write really changes the services table.
 */
function registerCommand(n: number, service: string, slot: number, version: number): Command {
  const id = `${service}-${n}`;
  return {
    Type: MessageType.Register,
    Body: {
      Datacenter: 'dc1',
      ID: `0b6c${String(n).padStart(4, '0')}-2f1e-4a3c-9d2b-5e8f${String(n).padStart(8, '0')}`,
      Node: `node-${n}`,
      Address: ip(n, 10),
      TaggedAddresses: { lan: ip(n, 10), wan: `198.51.${(n >> 8) & 255}.${n & 255}` },
      NodeMeta: { rack: `r${n % 40}`, zone: `zone-${n % 3}`, os: 'linux' },
      Service: {
        ID: id,
        Service: service,
        Tags: ['v2', n % 2 ? 'primary' : 'secondary', `zone-${n % 3}`],
        Port: 20000 + slot,
        TaggedAddresses: { lan: { Address: ip(n, 10), Port: 20000 + slot }, wan: { Address: `198.51.${(n >> 8) & 255}.${n & 255}`, Port: 30000 + slot } },
        Meta: { version: String(version), team: `team-${slot}`, env: 'production', protocol: 'http' },
      },
      Checks: [
        {
          CheckID: `service:${id}`,
          Name: `Service '${service}' check`,
          Status: 'passing',
          Output: `HTTP GET http://${ip(n, 10)}:${20000 + slot}/health: 200 OK`,
          ServiceID: id,
        },
      ],
    },
  };
}

/** The i-th command of a throughput run: 500 nodes × 50 services, each write a new Meta version. */
function throughputCommand(i: number): Command {
  const n = i % 500;
  const s = i % 50;
  return registerCommand(n, `svc-${s}`, s, i);
}

// ---- 1. durable writes/s ---------------------------------------------------------------------

/** The baseline: a bare better-sqlite3 command log with the backend's durability settings. */
class BareLog {
  readonly #db: BetterSqlite3.Database;
  readonly #insert: BetterSqlite3.Statement<[number, string]>;
  readonly #one: (idx: number, json: string) => void;
  #last = 0;
  #queue: { command: Command; resolve: (r: { index: number }) => void; reject: (err: unknown) => void }[] = [];
  #scheduled = false;
  transactions = 0;
  entries = 0;

  constructor(dir: string) {
    mkdirSync(dir, { recursive: true });
    this.#db = new Database(join(dir, 'bare.db'));
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma('synchronous = FULL');
    this.#db.exec('CREATE TABLE IF NOT EXISTS log (idx INTEGER PRIMARY KEY, command TEXT NOT NULL)');
    this.#insert = this.#db.prepare('INSERT INTO log (idx, command) VALUES (?, ?)');
    this.#one = this.#db.transaction((idx: number, json: string) => {
      this.#insert.run(idx, json);
    });
  }

  /** One write in its own transaction; the promise resolves after the commit (fsync). */
  async writeNow(command: Command): Promise<{ index: number }> {
    const index = this.#last + 1;
    this.#one(index, JSON.stringify(command));
    this.#last = index;
    this.transactions++;
    this.entries++;
    return { index };
  }

  /** Group commit: writes queued in the same tick share one transaction, flushed by setImmediate. */
  writeGrouped(command: Command): Promise<{ index: number }> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ command, resolve, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => this.#flush());
      }
    });
  }

  #flush(): void {
    this.#scheduled = false;
    const batch = this.#queue;
    this.#queue = [];
    if (batch.length === 0) return;
    const start = this.#last;
    try {
      this.#db.transaction(() => {
        let idx = start;
        for (const p of batch) this.#insert.run(++idx, JSON.stringify(p.command));
      })();
    } catch (err) {
      for (const p of batch) p.reject(err);
      return;
    }
    this.#last = start + batch.length;
    this.transactions++;
    this.entries += batch.length;
    batch.forEach((p, k) => p.resolve({ index: start + k + 1 }));
  }

  close(): void {
    this.#db.close();
  }
}

type Impl = 'embedded' | 'bare';

interface RunResult {
  readonly rate: number;
  /** Process CPU (user + system) per acknowledged write, µs. */
  readonly cpuUs: number;
  readonly meanBatch: number;
}

/** `conc` writers, each awaiting its write before the next, for `ms`: acknowledged writes/s and CPU µs per write. */
async function drive(write: (c: Command) => Promise<unknown>, conc: number, ms: number): Promise<{ rate: number; cpuUs: number }> {
  let next = 0;
  let done = 0;
  const cpu0 = process.cpuUsage();
  const start = performance.now();
  const end = start + ms;
  await Promise.all(
    Array.from({ length: conc }, async () => {
      while (performance.now() < end) {
        await write(throughputCommand(next++));
        done++;
      }
    }),
  );
  const elapsed = (performance.now() - start) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return { rate: done / elapsed, cpuUs: (cpu.user + cpu.system) / done };
}

async function writeRun(impl: Impl, conc: number, ms: number): Promise<RunResult> {
  const dir = freshDir(impl);
  if (impl === 'embedded') {
    const backend = EmbeddedBackend.open({ dir, store: new StateStore() });
    try {
      const r = await drive((c) => backend.apply(c), conc, ms);
      const st = backend.stats;
      return { ...r, meanBatch: st.entries / Math.max(1, st.transactions) };
    } finally {
      backend.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const bare = new BareLog(dir);
  try {
    const r = await drive((c) => (conc === 1 ? bare.writeNow(c) : bare.writeGrouped(c)), conc, ms);
    return { ...r, meanBatch: bare.entries / Math.max(1, bare.transactions) };
  } finally {
    bare.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function durableWrites(): Promise<string> {
  const ms = QUICK ? 600 : 2000;
  const rounds = 3;
  // warm the JIT on both paths (untimed)
  for (const impl of ['bare', 'embedded'] as const) {
    await writeRun(impl, 1, QUICK ? 200 : 500);
    await writeRun(impl, 64, QUICK ? 200 : 500);
  }
  const rows: string[] = [];
  for (const conc of [1, 64]) {
    const res: Record<Impl, RunResult[]> = { embedded: [], bare: [] };
    for (let round = 0; round < rounds; round++) {
      const order: Impl[] = round % 2 ? ['embedded', 'bare'] : ['bare', 'embedded'];
      for (const impl of order) res[impl].push(await writeRun(impl, conc, ms));
    }
    const e = median(res.embedded.map((r) => r.rate));
    const b = median(res.bare.map((r) => r.rate));
    const perRound = res.embedded.map((r, k) => r.rate / (res.bare[k] as RunResult).rate);
    const ratio = e / b;
    const cpuE = median(res.embedded.map((r) => r.cpuUs));
    const cpuB = median(res.bare.map((r) => r.cpuUs));
    rows.push(
      `| c=${conc} | ${fmt(e)} | ${fmt(b)} | **${ratio.toFixed(2)}×** | ${median(perRound).toFixed(2)}× (${perRound.map((x) => x.toFixed(2)).join(', ')}) | ` +
        `${cpuE.toFixed(0)} / ${cpuB.toFixed(0)} (${(cpuB / cpuE).toFixed(2)}×) | ` +
        `${median(res.embedded.map((r) => r.meanBatch)).toFixed(1)} / ${median(res.bare.map((r) => r.meanBatch)).toFixed(1)} | ≥ 0.8×: ${verdict(ratio >= 0.8)} |`,
    );
  }
  return [
    `## 1. Acknowledged durable writes/s: EmbeddedBackend.apply vs bare better-sqlite3 (WAL, synchronous=FULL)`,
    `${rounds} interleaved rounds of ${ms} ms per side, fresh database per run, median; c=1 bare = one transaction per write, c=64 bare = setImmediate group commit`,
    '',
    '| writers | embedded writes/s | bare writes/s | **embedded / bare** (of medians) | median of same-round ratios (each round) | CPU µs per write embedded / bare (bare/embedded) | mean batch embedded / bare | target |',
    '|---|---|---|---|---|---|---|---|',
    ...rows,
  ].join('\n');
}

// ---- 2. blocking-query wake latency ------------------------------------------------------------

async function wakeLatency(): Promise<string> {
  const N = 1000;
  const warmup = 100;
  const samples = QUICK ? 500 : 1000;
  const dir = freshDir('wake');
  const store = new StateStore();
  const backend = EmbeddedBackend.open({ dir, store });
  const cmd = (i: number, version: number): Command => registerCommand(i, `svc-${i}`, i % 8, version);
  for (let b = 0; b < N; b += 100) {
    await Promise.all(Array.from({ length: Math.min(100, N - b) }, (_, k) => backend.apply(cmd(b + k, 0))));
  }

  const controllers: AbortController[] = [];
  const armed: Promise<void>[] = [];
  const wokeAt = new Float64Array(N);
  let woken: number[] = [];
  const arm = (i: number): void => {
    const ac = new AbortController();
    controllers[i] = ac;
    const name = `svc-${i}`;
    const { index } = store.checkServiceNodes(name);
    armed[i] = store.blockingQuery({ minQueryIndex: index, signal: ac.signal }, (ws) => store.checkServiceNodes(name, {}, ws)).then(
      (r) => {
        wokeAt[i] = performance.now();
        woken.push(i);
        if (r.value.length !== 1) throw new Error(`svc-${i}: expected 1 instance, got ${r.value.length}`);
      },
      (err: unknown) => {
        if (!ac.signal.aborted) throw err;
      },
    );
  };
  for (let i = 0; i < N; i++) arm(i);
  const watchersArmed = store.watcherCount;

  const rng = uniform(0x5eed);
  // baseline, interleaved write by write: the same command committed by a bare better-sqlite3 log
  const bareDir = freshDir('wake-bare');
  const bare = new BareLog(bareDir);
  const bareLat: number[] = [];
  const wake: number[] = [];
  const ack: number[] = [];
  const ackToWakeUs: number[] = [];
  let others = 0;
  let version = 1;
  for (let s = 0; s < warmup + samples; s++) {
    const j = Math.floor(rng() * N);
    const c = cmd(j, version++);
    woken = [];
    let tAck = 0;
    const t0 = performance.now();
    const acked = backend.apply(c).then(() => {
      tAck = performance.now();
    });
    await withTimeout(Promise.all([acked, armed[j]]), 10_000, `watcher of svc-${j} did not wake`);
    // let any other query woken by the same commit settle before counting
    await new Promise((r) => setImmediate(r));
    const extra = woken.filter((i) => i !== j);
    others += extra.length;
    if (s >= warmup) {
      wake.push((wokeAt[j] as number) - t0);
      ack.push(tAck - t0);
      ackToWakeUs.push(((wokeAt[j] as number) - tAck) * 1000);
    }
    for (const i of woken) arm(i);
    const tb = performance.now();
    await bare.writeNow(c);
    if (s >= warmup) bareLat.push(performance.now() - tb);
  }
  bare.close();
  rmSync(bareDir, { recursive: true, force: true });
  const watchersAfter = store.watcherCount;

  for (const ac of controllers) ac.abort();
  await Promise.all(armed);
  const watchersLeft = store.watcherCount;
  backend.close();
  rmSync(dir, { recursive: true, force: true });

  const row = (label: string, xs: number[], unit: string, digits: number, target = ''): string => {
    const s = [...xs].sort((a, b) => a - b);
    return `| ${label} | ${unit} | ${percentile(s, 0.5).toFixed(digits)} | ${percentile(s, 0.99).toFixed(digits)} | ${(s[s.length - 1] ?? 0).toFixed(digits)} | ${target} |`;
  };
  const p99 = percentile([...wake].sort((a, b) => a - b), 0.99);
  const lines = [
    `## 2. Blocking-query wake latency: ${N} watchers on checkServiceNodes('svc-<i>'), one random service re-registered per write (embedded)`,
    `${samples} samples after ${warmup} warm-up writes; each write is one fsync'd transaction`,
    '',
    '| measured | unit | p50 | p99 | max | target |',
    '|---|---|---|---|---|---|',
    row("apply() called → that service's query resolved", wake, 'ms', 3, `p99 < 5 ms: ${verdict(p99 < 5)}`),
    row('apply() called → apply() resolved (durable ack)', ack, 'ms', 3),
    row('durable ack → query resolved (negative: woke first)', ackToWakeUs, 'µs', 1),
    row('baseline: bare better-sqlite3 write of the same command, call → commit', bareLat, 'ms', 3),
    '',
    `other watchers woken per write: ${others === 0 ? '0' : `**${(others / (warmup + samples)).toFixed(3)} (${others} spurious wakeups in ${warmup + samples} writes) — MUST BE 0**`}` +
      ` (registered waiters: ${watchersArmed} armed, ${watchersAfter} after the writes, ${watchersLeft} after abort)`,
  ];
  return lines.join('\n');
}

// ---- 3. memory for 10 000 instances ------------------------------------------------------------

async function settledUsage(): Promise<{ rss: number; heap: number; heapTotal: number }> {
  for (let k = 0; k < 4; k++) {
    gc?.();
    await new Promise((r) => setImmediate(r));
  }
  const m = process.memoryUsage();
  return { rss: m.rss, heap: m.heapUsed, heapTotal: m.heapTotal };
}

const NODES = 2000;
const PER_NODE = 5;
const SERVICE_NAMES = 1000;
/** Instance k (0 ≤ k < 10 000): node k / 5, one of 1 000 service names (10 instances each). */
function memoryCommand(k: number): Command {
  const n = Math.floor(k / PER_NODE);
  const slot = k % PER_NODE;
  return registerCommand(n, `svc-${(n * PER_NODE + slot * 7) % SERVICE_NAMES}`, slot, 1);
}

async function memory(): Promise<string> {
  const total = NODES * PER_NODE;
  // warm up: load SQLite and compile the code paths so the baseline includes them
  {
    const dir = freshDir('mem-warm');
    const store = new StateStore();
    const b = EmbeddedBackend.open({ dir, store });
    await Promise.all(Array.from({ length: 200 }, (_, k) => b.apply(memoryCommand(k))));
    const bare = new StateStore();
    for (let k = 0; k < 200; k++) bare.apply(k + 1, memoryCommand(k));
    b.close();
    rmSync(dir, { recursive: true, force: true });
  }

  const before = await settledUsage();
  const dir = freshDir('mem');
  const store = new StateStore();
  const backend = EmbeddedBackend.open({ dir, store });
  for (let k = 0; k < total; k += 250) {
    await Promise.all(Array.from({ length: Math.min(250, total - k) }, (_, x) => backend.apply(memoryCommand(k + x))));
  }
  const afterEmbedded = await settledUsage();
  const counts = { nodes: store.nodes().value.length, instances: Object.keys(store.services().value).length };

  const bare = new StateStore();
  for (let k = 0; k < total; k++) bare.apply(k + 1, memoryCommand(k));
  const afterBare = await settledUsage();
  if (bare.nodes().value.length !== NODES) throw new Error('bare store: wrong node count');

  const eRss = (afterEmbedded.rss - before.rss) / MiB;
  const eHeap = (afterEmbedded.heap - before.heap) / MiB;
  const eTotal = (afterEmbedded.heapTotal - before.heapTotal) / MiB;
  const bRss = (afterBare.rss - afterEmbedded.rss) / MiB;
  const bHeap = (afterBare.heap - afterEmbedded.heap) / MiB;
  const bTotal = (afterBare.heapTotal - afterEmbedded.heapTotal) / MiB;
  const st = backend.stats;
  backend.close();
  rmSync(dir, { recursive: true, force: true });
  return [
    `## 3. Memory for ${fmt(total)} service instances (${fmt(NODES)} nodes × ${PER_NODE} services, 1 service check each; ${counts.nodes} nodes, ${counts.instances} service names)`,
    `after gc; ${gc ? '' : '**run with --expose-gc: without it these figures are unreliable**; '}embedded: ${st.transactions} transactions, ${st.snapshots} snapshot(s) written during the load`,
    'The embedded figure is taken first, on a fresh heap (honest for the target). The bare store is measured on top of the still-live',
    'embedded one, so it reuses heap pages the first load left committed: its heap-used Δ is exact, its RSS Δ an underestimate.',
    '',
    '| what | RSS Δ MiB | heap used Δ MiB | V8 heap total Δ MiB | per instance RSS / heap used | target |',
    '|---|---|---|---|---|---|',
    `| EmbeddedBackend + StateStore | ${eRss.toFixed(1)} | ${eHeap.toFixed(1)} | ${eTotal.toFixed(1)} | ${fmt((eRss * MiB) / total)} B / ${fmt((eHeap * MiB) / total)} B | < 100 MiB RSS: ${verdict(eRss < 100)} |`,
    `| bare StateStore (store.apply), on top | ${bRss.toFixed(1)} | ${bHeap.toFixed(1)} | ${bTotal.toFixed(1)} | ${fmt((bRss * MiB) / total)} B / ${fmt((bHeap * MiB) / total)} B | (context) |`,
  ].join('\n');
}

// ---- main --------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const t0 = performance.now();
  process.stdout.write(`state store bench${QUICK ? ' (--quick)' : ''}, node ${process.version}, temp dir ${ROOT}\n`);
  if (!gc) process.stdout.write('WARNING: run with node --expose-gc, else the memory figures are unreliable\n');
  process.stdout.write(`machine busy before: ${await machineBusyPercent()}%\n\n`);
  try {
    // memory first, on a fresh heap, so earlier sections' garbage does not hide its growth
    process.stdout.write(`${await memory()}\n\n`);
    process.stdout.write(`${await durableWrites()}\n\n`);
    process.stdout.write(`${await wakeLatency()}\n\n`);
  } finally {
    rmSync(ROOT, { recursive: true, force: true });
  }
  process.stdout.write(`machine busy after: ${await machineBusyPercent()}%\n`);
  process.stdout.write(`total ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
}

await main();
