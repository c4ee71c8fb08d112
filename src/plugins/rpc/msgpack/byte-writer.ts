/**
 * A growable output buffer that writes msgpack the way go-msgpack 0.5.x's default handle does
 * (the old spec: strings and byte slices are both "raw", `a0-bf`/`da`/`db`, never `d9` or bin;
 * integers in their smallest encoding by value, non-negative values always unsigned;
 * shared/spec/hashicorp-wire.md §8).
 *
 * The buffer is a slab: {@link ByteWriter.take} hands out the bytes written since the last take
 * without copying and never writes over them again, so a socket may keep them until flushed.
 */

const INITIAL_SIZE = 16 * 1024;
/** When fewer bytes than this are left after a take, the next write starts a fresh slab. */
const MIN_TAIL = 1024;
const TWO_32 = 4294967296;

/** @internal msgpack writer over a growable slab of memory. */
export class ByteWriter {
  buf: Buffer;
  pos = 0;
  /** Start of the bytes not yet handed out by {@link take}. */
  start = 0;

  constructor(initialSize = INITIAL_SIZE) {
    this.buf = Buffer.allocUnsafe(initialSize);
  }

  /** Bytes written since the last take. */
  get length(): number {
    return this.pos - this.start;
  }

  /** Make room for `n` more bytes. */
  ensure(n: number): void {
    if (this.pos + n > this.buf.length) this.#grow(n);
  }

  #grow(n: number): void {
    const pending = this.pos - this.start;
    let size = Math.max(INITIAL_SIZE, this.buf.length);
    while (size < pending + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, this.start, this.pos);
    this.buf = next;
    this.start = 0;
    this.pos = pending;
  }

  /**
   * The bytes written since the last take, as a view into the slab (no copy). The writer never
   * writes to those bytes again.
   */
  take(): Buffer {
    const out = this.buf.subarray(this.start, this.pos);
    if (this.buf.length - this.pos < MIN_TAIL) {
      this.buf = Buffer.allocUnsafe(Math.max(INITIAL_SIZE, this.buf.length));
      this.pos = 0;
    }
    this.start = this.pos;
    return out;
  }

  /** Forget everything written after `mark` (a former `pos`), e.g. after a failed encode. */
  rewind(mark: number): void {
    this.pos = mark;
  }

  u8(b: number): void {
    this.ensure(1);
    this.buf[this.pos++] = b;
  }

  /** A type byte followed by a big-endian 16-bit value. */
  u8u16(b: number, v: number): void {
    this.ensure(3);
    const buf = this.buf;
    let p = this.pos;
    buf[p++] = b;
    buf[p++] = v >>> 8;
    buf[p++] = v & 0xff;
    this.pos = p;
  }

  /** A type byte followed by a big-endian 32-bit value. */
  u8u32(b: number, v: number): void {
    this.ensure(5);
    const buf = this.buf;
    let p = this.pos;
    buf[p++] = b;
    buf[p++] = v >>> 24;
    buf[p++] = (v >>> 16) & 0xff;
    buf[p++] = (v >>> 8) & 0xff;
    buf[p++] = v & 0xff;
    this.pos = p;
  }

  /** Raw bytes. */
  bytes(src: Uint8Array): void {
    this.ensure(src.length);
    this.buf.set(src, this.pos);
    this.pos += src.length;
  }

  nil(): void {
    this.u8(0xc0);
  }

  bool(v: boolean): void {
    this.u8(v ? 0xc3 : 0xc2);
  }

  float64(v: number): void {
    this.ensure(9);
    this.buf[this.pos] = 0xcb;
    this.buf.writeDoubleBE(v, this.pos + 1);
    this.pos += 9;
  }

  float32(v: number): void {
    this.ensure(5);
    this.buf[this.pos] = 0xca;
    this.buf.writeFloatBE(v, this.pos + 1);
    this.pos += 5;
  }

  /** A non-negative safe integer, smallest encoding (`00-7f`, `cc`, `cd`, `ce`, `cf`). */
  uint(v: number): void {
    if (v < 0x80) this.u8(v);
    else if (v < 0x100) {
      this.ensure(2);
      this.buf[this.pos++] = 0xcc;
      this.buf[this.pos++] = v;
    } else if (v < 0x10000) this.u8u16(0xcd, v);
    else if (v < TWO_32) this.u8u32(0xce, v);
    else {
      const hi = Math.floor(v / TWO_32);
      this.u8u32(0xcf, hi);
      this.#u32(v - hi * TWO_32);
    }
  }

  /** A safe integer, smallest encoding; non-negative values are written unsigned, like Go. */
  int(v: number): void {
    if (v >= 0) this.uint(v);
    else if (v >= -32) this.u8(v & 0xff);
    else if (v >= -128) {
      this.ensure(2);
      this.buf[this.pos++] = 0xd0;
      this.buf[this.pos++] = v & 0xff;
    } else if (v >= -32768) this.u8u16(0xd1, v & 0xffff);
    else if (v >= -2147483648) this.u8u32(0xd2, v >>> 0);
    else {
      const hi = Math.floor(v / TWO_32);
      this.u8u32(0xd3, hi >>> 0);
      this.#u32(v - hi * TWO_32);
    }
  }

  /** A bigint in the int64/uint64 range, smallest encoding. */
  bigint(v: bigint): void {
    if (v >= -9007199254740991n && v <= 9007199254740991n) {
      this.int(Number(v));
      return;
    }
    this.ensure(9);
    if (v > 0n) {
      this.buf[this.pos] = 0xcf;
      this.buf.writeBigUInt64BE(v, this.pos + 1);
    } else {
      this.buf[this.pos] = 0xd3;
      this.buf.writeBigInt64BE(v, this.pos + 1);
    }
    this.pos += 9;
  }

  #u32(v: number): void {
    this.ensure(4);
    const buf = this.buf;
    let p = this.pos;
    buf[p++] = v >>> 24;
    buf[p++] = (v >>> 16) & 0xff;
    buf[p++] = (v >>> 8) & 0xff;
    buf[p++] = v & 0xff;
    this.pos = p;
  }

  /** Raw header for `n` bytes, old spec: `a0-bf`, `da` (16-bit), `db` (32-bit); never `d9`. */
  rawHeader(n: number): void {
    if (n < 32) this.u8(0xa0 | n);
    else if (n < 0x10000) this.u8u16(0xda, n);
    else this.u8u32(0xdb, n);
  }

  arrayHeader(n: number): void {
    if (n < 16) this.u8(0x90 | n);
    else if (n < 0x10000) this.u8u16(0xdc, n);
    else this.u8u32(0xdd, n);
  }

  mapHeader(n: number): void {
    if (n < 16) this.u8(0x80 | n);
    else if (n < 0x10000) this.u8u16(0xde, n);
    else this.u8u32(0xdf, n);
  }

  /** A Go `[]byte` (raw). */
  raw(v: Uint8Array): void {
    this.rawHeader(v.length);
    this.bytes(v);
  }

  /** A Go `string`: UTF-8, raw header. */
  string(s: string): void {
    const len = s.length;
    if (len < 32) {
      // Fast path: short ASCII strings (method names, field names, datacenters) are copied
      // char by char; anything else falls through to the general path.
      this.ensure(len + 1);
      const buf = this.buf;
      const p0 = this.pos;
      let p = p0 + 1;
      let i = 0;
      for (; i < len; i++) {
        const c = s.charCodeAt(i);
        if (c >= 0x80) break;
        buf[p++] = c;
      }
      if (i === len) {
        buf[p0] = 0xa0 | len;
        this.pos = p;
        return;
      }
    }
    const n = Buffer.byteLength(s, 'utf8');
    this.rawHeader(n);
    this.ensure(n);
    this.buf.write(s, this.pos, n, 'utf8');
    this.pos += n;
  }
}
