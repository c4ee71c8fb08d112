/**
 * Golden bytes of memberlist messages, from captures of Debian serf 0.9.4 / memberlist 0.2.2
 * (shared/spec/hashicorp-wire.md §7): the 69-byte ping, the ack, the alive, the push-pull header
 * and node, the errResp.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  MessageType, NodeState, decodeMessage, decodeVsn, encodeMessage, encodePushPull, encodeVsn, decompressMessage, compressMessage,
} from '../../../../src/plugins/gossip/wire/index.js';
import { hex, wire } from '../../rpc/msgpack/wire-notation.js';

const LOCALHOST = Uint8Array.of(127, 0, 0, 1);

const PING_69 = wire(`00 85 a4"Node" a6"serf-b" a5"SeqNo" 03 aa"SourceAddr" a4 7f000001
  aa"SourceNode" a6"serf-a" aa"SourcePort" cd 1f0a`);

describe('golden messages (hashicorp-wire.md §7)', () => {
  test('the 69-byte ping between two serf agents', () => {
    assert.equal(PING_69.length, 69);
    const enc = encodeMessage(MessageType.ping, { SeqNo: 3, Node: 'serf-b', SourceAddr: LOCALHOST, SourcePort: 7946, SourceNode: 'serf-a' });
    assert.equal(hex(enc), hex(PING_69));
    const m = decodeMessage(PING_69);
    assert.equal(m.type, MessageType.ping);
    assert.deepEqual(m.body, { SeqNo: 3, Node: 'serf-b', SourceAddr: LOCALHOST, SourcePort: 7946, SourceNode: 'serf-a' });
  });

  test('ping omits empty Source* fields (omitempty), as protocol < 5 peers send it', () => {
    const enc = encodeMessage(MessageType.ping, { SeqNo: 1, Node: 'x' });
    assert.equal(hex(enc), hex(wire(`00 82 a4"Node" a1"x" a5"SeqNo" 01`)));
    const m = decodeMessage(enc);
    assert.equal(m.type, MessageType.ping);
    if (m.type === MessageType.ping) assert.equal(m.body.SourceAddr.length, 0);
  });

  test('the 150-byte ack with a 130-byte payload (raw da 0082, not bin)', () => {
    const payload = Uint8Array.from({ length: 130 }, (_, i) => (i * 7) & 0xff);
    const golden = Buffer.concat([wire(`02 82 a7"Payload" da 0082`), payload, wire(`a5"SeqNo" 03`)]);
    assert.equal(golden.length, 150);
    assert.equal(hex(encodeMessage(MessageType.ackResp, { SeqNo: 3, Payload: payload })), hex(golden));
    assert.deepEqual(decodeMessage(golden), { type: MessageType.ackResp, body: { SeqNo: 3, Payload: payload } });
    // Plain memberlist: nil payload = c0.
    assert.equal(hex(encodeMessage(MessageType.ackResp, { SeqNo: 9 })), hex(wire(`02 82 a7"Payload" c0 a5"SeqNo" 09`)));
  });

  test('the alive gossip (Vsn as a 6-byte raw string)', () => {
    const golden = wire(`04 86 a4"Addr" a4 7f000001 ab"Incarnation" 01 a4"Meta" b0 ff82a4726f6c65a161a26463a3646331
      a4"Node" a6"serf-a" a4"Port" cd1f0a a3"Vsn" a6 010502020505`);
    assert.equal(golden.length, 0x4e); // the compound in the capture announces 004e for it
    const body = {
      Incarnation: 1, Node: 'serf-a', Addr: LOCALHOST, Port: 7946,
      Meta: wire('ff82a4726f6c65a161a26463a3646331'),
      Vsn: encodeVsn({ pmin: 1, pmax: 5, pcur: 2, dmin: 2, dmax: 5, dcur: 5 }),
    };
    assert.equal(hex(encodeMessage(MessageType.alive, body)), hex(golden));
    const m = decodeMessage(golden);
    assert.deepEqual(m, { type: MessageType.alive, body });
    if (m.type === MessageType.alive) assert.deepEqual(decodeVsn(m.body.Vsn), { pmin: 1, pmax: 5, pcur: 2, dmin: 2, dmax: 5, dcur: 5 });
  });

  test('the push-pull header and node of a join, with user state', () => {
    const header = wire(`06 83 a4"Join" c3 a5"Nodes" 01 ac"UserStateLen" cd 024e`);
    const node = wire(`87 a4"Addr" a4 7f000001 ab"Incarnation" 01 a4"Meta" a9 ff81a4726f6c65a162
      a4"Name" a6"serf-b" a4"Port" cd1f0b a5"State" 00 a3"Vsn" a6 010502020505`);
    const userState = Buffer.concat([Uint8Array.of(2), Buffer.alloc(589, 0xc0)]);
    assert.equal(userState.length, 590);
    const n = { Name: 'serf-b', Addr: LOCALHOST, Port: 7947, Meta: wire('ff81a4726f6c65a162'), Incarnation: 1, State: NodeState.alive, Vsn: wire('010502020505') };
    const enc = encodePushPull({ join: true, nodes: [n], userState });
    assert.equal(hex(enc), hex(Buffer.concat([header, node, userState])));
    assert.deepEqual(decodeMessage(enc), { type: MessageType.pushPull, body: { join: true, nodes: [n], userState: new Uint8Array(userState) } });
    assert.deepEqual(decodeMessage(encodeMessage(MessageType.pushPull, { nodes: [] })), { type: MessageType.pushPull, body: { join: false, nodes: [], userState: new Uint8Array(0) } });
  });

  test('errResp (58-byte text as da 003a) inside a compress wrapper', () => {
    const text = 'Remote state is encrypted and encryption is not configured';
    const golden = Buffer.concat([wire(`0d 81 a5"Error" da003a`), Buffer.from(text)]);
    assert.equal(hex(encodeMessage(MessageType.err, { Error: text })), hex(golden));
    const wrapped = compressMessage(golden);
    assert.equal(hex(wrapped.subarray(0, 12)), hex(wire(`09 82 a4"Algo" 00 a3"Buf"`)).slice(0, 24));
    const inner = decompressMessage(wrapped);
    assert.equal(hex(inner), hex(golden));
    assert.deepEqual(decodeMessage(inner), { type: MessageType.err, body: { Error: text } });
  });

  test('other bodies: indirectPing, nack, suspect, dead round-trip with sorted keys', () => {
    const ind = { SeqNo: 70000, Target: LOCALHOST, Port: 8301, Node: 'n2', Nack: true, SourceAddr: LOCALHOST, SourcePort: 8302, SourceNode: 'n1' };
    const e = encodeMessage(MessageType.indirectPing, ind);
    assert.equal(hex(e.subarray(0, 8)), hex(wire(`01 88 a4"Nack" c3`)));
    assert.deepEqual(decodeMessage(e), { type: MessageType.indirectPing, body: ind });
    assert.equal(hex(encodeMessage(MessageType.nackResp, { SeqNo: 300 })), hex(wire(`0b 81 a5"SeqNo" cd012c`)));
    assert.equal(hex(encodeMessage(MessageType.dead, { Incarnation: 2, Node: 'a', From: 'a' })), hex(wire(`05 83 a4"From" a1"a" ab"Incarnation" 02 a4"Node" a1"a"`)));
    assert.deepEqual(decodeMessage(encodeMessage(MessageType.suspect, { Incarnation: 5, Node: 'b', From: 'c' })), { type: MessageType.suspect, body: { Incarnation: 5, Node: 'b', From: 'c' } });
    assert.deepEqual(decodeMessage(encodeMessage(MessageType.user, Uint8Array.of(3, 0x80))), { type: MessageType.user, body: Uint8Array.of(3, 0x80) });
  });

  test('message types are frozen and spelled as on the wire', () => {
    assert.ok(Object.isFrozen(MessageType));
    assert.deepEqual(Object.values(MessageType), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]);
    assert.equal(MessageType.hasCrc, 12);
    assert.equal(MessageType.err, 13);
  });
});
