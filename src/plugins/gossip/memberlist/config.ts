/**
 * memberlist configuration: the timing profiles (memberlist's `DefaultLANConfig`,
 * `DefaultWANConfig`, `DefaultLocalConfig`) and the options of one {@link Memberlist}.
 */
import type { Logger } from '../../../core/logger.js';
import type { Clock } from '../../../core/clock.js';
import type { GossipTransport } from '../transport/index.js';
import type { Keyring } from '../wire/index.js';
import type { MemberlistDelegates } from './types.js';

/** memberlist protocol versions this implementation speaks (memberlist 0.2.2: 1..5, current 2). */
export const PROTOCOL_VERSION_MIN = 1;
export const PROTOCOL_VERSION_MAX = 5;
/** The protocol version announced by default (memberlist's `ProtocolVersion2Compatible`). */
export const PROTOCOL_VERSION_DEFAULT = 2;

/** Timings and sizes of a pool; every field has memberlist's meaning. */
export interface MemberlistTimings {
  /** Timeout of stream dials and stream reads (push-pull, TCP ping). */
  readonly tcpTimeoutMs: number;
  /** Members asked to probe a node indirectly when a direct probe fails. */
  readonly indirectChecks: number;
  /** Broadcasts are sent `retransmitMult × ceil(log10(n + 1))` times. */
  readonly retransmitMult: number;
  /** Suspicion timeout = `suspicionMult × log10(n) × probeInterval` (at least × 1). */
  readonly suspicionMult: number;
  /** Upper bound of the suspicion timeout, as a multiple of its lower bound. */
  readonly suspicionMaxTimeoutMult: number;
  /** Full state sync with a random member this often (scaled up above 32 nodes); 0 disables it. */
  readonly pushPullIntervalMs: number;
  /** One node is probed this often. */
  readonly probeIntervalMs: number;
  /** A direct probe waits this long for its ack before indirect probes start. */
  readonly probeTimeoutMs: number;
  /** Never fall back to a TCP ping. */
  readonly disableTcpPings: boolean;
  /** Lifeguard: timeouts stretch up to this multiple when this node is unhealthy. */
  readonly awarenessMaxMultiplier: number;
  /** Gossip broadcasts this often... */
  readonly gossipIntervalMs: number;
  /** ...to this many random members. */
  readonly gossipNodes: number;
  /** Keep gossiping to a dead node this long (so it learns it was declared dead). */
  readonly gossipToTheDeadTimeMs: number;
  /** LZW-compress packets when that makes them smaller, and streams always. */
  readonly enableCompression: boolean;
  /** Largest packet this node builds (compound gossip is packed up to it). */
  readonly udpBufferSize: number;
  /** A dead node's name may be taken over by another address after this long (0 = never). */
  readonly deadNodeReclaimTimeMs: number;
}

/** memberlist `DefaultLANConfig`. */
export const LAN_TIMINGS: MemberlistTimings = Object.freeze({
  tcpTimeoutMs: 10_000,
  indirectChecks: 3,
  retransmitMult: 4,
  suspicionMult: 4,
  suspicionMaxTimeoutMult: 6,
  pushPullIntervalMs: 30_000,
  probeIntervalMs: 1_000,
  probeTimeoutMs: 500,
  disableTcpPings: false,
  awarenessMaxMultiplier: 8,
  gossipIntervalMs: 200,
  gossipNodes: 3,
  gossipToTheDeadTimeMs: 30_000,
  enableCompression: true,
  udpBufferSize: 1400,
  deadNodeReclaimTimeMs: 0,
});

/** memberlist `DefaultWANConfig`. */
export const WAN_TIMINGS: MemberlistTimings = Object.freeze({
  ...LAN_TIMINGS,
  tcpTimeoutMs: 30_000,
  suspicionMult: 6,
  pushPullIntervalMs: 60_000,
  probeTimeoutMs: 3_000,
  probeIntervalMs: 5_000,
  gossipNodes: 4,
  gossipIntervalMs: 500,
  gossipToTheDeadTimeMs: 60_000,
});

/** memberlist `DefaultLocalConfig` (tests on one host). */
export const LOCAL_TIMINGS: MemberlistTimings = Object.freeze({
  ...LAN_TIMINGS,
  tcpTimeoutMs: 1_000,
  indirectChecks: 1,
  retransmitMult: 2,
  suspicionMult: 3,
  pushPullIntervalMs: 15_000,
  probeTimeoutMs: 200,
  probeIntervalMs: 1_000,
  gossipIntervalMs: 100,
  gossipToTheDeadTimeMs: 15_000,
});

/** Options of a {@link Memberlist}. */
export interface MemberlistConfig extends Partial<MemberlistTimings> {
  /** This node's name, unique in the pool (required). */
  readonly name: string;
  /** The transport (memberlist owns it: shutdown shuts it down). */
  readonly transport: GossipTransport;
  /** Address to advertise; default: the transport's choice (`finalAdvertiseAddr`). */
  readonly advertiseAddr?: string;
  /** Port to advertise; default: the transport's bound port. */
  readonly advertisePort?: number;
  /** Default port of join addresses without one (memberlist `BindPort`; default the advertised port). */
  readonly bindPort?: number;
  /** Encryption keys; when set, packets and streams are AES-GCM encrypted with the primary key. */
  readonly keyring?: Keyring;
  /** Refuse unencrypted inbound traffic when a keyring is set (default true). */
  readonly gossipVerifyIncoming?: boolean;
  /** Encrypt outbound traffic when a keyring is set (default true). */
  readonly gossipVerifyOutgoing?: boolean;
  /** Protocol version to speak, 1..5 (default 2, as memberlist). */
  readonly protocolVersion?: number;
  /** Delegate (serf) protocol versions to announce (default 0/0/0). */
  readonly delegateProtocolMin?: number;
  readonly delegateProtocolMax?: number;
  readonly delegateProtocolVersion?: number;
  /** Refuse to send to an address without a node name (WAN pools through gateways). */
  readonly requireNodeNames?: boolean;
  /** Skip the TCP fallback ping to this node (the wanfed transport's hook; default: the transport's). */
  readonly disableTcpPingsForNode?: (name: string) => boolean;
  /** The delegates. */
  readonly delegates?: MemberlistDelegates;
  /** Logger (a child with `component: 'memberlist'` is used). */
  readonly logger?: Logger;
  /** Timers (default the system clock). */
  readonly clock?: Clock;
  /** Random numbers in [0, 1) (default Math.random). */
  readonly random?: () => number;
  /** Most concurrent inbound push-pulls (memberlist: 128). */
  readonly maxPushPullRequests?: number;
}
