/**
 * Error codes of the serf message layer (`MESHFED_ERR_SERF_…`). Every error raised by
 * `gossip/serf` is a {@link MeshfedError} attributed to the `gossip` plugin. Bad bytes from a peer
 * are an error for that message only (STYLE.md §8): callers drop the message and keep serving.
 */
import { MeshfedError } from '../../../core/errors.js';

/** Stable error codes of the serf message layer. */
export const SerfErrorCode = Object.freeze({
  /** The bytes are not a well-formed serf message (bad msgpack, a field of the wrong type, …). */
  DECODE: 'MESHFED_ERR_SERF_DECODE',
  /** The input ended before the type byte or inside the msgpack body. */
  TRUNCATED: 'MESHFED_ERR_SERF_TRUNCATED',
  /** The first byte is not a serf message type (0 leave … 9 relay), or is not accepted there. */
  UNKNOWN_TYPE: 'MESHFED_ERR_SERF_UNKNOWN_TYPE',
  /** A size, length or nesting limit was hit (message bytes, collection length, depth). */
  LIMIT: 'MESHFED_ERR_SERF_LIMIT',
  /** A value given to an encoder does not fit the message schema (wrong type, out of range). */
  ENCODE: 'MESHFED_ERR_SERF_ENCODE',
  /** Tags that cannot be encoded (over memberlist's 512-byte meta limit) or a malformed 0xff tag blob. */
  TAGS: 'MESHFED_ERR_SERF_TAGS',
} as const);

/** A value of {@link SerfErrorCode}. */
export type SerfErrorCodeValue = (typeof SerfErrorCode)[keyof typeof SerfErrorCode];

/** A serf {@link MeshfedError}, attributed to the `gossip` plugin. */
export function serfError(code: SerfErrorCodeValue, message: string, cause?: unknown): MeshfedError {
  return new MeshfedError(code, message, { cause, plugin: 'gossip' });
}

/** True when `err` is a MeshfedError with a `MESHFED_ERR_SERF_…` code. */
export function isSerfError(err: unknown): err is MeshfedError {
  return err instanceof MeshfedError && err.code.startsWith('MESHFED_ERR_SERF_');
}
