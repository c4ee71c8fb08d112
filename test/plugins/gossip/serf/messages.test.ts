/**
 * Serf messages: golden bytes (hashicorp-wire.md §7 "Serf layer", §8), round trips of every
 * message type, Go-shaped inputs (nil slots, nil slices, random map order, non-UTF-8 payloads).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { encode, t } from '../../../../src/plugins/rpc/msgpack/index.js';
import {
  FilterType, LamportClock, QueryFlag, SerfErrorCode, SerfMessageType, decodeFilter, decodeSerfMessage, encodeFilter,
  encodeRelayMessage, encodeSerfMessage, serfMessageTypeName, type SerfMessage, type SerfMessageInputs, type SerfMessageTypeValue,
} from '../../../../src/plugins/gossip/serf/index.js';
import { arrayHeader, hex, mapHeader, raw, unhex } from './helpers.js';

const SECOND_NS = 1_000_000_000;

function roundTrip<T extends SerfMessageTypeValue>(type: T, body: SerfMessageInputs[T]): SerfMessage {
  const bytes = encodeSerfMessage(type, body);
  assert.equal(bytes[0], type, 'the first byte is the message type');
  const msg = decodeSerfMessage(bytes);
  assert.equal(msg.type, type);
  // Encoding the decoded body again gives the same bytes (struct keys and map keys sorted).
  assert.equal(hex(encodeSerfMessage(type, msg.body as SerfMessageInputs[T])), hex(bytes));
  return msg;
}

/** Offsets of each key (as a raw string) in `bytes`, which must all be present. */
function keyOffsets(bytes: Uint8Array, keys: string[]): number[] {
  const buf = Buffer.from(bytes);
  return keys.map((k) => {
    const at = buf.indexOf(raw(k));
    assert.ok(at >= 0, `key ${k} present`);
    return at;
  });
}

describe('serf message types', () => {
  test('type bytes are serf 0.9.4 messageType iota order and the table is frozen', () => {
    assert.deepEqual(Object.entries(SerfMessageType), [
      ['leave', 0], ['join', 1], ['pushPull', 2], ['userEvent', 3], ['query', 4], ['queryResponse', 5],
      ['conflictResponse', 6], ['keyRequest', 7], ['keyResponse', 8], ['relay', 9],
    ]);
    assert.ok(Object.isFrozen(SerfMessageType));
    assert.equal(serfMessageTypeName(4), 'query');
    assert.equal(serfMessageTypeName(0x2a), 'unknown(0x2a)');
    assert.deepEqual({ ...QueryFlag }, { ack: 1, noBroadcast: 2 });
  });
});

describe('serf message golden bytes', () => {
  test('leave is 00 + {LTime, Node, Prune} with keys sorted', () => {
    const bytes = encodeSerfMessage(SerfMessageType.leave, { LTime: 7, Node: 'dc2-gw', Prune: false });
    assert.equal(hex(bytes), hex(Buffer.concat([Buffer.of(0x00), mapHeader(3), raw('LTime'), Buffer.of(7), raw('Node'), raw('dc2-gw'), raw('Prune'), Buffer.of(0xc2)])));
  });

  test('query Timeout 1 s is ce 3b9aca00 and keys are in the observed (sorted) order', () => {
    const bytes = encodeSerfMessage(SerfMessageType.query, {
      LTime: 3, ID: 0xdeadbeef, Addr: Uint8Array.of(127, 0, 0, 1), Port: 7946, SourceNode: 'serf-a', Flags: QueryFlag.ack,
      RelayFactor: 0, Timeout: SECOND_NS, Name: 'ping', Payload: null,
    });
    assert.ok(hex(bytes).includes(hex(Buffer.concat([raw('Timeout'), unhex('ce3b9aca00')]))), hex(bytes));
    assert.ok(hex(bytes).includes(hex(Buffer.concat([raw('ID'), unhex('cedeadbeef')]))));
    assert.ok(hex(bytes).includes(hex(Buffer.concat([raw('Port'), unhex('cd1f0a')]))));
    assert.ok(hex(bytes).includes(hex(Buffer.concat([raw('Payload'), unhex('c0')]))), 'nil []byte field is c0');
    const keys = ['Addr', 'Filters', 'Flags', 'ID', 'LTime', 'Name', 'Payload', 'Port', 'RelayFactor', 'SourceNode', 'Timeout'];
    const offsets = keyOffsets(bytes, keys);
    assert.deepEqual(offsets, [...offsets].sort((a, b) => a - b));
    assert.equal(bytes[1], 0x8b, '11 fields');
  });

  test('byte-identical with Go (serf structs through go-msgpack 0.5.5, scratch program)', () => {
    const query = encodeSerfMessage(SerfMessageType.query, {
      LTime: 77, ID: 1234, Addr: Uint8Array.of(10, 0, 0, 1), Port: 8302, SourceNode: 'dc1-server',
      Filters: [encodeFilter({ type: FilterType.node, nodes: ['a'] })], Flags: 3, RelayFactor: 3, Timeout: SECOND_NS,
      Name: '_serf_ping', Payload: Uint8Array.of(1, 2),
    });
    assert.equal(hex(query), '048ba441646472a40a000001a746696c7465727391a40091a161a5466c61677303a24944cd04d2a54c54696d654da44e616d65aa5f736572665f70696e67a75061796c6f6164a20102a4506f7274cd206eab52656c6179466163746f7203aa536f757263654e6f6465aa6463312d736572766572a754696d656f7574ce3b9aca00');
    const relay = encodeRelayMessage({ DestAddr: { IP: Uint8Array.of(192, 0, 2, 7), Port: 8302 }, DestName: 'dc1-server' }, new Uint8Array(0));
    assert.equal(hex(relay), '0982a8446573744164647283a24950a4c0000207a4506f7274cd206ea45a6f6e65a0a8446573744e616d65aa6463312d736572766572');
    const keys = encodeSerfMessage(SerfMessageType.keyResponse, { Result: true, Keys: ['a2V5'], PrimaryKey: 'a2V5' });
    assert.equal(hex(keys), '0884a44b65797391a461325635a74d657373616765a0aa5072696d6172794b6579a461325635a6526573756c74c3');
  });

  test('pushPull and userEvent keys follow the observed order', () => {
    const pp = encodeSerfMessage(SerfMessageType.pushPull, {});
    const ppKeys = ['EventLTime', 'Events', 'LTime', 'LeftMembers', 'QueryLTime', 'StatusLTimes'];
    const o1 = keyOffsets(pp, ppKeys);
    assert.deepEqual(o1, [...o1].sort((a, b) => a - b));
    const ue = encodeSerfMessage(SerfMessageType.userEvent, { Name: 'deploy' });
    const o2 = keyOffsets(ue, ['CC', 'LTime', 'Name', 'Payload']);
    assert.deepEqual(o2, [...o2].sort((a, b) => a - b));
  });
});

describe('serf message round trips', () => {
  test('leave and join', () => {
    const leave = roundTrip(SerfMessageType.leave, { LTime: 42, Node: 'gw-1', Prune: true });
    assert.deepEqual(leave.body, { LTime: 42, Node: 'gw-1', Prune: true });
    const join = roundTrip(SerfMessageType.join, { LTime: 2n ** 60n, Node: 'gw-2' });
    assert.deepEqual(join.body, { LTime: 2n ** 60n, Node: 'gw-2' });
  });

  test('pushPull with a 512-slot Events ring of mostly nils', () => {
    const events = Array.from({ length: 512 }, (): null | { LTime: number; Events: { Name: string; Payload: Uint8Array }[] } => null);
    events[5] = { LTime: 5, Events: [{ Name: 'deploy', Payload: Uint8Array.of(0xff, 0x00, 0xfe) }] };
    events[511] = { LTime: 511, Events: [] };
    const input = { LTime: 9, StatusLTimes: { 'serf-b': 3, 'serf-a': 4 }, LeftMembers: [], EventLTime: 512, Events: events, QueryLTime: 1 };
    const bytes = encodeSerfMessage(SerfMessageType.pushPull, input);
    assert.ok(hex(bytes).includes('dc0200c0c0c0'), 'the ring is an array16 of 512 with nil slots');
    const msg = roundTrip(SerfMessageType.pushPull, input);
    assert.equal(msg.type, SerfMessageType.pushPull);
    if (msg.type !== SerfMessageType.pushPull) return;
    assert.equal(msg.body.Events.length, 512);
    assert.equal(msg.body.Events.filter((e) => e === null).length, 510);
    assert.deepEqual(msg.body.Events[5], { LTime: 5, Events: [{ Name: 'deploy', Payload: Uint8Array.of(0xff, 0x00, 0xfe) }] });
    assert.deepEqual(msg.body.Events[511], { LTime: 511, Events: [] });
    assert.deepEqual(msg.body.StatusLTimes, { 'serf-a': 4, 'serf-b': 3 });
    assert.deepEqual(msg.body.LeftMembers, []);
  });

  test('pushPull as Go writes it: random map order, nil LeftMembers, nil ring slots', () => {
    const ring = [arrayHeader(512)];
    for (let i = 0; i < 511; i++) ring.push(Buffer.of(0xc0));
    ring.push(Buffer.concat([mapHeader(2), raw('LTime'), Buffer.of(0x10), raw('Events'), arrayHeader(1), mapHeader(2), raw('Name'), raw('e'), raw('Payload'), raw(Uint8Array.of(0xc3, 0x28))]));
    const body = Buffer.concat([
      mapHeader(6),
      raw('EventLTime'), Buffer.of(0x11),
      raw('Events'), ...ring,
      raw('LTime'), unhex('cd012c'),
      raw('LeftMembers'), Buffer.of(0xc0),
      raw('QueryLTime'), Buffer.of(0x01),
      raw('StatusLTimes'), mapHeader(2), raw('zz'), Buffer.of(0x02), raw('aa'), Buffer.of(0x03),
    ]);
    const msg = decodeSerfMessage(Buffer.concat([Buffer.of(SerfMessageType.pushPull), body]));
    assert.equal(msg.type, SerfMessageType.pushPull);
    if (msg.type !== SerfMessageType.pushPull) return;
    assert.equal(msg.body.LTime, 300);
    assert.deepEqual(msg.body.LeftMembers, []);
    assert.deepEqual(msg.body.StatusLTimes, { zz: 2, aa: 3 });
    assert.equal(msg.body.Events.length, 512);
    assert.equal(msg.body.Events[0], null);
    assert.deepEqual(msg.body.Events[511], { LTime: 16, Events: [{ Name: 'e', Payload: Uint8Array.of(0xc3, 0x28) }] });
  });

  test('user event with a non-UTF-8 payload keeps its bytes', () => {
    const payload = Uint8Array.of(0xc3, 0x28, 0xa0, 0xa1, 0xff, 0xfe, 0x00, 0x80);
    const msg = roundTrip(SerfMessageType.userEvent, { LTime: 12, Name: 'deploy', Payload: payload, CC: true });
    assert.deepEqual(msg.body, { LTime: 12, Name: 'deploy', Payload: payload, CC: true });
    // A 40-byte payload is `da 0028` (old-spec raw), never bin8 `c4`.
    const bytes = encodeSerfMessage(SerfMessageType.userEvent, { Name: 'x', Payload: new Uint8Array(40).fill(0xff) });
    assert.ok(hex(bytes).includes(hex(Buffer.concat([raw('Payload'), unhex('da0028')]))));
    // Go's new-spec-tolerant decoding: a bin8 payload is accepted.
    const bin = Buffer.concat([Buffer.of(3), mapHeader(2), raw('Name'), raw('x'), raw('Payload'), unhex('c402fffe')]);
    const m2 = decodeSerfMessage(bin);
    assert.deepEqual(m2.body, { LTime: 0, Name: 'x', Payload: Uint8Array.of(0xff, 0xfe), CC: false });
  });

  test('query with filters, and its response', () => {
    const filters = [encodeFilter({ type: FilterType.node, nodes: ['a', 'b'] }), encodeFilter({ type: FilterType.tag, tag: 'role', expr: '^mesh' })];
    const query = roundTrip(SerfMessageType.query, {
      LTime: 77, ID: 1234, Addr: Uint8Array.of(10, 0, 0, 1), Port: 8302, SourceNode: 'dc1-server', Filters: filters,
      Flags: QueryFlag.ack | QueryFlag.noBroadcast, RelayFactor: 3, Timeout: 15 * SECOND_NS, Name: '_serf_ping', Payload: Uint8Array.of(1, 2),
    });
    assert.equal(query.type, SerfMessageType.query);
    if (query.type !== SerfMessageType.query) return;
    assert.equal(query.body.Timeout, 15 * SECOND_NS);
    assert.deepEqual(query.body.Filters.map((f) => decodeFilter(f)), [
      { type: FilterType.node, nodes: ['a', 'b'] },
      { type: FilterType.tag, tag: 'role', expr: '^mesh' },
    ]);
    assert.equal(decodeFilter(filters[1]!).type, FilterType.tag);
    assert.throws(() => decodeFilter(Uint8Array.of(2, 0x90)), { code: SerfErrorCode.UNKNOWN_TYPE });
    assert.throws(() => decodeFilter(new Uint8Array(0)), { code: SerfErrorCode.TRUNCATED });
    roundTrip(SerfMessageType.queryResponse, { LTime: 77, ID: 1234, From: 'dc2-server', Flags: QueryFlag.ack, Payload: Uint8Array.of(0) });
    // A nil Payload (an ack) is `c0` on the wire and decodes to an empty array.
    const ack = encodeSerfMessage(SerfMessageType.queryResponse, { LTime: 77, ID: 1234, From: 'dc2-server', Flags: QueryFlag.ack, Payload: null });
    assert.ok(hex(ack).endsWith(hex(Buffer.concat([raw('Payload'), Buffer.of(0xc0)]))));
    const resp = decodeSerfMessage(ack);
    assert.deepEqual(resp.body, { LTime: 77, ID: 1234, From: 'dc2-server', Flags: 1, Payload: new Uint8Array(0) });
  });

  test('conflict response, key request and key response', () => {
    const member = roundTrip(SerfMessageType.conflictResponse, {
      Name: 'gw', Addr: Uint8Array.of(127, 0, 0, 1), Port: 7946, Tags: { role: 'ml' }, Status: 1,
      ProtocolMin: 1, ProtocolMax: 5, ProtocolCur: 2, DelegateMin: 2, DelegateMax: 5, DelegateCur: 5,
    });
    assert.deepEqual(member.body, {
      Name: 'gw', Addr: Uint8Array.of(127, 0, 0, 1), Port: 7946, Tags: { role: 'ml' }, Status: 1,
      ProtocolMin: 1, ProtocolMax: 5, ProtocolCur: 2, DelegateMin: 2, DelegateMax: 5, DelegateCur: 5,
    });
    const key = new Uint8Array(32).fill(0xab);
    assert.deepEqual(roundTrip(SerfMessageType.keyRequest, { Key: key }).body, { Key: key });
    assert.deepEqual(roundTrip(SerfMessageType.keyResponse, { Result: true, Message: '', Keys: ['a2V5'], PrimaryKey: 'a2V5' }).body, {
      Result: true, Message: '', Keys: ['a2V5'], PrimaryKey: 'a2V5',
    });
  });

  test('relay wraps another message after its header, which is forwarded untouched', () => {
    const inner = encodeSerfMessage(SerfMessageType.queryResponse, { LTime: 1, ID: 9, From: 'b', Payload: Uint8Array.of(0xff) });
    const header = { DestAddr: { IP: Uint8Array.of(192, 0, 2, 7), Port: 8302, Zone: '' }, DestName: 'dc1-server' };
    const bytes = encodeRelayMessage(header, inner);
    assert.equal(bytes[0], SerfMessageType.relay);
    assert.equal(hex(bytes.subarray(bytes.length - inner.length)), hex(inner));
    const msg = decodeSerfMessage(bytes);
    assert.equal(msg.type, SerfMessageType.relay);
    if (msg.type !== SerfMessageType.relay) return;
    assert.deepEqual(msg.body.header, header);
    assert.equal(hex(msg.body.message), hex(inner));
    assert.deepEqual(decodeSerfMessage(msg.body.message).body, { LTime: 1, ID: 9, From: 'b', Flags: 0, Payload: Uint8Array.of(0xff) });
    // The header's keys: DestAddr {IP, Port, Zone}, DestName.
    const expectHeader = encode({ DestAddr: { IP: Uint8Array.of(192, 0, 2, 7), Port: 8302, Zone: '' }, DestName: 'dc1-server' },
      t.struct({ DestAddr: t.struct({ IP: t.bytes, Port: t.int, Zone: t.string }), DestName: t.string }));
    assert.equal(hex(bytes.subarray(1, 1 + expectHeader.length)), hex(expectHeader));
  });

  test('bytes after the body are ignored, as by go-msgpack on a bytes.Reader', () => {
    const bytes = Buffer.concat([encodeSerfMessage(SerfMessageType.join, { LTime: 1, Node: 'n' }), Buffer.of(0xc1, 0xff)]);
    assert.deepEqual(decodeSerfMessage(bytes), { type: SerfMessageType.join, body: { LTime: 1, Node: 'n' } });
  });

  test('encoding refuses bodies that do not fit, with a coded error', () => {
    assert.throws(() => encodeSerfMessage(SerfMessageType.query, { Port: 70000 }), { code: SerfErrorCode.ENCODE });
    assert.throws(() => encodeSerfMessage(SerfMessageType.leave, { Node: 5 as unknown as string }), { code: SerfErrorCode.ENCODE });
    assert.throws(() => encodeSerfMessage(42 as SerfMessageTypeValue, {}), { code: SerfErrorCode.UNKNOWN_TYPE });
    assert.throws(() => encodeSerfMessage(SerfMessageType.relay, { header: {}, message: 'x' as unknown as Uint8Array }), { code: SerfErrorCode.ENCODE });
  });

  test('LTime from a LamportClock (bigint) encodes as the smallest uint', () => {
    const clock = new LamportClock(299);
    const bytes = encodeSerfMessage(SerfMessageType.join, { LTime: clock.increment(), Node: 'n' });
    assert.ok(hex(bytes).includes(hex(Buffer.concat([raw('LTime'), unhex('cd012c')]))));
    const max = encodeSerfMessage(SerfMessageType.join, { LTime: 2n ** 64n - 1n, Node: 'n' });
    assert.ok(hex(max).includes('cfffffffffffffffff'));
    assert.deepEqual(decodeSerfMessage(max), { type: SerfMessageType.join, body: { LTime: 2n ** 64n - 1n, Node: 'n' } });
  });
});
