/**
 * The serf message bodies as msgpack schemas (go-msgpack 0.5: maps keyed by Go field name,
 * written sorted; `[]byte` and `net.IP` as raw strings). Field names and Go types follow serf
 * 0.9.4 `messages.go`, `serf.go`, `keymanager.go`, `internal_query.go` (hashicorp-wire.md §7–§8).
 *
 * `LamportTime` is Go `uint64`: it decodes to a number up to 2^53-1 and to a bigint beyond, and
 * encodes from either (see {@link LamportClock}).
 */
import { t, type Infer, type InferInput } from '../../rpc/msgpack/index.js';

/** Go `LamportTime` (`uint64`). */
export const LamportTimeSchema = t.uint64;

/** `leave` (type 0): `Node` intends to leave (`Prune`: and be erased from member lists). */
export const Leave = t.struct({ LTime: LamportTimeSchema, Node: t.string, Prune: t.bool });
export type Leave = Infer<typeof Leave>;

/** `join` (type 1): associates `Node` with a Lamport time after it joined. */
export const Join = t.struct({ LTime: LamportTimeSchema, Node: t.string });
export type Join = Infer<typeof Join>;

/** One user event kept in the event ring (Go `userEvent`). */
export const UserEventEntry = t.struct({ Name: t.string, Payload: t.bytes });
export type UserEventEntry = Infer<typeof UserEventEntry>;

/** The user events seen at one Lamport time (Go `userEvents`): a slot of the push-pull ring. */
export const UserEvents = t.struct({ LTime: LamportTimeSchema, Events: t.list(UserEventEntry) });
export type UserEvents = Infer<typeof UserEvents>;

/**
 * `pushPull` (type 2): serf's state in memberlist's push-pull user state. `Events` is Go
 * `[]*userEvents`, the whole event ring (512 slots by default), mostly nil: nil slots decode
 * to `null` (hashicorp-wire.md §12).
 */
export const PushPull = t.struct({
  LTime: LamportTimeSchema,
  StatusLTimes: t.map(LamportTimeSchema),
  LeftMembers: t.list(t.string),
  EventLTime: LamportTimeSchema,
  Events: t.list(t.nullable(UserEvents)),
  QueryLTime: LamportTimeSchema,
});
export type PushPull = Infer<typeof PushPull>;

/** `userEvent` (type 3). `Payload` is binary (never UTF-8-decoded); `CC` = may be coalesced. */
export const UserEvent = t.struct({ LTime: LamportTimeSchema, Name: t.string, Payload: t.bytes, CC: t.bool });
export type UserEvent = Infer<typeof UserEvent>;

/**
 * `query` (type 4). `Addr`/`Port`/`SourceNode` say where to send responses directly; `Filters`
 * are {@link encodeFilter} blobs; `Flags` are {@link QueryFlag} bits; `Timeout` is a
 * `time.Duration` in nanoseconds (1 s = `ce 3b9aca00`).
 */
export const Query = t.struct({
  LTime: LamportTimeSchema,
  ID: t.uint32,
  Addr: t.bytes,
  Port: t.uint16,
  SourceNode: t.string,
  Filters: t.list(t.bytes),
  Flags: t.uint32,
  RelayFactor: t.uint8,
  Timeout: t.duration,
  Name: t.string,
  Payload: t.bytes,
});
export type Query = Infer<typeof Query>;

/** `queryResponse` (type 5): an ack (`Flags` has {@link QueryFlag.ack}) or a response from `From`. */
export const QueryResponse = t.struct({
  LTime: LamportTimeSchema,
  ID: t.uint32,
  From: t.string,
  Flags: t.uint32,
  Payload: t.bytes,
});
export type QueryResponse = Infer<typeof QueryResponse>;

/**
 * `conflictResponse` (type 6): the payload of an answer to the internal `_serf_conflict` query,
 * Go `Member` (`Status` is a {@link MemberStatus} value).
 */
export const Member = t.struct({
  Name: t.string,
  Addr: t.bytes,
  Port: t.uint16,
  Tags: t.map(t.string),
  Status: t.int,
  ProtocolMin: t.uint8,
  ProtocolMax: t.uint8,
  ProtocolCur: t.uint8,
  DelegateMin: t.uint8,
  DelegateMax: t.uint8,
  DelegateCur: t.uint8,
});
export type Member = Infer<typeof Member>;

/** `keyRequest` (type 7): the payload of the `_serf_install-key`/`use-key`/`remove-key` queries. */
export const KeyRequest = t.struct({ Key: t.bytes });
export type KeyRequest = Infer<typeof KeyRequest>;

/** `keyResponse` (type 8): a node's answer to a key query (Go `nodeKeyResponse`). */
export const KeyResponse = t.struct({
  Result: t.bool,
  Message: t.string,
  Keys: t.list(t.string),
  PrimaryKey: t.string,
});
export type KeyResponse = Infer<typeof KeyResponse>;

/** Go `net.UDPAddr`: `IP` is `net.IP` (4 or 16 raw bytes), `Zone` the IPv6 zone. */
export const UdpAddr = t.struct({ IP: t.bytes, Port: t.int, Zone: t.string });
export type UdpAddr = Infer<typeof UdpAddr>;

/**
 * The header of a `relay` (type 9) message: where to forward the serf message that follows it.
 * Serf 0.9.4 has `DestName` too (the final recipient's node name), beside `DestAddr`.
 */
export const RelayHeader = t.struct({ DestAddr: UdpAddr, DestName: t.string });
export type RelayHeader = Infer<typeof RelayHeader>;

/** A tag filter of a query (Go `filterTag`): `Expr` is a regular expression over tag `Tag`. */
export const FilterTag = t.struct({ Tag: t.string, Expr: t.string });
export type FilterTag = Infer<typeof FilterTag>;

/** A node filter of a query (Go `filterNode`, `[]string`). */
export const FilterNode = t.list(t.string);
export type FilterNode = Infer<typeof FilterNode>;

/** Input types (every struct field optional: missing = Go zero value). */
export type LeaveInput = InferInput<typeof Leave>;
export type JoinInput = InferInput<typeof Join>;
export type PushPullInput = InferInput<typeof PushPull>;
export type UserEventInput = InferInput<typeof UserEvent>;
export type QueryInput = InferInput<typeof Query>;
export type QueryResponseInput = InferInput<typeof QueryResponse>;
export type MemberInput = InferInput<typeof Member>;
export type KeyRequestInput = InferInput<typeof KeyRequest>;
export type KeyResponseInput = InferInput<typeof KeyResponse>;
export type RelayHeaderInput = InferInput<typeof RelayHeader>;
