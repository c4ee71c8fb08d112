/**
 * The memberlist contract: what a node looks like, the delegates a layer above (serf) plugs in,
 * and the API that layer calls. Mirrors memberlist 0.2.2's `Node`, `Delegate`, `EventDelegate`,
 * `MergeDelegate`, `AliveDelegate`, `PingDelegate` and `ConflictDelegate`, as TypeScript
 * interfaces (hashicorp-wire.md §5–§7).
 */
import type { NodeStateValue, ProtocolVersions } from '../wire/index.js';
import type { GossipAddress } from '../transport/index.js';

/** A node of the pool as memberlist knows it. Values are snapshots: they never change after delivery. */
export interface MemberlistNode {
  /** Unique node name (`node` in a LAN pool, `node.dc` in a WAN pool). */
  readonly name: string;
  /** Gossip IP address as text (`127.0.0.1`, `::1`). */
  readonly addr: string;
  /** Gossip port (UDP and TCP). */
  readonly port: number;
  /** Opaque node meta (serf: 0xff + msgpack tags), at most 512 bytes. */
  readonly meta: Uint8Array;
  /** memberlist's view of the node's state. */
  readonly state: NodeStateValue;
  /** Protocol versions the node announced (memberlist pmin/pmax/pcur, delegate dmin/dmax/dcur). */
  readonly vsn: ProtocolVersions;
  /** The node's incarnation number (how many times it refuted a suspicion or restarted). */
  readonly incarnation: number;
}

/** The `{name, addr}` a transport needs to reach a node. */
export function nodeAddress(node: Pick<MemberlistNode, 'name' | 'addr' | 'port'>): GossipAddress {
  const host = node.addr.includes(':') ? `[${node.addr}]` : node.addr;
  return { name: node.name, addr: `${host}:${node.port}` };
}

/**
 * The main delegate (Go `Delegate`): meta, user messages, broadcasts and push-pull user state.
 * Every method runs synchronously on memberlist's I/O path and must not block.
 */
export interface MemberlistDelegate {
  /** Meta to announce in alive messages; longer than `limit` bytes is a configuration error. */
  nodeMeta(limit: number): Uint8Array;
  /** A user message (type 8) arrived; `msg` is the payload after the type byte. The delegate owns it. */
  notifyMsg(msg: Buffer): void;
  /**
   * Extra messages to piggy-back on gossip: return whole messages whose total length, each plus
   * `overhead`, fits `limit`. Messages are sent as user messages (memberlist adds the type byte).
   */
  getBroadcasts(overhead: number, limit: number): Uint8Array[];
  /** The user state to send in a push-pull (`join` = this exchange is part of a join). */
  localState(join: boolean): Uint8Array;
  /** Merge a peer's push-pull user state. May throw to report a bad state (logged). */
  mergeRemoteState(buf: Buffer, join: boolean): void;
}

/** Membership changes, as memberlist sees them (Go `EventDelegate`). Called synchronously. */
export interface MemberlistEventDelegate {
  /** A node became alive (first time seen, or back after dead/left). */
  notifyJoin(node: MemberlistNode): void;
  /** A node is dead or left (`node.state` tells which). */
  notifyLeave(node: MemberlistNode): void;
  /** An alive node changed its meta or address. */
  notifyUpdate(node: MemberlistNode): void;
}

/**
 * Vetoes a push-pull merge before any of it is applied (Go `MergeDelegate`): return an error
 * text to refuse the whole merge (the join fails with it), `undefined` to accept.
 */
export interface MemberlistMergeDelegate {
  notifyMerge(peers: readonly MemberlistNode[]): string | undefined;
}

/** Vetoes a single alive message (Go `AliveDelegate`): return an error text to ignore the node. */
export interface MemberlistAliveDelegate {
  notifyAlive(peer: MemberlistNode): string | undefined;
}

/** Piggy-backs data on acks and observes round-trip times (Go `PingDelegate`, used for coordinates). */
export interface MemberlistPingDelegate {
  /** Payload to attach to every ack this node sends. */
  ackPayload(): Uint8Array;
  /** A direct probe of `other` completed after `rttMs` with the ack's payload. */
  notifyPingComplete(other: MemberlistNode, rttMs: number, payload: Buffer): void;
}

/** Told when another node claims this node's name from a different address (Go `ConflictDelegate`). */
export interface MemberlistConflictDelegate {
  notifyConflict(existing: MemberlistNode, other: MemberlistNode): void;
}

/** The delegates a memberlist instance calls; every one is optional. */
export interface MemberlistDelegates {
  readonly delegate?: MemberlistDelegate;
  readonly events?: MemberlistEventDelegate;
  readonly merge?: MemberlistMergeDelegate;
  readonly alive?: MemberlistAliveDelegate;
  readonly ping?: MemberlistPingDelegate;
  readonly conflict?: MemberlistConflictDelegate;
}

/**
 * What the serf layer (or any other user) calls on a running memberlist. Implemented by
 * `Memberlist`; a fake implements it in unit tests.
 */
export interface MemberlistApi {
  /** This node's own entry. */
  localNode(): MemberlistNode;
  /** Nodes not dead and not left (alive and suspect), this node included. */
  members(): MemberlistNode[];
  /** `members().length`, without the copy. */
  numMembers(): number;
  /**
   * Join through existing members: a push-pull with each address (`[name/]host[:port]`, default
   * port = the configured bind port). Resolves with how many were contacted; rejects with an error
   * naming every failure when none was.
   */
  join(addresses: readonly string[]): Promise<number>;
  /** Broadcast this node's own `dead` (a leave) and wait up to `timeoutMs` for it to go out. */
  leave(timeoutMs: number): Promise<void>;
  /** Re-read meta from the delegate and gossip a new alive; waits up to `timeoutMs` for it to go out. */
  updateNode(timeoutMs: number): Promise<void>;
  /** Send a user message to an address over a packet (best-effort; must fit a packet). */
  sendToAddress(to: GossipAddress, msg: Uint8Array): Promise<void>;
  /** Send a user message to a node over a packet (best-effort). */
  sendBestEffort(to: MemberlistNode, msg: Uint8Array): Promise<void>;
  /** Send a user message to a node over a stream (reliable, any size up to the stream limit). */
  sendReliable(to: MemberlistNode, msg: Uint8Array): Promise<void>;
  /** Lifeguard's local health score (0 = healthy); probe timeouts scale by it + 1. */
  healthScore(): number;
  /** The memberlist protocol version this node speaks (pcur). */
  readonly protocolVersion: number;
  /** Stop timers and the transport. No leave is sent. Idempotent. */
  shutdown(): Promise<void>;
}
