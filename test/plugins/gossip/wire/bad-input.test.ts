/**
 * Hostile input: random bytes, every truncation and single-byte corruption of valid messages and
 * wrappers. Every outcome is a value or a MESHFED_ERR_GOSSIP_… error, never another exception.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  Keyring, MessageType, addCrc, compressMessage, decodeCompound, decodeMessage, decryptPacket, decryptStream, encodeCompound,
  encodeMessage, encodePushPull, isGossipWireError, unpackPacket, verifyCrc, decompressMessage,
} from '../../../../src/plugins/gossip/wire/index.js';
import { prng } from '../../../../src/testing/prng.js';


const decoders: Array<[string, (b: Uint8Array) => unknown]> = [
  ['decodeMessage', (b) => decodeMessage(b, { maxDecompressedBytes: 1 << 20 })],
  ['unpackPacket', (b) => unpackPacket(b, { maxDecompressedBytes: 1 << 20 })],
  ['decodeCompound', (b) => decodeCompound(b)],
  ['verifyCrc', (b) => verifyCrc(b)],
  ['decompressMessage', (b) => decompressMessage(b, { maxDecompressedBytes: 1 << 20 })],
  ['decryptPacket', (b) => decryptPacket(new Keyring(Buffer.alloc(16, 1)), b)],
  ['decryptStream', (b) => decryptStream(new Keyring(Buffer.alloc(16, 1)), b)],
];

function survive(name: string, b: Uint8Array, run: (b: Uint8Array) => unknown): void {
  try {
    run(b);
  } catch (err) {
    if (!isGossipWireError(err)) assert.fail(`${name} threw a non-gossip error on ${Buffer.from(b).toString('hex')}: ${String(err)}`);
    assert.ok(err.message.length > 10);
  }
}

const valid: Uint8Array[] = [
  encodeMessage(MessageType.ping, { SeqNo: 3, Node: 'serf-b', SourceAddr: Uint8Array.of(127, 0, 0, 1), SourcePort: 7946, SourceNode: 'serf-a' }),
  encodeMessage(MessageType.alive, { Incarnation: 1, Node: 'a', Addr: Uint8Array.of(1, 2, 3, 4), Port: 1, Meta: Uint8Array.of(0xff), Vsn: Uint8Array.of(1, 5, 2, 2, 5, 5) }),
  encodePushPull({ join: true, nodes: [{ Name: 'x', Vsn: Uint8Array.of(1, 5, 2, 2, 5, 5) }, { Name: 'y' }], userState: Uint8Array.of(2, 0x80) }),
  encodeCompound([encodeMessage(MessageType.nackResp, { SeqNo: 1 }), encodeMessage(MessageType.err, { Error: 'x' })])[0] as Buffer,
  addCrc(compressMessage(encodeMessage(MessageType.suspect, { Incarnation: 2, Node: 'n', From: 'm' }))),
  compressMessage(Buffer.alloc(500, 7)),
];

describe('hostile input', () => {
  test('random bytes (with a valid type byte in front, too)', () => {
    const next = prng(1234);
    for (let i = 0; i < 3000; i++) {
      const b = Uint8Array.from({ length: next() % 80 }, () => next() & 0xff);
      if (b.length && i % 2) b[0] = next() % 16;
      for (const [name, run] of decoders) survive(name, b, run);
    }
  });

  test('every truncation and every single-byte corruption of valid messages', () => {
    const next = prng(99);
    for (const v of valid) {
      for (let cut = 0; cut < v.length; cut++) for (const [name, run] of decoders) survive(name, v.subarray(0, cut), run);
      for (let i = 0; i < v.length; i++) {
        const bad = Buffer.from(v);
        bad[i] = next() & 0xff;
        for (const [name, run] of decoders) survive(name, bad, run);
      }
    }
  });

  test('huge announced sizes are refused without allocating', () => {
    // push-pull claiming 2^31 nodes and a 1 GiB user state, in a 30-byte message.
    const pp = Buffer.from('0683a44a6f696ec2a54e6f646573ce80000000ac5573657253746174654c656ece40000000', 'hex');
    assert.throws(() => decodeMessage(pp), (err) => isGossipWireError(err) && /LIMIT/.test(err.code));
    // A msgpack str claiming 4 GiB inside a ping.
    const ping = Buffer.from('0081a44e6f6465dbffffffff', 'hex');
    assert.throws(() => decodeMessage(ping), (err) => isGossipWireError(err) && /TRUNCATED|DECODE|LIMIT/.test(err.code));
    // A 4 KB LZW bomb bounded to 64 KiB.
    const bomb = compressMessage(new Uint8Array(10_000_000));
    assert.ok(bomb.length < 40_000);
    const u = unpackPacket(bomb, { maxDecompressedBytes: 65536 });
    assert.equal(u.errors[0]?.code, 'MESHFED_ERR_GOSSIP_LIMIT');
  });

  test('wrong field types are decode errors naming the message', () => {
    // ping with SeqNo as a string
    const bad = Buffer.from('0081a55365714e6fa178', 'hex');
    assert.throws(() => decodeMessage(bad), (err) => isGossipWireError(err) && err.code === 'MESHFED_ERR_GOSSIP_DECODE' && /ping/.test(err.message));
    // port out of uint16 range
    const port = Buffer.from('0481a4506f7274ce00010000', 'hex');
    assert.throws(() => decodeMessage(port), (err) => isGossipWireError(err) && err.code === 'MESHFED_ERR_GOSSIP_DECODE');
    assert.throws(() => decodeMessage(Uint8Array.of(200, 0)), (err) => isGossipWireError(err) && err.code === 'MESHFED_ERR_GOSSIP_UNKNOWN_TYPE');
    assert.throws(() => decodeMessage(new Uint8Array(0)), (err) => isGossipWireError(err) && err.code === 'MESHFED_ERR_GOSSIP_TRUNCATED');
  });
});
