/**
 * The memberlist message bodies as msgpack schemas (go-msgpack 0.5: maps keyed by Go field
 * name, sorted; `[]byte` as raw strings). Field names, Go types and `codec:",omitempty"` tags
 * follow memberlist 0.2.2 `net.go`; golden bytes in hashicorp-wire.md §7.
 */
import { t, type Infer, type InferInput } from '../../rpc/msgpack/index.js';

/** `ping` (type 0): a direct probe. `Node` is the target's name; Source* only since protocol 5. */
export const Ping = t.struct({
  SeqNo: t.uint32,
  Node: t.string,
  SourceAddr: t.omitEmpty(t.bytes),
  SourcePort: t.omitEmpty(t.uint16),
  SourceNode: t.omitEmpty(t.string),
});
export type Ping = Infer<typeof Ping>;

/** `indirectPing` (type 1, Go `indirectPingReq`): ask a member to probe `Target:Port` for us. */
export const IndirectPing = t.struct({
  SeqNo: t.uint32,
  Target: t.bytes,
  Port: t.uint16,
  Node: t.string,
  Nack: t.bool,
  SourceAddr: t.omitEmpty(t.bytes),
  SourcePort: t.omitEmpty(t.uint16),
  SourceNode: t.omitEmpty(t.string),
});
export type IndirectPing = Infer<typeof IndirectPing>;

/** `ackResp` (type 2): answer to a ping; `Payload` comes from the ping delegate (nil if none). */
export const AckResp = t.struct({ SeqNo: t.uint32, Payload: t.bytes });
export type AckResp = Infer<typeof AckResp>;

/** `nackResp` (type 11): an indirect probe got no ack. */
export const NackResp = t.struct({ SeqNo: t.uint32 });
export type NackResp = Infer<typeof NackResp>;

/** `suspect` (type 3): `From` suspects `Node` at `Incarnation`. */
export const Suspect = t.struct({ Incarnation: t.uint32, Node: t.string, From: t.string });
export type Suspect = Infer<typeof Suspect>;

/**
 * `alive` (type 4). `Vsn` is `[]uint8` = 6 bytes pmin, pmax, pcur, dmin, dmax, dcur, encoded as
 * a raw string (not an array); see {@link encodeVsn}.
 */
export const Alive = t.struct({
  Incarnation: t.uint32,
  Node: t.string,
  Addr: t.bytes,
  Port: t.uint16,
  Meta: t.bytes,
  Vsn: t.bytes,
});
export type Alive = Infer<typeof Alive>;

/** `dead` (type 5): also a graceful leave when `From === Node`. */
export const Dead = t.struct({ Incarnation: t.uint32, Node: t.string, From: t.string });
export type Dead = Infer<typeof Dead>;

/** The header of a push-pull exchange (type 6), followed by `Nodes` × {@link PushNodeState} and `UserStateLen` bytes. */
export const PushPullHeader = t.struct({ Nodes: t.int, UserStateLen: t.int, Join: t.bool });
export type PushPullHeader = Infer<typeof PushPullHeader>;

/** One node of a push-pull exchange. `State` is a {@link NodeState} value. */
export const PushNodeState = t.struct({
  Name: t.string,
  Addr: t.bytes,
  Port: t.uint16,
  Meta: t.bytes,
  Incarnation: t.uint32,
  State: t.int,
  Vsn: t.bytes,
});
export type PushNodeState = Infer<typeof PushNodeState>;

/** The header of a user message sent over a stream (type 8 on TCP), followed by `UserMsgLen` bytes. */
export const UserMsgHeader = t.struct({ UserMsgLen: t.int });
export type UserMsgHeader = Infer<typeof UserMsgHeader>;

/** `compress` (type 9): `Buf` holds the LZW-compressed message (Algo 0). */
export const Compress = t.struct({ Algo: t.uint8, Buf: t.bytes });
export type Compress = Infer<typeof Compress>;

/** `errResp` (type 13): a stream peer's error text, e.g. an encryption mismatch. */
export const ErrResp = t.struct({ Error: t.string });
export type ErrResp = Infer<typeof ErrResp>;

/** Input types (every field optional: missing = Go zero value). */
export type PingInput = InferInput<typeof Ping>;
export type AliveInput = InferInput<typeof Alive>;
export type PushNodeStateInput = InferInput<typeof PushNodeState>;

/** memberlist's six protocol version bytes (`Vsn`). */
export interface ProtocolVersions {
  /** memberlist protocol min / max / current. */
  readonly pmin: number;
  readonly pmax: number;
  readonly pcur: number;
  /** Delegate (serf) protocol min / max / current. */
  readonly dmin: number;
  readonly dmax: number;
  readonly dcur: number;
}

/** Pack {@link ProtocolVersions} into the 6-byte `Vsn` field (order pmin pmax pcur dmin dmax dcur). */
export function encodeVsn(v: ProtocolVersions): Uint8Array {
  return Uint8Array.of(v.pmin, v.pmax, v.pcur, v.dmin, v.dmax, v.dcur);
}

/** Unpack a `Vsn` field; undefined when it is not 6 bytes (memberlist then ignores it). */
export function decodeVsn(vsn: Uint8Array): ProtocolVersions | undefined {
  if (vsn.length !== 6) return undefined;
  const [pmin, pmax, pcur, dmin, dmax, dcur] = vsn as unknown as [number, number, number, number, number, number];
  return { pmin, pmax, pcur, dmin, dmax, dcur };
}
