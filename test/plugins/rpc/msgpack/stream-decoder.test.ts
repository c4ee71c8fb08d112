/** Framing: consecutive msgpack objects out of a byte stream, however it is chunked. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { GoTime, MsgpackStreamDecoder, RequestHeader, encode, t } from '../../../../src/plugins/rpc/msgpack/index.js';
import { hex, wire } from './wire-notation.js';
import { prng } from '../../../../src/testing/prng.js';

const Obj = t.struct({ Name: t.string, Blob: t.bytes, List: t.list(t.any), When: t.time, N: t.int64 });

function objects(): Uint8Array[] {
  return [
    encode({ ServiceMethod: 'Status.Ping', Seq: 0 }, RequestHeader),
    wire('80'),
    wire('01'),
    wire('c0'),
    wire('cf ffffffffffffffff'),
    wire('da 0003 "abc"'),
    wire('d9 00'),
    wire('c7 03 05 010203'),
    wire('d8 01 00112233445566778899aabbccddeeff'),
    encode({ Name: 'x'.repeat(300), Blob: new Uint8Array(70_000).fill(0xc1), List: [[], {}, [1, [2, [3]]], null], When: GoTime.ZERO, N: -(2n ** 62n) }, Obj),
    wire('dc 0002 90 80'),
    wire('de 0001 a1"k" 91 92 01 02'),
    wire('90'),
  ];
}

function concat(parts: Uint8Array[]): Uint8Array {
  return Uint8Array.from(Buffer.concat(parts));
}

function drain(d: MsgpackStreamDecoder): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let f = d.next(); f; f = d.next()) out.push(f);
  return out;
}


describe('MsgpackStreamDecoder', () => {
  const objs = objects();
  const stream = concat(objs);

  test('one chunk: every object, in order, byte-exact', () => {
    const d = new MsgpackStreamDecoder();
    d.push(stream);
    assert.deepEqual(drain(d).map(hex), objs.map(hex));
    assert.equal(d.bufferedBytes, 0);
    assert.equal(d.midObject, false);
  });

  test('split at every single position', () => {
    const small = concat(objs.filter((o) => o.length < 100));
    for (let cut = 0; cut <= small.length; cut++) {
      const d = new MsgpackStreamDecoder();
      d.push(small.subarray(0, cut));
      const got = drain(d);
      d.push(small.subarray(cut));
      got.push(...drain(d));
      assert.equal(hex(concat(got)), hex(small), `cut at ${cut}`);
      assert.equal(got.length, objs.filter((o) => o.length < 100).length);
    }
  });

  test('one byte at a time', () => {
    const d = new MsgpackStreamDecoder();
    const got: Uint8Array[] = [];
    for (let i = 0; i < stream.length; i++) {
      d.push(stream.subarray(i, i + 1));
      got.push(...drain(d));
    }
    assert.deepEqual(got.map(hex), objs.map(hex));
  });

  test('random chunkings', () => {
    const next = prng(7);
    for (let round = 0; round < 200; round++) {
      const d = new MsgpackStreamDecoder();
      const got: Uint8Array[] = [];
      for (let at = 0; at < stream.length; ) {
        const size = 1 + (next() % (round % 2 ? 17 : 9000));
        d.push(stream.subarray(at, at + size));
        at += size;
        got.push(...drain(d));
      }
      assert.deepEqual(got.map(hex), objs.map(hex), `round ${round}`);
    }
  });

  test('an object inside one chunk is a view of it (no copy)', () => {
    const d = new MsgpackStreamDecoder();
    const chunk = Buffer.from(stream);
    d.push(chunk);
    const first = d.next();
    assert.ok(first);
    assert.equal(first.buffer, chunk.buffer);
  });

  test('a large object in many small chunks is assembled in linear time', () => {
    const big = encode(new Uint8Array(8 * 1024 * 1024).fill(0xab), t.bytes);
    const d = new MsgpackStreamDecoder();
    const started = process.hrtime.bigint();
    let frame: Uint8Array | undefined;
    for (let at = 0; at < big.length; at += 512) {
      d.push(big.subarray(at, at + 512));
      frame = d.next() ?? frame;
    }
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    assert.ok(frame);
    assert.equal(frame.length, big.length);
    assert.equal(frame[frame.length - 1], 0xab);
    // 16 384 chunks: a quadratic re-scan or re-copy would move ~70 GB and take minutes.
    assert.ok(ms < 5000, `took ${ms} ms`);
  });

  test('a length field split across chunks', () => {
    const obj = encode('y'.repeat(70_000), t.string); // db 00011170 …
    const d = new MsgpackStreamDecoder();
    d.push(obj.subarray(0, 2));
    assert.equal(d.next(), undefined);
    d.push(obj.subarray(2, 4));
    assert.equal(d.next(), undefined);
    d.push(obj.subarray(4));
    assert.equal(d.next()?.length, obj.length);
  });

  test('midObject and bufferedBytes report a partial object', () => {
    const d = new MsgpackStreamDecoder();
    d.push(wire('82 a3"Seq"'));
    assert.equal(d.next(), undefined);
    assert.equal(d.midObject, true);
    assert.equal(d.bufferedBytes, 5);
  });

  describe('limits', () => {
    test('an announced size above maxObjectBytes fails before the bytes arrive', () => {
      const d = new MsgpackStreamDecoder({ maxObjectBytes: 1024 });
      d.push(wire('db 7fffffff'));
      assert.throws(() => d.next(), { code: 'MESHFED_ERR_MSGPACK_LIMIT', message: /maxObjectBytes/ });
    });

    test('an object that grows past maxObjectBytes fails', () => {
      const d = new MsgpackStreamDecoder({ maxObjectBytes: 100 });
      d.push(wire('dc ffff'));
      d.push(new Uint8Array(200)); // 200 fixints, still inside the array
      assert.throws(() => d.next(), { code: 'MESHFED_ERR_MSGPACK_LIMIT' });
    });

    test('nesting deeper than maxDepth', () => {
      const d = new MsgpackStreamDecoder();
      d.push(new Uint8Array(1000).fill(0x91));
      assert.throws(() => d.next(), { code: 'MESHFED_ERR_MSGPACK_LIMIT', message: /maxDepth/ });
    });

    test('a collection longer than maxCollectionLength', () => {
      const d = new MsgpackStreamDecoder({ maxCollectionLength: 10 });
      d.push(wire('dc 000b'));
      assert.throws(() => d.next(), { code: 'MESHFED_ERR_MSGPACK_LIMIT', message: /11 elements/ });
    });

    test('an invalid byte fails, and the decoder stays failed', () => {
      const d = new MsgpackStreamDecoder();
      d.push(wire('01 c1 01'));
      assert.equal(hex(d.next()!), '01');
      assert.throws(() => d.next(), { code: 'MESHFED_ERR_MSGPACK_DECODE', message: /invalid descriptor byte 0xc1/ });
      assert.throws(() => d.next(), { code: 'MESHFED_ERR_MSGPACK_DECODE' });
      assert.throws(() => d.push(wire('01')), { code: 'MESHFED_ERR_MSGPACK_DECODE' });
    });
  });
});
