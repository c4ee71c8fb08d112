/**
 * A memberlist keyring: the primary key (used to encrypt) first, then the other installed keys
 * (all tried to decrypt). Keys are AES-128/192/256 keys: 16, 24 or 32 bytes. Operations and
 * their refusals follow memberlist 0.2.2 `keyring.go`; texts are memberlist's.
 */
import { GossipWireErrorCode, gossipWireError } from './errors.js';

function validateKey(key: Uint8Array): void {
  if (!(key instanceof Uint8Array) || (key.length !== 16 && key.length !== 24 && key.length !== 32)) {
    const got = key instanceof Uint8Array ? `${key.length} bytes` : typeof key;
    throw gossipWireError(GossipWireErrorCode.KEY, `key size must be 16, 24 or 32 bytes (got ${got}); serf keygen makes 32-byte keys`);
  }
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(a, b) === 0;
}

/** The keys a node encrypts with (the primary) and decrypts with (all of them). */
export class Keyring {
  /** Primary first. Copies: callers cannot change installed keys behind our back. */
  #keys: Buffer[] = [];

  /**
   * @param primaryKey the key to encrypt with.
   * @param keys other keys accepted for decryption (duplicates of the primary are ignored).
   */
  constructor(primaryKey: Uint8Array, keys: readonly Uint8Array[] = []) {
    if (!primaryKey || primaryKey.length === 0) throw gossipWireError(GossipWireErrorCode.KEY, 'Empty primary key not allowed');
    this.addKey(primaryKey);
    for (const k of keys) this.addKey(k);
  }

  /** The key used to encrypt. */
  get primaryKey(): Buffer {
    return Buffer.from(this.#keys[0] as Buffer);
  }

  /** Every installed key, the primary first (the order in which decryption tries them). */
  get keys(): Buffer[] {
    return this.#keys.map((k) => Buffer.from(k));
  }

  /** Install a key (no-op when already installed); it does not become primary. */
  addKey(key: Uint8Array): void {
    validateKey(key);
    if (this.#keys.some((k) => same(k, key))) return;
    this.#keys.push(Buffer.from(key));
  }

  /** Make an installed key the primary one. */
  useKey(key: Uint8Array): void {
    const i = this.#keys.findIndex((k) => same(k, key));
    if (i < 0) throw gossipWireError(GossipWireErrorCode.KEY, 'Requested key is not in the keyring');
    const [k] = this.#keys.splice(i, 1);
    this.#keys.unshift(k as Buffer);
  }

  /** Remove a key that is not the primary one (no-op when not installed). */
  removeKey(key: Uint8Array): void {
    if (same(this.#keys[0] as Buffer, key)) throw gossipWireError(GossipWireErrorCode.KEY, 'Removing the primary key is not allowed');
    this.#keys = this.#keys.filter((k) => !same(k, key));
  }
}
