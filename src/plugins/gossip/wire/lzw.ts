/**
 * LZW exactly as Go's `compress/lzw` with `lzw.LSB` order and literal width 8 — the only
 * compression memberlist uses (`compress{Algo: 0}`, hashicorp-wire.md §7). Byte-exact with Go in
 * both directions (checked against Go in test/interop/lzw.test.ts).
 *
 * Facts of Go's format that matter for byte-exactness:
 * - codes are packed least-significant bit first; clear = 256, EOF = 257; the code width starts
 *   at 9 bits and grows by one when the next code to assign reaches 512, 1024, 2048;
 * - the encoder always starts with a clear code; when the next code to assign would be 4095 it
 *   emits a clear code (still 12 bits wide) and starts over at 9 bits with an empty table;
 * - the decoder does not need a leading clear; once 4095 codes are assigned at 12 bits it stops
 *   assigning (it does not clear by itself) until the stream sends a clear code;
 * - a stream must end with the EOF code (bytes after it are ignored); running out of input
 *   first is an error ("unexpected EOF"), as is a code above the next one to assign.
 */
import { GossipWireErrorCode, gossipWireError } from './errors.js';

const LIT_WIDTH = 8;
const CLEAR = 1 << LIT_WIDTH; // 256
const EOF_CODE = CLEAR + 1; // 257
const MAX_WIDTH = 12;
const MAX_CODE = (1 << MAX_WIDTH) - 1; // 4095
const INVALID = 0xffff;

/** Default bound of {@link lzwDecompress}'s output: 20 MiB, memberlist's push-pull state limit. */
export const DEFAULT_MAX_DECOMPRESSED_BYTES = 20 * 1024 * 1024;

// Open-addressing table as Go's writer keeps it (the emitted codes do not depend on its layout,
// only on which (prefix, byte) pairs are present): entry = key << 12 | code, 0 = empty.
const TABLE_SIZE = 4 << 12;

/** Compress `input` as Go's `lzw.NewWriter(w, lzw.LSB, 8)` + one `Write` + `Close` would. */
export function lzwCompress(input: Uint8Array): Buffer {
  // Worst case: 12 bits per input byte plus a clear every ~3838 codes, plus clear/EOF/padding.
  const out = Buffer.allocUnsafe(Math.ceil((input.length * 12 + (Math.floor(input.length / 3000) + 3) * 12) / 8) + 4);
  let o = 0;
  let bits = 0;
  let nBits = 0;
  let width = LIT_WIDTH + 1;
  let hi = EOF_CODE;
  let overflow = 1 << (LIT_WIDTH + 1);
  // At most one code is added per input byte: small inputs get a small table (the emitted
  // codes do not depend on its size), so compressing a 100-byte packet does not zero 64 KiB.
  let size = 256;
  while (size < TABLE_SIZE && size < 2 * input.length) size <<= 1;
  const mask = size - 1;
  const table = new Uint32Array(size);

  const write = (c: number): void => {
    bits |= c << nBits;
    nBits += width;
    while (nBits >= 8) {
      out[o++] = bits & 0xff;
      bits >>>= 8;
      nBits -= 8;
    }
  };
  /** Go's incHi: true when the table was just reset (the code is not to be added). */
  const incHi = (): boolean => {
    hi++;
    if (hi === overflow) {
      width++;
      overflow <<= 1;
    }
    if (hi === MAX_CODE) {
      write(CLEAR);
      width = LIT_WIDTH + 1;
      hi = EOF_CODE;
      overflow = CLEAR << 1;
      table.fill(0);
      return true;
    }
    return false;
  };

  if (input.length === 0) {
    write(CLEAR);
  } else {
    write(CLEAR);
    let code = input[0] as number;
    outer: for (let i = 1; i < input.length; i++) {
      const literal = input[i] as number;
      const key = (code << 8) | literal;
      let hash = ((key >>> 12) ^ key) & mask;
      for (let h = hash, e = table[h] as number; e !== 0; ) {
        if (key === e >>> 12) {
          code = e & MAX_CODE;
          continue outer;
        }
        h = (h + 1) & mask;
        e = table[h] as number;
      }
      write(code);
      code = literal;
      if (incHi()) continue;
      while (table[hash] !== 0) hash = (hash + 1) & mask;
      table[hash] = ((key << 12) | hi) >>> 0;
    }
    write(code);
    incHi();
  }
  write(EOF_CODE);
  if (nBits > 0) out[o++] = bits & 0xff;
  return out.subarray(0, o);
}

/** Options of {@link lzwDecompress}. */
export interface LzwDecompressOptions {
  /** Refuse (MESHFED_ERR_GOSSIP_LIMIT) output larger than this; default {@link DEFAULT_MAX_DECOMPRESSED_BYTES}. */
  readonly maxOutputBytes?: number;
}

/**
 * Decompress a Go `compress/lzw` (LSB, literal width 8) stream. Never allocates more than
 * `maxOutputBytes` (plus a 4 KiB chunk); errors are MESHFED_ERR_GOSSIP_COMPRESS (invalid code),
 * MESHFED_ERR_GOSSIP_TRUNCATED (no EOF code) or MESHFED_ERR_GOSSIP_LIMIT.
 */
export function lzwDecompress(input: Uint8Array, options: LzwDecompressOptions = {}): Buffer {
  const max = options.maxOutputBytes ?? DEFAULT_MAX_DECOMPRESSED_BYTES;
  // Codes above the literals are added at most once per code read (9+ bits each).
  const tableSize = Math.min(1 << MAX_WIDTH, EOF_CODE + 2 + Math.ceil((input.length * 8) / 9));
  const suffix = new Uint8Array(tableSize);
  const prefix = new Uint16Array(tableSize);
  const scratch = new Uint8Array(tableSize);
  let out = Buffer.allocUnsafe(Math.min(max, Math.max(64, input.length * 4)) + 1);
  let o = 0;
  let ip = 0;
  let bits = 0;
  let nBits = 0;
  let width = LIT_WIDTH + 1;
  let hi = EOF_CODE;
  let overflow = 1 << width;
  let last = INVALID;

  const ensure = (n: number): void => {
    if (o + n > max) {
      throw gossipWireError(GossipWireErrorCode.LIMIT, `lzw: decompressed data is larger than the limit of ${max} bytes; raise maxOutputBytes if the peer is trusted`);
    }
    if (o + n > out.length) {
      const bigger = Buffer.allocUnsafe(Math.min(max, Math.max(out.length * 2, o + n)));
      out.copy(bigger, 0, 0, o);
      out = bigger;
    }
  };

  for (;;) {
    while (nBits < width) {
      if (ip >= input.length) {
        throw gossipWireError(GossipWireErrorCode.TRUNCATED, `lzw: unexpected EOF: the compressed data (${input.length} bytes) ended without an EOF code`);
      }
      bits |= (input[ip++] as number) << nBits;
      nBits += 8;
    }
    const code = bits & ((1 << width) - 1);
    bits >>>= width;
    nBits -= width;

    if (code < CLEAR) {
      ensure(1);
      out[o++] = code;
      if (last !== INVALID) {
        suffix[hi] = code;
        prefix[hi] = last;
      }
    } else if (code === CLEAR) {
      width = LIT_WIDTH + 1;
      hi = EOF_CODE;
      overflow = 1 << width;
      last = INVALID;
      continue;
    } else if (code === EOF_CODE) {
      return out.subarray(0, o);
    } else if (code <= hi) {
      // Walk the chain backwards into `scratch`, ending at index i (chains are < 4096 long).
      let c = code;
      let i = scratch.length - 1;
      if (code === hi && last !== INVALID) {
        // KwKwK: the code being defined now; its last byte is the first byte of `last`.
        c = last;
        while (c >= CLEAR) c = prefix[c] as number;
        scratch[i--] = c;
        c = last;
      }
      while (c >= CLEAR) {
        scratch[i--] = suffix[c] as number;
        c = prefix[c] as number;
      }
      scratch[i] = c;
      const n = scratch.length - i;
      ensure(n);
      out.set(scratch.subarray(i), o);
      o += n;
      if (last !== INVALID) {
        suffix[hi] = c;
        prefix[hi] = last;
      }
    } else {
      throw gossipWireError(GossipWireErrorCode.COMPRESS, `lzw: invalid code ${code} (next code to assign is ${hi}) at byte ${ip} of the compressed data`);
    }
    last = code;
    hi++;
    if (hi >= overflow) {
      if (width === MAX_WIDTH) {
        last = INVALID;
        hi--;
      } else {
        width++;
        overflow = 1 << width;
      }
    }
  }
}
