/**
 * Entry points of the codec: {@link encode} a value with a schema (deterministic, byte-exact
 * with go-msgpack 0.5.x for structs), {@link decode} exactly one msgpack object with limits.
 */
import { MeshfedError } from '../../../core/errors.js';
import { ByteReader, type DecodeLimits } from './byte-reader.js';
import { ByteWriter } from './byte-writer.js';
import { LocatedMsgpackError, MsgpackErrorCode, msgpackError } from './errors.js';
import type { AnySchema, Infer, InferInput } from './schema.js';

/**
 * Encode `value` as the Go type `schema` describes, the way go-msgpack's default handle would
 * (struct keys sorted; maps sorted too, for determinism). Throws a MeshfedError
 * `MESHFED_ERR_MSGPACK_ENCODE` naming the field path when the value does not fit.
 */
export function encode<S extends AnySchema>(value: InferInput<S>, schema: S): Uint8Array {
  const w = new ByteWriter(256);
  encodeInto(w, value, schema);
  return new Uint8Array(w.take());
}

/** @internal Encode into a writer; on failure the writer is rewound to where it was. */
export function encodeInto<S extends AnySchema>(w: ByteWriter, value: InferInput<S> | undefined, schema: S): void {
  const mark = w.pos;
  try {
    schema.write(w, value);
  } catch (err) {
    w.rewind(mark);
    throw asCodecError(err, MsgpackErrorCode.ENCODE, 'encode');
  }
}

/**
 * Decode exactly one msgpack object from `bytes` as the Go type `schema` describes. Unknown
 * struct keys are ignored; nil decodes to the zero value; trailing bytes are an error. Errors
 * are MeshfedErrors (`MESHFED_ERR_MSGPACK_DECODE`, `…_TRUNCATED`, `…_LIMIT`) that give the
 * field path and byte offset.
 */
export function decode<S extends AnySchema>(bytes: Uint8Array, schema: S, limits?: DecodeLimits): Infer<S> {
  const r = new ByteReader(bytes, limits);
  const value = decodeFrom(r, schema);
  if (r.pos !== r.end) {
    throw msgpackError(MsgpackErrorCode.DECODE, `msgpack: ${r.end - r.pos} trailing byte(s) after the value (byte ${r.pos})`);
  }
  return value;
}

/** Decode one value at the reader's position; the reader ends just after it (trailing bytes are left for the caller). */
export function decodeFrom<S extends AnySchema>(r: ByteReader, schema: S): Infer<S> {
  try {
    return schema.read(r, r.byte(), 0) as Infer<S>;
  } catch (err) {
    throw asCodecError(err, MsgpackErrorCode.DECODE, 'decode');
  }
}

function asCodecError(err: unknown, code: typeof MsgpackErrorCode.DECODE | typeof MsgpackErrorCode.ENCODE, what: string): MeshfedError {
  if (err instanceof LocatedMsgpackError || err instanceof MeshfedError) return err;
  // Not expected (a bug, or a RangeError from a hostile size): still a coded error, never a crash.
  return msgpackError(code, `msgpack: ${what} failed: ${err instanceof Error ? err.message : String(err)}`, err);
}
