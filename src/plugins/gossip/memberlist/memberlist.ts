/**
 * memberlist, wire-compatible with HashiCorp memberlist 0.2.2: SWIM probing (direct, indirect,
 * TCP fallback), Lifeguard awareness and suspicion, gossip of alive/suspect/dead with
 * piggy-backing, push-pull anti-entropy over streams, compression, CRC, encryption, user
 * messages. Single-threaded by design: every handler runs to completion, so the node table needs
 * no locks; waits (probes, streams) are promises bounded by timers on the injected clock.
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import { errorMessage, MeshfedError } from '../../../core/errors.js';
import { silentLogger, type Logger } from '../../../core/logger.js';
import { systemClock, type Clock } from '../../../core/clock.js';
import { encode } from '../../rpc/msgpack/index.js';
import { RateLimitedLog, splitHostPort, joinHostPort, type GossipAddress, type GossipPacket, type GossipTransport } from '../transport/index.js';
import {
  EncryptionVersion,
  META_MAX_SIZE,
  MessageType,
  NodeState,
  addCrc,
  compressMessage,
  decryptPacket,
  encodeCompound,
  encodeMessage,
  encodePushPull,
  encryptPacket,
  encryptStream,
  encryptedLength,
  unpackPacket,
  type Keyring,
  type NodeStateValue,
  type ProtocolVersions,
  type PushNodeState,
  type WireMessage,
  UserMsgHeader,
  decodeVsn,
  encodeVsn,
} from '../wire/index.js';
import { TransmitLimitedQueue } from './broadcast-queue.js';
import {
  LAN_TIMINGS,
  PROTOCOL_VERSION_DEFAULT,
  PROTOCOL_VERSION_MAX,
  PROTOCOL_VERSION_MIN,
  type MemberlistConfig,
  type MemberlistTimings,
} from './config.js';
import { ipFromBytes, ipToBytes } from './ip.js';
import { readStreamMessage, type StreamMessage } from './stream-reader.js';
import { Awareness, Suspicion, suspicionTimeout } from './suspicion.js';
import { nodeAddress, type MemberlistApi, type MemberlistDelegates, type MemberlistNode } from './types.js';

/** Error codes of memberlist operations. */
export const MemberlistErrorCode = Object.freeze({
  CONFIG: 'MESHFED_ERR_MEMBERLIST_CONFIG',
  JOIN: 'MESHFED_ERR_MEMBERLIST_JOIN',
  NODE_NAMES: 'MESHFED_ERR_MEMBERLIST_NODE_NAMES',
  PUSH_PULL: 'MESHFED_ERR_MEMBERLIST_PUSH_PULL',
  TIMEOUT: 'MESHFED_ERR_MEMBERLIST_TIMEOUT',
  SHUTDOWN: 'MESHFED_ERR_MEMBERLIST_SHUTDOWN',
} as const);

const NODE_NAMES_REQUIRED = 'memberlist: node names are required by configuration but one was not provided';
/** Compound header overhead and per-part overhead (memberlist net.go). */
const COMPOUND_HEADER_OVERHEAD = 2;
const COMPOUND_OVERHEAD = 2;
const USER_MSG_OVERHEAD = 1;
/** Smallest packet worth trying to compress. */
const MIN_COMPRESS_BYTES = 100;
/** Push-pull interval scaling starts above this many nodes. */
const PUSH_PULL_SCALE_THRESHOLD = 32;

/**
 * Delay from `now` until `due` rounded up to a grid of `interval / slots` (at most 100 ms).
 * Periodic ticks of every pool in a process then share event-loop wakeups, and the probes that
 * share a tick send their pings, and get their acks, in the same wakeups: a wakeup costs far
 * more than a callback (on sandboxed hosts ~0.15 ms of CPU). Probes and push-pulls use ten slots
 * per interval (the 1 s probe is at most 100 ms late); gossip rounds, which only move
 * broadcasts, five (40 ms for LAN gossip).
 */
export function gridDelay(now: number, due: number, interval: number, slots = 10): number {
  const q = Math.max(1, Math.min(100, Math.floor(interval / slots)));
  return Math.max(0, Math.ceil(due / q) * q - now);
}

/** memberlist's `pushPullScale`: the push-pull interval grows with log2 of the pool above 32 nodes. */
export function pushPullScale(intervalMs: number, n: number): number {
  if (n <= PUSH_PULL_SCALE_THRESHOLD) return intervalMs;
  const multiplier = Math.ceil(Math.log2(n) - Math.log2(PUSH_PULL_SCALE_THRESHOLD)) + 1;
  return multiplier * intervalMs;
}

/** A node of the table (mutable: the table is the only owner). */
interface NodeEntry {
  name: string;
  addr: string;
  addrBytes: Uint8Array;
  port: number;
  meta: Uint8Array;
  incarnation: number;
  state: NodeStateValue;
  stateChange: number;
  vsn: ProtocolVersions;
}

interface AliveInput {
  readonly Incarnation: number;
  readonly Node: string;
  readonly Addr: Uint8Array;
  readonly Port: number;
  readonly Meta: Uint8Array;
  readonly Vsn: Uint8Array;
}

interface AckHandler {
  readonly ack: (payload: Buffer, timestamp: number) => void;
  readonly nack?: () => void;
  readonly timer: unknown;
}

const ZERO_VSN: ProtocolVersions = Object.freeze({ pmin: 0, pmax: 0, pcur: 0, dmin: 0, dmax: 0, dcur: 0 });

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

function deadOrLeft(n: NodeEntry): boolean {
  return n.state === NodeState.dead || n.state === NodeState.left;
}

function snapshot(n: NodeEntry): MemberlistNode {
  return Object.freeze({ name: n.name, addr: n.addr, port: n.port, meta: new Uint8Array(n.meta), state: n.state, vsn: { ...n.vsn }, incarnation: n.incarnation });
}

function addrOf(n: NodeEntry): GossipAddress {
  return nodeAddress(n);
}

/**
 * One memberlist node. Create with {@link Memberlist.create}: it binds nothing itself (the
 * transport is already listening), announces itself alive, and starts probing, gossip and
 * push-pull timers.
 */
export class Memberlist implements MemberlistApi {
  readonly #cfg: MemberlistTimings;
  readonly #name: string;
  readonly #transport: GossipTransport;
  readonly #delegates: MemberlistDelegates;
  readonly #logger: Logger;
  readonly #badInput: RateLimitedLog;
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #keyring: Keyring | undefined;
  readonly #verifyIncoming: boolean;
  readonly #verifyOutgoing: boolean;
  readonly #requireNodeNames: boolean;
  readonly #disableTcpPingsForNode: ((name: string) => boolean) | undefined;
  readonly #vsn: ProtocolVersions;
  readonly #bindPort: number;
  readonly #maxPushPull: number;
  readonly #advertise: { ip: string; port: number };
  readonly #advertiseBytes: Uint8Array;

  /** The node table: probe order (shuffled), and by name. */
  #nodes: NodeEntry[] = [];
  readonly #nodeMap = new Map<string, NodeEntry>();
  readonly #suspicions = new Map<string, Suspicion>();
  readonly #ackHandlers = new Map<number, AckHandler>();
  readonly #broadcasts: TransmitLimitedQueue;
  readonly #awareness: Awareness;
  #probeIndex = 0;
  #seqNo = 0;
  #incarnation = 0;
  #left = false;
  #shutdown = false;
  #pushPullInFlight = 0;
  readonly #timers = new Set<unknown>();
  readonly #openStreams = new Set<Duplex>();
  /** Waiters to wake at shutdown (sleeps, probes); each removes itself when done. */
  readonly #onShutdown = new Set<() => void>();
  #shutdownPromise: Promise<void> | undefined;
  #removeHandlers: (() => void)[] = [];
  readonly #inflight = new Set<Promise<unknown>>();

  private constructor(config: MemberlistConfig) {
    if (!config.name) throw new MeshfedError(MemberlistErrorCode.CONFIG, 'memberlist: a node name is required');
    const pv = config.protocolVersion ?? PROTOCOL_VERSION_DEFAULT;
    if (!Number.isInteger(pv) || pv < PROTOCOL_VERSION_MIN || pv > PROTOCOL_VERSION_MAX) {
      throw new MeshfedError(MemberlistErrorCode.CONFIG, `memberlist: protocol version ${pv} is outside ${PROTOCOL_VERSION_MIN}..${PROTOCOL_VERSION_MAX}`);
    }
    const timings: Record<string, unknown> = { ...LAN_TIMINGS };
    for (const k of Object.keys(LAN_TIMINGS)) {
      const v = (config as unknown as Record<string, unknown>)[k];
      if (v !== undefined) timings[k] = v;
    }
    this.#cfg = timings as unknown as MemberlistTimings;
    this.#name = config.name;
    this.#transport = config.transport;
    this.#delegates = config.delegates ?? {};
    this.#logger = (config.logger ?? silentLogger()).child({ component: 'memberlist', node: config.name });
    this.#clock = config.clock ?? systemClock;
    this.#badInput = new RateLimitedLog(this.#logger, { now: () => this.#clock.now() });
    this.#random = config.random ?? Math.random;
    this.#keyring = config.keyring;
    this.#verifyIncoming = config.gossipVerifyIncoming ?? true;
    this.#verifyOutgoing = config.gossipVerifyOutgoing ?? true;
    this.#requireNodeNames = config.requireNodeNames ?? false;
    this.#disableTcpPingsForNode = config.disableTcpPingsForNode ?? this.#transport.disableTcpPingsForNode?.bind(this.#transport);
    this.#vsn = Object.freeze({
      pmin: PROTOCOL_VERSION_MIN,
      pmax: PROTOCOL_VERSION_MAX,
      pcur: pv,
      dmin: config.delegateProtocolMin ?? 0,
      dmax: config.delegateProtocolMax ?? 0,
      dcur: config.delegateProtocolVersion ?? 0,
    });
    this.#advertise = this.#transport.finalAdvertiseAddr(config.advertiseAddr ?? '', config.advertisePort ?? 0);
    this.#advertiseBytes = ipToBytes(this.#advertise.ip) ?? new Uint8Array(0);
    this.#bindPort = config.bindPort ?? this.#advertise.port;
    this.#maxPushPull = config.maxPushPullRequests ?? 128;
    this.#broadcasts = new TransmitLimitedQueue(() => this.#nodes.length, this.#cfg.retransmitMult);
    this.#awareness = new Awareness(this.#cfg.awarenessMaxMultiplier);
  }

  /**
   * Start a node on an already-listening transport: announce alive (the event delegate sees its
   * own join), then start the probe, gossip and push-pull timers. Nothing is joined yet: call
   * {@link join}.
   */
  static create(config: MemberlistConfig): Promise<Memberlist> {
    const m = new Memberlist(config);
    m.#start();
    return Promise.resolve(m);
  }

  #start(): void {
    this.#removeHandlers.push(this.#transport.onPacket((p) => this.#onPacket(p)));
    this.#removeHandlers.push(this.#transport.onStream((c) => void this.#handleConn(c)));
    const addrBytes = this.#advertiseBytes;
    if (addrBytes.length === 0) throw new MeshfedError(MemberlistErrorCode.CONFIG, `memberlist: advertise address ${this.#advertise.ip} is not an IP address`);
    const meta = this.#localMeta();
    this.#aliveNode({ Incarnation: this.#nextIncarnation(), Node: this.#name, Addr: addrBytes, Port: this.#advertise.port, Meta: meta, Vsn: encodeVsn(this.#vsn) }, undefined, true);
    this.#schedule();
  }

  // -------------------------------------------------------------------------------------------
  // public API

  /** memberlist protocol version spoken (pcur). */
  get protocolVersion(): number {
    return this.#vsn.pcur;
  }

  /** The advertised address `ip:port`. */
  get advertiseAddress(): string {
    return joinHostPort(this.#advertise.ip, this.#advertise.port);
  }

  localNode(): MemberlistNode {
    const me = this.#nodeMap.get(this.#name);
    if (!me) throw new MeshfedError(MemberlistErrorCode.SHUTDOWN, 'memberlist: local node missing');
    return snapshot(me);
  }

  members(): MemberlistNode[] {
    return this.#nodes.filter((n) => !deadOrLeft(n)).map(snapshot);
  }

  numMembers(): number {
    let n = 0;
    for (const e of this.#nodes) if (!deadOrLeft(e)) n++;
    return n;
  }

  /** Every node in the table, dead and left ones included (until they are dropped after `gossipToTheDeadTime`). */
  allNodes(): MemberlistNode[] {
    return this.#nodes.map(snapshot);
  }

  healthScore(): number {
    return this.#awareness.score;
  }

  async join(addresses: readonly string[]): Promise<number> {
    let ok = 0;
    const errors: string[] = [];
    for (const exist of addresses) {
      let targets: GossipAddress[];
      try {
        targets = await this.#resolveAddr(exist);
      } catch (err) {
        const msg = `Failed to resolve ${exist}: ${errorMessage(err)}`;
        this.#logger.warn(msg);
        errors.push(msg);
        continue;
      }
      for (const t of targets) {
        try {
          await this.#pushPullNode(t, true);
          ok++;
        } catch (err) {
          const msg = `Failed to join ${t.addr}: ${errorMessage(err)}`;
          this.#logger.debug(msg);
          errors.push(msg);
        }
      }
    }
    if (ok === 0 && addresses.length > 0) {
      throw new MeshfedError(MemberlistErrorCode.JOIN, `memberlist: could not join any of ${addresses.length} address(es): ${errors.join('; ')}`);
    }
    return ok;
  }

  async leave(timeoutMs: number): Promise<void> {
    if (this.#shutdown) throw new MeshfedError(MemberlistErrorCode.SHUTDOWN, 'memberlist: leave after shutdown');
    if (this.#left) return;
    this.#left = true;
    const me = this.#nodeMap.get(this.#name);
    if (!me) return;
    let done!: () => void;
    const sent = new Promise<void>((r) => (done = r));
    this.#deadNode({ Incarnation: me.incarnation, Node: me.name, From: me.name }, done);
    if (this.#anyAlive()) {
      await this.#waitOrTimeout(sent, timeoutMs, 'timeout waiting for leave broadcast');
      // The queue lets go of a broadcast when it is handed out, before the send completes.
      await this.#drain();
    }
  }

  async updateNode(timeoutMs: number): Promise<void> {
    const me = this.#nodeMap.get(this.#name);
    if (!me) return;
    let done!: () => void;
    const sent = new Promise<void>((r) => (done = r));
    this.#aliveNode({ Incarnation: this.#nextIncarnation(), Node: me.name, Addr: me.addrBytes, Port: me.port, Meta: this.#localMeta(), Vsn: encodeVsn(this.#vsn) }, done, true);
    if (this.#anyAlive()) {
      await this.#waitOrTimeout(sent, timeoutMs, 'timeout waiting for update broadcast');
      await this.#drain();
    }
  }

  async sendToAddress(to: GossipAddress, msg: Uint8Array): Promise<void> {
    await this.#sendMsg(to, Buffer.concat([Uint8Array.of(MessageType.user), msg]));
  }

  async sendBestEffort(to: MemberlistNode, msg: Uint8Array): Promise<void> {
    await this.sendToAddress(nodeAddress(to), msg);
  }

  async sendReliable(to: MemberlistNode, msg: Uint8Array): Promise<void> {
    const a = nodeAddress(to);
    this.#checkName(a);
    const conn = await this.#transport.dialAddress(a, { timeoutMs: this.#cfg.tcpTimeoutMs });
    try {
      const body = Buffer.concat([Uint8Array.of(MessageType.user), encode({ UserMsgLen: msg.length }, UserMsgHeader), msg]);
      await this.#writeStream(conn, body);
    } finally {
      conn.end();
    }
  }

  shutdown(): Promise<void> {
    this.#shutdownPromise ??= (async () => {
      this.#shutdown = true;
      for (const wake of [...this.#onShutdown]) wake();
      for (const t of this.#timers) this.#clock.clearTimeout(t);
      this.#timers.clear();
      for (const s of this.#suspicions.values()) s.cancel();
      this.#suspicions.clear();
      for (const h of this.#ackHandlers.values()) this.#clock.clearTimeout(h.timer);
      this.#ackHandlers.clear();
      for (const r of this.#removeHandlers) r();
      for (const s of this.#openStreams) s.destroy();
      this.#broadcasts.reset();
      await this.#transport.shutdown();
    })();
    return this.#shutdownPromise;
  }

  // -------------------------------------------------------------------------------------------
  // timers

  #after(ms: number, fn: () => void): unknown {
    const t = this.#clock.setTimeout(() => {
      this.#timers.delete(t);
      if (!this.#shutdown) fn();
    }, ms);
    this.#timers.add(t);
    return t;
  }

  /** A sleep on the clock that ends early at shutdown and can be cut short (its timer is then cleared, so it costs no wakeup). */
  #cancellableSleep(ms: number): { done: Promise<void>; cancel: () => void } {
    let cancel!: () => void;
    const done = new Promise<void>((resolve) => {
      const finish = (): void => {
        this.#clock.clearTimeout(t);
        this.#timers.delete(t);
        this.#onShutdown.delete(finish);
        resolve();
      };
      const t = this.#after(ms, finish);
      this.#onShutdown.add(finish);
      cancel = finish;
    });
    return { done, cancel };
  }

  async #waitOrTimeout(p: Promise<void>, timeoutMs: number, text: string): Promise<void> {
    if (timeoutMs <= 0) return p;
    let timedOut = false;
    const timer = this.#cancellableSleep(timeoutMs);
    await Promise.race([p, timer.done.then(() => (timedOut = true))]);
    timer.cancel();
    if (timedOut) throw new MeshfedError(MemberlistErrorCode.TIMEOUT, `memberlist: ${text}`);
  }

  #schedule(): void {
    const loop = (interval: () => number, fn: () => Promise<void> | void, slots = 10): void => {
      const tick = (): void => {
        const started = this.#clock.now();
        const next = (): void => {
          if (!this.#shutdown) this.#after(gridDelay(this.#clock.now(), started + interval(), interval(), slots), tick);
        };
        const failed = (err: unknown): void => this.#logger.error('periodic task failed', { err: errorMessage(err) });
        let r: Promise<void> | void = undefined;
        try {
          r = fn();
        } catch (err) {
          failed(err);
        }
        // Most rounds finish synchronously (nothing to gossip): no promise machinery for them.
        if (r) void r.catch(failed).finally(next);
        else next();
      };
      // Random stagger, so nodes started together do not all probe in the same instant.
      this.#after(gridDelay(this.#clock.now(), this.#clock.now() + Math.floor(this.#random() * interval()), interval(), slots), tick);
    };
    if (this.#cfg.probeIntervalMs > 0) loop(() => this.#cfg.probeIntervalMs, () => this.#probe());
    if (this.#cfg.gossipIntervalMs > 0 && this.#cfg.gossipNodes > 0) loop(() => this.#cfg.gossipIntervalMs, () => this.#gossip(), 5);
    if (this.#cfg.pushPullIntervalMs > 0) loop(() => pushPullScale(this.#cfg.pushPullIntervalMs, this.#nodes.length), () => this.#pushPull());
  }

  // -------------------------------------------------------------------------------------------
  // helpers

  #nextIncarnation(): number {
    this.#incarnation = (this.#incarnation + 1) >>> 0;
    return this.#incarnation;
  }

  #skipIncarnation(offset: number): number {
    this.#incarnation = (this.#incarnation + offset) >>> 0;
    return this.#incarnation;
  }

  #nextSeqNo(): number {
    this.#seqNo = (this.#seqNo + 1) >>> 0;
    return this.#seqNo;
  }

  #localMeta(): Uint8Array {
    const meta = this.#delegates.delegate?.nodeMeta(META_MAX_SIZE) ?? new Uint8Array(0);
    if (meta.length > META_MAX_SIZE) {
      throw new MeshfedError(MemberlistErrorCode.CONFIG, `memberlist: node meta of ${meta.length} bytes is longer than the limit of ${META_MAX_SIZE}`);
    }
    return meta;
  }

  #anyAlive(): boolean {
    return this.#nodes.some((n) => n.name !== this.#name && !deadOrLeft(n));
  }

  /** Up to `k` distinct random nodes not excluded (memberlist's `kRandomNodes`: at most 3n random picks). */
  #kRandomNodes(k: number, exclude: (n: NodeEntry) => boolean): NodeEntry[] {
    const n = this.#nodes.length;
    const out: NodeEntry[] = [];
    for (let i = 0; i < 3 * n && out.length < k; i++) {
      const node = this.#nodes[Math.floor(this.#random() * n)] as NodeEntry;
      if (exclude(node) || out.includes(node)) continue;
      out.push(node);
    }
    return out;
  }

  #checkName(a: GossipAddress): void {
    if (!a.name && this.#requireNodeNames) throw new MeshfedError(MemberlistErrorCode.NODE_NAMES, NODE_NAMES_REQUIRED);
  }

  async #resolveAddr(hostStr: string): Promise<GossipAddress[]> {
    let name = '';
    let rest = hostStr;
    const slash = hostStr.indexOf('/');
    if (slash >= 0) {
      if (slash === 0) throw new Error('empty node name provided');
      name = hostStr.slice(0, slash);
      rest = hostStr.slice(slash + 1);
    }
    let host: string;
    let port: number;
    const hasPort = rest.startsWith('[') ? rest.includes(']:') : rest.split(':').length === 2;
    if (hasPort) {
      ({ host, port } = splitHostPort(rest));
    } else {
      host = rest.startsWith('[') ? rest.slice(1, -1) : rest;
      port = this.#bindPort;
    }
    if (isIP(host)) return [{ name, addr: joinHostPort(host, port) }];
    const ips = await lookup(host, { all: true });
    return ips.map((ip) => ({ name, addr: joinHostPort(ip.address, port) }));
  }

  // -------------------------------------------------------------------------------------------
  // sending

  #encryptOverhead(): number {
    return this.#keyring && this.#verifyOutgoing ? encryptedLength(EncryptionVersion.unpadded, 0) : 0;
  }

  /** Collect memberlist broadcasts, then the delegate's, each framed as a user message. */
  #getBroadcasts(overhead: number, limit: number): Uint8Array[] {
    const out = this.#broadcasts.getBroadcasts(overhead, limit);
    const d = this.#delegates.delegate;
    if (d) {
      let used = 0;
      for (const m of out) used += m.length + overhead;
      const avail = limit - used;
      if (avail > overhead + USER_MSG_OVERHEAD) {
        for (const m of d.getBroadcasts(overhead + USER_MSG_OVERHEAD, avail)) out.push(Buffer.concat([Uint8Array.of(MessageType.user), m]));
      }
    }
    return out;
  }

  /** Send one message to an address, piggy-backing pending broadcasts (memberlist `sendMsg`). */
  async #sendMsg(a: GossipAddress, msg: Uint8Array): Promise<void> {
    const avail = this.#cfg.udpBufferSize - msg.length - COMPOUND_HEADER_OVERHEAD - this.#encryptOverhead();
    const extra = this.#getBroadcasts(COMPOUND_OVERHEAD, avail);
    if (extra.length === 0) return this.#rawSendPacket(a, undefined, msg);
    for (const c of encodeCompound([msg, ...extra])) await this.#rawSendPacket(a, undefined, c);
  }

  async #rawSendPacket(a: GossipAddress, node: NodeEntry | undefined, msg: Uint8Array): Promise<void> {
    this.#checkName(a);
    let out: Uint8Array = msg;
    // Packets under ~100 bytes (pings, acks, nacks) never shrink by more than the compress
    // wrapper's own 13 bytes; memberlist tries anyway, we skip the wasted LZW pass.
    if (this.#cfg.enableCompression && out.length >= MIN_COMPRESS_BYTES) out = compressMessage(out, { onlyIfSmaller: true });
    // As memberlist: a CRC only when the destination node is known to speak protocol 5.
    if (node && node.vsn.pmax >= 5) out = addCrc(out);
    if (this.#keyring && this.#verifyOutgoing) out = encryptPacket(this.#keyring, out);
    const p = this.#transport.writeToAddress(out, a);
    this.#inflight.add(p);
    try {
      await p;
    } finally {
      this.#inflight.delete(p);
    }
  }

  /** Wait until packets handed to the transport so far are sent (a leave must reach the wire before shutdown). */
  async #drain(): Promise<void> {
    await Promise.allSettled([...this.#inflight]);
  }

  async #send(a: GossipAddress, msg: Uint8Array, what: string): Promise<void> {
    try {
      await this.#sendMsg(a, msg);
    } catch (err) {
      this.#logger.error(`Failed to send ${what}: ${errorMessage(err)}`, { to: a.addr });
    }
  }

  async #writeStream(conn: Duplex, msg: Uint8Array): Promise<void> {
    let out: Uint8Array = msg;
    if (this.#cfg.enableCompression) out = compressMessage(out);
    if (this.#keyring && this.#verifyOutgoing) out = encryptStream(this.#keyring, out);
    await new Promise<void>((resolve, reject) => {
      conn.write(out, (err) => (err ? reject(err) : resolve()));
    });
  }

  #queueBroadcast(node: string, msg: Uint8Array, finished?: () => void): void {
    this.#broadcasts.queue(finished ? { name: node, message: msg, finished } : { name: node, message: msg });
  }

  // -------------------------------------------------------------------------------------------
  // state machine (memberlist state.go)

  #aliveNode(a: AliveInput, notify: (() => void) | undefined, bootstrap: boolean): void {
    if (this.#left && a.Node === this.#name) return;
    if (a.Vsn.length >= 3) {
      const [pmin, pmax] = [a.Vsn[0] as number, a.Vsn[1] as number];
      if (pmin === 0 || pmax === 0 || pmin > pmax) {
        this.#badInput.warn(`alive-vsn:${a.Node}`, `ignoring an alive message for '${a.Node}' because its protocol versions are wrong: ${pmin} <= ${a.Vsn[2]} <= ${pmax} should be > 0`);
        return;
      }
    }
    const addr = ipFromBytes(a.Addr);
    if (addr === undefined) {
      this.#badInput.warn(`alive-addr:${a.Node}`, `ignoring an alive message for '${a.Node}': address of ${a.Addr.length} bytes is not an IP`);
      return;
    }
    const vsn = decodeVsn(a.Vsn);
    if (this.#delegates.alive) {
      if (!vsn) {
        this.#badInput.warn(`alive-novsn:${a.Node}`, `ignoring alive message for '${a.Node}' (${addr}:${a.Port}) because Vsn is not present`);
        return;
      }
      const veto = this.#delegates.alive.notifyAlive({ name: a.Node, addr, port: a.Port, meta: a.Meta, state: NodeState.alive, vsn, incarnation: a.Incarnation });
      if (veto !== undefined) {
        this.#logger.warn(`ignoring alive message for '${a.Node}': ${veto}`);
        return;
      }
    }
    let state = this.#nodeMap.get(a.Node);
    let updatesNode = false;
    if (!state) {
      state = { name: a.Node, addr, addrBytes: new Uint8Array(a.Addr), port: a.Port, meta: new Uint8Array(a.Meta), incarnation: 0, state: NodeState.dead, stateChange: this.#clock.now(), vsn: vsn ?? ZERO_VSN };
      this.#nodeMap.set(a.Node, state);
      // Insert at a random position so failure detection stays bounded on average.
      const n = this.#nodes.length;
      const offset = Math.floor(this.#random() * (n + 1));
      this.#nodes.push(state);
      [this.#nodes[offset], this.#nodes[n]] = [this.#nodes[n] as NodeEntry, this.#nodes[offset] as NodeEntry];
    } else if (state.addr !== addr || state.port !== a.Port) {
      const canReclaim = this.#cfg.deadNodeReclaimTimeMs > 0 && this.#clock.now() - state.stateChange > this.#cfg.deadNodeReclaimTimeMs;
      if (state.state === NodeState.left || (state.state === NodeState.dead && canReclaim)) {
        this.#logger.info(`Updating address for left or failed node ${state.name} from ${state.addr}:${state.port} to ${addr}:${a.Port}`);
        updatesNode = true;
      } else {
        this.#badInput.warn(
          `conflict:${a.Node}:${addr}:${a.Port}`,
          `Conflicting address for ${state.name}. Mine: ${state.addr}:${state.port} Theirs: ${addr}:${a.Port} Old state: ${state.state}`,
        );
        this.#delegates.conflict?.notifyConflict(snapshot(state), { name: a.Node, addr, port: a.Port, meta: a.Meta, state: NodeState.alive, vsn: vsn ?? ZERO_VSN, incarnation: a.Incarnation });
        return;
      }
    }
    const isLocal = state.name === this.#name;
    if (a.Incarnation <= state.incarnation && !isLocal && !updatesNode) return;
    if (a.Incarnation < state.incarnation && isLocal) return;

    this.#suspicions.get(a.Node)?.cancel();
    this.#suspicions.delete(a.Node);
    const oldState = state.state;
    const oldMeta = state.meta;

    if (!bootstrap && isLocal) {
      const mine = encodeVsn(state.vsn);
      if (a.Incarnation === state.incarnation && sameBytes(a.Meta, state.meta) && sameBytes(a.Vsn, mine)) return;
      this.#refute(state, a.Incarnation);
      this.#logger.warn(`Refuting an alive message for '${a.Node}' (${addr}:${a.Port})`);
    } else {
      this.#queueBroadcast(a.Node, encodeMessage(MessageType.alive, a), notify);
      if (vsn) state.vsn = vsn;
      state.incarnation = a.Incarnation;
      state.meta = new Uint8Array(a.Meta);
      state.addr = addr;
      state.addrBytes = new Uint8Array(a.Addr);
      state.port = a.Port;
      if (state.state !== NodeState.alive) {
        state.state = NodeState.alive;
        state.stateChange = this.#clock.now();
      }
    }
    const events = this.#delegates.events;
    if (events) {
      if (oldState === NodeState.dead || oldState === NodeState.left) events.notifyJoin(snapshot(state));
      else if (!sameBytes(oldMeta, state.meta)) events.notifyUpdate(snapshot(state));
    }
  }

  #refute(me: NodeEntry, accusedInc: number): void {
    let inc = this.#nextIncarnation();
    if (accusedInc >= inc) inc = this.#skipIncarnation(accusedInc - inc + 1);
    me.incarnation = inc;
    this.#awareness.applyDelta(1);
    this.#queueBroadcast(me.name, encodeMessage(MessageType.alive, { Incarnation: inc, Node: me.name, Addr: me.addrBytes, Port: me.port, Meta: me.meta, Vsn: encodeVsn(me.vsn) }));
  }

  #suspectNode(s: { Incarnation: number; Node: string; From: string }): void {
    const state = this.#nodeMap.get(s.Node);
    if (!state || s.Incarnation < state.incarnation) return;
    const timer = this.#suspicions.get(s.Node);
    if (timer) {
      if (timer.confirm(s.From)) this.#queueBroadcast(s.Node, encodeMessage(MessageType.suspect, s));
      return;
    }
    if (state.state !== NodeState.alive) return;
    if (state.name === this.#name) {
      this.#refute(state, s.Incarnation);
      this.#logger.warn(`Refuting a suspect message (from: ${s.From})`);
      return;
    }
    this.#queueBroadcast(s.Node, encodeMessage(MessageType.suspect, s));
    state.incarnation = s.Incarnation;
    state.state = NodeState.suspect;
    const changeTime = this.#clock.now();
    state.stateChange = changeTime;

    let k = this.#cfg.suspicionMult - 2;
    const n = this.#nodes.length;
    if (n - 2 < k) k = 0;
    const min = suspicionTimeout(this.#cfg.suspicionMult, n, this.#cfg.probeIntervalMs);
    const max = this.#cfg.suspicionMaxTimeoutMult * min;
    const suspicion = new Suspicion(this.#clock, s.From, k, min, max, (confirmations) => {
      if (this.#shutdown) return;
      const cur = this.#nodeMap.get(s.Node);
      if (cur && cur.state === NodeState.suspect && cur.stateChange === changeTime) {
        this.#logger.info(`Marking ${cur.name} as failed, suspect timeout reached (${confirmations} peer confirmations)`);
        this.#deadNode({ Incarnation: cur.incarnation, Node: cur.name, From: this.#name });
      }
    });
    this.#suspicions.set(s.Node, suspicion);
  }

  #deadNode(d: { Incarnation: number; Node: string; From: string }, notify?: () => void): void {
    const state = this.#nodeMap.get(d.Node);
    if (!state || d.Incarnation < state.incarnation) return;
    this.#suspicions.get(d.Node)?.cancel();
    this.#suspicions.delete(d.Node);
    if (deadOrLeft(state)) return;
    if (state.name === this.#name) {
      if (!this.#left) {
        this.#refute(state, d.Incarnation);
        this.#logger.warn(`Refuting a dead message (from: ${d.From})`);
        return;
      }
      this.#queueBroadcast(d.Node, encodeMessage(MessageType.dead, d), notify);
    } else {
      this.#queueBroadcast(d.Node, encodeMessage(MessageType.dead, d));
    }
    state.incarnation = d.Incarnation;
    state.state = d.Node === d.From ? NodeState.left : NodeState.dead;
    state.stateChange = this.#clock.now();
    this.#delegates.events?.notifyLeave(snapshot(state));
  }

  #mergeState(remote: readonly PushNodeState[]): void {
    for (const r of remote) {
      switch (r.State) {
        case NodeState.alive:
          this.#aliveNode({ Incarnation: r.Incarnation, Node: r.Name, Addr: r.Addr, Port: r.Port, Meta: r.Meta, Vsn: r.Vsn }, undefined, false);
          break;
        case NodeState.left:
          this.#deadNode({ Incarnation: r.Incarnation, Node: r.Name, From: r.Name });
          break;
        case NodeState.dead:
        case NodeState.suspect:
          // A remote dead is only a suspicion here: we let our own probes decide.
          this.#suspectNode({ Incarnation: r.Incarnation, Node: r.Name, From: this.#name });
          break;
        default:
          break;
      }
    }
  }

  /**
   * Drop nodes dead or left for longer than gossipToTheDeadTime, then shuffle the probe order.
   * (memberlist 0.2.2 keeps left nodes forever; later versions drop them like dead ones, and so
   * do we: serf keeps its own tombstones.)
   */
  #resetNodes(): void {
    const now = this.#clock.now();
    const keep: NodeEntry[] = [];
    for (const n of this.#nodes) {
      if (deadOrLeft(n) && now - n.stateChange > this.#cfg.gossipToTheDeadTimeMs) this.#nodeMap.delete(n.name);
      else keep.push(n);
    }
    for (let i = keep.length - 1; i > 0; i--) {
      const j = Math.floor(this.#random() * (i + 1));
      [keep[i], keep[j]] = [keep[j] as NodeEntry, keep[i] as NodeEntry];
    }
    this.#nodes = keep;
  }

  // -------------------------------------------------------------------------------------------
  // probing

  async #probe(): Promise<void> {
    let numCheck = 0;
    for (;;) {
      if (numCheck >= this.#nodes.length) return;
      if (this.#probeIndex >= this.#nodes.length) {
        this.#resetNodes();
        this.#probeIndex = 0;
        numCheck++;
        continue;
      }
      const node = this.#nodes[this.#probeIndex++] as NodeEntry;
      if (node.name === this.#name || deadOrLeft(node)) {
        numCheck++;
        continue;
      }
      await this.#probeNode(node);
      return;
    }
  }

  #setAckHandler(seq: number, h: Omit<AckHandler, 'timer'>, timeoutMs: number, onTimeout?: () => void): void {
    const timer = this.#after(timeoutMs, () => {
      this.#ackHandlers.delete(seq);
      onTimeout?.();
    });
    this.#ackHandlers.set(seq, { ...h, timer });
  }

  async #probeNode(node: NodeEntry): Promise<void> {
    const probeInterval = this.#awareness.scale(this.#cfg.probeIntervalMs);
    const seq = this.#nextSeqNo();
    const ping = { SeqNo: seq, Node: node.name, SourceAddr: this.#advertiseBytes, SourcePort: this.#advertise.port, SourceNode: this.#name };
    let nacks = 0;
    let resolveAck!: (r: { complete: boolean; payload?: Buffer; timestamp?: number }) => void;
    const ackP = new Promise<{ complete: boolean; payload?: Buffer; timestamp?: number }>((r) => (resolveAck = r));
    const onStop = (): void => resolveAck({ complete: false });
    this.#onShutdown.add(onStop);
    void ackP.then(() => this.#onShutdown.delete(onStop));
    this.#setAckHandler(
      seq,
      {
        ack: (payload, timestamp) => {
          this.#clock.clearTimeout(this.#ackHandlers.get(seq)?.timer);
          this.#ackHandlers.delete(seq);
          resolveAck({ complete: true, payload, timestamp });
        },
        nack: () => nacks++,
      },
      probeInterval,
      () => resolveAck({ complete: false }),
    );
    const sent = this.#clock.now();
    const deadline = Date.now() + probeInterval;
    let awarenessDelta = 0;
    let remoteFailure = false;
    try {
      if (node.state === NodeState.alive) {
        await this.#sendMsg(addrOf(node), encodeMessage(MessageType.ping, ping));
      } else {
        const suspect = encodeMessage(MessageType.suspect, { Incarnation: node.incarnation, Node: node.name, From: this.#name });
        for (const c of encodeCompound([encodeMessage(MessageType.ping, ping), suspect])) await this.#rawSendPacket(addrOf(node), node, c);
      }
    } catch (err) {
      this.#logger.error(`Failed to send ping: ${errorMessage(err)}`, { node: node.name });
      // A transport that cannot reach the node (wanfed: no gateway) is a remote failure.
      remoteFailure = true;
    }
    try {
      if (!remoteFailure) {
        awarenessDelta = -1;
        const timeout = this.#cancellableSleep(this.#cfg.probeTimeoutMs);
        const first = await Promise.race([ackP, timeout.done.then(() => undefined)]);
        timeout.cancel();
        if (first?.complete) {
          this.#delegates.ping?.notifyPingComplete(snapshot(node), (first.timestamp ?? this.#clock.now()) - sent, first.payload ?? Buffer.alloc(0));
          return;
        }
        this.#logger.debug(`Failed ping: ${node.name} (timeout reached)`);
      }
      if (this.#shutdown) return;
      const peers = this.#kRandomNodes(this.#cfg.indirectChecks, (n) => n.name === this.#name || n.name === node.name || n.state !== NodeState.alive);
      let expectedNacks = 0;
      for (const peer of peers) {
        const nack = peer.vsn.pmax >= 4;
        if (nack) expectedNacks++;
        const ind = { ...ping, Target: node.addrBytes, Port: node.port, Node: node.name, Nack: nack };
        void this.#send(addrOf(peer), encodeMessage(MessageType.indirectPing, ind), 'indirect ping');
      }
      const disableTcp = this.#cfg.disableTcpPings || (this.#disableTcpPingsForNode?.(node.name) ?? false);
      const fallback = !disableTcp && node.vsn.pmax >= 3 ? this.#sendPingAndWaitForAck(addrOf(node), ping, deadline) : Promise.resolve(false);
      const res = await ackP;
      if (res.complete) {
        void fallback.catch(() => undefined);
        return;
      }
      if (await fallback) {
        this.#logger.warn(`Was able to connect to ${node.name} but other probes failed, network may be misconfigured`);
        return;
      }
      if (this.#shutdown) return;
      awarenessDelta = expectedNacks > 0 ? Math.max(0, expectedNacks - nacks) : 1;
      this.#logger.info(`Suspect ${node.name} has failed, no acks received`);
      this.#suspectNode({ Incarnation: node.incarnation, Node: node.name, From: this.#name });
    } finally {
      this.#awareness.applyDelta(awarenessDelta);
    }
  }

  /** The TCP fallback ping: true if the node answered with the right ack before `deadline`. */
  async #sendPingAndWaitForAck(a: GossipAddress, ping: { SeqNo: number }, deadline: number): Promise<boolean> {
    if (!a.name && this.#requireNodeNames) return false;
    let conn: Duplex;
    try {
      conn = await this.#transport.dialAddress(a, { timeoutMs: Math.max(1, deadline - Date.now()) });
    } catch {
      return false;
    }
    this.#openStreams.add(conn);
    try {
      await this.#writeStream(conn, encodeMessage(MessageType.ping, ping));
      const m = await readStreamMessage(conn, { keyring: this.#keyring, verifyIncoming: this.#verifyIncoming, deadline });
      if (m.type !== MessageType.ackResp) throw new Error(`Unexpected msgType (${m.type}) from ping`);
      if (m.body.SeqNo !== ping.SeqNo) throw new Error(`Sequence number from ack (${m.body.SeqNo}) doesn't match ping (${ping.SeqNo})`);
      return true;
    } catch (err) {
      this.#logger.debug(`Failed fallback ping: ${errorMessage(err)}`, { to: a.addr });
      return false;
    } finally {
      this.#openStreams.delete(conn);
      conn.destroy();
    }
  }

  // -------------------------------------------------------------------------------------------
  // gossip and push-pull

  #gossip(): Promise<void> | undefined {
    // Nothing queued and no delegate that could add something: the round is a no-op.
    if (this.#broadcasts.length === 0 && !this.#delegates.delegate) return undefined;
    const now = this.#clock.now();
    const nodes = this.#kRandomNodes(this.#cfg.gossipNodes, (n) => {
      if (n.name === this.#name) return true;
      if (n.state === NodeState.alive || n.state === NodeState.suspect) return false;
      if (n.state === NodeState.dead) return now - n.stateChange > this.#cfg.gossipToTheDeadTimeMs;
      return true;
    });
    if (nodes.length === 0) return undefined;
    const avail = this.#cfg.udpBufferSize - COMPOUND_HEADER_OVERHEAD - this.#encryptOverhead();
    // Most rounds have nothing to send: they end here, synchronously.
    const msgs = this.#getBroadcasts(COMPOUND_OVERHEAD, avail);
    if (msgs.length === 0) return undefined;
    return this.#gossipTo(nodes, msgs, avail);
  }

  async #gossipTo(nodes: readonly NodeEntry[], first: Uint8Array[], avail: number): Promise<void> {
    let msgs = first;
    for (const [i, node] of nodes.entries()) {
      if (i > 0) msgs = this.#getBroadcasts(COMPOUND_OVERHEAD, avail);
      if (msgs.length === 0) return;
      try {
        if (msgs.length === 1) await this.#rawSendPacket(addrOf(node), node, msgs[0] as Uint8Array);
        else for (const c of encodeCompound(msgs)) await this.#rawSendPacket(addrOf(node), node, c);
      } catch (err) {
        this.#logger.error(`Failed to send gossip to ${node.addr}:${node.port}: ${errorMessage(err)}`);
      }
    }
  }

  async #pushPull(): Promise<void> {
    const [node] = this.#kRandomNodes(1, (n) => n.name === this.#name || n.state !== NodeState.alive);
    if (!node) return;
    try {
      await this.#pushPullNode(addrOf(node), false);
    } catch (err) {
      if (this.#shutdown) return;
      this.#logger.error(`Push/Pull with ${node.name} failed: ${errorMessage(err)}`);
    }
  }

  #localState(join: boolean): Buffer {
    const nodes = this.#nodes.map((n) => ({ Name: n.name, Addr: n.addrBytes, Port: n.port, Meta: n.meta, Incarnation: n.incarnation, State: n.state, Vsn: encodeVsn(n.vsn) }));
    const userState = this.#delegates.delegate?.localState(join) ?? new Uint8Array(0);
    return encodePushPull({ join, nodes, userState });
  }

  async #pushPullNode(a: GossipAddress, join: boolean): Promise<void> {
    this.#checkName(a);
    if (this.#shutdown) throw new MeshfedError(MemberlistErrorCode.SHUTDOWN, 'memberlist: shut down');
    const conn = await this.#transport.dialAddress(a, { timeoutMs: this.#cfg.tcpTimeoutMs });
    this.#openStreams.add(conn);
    let m: StreamMessage;
    try {
      this.#logger.debug(`Initiating push/pull sync with: ${a.name} ${a.addr}`);
      await this.#writeStream(conn, this.#localState(join));
      m = await readStreamMessage(conn, { keyring: this.#keyring, verifyIncoming: this.#verifyIncoming, deadline: Date.now() + this.#cfg.tcpTimeoutMs });
    } finally {
      this.#openStreams.delete(conn);
      conn.destroy();
    }
    if (m.type === MessageType.err) throw new MeshfedError(MemberlistErrorCode.PUSH_PULL, `remote error: ${m.body.Error}`);
    if (m.type !== MessageType.pushPull) throw new MeshfedError(MemberlistErrorCode.PUSH_PULL, `received invalid msgType (${m.type}), expected pushPullMsg (${MessageType.pushPull})`);
    this.#mergeRemoteState(join, this.#fixPorts(m.body.nodes), m.body.userState);
  }

  #fixPorts(nodes: readonly PushNodeState[]): PushNodeState[] {
    return nodes.map((n) => (this.#vsn.pcur < 2 || n.Port === 0 ? { ...n, Port: this.#bindPort } : n));
  }

  /** memberlist `verifyProtocol`: every node's current versions must fit every alive node's range. */
  #verifyProtocol(remote: readonly PushNodeState[]): void {
    let maxpmin = 0;
    let minpmax = 255;
    let maxdmin = 0;
    let mindmax = 255;
    for (const rn of remote) {
      const v = decodeVsn(rn.Vsn);
      if (rn.State !== NodeState.alive || !v) continue;
      maxpmin = Math.max(maxpmin, v.pmin);
      minpmax = Math.min(minpmax, v.pmax);
      maxdmin = Math.max(maxdmin, v.dmin);
      mindmax = Math.min(mindmax, v.dmax);
    }
    for (const n of this.#nodes) {
      if (n.state !== NodeState.alive) continue;
      maxpmin = Math.max(maxpmin, n.vsn.pmin);
      minpmax = Math.min(minpmax, n.vsn.pmax);
      maxdmin = Math.max(maxdmin, n.vsn.dmin);
      mindmax = Math.min(mindmax, n.vsn.dmax);
    }
    const check = (name: string, pcur: number, dcur: number): void => {
      if (pcur < maxpmin || pcur > minpmax) throw new MeshfedError(MemberlistErrorCode.PUSH_PULL, `Node '${name}' protocol version (${pcur}) is incompatible: [${maxpmin}, ${minpmax}]`);
      if (dcur < maxdmin || dcur > mindmax) throw new MeshfedError(MemberlistErrorCode.PUSH_PULL, `Node '${name}' delegate protocol version (${dcur}) is incompatible: [${maxdmin}, ${mindmax}]`);
    };
    for (const n of remote) {
      const v = decodeVsn(n.Vsn);
      check(n.Name, v?.pcur ?? 0, v?.dcur ?? 0);
    }
    for (const n of this.#nodes) check(n.name, n.vsn.pcur, n.vsn.dcur);
  }

  #mergeRemoteState(join: boolean, remote: readonly PushNodeState[], userState: Uint8Array): void {
    this.#verifyProtocol(remote);
    if (join && this.#delegates.merge) {
      const peers: MemberlistNode[] = remote.map((n) => ({ name: n.Name, addr: ipFromBytes(n.Addr) ?? '', port: n.Port, meta: n.Meta, state: n.State as NodeStateValue, vsn: decodeVsn(n.Vsn) ?? ZERO_VSN, incarnation: n.Incarnation }));
      const veto = this.#delegates.merge.notifyMerge(peers);
      if (veto !== undefined) throw new MeshfedError(MemberlistErrorCode.PUSH_PULL, veto);
    }
    this.#mergeState(remote);
    if (userState.length > 0 && this.#delegates.delegate) this.#delegates.delegate.mergeRemoteState(Buffer.from(userState), join);
  }

  // -------------------------------------------------------------------------------------------
  // inbound streams

  async #handleConn(conn: Duplex): Promise<void> {
    if (this.#shutdown) {
      conn.destroy();
      return;
    }
    this.#openStreams.add(conn);
    conn.on('error', () => undefined);
    const deadline = Date.now() + this.#cfg.tcpTimeoutMs;
    let pushPull = false;
    try {
      let m: StreamMessage;
      try {
        m = await readStreamMessage(conn, { keyring: this.#keyring, verifyIncoming: this.#verifyIncoming, deadline });
      } catch (err) {
        if ((err as { code?: string }).code === 'MESHFED_ERR_GOSSIP_STREAM_EOF' && /EOF/.test(errorMessage(err))) return;
        this.#badInput.warn(`stream:${errorMessage(err).slice(0, 60)}`, `failed to receive: ${errorMessage(err)}`);
        await this.#writeStream(conn, encodeMessage(MessageType.err, { Error: errorMessage(err) })).catch(() => undefined);
        return;
      }
      switch (m.type) {
        case MessageType.user:
          this.#delegates.delegate?.notifyMsg(m.payload);
          return;
        case MessageType.pushPull: {
          pushPull = true;
          this.#pushPullInFlight++;
          if (this.#pushPullInFlight > this.#maxPushPull) {
            this.#badInput.warn('pushpull-limit', 'Too many pending push/pull requests');
            return;
          }
          await this.#writeStream(conn, this.#localState(m.body.join));
          try {
            this.#mergeRemoteState(m.body.join, this.#fixPorts(m.body.nodes), m.body.userState);
          } catch (err) {
            this.#logger.error(`Failed push/pull merge: ${errorMessage(err)}`);
          }
          return;
        }
        case MessageType.ping: {
          if (m.body.Node !== '' && m.body.Node !== this.#name) {
            this.#badInput.warn(`stream-ping:${m.body.Node}`, `Got ping for unexpected node ${m.body.Node}`);
            return;
          }
          await this.#writeStream(conn, encodeMessage(MessageType.ackResp, { SeqNo: m.body.SeqNo }));
          return;
        }
        default:
          this.#badInput.warn(`stream-type:${m.type}`, `Received invalid msgType (${m.type}) on a stream`);
      }
    } catch (err) {
      this.#logger.debug(`stream failed: ${errorMessage(err)}`);
    } finally {
      if (pushPull) this.#pushPullInFlight--;
      this.#openStreams.delete(conn);
      conn.end();
      // Give the peer the data, then free the socket even if it never closes its side; a peer
      // that closes (the usual case) clears the timer, so it never fires idle.
      if (!conn.destroyed) {
        const t = this.#after(this.#cfg.tcpTimeoutMs, () => conn.destroy());
        conn.once('close', () => {
          this.#clock.clearTimeout(t);
          this.#timers.delete(t);
        });
      }
    }
  }

  // -------------------------------------------------------------------------------------------
  // inbound packets

  #onPacket(p: GossipPacket): void {
    if (this.#shutdown) return;
    let buf: Uint8Array = p.buf;
    if (this.#keyring) {
      try {
        buf = decryptPacket(this.#keyring, buf);
      } catch (err) {
        if (this.#verifyIncoming) {
          this.#badInput.warn(`decrypt:${p.from}`, `Decrypt packet failed: ${errorMessage(err)}`, { from: p.from });
          return;
        }
      }
    }
    let unpacked;
    try {
      unpacked = unpackPacket(buf);
    } catch (err) {
      this.#badInput.warn(`packet:${p.from}:${(err as { code?: string }).code ?? ''}`, `dropped a packet: ${errorMessage(err)}`, { from: p.from });
      return;
    }
    for (const e of unpacked.errors) this.#badInput.warn(`part:${p.from}:${e.code}`, `dropped a message: ${e.message}`, { from: p.from });
    if (unpacked.truncated > 0) this.#badInput.warn(`compound-trunc:${p.from}`, `Compound request had ${unpacked.truncated} truncated messages`, { from: p.from });
    const ts = p.timestamp.getTime();
    for (const m of unpacked.messages) {
      try {
        this.#handleMessage(m, p.from, ts);
      } catch (err) {
        this.#logger.error(`handling a ${m.type} message failed: ${errorMessage(err)}`, { from: p.from });
      }
    }
  }

  #handleMessage(m: WireMessage, from: string, timestamp: number): void {
    switch (m.type) {
      case MessageType.ping:
        return this.#handlePing(m.body, from);
      case MessageType.indirectPing:
        return this.#handleIndirectPing(m.body, from);
      case MessageType.ackResp: {
        const h = this.#ackHandlers.get(m.body.SeqNo);
        if (h) h.ack(Buffer.from(m.body.Payload), timestamp);
        return;
      }
      case MessageType.nackResp:
        this.#ackHandlers.get(m.body.SeqNo)?.nack?.();
        return;
      case MessageType.suspect:
        return this.#suspectNode(m.body);
      case MessageType.alive: {
        const a = m.body;
        const port = this.#vsn.pcur < 2 || a.Port === 0 ? this.#bindPort : a.Port;
        return this.#aliveNode({ ...a, Port: port }, undefined, false);
      }
      case MessageType.dead:
        return this.#deadNode(m.body);
      case MessageType.user:
        this.#delegates.delegate?.notifyMsg(Buffer.from(m.body));
        return;
      default:
        this.#badInput.warn(`type:${m.type}`, `msg type (${m.type}) not supported in a packet`, { from });
    }
  }

  #replyAddr(sourceAddr: Uint8Array, sourcePort: number, sourceNode: string, from: string): GossipAddress {
    const ip = sourceAddr.length > 0 && sourcePort > 0 ? ipFromBytes(sourceAddr) : undefined;
    return { name: sourceNode, addr: ip !== undefined ? joinHostPort(ip, sourcePort) : from };
  }

  #handlePing(p: { SeqNo: number; Node: string; SourceAddr: Uint8Array; SourcePort: number; SourceNode: string }, from: string): void {
    if (p.Node !== '' && p.Node !== this.#name) {
      this.#badInput.warn(`ping-node:${p.Node}`, `Got ping for unexpected node '${p.Node}'`, { from });
      return;
    }
    const payload = this.#delegates.ping?.ackPayload() ?? new Uint8Array(0);
    const ack = encodeMessage(MessageType.ackResp, { SeqNo: p.SeqNo, Payload: payload.length > 0 ? payload : undefined });
    void this.#send(this.#replyAddr(p.SourceAddr, p.SourcePort, p.SourceNode, from), ack, 'ack');
  }

  #handleIndirectPing(
    ind: { SeqNo: number; Target: Uint8Array; Port: number; Node: string; Nack: boolean; SourceAddr: Uint8Array; SourcePort: number; SourceNode: string },
    from: string,
  ): void {
    const port = this.#vsn.pcur < 2 || ind.Port === 0 ? this.#bindPort : ind.Port;
    const target = ipFromBytes(ind.Target);
    if (target === undefined) {
      this.#badInput.warn(`indirect-target:${from}`, 'indirect ping with a malformed target address', { from });
      return;
    }
    const localSeq = this.#nextSeqNo();
    const back = this.#replyAddr(ind.SourceAddr, ind.SourcePort, ind.SourceNode, from);
    let answered = false;
    this.#setAckHandler(
      localSeq,
      {
        ack: () => {
          answered = true;
          this.#clock.clearTimeout(this.#ackHandlers.get(localSeq)?.timer);
          this.#ackHandlers.delete(localSeq);
          void this.#send(back, encodeMessage(MessageType.ackResp, { SeqNo: ind.SeqNo }), 'forwarded ack');
        },
      },
      this.#cfg.probeTimeoutMs,
    );
    const ping = { SeqNo: localSeq, Node: ind.Node, SourceAddr: this.#advertiseBytes, SourcePort: this.#advertise.port, SourceNode: this.#name };
    void this.#send({ name: ind.Node, addr: joinHostPort(target, port) }, encodeMessage(MessageType.ping, ping), 'indirect ping');
    if (ind.Nack) {
      this.#after(this.#cfg.probeTimeoutMs, () => {
        if (!answered) void this.#send(back, encodeMessage(MessageType.nackResp, { SeqNo: ind.SeqNo }), 'nack');
      });
    }
  }
}
