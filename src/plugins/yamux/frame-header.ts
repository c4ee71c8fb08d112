/**
 * Frame header encoding and decoding as plain functions. The session's hot path does not use
 * these (it parses in place and writes headers into a shared slab); they exist for tools, tests
 * and anyone crafting frames by hand.
 */
import { HEADER_SIZE, MAX_U32, PROTO_VERSION } from './constants.js';

/** A decoded 12-byte frame header. */
export interface FrameHeader {
  /** Protocol version (0 for every valid frame). */
  readonly version: number;
  /** Frame type, see `FrameType`. */
  readonly type: number;
  /** Flag bits, see `Flag`. */
  readonly flags: number;
  /** Stream id (0 = the session). */
  readonly streamId: number;
  /** Payload length (data), window delta (window update), opaque value (ping) or code (go away). */
  readonly length: number;
}

/** Encode one header (version 0) into `target` at `offset` (a new 12-byte Buffer by default). */
export function encodeFrameHeader(type: number, flags: number, streamId: number, length: number, target: Buffer = Buffer.allocUnsafe(HEADER_SIZE), offset = 0): Buffer {
  if (streamId < 0 || streamId > MAX_U32 || length < 0 || length > MAX_U32) throw new RangeError('yamux stream id and length are u32 values');
  target[offset] = PROTO_VERSION;
  target[offset + 1] = type;
  target.writeUInt16BE(flags, offset + 2);
  target.writeUInt32BE(streamId, offset + 4);
  target.writeUInt32BE(length, offset + 8);
  return target;
}

/** Decode the header at `offset` of `source` (which must hold 12 bytes from there). */
export function decodeFrameHeader(source: Uint8Array, offset = 0): FrameHeader {
  if (source.length - offset < HEADER_SIZE) throw new RangeError(`a yamux header is ${HEADER_SIZE} bytes, only ${source.length - offset} given`);
  const view = new DataView(source.buffer, source.byteOffset + offset, HEADER_SIZE);
  return {
    version: view.getUint8(0),
    type: view.getUint8(1),
    flags: view.getUint16(2),
    streamId: view.getUint32(4),
    length: view.getUint32(8),
  };
}
