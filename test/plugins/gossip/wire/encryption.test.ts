/** Packet and stream encryption as memberlist's security.go, and the keyring. */
import assert from 'node:assert/strict';
import { createDecipheriv, randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import {
  EncryptionVersion, GossipWireErrorCode, Keyring, MessageType, decryptPacket, decryptStream, encodeMessage, encryptPacket,
  encryptStream, encryptedLength, encryptedStreamFrameLength,
} from '../../../../src/plugins/gossip/wire/index.js';
import { hex } from '../../rpc/msgpack/wire-notation.js';

const code = (c: string) => (err: unknown): boolean => (err as { code?: string }).code === c;

describe('encryption', () => {
  for (const size of [16, 24, 32]) {
    test(`packet and stream round trips with a ${size}-byte key, both versions`, () => {
      const ring = new Keyring(randomBytes(size));
      const msg = encodeMessage(MessageType.ping, { SeqNo: 1, Node: 'n' });
      for (const version of [EncryptionVersion.unpadded, EncryptionVersion.padded]) {
        const p = encryptPacket(ring, msg, { version });
        assert.equal(p[0], version);
        assert.equal(p.length, encryptedLength(version, msg.length));
        assert.equal(hex(decryptPacket(ring, p)), hex(msg));
        const s = encryptStream(ring, msg, { version });
        assert.equal(s[0], 0x0a);
        assert.equal(s.readUInt32BE(1), s.length - 5);
        assert.equal(encryptedStreamFrameLength(s), s.length);
        assert.equal(hex(decryptStream(ring, s)), hex(msg));
      }
      for (const n of [0, 1, 15, 16, 17, 1000]) {
        const m = randomBytes(n);
        assert.equal(hex(decryptPacket(ring, encryptPacket(ring, m, { version: 0 }))), hex(m));
      }
    });
  }

  test('packet v1 layout: vsn | nonce | AES-GCM ct+tag, no AAD (decrypts with plain node:crypto)', () => {
    const key = Buffer.alloc(32, 1);
    const nonce = Buffer.alloc(12, 2);
    const p = encryptPacket(key, Buffer.from('hello'), { nonce });
    assert.equal(p.length, 1 + 12 + 5 + 16);
    assert.equal(hex(p.subarray(0, 13)), '01' + '02'.repeat(12));
    const d = createDecipheriv('aes-256-gcm', key, nonce);
    d.setAuthTag(p.subarray(p.length - 16));
    assert.equal(Buffer.concat([d.update(p.subarray(13, p.length - 16)), d.final()]).toString(), 'hello');
    // v0: padded to a 16-byte block (5 + 11 × 0x0b).
    assert.equal(encryptPacket(key, Buffer.from('hello'), { nonce, version: 0 }).length, 1 + 12 + 16 + 16);
  });

  test('stream AAD is the 5-byte header: changing the length is refused', () => {
    const ring = new Keyring(randomBytes(16));
    const s = encryptStream(ring, Buffer.from('state'));
    const bad = Buffer.concat([s, Buffer.alloc(1)]);
    bad.writeUInt32BE(s.length - 4, 1);
    assert.throws(() => decryptStream(ring, bad), /No installed keys could decrypt the message/);
  });

  test('decryption tries every key; a wrong key is refused', () => {
    const [k1, k2, k3] = [randomBytes(32), randomBytes(16), randomBytes(24)];
    const old = new Keyring(k2);
    const rotated = new Keyring(k1, [k2]);
    const p = encryptPacket(old, Buffer.from('x'));
    assert.equal(decryptPacket(rotated, p).toString(), 'x');
    assert.throws(() => decryptPacket(new Keyring(k3), p), (err: Error & { code?: string }) =>
      err.code === GossipWireErrorCode.DECRYPT && err.message === 'No installed keys could decrypt the message');
    assert.throws(() => decryptStream(new Keyring(k3), encryptStream(old, Buffer.from('x'))), code(GossipWireErrorCode.DECRYPT));
  });

  test('any tampered byte is refused', () => {
    const ring = new Keyring(randomBytes(32));
    const p = encryptPacket(ring, randomBytes(40));
    for (let i = 1; i < p.length; i++) {
      const bad = Buffer.from(p);
      bad[i] = (bad[i] as number) ^ 1;
      assert.throws(() => decryptPacket(ring, bad), code(GossipWireErrorCode.DECRYPT), `byte ${i}`);
    }
  });

  test('malformed input: empty, unknown version, too short, oversized or truncated stream', () => {
    const ring = new Keyring(randomBytes(32));
    assert.throws(() => decryptPacket(ring, new Uint8Array(0)), /Cannot decrypt empty payload/);
    assert.throws(() => decryptPacket(ring, Uint8Array.of(2, ...new Uint8Array(40))), /Unsupported encryption version 2/);
    assert.throws(() => decryptPacket(ring, Uint8Array.of(1, ...new Uint8Array(27))), /Payload is too small to decrypt: 28/);
    assert.throws(() => decryptPacket(ring, Uint8Array.of(0, ...new Uint8Array(43))), /Payload is too small to decrypt: 44/);
    assert.throws(() => encryptedStreamFrameLength(Uint8Array.of(0x0a, 0x7f, 0, 0, 0)), /Remote node state is larger than limit/);
    assert.throws(() => encryptedStreamFrameLength(Uint8Array.of(0x0a, 0)), code(GossipWireErrorCode.TRUNCATED));
    assert.throws(() => encryptedStreamFrameLength(Uint8Array.of(0x09, 0, 0, 0, 0)), code(GossipWireErrorCode.UNKNOWN_TYPE));
    const s = encryptStream(ring, Buffer.from('abc'));
    assert.throws(() => decryptStream(ring, s.subarray(0, s.length - 1)), code(GossipWireErrorCode.TRUNCATED));
  });

  test('keyring: sizes, primary first, use/remove as memberlist', () => {
    for (const n of [0, 15, 17, 31, 33]) assert.throws(() => new Keyring(new Uint8Array(n)), code(GossipWireErrorCode.KEY));
    assert.throws(() => new Keyring(new Uint8Array(0)), /Empty primary key not allowed/);
    assert.throws(() => new Keyring(randomBytes(16), [randomBytes(20)]), /key size must be 16, 24 or 32 bytes/);
    const [a, b] = [randomBytes(16), randomBytes(32)];
    const ring = new Keyring(a, [b, a]);
    assert.deepEqual(ring.keys.map((k) => hex(k)), [hex(a), hex(b)]);
    ring.useKey(b);
    assert.equal(hex(ring.primaryKey), hex(b));
    assert.throws(() => ring.removeKey(b), /Removing the primary key is not allowed/);
    assert.throws(() => ring.useKey(randomBytes(16)), /Requested key is not in the keyring/);
    ring.removeKey(a);
    assert.deepEqual(ring.keys.map((k) => hex(k)), [hex(b)]);
    // The keyring keeps copies.
    ring.primaryKey.fill(0);
    assert.equal(hex(ring.primaryKey), hex(b));
  });
});
