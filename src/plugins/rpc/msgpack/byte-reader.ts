/**
 * A bounds-checked msgpack reader with limits against hostile input. It accepts everything
 * go-msgpack 0.5.x decodes: old-spec raw (`a0-bf`, `da`, `db`) and new-spec `d9` str8 and
 * `c4-c6` bin for strings and byte slices alike (shared/spec/hashicorp-wire.md §8).
 *
 * Limits: nesting depth, elements per collection, and every length is checked against the
 * bytes actually left in the input before anything is allocated, so a decode never allocates
 * more than a small multiple of its input.
 */
import { LocatedMsgpackError } from './errors.js';
import { MsgpackErrorCode, type MsgpackErrorCodeValue } from './errors.js';

/** Limits applied while decoding untrusted bytes. */
export interface DecodeLimits {
  /** Deepest nesting of arrays/maps/structs (default 64). */
  readonly maxDepth?: number;
  /** Most elements (or map entries) in one array or map (default 1 048 576). */
  readonly maxCollectionLength?: number;
  /** Largest single msgpack object accepted from a stream, in bytes (default 64 MiB). */
  readonly maxObjectBytes?: number;
}

/** The defaults of {@link DecodeLimits}. */
export const DEFAULT_DECODE_LIMITS: Readonly<Required<DecodeLimits>> = Object.freeze({
  maxDepth: 64,
  maxCollectionLength: 1_048_576,
  maxObjectBytes: 64 * 1024 * 1024,
});

const TWO_32 = 4294967296;

/** Human name of the msgpack type a descriptor byte starts, for error messages. */
export function describeByte(b: number): string {
  if (b <= 0x7f || b >= 0xe0) return `int (0x${hex(b)})`;
  if (b <= 0x8f) return 'map';
  if (b <= 0x9f) return 'array';
  if (b <= 0xbf) return 'string/bytes';
  switch (b) {
    case 0xc0: return 'nil';
    case 0xc1: return 'reserved byte 0xc1';
    case 0xc2: case 0xc3: return 'bool';
    case 0xc4: case 0xc5: case 0xc6: return 'bin';
    case 0xca: case 0xcb: return 'float';
    case 0xcc: case 0xcd: case 0xce: case 0xcf: return `uint (0x${hex(b)})`;
    case 0xd0: case 0xd1: case 0xd2: case 0xd3: return `int (0x${hex(b)})`;
    case 0xd9: case 0xda: case 0xdb: return 'string/bytes';
    case 0xdc: case 0xdd: return 'array';
    case 0xde: case 0xdf: return 'map';
    default: return `ext (0x${hex(b)})`;
  }
}

function hex(b: number): string {
  return b.toString(16).padStart(2, '0');
}

/** @internal Cursor over one msgpack value (or a sequence), with limits. */
export class ByteReader {
  readonly buf: Buffer;
  pos: number;
  readonly end: number;
  readonly maxDepth: number;
  readonly maxCollectionLength: number;

  constructor(input: Uint8Array, limits: DecodeLimits = {}, start = 0, end = input.length) {
    this.buf = Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
    this.pos = start;
    this.end = end;
    this.maxDepth = limits.maxDepth ?? DEFAULT_DECODE_LIMITS.maxDepth;
    this.maxCollectionLength = limits.maxCollectionLength ?? DEFAULT_DECODE_LIMITS.maxCollectionLength;
  }

  /** An error at the current position. */
  fail(detail: string, code: MsgpackErrorCodeValue = MsgpackErrorCode.DECODE, at = this.pos - 1): LocatedMsgpackError {
    return new LocatedMsgpackError(code, `msgpack: ${detail}`, Math.max(0, at));
  }

  truncated(what: string, need: number): LocatedMsgpackError {
    return this.fail(`input ends inside ${what}: ${need} more byte(s) needed, ${this.end - this.pos} left`, MsgpackErrorCode.TRUNCATED, this.pos);
  }

  /** The next descriptor byte. */
  byte(): number {
    if (this.pos >= this.end) throw this.truncated('a value', 1);
    return this.buf[this.pos++]!;
  }

  need(n: number, what: string): void {
    if (this.end - this.pos < n) throw this.truncated(what, n);
  }

  u8(): number {
    this.need(1, 'a number');
    return this.buf[this.pos++]!;
  }

  u16(): number {
    this.need(2, 'a number');
    const b = this.buf;
    const p = this.pos;
    this.pos = p + 2;
    return (b[p]! << 8) | b[p + 1]!;
  }

  u32(): number {
    this.need(4, 'a number');
    const b = this.buf;
    const p = this.pos;
    this.pos = p + 4;
    return b[p]! * 0x1000000 + ((b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!);
  }

  /** uint64 as a number when ≤ 2^53-1, else a bigint. */
  u64(): number | bigint {
    const hi = this.u32();
    const lo = this.u32();
    const v = hi * TWO_32 + lo;
    if (Number.isSafeInteger(v)) return v;
    return (BigInt(hi) << 32n) | BigInt(lo);
  }

  /** int64 as a number when safe, else a bigint. */
  i64(): number | bigint {
    const hi = this.u32() | 0;
    const lo = this.u32();
    const v = hi * TWO_32 + lo;
    if (Number.isSafeInteger(v)) return v;
    return (BigInt(hi) << 32n) | BigInt(lo);
  }

  f32(): number {
    this.need(4, 'a float32');
    const v = this.buf.readFloatBE(this.pos);
    this.pos += 4;
    return v;
  }

  f64(): number {
    this.need(8, 'a float64');
    const v = this.buf.readDoubleBE(this.pos);
    this.pos += 8;
    return v;
  }

  /**
   * An integer of any msgpack width, after its descriptor `b`; `undefined` when `b` does not
   * start an integer.
   */
  intAfter(b: number): number | bigint | undefined {
    if (b <= 0x7f) return b;
    if (b >= 0xe0) return b - 0x100;
    switch (b) {
      case 0xcc: return this.u8();
      case 0xcd: return this.u16();
      case 0xce: return this.u32();
      case 0xcf: return this.u64();
      case 0xd0: return (this.u8() << 24) >> 24;
      case 0xd1: return (this.u16() << 16) >> 16;
      case 0xd2: return this.u32() | 0;
      case 0xd3: return this.i64();
      default: return undefined;
    }
  }

  /**
   * Length of a raw value (old-spec str or new-spec str8/bin) after its descriptor `b`, checked
   * against the bytes left; -1 when `b` is not a raw/bin descriptor.
   */
  rawLenAfter(b: number): number {
    let n: number;
    if (b >= 0xa0 && b <= 0xbf) n = b & 0x1f;
    else if (b === 0xda || b === 0xc5) n = this.u16();
    else if (b === 0xdb || b === 0xc6) n = this.u32();
    else if (b === 0xd9 || b === 0xc4) n = this.u8();
    else return -1;
    if (n > this.end - this.pos) throw this.fail(`string/bytes of ${n} bytes but only ${this.end - this.pos} left in the input`, MsgpackErrorCode.TRUNCATED);
    return n;
  }

  /** Element count of an array after its descriptor `b`, checked; -1 when not an array. */
  arrayLenAfter(b: number): number {
    let n: number;
    if ((b & 0xf0) === 0x90) n = b & 0x0f;
    else if (b === 0xdc) n = this.u16();
    else if (b === 0xdd) n = this.u32();
    else return -1;
    this.#checkCount(n, n, 'array');
    return n;
  }

  /** Entry count of a map after its descriptor `b`, checked; -1 when not a map. */
  mapLenAfter(b: number): number {
    let n: number;
    if ((b & 0xf0) === 0x80) n = b & 0x0f;
    else if (b === 0xde) n = this.u16();
    else if (b === 0xdf) n = this.u32();
    else return -1;
    this.#checkCount(n, 2 * n, 'map');
    return n;
  }

  #checkCount(n: number, minBytes: number, what: string): void {
    // Every element takes at least one byte: a count the remaining input cannot hold is a
    // truncated (or lying) input, refused before anything is allocated for it.
    if (minBytes > this.end - this.pos) {
      throw this.fail(`${what} of ${n} elements cannot fit in the ${this.end - this.pos} bytes left in the input`, MsgpackErrorCode.TRUNCATED);
    }
    if (n > this.maxCollectionLength) {
      throw this.fail(`${what} of ${n} elements exceeds the limit of ${this.maxCollectionLength} (maxCollectionLength)`, MsgpackErrorCode.LIMIT);
    }
  }

  /** Refuse a container that would nest deeper than the limit. */
  enter(depth: number): void {
    if (depth >= this.maxDepth) {
      throw this.fail(`nesting deeper than ${this.maxDepth} levels (maxDepth)`, MsgpackErrorCode.LIMIT);
    }
  }

  /** A copy of the next `n` bytes (never a view into the input, which may be reused). */
  copyBytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    out.set(this.buf.subarray(this.pos, this.pos + n));
    this.pos += n;
    return out;
  }

  /** The next `n` bytes as UTF-8 (invalid sequences become U+FFFD, as Node decodes). */
  utf8(n: number): string {
    const b = this.buf;
    const p = this.pos;
    this.pos = p + n;
    if (n < 24) {
      let s = '';
      for (let i = p; i < p + n; i++) {
        const c = b[i]!;
        if (c >= 0x80) return b.toString('utf8', p, p + n);
        s += String.fromCharCode(c);
      }
      return s;
    }
    return b.toString('utf8', p, p + n);
  }

  /** Skip one complete value whose descriptor is `b` (already read), at nesting `depth`. */
  skipAfter(b: number, depth: number): void {
    if (b <= 0x7f || b >= 0xe0 || b === 0xc0 || b === 0xc2 || b === 0xc3) return;
    const raw = this.rawLenAfter(b);
    if (raw >= 0) {
      this.pos += raw;
      return;
    }
    let n = this.arrayLenAfter(b);
    if (n >= 0) {
      if (n > 0) this.enter(depth);
      for (let i = 0; i < n; i++) this.skipAfter(this.byte(), depth + 1);
      return;
    }
    n = this.mapLenAfter(b);
    if (n >= 0) {
      if (n > 0) this.enter(depth);
      for (let i = 0; i < 2 * n; i++) this.skipAfter(this.byte(), depth + 1);
      return;
    }
    let size: number;
    switch (b) {
      case 0xcc: case 0xd0: size = 1; break;
      case 0xcd: case 0xd1: size = 2; break;
      case 0xce: case 0xd2: case 0xca: size = 4; break;
      case 0xcf: case 0xd3: case 0xcb: size = 8; break;
      case 0xd4: size = 2; break;
      case 0xd5: size = 3; break;
      case 0xd6: size = 5; break;
      case 0xd7: size = 9; break;
      case 0xd8: size = 17; break;
      case 0xc7: size = this.u8() + 1; break;
      case 0xc8: size = this.u16() + 1; break;
      case 0xc9: size = this.u32() + 1; break;
      default: throw this.fail(`invalid descriptor byte 0x${hex(b)}`);
    }
    this.need(size, describeByte(b));
    this.pos += size;
  }
}
