/**
 * msgpack-RPC benchmark: `Status.Ping` calls/s and p50/p99 latency at concurrency 1 and 64 over
 * ONE TCP connection, meshfed client + server against Go net/rpc + net-rpc-msgpackrpc client +
 * server (test/interop/msgpackrpc-peer), measured in the same run, interleaved, repeated; prints
 * ratios and the machine's busy % before and after (these machines are shared and noisy).
 *
 *   node dist/bench/msgpack-rpc.js [--duration-ms 3000] [--warmup-ms 1000] [--repeats 3]
 *
 * Each side runs in its own process (client and server), for both implementations, so the two
 * cores are shared the same way. Sockets use TCP_NODELAY, as Go's do by default.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { createConnection, createServer, type AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { silentLogger } from '../src/core/logger.js';
import { Empty, EndpointRegistry, RpcClient, serveRpcConn, statusEndpoints } from '../src/plugins/rpc/msgpack/index.js';
import { buildGoPeer } from '../test/interop/go-peer.js';

const SELF = fileURLToPath(import.meta.url);

interface RunResult {
  calls: number;
  seconds: number;
  callsPerSec: number;
  p50us: number;
  p99us: number;
}

const { values: args } = parseArgs({
  options: {
    role: { type: 'string', default: 'main' },
    port: { type: 'string' },
    concurrency: { type: 'string', default: '1' },
    'duration-ms': { type: 'string', default: '3000' },
    'warmup-ms': { type: 'string', default: '1000' },
    repeats: { type: 'string', default: '3' },
  },
});

// ---------------------------------------------------------------------------------------------
// roles run in child processes

async function serverRole(): Promise<void> {
  const registry = new EndpointRegistry().registerAll(statusEndpoints({ leader: () => '127.0.0.1:8300', peers: () => ['127.0.0.1:8300'] }));
  const logger = silentLogger();
  const server = createServer({ allowHalfOpen: true, noDelay: true }, (sock) => {
    void serveRpcConn(sock, registry, { logger });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  process.stdout.write(`LISTENING ${(server.address() as AddressInfo).port}\n`);
  process.stdin.resume();
  process.stdin.on('end', () => process.exit(0));
}

async function clientRole(): Promise<void> {
  const concurrency = Number(args.concurrency);
  const durationMs = Number(args['duration-ms']);
  const warmupMs = Number(args['warmup-ms']);
  const sock = createConnection({ port: Number(args.port), host: '127.0.0.1', noDelay: true });
  await once(sock, 'connect');
  const client = new RpcClient(sock);
  let lat = new Float64Array(1 << 20);
  let n = 0;
  let measuring = false;
  let stop = false;
  const worker = async (): Promise<void> => {
    while (!stop) {
      const t0 = performance.now();
      await client.call('Status.Ping', {}, Empty, Empty);
      if (measuring) {
        if (n === lat.length) {
          const bigger = new Float64Array(lat.length * 2);
          bigger.set(lat);
          lat = bigger;
        }
        lat[n++] = performance.now() - t0;
      }
    }
  };
  const workers = Array.from({ length: concurrency }, () => worker());
  await new Promise((r) => setTimeout(r, warmupMs));
  measuring = true;
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, durationMs));
  measuring = false;
  const seconds = (performance.now() - t0) / 1000;
  stop = true;
  await Promise.all(workers);
  client.close();
  const sorted = lat.subarray(0, n).sort();
  const pct = (p: number): number => (n ? sorted[Math.floor((n - 1) * p)]! * 1000 : 0);
  const result: RunResult = { calls: n, seconds, callsPerSec: n / seconds, p50us: pct(0.5), p99us: pct(0.99) };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

// ---------------------------------------------------------------------------------------------
// orchestration

/** Machine-wide busy % over `ms`, from /proc/stat. */
async function busyPercent(ms = 1000): Promise<number> {
  const sample = async (): Promise<[number, number]> => {
    const line = (await readFile('/proc/stat', 'utf8')).split('\n')[0]!;
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    const idle = (f[3] ?? 0) + (f[4] ?? 0);
    const total = f.reduce((a, b) => a + b, 0);
    return [idle, total];
  };
  const [i0, t0] = await sample();
  await new Promise((r) => setTimeout(r, ms));
  const [i1, t1] = await sample();
  return t1 === t0 ? 0 : 100 * (1 - (i1 - i0) / (t1 - t0));
}

interface Proc {
  readonly lines: string[];
  waitLine(re: RegExp): Promise<RegExpExecArray>;
  done: Promise<number | null>;
  kill(): void;
}

function run(cmd: string, argv: string[]): Proc {
  const child = spawn(cmd, argv, { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines: string[] = [];
  let buf = '';
  const waiters: (() => void)[] = [];
  child.stdout.on('data', (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      lines.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
    for (const w of waiters.splice(0)) w();
  });
  const done = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return {
    lines,
    done,
    kill: () => child.kill('SIGKILL'),
    waitLine(re) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          for (const l of lines) {
            const m = re.exec(l);
            if (m) return resolve(m);
          }
          if (child.exitCode !== null) return reject(new Error(`${cmd} exited before printing ${re}`));
          waiters.push(check);
        };
        void done.then(() => waiters.length && check());
        check();
      });
    },
  };
}

async function runClient(impl: 'meshfed' | 'go', goBin: string, port: number, concurrency: number): Promise<RunResult> {
  const d = String(args['duration-ms']);
  const w = String(args['warmup-ms']);
  const p =
    impl === 'go'
      ? run(goBin, ['-mode', 'bench', '-addr', `127.0.0.1:${port}`, '-concurrency', String(concurrency), '-duration-ms', d, '-warmup-ms', w])
      : run(process.execPath, [SELF, '--role', 'client', '--port', String(port), '--concurrency', String(concurrency), '--duration-ms', d, '--warmup-ms', w]);
  const m = await p.waitLine(/^\{.*\}$/);
  await p.done;
  return JSON.parse(m[0]) as RunResult;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

async function main(): Promise<void> {
  const repeats = Number(args.repeats);
  const started = Date.now();
  const busyBefore = await busyPercent();
  const goBin = await buildGoPeer('msgpackrpc-peer');
  const goServer = run(goBin, ['-mode', 'server', '-addr', '127.0.0.1:0']);
  const meshServer = run(process.execPath, [SELF, '--role', 'server']);
  try {
    const goPort = Number((await goServer.waitLine(/^LISTENING .*:(\d+)$/))[1]);
    const meshPort = Number((await meshServer.waitLine(/^LISTENING (\d+)$/))[1]);
    const results = new Map<string, RunResult[]>();
    for (let rep = 0; rep < repeats; rep++) {
      for (const concurrency of [1, 64]) {
        // Alternate who goes first, so drift in machine load does not favour one side.
        const order: ('meshfed' | 'go')[] = rep % 2 === 0 ? ['go', 'meshfed'] : ['meshfed', 'go'];
        for (const impl of order) {
          const r = await runClient(impl, goBin, impl === 'go' ? goPort : meshPort, concurrency);
          const key = `${impl}/${concurrency}`;
          results.set(key, [...(results.get(key) ?? []), r]);
          process.stderr.write(`  rep ${rep + 1} c=${concurrency} ${impl.padEnd(7)} ${Math.round(r.callsPerSec)} calls/s  p50 ${r.p50us.toFixed(1)} µs  p99 ${r.p99us.toFixed(1)} µs\n`);
        }
      }
    }
    const busyAfter = await busyPercent();
    const row = (impl: string, c: number): { cps: number; p50: number; p99: number } => {
      const rs = results.get(`${impl}/${c}`)!;
      return { cps: median(rs.map((r) => r.callsPerSec)), p50: median(rs.map((r) => r.p50us)), p99: median(rs.map((r) => r.p99us)) };
    };
    const lines = [
      `msgpack-RPC Status.Ping over one TCP connection, ${repeats} interleaved repeats of ${args['duration-ms']} ms (median)`,
      `machine busy before: ${busyBefore.toFixed(1)} %, after: ${busyAfter.toFixed(1)} %`,
      '',
      'concurrency | impl    | calls/s  | p50 µs  | p99 µs  | calls/s ratio meshfed/Go (paired) | p50 ratio | p99 ratio',
      '----------- | ------- | -------- | ------- | ------- | --------------------------------- | --------- | ---------',
    ];
    for (const c of [1, 64]) {
      const g = row('go', c);
      const m = row('meshfed', c);
      // Ratio of each repeat's pair (run back to back), then the median: robust to load drift.
      const gs = results.get(`go/${c}`)!;
      const paired = median(results.get(`meshfed/${c}`)!.map((r, i) => r.callsPerSec / gs[i]!.callsPerSec));
      lines.push(`${String(c).padEnd(11)} | Go      | ${Math.round(g.cps).toString().padEnd(8)} | ${g.p50.toFixed(1).padEnd(7)} | ${g.p99.toFixed(1).padEnd(7)} |`);
      lines.push(
        `${String(c).padEnd(11)} | meshfed | ${Math.round(m.cps).toString().padEnd(8)} | ${m.p50.toFixed(1).padEnd(7)} | ${m.p99.toFixed(1).padEnd(7)} | ${`${(m.cps / g.cps).toFixed(2)} (${paired.toFixed(2)})`.padEnd(33)} | ${(m.p50 / g.p50).toFixed(2).padEnd(9)} | ${(m.p99 / g.p99).toFixed(2)}`,
      );
    }
    lines.push('', `(${((Date.now() - started) / 1000).toFixed(0)} s; ratios > 1 for calls/s and < 1 for latency favour meshfed)`);
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    goServer.kill();
    meshServer.kill();
  }
}

if (args.role === 'server') await serverRole();
else if (args.role === 'client') await clientRole();
else await main();
