/**
 * yamux protocol constants, spelled as on the wire (shared/spec/hashicorp-wire.md §10,
 * wanfed-reference.md §1.9), and the session defaults of hashicorp/yamux's `DefaultConfig()`
 * plus the two timeouts newer yamux releases added.
 */

/** The only protocol version hashicorp/yamux speaks (`protoVersion`). */
export const PROTO_VERSION = 0;

/** Size of a frame header: version u8, type u8, flags u16, stream id u32, length u32 (big-endian). */
export const HEADER_SIZE = 12;

/** Frame types (`typeData` …). */
export const FrameType = Object.freeze({
  /** Data frame: `length` payload bytes follow the header. */
  Data: 0,
  /** Window update: `length` is the receive-window delta; no payload. Also carries SYN/ACK/FIN/RST. */
  WindowUpdate: 1,
  /** Ping: `length` is an opaque value echoed back; stream id 0. */
  Ping: 2,
  /** Go away: `length` is a {@link GoAwayCode}; stream id 0. */
  GoAway: 3,
} as const);

/** A value of {@link FrameType}. */
export type FrameTypeValue = (typeof FrameType)[keyof typeof FrameType];

/** Header flags (`flagSYN` …), a bit set. */
export const Flag = Object.freeze({
  /** Opens a stream (and, on a ping, asks for a reply). */
  SYN: 1,
  /** Acknowledges a stream open (and, on a ping, is the reply). */
  ACK: 2,
  /** Half-closes the sender's side of a stream. */
  FIN: 4,
  /** Resets a stream at once, in both directions. */
  RST: 8,
} as const);

/** Go-away codes (`goAwayNormal` …), carried in the length field. */
export const GoAwayCode = Object.freeze({
  /** No new streams, please; existing streams continue. */
  Normal: 0,
  /** The peer violated the protocol; the session ends. */
  ProtocolError: 1,
  /** The sender hit an internal error; the session ends. */
  InternalError: 2,
} as const);

/** A value of {@link GoAwayCode}. */
export type GoAwayCodeValue = (typeof GoAwayCode)[keyof typeof GoAwayCode];

/** Every stream starts with this receive and send window (`initialStreamWindow`, 256 KiB). */
export const INITIAL_STREAM_WINDOW = 256 * 1024;

/** Largest value of a u32 field (stream ids, window deltas). */
export const MAX_U32 = 0xffff_ffff;

/** Session defaults: hashicorp/yamux `DefaultConfig()` plus newer yamux's open/close timeouts. */
export const YAMUX_DEFAULTS = Object.freeze({
  /** Un-accepted inbound streams held before further SYNs are refused with RST (`AcceptBacklog`). */
  acceptBacklog: 256,
  /** Keepalive ping interval (`KeepAliveInterval`, 30 s); 0 turns keepalive off. */
  keepAliveIntervalMs: 30_000,
  /** How long writes may stay blocked, and a ping may wait for its reply (`ConnectionWriteTimeout`). */
  connectionWriteTimeoutMs: 10_000,
  /** Receive window each stream grants its peer (`MaxStreamWindowSize`, 256 KiB, the minimum). */
  maxStreamWindowSize: INITIAL_STREAM_WINDOW,
  /** How long an opened stream may wait for the peer's ACK (`StreamOpenTimeout`, 75 s); 0 = forever. */
  streamOpenTimeoutMs: 75_000,
  /** How long a half-closed stream waits for the peer's FIN before it is reset (`StreamCloseTimeout`, 5 min); 0 = forever. */
  streamCloseTimeoutMs: 300_000,
} as const);

/** Human names of frame types, for error messages. */
export const FRAME_TYPE_NAMES: readonly string[] = Object.freeze(['data', 'window update', 'ping', 'go away']);
