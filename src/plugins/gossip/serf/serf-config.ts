/**
 * Configuration of a {@link Serf} instance: what the caller passes, and the defaults (serf 0.9.4
 * `DefaultConfig()`, hashicorp-wire.md §5–§7).
 */
import type { Logger } from '../../../core/logger.js';
import type { Clock } from '../../../core/clock.js';
import type { MemberlistApi, MemberlistDelegates } from '../memberlist/types.js';
import type { SerfEvent, SerfMember } from './types.js';

/** The serf delegate protocol versions announced to memberlist (serf 0.9.4: min 2, max 5, current 5). */
export const SERF_DELEGATE_VERSIONS = Object.freeze({ dmin: 2, dmax: 5, dcur: 5 } as const);

/** Serf's hard cap on a user event (Go `UserEventSizeLimit`, 9 KiB), whatever the configured limit. */
export const USER_EVENT_SANE_LIMIT = 9 * 1024;

/** Prefix of serf's internal queries (`_serf_ping`, `_serf_conflict`, key management). */
export const INTERNAL_QUERY_PREFIX = '_serf_';

/**
 * A keyring that key-management queries may change (the shape of `gossip/wire`'s `Keyring`).
 * Methods throw (with a message sent back to the asker) when an operation is refused.
 */
export interface SerfKeyring {
  /** Install a key (not primary). */
  addKey(key: Uint8Array): void;
  /** Make an installed key the primary key. */
  useKey(key: Uint8Array): void;
  /** Remove a non-primary key. */
  removeKey(key: Uint8Array): void;
  /** Every installed key, primary first. */
  readonly keys: readonly Uint8Array[];
  /** The key used to encrypt. */
  readonly primaryKey: Uint8Array;
}

/** What `createMemberlist` receives beside the delegates. */
export interface SerfMemberlistMeta {
  /** The delegate (serf) protocol versions memberlist must announce in its `Vsn`. */
  readonly delegateVersions: typeof SERF_DELEGATE_VERSIONS;
}

/** Options of {@link Serf.create}. Durations are milliseconds. */
export interface SerfConfig {
  /** This node's name (unique in the pool). */
  readonly nodeName: string;
  /** Initial tags (encoded at most 512 bytes). Default `{}`. */
  readonly tags?: Readonly<Record<string, string>>;
  /** Build the memberlist this serf runs on, with the delegates serf supplies. */
  readonly createMemberlist: (delegates: MemberlistDelegates, meta: SerfMemberlistMeta) => Promise<MemberlistApi>;
  /** Where to log (a child with `component: 'serf'` is used). */
  readonly logger: Logger;
  /** Time source and timers (default the system clock). */
  readonly clock?: Clock;
  /** Failed members are reaped after this long (default 72 h). */
  readonly reconnectTimeoutMs?: number;
  /** How often a reconnect to a failed member is tried (default 30 s). */
  readonly reconnectIntervalMs?: number;
  /** Left members are reaped after this long (default 24 h). */
  readonly tombstoneTimeoutMs?: number;
  /** How often failed/left members and old intents are reaped (default 15 s). */
  readonly reapIntervalMs?: number;
  /** Intents about unknown members are kept this long (default 5 min). */
  readonly recentIntentTimeoutMs?: number;
  /** Slots of the user-event dedupe ring, sent in push-pull (default 512). */
  readonly eventBuffer?: number;
  /** Slots of the query dedupe ring (default 512). */
  readonly queryBuffer?: number;
  /** Default query timeout = gossipInterval × this × ceil(log10(n + 1)) (default 16). */
  readonly queryTimeoutMult?: number;
  /** memberlist's gossip interval, for the default query timeout (default 200 ms). */
  readonly gossipIntervalMs?: number;
  /** Largest encoded query (default 1024 bytes). */
  readonly querySizeLimit?: number;
  /** Largest encoded query response (default 1024 bytes). */
  readonly queryResponseSizeLimit?: number;
  /** Largest user event, name + payload and encoded (default 512 bytes, at most 9 KiB). */
  readonly userEventSizeLimit?: number;
  /** How long leave/forceLeave/setTags wait for their broadcast to go out (default 5 s). */
  readonly broadcastTimeoutMs?: number;
  /** How long a leaving node stays up after the memberlist leave (default 1 s). */
  readonly leavePropagateDelayMs?: number;
  /** Each broadcast queue is pruned to this many messages (default 4096). */
  readonly maxQueueDepth?: number;
  /** Broadcast retransmit multiplier (default 4). */
  readonly retransmitMult?: number;
  /** Keyring changed by `_serf_*-key` queries; without one they are answered "not supported". */
  readonly keyring?: SerfKeyring;
  /**
   * Veto a push-pull merge or an alive node (Consul's WAN pool: "Member '%s' is not a server"):
   * return an error text to refuse, undefined to accept.
   */
  readonly merge?: (members: SerfMember[]) => string | undefined;
  /** Receives membership, user and (non-internal) query events, synchronously. */
  readonly onEvent?: (e: SerfEvent) => void;
  /** Random source in [0, 1) for reconnect throttling, query IDs and relay choice (default Math.random). */
  readonly random?: () => number;
}

/** Every numeric option with its default. */
export const SERF_DEFAULTS = Object.freeze({
  reconnectTimeoutMs: 72 * 3600_000,
  reconnectIntervalMs: 30_000,
  tombstoneTimeoutMs: 24 * 3600_000,
  reapIntervalMs: 15_000,
  recentIntentTimeoutMs: 5 * 60_000,
  eventBuffer: 512,
  queryBuffer: 512,
  queryTimeoutMult: 16,
  gossipIntervalMs: 200,
  querySizeLimit: 1024,
  queryResponseSizeLimit: 1024,
  userEventSizeLimit: 512,
  broadcastTimeoutMs: 5_000,
  leavePropagateDelayMs: 1_000,
  maxQueueDepth: 4096,
  retransmitMult: 4,
} as const);

/** The numeric options, resolved. */
export type SerfTunables = { -readonly [K in keyof typeof SERF_DEFAULTS]: number };

/** Merge `config` over {@link SERF_DEFAULTS}; throws a RangeError for a non-positive or non-finite value. */
export function resolveTunables(config: SerfConfig): SerfTunables {
  const out = { ...SERF_DEFAULTS } as SerfTunables;
  for (const key of Object.keys(SERF_DEFAULTS) as (keyof SerfTunables)[]) {
    const v = config[key];
    if (v === undefined) continue;
    const zeroOk = key === 'leavePropagateDelayMs';
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || (v === 0 && !zeroOk)) {
      throw new RangeError(`serf: ${key} must be a ${zeroOk ? 'non-negative' : 'positive'} number, got ${String(v)}`);
    }
    out[key] = v;
  }
  for (const key of ['eventBuffer', 'queryBuffer', 'maxQueueDepth'] as const) out[key] = Math.floor(out[key]);
  if (out.userEventSizeLimit > USER_EVENT_SANE_LIMIT) {
    throw new RangeError(`serf: userEventSizeLimit ${out.userEventSizeLimit} is over the sane limit of ${USER_EVENT_SANE_LIMIT} bytes`);
  }
  return out;
}
