/**
 * Golden bytes: the examples of shared/spec/hashicorp-wire.md §8–§9, and encodings printed by
 * go-msgpack 0.5.5 itself (`msgpackrpc-peer -mode dump`; the interop test re-checks them live).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Empty, GoTime, RequestHeader, ResponseHeader, decode, encode, t } from '../../../../src/plugins/rpc/msgpack/index.js';
import { hex, wire } from './wire-notation.js';

const QueryOptions = t.struct({
  Token: t.string,
  MinQueryIndex: t.uint64,
  MaxQueryTime: t.duration,
  AllowStale: t.bool,
});
const FederationStateQuery = t.struct({ Datacenter: t.string, TargetDatacenter: t.string, ...QueryOptions.fields });

const Node = t.struct({ Address: t.string, RawCert: t.bytes, Weight: t.float64 });
const FederationState = t.struct({
  Datacenter: t.string,
  MeshGateways: t.list(Node),
  UpdatedAt: t.time,
  PrimaryModifyIndex: t.uint64,
  CreateIndex: t.uint64,
  ModifyIndex: t.uint64,
});
const FederationStateResponse = t.struct({
  State: t.nullable(FederationState),
  Index: t.uint64,
  LastContact: t.duration,
  KnownLeader: t.bool,
});

describe('golden bytes from hashicorp-wire.md §9', () => {
  test('Status.Ping request: header {Seq, ServiceMethod} sorted, then 80 (33 bytes)', () => {
    const bytes = new Uint8Array([...encode({ ServiceMethod: 'Status.Ping', Seq: 0 }, RequestHeader), ...encode({}, Empty)]);
    assert.equal(hex(bytes), hex(wire('82 a3"Seq" 00 ad"ServiceMethod" ab"Status.Ping"   80')));
    assert.equal(bytes.length, 33);
  });

  test('Status.Ping response: header {Error, Seq, ServiceMethod}, then 80 (40 bytes)', () => {
    const bytes = new Uint8Array([...encode({ ServiceMethod: 'Status.Ping', Seq: 0, Error: '' }, ResponseHeader), ...encode({}, Empty)]);
    assert.equal(hex(bytes), hex(wire('83 a5"Error" a0 a3"Seq" 00 ad"ServiceMethod" ab"Status.Ping"   80')));
    assert.equal(bytes.length, 40);
  });

  test('FederationState.Get request body: embedded QueryOptions inlined, keys sorted (92 bytes)', () => {
    const bytes = encode(
      { Datacenter: 'dc1', TargetDatacenter: 'dc2', Token: 'tok', MinQueryIndex: 5, MaxQueryTime: 2_000_000_000, AllowStale: false },
      FederationStateQuery,
    );
    const want = wire(`86 aa"AllowStale" c2 aa"Datacenter" a3"dc1" ac"MaxQueryTime" ce77359400
      ad"MinQueryIndex" 05 b0"TargetDatacenter" a3"dc2" a5"Token" a3"tok"`);
    assert.equal(hex(bytes), hex(want));
    assert.equal(bytes.length, 92);
    assert.deepEqual(decode(want, FederationStateQuery), {
      AllowStale: false,
      Datacenter: 'dc1',
      MaxQueryTime: 2_000_000_000,
      MinQueryIndex: 5,
      TargetDatacenter: 'dc2',
      Token: 'tok',
    });
  });

  test('FederationState.Get response body: the excerpt’s fields encode as shown', () => {
    const updated = GoTime.parse('2024-01-02T03:04:05.123456789Z');
    const bytes = encode(
      {
        Index: 300,
        KnownLeader: true,
        LastContact: 1_500_000_000,
        State: {
          CreateIndex: 7,
          Datacenter: 'dc2',
          MeshGateways: [{ Address: '10.0.0.1', RawCert: Uint8Array.of(0x00, 0x01, 0xfe, 0xff), Weight: 1.5 }],
          PrimaryModifyIndex: 42,
          UpdatedAt: updated,
        },
      },
      FederationStateResponse,
    );
    const h = hex(bytes);
    for (const part of [
      '84',
      hex(wire('a5"Index" cd012c ab"KnownLeader" c3 ab"LastContact" ce59682f00 a5"State"')),
      hex(wire('86 ab"CreateIndex" 07 aa"Datacenter" a3"dc2" ac"MeshGateways" 91 83 a7"Address"')),
      hex(wire('a7"RawCert" a4 0001feff')),
      hex(wire('a6"Weight" cb3ff8000000000000')),
      hex(wire('b2"PrimaryModifyIndex" 2a a9"UpdatedAt" af 010000000edd257425075bcd15ffff')),
    ]) {
      assert.ok(h.includes(part), `encoding lacks ${part}`);
    }
    const back = decode(bytes, FederationStateResponse);
    assert.deepEqual(back.State?.MeshGateways[0]?.RawCert, Uint8Array.of(0x00, 0x01, 0xfe, 0xff));
    assert.equal(back.State?.UpdatedAt.toString(), '2024-01-02T03:04:05.123456789Z');
    assert.equal(back.State?.ModifyIndex, 0);
  });

  test('error reply: header with Error text, body = empty struct 80', () => {
    const bytes = new Uint8Array([
      ...encode({ ServiceMethod: 'FederationState.Get', Seq: 3, Error: 'federation state not found' }, ResponseHeader),
      ...encode({}, Empty),
    ]);
    assert.equal(
      hex(bytes),
      hex(wire('83 a5"Error" ba"federation state not found" a3"Seq" 03 ad"ServiceMethod" b3"FederationState.Get" 80')),
    );
  });
});

describe('golden bytes printed by go-msgpack 0.5.5 (-mode dump)', () => {
  test('integers: smallest encoding by value, non-negative always unsigned', () => {
    const values = [0, 127, 128, 255, 256, 65535, 65536, 4294967295, 4294967296, -1, -32, -33, -128, -129, -32768, -32769, -2147483648, -2147483649];
    const big = [-9223372036854775808n, 9223372036854775807n];
    assert.equal(
      hex(encode([...values, ...big], t.list(t.int64))),
      'dc0014007fcc80ccffcd0100cdffffce00010000ceffffffffcf0000000100000000ffe0d0dfd080d1ff7fd18000d2ffff7fffd280000000d3ffffffff7fffffffd38000000000000000cf7fffffffffffffff',
    );
    assert.equal(hex(encode(18446744073709551615n, t.uint64)), 'cfffffffffffffffff');
    assert.deepEqual(decode(wire('cfffffffffffffffff'), t.uint64), 18446744073709551615n);
    assert.deepEqual(decode(wire('d38000000000000000'), t.int64), -9223372036854775808n);
  });

  test('int 300 → cd012c, -200 → d1ff38, uint16 7946 → cd1f0a (§8)', () => {
    assert.equal(hex(encode(300, t.int)), 'cd012c');
    assert.equal(hex(encode(-200, t.int)), 'd1ff38');
    assert.equal(hex(encode(7946, t.uint16)), 'cd1f0a');
  });

  test('strings: fixstr below 32 bytes, da (str16) from 32, never d9; db from 65536', () => {
    const strs = ['', 'a'.repeat(31), 'b'.repeat(32), 'c'.repeat(255), 'd'.repeat(256)];
    const h = hex(encode(strs, t.list(t.string)));
    assert.ok(h.startsWith('95a0bf' + '61'.repeat(31) + 'da0020' + '62'.repeat(32) + 'da00ff'), h.slice(0, 100));
    assert.ok(h.includes('da0100' + '64'.repeat(256)));
    assert.equal(hex(encode('e'.repeat(65536), t.string)).slice(0, 16), 'db00010000656565');
    assert.equal(hex(encode('x'.repeat(40), t.string)).slice(0, 6), 'da0028');
  });

  test('bytes are raw too (never c4-c6 bin), non-UTF-8 content kept', () => {
    assert.equal(hex(encode(Uint8Array.of(0xff, 0xfe, 0x00, 0x80), t.bytes)), 'a4fffe0080');
    assert.equal(hex(encode(new Uint8Array(130), t.bytes)).slice(0, 6), 'da0082');
  });

  test('Status.Peers reply ([]string), struct{} and float64', () => {
    assert.equal(hex(encode(['127.0.0.1:8300', '127.0.0.2:8300'], t.list(t.string))), '92ae3132372e302e302e313a38333030ae3132372e302e302e323a38333030');
    assert.equal(hex(encode({}, Empty)), '80');
    assert.equal(hex(encode(3.25, t.float64)), 'cb400a000000000000');
  });

  test('time.Time: 15-byte MarshalBinary raw; zero time; 16-byte version 2 for zone seconds', () => {
    assert.equal(hex(encode(GoTime.parse('2024-01-02T03:04:05.123456789Z'), t.time)), 'af010000000edd257425075bcd15ffff');
    assert.equal(hex(encode(GoTime.ZERO, t.time)), 'af01000000000000000000000000ffff');
    assert.equal(hex(encode({}, t.struct({ T: t.time }))), hex(wire('81 a1"T" af01000000000000000000000000ffff')));
    const zoneSecs = new GoTime(GoTime.parse('2024-01-01T00:00:00Z').unixSeconds - 3630, 0, 3630);
    assert.equal(hex(encode(zoneSecs, t.time)), 'b0020000000edd23e95200000000003c1e');
    assert.deepEqual(decode(wire('b0020000000edd23e95200000000003c1e'), t.time), zoneSecs);
  });

  test('error-response header as Go writes it', () => {
    assert.equal(
      hex(encode({ ServiceMethod: 'Nope.Method', Seq: 7, Error: "rpc: can't find service Nope.Method" }, ResponseHeader)),
      '83a54572726f72da00237270633a2063616e27742066696e642073657276696365204e6f70652e4d6574686f64a353657107ad536572766963654d6574686f64ab4e6f70652e4d6574686f64',
    );
  });

  test('a struct of 16 or more fields uses map16 (de)', () => {
    const fields: Record<string, typeof t.int> = {};
    for (let i = 0; i < 16; i++) fields[`F${String(i).padStart(2, '0')}`] = t.int;
    assert.equal(hex(encode({}, t.struct(fields))).slice(0, 6), 'de0010');
    assert.equal(hex(encode(Array.from({ length: 16 }, () => 0), t.list(t.int))).slice(0, 6), 'dc0010');
  });
});

describe('what go-msgpack 0.5.5 decodes, we decode', () => {
  test('new-spec str8 and bin8/16/32 for strings and bytes', () => {
    assert.equal(decode(wire('d9 03 "abc"'), t.string), 'abc');
    assert.equal(decode(wire('c4 03 "abc"'), t.string), 'abc');
    assert.deepEqual(decode(wire('c4 02 fffe'), t.bytes), Uint8Array.of(0xff, 0xfe));
    assert.deepEqual(decode(wire('c5 0002 fffe'), t.bytes), Uint8Array.of(0xff, 0xfe));
    assert.deepEqual(decode(wire('c6 00000002 fffe'), t.bytes), Uint8Array.of(0xff, 0xfe));
    assert.deepEqual(decode(wire('d9 02 fffe'), t.bytes), Uint8Array.of(0xff, 0xfe));
  });

  test('[]uint8 from an array of small integers; bool from fixint 0/1; float from int', () => {
    assert.deepEqual(decode(wire('93 01 cc ff 00'), t.bytes), Uint8Array.of(1, 255, 0));
    assert.equal(decode(wire('01'), t.bool), true);
    assert.equal(decode(wire('00'), t.bool), false);
    assert.equal(decode(wire('cd 012c'), t.float64), 300);
    assert.equal(decode(wire('ca 3fc00000'), t.float64), 1.5);
  });

  test('any integer width for any integer type', () => {
    assert.equal(decode(wire('d3 0000000000000005'), t.uint), 5);
    assert.equal(decode(wire('cf 0000000000000005'), t.int), 5);
    assert.equal(decode(wire('d0 05'), t.uint8), 5);
  });

  test('the msgpack timestamp extension is refused for time.Time, as Go refuses it', () => {
    assert.throws(() => decode(wire('d6 ff 00000000'), t.time), { code: 'MESHFED_ERR_MSGPACK_DECODE', message: /expected time\.Time, got ext/ });
  });
});
