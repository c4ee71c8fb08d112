/**
 * meshfed's SNI gateway (SniProxy, TLS passthrough) vs nginx `stream` + `ssl_preread` vs direct.
 *
 *   node dist/bench/gateway.js            # 5 rounds, about 2 minutes
 *   node dist/bench/gateway.js --quick    # 2 rounds, smaller runs, about 35 s
 *   node dist/bench/gateway.js --profile  # no comparison: --cpu-prof the gateway child under
 *                                         # bulk (C=16) and under new connections, one profile
 *   node dist/bench/gateway.js --split    # like --profile without the profiler: the user/sys
 *                                         # CPU split of both proxies per workload
 *                                         # each, plus user/sys CPU of both proxies per workload
 *
 * Method (see the gateway benchmark notes): one long-lived TLS 1.3 server (node:tls, own process:
 * echo, or sink with an 8-byte count reply) on 127.0.0.1 and three paths to it — direct, through
 * nginx (1 worker, default buffers, `map $ssl_preread_server_name` → upstream, own temp prefix,
 * config and pid, started and stopped here) and through SniProxy (in a child process routed by
 * Envoy v3 resources: a listener whose filter chain matches the server name → tcp_proxy → an EDS
 * cluster). One long-lived Node client process (one shared SecureContext, no verification on load
 * connections — the functional check verifies the chain once per path — full handshake on every
 * new connection) runs one job per stdin line. Per round, paths are interleaved and their order
 * rotated: bulk one-way MB/s with 1 and 16 connections (handshakes outside the timed window),
 * new TLS connections/s at concurrency 8 (handshake, 64-byte echo, clean close), and 64-byte
 * round trips on an established connection, all processes pinned to CPU 0 with `taskset` (and
 * again unpinned, reported separately). The proxies' own CPU is read from /proc/<pid>/stat
 * (utime+stime; nginx: master + worker) around each job: CPU-s per GB of payload, CPU-µs per
 * connection. Medians over rounds; added latency = path p50 − direct p50 of the same round.
 * Finally 1 000 connections are held open through each proxy and its VmRSS is read; the
 * gateway's stats() must show no connection left afterwards (the pipe() leak trap).
 *
 * Internal modes (spawned by the driver): `serve <cert> <key>`, `client-loop`; the gateway child
 * is bench/gateway-child.ts (it loads only the proxy, so its RSS is the gateway's).
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { generateCa, generateCert } from '../src/plugins/tls/certs.js';
import { machineBusyPercent, median, spawnLines, type Spawned } from './machine.js';

const SELF = fileURLToPath(import.meta.url);
/** The gateway child; MESHFED_BENCH_GATEWAY_CHILD overrides it (to compare a modified data plane). */
const GATEWAY_CHILD = process.env['MESHFED_BENCH_GATEWAY_CHILD'] ?? fileURLToPath(new URL('./gateway-child.js', import.meta.url));
const SNI = 'bench.gateway.test';
const CHUNK = 64 * 1024;
const MiB = 1024 * 1024;
/*
 * MESHFED_BENCH_NATIVE_ROUTING=0 (read by the gateway child) makes the native engine hand every connection to
 * TypeScript instead of routing it itself.
 *
 * MESHFED_BENCH_NGINX_HALF_CLOSE=1 adds `proxy_half_close on` (nginx ≥ 1.21.4) to nginx's server:
 * nginx then passes an end of stream on as meshfed's gateway always does, instead of closing both
 * sides (a diagnostic; the targets compare against nginx's defaults).
 */
/** nginx binary; MESHFED_BENCH_NGINX overrides it (e.g. a path that does not exist, to check the no-nginx run). */
const NGINX = process.env['MESHFED_BENCH_NGINX'] ?? '/usr/sbin/nginx';
const NGINX_STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so';
const INSTALL_HINT = 'apt-get install -y nginx libnginx-mod-stream';
const CLK_TCK = 100; // /proc/<pid>/stat ticks per second on Linux
const HELD = 1000;

function noop(): void {
  // errors surface through 'close' or the awaited promise
}

// ---- TLS 1.3 server (child) ----------------------------------------------------------------------

/**
 * First byte of each connection picks the mode: `E` echoes everything after it; `S` + a 64-bit
 * big-endian length sinks that many bytes and answers with the 8-byte count.
 */
async function serve(certFile: string, keyFile: string): Promise<void> {
  const server = tls.createServer(
    { cert: readFileSync(certFile), key: readFileSync(keyFile), minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' },
    (s) => {
      s.setNoDelay(true);
      s.on('error', noop);
      let mode = '';
      let head: Buffer | undefined = Buffer.alloc(0);
      let left = 0;
      let total = 0;
      const ack = (): void => {
        const b = Buffer.alloc(8);
        b.writeBigUInt64BE(BigInt(total));
        s.write(b);
      };
      s.on('data', (d: Buffer) => {
        if (mode === 'E') {
          s.write(d);
          return;
        }
        if (mode === 'S') {
          left -= d.length;
          total += d.length;
          if (left === 0) ack();
          return;
        }
        head = Buffer.concat([head ?? Buffer.alloc(0), d]);
        if (head[0] === 0x45) {
          mode = 'E';
          if (head.length > 1) s.write(head.subarray(1));
          head = undefined;
        } else if (head[0] === 0x53) {
          if (head.length < 9) return;
          mode = 'S';
          left = Number(head.readBigUInt64BE(1)) - (head.length - 9);
          total = head.length - 9;
          head = undefined;
          if (left === 0) ack();
        } else s.destroy();
      });
      s.on('end', () => s.end());
    },
  );
  server.on('tlsClientError', noop);
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0, backlog: 1024 }, resolve));
  process.stdout.write(`LISTEN ${(server.address() as net.AddressInfo).port}\n`);
  process.once('SIGTERM', () => process.exit(0));
}

// ---- client (child): one job per stdin line ------------------------------------------------------

let clientCtx: tls.SecureContext | undefined;

/** Counts bytes received on a socket; `until(n)` resolves once `n` bytes in total have arrived. */
class ByteWaiter {
  got = 0;
  #need = 0;
  #resolve: (() => void) | undefined;
  #reject: ((err: Error) => void) | undefined;
  constructor(readonly sock: tls.TLSSocket) {
    sock.on('data', (d: Buffer) => {
      this.got += d.length;
      if (this.#resolve && this.got >= this.#need) {
        const r = this.#resolve;
        this.#resolve = undefined;
        r();
      }
    });
    sock.on('close', () => this.#reject?.(new Error(`connection closed after ${this.got} bytes (waiting for ${this.#need})`)));
  }
  until(n: number): Promise<void> {
    if (this.got >= n) return Promise.resolve();
    this.#need = n;
    return new Promise<void>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
  }
}

function tlsOpen(port: number, verifyCa?: string): Promise<tls.TLSSocket> {
  const opts: tls.ConnectionOptions = verifyCa
    ? { host: '127.0.0.1', port, servername: SNI, ca: verifyCa, minVersion: 'TLSv1.3' }
    : { host: '127.0.0.1', port, servername: SNI, secureContext: (clientCtx ??= tls.createSecureContext({ minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' })), rejectUnauthorized: false };
  const s = tls.connect(opts);
  return new Promise((resolve, reject) => {
    s.once('secureConnect', () => {
      s.removeListener('error', reject);
      s.on('error', noop);
      s.setNoDelay(true);
      resolve(s);
    });
    s.once('error', reject);
  });
}

function closed(s: tls.TLSSocket): Promise<void> {
  return s.closed ? Promise.resolve() : new Promise((resolve) => s.once('close', () => resolve()));
}

const held: tls.TLSSocket[] = [];
const inputLines: string[] = [];
const inputWaiters: Array<(line: string) => void> = [];

function nextInput(): Promise<string> {
  const l = inputLines.shift();
  if (l !== undefined) return Promise.resolve(l);
  return new Promise((resolve) => inputWaiters.push(resolve));
}

function cpuSeconds(u: NodeJS.CpuUsage): number {
  return (u.user + u.system) / 1e6;
}

async function clientJob(args: string[]): Promise<string> {
  const [job, portS, a = '0', b = '0'] = args;
  const port = Number(portS);
  if (job === 'check') {
    const ca = readFileSync(a, 'utf8');
    const s = await tlsOpen(port, ca);
    const w = new ByteWaiter(s);
    const verdict = `${s.authorized ? 'verified' : 'unverified'} ${String(s.getProtocol())}`;
    s.write('Ehello');
    await w.until(5);
    s.end();
    await closed(s);
    return `RESULT ${verdict}`;
  }
  if (job === 'bulk') {
    // bulk <port> <conns> <bytes>: handshakes, then "OPENED", wait for "go" on stdin, timed sink.
    const conns = Number(a);
    const per = Math.floor(Number(b) / conns / CHUNK) * CHUNK;
    const socks = await Promise.all(Array.from({ length: conns }, () => tlsOpen(port)));
    const waiters = socks.map((s) => new ByteWaiter(s));
    process.stdout.write('OPENED\n');
    await nextInput();
    const payload = Buffer.alloc(CHUNK, 0x5a);
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await Promise.all(
      socks.map(async (s, i) => {
        const head = Buffer.alloc(9);
        head[0] = 0x53;
        head.writeBigUInt64BE(BigInt(per), 1);
        s.write(head);
        let left = per;
        while (left > 0) {
          left -= CHUNK;
          if (!s.write(payload)) await new Promise((r) => s.once('drain', r));
        }
        await (waiters[i] as ByteWaiter).until(8);
      }),
    );
    const secs = (performance.now() - t0) / 1000;
    const cpu = cpuSeconds(process.cpuUsage(cpu0));
    for (const s of socks) s.end();
    await Promise.all(socks.map(closed));
    return `RESULT ${per * conns} ${secs.toFixed(6)} ${cpu.toFixed(4)}`;
  }
  if (job === 'conns') {
    // conns <port> <concurrency> <ms>: full handshake, 64-byte echo, clean close, repeat.
    const concurrency = Number(a);
    const deadline = performance.now() + Number(b);
    const msg = Buffer.alloc(64, 0x61);
    msg[0] = 0x45;
    let count = 0;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (performance.now() < deadline) {
          const s = await tlsOpen(port);
          const w = new ByteWaiter(s);
          s.write(msg);
          await w.until(63);
          s.end();
          await closed(s);
          count++;
        }
      }),
    );
    const secs = (performance.now() - t0) / 1000;
    return `RESULT ${count} ${secs.toFixed(6)} ${cpuSeconds(process.cpuUsage(cpu0)).toFixed(4)}`;
  }
  if (job === 'ping') {
    // ping <port> <n> <warm>: 64-byte round trips on one established connection.
    const n = Number(a);
    const warm = Number(b);
    const s = await tlsOpen(port);
    const w = new ByteWaiter(s);
    s.write('E');
    const msg = Buffer.alloc(64, 0x62);
    const rtts: number[] = [];
    let expect = 0;
    for (let i = 0; i < warm + n; i++) {
      const t0 = process.hrtime.bigint();
      s.write(msg);
      expect += 64;
      await w.until(expect);
      if (i >= warm) rtts.push(Number(process.hrtime.bigint() - t0) / 1000);
    }
    s.end();
    await closed(s);
    rtts.sort((x, y) => x - y);
    const p = (q: number): number => rtts[Math.min(rtts.length - 1, Math.floor(q * rtts.length))] as number;
    return `RESULT ${p(0.5).toFixed(1)} ${p(0.99).toFixed(1)}`;
  }
  if (job === 'hold') {
    // hold <port> <n>: open n connections (50 at a time), one echo each, keep them open.
    const n = Number(a);
    let next = 0;
    await Promise.all(
      Array.from({ length: 50 }, async () => {
        while (next < n) {
          next++;
          const s = await tlsOpen(port);
          const w = new ByteWaiter(s);
          s.write('Ex');
          await w.until(1);
          held.push(s);
        }
      }),
    );
    return `RESULT ${held.length}`;
  }
  if (job === 'release') {
    const all = held.splice(0);
    for (const s of all) s.end();
    await Promise.all(all.map(closed));
    return `RESULT ${all.length}`;
  }
  throw new Error(`unknown job ${String(job)}`);
}

async function clientLoop(): Promise<void> {
  let buf = '';
  process.stdin.on('data', (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      const w = inputWaiters.shift();
      if (w) w(line);
      else inputLines.push(line);
    }
  });
  process.stdin.on('end', () => process.exit(0));
  for (;;) {
    const line = await nextInput();
    try {
      process.stdout.write(`${await clientJob(line.trim().split(/\s+/))}\n`);
    } catch (err) {
      process.stdout.write(`ERROR ${err instanceof Error ? err.message : String(err)}\n`);
    }
  }
}

// ---- driver helpers ------------------------------------------------------------------------------


/** utime+stime of a process in seconds (0 when it is gone). */
function cpuOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch {
    return 0;
  }
}

function rssMiB(pid: number, field = 'VmRSS'): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** RSS split from /proc/<pid>/status: anonymous (the process's own) and file-backed (mostly the shared executable). */
function rssSplit(pid: number): string {
  return `anon ${fmt(rssMiB(pid, 'RssAnon'), 1)} + file ${fmt(rssMiB(pid, 'RssFile'), 1)}`;
}

function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function pin(pids: readonly number[], cpus: string): void {
  for (const pid of pids) execFileSync('taskset', ['-a', '-p', '-c', cpus, String(pid)], { stdio: 'ignore' });
}

function freePort(): Promise<number> {
  const s = net.createServer();
  return new Promise((resolve) =>
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    }),
  );
}

async function waitListening(port: number, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`nothing listens on 127.0.0.1:${port} after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface NginxCheck {
  ok: boolean;
  version: string;
  loadModule: string | undefined;
  why: string;
}

function checkNginx(): NginxCheck {
  if (!existsSync(NGINX)) return { ok: false, version: '', loadModule: undefined, why: `${NGINX} not found` };
  const r = spawnSync(NGINX, ['-V'], { encoding: 'utf8' });
  const v = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  const version = /nginx version: (\S+)/.exec(v)?.[1] ?? 'nginx (version unknown)';
  const hasPreread = v.includes('--with-stream_ssl_preread_module');
  if (/--with-stream(\s|$)/.test(v) && hasPreread) return { ok: true, version, loadModule: undefined, why: '' };
  if (existsSync(NGINX_STREAM_MODULE)) return { ok: true, version, loadModule: NGINX_STREAM_MODULE, why: '' };
  return { ok: false, version, loadModule: undefined, why: `the stream module is missing (${NGINX_STREAM_MODULE})` };
}

function nginxConfig(dir: string, listenPort: number, upstreamPort: number, loadModule: string | undefined): string {
  return `${loadModule ? `load_module ${loadModule};\n` : ''}worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
worker_rlimit_nofile 8192;
events { worker_connections 4096; }
stream {
  upstream bench_upstream { server 127.0.0.1:${upstreamPort}; }
  upstream bench_refuse { server 127.0.0.1:1; }
  map $ssl_preread_server_name $upstream {
    ${SNI} bench_upstream;
    default bench_refuse;
  }
  server {
    listen 127.0.0.1:${listenPort} backlog=1024;
    ssl_preread on;
    proxy_pass $upstream;${process.env['MESHFED_BENCH_NGINX_HALF_CLOSE'] === '1' ? '\n    proxy_half_close on;' : ''}
  }
}
`;
}

// ---- driver --------------------------------------------------------------------------------------

type PathName = 'direct' | 'nginx' | 'meshfed';

interface PathInfo {
  name: PathName;
  port: number;
  /** Processes whose CPU is the proxy's own (empty for direct). */
  proxyPids: () => number[];
}

interface Samples {
  mbps1: number[];
  mbps16: number[];
  cpuGB1: number[];
  cpuGB16: number[];
  connsPerSec: number[];
  cpuUsPerConn: number[];
  p50pin: number[];
  p99pin: number[];
  addedPin: number[];
  p50: number[];
  p99: number[];
  added: number[];
}

function emptySamples(): Samples {
  return { mbps1: [], mbps16: [], cpuGB1: [], cpuGB16: [], connsPerSec: [], cpuUsPerConn: [], p50pin: [], p99pin: [], addedPin: [], p50: [], p99: [], added: [] };
}

const med = (xs: readonly number[]): number => (xs.length === 0 ? NaN : median(xs));
const fmt = (x: number, d = 0): string => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');
const ratio = (a: number, b: number): number => (Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? a / b : NaN);

/** utime and stime of a process in seconds. */
function cpuSplit(pid: number): [number, number] {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return [Number(f[11]) / CLK_TCK, Number(f[12]) / CLK_TCK];
  } catch {
    return [0, 0];
  }
}

type BulkFn = (p: PathInfo, conns: number, bytes: number) => Promise<{ mbps: number; cpuPerGB: number }>;
type ConnFn = (p: PathInfo, ms: number) => Promise<{ perSec: number; cpuUs: number; count: number }>;

/**
 * `--profile`: for each workload a fresh gateway child under `--cpu-prof` (one profile per
 * workload), and the user/system split of both proxies' CPU for the same workload (nginx is not
 * profiled; the profiler's own overhead inflates the gateway's figures a little). `--split`: the
 * same passes without the profiler (the split as it is in the comparison).
 */
async function profilePasses(
  out: (s: string) => void,
  paths: readonly PathInfo[],
  serverPort: number,
  job: (line: string) => Promise<RegExpExecArray>,
  bulk: BulkFn,
  connRate: ConnFn,
  quick: boolean,
  cpuProf: boolean,
): Promise<void> {
  const profRoot = mkdtempSync(join(tmpdir(), 'meshfed-gw-prof-'));
  const workloads: Array<[string, (p: PathInfo) => Promise<number>]> = [
    [
      'bulk',
      async (p) => {
        let bytes = 0;
        for (let i = 0; i < (quick ? 2 : 4); i++) {
          await bulk(p, 16, 512 * MiB);
          bytes += 512 * MiB; // a multiple of 16 × 64 KiB: sent exactly
        }
        return bytes / 1e9;
      },
    ],
    [
      'conns',
      async (p) => {
        const r = await connRate(p, quick ? 3000 : 8000);
        return r.count;
      },
    ],
  ];
  for (const [name, run] of workloads) {
    const dir = join(profRoot, name);
    const gw = spawnLines(process.execPath, [...(cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${dir}`] : []), GATEWAY_CHILD, String(serverPort), SNI]);
    const port = Number((await gw.nextLine(/^LISTEN (\d+)/))[1]);
    const targets: PathInfo[] = [...paths.filter((p) => p.name === 'nginx'), { name: 'meshfed', port, proxyPids: () => [gw.pid] }];
    for (const p of targets) {
      await job(`conns ${p.port} 8 500`);
      await bulk(p, 16, 64 * MiB);
      const pids = p.proxyPids();
      const before = pids.map(cpuSplit);
      const units = await run(p);
      const after = pids.map(cpuSplit);
      let user = 0;
      let sys = 0;
      after.forEach(([u, s], i) => {
        user += u - (before[i] as [number, number])[0];
        sys += s - (before[i] as [number, number])[1];
      });
      const unit = name === 'bulk' ? 'CPU-s/GB' : 'CPU-µs/conn';
      const scale = name === 'bulk' ? 1 : 1e6;
      out(`profile ${name.padEnd(5)} ${p.name.padEnd(7)}: ${unit} user ${fmt((user * scale) / units, 2)} + sys ${fmt((sys * scale) / units, 2)} = ${fmt(((user + sys) * scale) / units, 2)}${p.name === 'meshfed' && cpuProf ? ' (under --cpu-prof)' : ''}`);
    }
    gw.child.kill('SIGTERM');
    await new Promise((r) => gw.child.once('exit', r));
    if (cpuProf) out(`gateway CPU profile (${name}): ${readdirSync(dir).map((f) => join(dir, f)).join(' ')}`);
  }
}

async function driver(quick: boolean, profile: 'cpu-prof' | 'split' | undefined): Promise<void> {
  const rounds = quick ? 2 : 5;
  const bulkBytes = (quick ? 128 : 512) * MiB;
  const connMs = quick ? 1500 : 3000;
  const pings = quick ? 1000 : 3000;
  const out = (s: string): void => void process.stdout.write(`${s}\n`);
  out(`gateway bench: ${rounds} round(s); bulk ${bulkBytes / MiB} MiB one-way per run (64 KiB writes); new connections for ${connMs} ms at concurrency 8; ${pings} × 64-byte round trips; node ${process.version}, ${readFileSync('/proc/cpuinfo', 'utf8').split('\n').filter((l) => l.startsWith('processor')).length} CPUs`);
  out(`machine busy before: ${await machineBusyPercent(1000)} %`);
  const ngx = checkNginx();
  if (!ngx.ok) {
    out(`nginx: NOT AVAILABLE (${ngx.why}). Install it with:  ${INSTALL_HINT}   — running meshfed vs direct only.`);
  } else {
    out(`nginx: ${ngx.version} (${NGINX}, stream module ${ngx.loadModule ? `loaded from ${ngx.loadModule}` : 'built in'}), 1 worker, default proxy buffers`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'meshfed-gw-bench-'));
  const ca = await generateCa();
  const cert = await generateCert({ ca, kind: 'server', datacenter: 'dc1', node: 'node1', additionalDnsNames: [SNI] });
  writeFileSync(join(dir, 'ca.pem'), ca.certPem);
  writeFileSync(join(dir, 'server.pem'), cert.certPem);
  writeFileSync(join(dir, 'server.key'), cert.keyPem, { mode: 0o600 });

  const spawned: Spawned[] = [];
  let nginxMaster: ChildProcess | undefined;
  try {
    const server = spawnLines(process.execPath, [SELF, 'serve', join(dir, 'server.pem'), join(dir, 'server.key')]);
    spawned.push(server);
    const serverPort = Number((await server.nextLine(/^LISTEN (\d+)/))[1]);
    const gw = spawnLines(process.execPath, [GATEWAY_CHILD, String(serverPort), SNI]);
    spawned.push(gw);
    const gwPort = Number((await gw.nextLine(/^LISTEN (\d+)/))[1]);
    const client = spawnLines(process.execPath, [SELF, 'client-loop']);
    spawned.push(client);

    const paths: PathInfo[] = [{ name: 'direct', port: serverPort, proxyPids: () => [] }];
    if (ngx.ok) {
      const nport = await freePort();
      const conf = join(dir, 'nginx.conf');
      writeFileSync(conf, nginxConfig(dir, nport, serverPort, ngx.loadModule));
      const master = spawn(NGINX, ['-p', `${dir}/`, '-c', conf, '-e', join(dir, 'error.log')], { stdio: ['ignore', 'ignore', 'pipe'] });
      nginxMaster = master;
      let nerr = '';
      master.stderr?.on('data', (d: Buffer) => (nerr += d.toString()));
      try {
        await waitListening(nport);
      } catch (err) {
        throw new Error(`nginx did not start: ${nerr} ${existsSync(join(dir, 'error.log')) ? readFileSync(join(dir, 'error.log'), 'utf8') : ''}`, { cause: err });
      }
      const mpid = master.pid as number;
      paths.push({ name: 'nginx', port: nport, proxyPids: () => [mpid, ...childrenOf(mpid)] });
      out(`nginx config (${conf}):\n${readFileSync(conf, 'utf8').replace(/^/gm, '    ')}`);
    }
    paths.push({ name: 'meshfed', port: gwPort, proxyPids: () => [gw.pid] });

    const job = async (line: string): Promise<RegExpExecArray> => {
      client.send(line);
      return client.nextLine(/^RESULT (.*)$/);
    };
    for (const p of paths) {
      const m = await job(`check ${p.port} ${join(dir, 'ca.pem')}`);
      out(`functional check ${p.name.padEnd(7)}: ${m[1] as string} (server name ${SNI}, certificate verified against the CA)`);
    }

    const proxyCpu = (p: PathInfo): number => p.proxyPids().reduce((a, pid) => a + cpuOf(pid), 0);
    const bulk: BulkFn = async (p, conns, bytes) => {
      client.send(`bulk ${p.port} ${conns} ${bytes}`);
      await client.nextLine(/^OPENED$/);
      const c0 = proxyCpu(p);
      client.send('go');
      const m = await client.nextLine(/^RESULT (\d+) ([\d.]+) ([\d.]+)/);
      const cpu = proxyCpu(p) - c0;
      const b = Number(m[1]);
      return { mbps: b / 1e6 / Number(m[2]), cpuPerGB: cpu / (b / 1e9) };
    };
    const connRate: ConnFn = async (p, ms) => {
      const c0 = proxyCpu(p);
      const m = await job(`conns ${p.port} 8 ${ms}`);
      const cpu = proxyCpu(p) - c0;
      const [count, secs] = (m[1] as string).split(' ').map(Number) as [number, number];
      return { perSec: count / secs, cpuUs: (cpu * 1e6) / count, count };
    };
    const ping = async (p: PathInfo, n: number): Promise<{ p50: number; p99: number }> => {
      const m = await job(`ping ${p.port} ${n} ${Math.max(200, n / 10)}`);
      const [p50, p99] = (m[1] as string).split(' ').map(Number) as [number, number];
      return { p50, p99 };
    };
    const allPids = (): number[] => [server.pid, client.pid, gw.pid, ...paths.flatMap((p) => p.proxyPids())].filter((v, i, a) => a.indexOf(v) === i);

    if (profile) {
      await profilePasses(out, paths, serverPort, job, bulk, connRate, quick, profile === 'cpu-prof');
      return;
    }

    // Untimed warm-up: JIT for the Node processes, nginx's worker warmed the same way.
    for (const p of paths) {
      await bulk(p, 1, 64 * MiB);
      await bulk(p, 16, 64 * MiB);
      await connRate(p, 500);
      await ping(p, 300);
    }

    const samples = new Map<PathName, Samples>(paths.map((p) => [p.name, emptySamples()]));
    const S = (n: PathName): Samples => samples.get(n) as Samples;
    for (let r = 0; r < rounds; r++) {
      const order = paths.map((_, k) => paths[(k + r) % paths.length] as PathInfo);
      for (const p of order) {
        const x = await bulk(p, 1, bulkBytes);
        S(p.name).mbps1.push(x.mbps);
        S(p.name).cpuGB1.push(x.cpuPerGB);
      }
      for (const p of order) {
        const x = await bulk(p, 16, bulkBytes);
        S(p.name).mbps16.push(x.mbps);
        S(p.name).cpuGB16.push(x.cpuPerGB);
      }
      for (const p of order) {
        const x = await connRate(p, connMs);
        S(p.name).connsPerSec.push(x.perSec);
        S(p.name).cpuUsPerConn.push(x.cpuUs);
      }
      // Latency pinned to CPU 0 (cross-CPU wake-ups otherwise dominate), then unpinned.
      const pids = allPids();
      pin(pids, '0');
      const pinned = new Map<PathName, { p50: number; p99: number }>();
      try {
        for (const p of order) pinned.set(p.name, await ping(p, pings));
      } finally {
        pin(pids, `0-${Math.max(0, (readdirSync('/sys/devices/system/cpu').filter((d) => /^cpu\d+$/.test(d)).length || 1) - 1)}`);
      }
      const free = new Map<PathName, { p50: number; p99: number }>();
      for (const p of order) free.set(p.name, await ping(p, pings));
      for (const p of paths) {
        const s = S(p.name);
        const a = pinned.get(p.name) as { p50: number; p99: number };
        const b = free.get(p.name) as { p50: number; p99: number };
        s.p50pin.push(a.p50);
        s.p99pin.push(a.p99);
        s.addedPin.push(a.p50 - (pinned.get('direct') as { p50: number }).p50);
        s.p50.push(b.p50);
        s.p99.push(b.p99);
        s.added.push(b.p50 - (free.get('direct') as { p50: number }).p50);
      }
      const line = (n: PathName): string => {
        const s = S(n);
        return `${n} ${fmt(s.mbps1[r] as number)}/${fmt(s.mbps16[r] as number)} MB/s ${fmt(s.connsPerSec[r] as number)} c/s ${fmt(s.p50pin[r] as number)} µs`;
      };
      out(`  round ${r + 1}/${rounds} (${order.map((p) => p.name).join(' → ')}): ${paths.map((p) => line(p.name)).join(' | ')}`);
    }

    // Memory with 1 000 open connections through each proxy: the long-running proxies (after all
    // the load above), and a fresh gateway child that only ever saw these connections.
    const rss = new Map<string, { idle: number; held: number }>();
    const memOf = async (g: Spawned | undefined): Promise<string> => {
      if (!g) return '';
      g.send('mem');
      const u = JSON.parse((await g.nextLine(/^MEM (.*)$/))[1] as string) as NodeJS.MemoryUsage;
      return ` (V8 heap ${fmt(u.heapTotal / MiB, 1)} MiB of which ${fmt(u.heapUsed / MiB, 1)} used, external ${fmt(u.external / MiB, 1)}, array buffers ${fmt(u.arrayBuffers / MiB, 1)})`;
    };
    const holdAndMeasure = async (label: string, port: number, pid: number, g?: Spawned): Promise<void> => {
      const idle = rssMiB(pid);
      const idleSplit = rssSplit(pid);
      const idleMem = await memOf(g);
      const m = await job(`hold ${port} ${HELD}`);
      await new Promise((res) => setTimeout(res, 300));
      const withConns = rssMiB(pid);
      rss.set(label, { idle, held: withConns });
      out(`held ${m[1] as string} connections through ${label}: proxy VmRSS ${fmt(idle, 1)} MiB [${idleSplit}]${idleMem} → ${fmt(withConns, 1)} MiB [${rssSplit(pid)}]${await memOf(g)}`);
      await job('release');
    };
    for (const p of paths) {
      if (p.name === 'nginx') {
        const master = p.proxyPids()[0] as number;
        await holdAndMeasure('nginx', p.port, childrenOf(master)[0] ?? master);
      } else if (p.name === 'meshfed') await holdAndMeasure('meshfed', p.port, gw.pid, gw);
    }
    const fresh = spawnLines(process.execPath, [GATEWAY_CHILD, String(serverPort), SNI]);
    spawned.push(fresh);
    const freshPort = Number((await fresh.nextLine(/^LISTEN (\d+)/))[1]);
    await job(`conns ${freshPort} 8 300`); // the code paths run once, as in a gateway that is in use
    await holdAndMeasure('meshfed-fresh', freshPort, fresh.pid, fresh);
    fresh.child.kill('SIGTERM');
    // Leak check: after everything has closed, the gateway must hold no connection.
    let st: { active: number; total: number; spliced: number; refused: object } | undefined;
    for (let i = 0; i < 50; i++) {
      gw.send('stats');
      st = JSON.parse((await gw.nextLine(/^STATS (.*)$/))[1] as string) as typeof st;
      if (st && st.active === 0) break;
      await new Promise((res) => setTimeout(res, 100));
    }
    out(`gateway stats after the run: active ${st?.active ?? '?'} of ${st?.total ?? '?'} accepted (${st?.spliced ?? '?'} spliced), refused ${JSON.stringify(st?.refused ?? {})}${st?.active === 0 ? ' — no connection left open' : ' — CONNECTIONS LEFT OPEN'}`);

    // ---- tables ----
    const has = (n: PathName): boolean => samples.has(n);
    const v = (n: PathName, k: keyof Samples): number => (has(n) ? med(S(n)[k]) : NaN);
    out('\nend to end (medians)        bulk C=1 MB/s  bulk C=16 MB/s   new conn/s   RTT p50/p99 µs pinned   added p50 pinned   RTT p50/p99 µs unpinned   added p50 unpinned');
    const rows: Array<[string, PathName]> = [
      ['direct (no proxy)', 'direct'],
      ['nginx', 'nginx'],
      ['meshfed SniProxy', 'meshfed'],
    ];
    for (const [label, n] of rows) {
      if (!has(n)) {
        out(`${label.padEnd(26)}   (not run)`);
        continue;
      }
      out(
        `${label.padEnd(26)} ${fmt(v(n, 'mbps1')).padStart(13)} ${fmt(v(n, 'mbps16')).padStart(15)} ${fmt(v(n, 'connsPerSec')).padStart(12)} ${`${fmt(v(n, 'p50pin'))}/${fmt(v(n, 'p99pin'))}`.padStart(23)} ${(n === 'direct' ? '—' : `+${fmt(v(n, 'addedPin'))} µs`).padStart(18)} ${`${fmt(v(n, 'p50'))}/${fmt(v(n, 'p99'))}`.padStart(25)} ${(n === 'direct' ? '—' : `+${fmt(v(n, 'added'))} µs`).padStart(20)}`,
      );
    }
    const vsDirect = (n: PathName, k: keyof Samples): string => `${fmt(ratio(v(n, k), v('direct', k)), 2)}×`;
    out(`${'meshfed / direct'.padEnd(26)} ${vsDirect('meshfed', 'mbps1').padStart(13)} ${vsDirect('meshfed', 'mbps16').padStart(15)} ${vsDirect('meshfed', 'connsPerSec').padStart(12)}`);
    if (has('nginx')) {
      out(`${'nginx / direct'.padEnd(26)} ${vsDirect('nginx', 'mbps1').padStart(13)} ${vsDirect('nginx', 'mbps16').padStart(15)} ${vsDirect('nginx', 'connsPerSec').padStart(12)}`);
      const r = (k: keyof Samples): string => `${fmt(ratio(v('meshfed', k), v('nginx', k)), 2)}×`;
      out(`${'meshfed / nginx'.padEnd(26)} ${r('mbps1').padStart(13)} ${r('mbps16').padStart(15)} ${r('connsPerSec').padStart(12)} ${r('p50pin').padStart(23)} ${r('addedPin').padStart(18)} ${r('p50').padStart(25)} ${r('added').padStart(20)}`);
    }

    out('\nproxy process only (medians)   CPU-s/GB C=1   CPU-s/GB C=16   CPU-µs/conn   VmRSS idle → 1000 conns MiB');
    for (const n of ['nginx', 'meshfed'] as const) {
      if (!has(n)) {
        out(`${n.padEnd(30)}   (not run)`);
        continue;
      }
      const m = rss.get(n);
      const f = n === 'meshfed' ? rss.get('meshfed-fresh') : undefined;
      out(`${(n === 'nginx' ? 'nginx (master + worker)' : 'meshfed SniProxy (child)').padEnd(30)} ${fmt(v(n, 'cpuGB1'), 2).padStart(13)} ${fmt(v(n, 'cpuGB16'), 2).padStart(15)} ${fmt(v(n, 'cpuUsPerConn')).padStart(13)}   ${m ? `${fmt(m.idle, 1)} → ${fmt(m.held, 1)}` : 'n/a'}${f ? ` (fresh child: ${fmt(f.idle, 1)} → ${fmt(f.held, 1)})` : ''}`);
    }
    if (has('nginx')) {
      const r = (k: keyof Samples): string => `${fmt(ratio(v('meshfed', k), v('nginx', k)), 2)}×`;
      out(`${'meshfed / nginx'.padEnd(30)} ${r('cpuGB1').padStart(13)} ${r('cpuGB16').padStart(15)} ${r('cpuUsPerConn').padStart(13)}`);
    }

    // ---- targets ----
    const q = (k: keyof Samples): number => ratio(v('meshfed', k), v('nginx', k));
    const verdict = (ok: boolean | undefined): string => (ok === undefined ? 'n/a (no nginx)' : ok ? 'met' : 'MISSED');
    const vsN = (x: number, okFn: (x: number) => boolean): boolean | undefined => (Number.isFinite(x) ? okFn(x) : undefined);
    const gwRss = rss.get('meshfed')?.held ?? NaN;
    const gwRssFresh = rss.get('meshfed-fresh')?.held ?? NaN;
    const targets: Array<[string, string, boolean | undefined]> = [
      ['proxy CPU per GB (C=16) ≤ 1.0× nginx', `${fmt(q('cpuGB16'), 2)}× (C=1: ${fmt(q('cpuGB1'), 2)}×)`, vsN(q('cpuGB16'), (x) => x <= 1.0)],
      ['proxy CPU per connection ≤ 1.2× nginx', `${fmt(q('cpuUsPerConn'), 2)}×`, vsN(q('cpuUsPerConn'), (x) => x <= 1.2)],
      ['throughput ≥ 1.0× nginx (C=1 and C=16)', `${fmt(q('mbps1'), 2)}× / ${fmt(q('mbps16'), 2)}×`, vsN(Math.min(q('mbps1'), q('mbps16')), (x) => x >= 1.0)],
      ['new connections/s ≥ 1.0× nginx', `${fmt(q('connsPerSec'), 2)}×`, vsN(q('connsPerSec'), (x) => x >= 1.0)],
      ['added p50 latency (pinned) ≤ 1.2× nginx', `+${fmt(v('meshfed', 'addedPin'))} vs +${fmt(v('nginx', 'addedPin'))} µs = ${fmt(q('addedPin'), 2)}×`, vsN(q('addedPin'), (x) => x <= 1.2)],
      [`gateway RSS with ${HELD} open connections < 100 MiB`, `${fmt(gwRss, 1)} after load, ${fmt(gwRssFresh, 1)} fresh`, Number.isFinite(gwRss) ? Math.max(gwRss, gwRssFresh) < 100 : undefined],
    ];
    out('\ntargets');
    for (const [what, got, ok] of targets) out(`  ${what.padEnd(50)} ${got.padEnd(32)} ${verdict(ok)}`);
    out(`machine busy after: ${await machineBusyPercent(1000)} %`);
  } finally {
    for (const s of spawned) {
      s.child.stdin?.end();
      s.child.kill('SIGTERM');
    }
    if (nginxMaster && nginxMaster.exitCode === null) {
      nginxMaster.kill('SIGTERM');
      await new Promise((r) => nginxMaster?.once('exit', r));
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

const [, , cmd, ...rest] = process.argv;
if (cmd === 'serve') await serve(rest[0] as string, rest[1] as string);
else if (cmd === 'client-loop') await clientLoop();
else await driver(process.argv.includes('--quick'), process.argv.includes('--profile') ? 'cpu-prof' : process.argv.includes('--split') ? 'split' : undefined);
