/** The schema DSL: TS types, round trips for every kind, Go's nil/zero semantics, encode errors. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { GoTime, decode, encode, t, type Infer, type InferInput } from '../../../../src/plugins/rpc/msgpack/index.js';
import { hex, wire } from './wire-notation.js';

/** Compile-time equality of two types. */
type Equals<A, B> = (<X>() => X extends A ? 1 : 2) extends <X>() => X extends B ? 1 : 2 ? true : false;
function assertType<_T extends true>(): void {}

const CheckServiceNode = t.struct({ Node: t.string, Checks: t.list(t.string) });
const FederationState = t.struct({
  Datacenter: t.string,
  MeshGateways: t.list(CheckServiceNode),
  UpdatedAt: t.time,
  PrimaryModifyIndex: t.uint64,
  Meta: t.map(t.string),
  Ptr: t.nullable(CheckServiceNode),
  Raw: t.bytes,
  Any: t.any,
});

describe('Infer / InferInput', () => {
  test('give the Go type’s TS shape', () => {
    type FS = Infer<typeof FederationState>;
    assertType<
      Equals<
        FS,
        {
          Datacenter: string;
          MeshGateways: { Node: string; Checks: string[] }[];
          UpdatedAt: GoTime;
          PrimaryModifyIndex: number | bigint;
          Meta: Record<string, string>;
          Ptr: { Node: string; Checks: string[] } | null;
          Raw: Uint8Array;
          Any: unknown;
        }
      >
    >();
    type In = InferInput<typeof FederationState>;
    // Every struct field is optional on input (missing = Go zero value).
    const minimal: In = {};
    const partial: In = { Datacenter: 'dc1', MeshGateways: [{ Node: 'n1' }] };
    assert.ok(minimal && partial);
    // A decoded value is always a valid input.
    const roundTrip: In = decode(encode(partial, FederationState), FederationState);
    assert.equal(roundTrip.Datacenter, 'dc1');
  });
});

describe('round trips', () => {
  const rt = <S extends Parameters<typeof encode>[1]>(name: string, schema: S, value: InferInput<S>, expected: Infer<S> = value as Infer<S>): void => {
    test(`${name}`, () => {
      const bytes = encode(value, schema);
      assert.deepEqual(decode(bytes, schema), expected);
      // Deterministic: the same value encodes to the same bytes, and re-encoding a decoded value is stable.
      assert.equal(hex(encode(decode(bytes, schema) as InferInput<S>, schema)), hex(encode(value, schema)));
    });
  };

  rt('string (ASCII, UTF-8, long)', t.list(t.string), ['', 'abc', 'héllo, 世界 🚀', 'x'.repeat(70_000)]);
  rt('bytes, non-UTF-8, never decoded as text', t.list(t.bytes), [new Uint8Array(0), Uint8Array.of(0xff, 0xfe, 0xc0, 0xc3, 0x28), new Uint8Array(70_000).fill(0x80)]);
  rt('bool', t.list(t.bool), [true, false]);
  rt('int (safe range)', t.list(t.int), [0, 1, -1, 127, -32, -33, 300, -200, 2 ** 31, -(2 ** 31) - 1, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER]);
  rt('uint8/16/32', t.struct({ A: t.uint8, B: t.uint16, C: t.uint32, D: t.int8, E: t.int16, F: t.int32 }), { A: 255, B: 65535, C: 4294967295, D: -128, E: -32768, F: -2147483648 });
  rt('uint64 beyond 2^53 is a bigint, below it a number', t.list(t.uint64), [0, 2 ** 53 - 1, 2n ** 53n, 2n ** 64n - 1n]);
  rt('int64 extremes', t.list(t.int64), [-(2n ** 63n), 2n ** 63n - 1n, -(2 ** 53) + 1]);
  rt('bigint input that fits a number decodes as a number', t.uint64, 42n, 42);
  rt('float64 and float32', t.struct({ D: t.float64, F: t.float32 }), { D: Math.PI, F: 1.5 });
  rt('float64 special values', t.list(t.float64), [0, -0, Infinity, -Infinity, 1e-300]);
  rt('time: nanoseconds, before 1970, zero, fixed zone', t.list(t.time), [
    GoTime.parse('2024-01-02T03:04:05.123456789Z'),
    GoTime.parse('1901-12-13T20:45:52.000000001Z'),
    GoTime.parse('0001-01-01T00:00:00Z'),
    GoTime.parse('1969-12-31T23:59:59.999999999Z'),
    GoTime.parse('2024-06-01T12:00:00+02:00'),
    GoTime.parse('2024-06-01T12:00:00-09:30'),
  ]);
  rt('duration (ns), negative, and the MaxInt64 sentinel', t.list(t.duration), [0, 1_500_000_000, -5_000_000_000, 2 ** 53 - 1, 2 ** 63, -(2 ** 63)]);
  rt('list of structs', t.list(CheckServiceNode), [{ Node: 'a', Checks: ['c1'] }, { Node: 'b', Checks: [] }]);
  rt('map[string]T, keys with odd names', t.map(t.int), { b: 2, a: 1, '': 0, 'ü': 3, __proto__x: 4 });
  rt('nested struct with every kind', FederationState, {
    Datacenter: 'dc2',
    MeshGateways: [{ Node: 'gw1', Checks: ['serfHealth'] }],
    UpdatedAt: GoTime.parse('2024-01-02T03:04:05.123456789Z'),
    PrimaryModifyIndex: 2n ** 60n,
    Meta: { k: 'v' },
    Ptr: { Node: 'p', Checks: [] },
    Raw: Uint8Array.of(0, 0xff),
    Any: { list: [1, -2, 2.5, true, null, Uint8Array.of(0xff)], nested: { deep: 18446744073709551615n } },
  });
  rt('nullable: null ↔ c0', t.list(t.nullable(t.string)), [null, 'x']);
  rt('any: raw stays bytes (never a string)', t.any, 'abc', Uint8Array.from(Buffer.from('abc')));

  test('map keys are written sorted (deterministic, unlike Go map order)', () => {
    assert.equal(hex(encode({ b: 1, a: 2 }, t.map(t.int))), hex(wire('82 a1"a" 02 a1"b" 01')));
    assert.equal(hex(encode(new Map([['b', 1], ['a', 2]]), t.map(t.int))), hex(wire('82 a1"a" 02 a1"b" 01')));
  });

  test('a hostile __proto__ map key is an own property, never the prototype', () => {
    const m = decode(wire('81 a9"__proto__" 81 a1"x" 01'), t.map(t.map(t.int)));
    assert.equal(Object.getPrototypeOf(m), Object.prototype);
    assert.deepEqual(Object.keys(m), ['__proto__']);
    const a = decode(wire('81 a9"__proto__" 81 a8"polluted" c3'), t.any) as Record<string, unknown>;
    assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
    assert.equal(Object.getPrototypeOf(a), Object.prototype);
  });
});

describe('Go zero values and nil', () => {
  const S = t.struct({
    Str: t.string,
    Bin: t.bytes,
    Int: t.int,
    U64: t.uint64,
    F: t.float64,
    B: t.bool,
    T: t.time,
    D: t.duration,
    L: t.list(t.string),
    M: t.map(t.string),
    In: t.struct({ X: t.int }),
    P: t.nullable(t.struct({ X: t.int })),
    A: t.any,
  });

  test('missing input fields encode as Go zero values: nil slice/map/[]byte = c0, zero struct, zero time', () => {
    assert.equal(
      hex(encode({}, S)),
      hex(
        wire(`8d a1"A" c0 a1"B" c2 a3"Bin" c0 a1"D" 00 a1"F" cb0000000000000000 a2"In" 81 a1"X" 00 a3"Int" 00
          a1"L" c0 a1"M" c0 a1"P" c0 a3"Str" a0 a1"T" af01000000000000000000000000ffff a3"U64" 00`),
      ),
    );
  });

  test('empty non-nil values encode a0 / 90 / 80', () => {
    assert.equal(hex(encode(new Uint8Array(0), t.bytes)), 'a0');
    assert.equal(hex(encode([], t.list(t.int))), '90');
    assert.equal(hex(encode({}, t.map(t.int))), '80');
    assert.equal(hex(encode(null, t.list(t.int))), 'c0');
  });

  test('nil on the wire decodes to the zero value of every kind', () => {
    const allNil = wire(`8d a1"A" c0 a1"B" c0 a3"Bin" c0 a1"D" c0 a1"F" c0 a2"In" c0 a3"Int" c0
      a1"L" c0 a1"M" c0 a1"P" c0 a3"Str" c0 a1"T" c0 a3"U64" c0`);
    assert.deepEqual(decode(allNil, S), decode(encode({}, S), S));
    assert.deepEqual(decode(allNil, S), {
      A: null, B: false, Bin: new Uint8Array(0), D: 0, F: 0, In: { X: 0 }, Int: 0,
      L: [], M: {}, P: null, Str: '', T: GoTime.ZERO, U64: 0,
    });
  });

  test('missing keys decode as zero values; unknown keys (even nested containers) are skipped', () => {
    const bytes = wire('83 a7"Unknown" 92 81 a1"k" 93 01 02 03 c0 a3"Str" a2"hi" a4"Also" d7 01 0000000000000000');
    const v = decode(bytes, S);
    assert.equal(v.Str, 'hi');
    assert.deepEqual(v.L, []);
    assert.equal(v.T.isZero(), true);
  });

  test('keys in any order are accepted (Go writes them sorted; others may not)', () => {
    const v = decode(wire('82 a1"Y" 02 a1"X" 01'), t.struct({ X: t.int, Y: t.int }));
    assert.deepEqual(v, { X: 1, Y: 2 });
  });

  test('field names are case-sensitive, as in go-msgpack', () => {
    assert.deepEqual(decode(wire('81 a1"x" 01'), t.struct({ X: t.int })), { X: 0 });
  });

  test('a struct sent as an array decodes in declaration order (go-msgpack toArray)', () => {
    const P = t.struct({ Name: t.string, Port: t.uint16 });
    assert.deepEqual(decode(wire('93 a2"gw" cd1f0a c3'), P), { Name: 'gw', Port: 7946 });
  });

  test('omitEmpty leaves out empty fields like go-msgpack omitempty', () => {
    const Ping = t.struct({ SeqNo: t.uint32, Node: t.string, SourceAddr: t.omitEmpty(t.bytes), SourcePort: t.omitEmpty(t.uint16) });
    assert.equal(hex(encode({ SeqNo: 1, Node: 'n' }, Ping)), hex(wire('82 a4"Node" a1"n" a5"SeqNo" 01')));
    assert.equal(hex(encode({ SeqNo: 1, Node: 'n', SourcePort: 7 }, Ping)), hex(wire('83 a4"Node" a1"n" a5"SeqNo" 01 aa"SourcePort" 07')));
  });

  test('keys are sorted by UTF-8 bytes like Go (uppercase before lowercase)', () => {
    const S2 = t.struct({ b: t.int, B: t.int, a: t.int, A: t.int });
    assert.equal(hex(encode({}, S2)), hex(wire('84 a1"A" 00 a1"B" 00 a1"a" 00 a1"b" 00')));
  });
});

describe('encode errors name the path and say what was expected', () => {
  const S = t.struct({ List: t.list(t.struct({ Port: t.uint16, Name: t.string })) });
  test('wrong type', () => {
    assert.throws(() => encode({ List: [{}, { Name: 5 as unknown as string }] }, S), {
      code: 'MESHFED_ERR_MSGPACK_ENCODE',
      message: 'msgpack: cannot encode number as Go string (at List[1].Name)',
    });
  });
  test('out of range', () => {
    assert.throws(() => encode({ List: [{ Port: 70000 }] }, S), { code: 'MESHFED_ERR_MSGPACK_ENCODE', message: /70000 is not an integer in \[0, 65535\] \(at List\[0\]\.Port\)/ });
    assert.throws(() => encode(2 ** 53, t.uint64), { code: 'MESHFED_ERR_MSGPACK_ENCODE', message: /use a bigint/ });
    assert.throws(() => encode(-1n, t.uint64), { code: 'MESHFED_ERR_MSGPACK_ENCODE' });
    assert.throws(() => encode(2n ** 64n, t.uint64), { code: 'MESHFED_ERR_MSGPACK_ENCODE' });
    assert.throws(() => encode(1.5, t.int), { code: 'MESHFED_ERR_MSGPACK_ENCODE' });
  });
  test('time must be a GoTime', () => {
    assert.throws(() => encode(new Date() as unknown as GoTime, t.time), { code: 'MESHFED_ERR_MSGPACK_ENCODE', message: /GoTime\.fromDate/ });
  });
  test('schema definitions are checked', () => {
    assert.throws(() => t.struct({ X: 'string' as unknown as typeof t.string }), { code: 'MESHFED_ERR_MSGPACK_SCHEMA' });
  });
});

describe('decode errors name the path and byte offset', () => {
  test('type mismatch', () => {
    const S = t.struct({ List: t.list(t.struct({ Port: t.uint16 })) });
    assert.throws(() => decode(wire('81 a4"List" 91 81 a4"Port" a1"x"'), S), {
      code: 'MESHFED_ERR_MSGPACK_DECODE',
      message: 'msgpack: expected uint16, got string/bytes (at List[0].Port, byte 13)',
    });
  });
  test('overflow of the Go type', () => {
    assert.throws(() => decode(wire('cd 0100'), t.uint8), { code: 'MESHFED_ERR_MSGPACK_DECODE', message: /256 overflows Go uint8/ });
    assert.throws(() => decode(wire('ff'), t.uint), { code: 'MESHFED_ERR_MSGPACK_DECODE', message: /-1 overflows Go uint/ });
    assert.throws(() => decode(wire('cf 0020000000000000'), t.int), { code: 'MESHFED_ERR_MSGPACK_DECODE', message: /declare the field t\.int64/ });
    assert.throws(() => decode(wire('cf 8000000000000000'), t.int64), { code: 'MESHFED_ERR_MSGPACK_DECODE', message: /overflows Go int64/ });
  });
  test('bad time blobs use Go’s UnmarshalBinary texts', () => {
    assert.throws(() => decode(wire('a0'), t.time), { message: /Time\.UnmarshalBinary: no data/ });
    assert.throws(() => decode(wire('a3 010203'), t.time), { message: /Time\.UnmarshalBinary: invalid length/ });
    assert.throws(() => decode(wire('af 09 0000000000000000 00000000 ffff'), t.time), { message: /unsupported version/ });
  });
  test('trailing bytes', () => {
    assert.throws(() => decode(wire('01 02'), t.int), { code: 'MESHFED_ERR_MSGPACK_DECODE', message: /1 trailing byte/ });
  });
});

describe('t.encoded passes a msgpack value through verbatim', () => {
  test('decode copies the raw value; encode writes it back unchanged', () => {
    const Envelope = t.struct({ Method: t.string, Body: t.encoded });
    const inner = wire('82 a1"a" 91 c0 a1"b" af01000000000000000000000000ffff');
    const bytes = encode({ Method: 'X.Y', Body: inner }, Envelope);
    const back = decode(bytes, Envelope);
    assert.equal(hex(back.Body), hex(inner));
    assert.equal(hex(encode(back, Envelope)), hex(bytes));
  });
});
