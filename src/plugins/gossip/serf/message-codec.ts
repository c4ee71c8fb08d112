/**
 * Framing of serf messages (hashicorp-wire.md §7 "Serf layer"): one message = a
 * {@link SerfMessageType} byte + one msgpack body. They travel as memberlist user messages
 * (memberlist type 8), as the push-pull user state, and as query / query-response payloads.
 *
 * Decoding is bounded and total: any input yields a message or a `MESHFED_ERR_SERF_…` error.
 * Like serf (go-msgpack reading from a `bytes.Reader`), bytes after the msgpack body are ignored;
 * for `relay` they are the wrapped message.
 */
import type { MeshfedError } from '../../../core/errors.js';
import {
  MsgpackErrorCode, MsgpackStreamDecoder, decode, encode, type AnySchema, type DecodeLimits, type Infer, type InferInput,
} from '../../rpc/msgpack/index.js';
import { SerfErrorCode, isSerfError, serfError } from './errors.js';
import { SERF_MAX_MESSAGE_BYTES, SerfMessageType, serfMessageTypeName, type SerfMessageTypeValue } from './message-type.js';
import {
  Join, KeyRequest, KeyResponse, Leave, Member, PushPull, Query, QueryResponse, RelayHeader, UserEvent,
  type RelayHeaderInput,
} from './messages.js';

/** The body schema of every serf message type except `relay`, keyed by type byte. */
export const SERF_MESSAGE_SCHEMAS = Object.freeze({
  [SerfMessageType.leave]: Leave,
  [SerfMessageType.join]: Join,
  [SerfMessageType.pushPull]: PushPull,
  [SerfMessageType.userEvent]: UserEvent,
  [SerfMessageType.query]: Query,
  [SerfMessageType.queryResponse]: QueryResponse,
  [SerfMessageType.conflictResponse]: Member,
  [SerfMessageType.keyRequest]: KeyRequest,
  [SerfMessageType.keyResponse]: KeyResponse,
});

type Schemas = typeof SERF_MESSAGE_SCHEMAS;

/** A decoded `relay` (type 9): the header, and the wrapped serf message (type byte included) to forward. */
export interface SerfRelay {
  readonly header: RelayHeader;
  /** The wrapped message, forwarded as-is by serf (not decoded; pass it to {@link decodeSerfMessage}). */
  readonly message: Uint8Array;
}

/** What {@link encodeSerfMessage} accepts for `relay`. */
export interface SerfRelayInput {
  readonly header: RelayHeaderInput;
  /** An encoded serf message ({@link encodeSerfMessage}). */
  readonly message: Uint8Array;
}

/** Decoded body of each serf message type. */
export type SerfMessageBodies = { [K in keyof Schemas]: Infer<Schemas[K]> } & { [SerfMessageType.relay]: SerfRelay };

/** What {@link encodeSerfMessage} accepts for each serf message type (missing fields = Go zero values). */
export type SerfMessageInputs = { [K in keyof Schemas]: InferInput<Schemas[K]> } & { [SerfMessageType.relay]: SerfRelayInput };

/** A decoded serf message: its type byte and typed body. */
export type SerfMessage = { [K in SerfMessageTypeValue]: { readonly type: K; readonly body: SerfMessageBodies[K] } }[SerfMessageTypeValue];

/** Bounds for {@link decodeSerfMessage}. */
export interface SerfDecodeOptions {
  /** Refuse messages longer than this (default {@link SERF_MAX_MESSAGE_BYTES}, memberlist's push-state cap). */
  readonly maxMessageBytes?: number;
  /** msgpack decoder limits (depth, collection length); the codec's defaults otherwise. */
  readonly msgpack?: DecodeLimits;
}

function schemaOf(type: number): AnySchema | undefined {
  return Object.hasOwn(SERF_MESSAGE_SCHEMAS, type) ? (SERF_MESSAGE_SCHEMAS as Readonly<Record<number, AnySchema>>)[type] : undefined;
}

/**
 * Encode a serf message: the type byte, then the body as go-msgpack would write it (struct keys
 * sorted; map keys sorted too, so the output is deterministic where Go's is not).
 * For `relay`, the body is `{ header, message }` and the result is `09 | header | message`.
 *
 * @example
 * ```ts
 * const msg = encodeSerfMessage(SerfMessageType.leave, { LTime: 7, Node: 'dc2-gw', Prune: false });
 * // 00 83 a5"LTime" 07 a4"Node" a6"dc2-gw" a5"Prune" c2
 * ```
 */
export function encodeSerfMessage<T extends SerfMessageTypeValue>(type: T, body: SerfMessageInputs[T]): Uint8Array {
  if (type === SerfMessageType.relay) {
    const relay = body as SerfRelayInput;
    if (!(relay?.message instanceof Uint8Array)) {
      throw serfError(SerfErrorCode.ENCODE, 'serf: cannot encode relay: `message` must be the encoded serf message (a Uint8Array) to wrap');
    }
    const header = encodeBody(RelayHeader, relay.header, 'relay header');
    const out = new Uint8Array(1 + header.length + relay.message.length);
    out[0] = SerfMessageType.relay;
    out.set(header, 1);
    out.set(relay.message, 1 + header.length);
    return out;
  }
  const schema = schemaOf(type);
  if (!schema) throw serfError(SerfErrorCode.UNKNOWN_TYPE, `serf: cannot encode message type ${String(type)}: expected one of 0 (leave) … 9 (relay)`);
  const encoded = encodeBody(schema, body, `${serfMessageTypeName(type)} message`);
  const out = new Uint8Array(1 + encoded.length);
  out[0] = type;
  out.set(encoded, 1);
  return out;
}

/**
 * Wrap an encoded serf message in a `relay` (type 9) addressed to `header.DestAddr`, as serf's
 * `encodeRelayMessage` does for query responses with a RelayFactor.
 */
export function encodeRelayMessage(header: RelayHeaderInput, message: Uint8Array): Uint8Array {
  return encodeSerfMessage(SerfMessageType.relay, { header, message });
}

/**
 * Decode one serf message (type byte + msgpack body). Throws a MeshfedError with code
 * `MESHFED_ERR_SERF_TRUNCATED` (input ends early), `…_UNKNOWN_TYPE`, `…_LIMIT` or `…_DECODE`.
 */
export function decodeSerfMessage(buf: Uint8Array, options: SerfDecodeOptions = {}): SerfMessage {
  if (!(buf instanceof Uint8Array)) throw serfError(SerfErrorCode.DECODE, 'serf: expected the message as a Uint8Array');
  if (buf.length < 1) throw serfError(SerfErrorCode.TRUNCATED, 'serf: empty message: expected at least a type byte');
  const max = options.maxMessageBytes ?? SERF_MAX_MESSAGE_BYTES;
  if (buf.length > max) {
    throw serfError(SerfErrorCode.LIMIT, `serf: message of ${buf.length} bytes is larger than the limit of ${max}; raise maxMessageBytes if the peer is trusted`);
  }
  const type = buf[0] as number;
  const body = buf.subarray(1);
  if (type === SerfMessageType.relay) {
    const [header, used] = decodeFirst(body, RelayHeader, 'relay header', options.msgpack);
    return { type, body: { header, message: new Uint8Array(body.subarray(used)) } };
  }
  const schema = schemaOf(type);
  if (!schema) {
    throw serfError(SerfErrorCode.UNKNOWN_TYPE, `serf: unknown message type ${serfMessageTypeName(type)}: expected 0 (leave) … 9 (relay)`);
  }
  const value: unknown = decodeFirst(body, schema, `${serfMessageTypeName(type)} message`, options.msgpack)[0];
  return { type, body: value } as SerfMessage;
}

function encodeBody(schema: AnySchema, body: unknown, what: string): Uint8Array {
  try {
    return encode(body, schema);
  } catch (err) {
    throw serfError(SerfErrorCode.ENCODE, `serf: cannot encode ${what}: ${err instanceof Error ? err.message : String(err)}`, err);
  }
}

/**
 * Decode the first msgpack object of `bytes` with `schema`, ignoring what follows (as Go's
 * stream decoder does); returns the value and the bytes it took.
 * @internal
 */
export function decodeFirst<S extends AnySchema>(bytes: Uint8Array, schema: S, what: string, limits: DecodeLimits | undefined): [Infer<S>, number] {
  let obj: Uint8Array | undefined;
  try {
    const dec = new MsgpackStreamDecoder({ ...limits, maxObjectBytes: Math.max(1, bytes.length) });
    dec.push(bytes);
    obj = dec.next();
  } catch (err) {
    throw decodeFailed(what, err);
  }
  if (!obj) throw serfError(SerfErrorCode.TRUNCATED, `serf: truncated ${what}: the input ended inside the msgpack body`);
  try {
    return [decode(obj, schema, limits), obj.length];
  } catch (err) {
    throw decodeFailed(what, err);
  }
}

function decodeFailed(what: string, err: unknown): MeshfedError {
  if (isSerfError(err)) return err;
  const code = (err as { code?: unknown } | null)?.code;
  const mapped = code === MsgpackErrorCode.TRUNCATED ? SerfErrorCode.TRUNCATED : code === MsgpackErrorCode.LIMIT ? SerfErrorCode.LIMIT : SerfErrorCode.DECODE;
  return serfError(mapped, `serf: malformed ${what}: ${err instanceof Error ? err.message : String(err)}`, err);
}
