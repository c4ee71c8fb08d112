/**
 * Serf (serf 0.9.4 semantics, wire-compatible): membership with statuses on top of a memberlist,
 * join/leave intents with Lamport times, user events, queries with acks, filters and relays,
 * push-pull state, reaping and reconnects (hashicorp-wire.md §5–§7, §12).
 *
 * Serf plugs its delegates into a memberlist it builds through `createMemberlist`, so it runs on
 * the real `Memberlist` as well as on a test fake. Every delegate is total: malformed input from
 * a peer is dropped and logged (rate-limited), never thrown back into memberlist.
 *
 * @example
 * ```ts
 * import { Serf } from 'meshfed/plugins/gossip/serf';
 * const serf = await Serf.create({
 *   nodeName: 'gw-1.dc2',
 *   tags: { role: 'consul', dc: 'dc2' },
 *   logger,
 *   createMemberlist: (delegates, meta) => Memberlist.create({ ...mlConfig, delegates, ...meta.delegateVersions }),
 *   merge: (members) => {
 *     const bad = members.find((m) => m.tags.role !== 'consul');
 *     return bad ? `Member '${bad.name}' is not a server` : undefined;
 *   },
 *   onEvent: (e) => { if (e.kind === 'member') console.log(e.type, e.members.map((m) => m.name)); },
 * });
 * await serf.join(['10.0.0.1:8302'], true);
 * await serf.userEvent('deploy', Buffer.from('v1'), false);
 * const q = await serf.query('ping-app', Buffer.alloc(0), { requestAck: true });
 * const { acks, responses } = await q.done;
 * await serf.leave();
 * await serf.shutdown();
 * ```
 */
import { MeshfedError } from '../../../core/errors.js';
import type { Logger } from '../../../core/logger.js';
import { systemClock, type Clock } from '../../../core/clock.js';
import { decode } from '../../rpc/msgpack/index.js';
import { TransmitLimitedQueue } from '../memberlist/broadcast-queue.js';
import type { MemberlistApi, MemberlistDelegates, MemberlistNode } from '../memberlist/types.js';
import { RateLimitedLog } from '../transport/rate-limited-log.js';
import { NodeState } from '../wire/index.js';
import { SerfErrorCode, isSerfError } from './errors.js';
import { decodeFilter, encodeFilter } from './filter.js';
import { bytesToIp, hostPort, ipToBytes } from './ip.js';
import { LamportClock, toLamportTime, type LamportTime } from './lamport-clock.js';
import { decodeSerfMessage, encodeRelayMessage, encodeSerfMessage } from './message-codec.js';
import { FilterType, MemberStatus, QueryFlag, SerfMessageType, serfMessageTypeName } from './message-type.js';
import type { Join, KeyResponseInput, Leave, PushPull, Query, QueryResponse, QueryResponseInput, UserEvent } from './messages.js';
import {
  INTERNAL_QUERY_PREFIX, SERF_DELEGATE_VERSIONS, USER_EVENT_SANE_LIMIT, resolveTunables, type SerfConfig, type SerfKeyring, type SerfTunables,
} from './serf-config.js';
import { CoordinateSchema, PING_VERSION, SerfQueryHandle, compileFilterExpr, coordinatePayload } from './serf-query.js';
import { decodeTags, encodeTags } from './tags.js';
import type { SerfEvent, SerfMember, SerfMemberEventType, SerfMemberStatus } from './types.js';

/** Error codes of a running {@link Serf} (API misuse and timeouts; bad peer input is only logged). */
export const SerfRuntimeErrorCode = Object.freeze({
  /** The operation is not allowed in the current state (join after leave, leave twice, …). */
  STATE: 'MESHFED_ERR_SERF_STATE',
  /** A broadcast did not go out within `broadcastTimeoutMs`. */
  TIMEOUT: 'MESHFED_ERR_SERF_TIMEOUT',
  /** A user event, query or response is over its size limit, or a response is late or repeated. */
  REFUSED: 'MESHFED_ERR_SERF_REFUSED',
});

function runtimeError(code: string, message: string, cause?: unknown): MeshfedError {
  return new MeshfedError(code, message, { cause, plugin: 'gossip' });
}

/** Lifecycle of a {@link Serf} (Go `SerfState`). */
export type SerfState = 'alive' | 'leaving' | 'left' | 'shutdown';

/** Options of {@link Serf.query}. */
export interface SerfQueryOptions {
  /** How long to collect (default gossipInterval × queryTimeoutMult × ceil(log10(n + 1))). */
  readonly timeoutMs?: number;
  /** Only these nodes answer. */
  readonly filterNodes?: readonly string[];
  /** Only nodes whose tag matches the regular expression (RE2 syntax, unanchored) answer. */
  readonly filterTags?: Readonly<Record<string, string>>;
  /** Ask every node that processes the query to ack it at once. */
  readonly requestAck?: boolean;
  /** Each answer is also relayed through this many other members (0–255). */
  readonly relayFactor?: number;
}

interface MemberState {
  name: string;
  addr: string;
  port: number;
  tags: Record<string, string>;
  status: SerfMemberStatus;
  statusLTime: LamportTime;
  /** When it failed or left (clock ms); 0 while alive. */
  leaveTime: number;
  pmin: number;
  pmax: number;
  pcur: number;
  dmin: number;
  dmax: number;
  dcur: number;
}

interface Intent {
  readonly type: 'join' | 'leave';
  readonly ltime: LamportTime;
  readonly wallTime: number;
}

interface SeenQueries {
  readonly ltime: LamportTime;
  readonly ids: number[];
}

interface StoredEvents {
  readonly ltime: LamportTime;
  readonly events: { name: string; payload: Uint8Array }[];
}

/** Bound on distinct user events (or query IDs) remembered at one Lamport time. */
const MAX_PER_SLOT = 256;

/** Bound on one serf message arriving as a memberlist user message (push-pull state is separate). */
const MIN_USER_MSG_BYTES = 64 * 1024;

const STATUS_VALUE: Readonly<Record<SerfMemberStatus, number>> = {
  alive: MemberStatus.alive,
  leaving: MemberStatus.leaving,
  left: MemberStatus.left,
  failed: MemberStatus.failed,
};

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(a, b) === 0;
}

/**
 * A serf agent's core. Create with {@link Serf.create}; stop with {@link Serf.leave} then
 * {@link Serf.shutdown}. Single-threaded: every method and delegate runs on the event loop.
 */
export class Serf {
  readonly #config: SerfConfig;
  readonly #t: SerfTunables;
  readonly #name: string;
  readonly #log: Logger;
  readonly #bad: RateLimitedLog;
  readonly #clockSrc: Clock;
  readonly #random: () => number;
  readonly #keyring: SerfKeyring | undefined;
  #ml: MemberlistApi | undefined;
  #state: SerfState = 'alive';
  #tags: Record<string, string>;

  readonly #clock = new LamportClock();
  readonly #eventClock = new LamportClock();
  readonly #queryClock = new LamportClock();
  #eventMinTime: LamportTime = 0n;
  readonly #queryMinTime: LamportTime = 0n;
  #joinIgnore = 0;

  readonly #members = new Map<string, MemberState>();
  readonly #failed = new Set<string>();
  readonly #left = new Set<string>();
  readonly #intents = new Map<string, Intent>();
  readonly #eventRing: (StoredEvents | null)[];
  readonly #queryRing: (SeenQueries | null)[];
  readonly #running = new Map<LamportTime, SerfQueryHandle>();

  readonly #intentQueue: TransmitLimitedQueue;
  readonly #eventQueue: TransmitLimitedQueue;
  readonly #queryQueue: TransmitLimitedQueue;

  readonly #timers = new Set<unknown>();
  readonly #ackPayload = coordinatePayload();
  readonly #maxUserMsgBytes: number;

  private constructor(config: SerfConfig) {
    if (typeof config.nodeName !== 'string' || config.nodeName === '') throw new TypeError('serf: nodeName must be a non-empty string');
    if (typeof config.createMemberlist !== 'function') throw new TypeError('serf: createMemberlist must be a function');
    this.#config = config;
    this.#t = resolveTunables(config);
    this.#name = config.nodeName;
    this.#log = config.logger.child({ component: 'serf', node: config.nodeName });
    this.#clockSrc = config.clock ?? systemClock;
    this.#bad = new RateLimitedLog(this.#log, { now: () => this.#clockSrc.now() });
    this.#random = config.random ?? Math.random;
    this.#keyring = config.keyring;
    this.#tags = { ...(config.tags ?? {}) };
    encodeTags(this.#tags); // throws a clear MESHFED_ERR_SERF_TAGS when over 512 bytes
    const numNodes = (): number => this.#ml?.numMembers() ?? Math.max(1, this.#members.size);
    this.#intentQueue = new TransmitLimitedQueue(numNodes, this.#t.retransmitMult);
    this.#eventQueue = new TransmitLimitedQueue(numNodes, this.#t.retransmitMult);
    this.#queryQueue = new TransmitLimitedQueue(numNodes, this.#t.retransmitMult);
    this.#eventRing = new Array<StoredEvents | null>(this.#t.eventBuffer).fill(null);
    this.#queryRing = new Array<SeenQueries | null>(this.#t.queryBuffer).fill(null);
    this.#maxUserMsgBytes = Math.max(MIN_USER_MSG_BYTES, 2 * this.#t.querySizeLimit, 2 * this.#t.queryResponseSizeLimit);
    // Serf starts every clock at 1, so that 0 never looks like a real time.
    this.#clock.increment();
    this.#eventClock.increment();
    this.#queryClock.increment();
  }

  /**
   * Create a Serf: validate the configuration and tags, build the memberlist with serf's
   * delegates (delegate versions 2/5/5), and start the reaper and the reconnector.
   */
  static async create(config: SerfConfig): Promise<Serf> {
    const serf = new Serf(config);
    await serf.#start();
    return serf;
  }

  async #start(): Promise<void> {
    try {
      this.#ml = await this.#config.createMemberlist(this.#delegates(), { delegateVersions: SERF_DELEGATE_VERSIONS });
    } catch (err) {
      this.#state = 'shutdown';
      throw err;
    }
    this.#schedule(this.#t.reapIntervalMs, () => this.#reapTick());
    this.#schedule(this.#t.reconnectIntervalMs, () => this.#reconnectTick());
  }

  // -------------------------------------------------------------------------------------------
  // public API

  /** This instance's lifecycle state. */
  get state(): SerfState {
    return this.#state;
  }

  /** This node's name. */
  get nodeName(): string {
    return this.#name;
  }

  /** The current tags of this node. */
  get tags(): Readonly<Record<string, string>> {
    return { ...this.#tags };
  }

  /** Every known member, including left and failed ones until they are reaped. */
  members(): SerfMember[] {
    return [...this.#members.values()].map((m) => this.#snapshot(m));
  }

  /** This node as a member. */
  localMember(): SerfMember {
    const m = this.#members.get(this.#name);
    if (m) return this.#snapshot(m);
    const local = this.#ml?.localNode();
    return {
      name: this.#name,
      address: local?.addr ?? '',
      port: local?.port ?? 0,
      tags: { ...this.#tags },
      status: this.#state === 'leaving' ? 'leaving' : this.#state === 'alive' ? 'alive' : 'left',
      protocolMin: local?.vsn.pmin ?? 0,
      protocolMax: local?.vsn.pmax ?? 0,
      protocolCur: local?.vsn.pcur ?? 0,
      delegateMin: SERF_DELEGATE_VERSIONS.dmin,
      delegateMax: SERF_DELEGATE_VERSIONS.dmax,
      delegateCur: SERF_DELEGATE_VERSIONS.dcur,
    };
  }

  /** Number of known members (any status), like Go `NumNodes`. */
  numMembers(): number {
    return this.#members.size;
  }

  /** Names of failed members not yet reaped. */
  failedMembers(): string[] {
    return [...this.#failed];
  }

  /** Names of left members not yet reaped. */
  leftMembers(): string[] {
    return [...this.#left];
  }

  /**
   * Join a pool through existing members (`[name/]host[:port]`); on success gossip a join intent.
   * `ignoreOld`: user events from before the join (carried by the push-pull) are not delivered.
   * Resolves with how many were contacted; rejects when none could be.
   */
  async join(addresses: readonly string[], ignoreOld = false): Promise<number> {
    if (this.#state !== 'alive') throw runtimeError(SerfRuntimeErrorCode.STATE, "serf: can't join after leave or shutdown");
    const ml = this.#memberlist();
    if (ignoreOld) this.#joinIgnore++;
    let num: number;
    try {
      num = await ml.join(addresses);
    } finally {
      if (ignoreOld) this.#joinIgnore--;
    }
    if (num > 0) this.#broadcastJoin(this.#clock.time());
    return num;
  }

  /**
   * Leave gracefully: gossip a leave intent (waiting up to `broadcastTimeoutMs` for it to go out),
   * leave memberlist, and stay up `leavePropagateDelayMs` to answer probes. Other serf nodes then
   * list this node as `left`, not `failed`. Calling it again after it finished is a no-op.
   */
  async leave(): Promise<void> {
    if (this.#state === 'left') return;
    if (this.#state === 'leaving') throw runtimeError(SerfRuntimeErrorCode.STATE, 'serf: leave already in progress');
    if (this.#state === 'shutdown') throw runtimeError(SerfRuntimeErrorCode.STATE, 'serf: leave called after shutdown');
    this.#state = 'leaving';
    const msg = { LTime: this.#clock.time(), Node: this.#name, Prune: false };
    this.#clock.increment();
    this.#handleLeaveIntent(msg);
    if (this.#hasAliveMembers()) {
      const sent = await this.#broadcastAndWait(encodeSerfMessage(SerfMessageType.leave, msg));
      if (!sent) this.#log.warn('timeout while waiting for the graceful leave intent to go out; leaving memberlist anyway', { timeoutMs: this.#t.broadcastTimeoutMs });
    }
    await this.#memberlist().leave(this.#t.broadcastTimeoutMs);
    await this.#sleep(this.#t.leavePropagateDelayMs);
    if ((this.#state as SerfState) !== 'shutdown') this.#state = 'left';
  }

  /**
   * Force a member out (Go `RemoveFailedNode` / `RemoveFailedNodePrune`): a failed member becomes
   * `left`, and with `prune` it is erased at once (after the leave propagation delay if it is
   * still leaving). Rejects when the intent does not go out within `broadcastTimeoutMs`.
   */
  async forceLeave(node: string, prune = false): Promise<void> {
    if (this.#state === 'shutdown') throw runtimeError(SerfRuntimeErrorCode.STATE, 'serf: force-leave called after shutdown');
    const msg = { LTime: this.#clock.time(), Node: node, Prune: prune };
    this.#clock.increment();
    this.#handleLeaveIntent(msg);
    if (!this.#hasAliveMembers()) return;
    const sent = await this.#broadcastAndWait(encodeSerfMessage(SerfMessageType.leave, msg));
    if (!sent) throw runtimeError(SerfRuntimeErrorCode.TIMEOUT, `serf: timed out broadcasting the removal of ${node}`);
  }

  /**
   * Replace this node's tags and gossip them (memberlist `updateNode`); members see an `update`.
   * Throws `MESHFED_ERR_SERF_TAGS` when the encoded tags exceed 512 bytes.
   */
  async setTags(tags: Readonly<Record<string, string>>): Promise<void> {
    if (this.#state === 'shutdown') throw runtimeError(SerfRuntimeErrorCode.STATE, 'serf: setTags called after shutdown');
    encodeTags(tags);
    this.#tags = { ...tags };
    const local = this.#members.get(this.#name);
    if (local) local.tags = { ...tags };
    await this.#memberlist().updateNode(this.#t.broadcastTimeoutMs);
  }

  /**
   * Gossip a user event to the pool (delivered locally too). Name + payload must fit
   * `userEventSizeLimit` (512 B) before and after encoding, as in serf.
   */
  userEvent(name: string, payload: Uint8Array, coalesce: boolean): Promise<void> {
    if (this.#state === 'shutdown') return Promise.reject(runtimeError(SerfRuntimeErrorCode.STATE, 'serf: user event after shutdown'));
    const limit = this.#t.userEventSizeLimit;
    const before = Buffer.byteLength(name, 'utf8') + payload.length;
    if (before > limit) {
      return Promise.reject(runtimeError(SerfRuntimeErrorCode.REFUSED, `user event exceeds configured limit of ${limit} bytes before encoding`));
    }
    if (before > USER_EVENT_SANE_LIMIT) {
      return Promise.reject(runtimeError(SerfRuntimeErrorCode.REFUSED, `user event exceeds sane limit of ${USER_EVENT_SANE_LIMIT} bytes before encoding`));
    }
    const raw = encodeSerfMessage(SerfMessageType.userEvent, { LTime: this.#eventClock.time(), Name: name, Payload: payload, CC: coalesce });
    if (raw.length > limit) {
      return Promise.reject(runtimeError(SerfRuntimeErrorCode.REFUSED, `encoded user event exceeds configured limit of ${limit} bytes after encoding`));
    }
    this.#eventClock.increment();
    const msg = decodeSerfMessage(raw);
    if (msg.type === SerfMessageType.userEvent) this.#handleUserEvent(msg.body);
    this.#enqueue(this.#eventQueue, 'event', raw);
    return Promise.resolve();
  }

  /** The default query timeout: gossipInterval × queryTimeoutMult × ceil(log10(n + 1)). */
  defaultQueryTimeoutMs(): number {
    const n = this.#ml?.numMembers() ?? 1;
    return this.#t.gossipIntervalMs * this.#t.queryTimeoutMult * Math.ceil(Math.log10(n + 1));
  }

  /**
   * Ask the pool a question. Nodes that pass the filters get a `query` event (and ack at once
   * when `requestAck`); their responses arrive on the returned handle until its deadline.
   */
  query(name: string, payload: Uint8Array, options: SerfQueryOptions = {}): Promise<SerfQueryHandle> {
    try {
      return Promise.resolve(this.#startQuery(name, payload, options));
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  /** Counters as Go `Stats()` reports them (all values are strings). */
  stats(): Record<string, string> {
    return {
      members: String(this.#members.size),
      failed: String(this.#failed.size),
      left: String(this.#left.size),
      health_score: String(this.#ml?.healthScore() ?? 0),
      member_time: String(this.#clock.time()),
      event_time: String(this.#eventClock.time()),
      query_time: String(this.#queryClock.time()),
      intent_queue: String(this.#intentQueue.length),
      event_queue: String(this.#eventQueue.length),
      query_queue: String(this.#queryQueue.length),
      encrypted: String(this.#keyring !== undefined),
      coordinate_resets: '0',
    };
  }

  /** Stop without leaving (others will see this node `failed`): timers, queries, memberlist. Idempotent. */
  async shutdown(): Promise<void> {
    if (this.#state === 'shutdown') return;
    if (this.#state !== 'left') this.#log.warn('shutdown without a leave: other members will see this node as failed');
    this.#state = 'shutdown';
    for (const h of this.#timers) this.#clockSrc.clearTimeout(h);
    this.#timers.clear();
    for (const q of [...this.#running.values()]) q.close();
    this.#intentQueue.reset();
    this.#eventQueue.reset();
    this.#queryQueue.reset();
    await this.#ml?.shutdown();
  }

  // -------------------------------------------------------------------------------------------
  // delegates

  #delegates(): MemberlistDelegates {
    const guard = <A extends unknown[], R>(what: string, fallback: R, fn: (...a: A) => R) => (...a: A): R => {
      try {
        return fn(...a);
      } catch (err) {
        this.#log.error(`${what} failed`, { err: describe(err) });
        return fallback;
      }
    };
    const merge = this.#config.merge;
    return {
      delegate: {
        nodeMeta: guard('nodeMeta', Uint8Array.of(0xff, 0x80), (limit: number) => this.#nodeMeta(limit)),
        notifyMsg: guard('notifyMsg', undefined, (msg: Buffer) => this.#notifyMsg(msg)),
        getBroadcasts: guard('getBroadcasts', [] as Uint8Array[], (overhead: number, limit: number) => this.#getBroadcasts(overhead, limit)),
        localState: guard('localState', new Uint8Array(0), () => this.#localState()),
        mergeRemoteState: guard('mergeRemoteState', undefined, (buf: Buffer, join: boolean) => this.#mergeRemoteState(buf, join)),
      },
      events: {
        notifyJoin: guard('notifyJoin', undefined, (n: MemberlistNode) => this.#handleNodeJoin(n)),
        notifyLeave: guard('notifyLeave', undefined, (n: MemberlistNode) => this.#handleNodeLeave(n)),
        notifyUpdate: guard('notifyUpdate', undefined, (n: MemberlistNode) => this.#handleNodeUpdate(n)),
      },
      ...(merge
        ? {
          merge: { notifyMerge: guard('notifyMerge', 'serf: merge delegate failed', (peers: readonly MemberlistNode[]) => merge(peers.map((p) => this.#nodeToMember(p)))) },
          alive: { notifyAlive: guard('notifyAlive', 'serf: merge delegate failed', (peer: MemberlistNode) => merge([this.#nodeToMember(peer)])) },
        }
        : {}),
      ping: {
        ackPayload: () => this.#ackPayload,
        notifyPingComplete: guard('notifyPingComplete', undefined, (other: MemberlistNode, _rtt: number, payload: Buffer) => this.#pingComplete(other, payload)),
      },
      conflict: {
        notifyConflict: guard('notifyConflict', undefined, (existing: MemberlistNode, other: MemberlistNode) => this.#conflict(existing, other)),
      },
    };
  }

  #nodeMeta(limit: number): Uint8Array {
    const meta = encodeTags(this.#tags);
    if (meta.length > limit) {
      this.#log.error(`node tags are ${meta.length} bytes, over memberlist's meta limit of ${limit}; announcing no tags`, { tags: this.#tags });
      return Uint8Array.of(0xff, 0x80);
    }
    return meta;
  }

  #notifyMsg(buf: Buffer): void {
    if (buf.length === 0 || this.#state === 'shutdown') return;
    let msg;
    try {
      msg = decodeSerfMessage(buf, { maxMessageBytes: this.#maxUserMsgBytes });
    } catch (err) {
      if (isSerfError(err) && err.code === SerfErrorCode.UNKNOWN_TYPE) {
        this.#log.debug('ignoring a message of unknown type', { type: buf[0] });
      } else {
        this.#badInput(`msg:${buf[0] ?? 0}`, `dropped a malformed ${serfMessageTypeName(buf[0] ?? 0)} message`, err);
      }
      return;
    }
    let rebroadcast = false;
    let queue = this.#intentQueue;
    let queueName = 'intent';
    switch (msg.type) {
      case SerfMessageType.leave:
        this.#log.debug('leave intent', { about: msg.body.Node });
        rebroadcast = this.#handleLeaveIntent(msg.body);
        break;
      case SerfMessageType.join:
        this.#log.debug('join intent', { about: msg.body.Node });
        rebroadcast = this.#handleJoinIntent(msg.body);
        break;
      case SerfMessageType.userEvent:
        rebroadcast = this.#handleUserEvent(msg.body);
        queue = this.#eventQueue;
        queueName = 'event';
        break;
      case SerfMessageType.query:
        rebroadcast = this.#handleQuery(msg.body);
        queue = this.#queryQueue;
        queueName = 'query';
        break;
      case SerfMessageType.queryResponse:
        this.#handleQueryResponse(msg.body);
        break;
      case SerfMessageType.relay: {
        const ip = bytesToIp(msg.body.header.DestAddr.IP);
        const port = msg.body.header.DestAddr.Port;
        if (ip === undefined || !Number.isInteger(port) || port <= 0 || port > 65535) {
          this.#badInput('relay-addr', 'dropped a relay with an invalid destination address', undefined);
          break;
        }
        const to = { name: msg.body.header.DestName, addr: hostPort(ip, port) };
        this.#log.debug('relaying a response', { to: to.addr });
        this.#send(to, msg.body.message, 'forward a relayed message');
        break;
      }
      default:
        this.#log.debug('ignoring a message not expected as gossip', { type: serfMessageTypeName(msg.type) });
    }
    if (rebroadcast) this.#enqueue(queue, queueName, new Uint8Array(buf));
  }

  #getBroadcasts(overhead: number, limit: number): Uint8Array[] {
    const out = this.#intentQueue.getBroadcasts(overhead, limit);
    let used = out.reduce((n, m) => n + m.length + overhead, 0);
    for (const q of [this.#queryQueue, this.#eventQueue]) {
      const more = q.getBroadcasts(overhead, limit - used);
      for (const m of more) used += m.length + overhead;
      out.push(...more);
    }
    return out;
  }

  #localState(): Uint8Array {
    const statusLTimes = new Map<string, LamportTime>();
    for (const m of this.#members.values()) statusLTimes.set(m.name, m.statusLTime);
    return encodeSerfMessage(SerfMessageType.pushPull, {
      LTime: this.#clock.time(),
      StatusLTimes: statusLTimes,
      LeftMembers: [...this.#left],
      EventLTime: this.#eventClock.time(),
      Events: this.#eventRing.map((e) => (e ? { LTime: e.ltime, Events: e.events.map((x) => ({ Name: x.name, Payload: x.payload })) } : null)),
      QueryLTime: this.#queryClock.time(),
    });
  }

  #mergeRemoteState(buf: Buffer, join: boolean): void {
    if (this.#state === 'shutdown') return;
    if (buf.length === 0) {
      this.#log.debug('remote state is zero bytes');
      return;
    }
    if (buf[0] !== SerfMessageType.pushPull) {
      this.#badInput('pushpull-type', `remote state has a bad type prefix ${String(buf[0])}; expected 2 (pushPull)`, undefined);
      return;
    }
    let pp: PushPull;
    try {
      const msg = decodeSerfMessage(buf);
      if (msg.type !== SerfMessageType.pushPull) return;
      pp = msg.body;
    } catch (err) {
      this.#badInput('pushpull', 'failed to decode remote state', err);
      return;
    }
    const lt = toLamportTime(pp.LTime);
    const et = toLamportTime(pp.EventLTime);
    const qt = toLamportTime(pp.QueryLTime);
    if (lt > 0n) this.#clock.witness(lt - 1n);
    if (et > 0n) this.#eventClock.witness(et - 1n);
    if (qt > 0n) this.#queryClock.witness(qt - 1n);

    const left = new Set<string>();
    for (const name of pp.LeftMembers) {
      left.add(name);
      const status = Object.hasOwn(pp.StatusLTimes, name) ? toLamportTime(pp.StatusLTimes[name] as number | bigint) : 0n;
      this.#handleLeaveIntent({ LTime: status + 1n, Node: name, Prune: false });
    }
    for (const [name, ltime] of Object.entries(pp.StatusLTimes)) {
      if (left.has(name)) continue;
      this.#handleJoinIntent({ LTime: ltime, Node: name });
    }
    if (join && this.#joinIgnore > 0 && et > this.#eventMinTime) this.#eventMinTime = et;
    for (const slot of pp.Events) {
      if (!slot) continue;
      for (const e of slot.Events) this.#handleUserEvent({ LTime: slot.LTime, Name: e.Name, Payload: e.Payload, CC: false });
    }
  }

  #nodeToMember(n: MemberlistNode): SerfMember {
    return {
      name: n.name,
      address: n.addr,
      port: n.port,
      tags: this.#decodeTags(n),
      status: n.state === NodeState.left ? 'left' : 'alive',
      protocolMin: n.vsn.pmin,
      protocolMax: n.vsn.pmax,
      protocolCur: n.vsn.pcur,
      delegateMin: n.vsn.dmin,
      delegateMax: n.vsn.dmax,
      delegateCur: n.vsn.dcur,
    };
  }

  #pingComplete(other: MemberlistNode, payload: Buffer): void {
    if (payload.length === 0) return;
    if (payload[0] !== PING_VERSION) {
      this.#log.debug('unsupported ping payload version', { from: other.name, version: payload[0] });
      return;
    }
    try {
      const c = decode(payload.subarray(1), CoordinateSchema);
      if (c.Vec.length !== 8) throw new Error(`coordinate has ${c.Vec.length} dimensions, expected 8`);
    } catch (err) {
      this.#log.debug('malformed ping payload', { from: other.name, err: describe(err) });
    }
  }

  #conflict(existing: MemberlistNode, other: MemberlistNode): void {
    if (existing.name !== this.#name) {
      this.#log.warn(`name conflict for '${existing.name}': both ${hostPort(existing.addr, existing.port)} and ${hostPort(other.addr, other.port)} are claiming it`);
      return;
    }
    this.#log.error(`this node's name '${this.#name}' conflicts with another node at ${hostPort(other.addr, other.port)} (we are ${hostPort(existing.addr, existing.port)}); names must be unique`);
  }

  // -------------------------------------------------------------------------------------------
  // membership

  #decodeTags(n: MemberlistNode): Record<string, string> {
    try {
      return decodeTags(n.meta);
    } catch (err) {
      this.#badInput(`tags:${n.name}`, `failed to decode tags of ${n.name}`, err);
      return {};
    }
  }

  #snapshot(m: MemberState): SerfMember {
    return {
      name: m.name,
      address: m.addr,
      port: m.port,
      tags: { ...m.tags },
      status: m.status,
      protocolMin: m.pmin,
      protocolMax: m.pmax,
      protocolCur: m.pcur,
      delegateMin: m.dmin,
      delegateMax: m.dmax,
      delegateCur: m.dcur,
    };
  }

  #emitMember(type: SerfMemberEventType, m: MemberState): void {
    this.#log.info(`member ${type}`, { member: m.name, addr: m.addr });
    this.#emit({ kind: 'member', type, members: [this.#snapshot(m)] });
  }

  #emit(e: SerfEvent): void {
    const on = this.#config.onEvent;
    if (!on) return;
    try {
      on(e);
    } catch (err) {
      this.#log.error('onEvent handler threw', { err: describe(err), kind: e.kind });
    }
  }

  #setVersions(m: MemberState, n: MemberlistNode): void {
    m.pmin = n.vsn.pmin;
    m.pmax = n.vsn.pmax;
    m.pcur = n.vsn.pcur;
    m.dmin = n.vsn.dmin;
    m.dmax = n.vsn.dmax;
    m.dcur = n.vsn.dcur;
  }

  #handleNodeJoin(n: MemberlistNode): void {
    let m = this.#members.get(n.name);
    const oldStatus = m?.status;
    if (!m) {
      m = {
        name: n.name, addr: n.addr, port: n.port, tags: this.#decodeTags(n), status: 'alive', statusLTime: 0n, leaveTime: 0,
        pmin: 0, pmax: 0, pcur: 0, dmin: 0, dmax: 0, dcur: 0,
      };
      const intent = this.#intents.get(n.name);
      if (intent?.type === 'join') m.statusLTime = intent.ltime;
      if (intent?.type === 'leave') {
        m.status = 'leaving';
        m.statusLTime = intent.ltime;
      }
      this.#members.set(n.name, m);
    } else {
      m.status = 'alive';
      m.leaveTime = 0;
      m.addr = n.addr;
      m.port = n.port;
      m.tags = this.#decodeTags(n);
    }
    this.#setVersions(m, n);
    if (oldStatus === 'failed' || oldStatus === 'left') {
      this.#failed.delete(n.name);
      this.#left.delete(n.name);
    }
    this.#emitMember('join', m);
  }

  #handleNodeLeave(n: MemberlistNode): void {
    const m = this.#members.get(n.name);
    if (!m) return;
    if (m.status === 'leaving') {
      m.status = 'left';
      m.leaveTime = this.#clockSrc.now();
      this.#left.add(m.name);
      this.#emitMember('leave', m);
    } else if (m.status === 'alive') {
      m.status = 'failed';
      m.leaveTime = this.#clockSrc.now();
      this.#failed.add(m.name);
      this.#emitMember('fail', m);
    } else {
      this.#log.warn('bad state at memberlist leave', { member: m.name, status: m.status });
    }
  }

  #handleNodeUpdate(n: MemberlistNode): void {
    const m = this.#members.get(n.name);
    if (!m) return;
    m.addr = n.addr;
    m.port = n.port;
    m.tags = this.#decodeTags(n);
    this.#setVersions(m, n);
    this.#emitMember('update', m);
  }

  #upsertIntent(node: string, type: Intent['type'], ltime: LamportTime): boolean {
    const cur = this.#intents.get(node);
    if (cur && ltime <= cur.ltime) return false;
    this.#intents.delete(node);
    this.#intents.set(node, { type, ltime, wallTime: this.#clockSrc.now() });
    if (this.#intents.size > this.#t.maxQueueDepth) {
      const oldest = this.#intents.keys().next().value;
      if (oldest !== undefined) this.#intents.delete(oldest);
      this.#bad.warn('intents-full', `intent buffer is full (${this.#t.maxQueueDepth}); dropping the oldest intent`);
    }
    return true;
  }

  #handleLeaveIntent(msg: Pick<Leave, 'Node' | 'Prune'> & { LTime: number | bigint }): boolean {
    const ltime = toLamportTime(msg.LTime);
    this.#clock.witness(ltime);
    const m = this.#members.get(msg.Node);
    if (!m) return this.#upsertIntent(msg.Node, 'leave', ltime);
    if (ltime <= m.statusLTime) return false;
    if (msg.Node === this.#name && this.#state === 'alive') {
      this.#log.debug('refuting an older leave intent');
      queueMicrotask(() => {
        if (this.#state === 'alive') this.#broadcastJoin(this.#clock.time());
      });
      return false;
    }
    m.statusLTime = ltime;
    switch (m.status) {
      case 'alive':
        m.status = 'leaving';
        if (msg.Prune) this.#prune(m);
        return true;
      case 'failed':
        m.status = 'left';
        this.#failed.delete(m.name);
        this.#left.add(m.name);
        this.#emitMember('leave', m);
        if (msg.Prune) this.#prune(m);
        return true;
      case 'leaving':
      case 'left':
        if (msg.Prune) this.#prune(m);
        return true;
      default:
        return false;
    }
  }

  #prune(m: MemberState): void {
    const erase = (): void => {
      if (this.#members.get(m.name) !== m) return;
      this.#log.info('member reaped (forced)', { member: m.name, addr: m.addr });
      this.#left.delete(m.name);
      this.#failed.delete(m.name);
      this.#erase(m);
    };
    if (m.status === 'leaving') this.#after(this.#t.broadcastTimeoutMs + this.#t.leavePropagateDelayMs, erase);
    else erase();
  }

  #erase(m: MemberState): void {
    this.#members.delete(m.name);
    this.#emitMember('reap', m);
  }

  #handleJoinIntent(msg: Pick<Join, 'Node'> & { LTime: number | bigint }): boolean {
    const ltime = toLamportTime(msg.LTime);
    this.#clock.witness(ltime);
    const m = this.#members.get(msg.Node);
    if (!m) return this.#upsertIntent(msg.Node, 'join', ltime);
    if (ltime <= m.statusLTime) return false;
    m.statusLTime = ltime;
    if (m.status === 'leaving') m.status = 'alive';
    return true;
  }

  #broadcastJoin(ltime: LamportTime): void {
    const msg = { LTime: ltime, Node: this.#name };
    this.#clock.witness(ltime);
    this.#handleJoinIntent(msg);
    this.#enqueue(this.#intentQueue, 'intent', encodeSerfMessage(SerfMessageType.join, msg));
  }

  #hasAliveMembers(): boolean {
    for (const m of this.#members.values()) if (m.name !== this.#name && m.status === 'alive') return true;
    return false;
  }

  #reapTick(): void {
    this.#schedule(this.#t.reapIntervalMs, () => this.#reapTick());
    const now = this.#clockSrc.now();
    this.#reapList(this.#failed, now, this.#t.reconnectTimeoutMs);
    this.#reapList(this.#left, now, this.#t.tombstoneTimeoutMs);
    for (const [node, intent] of this.#intents) if (now - intent.wallTime > this.#t.recentIntentTimeoutMs) this.#intents.delete(node);
  }

  #reapList(list: Set<string>, now: number, timeout: number): void {
    for (const name of [...list]) {
      const m = this.#members.get(name);
      if (!m) {
        list.delete(name);
        continue;
      }
      if (now - m.leaveTime <= timeout) continue;
      list.delete(name);
      this.#erase(m);
    }
  }

  #reconnectTick(): void {
    this.#schedule(this.#t.reconnectIntervalMs, () => this.#reconnectTick());
    const failed = [...this.#failed];
    if (failed.length === 0 || !this.#ml) return;
    const numAlive = Math.max(1, this.#members.size - this.#failed.size - this.#left.size);
    if (this.#random() > failed.length / numAlive) {
      this.#log.debug('forgoing reconnect for random throttling');
      return;
    }
    const m = this.#members.get(failed[Math.floor(this.#random() * failed.length)] ?? '');
    if (!m) return;
    const addr = `${m.name}/${hostPort(m.addr, m.port)}`;
    this.#log.info('attempting reconnect', { member: m.name, addr });
    this.#ml.join([addr]).catch((err: unknown) => this.#log.debug('reconnect failed', { member: m.name, err: describe(err) }));
  }

  // -------------------------------------------------------------------------------------------
  // user events

  #handleUserEvent(msg: Pick<UserEvent, 'Name' | 'Payload' | 'CC'> & { LTime: number | bigint }): boolean {
    const ltime = toLamportTime(msg.LTime);
    this.#eventClock.witness(ltime);
    if (ltime < this.#eventMinTime) return false;
    const size = BigInt(this.#eventRing.length);
    const cur = this.#eventClock.time();
    if (cur > size && ltime < cur - size) {
      this.#bad.warn('old-event', 'received an old user event', { name: msg.Name, ltime: String(ltime), current: String(cur) });
      return false;
    }
    const idx = Number(ltime % size);
    let seen = this.#eventRing[idx];
    if (seen && seen.ltime === ltime) {
      if (seen.events.some((e) => e.name === msg.Name && sameBytes(e.payload, msg.Payload))) return false;
      if (seen.events.length >= MAX_PER_SLOT) {
        this.#bad.warn('event-slot-full', 'too many user events at one Lamport time; dropping', { ltime: String(ltime) });
        return false;
      }
    } else {
      seen = { ltime, events: [] };
      this.#eventRing[idx] = seen;
    }
    const payload = Buffer.from(msg.Payload);
    seen.events.push({ name: msg.Name, payload });
    this.#emit({ kind: 'user', ltime, name: msg.Name, payload: Buffer.from(payload), coalesce: msg.CC });
    return true;
  }

  // -------------------------------------------------------------------------------------------
  // queries

  #startQuery(name: string, payload: Uint8Array, options: SerfQueryOptions): SerfQueryHandle {
    if (this.#state === 'shutdown') throw runtimeError(SerfRuntimeErrorCode.STATE, 'serf: query after shutdown');
    const local = this.#memberlist().localNode();
    const timeoutMs = options.timeoutMs ?? this.defaultQueryTimeoutMs();
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new RangeError(`serf: query timeout must be positive, got ${timeoutMs}`);
    const relayFactor = options.relayFactor ?? 0;
    if (!Number.isInteger(relayFactor) || relayFactor < 0 || relayFactor > 255) throw new RangeError(`serf: relayFactor must be 0–255, got ${relayFactor}`);
    const filters: Uint8Array[] = [];
    if (options.filterNodes && options.filterNodes.length > 0) filters.push(encodeFilter({ type: FilterType.node, nodes: [...options.filterNodes] }));
    for (const [tag, expr] of Object.entries(options.filterTags ?? {})) filters.push(encodeFilter({ type: FilterType.tag, tag, expr }));
    const ltime = this.#queryClock.time();
    const id = Math.floor(this.#random() * 0x80000000) >>> 0;
    const raw = encodeSerfMessage(SerfMessageType.query, {
      LTime: ltime,
      ID: id,
      Addr: ipToBytes(local.addr) ?? new Uint8Array(0),
      Port: local.port,
      SourceNode: local.name,
      Filters: filters,
      Flags: options.requestAck ? QueryFlag.ack : 0,
      RelayFactor: relayFactor,
      Timeout: Math.round(timeoutMs * 1e6),
      Name: name,
      Payload: payload,
    });
    if (raw.length > this.#t.querySizeLimit) throw runtimeError(SerfRuntimeErrorCode.REFUSED, `query exceeds limit of ${this.#t.querySizeLimit} bytes`);
    const timer: { h?: unknown } = {};
    const handle = new SerfQueryHandle({
      ltime,
      id,
      deadline: this.#clockSrc.now() + timeoutMs,
      ackRequested: options.requestAck === true,
      maxEntries: this.#t.maxQueueDepth,
      onClose: () => {
        if (this.#running.get(ltime) === handle) this.#running.delete(ltime);
        if (timer.h !== undefined) {
          this.#clockSrc.clearTimeout(timer.h);
          this.#timers.delete(timer.h);
        }
      },
    });
    this.#running.get(ltime)?.close();
    this.#running.set(ltime, handle);
    timer.h = this.#after(timeoutMs, () => handle.close());
    const msg = decodeSerfMessage(raw);
    if (msg.type === SerfMessageType.query) this.#handleQuery(msg.body);
    this.#enqueue(this.#queryQueue, 'query', raw);
    return handle;
  }

  #handleQuery(q: Query): boolean {
    const ltime = toLamportTime(q.LTime);
    this.#queryClock.witness(ltime);
    if (ltime < this.#queryMinTime) return false;
    const size = BigInt(this.#queryRing.length);
    const cur = this.#queryClock.time();
    if (cur > size && ltime < cur - size) {
      this.#bad.warn('old-query', 'received an old query', { name: q.Name, ltime: String(ltime), current: String(cur) });
      return false;
    }
    const idx = Number(ltime % size);
    let seen = this.#queryRing[idx];
    if (seen && seen.ltime === ltime) {
      if (seen.ids.includes(q.ID)) return false;
      if (seen.ids.length >= MAX_PER_SLOT) {
        this.#bad.warn('query-slot-full', 'too many queries at one Lamport time; dropping', { ltime: String(ltime) });
        return false;
      }
    } else {
      seen = { ltime, ids: [] };
      this.#queryRing[idx] = seen;
    }
    seen.ids.push(q.ID);
    const rebroadcast = (q.Flags & QueryFlag.noBroadcast) === 0;
    if (!this.#shouldProcessQuery(q.Filters)) return rebroadcast;

    const ip = bytesToIp(q.Addr);
    const dest = ip === undefined ? undefined : { name: q.SourceNode, addr: hostPort(ip, q.Port) };
    if (!dest) this.#badInput('query-addr', `query '${q.Name}' from ${q.SourceNode} has an invalid reply address; not answering`, undefined);
    if (dest && (q.Flags & QueryFlag.ack) !== 0) {
      const ack: QueryResponseInput = { LTime: ltime, ID: q.ID, From: this.#name, Flags: QueryFlag.ack };
      this.#send(dest, encodeSerfMessage(SerfMessageType.queryResponse, ack), 'send a query ack');
      this.#relayResponse(q.RelayFactor, q.Addr, q.Port, q.SourceNode, ack);
    }

    const deadline = this.#clockSrc.now() + Math.max(0, q.Timeout) / 1e6;
    let responded = false;
    const respondRaw = (raw: Uint8Array, resp: QueryResponseInput): Promise<void> => {
      if (raw.length > this.#t.queryResponseSizeLimit) {
        return Promise.reject(runtimeError(SerfRuntimeErrorCode.REFUSED, `response exceeds limit of ${this.#t.queryResponseSizeLimit} bytes`));
      }
      if (responded) return Promise.reject(runtimeError(SerfRuntimeErrorCode.REFUSED, 'response already sent'));
      if (this.#clockSrc.now() > deadline) return Promise.reject(runtimeError(SerfRuntimeErrorCode.REFUSED, 'response is past the deadline'));
      if (!dest) return Promise.reject(runtimeError(SerfRuntimeErrorCode.REFUSED, 'the query has no valid reply address'));
      if (this.#state === 'shutdown') return Promise.reject(runtimeError(SerfRuntimeErrorCode.STATE, 'serf: respond after shutdown'));
      responded = true;
      const sent = this.#memberlist().sendToAddress(dest, raw);
      this.#relayResponse(q.RelayFactor, q.Addr, q.Port, q.SourceNode, resp);
      return sent;
    };
    const createResponse = (payload: Uint8Array): QueryResponseInput => ({ LTime: ltime, ID: q.ID, From: this.#name, Flags: 0, Payload: payload });
    const respond = (payload: Uint8Array): Promise<void> => {
      const resp = createResponse(payload);
      return respondRaw(encodeSerfMessage(SerfMessageType.queryResponse, resp), resp);
    };

    if (q.Name.startsWith(INTERNAL_QUERY_PREFIX)) {
      this.#handleInternalQuery(q, respond, respondRaw, createResponse);
    } else {
      this.#emit({ kind: 'query', ltime, name: q.Name, payload: Buffer.from(q.Payload), sourceNode: q.SourceNode, deadline, respond });
    }
    return rebroadcast;
  }

  #shouldProcessQuery(filters: readonly Uint8Array[]): boolean {
    for (const raw of filters) {
      let f;
      try {
        f = decodeFilter(raw);
      } catch (err) {
        this.#badInput('filter', 'query has a malformed or unknown filter; not processing it', err);
        return false;
      }
      if (f.type === FilterType.node) {
        if (!f.nodes.includes(this.#name)) return false;
      } else {
        let re: RegExp;
        try {
          re = compileFilterExpr(f.expr);
        } catch (err) {
          this.#badInput('filter-regex', `failed to compile filter regex (${f.expr.slice(0, 64)})`, err);
          return false;
        }
        if (!re.test(Object.hasOwn(this.#tags, f.tag) ? (this.#tags[f.tag] as string) : '')) return false;
      }
    }
    return true;
  }

  #relayResponse(relayFactor: number, ip: Uint8Array, port: number, sourceNode: string, resp: QueryResponseInput): void {
    if (relayFactor === 0) return;
    const members = [...this.#members.values()];
    if (members.length < relayFactor + 1) return;
    const raw = encodeRelayMessage({ DestAddr: { IP: ip, Port: port, Zone: '' }, DestName: sourceNode }, encodeSerfMessage(SerfMessageType.queryResponse, resp));
    if (raw.length > this.#t.queryResponseSizeLimit) {
      this.#log.warn(`relayed response exceeds limit of ${this.#t.queryResponseSizeLimit} bytes; not relaying`);
      return;
    }
    const chosen: MemberState[] = [];
    for (let i = 0; i < 3 * members.length && chosen.length < relayFactor; i++) {
      const m = members[Math.floor(this.#random() * members.length)];
      if (!m || m.status !== 'alive' || m.pmax < 5 || m.name === this.#name || chosen.includes(m)) continue;
      chosen.push(m);
    }
    for (const m of chosen) this.#send({ name: m.name, addr: hostPort(m.addr, m.port) }, raw, 'send a relayed response');
  }

  #handleQueryResponse(resp: QueryResponse): void {
    const ltime = toLamportTime(resp.LTime);
    const h = this.#running.get(ltime);
    if (!h) {
      this.#bad.warn('resp-unknown', 'reply for a non-running query', { ltime: String(ltime), id: resp.ID, from: resp.From });
      return;
    }
    if (h.id !== resp.ID) {
      this.#bad.warn('resp-id', 'query reply ID mismatch', { local: h.id, response: resp.ID, from: resp.From });
      return;
    }
    if (h.finished) return;
    if ((resp.Flags & QueryFlag.ack) !== 0) h.addAck(resp.From);
    else h.addResponse(resp.From, Buffer.from(resp.Payload));
  }

  #handleInternalQuery(
    q: Query,
    respond: (payload: Uint8Array) => Promise<void>,
    respondRaw: (raw: Uint8Array, resp: QueryResponseInput) => Promise<void>,
    createResponse: (payload: Uint8Array) => QueryResponseInput,
  ): void {
    const kind = q.Name.slice(INTERNAL_QUERY_PREFIX.length);
    const reply = (p: Promise<void>, what: string): void => {
      p.catch((err: unknown) => this.#log.warn(`failed to respond to ${what} query`, { err: describe(err) }));
    };
    switch (kind) {
      case 'ping':
        return;
      case 'conflict': {
        const node = Buffer.from(q.Payload).toString('utf8');
        if (node === this.#name) return;
        this.#log.debug('conflict resolution query', { about: node });
        const m = this.#members.get(node);
        const body = m
          ? encodeSerfMessage(SerfMessageType.conflictResponse, {
            Name: m.name, Addr: ipToBytes(m.addr) ?? new Uint8Array(0), Port: m.port, Tags: m.tags, Status: STATUS_VALUE[m.status],
            ProtocolMin: m.pmin, ProtocolMax: m.pmax, ProtocolCur: m.pcur, DelegateMin: m.dmin, DelegateMax: m.dmax, DelegateCur: m.dcur,
          })
          : Uint8Array.of(SerfMessageType.conflictResponse, 0xc0);
        reply(respond(body), 'conflict');
        return;
      }
      case 'install-key':
      case 'use-key':
      case 'remove-key':
      case 'list-keys': {
        const resp = this.#keyOperation(kind, q.Payload);
        if (kind !== 'list-keys') {
          reply(respond(encodeSerfMessage(SerfMessageType.keyResponse, resp)), 'key');
          return;
        }
        // Truncate the key list until the response fits (serf's keyListResponseWithCorrectSize).
        const keys = [...(resp.Keys ?? [])];
        for (let n = keys.length; n >= 0; n--) {
          const body: KeyResponseInput = n === keys.length ? resp : { ...resp, Keys: keys.slice(0, n), Message: `truncated key list response, showing first ${n} of ${keys.length} keys` };
          const r = createResponse(encodeSerfMessage(SerfMessageType.keyResponse, body));
          const raw = encodeSerfMessage(SerfMessageType.queryResponse, r);
          if (raw.length > this.#t.queryResponseSizeLimit) continue;
          if (n < keys.length) this.#log.warn(`${String(body.Message)}`);
          reply(respondRaw(raw, r), 'list-keys');
          return;
        }
        this.#log.error('failed to truncate the key list response so that it fits into a message');
        return;
      }
      default:
        this.#log.warn(`unhandled internal query '${kind}'`);
    }
  }

  #keyOperation(kind: 'install-key' | 'use-key' | 'remove-key' | 'list-keys', payload: Uint8Array): KeyResponseInput {
    const keyring = this.#keyring;
    if (!keyring) return { Result: false, Message: 'key management is not supported by this node' };
    if (kind === 'list-keys') {
      this.#log.info('received list-keys query');
      return {
        Result: true,
        Message: '',
        Keys: keyring.keys.map((k) => Buffer.from(k).toString('base64')),
        PrimaryKey: Buffer.from(keyring.primaryKey).toString('base64'),
      };
    }
    let key: Uint8Array;
    try {
      const framed = new Uint8Array(Math.max(1, payload.length));
      framed.set(payload.subarray(1), 1);
      framed[0] = SerfMessageType.keyRequest;
      const msg = decodeSerfMessage(framed);
      if (msg.type !== SerfMessageType.keyRequest) throw new Error('not a key request');
      key = msg.body.Key;
    } catch (err) {
      this.#badInput('key-request', 'failed to decode a key request', err);
      return { Result: false, Message: `failed to decode key request: ${describe(err)}` };
    }
    this.#log.info(`received ${kind} query`);
    try {
      if (kind === 'install-key') keyring.addKey(key);
      else if (kind === 'use-key') keyring.useKey(key);
      else keyring.removeKey(key);
    } catch (err) {
      this.#log.error(`${kind} failed`, { err: describe(err) });
      return { Result: false, Message: describe(err) };
    }
    return { Result: true, Message: '' };
  }

  // -------------------------------------------------------------------------------------------
  // plumbing

  #memberlist(): MemberlistApi {
    if (!this.#ml) throw runtimeError(SerfRuntimeErrorCode.STATE, 'serf: memberlist is not running yet');
    return this.#ml;
  }

  #send(to: { name: string; addr: string }, msg: Uint8Array, what: string): void {
    if (!this.#ml || this.#state === 'shutdown') return;
    this.#ml.sendToAddress(to, msg).catch((err: unknown) => this.#log.warn(`failed to ${what}`, { to: to.addr, err: describe(err) }));
  }

  #enqueue(queue: TransmitLimitedQueue, name: string, message: Uint8Array, finished?: () => void): void {
    queue.queue(finished ? { message, finished } : { message });
    if (queue.length > this.#t.maxQueueDepth) {
      this.#bad.warn(`queue-${name}`, `${name} queue depth exceeds the limit (${this.#t.maxQueueDepth}); dropping messages`);
      queue.prune(this.#t.maxQueueDepth);
    }
  }

  /** Queue an intent and wait until it was sent enough times; false after `broadcastTimeoutMs`. */
  #broadcastAndWait(message: Uint8Array): Promise<boolean> {
    return new Promise((resolve) => {
      let settled = false;
      const timer = this.#after(this.#t.broadcastTimeoutMs, () => {
        if (settled) return;
        settled = true;
        resolve(false);
      });
      this.#enqueue(this.#intentQueue, 'intent', message, () => {
        if (settled) return;
        settled = true;
        this.#clockSrc.clearTimeout(timer);
        this.#timers.delete(timer);
        resolve(true);
      });
    });
  }

  #sleep(ms: number): Promise<void> {
    if (ms <= 0) return Promise.resolve();
    return new Promise((resolve) => this.#after(ms, resolve));
  }

  /** A one-shot timer that shutdown cancels. */
  #after(ms: number, fn: () => void): unknown {
    const h = this.#clockSrc.setTimeout(() => {
      this.#timers.delete(h);
      fn();
    }, ms);
    this.#timers.add(h);
    return h;
  }

  #schedule(ms: number, fn: () => void): void {
    if (this.#state === 'shutdown') return;
    this.#after(ms, () => {
      if (this.#state === 'shutdown') return;
      try {
        fn();
      } catch (err) {
        this.#log.error('periodic task failed', { err: describe(err) });
      }
    });
  }

  #badInput(kind: string, msg: string, err: unknown): void {
    if (err === undefined) {
      this.#bad.warn(kind, msg);
      return;
    }
    const code = err instanceof MeshfedError ? err.code : undefined;
    this.#bad.warn(kind, msg, { err: describe(err), code });
  }
}
