/**
 * Framing of memberlist messages (hashicorp-wire.md §7): one message = type byte + msgpack body;
 * the compound, hasCrc and compress wrappers; push-pull payloads; and {@link unpackPacket}, which
 * peels a received packet the way memberlist's `ingestPacket`/`handleCommand` do.
 *
 * Decoding is bounded and total: any input yields a value or a MESHFED_ERR_GOSSIP_… error.
 * Like go-msgpack reading from a `bytes.Reader`, bytes after a message's msgpack body are ignored.
 */
import { crc32 } from 'node:zlib';
import type { MeshfedError } from '../../../core/errors.js';
import { ByteReader, MsgpackErrorCode, decodeFrom, encode, type AnySchema, type DecodeLimits, type Infer, type InferInput } from '../../rpc/msgpack/index.js';
import { GossipWireErrorCode, gossipWireError, isGossipWireError } from './errors.js';
import { lzwCompress, lzwDecompress, DEFAULT_MAX_DECOMPRESSED_BYTES } from './lzw.js';
import { CompressionAlgo, MAX_PUSH_STATE_BYTES, MessageType, messageTypeName, type MessageTypeValue } from './message-type.js';
import {
  AckResp, Alive, Compress, Dead, ErrResp, IndirectPing, NackResp, Ping, PushNodeState, PushPullHeader, Suspect,
} from './messages.js';

/** A decoded push-pull payload (type 6): header fields, the nodes, and the delegate's user state. */
export interface PushPull {
  /** True for a join, false for periodic anti-entropy. */
  readonly join: boolean;
  readonly nodes: PushNodeState[];
  /** `UserStateLen` bytes of delegate state (serf: its own push-pull message). */
  readonly userState: Uint8Array;
}

/** What {@link encodePushPull} accepts. */
export interface PushPullInput {
  readonly join?: boolean;
  readonly nodes: readonly InferInput<typeof PushNodeState>[];
  readonly userState?: Uint8Array;
}


/** Decoded body of each message type. Wrappers and user messages keep their raw bytes. */
export interface MessageBodies {
  ping: Ping;
  indirectPing: IndirectPing;
  ackResp: AckResp;
  suspect: Suspect;
  alive: Alive;
  dead: Dead;
  pushPull: PushPull;
  compound: Uint8Array;
  user: Uint8Array;
  compress: Compress;
  encrypt: Uint8Array;
  nackResp: NackResp;
  hasCrc: Uint8Array;
  err: ErrResp;
}

/** What {@link encodeMessage} accepts for each message type. */
export interface MessageInputs {
  ping: InferInput<typeof Ping>;
  indirectPing: InferInput<typeof IndirectPing>;
  ackResp: InferInput<typeof AckResp>;
  suspect: InferInput<typeof Suspect>;
  alive: InferInput<typeof Alive>;
  dead: InferInput<typeof Dead>;
  pushPull: PushPullInput;
  compound: Uint8Array;
  user: Uint8Array;
  compress: InferInput<typeof Compress>;
  encrypt: Uint8Array;
  nackResp: InferInput<typeof NackResp>;
  hasCrc: Uint8Array;
  err: InferInput<typeof ErrResp>;
}

type TypeName = keyof typeof MessageType;
type NameOf<T extends MessageTypeValue> = { [K in TypeName]: (typeof MessageType)[K] extends T ? K : never }[TypeName];

/** A decoded message: `type` discriminates `body`. */
export type WireMessage = { [K in TypeName]: { readonly type: (typeof MessageType)[K]; readonly body: MessageBodies[K] } }[TypeName];

/** The msgpack schema of each struct-bodied message type. */
export const MESSAGE_SCHEMAS: Readonly<Partial<Record<MessageTypeValue, AnySchema>>> = Object.freeze({
  [MessageType.ping]: Ping,
  [MessageType.indirectPing]: IndirectPing,
  [MessageType.ackResp]: AckResp,
  [MessageType.suspect]: Suspect,
  [MessageType.alive]: Alive,
  [MessageType.dead]: Dead,
  [MessageType.compress]: Compress,
  [MessageType.nackResp]: NackResp,
  [MessageType.err]: ErrResp,
});

/** Limits of the decoders. */
export interface WireDecodeOptions {
  /** Largest decompressed compress payload (default 20 MiB = memberlist's push state limit). */
  readonly maxDecompressedBytes?: number;
  /** Most nodes in one push-pull (default 65 536). */
  readonly maxPushPullNodes?: number;
  /** msgpack limits (depth, collection length). */
  readonly msgpack?: DecodeLimits;
}

const DEFAULT_MAX_PUSH_PULL_NODES = 65_536;

function concat(type: number, body: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(1 + body.length);
  out[0] = type;
  out.set(body, 1);
  return out;
}

function encodeFailed(what: string, err: unknown): MeshfedError {
  return gossipWireError(GossipWireErrorCode.ENCODE, `gossip: cannot encode ${what}: ${err instanceof Error ? err.message : String(err)}`, err);
}

/** Encode one message: its type byte then its body (msgpack, push-pull framing, or raw bytes). */
export function encodeMessage<T extends MessageTypeValue>(type: T, body: MessageInputs[NameOf<T>]): Buffer {
  const schema = MESSAGE_SCHEMAS[type];
  if (schema) {
    try {
      return concat(type, encode(body as never, schema));
    } catch (err) {
      throw encodeFailed(`a ${messageTypeName(type)} message`, err);
    }
  }
  if (type === MessageType.pushPull) return encodePushPull(body as PushPullInput);
  if (body instanceof Uint8Array && messageTypeName(type) !== `type ${type}`) return concat(type, body);
  throw gossipWireError(GossipWireErrorCode.ENCODE, `gossip: cannot encode a ${messageTypeName(type)} message: expected a Uint8Array body`);
}

/** Encode a push-pull payload: `0x06`, header {Join, Nodes, UserStateLen}, the nodes, the user state. */
export function encodePushPull(p: PushPullInput): Buffer {
  const userState = p.userState ?? new Uint8Array(0);
  try {
    const parts: Uint8Array[] = [Uint8Array.of(MessageType.pushPull), encode({ Nodes: p.nodes.length, UserStateLen: userState.length, Join: p.join ?? false }, PushPullHeader)];
    for (const n of p.nodes) parts.push(encode(n, PushNodeState));
    parts.push(userState);
    return Buffer.concat(parts);
  } catch (err) {
    throw encodeFailed('a pushPull message', err);
  }
}

/** Map a msgpack codec error to a gossip one, naming what was being decoded. */
function decodeFailed(what: string, err: unknown): MeshfedError {
  if (isGossipWireError(err)) return err;
  const code = (err as { code?: unknown } | null)?.code;
  const mapped = code === MsgpackErrorCode.TRUNCATED ? GossipWireErrorCode.TRUNCATED : code === MsgpackErrorCode.LIMIT ? GossipWireErrorCode.LIMIT : GossipWireErrorCode.DECODE;
  return gossipWireError(mapped, `gossip: malformed ${what}: ${err instanceof Error ? err.message : String(err)}`, err);
}

/**
 * Read consecutive msgpack objects from `bytes`, as go-msgpack reads them from a stream: one
 * reader walks the buffer once, decoding each object in place (no copy, no separate scan).
 */
class ObjectCursor {
  readonly #r: ByteReader;
  constructor(bytes: Uint8Array, limits: DecodeLimits | undefined) {
    this.#r = new ByteReader(bytes, limits);
  }
  /** Bytes consumed by the objects returned so far. */
  get offset(): number {
    return this.#r.pos;
  }
  next<S extends AnySchema>(schema: S, what: string | (() => string)): Infer<S> {
    if (this.#r.pos >= this.#r.end) {
      throw gossipWireError(GossipWireErrorCode.TRUNCATED, `gossip: truncated ${typeof what === 'string' ? what : what()}: the input ended inside the msgpack body`);
    }
    try {
      return decodeFrom(this.#r, schema);
    } catch (err) {
      throw decodeFailed(typeof what === 'string' ? what : what(), err);
    }
  }
}

/** Decode a push-pull payload (the bytes after the `0x06` type byte). */
export function decodePushPull(body: Uint8Array, options: WireDecodeOptions = {}): PushPull {
  const cur = new ObjectCursor(body, options.msgpack);
  const header = cur.next(PushPullHeader, 'pushPull header');
  const maxNodes = options.maxPushPullNodes ?? DEFAULT_MAX_PUSH_PULL_NODES;
  if (header.Nodes < 0 || header.UserStateLen < 0) {
    throw gossipWireError(GossipWireErrorCode.DECODE, `gossip: malformed pushPull header: negative Nodes (${header.Nodes}) or UserStateLen (${header.UserStateLen})`);
  }
  if (header.Nodes > maxNodes) {
    throw gossipWireError(GossipWireErrorCode.LIMIT, `gossip: pushPull announces ${header.Nodes} nodes, more than the limit of ${maxNodes}`);
  }
  if (header.UserStateLen > MAX_PUSH_STATE_BYTES) {
    throw gossipWireError(GossipWireErrorCode.LIMIT, `gossip: pushPull user state of ${header.UserStateLen} bytes is larger than memberlist's limit of ${MAX_PUSH_STATE_BYTES}`);
  }
  // Every node takes at least one byte: a count beyond the input is a truncation, found before any allocation.
  if (header.Nodes > body.length - cur.offset) {
    throw gossipWireError(GossipWireErrorCode.TRUNCATED, `gossip: truncated pushPull: ${header.Nodes} nodes announced but only ${body.length - cur.offset} bytes follow the header`);
  }
  const nodes: PushNodeState[] = [];
  for (let i = 0; i < header.Nodes; i++) nodes.push(cur.next(PushNodeState, () => `pushPull node ${i}`));
  const left = body.length - cur.offset;
  if (left < header.UserStateLen) {
    throw gossipWireError(GossipWireErrorCode.TRUNCATED, `gossip: truncated pushPull: UserStateLen is ${header.UserStateLen} but only ${left} bytes follow the nodes`);
  }
  const userState = new Uint8Array(body.subarray(cur.offset, cur.offset + header.UserStateLen));
  return { join: header.Join, nodes, userState };
}

/**
 * Decode one message: the type byte, then its body. Struct bodies are decoded with their schema;
 * push-pull is decoded in full; compound, user, encrypt and hasCrc keep their raw bytes (see
 * {@link decodeCompound}, {@link verifyCrc}). Unknown type bytes are MESHFED_ERR_GOSSIP_UNKNOWN_TYPE.
 */
export function decodeMessage(buf: Uint8Array, options: WireDecodeOptions = {}): WireMessage {
  if (buf.length < 1) throw gossipWireError(GossipWireErrorCode.TRUNCATED, 'gossip: empty message: expected at least a type byte');
  const type = buf[0] as number;
  const body = buf.subarray(1);
  const schema = MESSAGE_SCHEMAS[type as MessageTypeValue];
  if (schema) {
    const value: unknown = new ObjectCursor(body, options.msgpack).next(schema, () => `${messageTypeName(type)} message`);
    return { type, body: value } as WireMessage;
  }
  switch (type) {
    case MessageType.pushPull:
      return { type, body: decodePushPull(body, options) };
    case MessageType.compound:
    case MessageType.user:
    case MessageType.encrypt:
    case MessageType.hasCrc:
      return { type, body: new Uint8Array(body) };
    default:
      throw gossipWireError(GossipWireErrorCode.UNKNOWN_TYPE, `gossip: unknown message type ${type}: expected 0-13 (is the peer using a newer memberlist with labels, or encryption?)`);
  }
}

// ---------------------------------------------------------------------------------------------
// compound

/** Most messages in one compound: its count is a single byte. */
export const MAX_COMPOUND_PARTS = 255;

/** Parts per compound that every memberlist version reads correctly. */
export const SAFE_COMPOUND_PARTS = 127;

/**
 * Pack messages into compound messages: `0x07 | count u8 | count × len u16 BE | parts`. More
 * than `maxParts` (default 127: memberlist 0.2.2 computes `numParts*2` in a uint8 and misreads
 * compounds of 128+ parts) messages give several compounds. A part over 65 535 bytes is an
 * encode error. No messages give no compound.
 */
export function encodeCompound(parts: readonly Uint8Array[], maxParts = SAFE_COMPOUND_PARTS): Buffer[] {
  if (!Number.isInteger(maxParts) || maxParts < 1 || maxParts > MAX_COMPOUND_PARTS) {
    throw gossipWireError(GossipWireErrorCode.ENCODE, `gossip: maxParts must be an integer in 1..255, got ${maxParts}`);
  }
  const out: Buffer[] = [];
  for (let start = 0; start < parts.length; start += maxParts) {
    const chunk = parts.slice(start, start + maxParts);
    let size = 2 + 2 * chunk.length;
    for (const [i, p] of chunk.entries()) {
      if (p.length > 0xffff) throw gossipWireError(GossipWireErrorCode.ENCODE, `gossip: compound part ${start + i} is ${p.length} bytes; a part is at most 65535 bytes`);
      size += p.length;
    }
    const buf = Buffer.allocUnsafe(size);
    buf[0] = MessageType.compound;
    buf[1] = chunk.length;
    let o = 2;
    for (const p of chunk) o = buf.writeUInt16BE(p.length, o);
    for (const p of chunk) {
      buf.set(p, o);
      o += p.length;
    }
    out.push(buf);
  }
  return out;
}

/** A decoded compound: the complete parts, and how many announced parts were cut off. */
export interface CompoundParts {
  readonly parts: Buffer[];
  /** Parts announced but missing or incomplete (memberlist logs these and handles the rest). */
  readonly truncated: number;
}

/**
 * Split a compound message (starting with its `0x07` type byte). As memberlist does, a packet
 * that ends inside a part yields the parts before it plus the count of the rest; a missing count
 * byte or length table is an error. Bytes after the last part are ignored. Parts are views.
 */
export function decodeCompound(buf: Uint8Array): CompoundParts {
  if (buf.length < 1 || buf[0] !== MessageType.compound) {
    throw gossipWireError(GossipWireErrorCode.UNKNOWN_TYPE, `gossip: not a compound message: expected type byte 7, got ${buf.length ? (buf[0] as number) : 'nothing'}`);
  }
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (b.length < 2) throw gossipWireError(GossipWireErrorCode.TRUNCATED, 'gossip: truncated compound: missing compound length byte');
  const n = b[1] as number;
  if (b.length < 2 + 2 * n) throw gossipWireError(GossipWireErrorCode.TRUNCATED, `gossip: truncated compound: ${n} parts announced but the length table is cut off (${b.length - 2} of ${2 * n} bytes)`);
  const parts: Buffer[] = [];
  let o = 2 + 2 * n;
  for (let i = 0; i < n; i++) {
    const len = b.readUInt16BE(2 + 2 * i);
    if (b.length - o < len) return { parts, truncated: n - i };
    parts.push(b.subarray(o, o + len));
    o += len;
  }
  return { parts, truncated: 0 };
}

// ---------------------------------------------------------------------------------------------
// hasCrc

/** Wrap a message with a CRC: `0x0c | crc32 IEEE of msg (u32 BE) | msg` (memberlist protocol ≥ 5). */
export function addCrc(msg: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(5 + msg.length);
  out[0] = MessageType.hasCrc;
  out.writeUInt32BE(crc32(msg), 1);
  out.set(msg, 5);
  return out;
}

/** Check and strip a hasCrc wrapper; the inner message (a view). MESHFED_ERR_GOSSIP_CRC on mismatch. */
export function verifyCrc(packet: Uint8Array): Buffer {
  if (packet.length < 1 || packet[0] !== MessageType.hasCrc) {
    throw gossipWireError(GossipWireErrorCode.UNKNOWN_TYPE, `gossip: not a hasCrc message: expected type byte 12, got ${packet.length ? (packet[0] as number) : 'nothing'}`);
  }
  if (packet.length < 5) throw gossipWireError(GossipWireErrorCode.TRUNCATED, `gossip: truncated hasCrc message: ${packet.length} bytes, need at least 5`);
  const b = Buffer.from(packet.buffer, packet.byteOffset, packet.byteLength);
  const inner = b.subarray(5);
  const expected = b.readUInt32BE(1);
  const actual = crc32(inner);
  if (actual !== expected) {
    throw gossipWireError(GossipWireErrorCode.CRC, `gossip: invalid checksum for packet: computed ${actual.toString(16).padStart(8, '0')}, packet says ${expected.toString(16).padStart(8, '0')} (corrupted in transit)`);
  }
  return inner;
}

// ---------------------------------------------------------------------------------------------
// compress

/** Options of {@link compressMessage}. */
export interface CompressOptions {
  /** Return `msg` unchanged when compressing does not make it smaller (memberlist's rule for packets). */
  readonly onlyIfSmaller?: boolean;
}

/** Wrap a message in `0x09 compress{Algo: 0, Buf: lzw(msg)}`, as memberlist's `compressPayload`. */
export function compressMessage(msg: Uint8Array, options: CompressOptions = {}): Buffer {
  const out = encodeMessage(MessageType.compress, { Algo: CompressionAlgo.lzw, Buf: lzwCompress(msg) });
  if (options.onlyIfSmaller && out.length >= msg.length) return Buffer.from(msg);
  return out;
}

/** Unwrap a compress message (starting with `0x09`): the decompressed inner message. */
export function decompressMessage(packet: Uint8Array, options: WireDecodeOptions = {}): Buffer {
  const m = decodeMessage(packet, options);
  if (m.type !== MessageType.compress) {
    throw gossipWireError(GossipWireErrorCode.UNKNOWN_TYPE, `gossip: not a compress message: expected type byte 9, got ${m.type}`);
  }
  if (m.body.Algo !== CompressionAlgo.lzw) {
    throw gossipWireError(GossipWireErrorCode.COMPRESS, `gossip: cannot decompress unknown algorithm ${m.body.Algo} (only 0 = LZW exists)`);
  }
  return lzwDecompress(m.body.Buf, { maxOutputBytes: options.maxDecompressedBytes ?? DEFAULT_MAX_DECOMPRESSED_BYTES });
}

// ---------------------------------------------------------------------------------------------
// a whole packet

/** The messages found in one packet by {@link unpackPacket}. */
export interface UnpackedPacket {
  /** Decoded messages, in packet order (compound and compress peeled off). */
  readonly messages: WireMessage[];
  /** Parts that failed to decode; the other parts are still returned (memberlist logs and goes on). */
  readonly errors: MeshfedError[];
  /** Compound parts cut off by the end of the packet. */
  readonly truncated: number;
}

/** Options of {@link unpackPacket}. */
export interface UnpackOptions extends WireDecodeOptions {
  /** Deepest nesting of compound/compress wrappers (default 4; memberlist itself nests at most 2). */
  readonly maxNesting?: number;
}

/**
 * Peel a received (already decrypted) packet as memberlist's `ingestPacket` does: an outer
 * hasCrc is verified and stripped (a bad CRC throws: drop the packet), then compound and compress
 * wrappers are opened recursively. A failing part lands in `errors`; the rest are still decoded.
 */
export function unpackPacket(packet: Uint8Array, options: UnpackOptions = {}): UnpackedPacket {
  const maxNesting = options.maxNesting ?? 4;
  const messages: WireMessage[] = [];
  const errors: MeshfedError[] = [];
  let truncated = 0;
  let total = 0;
  const budget = options.maxDecompressedBytes ?? DEFAULT_MAX_DECOMPRESSED_BYTES;
  const walk = (buf: Uint8Array, depth: number): void => {
    try {
      if (depth > maxNesting) throw gossipWireError(GossipWireErrorCode.LIMIT, `gossip: wrappers nested deeper than ${maxNesting} levels`);
      if (buf.length >= 1 && buf[0] === MessageType.compound) {
        const c = decodeCompound(buf);
        truncated += c.truncated;
        for (const p of c.parts) walk(p, depth + 1);
        return;
      }
      if (buf.length >= 1 && buf[0] === MessageType.compress) {
        // One budget for the whole packet, so nested wrappers cannot multiply it.
        const inner = decompressMessage(buf, { ...options, maxDecompressedBytes: budget - total });
        total += inner.length;
        walk(inner, depth + 1);
        return;
      }
      messages.push(decodeMessage(buf, options));
    } catch (err) {
      errors.push(decodeFailed('packet part', err));
    }
  };
  const body = packet.length >= 5 && packet[0] === MessageType.hasCrc ? verifyCrc(packet) : packet;
  walk(body, 0);
  return { messages, errors, truncated };
}
