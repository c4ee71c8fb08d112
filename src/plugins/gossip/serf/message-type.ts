/**
 * Serf protocol constants, spelled as on the wire (serf 0.9.4 `messages.go`, `serf.go`;
 * hashicorp-wire.md §7 "Serf layer").
 */

/**
 * The first byte of every serf message (Go `messageType`, an iota from 0). Types 6–8 only
 * travel inside query / query-response payloads (internal `_serf_*` queries); 9 wraps another
 * serf message for relaying to `DestAddr`.
 */
export const SerfMessageType = Object.freeze({
  leave: 0,
  join: 1,
  pushPull: 2,
  userEvent: 3,
  query: 4,
  queryResponse: 5,
  conflictResponse: 6,
  keyRequest: 7,
  keyResponse: 8,
  relay: 9,
} as const);

/** A value of {@link SerfMessageType}. */
export type SerfMessageTypeValue = (typeof SerfMessageType)[keyof typeof SerfMessageType];

const NAMES: readonly string[] = Object.keys(SerfMessageType);

/** The name of a serf message type (`leave`, …), or `unknown(0x..)`. */
export function serfMessageTypeName(type: number): string {
  return NAMES[type] ?? `unknown(0x${type.toString(16).padStart(2, '0')})`;
}

/** Bits of `Flags` in query and query-response messages (Go `queryFlag*`, uint32). */
export const QueryFlag = Object.freeze({
  /** The receiver must send an ack response. */
  ack: 1,
  /** The receiver must not re-broadcast the query. */
  noBroadcast: 2,
} as const);

/** The first byte of each element of a query's `Filters` (Go `filterType`). */
export const FilterType = Object.freeze({
  /** Followed by msgpack `[]string` of node names. */
  node: 0,
  /** Followed by msgpack `{Expr, Tag}`: a regular expression over one tag. */
  tag: 1,
} as const);

/** A value of {@link FilterType}. */
export type FilterTypeValue = (typeof FilterType)[keyof typeof FilterType];

/** Go `MemberStatus` values, as carried in a conflict response's `Status`. */
export const MemberStatus = Object.freeze({
  none: 0,
  alive: 1,
  leaving: 2,
  left: 3,
  failed: 4,
} as const);

/** The first byte of protocol ≥ 3 tags in memberlist meta; anything else is a bare role string. */
export const TAG_MAGIC_BYTE = 0xff;

/** memberlist's `MetaMaxSize`: encoded tags longer than this are refused by serf. */
export const TAGS_MAX_SIZE = 512;

/**
 * Default bound on one serf message. The largest is the push-pull user state, which memberlist
 * caps at 20 MiB (`maxPushStateBytes`); the same bound is used for every type.
 */
export const SERF_MAX_MESSAGE_BYTES = 20 * 1024 * 1024;
