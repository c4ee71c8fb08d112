/** Helpers shared by the serf tests: hex, and hand-built go-msgpack (old spec) bytes. */

export const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
export const unhex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s.replace(/\s+/g, ''), 'hex'));

/** A go-msgpack 0.5 raw string (fixstr / `da` / `db`: no str8, no bin). */
export function raw(s: string | Uint8Array): Buffer {
  const b = typeof s === 'string' ? Buffer.from(s, 'utf8') : Buffer.from(s);
  if (b.length < 32) return Buffer.concat([Buffer.of(0xa0 | b.length), b]);
  if (b.length < 0x10000) return Buffer.concat([Buffer.of(0xda, b.length >> 8, b.length & 0xff), b]);
  const h = Buffer.alloc(5);
  h[0] = 0xdb;
  h.writeUInt32BE(b.length, 1);
  return Buffer.concat([h, b]);
}

/** A msgpack map header. */
export function mapHeader(n: number): Buffer {
  return n < 16 ? Buffer.of(0x80 | n) : Buffer.of(0xde, n >> 8, n & 0xff);
}

/** A msgpack array header. */
export function arrayHeader(n: number): Buffer {
  return n < 16 ? Buffer.of(0x90 | n) : Buffer.of(0xdc, n >> 8, n & 0xff);
}

export { prng } from '../../../../src/testing/prng.js';
