/**
 * A real etcd cluster for tests, benchmarks and examples: N members of Debian's `/usr/bin/etcd`
 * on 127.0.0.1 with free ports and temp data dirs, members that can be killed and restarted, and
 * a loopback TCP proxy that can be cut to partition one client from etcd.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { get as httpsGet } from 'node:https';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { waitFor } from './wait.js';

/** Path of the etcd binary (override with `ETCD_BIN`). */
export const ETCD_BIN = process.env.ETCD_BIN ?? '/usr/bin/etcd';

/**
 * util-linux's `setpriv`, which execs etcd with a parent-death signal: members die with the
 * process that started them even when it is SIGKILLed (a crashed or timed-out test run used to
 * leave etcd members running). Without it etcd is started directly.
 */
const SETPRIV = '/usr/bin/setpriv';

/** A free TCP port on 127.0.0.1 (bind port 0, read it, close). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

interface Member {
  readonly name: string;
  readonly clientPort: number;
  readonly peerPort: number;
  readonly dataDir: string;
  proc: ChildProcess | undefined;
  log: string;
}

/** Options of {@link EtcdCluster.start}. */
export interface EtcdClusterOptions {
  /** Raft heartbeat interval in ms (default 100). */
  readonly heartbeatMs?: number;
  /** Raft election timeout in ms (default 1000). */
  readonly electionMs?: number;
  /**
   * Serve clients over TLS with these PEM files and require client certificates signed by the
   * CA (`--client-cert-auth`); peers stay on plain loopback HTTP.
   */
  readonly tls?: { readonly caFile: string; readonly certFile: string; readonly keyFile: string };
}

/** A throwaway etcd cluster on loopback. */
export class EtcdCluster {
  readonly #members: Member[];
  readonly #root: string;
  readonly #token: string;
  readonly #opts: EtcdClusterOptions;

  private constructor(members: Member[], root: string, token: string, opts: EtcdClusterOptions) {
    this.#members = members;
    this.#root = root;
    this.#token = token;
    this.#opts = opts;
  }

  /** Start `n` members and wait until every one reports healthy. */
  static async start(n: number, opts: EtcdClusterOptions = {}): Promise<EtcdCluster> {
    const root = mkdtempSync(join(tmpdir(), 'meshfed-etcd-'));
    const members: Member[] = [];
    for (let i = 0; i < n; i++) {
      members.push({ name: `m${i}`, clientPort: await freePort(), peerPort: await freePort(), dataDir: join(root, `m${i}`), proc: undefined, log: '' });
    }
    const token = `meshfed-${process.pid}-${Date.now()}-${Math.floor(Math.random() * 1e9)}`;
    const cluster = new EtcdCluster(members, root, token, opts);
    try {
      for (let i = 0; i < n; i++) cluster.#spawn(i);
      await cluster.waitHealthy();
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    return cluster;
  }

  #spawn(i: number): void {
    const m = this.#members[i] as Member;
    const initial = this.#members.map((x) => `${x.name}=http://127.0.0.1:${x.peerPort}`).join(',');
    const tls = this.#opts.tls;
    const scheme = tls ? 'https' : 'http';
    const args = [
      '--name', m.name,
      '--data-dir', m.dataDir,
      '--listen-client-urls', `${scheme}://127.0.0.1:${m.clientPort}`,
      '--advertise-client-urls', `${scheme}://127.0.0.1:${m.clientPort}`,
      ...(tls ? ['--cert-file', tls.certFile, '--key-file', tls.keyFile, '--trusted-ca-file', tls.caFile, '--client-cert-auth'] : []),
      '--listen-peer-urls', `http://127.0.0.1:${m.peerPort}`,
      '--initial-advertise-peer-urls', `http://127.0.0.1:${m.peerPort}`,
      '--initial-cluster', initial,
      '--initial-cluster-state', 'new',
      '--initial-cluster-token', this.#token,
      '--heartbeat-interval', String(this.#opts.heartbeatMs ?? 100),
      '--election-timeout', String(this.#opts.electionMs ?? 1000),
      '--log-level', 'error',
    ];
    // setpriv execs etcd (same pid: kill() and exit codes are etcd's own)
    const proc = existsSync(SETPRIV) ? spawn(SETPRIV, ['--pdeathsig', 'KILL', ETCD_BIN, ...args], { stdio: ['ignore', 'ignore', 'pipe'] }) : spawn(ETCD_BIN, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    m.log = '';
    proc.stderr?.on('data', (d: Buffer) => {
      m.log = (m.log + d.toString()).slice(-4000);
    });
    m.proc = proc;
  }

  /** Client URLs of every member (`http://127.0.0.1:<port>`, `https://` with TLS). */
  endpoints(): string[] {
    const scheme = this.#opts.tls ? 'https' : 'http';
    return this.#members.map((m) => `${scheme}://127.0.0.1:${m.clientPort}`);
  }

  /** Process id of member `i` while it runs (`undefined` after {@link kill} or {@link stop}). */
  pid(i: number): number | undefined {
    const p = (this.#members[i] as Member).proc;
    return p && p.exitCode === null && p.signalCode === null ? p.pid : undefined;
  }

  /** Client port of member `i`. */
  clientPort(i: number): number {
    return (this.#members[i] as Member).clientPort;
  }

  /** Whether member `i` answers `/health` with `{"health":"true"}`. */
  async healthy(i: number): Promise<boolean> {
    const tls = this.#opts.tls;
    if (tls) {
      return new Promise((resolve) => {
        const req = httpsGet(
          { host: '127.0.0.1', port: this.clientPort(i), path: '/health', ca: readFileSync(tls.caFile), cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile), timeout: 1000 },
          (res) => {
            let body = '';
            res.on('data', (d: Buffer) => (body += d.toString()));
            res.on('end', () => resolve(/"health":\s*"true"/.test(body)));
          },
        );
        req.on('error', () => resolve(false));
        req.on('timeout', () => req.destroy());
      });
    }
    try {
      const res = await fetch(`http://127.0.0.1:${this.clientPort(i)}/health`, { signal: AbortSignal.timeout(1000) });
      const body = (await res.json()) as { health?: string };
      return body.health === 'true';
    } catch {
      return false;
    }
  }

  /** Wait until the running members (all, or those in `which`) are healthy. */
  async waitHealthy(which?: readonly number[], timeoutMs = 20_000): Promise<void> {
    const idx = which ?? this.#members.map((_, i) => i).filter((i) => this.#members[i]?.proc !== undefined);
    await waitFor(async () => (await Promise.all(idx.map((i) => this.healthy(i)))).every(Boolean), {
      timeoutMs,
      intervalMs: 50,
      message: `etcd members ${idx.join(',')} healthy (logs: ${idx.map((i) => this.#members[i]?.log ?? '').join(' | ')})`,
    });
  }

  /** Index of the member that currently leads etcd's raft group (asks every running member). */
  async raftLeader(): Promise<number> {
    const found = await waitFor(
      async () => {
        for (let i = 0; i < this.#members.length; i++) {
          if (this.#members[i]?.proc === undefined) continue;
          const client = new Etcd3({ hosts: `http://127.0.0.1:${this.clientPort(i)}` });
          try {
            const st = await client.maintenance.status({ deadline: Date.now() + 1000 });
            if (st.leader === st.header.member_id) return { i };
          } catch {
            // not answering: ask the next one
          } finally {
            client.close();
          }
        }
        return undefined;
      },
      { timeoutMs: 10_000, message: 'an etcd raft leader' },
    );
    return (found as { i: number }).i;
  }

  /** Send `signal` to member `i` and wait until it exited. */
  async kill(i: number, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const m = this.#members[i] as Member;
    const proc = m.proc;
    if (!proc) return;
    m.proc = undefined;
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      proc.once('exit', () => resolve());
      proc.kill(signal);
    });
  }

  /** Start member `i` again on its data dir and ports; waits until it is healthy unless told not to. */
  async restart(i: number, wait = true): Promise<void> {
    await this.kill(i);
    this.#spawn(i);
    if (wait) await this.waitHealthy([i]);
  }

  /** Kill every member and remove the data dirs. */
  async stop(): Promise<void> {
    await Promise.all(this.#members.map((_, i) => this.kill(i)));
    rmSync(this.#root, { recursive: true, force: true });
  }
}

/** A loopback TCP proxy in front of one port that can be cut (partition) and restored. */
export class TcpProxy {
  readonly #server: Server;
  readonly #target: number;
  readonly #sockets = new Set<Socket>();
  #cut = false;

  private constructor(server: Server, target: number) {
    this.#server = server;
    this.#target = target;
  }

  /** Listen on a free loopback port, forwarding to `127.0.0.1:<target>`. */
  static async start(target: number): Promise<TcpProxy> {
    const holder: { proxy?: TcpProxy } = {};
    const server = createServer((client) => {
      if (holder.proxy) holder.proxy.#accept(client);
      else client.destroy();
    });
    const proxy = new TcpProxy(server, target);
    holder.proxy = proxy;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  #accept(client: Socket): void {
    if (this.#cut) {
      client.destroy();
      return;
    }
    const upstream = connect(this.#target, '127.0.0.1');
    for (const s of [client, upstream]) {
      this.#sockets.add(s);
      s.on('close', () => this.#sockets.delete(s));
      s.on('error', () => undefined);
    }
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  }

  /** The proxy's URL, `http://127.0.0.1:<port>`. */
  get url(): string {
    return `http://127.0.0.1:${(this.#server.address() as { port: number }).port}`;
  }

  /** Destroy every connection and refuse new ones. */
  cut(): void {
    this.#cut = true;
    for (const s of this.#sockets) s.destroy();
  }

  /** Accept connections again. */
  restore(): void {
    this.#cut = false;
  }

  /** Stop listening and drop every connection. */
  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

