/**
 * LZW (Go compress/lzw, LSB, literal width 8): vectors printed by Go's own writer, round trips on
 * random and repetitive data (well past 4096 codes, so the 12-bit reset happens many times),
 * bounded output and invalid streams. Byte-exactness against live Go is in test/interop/lzw.test.ts.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { GossipWireErrorCode, lzwCompress, lzwDecompress } from '../../../../src/plugins/gossip/wire/index.js';
import { hex } from '../../rpc/msgpack/wire-notation.js';
import { prng } from '../../../../src/testing/prng.js';

const code = (c: string) => (err: unknown): boolean => (err as { code?: string }).code === c;


describe('lzw', () => {
  test('vectors from Go compress/lzw (lzw.NewWriter(w, lzw.LSB, 8))', () => {
    assert.equal(hex(lzwCompress(Buffer.from('TOBEORNOTTOBEORTOBEORNOT'))), '00a93c1152e48914274fa80824687061c183090302');
    assert.equal(hex(lzwCompress(new Uint8Array(0))), '000302'); // clear, EOF
    assert.equal(lzwDecompress(Buffer.from('00a93c1152e48914274fa80824687061c183090302', 'hex')).toString(), 'TOBEORNOTTOBEORTOBEORNOT');
    assert.equal(lzwDecompress(Buffer.from('000302', 'hex')).length, 0);
  });

  test('round trips: random, repetitive, mixed, every length around the 4096-code reset', () => {
    const next = prng(42);
    const inputs: Uint8Array[] = [
      Uint8Array.of(0), Uint8Array.of(255, 255), randomBytes(1), randomBytes(5000), randomBytes(70_000),
      new Uint8Array(200_000), Buffer.alloc(300_000, 'abcabcabd'),
      Uint8Array.from({ length: 100_000 }, () => next() % 3),
      Uint8Array.from({ length: 50_000 }, (_, i) => (i % 700 < 350 ? next() & 0xff : 65)),
    ];
    // Random bytes emit about one code per byte: lengths around 3838 codes hit the reset exactly.
    for (let n = 3820; n < 3860; n++) inputs.push(randomBytes(n));
    for (const input of inputs) {
      const c = lzwCompress(input);
      const back = lzwDecompress(c, { maxOutputBytes: input.length });
      assert.equal(back.length, input.length);
      assert.ok(back.equals(input), `round trip of ${input.length} bytes`);
    }
    // Repetitive data compresses well.
    assert.ok(lzwCompress(new Uint8Array(200_000)).length < 2_000);
  });

  test('the output bound is enforced before allocating', () => {
    const zeros = lzwCompress(new Uint8Array(1_000_000));
    assert.throws(() => lzwDecompress(zeros, { maxOutputBytes: 999_999 }), code(GossipWireErrorCode.LIMIT));
    assert.equal(lzwDecompress(zeros, { maxOutputBytes: 1_000_000 }).length, 1_000_000);
  });

  test('invalid streams are coded errors', () => {
    const ok = lzwCompress(Buffer.from('hello hello hello hello'));
    for (let cut = 0; cut < ok.length - 1; cut++) {
      assert.throws(() => lzwDecompress(ok.subarray(0, cut)), code(GossipWireErrorCode.TRUNCATED), `cut ${cut}`);
    }
    // clear, then code 300 when the next code to assign is 258.
    const bad = Buffer.alloc(4);
    bad.writeUInt32LE(256 | (300 << 9));
    assert.throws(() => lzwDecompress(bad), code(GossipWireErrorCode.COMPRESS));
    const next = prng(7);
    for (let i = 0; i < 2000; i++) {
      const junk = Uint8Array.from({ length: next() % 64 }, () => next() & 0xff);
      try {
        lzwDecompress(junk, { maxOutputBytes: 1 << 16 });
      } catch (err) {
        assert.match((err as { code: string }).code, /^MESHFED_ERR_GOSSIP_(TRUNCATED|COMPRESS|LIMIT)$/);
      }
    }
  });

  test('bytes after the EOF code are ignored, as Go does', () => {
    const c = Buffer.concat([lzwCompress(Buffer.from('abc')), Buffer.from([1, 2, 3])]);
    assert.equal(lzwDecompress(c).toString(), 'abc');
  });
});
