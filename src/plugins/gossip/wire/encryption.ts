/**
 * memberlist's encryption (memberlist 0.2.2 `security.go`, hashicorp-wire.md §7), AES-GCM with
 * a 12-byte random nonce and a 16-byte tag:
 * - packet: `vsn(1) | nonce(12) | ciphertext | tag(16)`, no AAD, no type byte. vsn 1 is the
 *   plaintext as is; vsn 0 (protocol 1 only) PKCS7-pads it to 16 bytes first;
 * - stream: `0x0a | len(u32 BE) | <packet encryption of the stream>`, AAD = those first 5 bytes,
 *   `len` counting everything after them (limit 20 MiB, memberlist's `maxPushStateBytes`).
 * Decryption tries every installed key, primary first.
 */
import { createCipheriv, createDecipheriv, randomBytes, type CipherGCMTypes } from 'node:crypto';
import { GossipWireErrorCode, gossipWireError } from './errors.js';
import { Keyring } from './keyring.js';
import { EncryptionVersion, MAX_PUSH_STATE_BYTES, MessageType, type EncryptionVersionValue } from './message-type.js';

const VERSION_SIZE = 1;
const NONCE_SIZE = 12;
const TAG_SIZE = 16;
const BLOCK_SIZE = 16;

/** Bytes an encrypted packet adds to its plaintext: 29 for vsn 1, up to 45 for vsn 0. */
export function encryptedLength(version: EncryptionVersionValue, plaintextLength: number): number {
  const padding = version === EncryptionVersion.padded ? BLOCK_SIZE - (plaintextLength % BLOCK_SIZE) : 0;
  return VERSION_SIZE + NONCE_SIZE + plaintextLength + padding + TAG_SIZE;
}

/** Options of the encrypt functions. */
export interface EncryptOptions {
  /** 1 (default, memberlist protocol ≥ 2) or 0 (PKCS7 padding, protocol 1). */
  readonly version?: EncryptionVersionValue;
  /** @internal Fixed nonce, for golden tests only. Never reuse a nonce with a key. */
  readonly nonce?: Uint8Array;
}

function cipherName(key: Uint8Array): CipherGCMTypes {
  return `aes-${key.length * 8}-gcm` as CipherGCMTypes;
}

function keysOf(keys: Keyring | Uint8Array): Buffer[] {
  return keys instanceof Keyring ? keys.keys : new Keyring(keys).keys;
}

function seal(key: Uint8Array, version: EncryptionVersionValue, plain: Uint8Array, aad: Uint8Array | undefined, nonceIn: Uint8Array | undefined): Buffer {
  if (version !== EncryptionVersion.padded && version !== EncryptionVersion.unpadded) {
    throw gossipWireError(GossipWireErrorCode.ENCODE, `gossip: unsupported encryption version ${String(version)}: expected 0 or 1`);
  }
  const nonce = nonceIn ?? randomBytes(NONCE_SIZE);
  if (nonce.length !== NONCE_SIZE) throw gossipWireError(GossipWireErrorCode.ENCODE, `gossip: nonce must be ${NONCE_SIZE} bytes`);
  let src = plain;
  if (version === EncryptionVersion.padded) {
    const more = BLOCK_SIZE - (plain.length % BLOCK_SIZE);
    src = Buffer.concat([plain, Buffer.alloc(more, more)]);
  }
  const c = createCipheriv(cipherName(key), key, nonce, { authTagLength: TAG_SIZE });
  if (aad) c.setAAD(aad);
  return Buffer.concat([Uint8Array.of(version), nonce, c.update(src), c.final(), c.getAuthTag()]);
}

/**
 * Encrypt a UDP packet with the keyring's primary key (or with `key`).
 * A bad key is MESHFED_ERR_GOSSIP_KEY.
 */
export function encryptPacket(keys: Keyring | Uint8Array, plaintext: Uint8Array, options: EncryptOptions = {}): Buffer {
  const key = keys instanceof Keyring ? keys.primaryKey : keysOf(keys)[0] as Buffer;
  return seal(key, options.version ?? EncryptionVersion.unpadded, plaintext, undefined, options.nonce);
}

function open(key: Buffer, msg: Uint8Array, aad: Uint8Array | undefined): Buffer | undefined {
  const nonce = msg.subarray(VERSION_SIZE, VERSION_SIZE + NONCE_SIZE);
  const ct = msg.subarray(VERSION_SIZE + NONCE_SIZE, msg.length - TAG_SIZE);
  const tag = msg.subarray(msg.length - TAG_SIZE);
  try {
    const d = createDecipheriv(cipherName(key), key, nonce, { authTagLength: TAG_SIZE });
    d.setAuthTag(tag);
    if (aad) d.setAAD(aad);
    return Buffer.concat([d.update(ct), d.final()]);
  } catch {
    return undefined; // authentication failed with this key: try the next one
  }
}

/**
 * Decrypt a packet (`vsn | nonce | ct | tag`) with every installed key, primary first, as
 * memberlist's `decryptPayload`; `aad` is the additional data it was sealed with (none for UDP).
 */
export function decryptPayload(keys: Keyring | Uint8Array, msg: Uint8Array, aad?: Uint8Array): Buffer {
  const all = keysOf(keys);
  if (msg.length === 0) throw gossipWireError(GossipWireErrorCode.DECRYPT, 'Cannot decrypt empty payload');
  const version = msg[0] as number;
  if (version > EncryptionVersion.unpadded) {
    throw gossipWireError(GossipWireErrorCode.DECRYPT, `Unsupported encryption version ${version} (expected 0 or 1; is the peer sending unencrypted gossip?)`);
  }
  if (msg.length < encryptedLength(version as EncryptionVersionValue, 0)) {
    throw gossipWireError(GossipWireErrorCode.DECRYPT, `Payload is too small to decrypt: ${msg.length}`);
  }
  for (const key of all) {
    const plain = open(key, msg, aad);
    if (!plain) continue;
    if (version === EncryptionVersion.unpadded) return plain;
    // PKCS7: Go trusts the (authenticated) pad byte; we check it so a bad one cannot slice past the start.
    const pad = plain.length ? (plain[plain.length - 1] as number) : 0;
    if (pad < 1 || pad > BLOCK_SIZE || pad > plain.length) {
      throw gossipWireError(GossipWireErrorCode.DECRYPT, `gossip: invalid PKCS7 padding byte ${pad} in a version 0 encrypted message`);
    }
    return plain.subarray(0, plain.length - pad);
  }
  throw gossipWireError(GossipWireErrorCode.DECRYPT, 'No installed keys could decrypt the message');
}

/** Decrypt a UDP packet (no AAD). */
export function decryptPacket(keys: Keyring | Uint8Array, packet: Uint8Array): Buffer {
  return decryptPayload(keys, packet);
}

/**
 * Encrypt a whole stream payload (what memberlist's `encryptLocalState` does to push-pull and
 * stream messages): `0x0a | len u32 BE | vsn | nonce | ct+tag`, AAD = the first 5 bytes.
 */
export function encryptStream(keys: Keyring | Uint8Array, plaintext: Uint8Array, options: EncryptOptions = {}): Buffer {
  const version = options.version ?? EncryptionVersion.unpadded;
  const len = encryptedLength(version, plaintext.length);
  if (len > 0xffffffff) throw gossipWireError(GossipWireErrorCode.ENCODE, `gossip: stream payload of ${plaintext.length} bytes is too large to encrypt`);
  const header = Buffer.allocUnsafe(5);
  header[0] = MessageType.encrypt;
  header.writeUInt32BE(len, 1);
  const key = keys instanceof Keyring ? keys.primaryKey : keysOf(keys)[0] as Buffer;
  return Buffer.concat([header, seal(key, version, plaintext, header, options.nonce)]);
}

/**
 * The total size of an encrypted stream frame from its first 5 bytes (`0x0a | len`), so a
 * reader knows how much to buffer; refuses lengths over `maxBytes` (default 20 MiB) before
 * anything is read. Throws MESHFED_ERR_GOSSIP_TRUNCATED if fewer than 5 bytes are given.
 */
export function encryptedStreamFrameLength(header: Uint8Array, maxBytes = MAX_PUSH_STATE_BYTES): number {
  if (header.length < 5) throw gossipWireError(GossipWireErrorCode.TRUNCATED, `gossip: truncated encrypted stream header: ${header.length} of 5 bytes`);
  if (header[0] !== MessageType.encrypt) {
    throw gossipWireError(GossipWireErrorCode.UNKNOWN_TYPE, `gossip: not an encrypted stream: expected type byte 10, got ${header[0] as number} (Encryption is configured but remote state is not encrypted)`);
  }
  const len = Buffer.from(header.buffer, header.byteOffset, 5).readUInt32BE(1);
  if (len > maxBytes) throw gossipWireError(GossipWireErrorCode.LIMIT, `Remote node state is larger than limit (${len})`);
  return 5 + len;
}

/** Decrypt a complete encrypted stream frame (starting with `0x0a`); bytes after the frame are ignored. */
export function decryptStream(keys: Keyring | Uint8Array, frame: Uint8Array, maxBytes = MAX_PUSH_STATE_BYTES): Buffer {
  const total = encryptedStreamFrameLength(frame, maxBytes);
  if (frame.length < total) throw gossipWireError(GossipWireErrorCode.TRUNCATED, `gossip: truncated encrypted stream: ${frame.length} of ${total} bytes`);
  return decryptPayload(keys, frame.subarray(5, total), frame.subarray(0, 5));
}
