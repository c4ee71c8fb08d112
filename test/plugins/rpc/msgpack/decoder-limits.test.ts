/**
 * Hostile input: garbage, deep nesting, truncation, lying lengths. Every failure must be a coded
 * MeshfedError with a clear message — never a crash, a stack overflow or a huge allocation.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MeshfedError } from '../../../../src/core/errors.js';
import { GoTime, decode, encode, t, type AnySchema } from '../../../../src/plugins/rpc/msgpack/index.js';
import { wire } from './wire-notation.js';
import { prng } from '../../../../src/testing/prng.js';

const Inner = t.struct({ Name: t.string, Data: t.bytes, When: t.time, Tags: t.map(t.string) });
const Sample = t.struct({
  Str: t.string,
  Bin: t.bytes,
  N: t.int,
  U: t.uint64,
  F: t.float64,
  B: t.bool,
  D: t.duration,
  L: t.list(Inner),
  M: t.map(t.list(t.int)),
  P: t.nullable(Inner),
  A: t.any,
});

const sample = encode(
  {
    Str: 'héllo',
    Bin: Uint8Array.of(0xff, 0x00, 0xfe),
    N: -70000,
    U: 2n ** 63n,
    F: 2.5,
    B: true,
    D: 1_500_000_000,
    L: [{ Name: 'a', Data: Uint8Array.of(1), When: GoTime.parse('2024-01-02T03:04:05.1Z'), Tags: { k: 'v' } }],
    M: { x: [1, 2, 300] },
    P: { Name: 'p' },
    A: [1, 'two', { three: [3] }],
  },
  Sample,
);


const CODES = new Set(['MESHFED_ERR_MSGPACK_DECODE', 'MESHFED_ERR_MSGPACK_TRUNCATED', 'MESHFED_ERR_MSGPACK_LIMIT']);

function expectCodedFailureOrValue(bytes: Uint8Array, schema: Parameters<typeof decode>[1]): string {
  try {
    decode(bytes, schema);
    return 'ok';
  } catch (err) {
    assert.ok(err instanceof MeshfedError, `not a MeshfedError: ${String(err)}`);
    assert.ok(CODES.has(err.code), `unexpected code ${err.code}: ${err.message}`);
    assert.match(err.message, /^msgpack: /);
    return err.code;
  }
}

describe('nesting depth', () => {
  test('deeper than maxDepth (64 by default) is refused with a LIMIT error', () => {
    const deep = new Uint8Array(100).fill(0x91);
    const bytes = new Uint8Array([...deep, 0x01]);
    assert.throws(() => decode(bytes, t.any), { code: 'MESHFED_ERR_MSGPACK_LIMIT', message: /nesting deeper than 64 levels \(maxDepth\)/ });
    // Exactly 64 levels are fine.
    assert.deepEqual(decode(new Uint8Array([...new Uint8Array(64).fill(0x91), 0x01]), t.any) !== undefined, true);
  });

  test('a million nested arrays: a bounded error, no stack overflow', () => {
    const bytes = new Uint8Array(1_000_001).fill(0x91);
    bytes[1_000_000] = 0xc0;
    assert.throws(() => decode(bytes, t.any), { code: 'MESHFED_ERR_MSGPACK_LIMIT' });
    // Also while skipping an unknown struct field, and inside typed lists.
    const skip = new Uint8Array([...wire('81 a7"Unknown"'), ...bytes]);
    assert.throws(() => decode(skip, t.struct({ X: t.int })), { code: 'MESHFED_ERR_MSGPACK_LIMIT' });
    let s: AnySchema = t.list(t.any);
    for (let i = 0; i < 70; i++) s = t.list(s);
    assert.throws(() => decode(bytes, s), { code: 'MESHFED_ERR_MSGPACK_LIMIT' });
  });

  test('maxDepth can be lowered', () => {
    assert.throws(() => decode(wire('91 91 91 01'), t.any, { maxDepth: 2 }), { code: 'MESHFED_ERR_MSGPACK_LIMIT' });
    assert.deepEqual(decode(wire('91 91 01'), t.any, { maxDepth: 2 }), [[1]]);
  });
});

describe('lengths are checked against the input before allocating', () => {
  for (const [name, bytes] of [
    ['array32 of 4 billion', wire('dd ffffffff 01')],
    ['map32 of 4 billion', wire('df ffffffff 01')],
    ['raw32 of 4 GiB', wire('db ffffffff 01')],
    ['bin32 of 4 GiB', wire('c6 ffffffff 01')],
    ['array16 of 65535 with 3 bytes', wire('dc ffff 010203')],
  ] as const) {
    test(`${name}: TRUNCATED at once`, () => {
      const schema = name.startsWith('raw') || name.startsWith('bin') ? t.bytes : t.any;
      assert.throws(() => decode(bytes, schema), { code: 'MESHFED_ERR_MSGPACK_TRUNCATED', message: /bytes left in the input|only \d+ left/ });
    });
  }

  test('maxCollectionLength', () => {
    const big = encode(Array.from({ length: 1000 }, (_, i) => i), t.list(t.int));
    assert.throws(() => decode(big, t.list(t.int), { maxCollectionLength: 999 }), {
      code: 'MESHFED_ERR_MSGPACK_LIMIT',
      message: /array of 1000 elements exceeds the limit of 999 \(maxCollectionLength\)/,
    });
    assert.equal(decode(big, t.list(t.int), { maxCollectionLength: 1000 }).length, 1000);
  });
});

describe('truncation and garbage', () => {
  test('every proper prefix of a valid message fails with TRUNCATED (and nothing else)', () => {
    assert.ok(sample.length > 100);
    for (let n = 0; n < sample.length; n++) {
      assert.throws(
        () => decode(sample.subarray(0, n), Sample),
        (err: unknown) => err instanceof MeshfedError && err.code === 'MESHFED_ERR_MSGPACK_TRUNCATED',
        `prefix of ${n} bytes`,
      );
    }
    assert.equal(decode(sample, Sample).Str, 'héllo');
  });

  test('the reserved byte c1 is refused', () => {
    assert.throws(() => decode(wire('c1'), t.any), { code: 'MESHFED_ERR_MSGPACK_DECODE', message: /invalid descriptor byte 0xc1/ });
    assert.throws(() => decode(wire('81 a1"X" c1'), t.struct({ Y: t.int })), { code: 'MESHFED_ERR_MSGPACK_DECODE' });
  });

  test('random garbage: a value or a coded error, for typed and untyped schemas', () => {
    const next = prng(0x5eed);
    const outcomes = new Map<string, number>();
    for (let i = 0; i < 5000; i++) {
      const len = next() % 64;
      const bytes = new Uint8Array(len);
      for (let j = 0; j < len; j++) bytes[j] = next() & 0xff;
      for (const schema of [t.any, Sample, t.list(t.string), t.map(t.bytes)] as const) {
        const o = expectCodedFailureOrValue(bytes, schema);
        outcomes.set(o, (outcomes.get(o) ?? 0) + 1);
      }
    }
    // The fuzzing must reach both successes and every kind of failure to mean anything.
    for (const k of ['ok', 'MESHFED_ERR_MSGPACK_DECODE', 'MESHFED_ERR_MSGPACK_TRUNCATED']) assert.ok((outcomes.get(k) ?? 0) > 0, `never saw ${k}`);
  });

  test('bit flips of a valid message: a value or a coded error', () => {
    const next = prng(42);
    for (let i = 0; i < 3000; i++) {
      const bytes = Uint8Array.from(sample);
      for (let k = 0; k < 1 + (next() % 3); k++) {
        const at = next() % bytes.length;
        bytes[at] = bytes[at]! ^ (1 << (next() % 8));
      }
      expectCodedFailureOrValue(bytes, Sample);
      expectCodedFailureOrValue(bytes, t.any);
    }
  });

  test('type confusion inside containers reports the path', () => {
    assert.throws(() => decode(wire('81 a1"L" 91 81 a4"When" 05'), Sample), { code: 'MESHFED_ERR_MSGPACK_DECODE', message: /at L\[0\]\.When/ });
    assert.throws(() => decode(wire('81 a1"M" 81 a1"x" 91 a1"?"'), Sample), { message: /at M\["x"\]\[0\]/ });
  });
});
