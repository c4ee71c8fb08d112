/**
 * Driver for test/interop/memberlist-peer (a Go program on Debian's hashicorp/memberlist 0.2.2):
 * starts it through go-peer.ts (buildGoPeer/startGoPeer), speaks its JSON-lines protocol (see the
 * header of memberlist-peer/main.go) and offers event waits with deadlines — no fixed sleeps.
 *
 * The Go process dies with its parent (PR_SET_PDEATHSIG), on stdin EOF and on `exit`; on top of
 * that every peer started here is SIGKILLed when this Node process exits.
 */
import { startGoPeer, type GoPeer } from './go-peer.js';

export type MemberlistProfile = 'lan' | 'wan' | 'local';

export interface MemberlistPeerOptions {
  /** Node name; with `nodes > 1` the nodes are `<name>-<i>`. */
  name: string;
  /** Bind IP (default 127.0.0.1). */
  bind?: string;
  /** 0 (default) = a free port per node; otherwise node i binds port + i. */
  port?: number;
  /** memberlist.DefaultLANConfig / WAN / Local (default lan). */
  profile?: MemberlistProfile;
  /** Encryption key (16/24/32 bytes, Buffer or base64), installed as the primary key. */
  key?: Buffer | string;
  /** NodeMeta. */
  meta?: Buffer;
  /** Delegate protocol min, max, cur; [2, 5, 5] is serf-compatible (default [0, 0, 0]). */
  dvsn?: readonly [number, number, number];
  probeIntervalMs?: number;
  probeTimeoutMs?: number;
  gossipIntervalMs?: number;
  pushPullIntervalMs?: number;
  suspicionMult?: number;
  /** Number of nodes in the one process (default 1). */
  nodes?: number;
  /** Bench mode: join-all / kill / stats and the converged / failed-detected events. */
  bench?: boolean;
  /** Bench: members every node must see for `converged` (default `nodes`). */
  expect?: number;
  /** Bench: still report every join/leave/update event and every log line. */
  verbose?: boolean;
  /** Deadline for build + start + every node's `ready` (default 60 s: includes a cold Go build). */
  readyTimeoutMs?: number;
}

/** One JSON line printed by the Go peer. */
export interface MemberlistEvent {
  ev: string;
  [k: string]: unknown;
}

/** A node as reported in join/leave/update events and members answers. */
export interface MemberlistNodeInfo {
  name: string;
  addr: string;
  port: number;
  /** 0 alive, 1 suspect, 2 dead, 3 left (read from memberlist's internal nodeState). */
  state: number;
  meta: Buffer;
}

export interface MemberlistLocalNode {
  idx: number;
  name: string;
  addr: string;
  port: number;
}

/** A command for the Go peer (see main.go); `id` is filled in by `request`. */
export interface MemberlistCommand {
  cmd: string;
  node?: number;
  [k: string]: unknown;
}

const live = new Set<GoPeer>();
let exitHookInstalled = false;
function track(p: GoPeer): void {
  live.add(p);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const g of live) if (g.child.exitCode === null && g.child.signalCode === null) g.child.kill('SIGKILL');
    });
  }
}

/** The events printed so far, with waits. */
export class MemberlistEvents {
  readonly all: MemberlistEvent[] = [];
  private readonly waiters = new Set<() => void>();
  private closedWith: string | undefined;

  /** @internal */
  push(e: MemberlistEvent): void {
    this.all.push(e);
    for (const w of this.waiters) w();
  }

  /** @internal */
  close(why: string): void {
    this.closedWith = why;
    for (const w of this.waiters) w();
  }

  /** Current position: pass as `since` to wait only for later events. */
  mark(): number {
    return this.all.length;
  }

  /** Resolve with the first event (at index ≥ since) matching `pred`; reject on deadline or exit. */
  waitForEvent<E extends MemberlistEvent = MemberlistEvent>(
    pred: (e: MemberlistEvent) => boolean,
    timeoutMs = 10_000,
    since = 0,
  ): Promise<E> {
    return new Promise<E>((resolve, reject) => {
      let i = since;
      const check = (): void => {
        for (; i < this.all.length; i++) {
          const e = this.all[i]!;
          if (pred(e)) {
            done();
            resolve(e as E);
            return;
          }
        }
        if (this.closedWith !== undefined) {
          done();
          reject(new Error(`memberlist-peer ${this.closedWith} before the awaited event${this.tail()}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`memberlist-peer: awaited event not seen within ${timeoutMs} ms${this.tail()}`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
      check();
    });
  }

  /** Wait for `{"ev": ev, ...}` with an optional extra predicate. */
  waitFor<E extends MemberlistEvent = MemberlistEvent>(
    ev: string,
    pred: (e: MemberlistEvent) => boolean = () => true,
    timeoutMs = 10_000,
    since = 0,
  ): Promise<E> {
    return this.waitForEvent<E>((e) => e.ev === ev && pred(e), timeoutMs, since);
  }

  /** Log lines (memberlist's own log output) so far, optionally of one local node. */
  logs(node?: string): string[] {
    return this.all.filter((e) => e.ev === 'log' && (node === undefined || e.node === node)).map((e) => String(e.line));
  }

  private tail(): string {
    const last = this.all.slice(-8).map((e) => JSON.stringify(e));
    return last.length ? `; last events:\n  ${last.join('\n  ')}` : '';
  }
}

function toInfo(raw: Record<string, unknown>): MemberlistNodeInfo {
  return {
    name: String(raw.name),
    addr: String(raw.addr),
    port: Number(raw.port),
    state: Number(raw.state),
    meta: Buffer.from(typeof raw.meta === 'string' ? raw.meta : '', 'hex'),
  };
}

export class MemberlistPeer {
  readonly events = new MemberlistEvents();
  /** The local nodes, in index order (filled before startMemberlistPeer resolves). */
  readonly nodes: MemberlistLocalNode[] = [];
  private nextId = 1;

  /** @internal use startMemberlistPeer */
  constructor(readonly go: GoPeer) {
    let buf = '';
    go.child.stdout?.on('data', (d: Buffer) => {
      buf += d.toString();
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        let e: MemberlistEvent;
        try {
          e = JSON.parse(line) as MemberlistEvent;
        } catch {
          e = { ev: 'raw', line };
        }
        if (e.ev === 'ready') {
          this.nodes[Number(e.idx)] = { idx: Number(e.idx), name: String(e.name), addr: String(e.addr), port: Number(e.port) };
        }
        this.events.push(e);
      }
    });
    go.child.stdin?.on('error', () => undefined); // EPIPE after the process died
    go.child.once('close', (code: number | null, sig: NodeJS.Signals | null) => this.events.close(`exited (${code ?? sig})`));
  }

  /** `name/host:port` of local node `idx`, for join lists. */
  address(idx = 0): string {
    const n = this.nodes[idx];
    if (!n) throw new Error(`no local node ${idx}`);
    return `${n.name}/${n.addr}:${n.port}`;
  }

  get exited(): boolean {
    return this.go.child.exitCode !== null || this.go.child.signalCode !== null;
  }

  /** Write one command line (fire and forget). */
  send(cmd: MemberlistCommand): void {
    this.go.child.stdin?.write(`${JSON.stringify(cmd)}\n`);
  }

  /** Send a command with a fresh id and wait for its answer (ok/members/stats); rejects on its error. */
  async request<E extends MemberlistEvent = MemberlistEvent>(cmd: MemberlistCommand, timeoutMs = 15_000): Promise<E> {
    const id = this.nextId++;
    const since = this.events.mark();
    this.send({ ...cmd, id });
    const e = await this.events.waitForEvent<E>((x) => x.id === id, timeoutMs, since);
    if (e.ev === 'error') throw new Error(`memberlist-peer ${cmd.cmd}: ${String(e.error)}`);
    return e;
  }

  /** Local node `node` joins `addrs` (`host:port` or `name/host:port`); resolves with the count contacted. */
  async join(addrs: readonly string[], node = 0, timeoutMs = 15_000): Promise<number> {
    const e = await this.request({ cmd: 'join', node, addrs }, timeoutMs);
    return Number(e.joined);
  }

  /** Graceful memberlist Leave, then Shutdown unless `stay`. */
  async leave(node = 0, timeoutMs = 5_000, stay = false): Promise<void> {
    await this.request({ cmd: 'leave', node, timeoutMs, stay }, timeoutMs + 5_000);
  }

  /** Shutdown without leave (a crash of that node; the others keep running). */
  async shutdownNode(node = 0): Promise<void> {
    await this.request({ cmd: 'shutdown', node });
  }

  /** memberlist.Members() of local node `node` (live and suspect nodes, itself included). */
  async members(node = 0): Promise<MemberlistNodeInfo[]> {
    const e = await this.request({ cmd: 'members', node });
    return (e.members as Record<string, unknown>[]).map(toInfo);
  }

  /** SendReliable (TCP) or SendBestEffort (UDP) a user message to member `to`. */
  async sendMsg(to: string, data: Buffer, opts: { node?: number; reliable?: boolean } = {}): Promise<void> {
    await this.request({ cmd: 'send', node: opts.node ?? 0, to, data: data.toString('hex'), reliable: opts.reliable ?? false });
  }

  /** Change NodeMeta and UpdateNode. */
  async setMeta(meta: Buffer, node = 0): Promise<void> {
    await this.request({ cmd: 'meta', node, meta: meta.toString('hex') });
  }

  /** Bench: process CPU (user+sys, ms), VmRSS and the process's monotonic time. */
  async stats(): Promise<{ cpuMs: number; rssBytes: number; tMs: number }> {
    const e = await this.request({ cmd: 'stats' });
    return { cpuMs: Number(e.cpuMs), rssBytes: Number(e.rssBytes), tMs: Number(e.tMs) };
  }

  /** Wait until local node `node` reports `name` joined (alive), i.e. an `ev:"join"` for it. */
  waitForJoin(name: string, node = 0, timeoutMs = 10_000, since = 0): Promise<MemberlistEvent> {
    const observer = this.nodes[node]?.name;
    return this.events.waitFor('join', (e) => e.name === name && e.node === observer, timeoutMs, since);
  }

  /** Ask the process to exit; SIGKILL it if it has not gone within `graceMs`. Never throws. */
  async stop(graceMs = 2_000): Promise<void> {
    if (!this.exited) {
      this.send({ cmd: 'exit' });
      this.go.child.stdin?.end();
      const exited = new Promise<void>((r) => this.go.child.once('exit', () => r()));
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([exited, new Promise<void>((r) => (timer = setTimeout(r, graceMs)))]);
      clearTimeout(timer);
    }
    await this.go.stop();
    live.delete(this.go);
  }
}

function args(o: MemberlistPeerOptions): string[] {
  const a = ['-name', o.name, '-bind', o.bind ?? '127.0.0.1', '-port', String(o.port ?? 0), '-profile', o.profile ?? 'lan'];
  if (o.key !== undefined) a.push('-key', typeof o.key === 'string' ? o.key : o.key.toString('base64'));
  if (o.meta) a.push('-meta-hex', o.meta.toString('hex'));
  if (o.dvsn) a.push('-dvsn', o.dvsn.join(','));
  if (o.probeIntervalMs) a.push('-probe-interval', `${o.probeIntervalMs}ms`);
  if (o.probeTimeoutMs) a.push('-probe-timeout', `${o.probeTimeoutMs}ms`);
  if (o.gossipIntervalMs) a.push('-gossip-interval', `${o.gossipIntervalMs}ms`);
  if (o.pushPullIntervalMs) a.push('-push-pull-interval', `${o.pushPullIntervalMs}ms`);
  if (o.suspicionMult) a.push('-suspicion-mult', String(o.suspicionMult));
  if (o.nodes) a.push('-nodes', String(o.nodes));
  if (o.bench) a.push('-bench');
  if (o.expect) a.push('-expect', String(o.expect));
  if (o.verbose) a.push('-verbose');
  return a;
}

/** Build (once per process) and start the Go memberlist peer; resolves when every node is ready. */
export async function startMemberlistPeer(opts: MemberlistPeerOptions): Promise<MemberlistPeer> {
  const go = await startGoPeer('memberlist-peer', args(opts));
  track(go);
  const peer = new MemberlistPeer(go);
  const count = opts.nodes ?? 1;
  try {
    await peer.events.waitForEvent(
      (e) => (e.ev === 'error' && e.cmd === 'start') || peer.nodes.filter(Boolean).length === count,
      opts.readyTimeoutMs ?? 60_000,
    );
    const err = peer.events.all.find((e) => e.ev === 'error' && e.cmd === 'start');
    if (err) throw new Error(`memberlist-peer failed to start: ${String(err.error)}`);
  } catch (e) {
    await peer.stop(0);
    throw e;
  }
  return peer;
}

/** Serf-style node meta: 0xff + msgpack map[string]string (old-spec raw strings, as go-msgpack writes). */
export function serfTagsMeta(tags: Record<string, string>): Buffer {
  const raw = (s: string): Buffer => {
    const b = Buffer.from(s);
    if (b.length < 32) return Buffer.concat([Buffer.from([0xa0 | b.length]), b]);
    if (b.length < 0x10000) {
      const h = Buffer.alloc(3);
      h[0] = 0xda;
      h.writeUInt16BE(b.length, 1);
      return Buffer.concat([h, b]);
    }
    throw new Error('tag too long');
  };
  const entries = Object.entries(tags);
  if (entries.length > 15) throw new Error('too many tags for this helper');
  return Buffer.concat([Buffer.from([0xff, 0x80 | entries.length]), ...entries.flatMap(([k, v]) => [raw(k), raw(v)])]);
}
