/**
 * Error codes of the memberlist wire layer (`MESHFED_ERR_GOSSIP_…`). Every error raised by
 * `gossip/wire` is a {@link MeshfedError} attributed to the `gossip` plugin. Bad bytes from the
 * network are an error for that packet or connection only (STYLE.md §8): callers drop the
 * packet, or close the stream, and keep serving.
 */
import { MeshfedError } from '../../../core/errors.js';

/** Stable error codes of the gossip wire layer. */
export const GossipWireErrorCode = Object.freeze({
  /** The bytes are not a well-formed memberlist message (bad msgpack, wrong field type, …). */
  DECODE: 'MESHFED_ERR_GOSSIP_DECODE',
  /** The input ended before the message, frame or compressed stream did. */
  TRUNCATED: 'MESHFED_ERR_GOSSIP_TRUNCATED',
  /** The first byte is not a message type this layer knows or accepts in that place. */
  UNKNOWN_TYPE: 'MESHFED_ERR_GOSSIP_UNKNOWN_TYPE',
  /** A hasCrc packet whose CRC-32 does not match its payload. */
  CRC: 'MESHFED_ERR_GOSSIP_CRC',
  /** A compress wrapper that cannot be decompressed (unknown algorithm, invalid LZW code). */
  COMPRESS: 'MESHFED_ERR_GOSSIP_COMPRESS',
  /** A size, count or nesting limit was hit (decompressed size, node count, frame length). */
  LIMIT: 'MESHFED_ERR_GOSSIP_LIMIT',
  /** An encrypted packet or stream frame that no installed key can open, or a malformed one. */
  DECRYPT: 'MESHFED_ERR_GOSSIP_DECRYPT',
  /** An invalid key, or a keyring operation memberlist refuses (remove the primary key, …). */
  KEY: 'MESHFED_ERR_GOSSIP_KEY',
  /** A value given to an encoder does not fit the wire format (too many bytes for a u16 length, …). */
  ENCODE: 'MESHFED_ERR_GOSSIP_ENCODE',
} as const);

/** A value of {@link GossipWireErrorCode}. */
export type GossipWireErrorCodeValue = (typeof GossipWireErrorCode)[keyof typeof GossipWireErrorCode];

/** A gossip wire {@link MeshfedError}, attributed to the `gossip` plugin. */
export function gossipWireError(code: GossipWireErrorCodeValue, message: string, cause?: unknown): MeshfedError {
  return new MeshfedError(code, message, { cause, plugin: 'gossip' });
}

/** True when `err` is a MeshfedError with a `MESHFED_ERR_GOSSIP_…` code. */
export function isGossipWireError(err: unknown): err is MeshfedError {
  return err instanceof MeshfedError && err.code.startsWith('MESHFED_ERR_GOSSIP_');
}
