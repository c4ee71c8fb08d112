/**
 * Framing for msgpack streams: net/rpc over msgpackrpc writes header and body as consecutive
 * msgpack objects with no length prefix (hashicorp-wire.md §9), so the only way to find where
 * one ends is to walk its structure. {@link MsgpackStreamDecoder} does that incrementally: it
 * keeps the scan state (open containers, bytes left to skip, a split length field) across
 * chunks, so each byte is looked at once however the stream is chunked, and an object split
 * across chunks is copied once when it completes (an object inside one chunk is a zero-copy
 * view). String and binary payloads are skipped, not scanned.
 *
 * Limits: nesting depth, elements per collection and bytes per object, so a hostile peer can
 * neither make it recurse nor make it buffer without bound.
 */
import { DEFAULT_DECODE_LIMITS, type DecodeLimits } from './byte-reader.js';
import { MsgpackErrorCode, msgpackError } from './errors.js';
import type { MeshfedError } from '../../../core/errors.js';

/** What a pending length field announces. */
const enum Pending {
  Raw,
  Ext,
  Array,
  Map,
}

/** Splits a byte stream into complete msgpack objects. */
export class MsgpackStreamDecoder {
  readonly #maxDepth: number;
  readonly #maxLen: number;
  readonly #maxBytes: number;
  /** Unconsumed chunks; the current object starts at `#chunks[0][#headOff]`. */
  #chunks: Uint8Array[] = [];
  #headOff = 0;
  /** Scan position: chunk index and offset within it. */
  #ci = 0;
  #co = 0;
  /** Bytes of the current object scanned so far. */
  #objBytes = 0;
  /** Bytes buffered and not yet returned by {@link next}. */
  #buffered = 0;
  /** Elements still expected by each open container (maps count keys and values). */
  readonly #stack: number[] = [];
  /** Payload bytes still to skip. */
  #skip = 0;
  /** Bytes of a length field still to read, what it announces, and its value so far. */
  #hdrLeft = 0;
  #hdrKind = Pending.Raw;
  #hdrVal = 0;
  #failed: MeshfedError | undefined;

  constructor(limits: DecodeLimits = {}) {
    this.#maxDepth = limits.maxDepth ?? DEFAULT_DECODE_LIMITS.maxDepth;
    this.#maxLen = limits.maxCollectionLength ?? DEFAULT_DECODE_LIMITS.maxCollectionLength;
    this.#maxBytes = limits.maxObjectBytes ?? DEFAULT_DECODE_LIMITS.maxObjectBytes;
  }

  /** Bytes received and not yet returned as complete objects (a partial object included). */
  get bufferedBytes(): number {
    return this.#buffered;
  }

  /** Whether the decoder is in the middle of an object (an EOF now would truncate it). */
  get midObject(): boolean {
    return this.#objBytes > 0 || this.#buffered > 0;
  }

  /** Append received bytes. The chunk must not be modified afterwards (it is not copied). */
  push(chunk: Uint8Array): void {
    if (this.#failed) throw this.#failed;
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
  }

  /**
   * The next complete object's bytes, or `undefined` until more bytes are pushed. Throws a
   * MeshfedError (`MESHFED_ERR_MSGPACK_DECODE` / `…_LIMIT`) when the stream is not msgpack or
   * breaks a limit; the decoder then stays failed (the stream cannot be resynchronised).
   */
  next(): Uint8Array | undefined {
    if (this.#failed) throw this.#failed;
    const chunks = this.#chunks;
    for (;;) {
      let c = chunks[this.#ci];
      while (c !== undefined && this.#co >= c.length) {
        c = chunks[++this.#ci];
        this.#co = 0;
      }
      if (c === undefined) return undefined;
      if (this.#skip > 0) {
        const k = Math.min(this.#skip, c.length - this.#co);
        this.#co += k;
        this.#skip -= k;
        this.#objBytes += k;
        if (this.#skip > 0) continue;
      } else if (this.#hdrLeft > 0) {
        this.#hdrVal = this.#hdrVal * 256 + c[this.#co++]!;
        this.#objBytes++;
        if (--this.#hdrLeft > 0) continue;
        this.#lengthKnown();
      } else {
        // Fast loop over descriptors inside the current chunk; payloads that end inside the
        // chunk are skipped here, only one that runs past it goes through the slow path.
        const len = c.length;
        let co = this.#co;
        let objBytes = this.#objBytes;
        const stack = this.#stack;
        let done = false;
        while (co < len) {
          const b = c[co++]!;
          objBytes++;
          if (stack.length > 0) stack[stack.length - 1]!--;
          let payload = 0;
          if (b <= 0x7f || b >= 0xe0 || b === 0xc0 || b === 0xc2 || b === 0xc3) {
            // no payload
          } else if (b >= 0xa0 && b <= 0xbf) {
            payload = b & 0x1f;
          } else if (b >= 0x90 && b <= 0x9f) {
            this.#open(b & 0x0f, 1);
          } else if (b >= 0x80 && b <= 0x8f) {
            this.#open(b & 0x0f, 2);
          } else {
            this.#objBytes = objBytes;
            this.#descriptor(b);
            const k = this.#hdrLeft;
            if (k > 0) {
              if (co + k > len) break; // the length field continues in the next chunk
              // The whole length field is here: read it at once.
              let v = 0;
              for (let i = 0; i < k; i++) v = v * 256 + c[co + i]!;
              co += k;
              objBytes += k;
              this.#hdrLeft = 0;
              this.#hdrVal = v;
              this.#objBytes = objBytes;
              this.#lengthKnown();
            }
            payload = this.#skip;
            this.#skip = 0;
          }
          if (payload > 0) {
            if (co + payload > len) {
              this.#skip = payload - (len - co);
              objBytes += len - co;
              co = len;
              break;
            }
            co += payload;
            objBytes += payload;
          }
          while (stack.length > 0 && stack[stack.length - 1] === 0) stack.pop();
          if (stack.length === 0) {
            done = true;
            break;
          }
        }
        this.#co = co;
        this.#objBytes = objBytes;
        if (objBytes > this.#maxBytes) this.#tooBig();
        if (done) return this.#emit();
        continue;
      }
      if (this.#objBytes > this.#maxBytes) this.#tooBig();
      // A payload or a length field just completed: the value is done unless a container opened.
      if (this.#skip === 0 && this.#hdrLeft === 0) {
        const stack = this.#stack;
        while (stack.length > 0 && stack[stack.length - 1] === 0) stack.pop();
        if (stack.length === 0) return this.#emit();
      }
    }
  }

  #open(n: number, per: number): void {
    if (n === 0) return;
    if (n > this.#maxLen) this.#fail(MsgpackErrorCode.LIMIT, `msgpack: ${per === 2 ? 'map' : 'array'} of ${n} elements exceeds the limit of ${this.#maxLen} (maxCollectionLength)`);
    if (this.#stack.length >= this.#maxDepth) this.#fail(MsgpackErrorCode.LIMIT, `msgpack: nesting deeper than ${this.#maxDepth} levels (maxDepth)`);
    this.#stack.push(n * per);
  }

  #descriptor(b: number): void {
    switch (b) {
      case 0xcc: case 0xd0: this.#skip = 1; return;
      case 0xcd: case 0xd1: this.#skip = 2; return;
      case 0xce: case 0xd2: case 0xca: this.#skip = 4; return;
      case 0xcf: case 0xd3: case 0xcb: this.#skip = 8; return;
      case 0xd4: this.#skip = 2; return;
      case 0xd5: this.#skip = 3; return;
      case 0xd6: this.#skip = 5; return;
      case 0xd7: this.#skip = 9; return;
      case 0xd8: this.#skip = 17; return;
      case 0xc4: case 0xd9: this.#length(1, Pending.Raw); return;
      case 0xc5: case 0xda: this.#length(2, Pending.Raw); return;
      case 0xc6: case 0xdb: this.#length(4, Pending.Raw); return;
      case 0xc7: this.#length(1, Pending.Ext); return;
      case 0xc8: this.#length(2, Pending.Ext); return;
      case 0xc9: this.#length(4, Pending.Ext); return;
      case 0xdc: this.#length(2, Pending.Array); return;
      case 0xdd: this.#length(4, Pending.Array); return;
      case 0xde: this.#length(2, Pending.Map); return;
      case 0xdf: this.#length(4, Pending.Map); return;
      default:
        this.#fail(MsgpackErrorCode.DECODE, `msgpack: invalid descriptor byte 0x${b.toString(16)} at byte ${this.#objBytes - 1} of an object`);
    }
  }

  #length(bytes: number, kind: Pending): void {
    this.#hdrLeft = bytes;
    this.#hdrKind = kind;
    this.#hdrVal = 0;
  }

  #lengthKnown(): void {
    const n = this.#hdrVal;
    switch (this.#hdrKind) {
      case Pending.Raw:
      case Pending.Ext: {
        const size = this.#hdrKind === Pending.Ext ? n + 1 : n;
        if (this.#objBytes + size > this.#maxBytes) {
          this.#fail(MsgpackErrorCode.LIMIT, `msgpack: a ${size}-byte string/bytes value makes the object larger than ${this.#maxBytes} bytes (maxObjectBytes)`);
        }
        this.#skip = size;
        return;
      }
      case Pending.Array:
        this.#open(n, 1);
        return;
      case Pending.Map:
        this.#open(n, 2);
        return;
    }
  }

  #tooBig(): never {
    this.#fail(MsgpackErrorCode.LIMIT, `msgpack: object larger than ${this.#maxBytes} bytes (maxObjectBytes)`);
  }

  #fail(code: typeof MsgpackErrorCode.DECODE | typeof MsgpackErrorCode.LIMIT, message: string): never {
    this.#failed = msgpackError(code, message);
    this.#chunks = [];
    this.#buffered = 0;
    throw this.#failed;
  }

  /** Cut the completed object out of the chunk list. */
  #emit(): Uint8Array {
    const chunks = this.#chunks;
    const size = this.#objBytes;
    let out: Uint8Array;
    if (this.#ci === 0) {
      out = chunks[0]!.subarray(this.#headOff, this.#co);
    } else {
      out = Buffer.allocUnsafe(size);
      let at = 0;
      const first = chunks[0]!;
      out.set(first.subarray(this.#headOff), 0);
      at += first.length - this.#headOff;
      for (let i = 1; i < this.#ci; i++) {
        out.set(chunks[i]!, at);
        at += chunks[i]!.length;
      }
      out.set(chunks[this.#ci]!.subarray(0, this.#co), at);
      chunks.splice(0, this.#ci);
      this.#ci = 0;
    }
    this.#headOff = this.#co;
    if (this.#co >= chunks[0]!.length) {
      chunks.shift();
      this.#headOff = 0;
      this.#co = 0;
    }
    this.#buffered -= size;
    this.#objBytes = 0;
    return out;
  }
}
