/** Compound messages (round trips, splitting, truncation as memberlist handles it) and the hasCrc wrapper. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  GossipWireErrorCode, MessageType, addCrc, compressMessage, decodeCompound, encodeCompound, encodeMessage, unpackPacket, verifyCrc,
} from '../../../../src/plugins/gossip/wire/index.js';
import { hex, wire } from '../../rpc/msgpack/wire-notation.js';

const code = (c: string) => (err: unknown): boolean => (err as { code?: string }).code === c;

describe('compound', () => {
  test('layout: 07, count, u16 BE lengths, parts', () => {
    const [c, ...rest] = encodeCompound([Uint8Array.of(0xaa), Uint8Array.of(1, 2, 3)]);
    assert.equal(rest.length, 0);
    assert.equal(hex(c as Buffer), '0702' + '0001' + '0003' + 'aa' + '010203');
  });

  test('round trip of real messages, including empty parts', () => {
    const parts = [encodeMessage(MessageType.ping, { SeqNo: 1, Node: 'a' }), new Uint8Array(0), encodeMessage(MessageType.dead, { Node: 'b', From: 'b' })];
    const [c] = encodeCompound(parts);
    const d = decodeCompound(c as Buffer);
    assert.equal(d.truncated, 0);
    assert.deepEqual(d.parts.map((p) => hex(p)), parts.map((p) => hex(p)));
  });

  test('compounds are split at 127 parts by default (memberlist 0.2.2 misreads 128+), at most 255', () => {
    const parts = Array.from({ length: 600 }, (_, i) => Uint8Array.of(i & 0xff, i >> 8));
    assert.deepEqual(encodeCompound(parts).map((c) => c[1]), [127, 127, 127, 127, 92]);
    const cs = encodeCompound(parts, 255);
    assert.deepEqual(cs.map((c) => c[1]), [255, 255, 90]);
    const back = cs.flatMap((c) => decodeCompound(c).parts);
    assert.deepEqual(back.map((p) => hex(p)), parts.map((p) => hex(p)));
    assert.equal(encodeCompound([]).length, 0);
    assert.deepEqual(encodeCompound(parts.slice(0, 5), 2).map((c) => c[1]), [2, 2, 1]);
  });

  test('a part over 65535 bytes is an encode error', () => {
    assert.throws(() => encodeCompound([new Uint8Array(65536)]), code(GossipWireErrorCode.ENCODE));
  });

  test('truncation: the complete parts plus the count of cut ones (memberlist semantics)', () => {
    const [c] = encodeCompound([Uint8Array.of(1, 1), Uint8Array.of(2, 2, 2), Uint8Array.of(3)]);
    const full = c as Buffer;
    for (let cut = 8; cut < full.length; cut++) {
      const d = decodeCompound(full.subarray(0, cut));
      const expectParts = cut >= 8 + 2 + 3 ? 2 : cut >= 8 + 2 ? 1 : 0;
      assert.equal(d.parts.length, expectParts, `cut ${cut}`);
      assert.equal(d.truncated, 3 - expectParts);
    }
    assert.throws(() => decodeCompound(Uint8Array.of(7)), /missing compound length byte/);
    assert.throws(() => decodeCompound(Uint8Array.of(7, 3, 0, 1, 0)), code(GossipWireErrorCode.TRUNCATED));
    assert.throws(() => decodeCompound(Uint8Array.of(8, 0)), code(GossipWireErrorCode.UNKNOWN_TYPE));
  });

  test('the captured gossip compound piggy-backing a dead on a ping', () => {
    const ping = encodeMessage(MessageType.ping, { SeqNo: 3, Node: 'serf-b', SourceAddr: Uint8Array.of(127, 0, 0, 1), SourcePort: 7946, SourceNode: 'serf-a' });
    const dead = encodeMessage(MessageType.dead, { Incarnation: 1, Node: 'serf-xyz', From: 'serf-xyz' });
    const [c] = encodeCompound([ping, dead]);
    assert.equal(hex((c as Buffer).subarray(0, 6)), `07020045${dead.length.toString(16).padStart(4, '0')}`);
  });
});

describe('hasCrc', () => {
  test('add and verify (crc32 IEEE, big-endian)', () => {
    const msg = Buffer.from('123456789');
    const w = addCrc(msg);
    assert.equal(hex(w), '0ccbf43926' + msg.toString('hex')); // CRC-32 check value of "123456789"
    assert.equal(hex(verifyCrc(w)), hex(msg));
    assert.equal(hex(verifyCrc(addCrc(new Uint8Array(0)))), '');
  });

  test('a flipped bit anywhere is MESHFED_ERR_GOSSIP_CRC', () => {
    const w = addCrc(encodeMessage(MessageType.suspect, { Incarnation: 9, Node: 'n', From: 'm' }));
    for (let i = 1; i < w.length; i++) {
      const bad = Buffer.from(w);
      bad[i] = (bad[i] as number) ^ 0x10;
      assert.throws(() => verifyCrc(bad), code(GossipWireErrorCode.CRC), `byte ${i}`);
      assert.throws(() => unpackPacket(bad), code(GossipWireErrorCode.CRC));
    }
    assert.throws(() => verifyCrc(Uint8Array.of(12, 0, 0)), code(GossipWireErrorCode.TRUNCATED));
  });
});

describe('unpackPacket', () => {
  test('peels hasCrc → compress → compound → messages', () => {
    const msgs = [encodeMessage(MessageType.ping, { SeqNo: 1, Node: 'a' }), encodeMessage(MessageType.alive, { Node: 'a', Vsn: wire('010502020505') })];
    const [c] = encodeCompound(msgs);
    const packet = addCrc(compressMessage(c as Buffer));
    const u = unpackPacket(packet);
    assert.deepEqual(u.errors, []);
    assert.deepEqual(u.messages.map((m) => m.type), [MessageType.ping, MessageType.alive]);
  });

  test('one bad part does not hide the others; truncated parts are counted', () => {
    const good = encodeMessage(MessageType.nackResp, { SeqNo: 4 });
    const [c] = encodeCompound([good, Uint8Array.of(99, 1), Uint8Array.of(0, 0x85), good]);
    const u = unpackPacket((c as Buffer).subarray(0, (c as Buffer).length - 1));
    assert.equal(u.messages.length, 1);
    assert.deepEqual(u.errors.map((e) => e.code), [GossipWireErrorCode.UNKNOWN_TYPE, GossipWireErrorCode.TRUNCATED]);
    assert.equal(u.truncated, 1);
  });

  test('nesting is bounded', () => {
    let p: Buffer = encodeMessage(MessageType.nackResp, { SeqNo: 4 });
    for (let i = 0; i < 10; i++) p = encodeCompound([p])[0] as Buffer;
    const u = unpackPacket(p);
    assert.equal(u.messages.length, 0);
    assert.equal(u.errors[0]?.code, GossipWireErrorCode.LIMIT);
  });
});
