/**
 * yamux throughput and idle-stream memory: meshfed vs Go hashicorp/yamux vs raw TCP (Node).
 *
 *   node dist/bench/yamux.js            # everything, about 1 minute
 *   node dist/bench/yamux.js --quick    # 64 MiB runs, one repetition
 *
 * Fairness: every variant runs as two processes on loopback, a long-lived server and a client;
 * all use 64 KiB writes and the same ops protocol (test/plugins/yamux/peer-ops.ts,
 * test/interop/yamux-peer/main.go). Echo counts the payload once (it crosses loopback twice);
 * one-way is a sink that replies with an 8-byte count. Each run opens a fresh connection (and
 * session), sends an untimed 32 MiB warm-up on one stream, then the timed payload over 1 or 16
 * streams (raw TCP: 1 or 16 connections). Go runs its own reference peer (Debian's
 * hashicorp/yamux, default config, 256 KiB window), a fresh client process per run; meshfed uses
 * its defaults too. The Node clients are long-lived processes (like an agent) fed one run per
 * stdin line, and an untimed pass runs first, so Node is measured with compiled code, not while
 * V8 warms up. Variants are interleaved (order rotated per repetition) and repeated 3 times; the
 * median is reported with the ratio meshfed/Go, CPU seconds per GB (client + server; the server
 * share includes the warm-up bytes) and the machine's busy % before and after.
 *
 * Internal modes (spawned by the driver): `serve meshfed|raw`, `client-loop`,
 * `client <kind> <port> <mode> <streams> <bytes> <warmup>` (one run), `idle <count>`.
 */
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { YamuxSession } from '../src/plugins/yamux/index.js';
import { buildGoPeer } from '../test/interop/go-peer.js';
import { readExactly, serveOps } from '../test/plugins/yamux/peer-ops.js';
import { spawnLines, type Spawned } from './machine.js';

const SELF = fileURLToPath(import.meta.url);
const CHUNK = 64 * 1024;
const MiB = 1024 * 1024;
const RESULT_RE = /^RESULT (\d+) ([\d.]+)(?: ([\d.]+))?/;

type Kind = 'meshfed' | 'raw';
type Mode = 'echo' | 'sink';

// ---- servers -------------------------------------------------------------------------------------

async function serve(kind: Kind): Promise<void> {
  const server = createServer((sock) => {
    sock.setNoDelay(true);
    sock.on('error', () => undefined);
    if (kind === 'raw') {
      void serveOps(sock).catch(() => sock.destroy());
      return;
    }
    const session = YamuxSession.server(sock, {
      onStream: (stream) => {
        void serveOps(stream, session).catch(() => stream.destroy());
      },
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const addr = server.address() as { port: number };
  process.stdout.write(`LISTEN 127.0.0.1:${addr.port}\n`);
  // Runs until the driver stops it (SIGTERM exits cleanly, so --cpu-prof can write its profile).
  process.once('SIGTERM', () => process.exit(0));
}

// ---- clients -------------------------------------------------------------------------------------

function benchStream(s: Duplex, mode: Mode, n: number, payload: Buffer): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    s.on('error', reject);
    let left = n;
    const head = mode === 'echo' ? Buffer.from('E') : Buffer.alloc(9);
    if (mode === 'sink') {
      head[0] = 's'.charCodeAt(0);
      head.writeBigUInt64BE(BigInt(n), 1);
    }
    const pump = (): void => {
      while (left > 0) {
        const k = Math.min(left, payload.length);
        left -= k;
        if (!s.write(k === payload.length ? payload : payload.subarray(0, k))) {
          s.once('drain', pump);
          return;
        }
      }
    };
    s.write(head);
    pump();
    if (mode === 'echo') {
      let got = 0;
      s.on('data', (d: Buffer) => {
        got += d.length;
        if (got >= n) {
          s.end();
          resolve();
        }
      });
    } else {
      readExactly(s, 8).then((b) => {
        const c = Number(b.readBigUInt64BE());
        s.end();
        if (c === n) resolve();
        else reject(new Error(`sink counted ${c}, sent ${n}`));
      }, reject);
    }
  });
}

async function rawConnect(port: number): Promise<Socket> {
  const s = connect(port, '127.0.0.1');
  s.setNoDelay(true);
  await once(s, 'connect');
  return s;
}

/** One client run: a fresh connection (and session), an untimed warm-up round, the timed round. */
async function clientRun(kind: Kind, port: number, mode: Mode, streams: number, total: number, warmup: number): Promise<string> {
  const payload = Buffer.alloc(CHUNK, 0x5a);
  let session: YamuxSession | undefined;
  if (kind === 'meshfed') session = YamuxSession.client(await rawConnect(port));
  const open = async (): Promise<Duplex> => (session ? session.open() : rawConnect(port));
  const round = async (count: number, bytes: number): Promise<void> => {
    const per = Math.floor(bytes / count);
    await Promise.all(Array.from({ length: count }, async () => benchStream(await open(), mode, per, payload)));
  };
  if (warmup > 0) await round(1, warmup);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await round(streams, total);
  const secs = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  await session?.close();
  return `RESULT ${total} ${secs.toFixed(6)} ${((cpu.user + cpu.system) / 1e6).toFixed(4)}`;
}

/**
 * A long-lived Node client: one run per stdin line `<kind> <port> <mode> <streams> <bytes> <warmup>`.
 * Long-lived like the server (and like an agent), so runs measure JIT-compiled code rather than
 * V8 warming up; Go needs no warm-up, its client is a fresh process per run.
 */
async function clientLoop(): Promise<void> {
  let buf = '';
  for await (const d of process.stdin) {
    buf += (d as Buffer).toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const [kind, port, mode, streams, bytes, warmup] = buf.slice(0, i).split(' ');
      buf = buf.slice(i + 1);
      const line = await clientRun(kind as Kind, Number(port), mode as Mode, Number(streams), Number(bytes), Number(warmup));
      process.stdout.write(`${line}\n`);
    }
  }
}

// ---- idle streams memory -------------------------------------------------------------------------

async function idle(count: number): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  const settle = async (): Promise<number> => {
    for (let i = 0; i < 3; i++) {
      gc?.();
      await new Promise((r) => setImmediate(r));
    }
    return process.memoryUsage().rss;
  };
  let serverSession: YamuxSession | undefined;
  const server = createServer((sock) => {
    // A stream reset by the peer emits 'error', like a socket's ECONNRESET: listen for it.
    serverSession = YamuxSession.server(sock, { onStream: (s) => s.on('error', () => undefined) });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const sess = YamuxSession.client(await rawConnect((server.address() as { port: number }).port));
  // warm the code paths so the baseline includes compiled code
  const warm = await Promise.all(Array.from({ length: 100 }, () => sess.open()));
  for (const s of warm) s.on('error', () => undefined);
  for (const s of warm) s.destroy();
  while (sess.numStreams > 0 || (serverSession?.numStreams ?? 1) > 0) await new Promise((r) => setTimeout(r, 5));
  const before = await settle();
  const streams = [];
  for (let i = 0; i < count; i++) streams.push(await sess.open());
  while ((serverSession?.numStreams ?? 0) < count) await new Promise((r) => setTimeout(r, 5));
  const after = await settle();
  process.stdout.write(`IDLE ${count} ${before} ${after} ${sess.numStreams} ${serverSession?.numStreams ?? 0}\n`);
  await sess.close();
  server.close();
  process.exit(0);
}

// ---- driver --------------------------------------------------------------------------------------


function cpuTicks(pid: number): number {
  // /proc/<pid>/stat fields 14 and 15: utime, stime in clock ticks (100 Hz on Linux).
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

function busySample(): [number, number] {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const idleT = (v[3] ?? 0) + (v[4] ?? 0);
  const total = v.reduce((a, b) => a + b, 0);
  return [total - idleT, total];
}

async function busyPercent(ms = 1000): Promise<number> {
  const [b0, t0] = busySample();
  await new Promise((r) => setTimeout(r, ms));
  const [b1, t1] = busySample();
  return t1 === t0 ? 0 : (100 * (b1 - b0)) / (t1 - t0);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

type Variant = 'meshfed' | 'go' | 'raw';

async function driver(quick: boolean): Promise<void> {
  const reps = quick ? 1 : 3;
  const total = (quick ? 64 : 256) * MiB;
  const warmup = 32 * MiB;
  process.stdout.write(`yamux bench: ${reps} rep(s) × ${total / MiB} MiB per run, 64 KiB writes, warm-up ${warmup / MiB} MiB; node ${process.version}\n`);
  process.stdout.write(`machine busy before: ${(await busyPercent()).toFixed(1)} %\n`);
  const goBin = await buildGoPeer('yamux-peer');
  const servers: Record<Variant, Spawned> = {
    meshfed: spawnLines(process.execPath, [SELF, 'serve', 'meshfed']),
    raw: spawnLines(process.execPath, [SELF, 'serve', 'raw']),
    go: spawnLines(goBin, ['server', '-quiet']),
  };
  const ports = {} as Record<Variant, string>;
  for (const v of ['meshfed', 'raw', 'go'] as const) ports[v] = ((await servers[v].nextLine(/^LISTEN (\S+)/))[1] as string);
  const clients: Record<Kind, Spawned> = {
    meshfed: spawnLines(process.execPath, [SELF, 'client-loop']),
    raw: spawnLines(process.execPath, [SELF, 'client-loop']),
  };
  const cases: Array<[Mode, number]> = [
    ['echo', 1],
    ['echo', 16],
    ['sink', 1],
    ['sink', 16],
  ];
  const variants: Variant[] = ['meshfed', 'go', 'raw'];
  const results = new Map<string, { mbps: number[]; cpuPerGB: number[] }>();
  try {
    // Untimed pass so the long-lived Node clients and servers run JIT-compiled code from rep 1 on.
    for (const [mode, streams] of cases) {
      for (const v of ['meshfed', 'raw'] as const) {
        clients[v].child.stdin?.write(`${v} ${ports[v].split(':')[1] as string} ${mode} ${streams} ${warmup} 0\n`);
        await clients[v].nextLine(RESULT_RE);
      }
    }
    for (let rep = 0; rep < reps; rep++) {
      for (const [mode, streams] of cases) {
        // rotate the order per repetition so no variant always runs first
        for (let k = 0; k < variants.length; k++) {
          const v = variants[(k + rep) % variants.length] as Variant;
          const addr = ports[v];
          const port = addr.split(':')[1] as string;
          const args =
            v === 'go'
              ? ['bench-client', '-addr', addr, '-mode', mode, '-streams', String(streams), '-bytes', String(total), '-warmup', String(warmup)]
              : [v, port, mode, String(streams), String(total), String(warmup)];
          const serverPid = servers[v].child.pid as number;
          const s0 = cpuTicks(serverPid);
          let m: RegExpExecArray;
          if (v === 'go') {
            const c = spawnLines(goBin, args);
            m = await c.nextLine(RESULT_RE);
            if (c.child.exitCode === null) await once(c.child, 'exit');
          } else {
            const loop = clients[v];
            loop.child.stdin?.write(`${args.join(' ')}\n`);
            m = await loop.nextLine(RESULT_RE);
          }
          const serverCpu = (cpuTicks(serverPid) - s0) / 100;
          const bytes = Number(m[1]);
          const secs = Number(m[2]);
          const clientCpu = Number(m[3] ?? 0);
          const key = `${mode}/${streams}/${v}`;
          const r = results.get(key) ?? { mbps: [], cpuPerGB: [] };
          r.mbps.push(bytes / 1e6 / secs);
          r.cpuPerGB.push(clientCpu / (bytes / 1e9) + serverCpu / ((bytes + warmup) / 1e9));
          results.set(key, r);
          process.stdout.write(`  rep ${rep + 1} ${mode.padEnd(4)} ${String(streams).padStart(2)} streams ${v.padEnd(7)} ${(bytes / 1e6 / secs).toFixed(0).padStart(5)} MB/s\n`);
        }
      }
    }
  } finally {
    for (const s of Object.values(servers)) s.child.kill('SIGTERM');
    for (const c of Object.values(clients)) c.child.stdin?.end();
  }
  process.stdout.write('\ncase (MB/s, median)        meshfed      Go   raw TCP  meshfed/Go  CPU s/GB meshfed / Go\n');
  for (const [mode, streams] of cases) {
    const get = (v: Variant): { mbps: number[]; cpuPerGB: number[] } => results.get(`${mode}/${streams}/${v}`) ?? { mbps: [0], cpuPerGB: [0] };
    const mm = median(get('meshfed').mbps);
    const mg = median(get('go').mbps);
    const mr = median(get('raw').mbps);
    const name = `${mode === 'echo' ? 'echo' : 'one-way'}, ${streams} stream${streams > 1 ? 's' : ''}`;
    process.stdout.write(
      `${name.padEnd(26)} ${mm.toFixed(0).padStart(7)} ${mg.toFixed(0).padStart(7)} ${mr.toFixed(0).padStart(9)} ${(mm / mg).toFixed(2).padStart(10)}x  ${median(get('meshfed').cpuPerGB).toFixed(2).padStart(6)} / ${median(get('go').cpuPerGB).toFixed(2)}\n`,
    );
  }
  const idleRun = spawnLines(process.execPath, ['--expose-gc', SELF, 'idle', '10000']);
  const im = await idleRun.nextLine(/^IDLE (\d+) (\d+) (\d+) (\d+) (\d+)/);
  const growth = (Number(im[3]) - Number(im[2])) / MiB;
  process.stdout.write(
    `\nidle streams: ${im[1]} open on one session (client ${im[4]}, server ${im[5]} in the same process): RSS +${growth.toFixed(1)} MiB (${((growth * MiB) / Number(im[1]) / 1024).toFixed(2)} KiB per stream pair); target < 64 MiB\n`,
  );
  process.stdout.write(`machine busy after: ${(await busyPercent()).toFixed(1)} %\n`);
}

const [, , cmd, ...rest] = process.argv;
if (cmd === 'serve') await serve(rest[0] as Kind);
else if (cmd === 'client') process.stdout.write(`${await clientRun(rest[0] as Kind, Number(rest[1]), rest[2] as Mode, Number(rest[3]), Number(rest[4]), Number(rest[5]))}\n`);
else if (cmd === 'client-loop') await clientLoop();
else if (cmd === 'idle') await idle(Number(rest[0] ?? 10000));
else await driver(process.argv.includes('--quick'));
