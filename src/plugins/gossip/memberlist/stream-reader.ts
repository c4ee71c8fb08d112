/**
 * Reads one memberlist stream message (push-pull, TCP ping/ack, user message, error) from a
 * Duplex as it arrives: memberlist never half-closes, so the end of a message is found by
 * decoding, not by EOF. Bounded in bytes and time; every failure is a MeshfedError.
 */
import type { Duplex } from 'node:stream';
import { MeshfedError } from '../../../core/errors.js';
import { decode, MsgpackStreamDecoder } from '../../rpc/msgpack/index.js';
import type {
  Keyring} from '../wire/index.js';
import {
  GossipWireErrorCode,
  MAX_PUSH_STATE_BYTES,
  MessageType,
  UserMsgHeader,
  decodeMessage,
  decompressMessage,
  decryptStream,
  encryptedStreamFrameLength,
  gossipWireError,
  type WireDecodeOptions,
  type WireMessage,
} from '../wire/index.js';

/** Error code of a stream that ended, failed or timed out before a whole message arrived. */
export const STREAM_EOF = 'MESHFED_ERR_GOSSIP_STREAM_EOF';

/** A user message read from a stream (type 8 + `{UserMsgLen}` + payload). */
export interface StreamUserMessage {
  readonly type: typeof MessageType.user;
  readonly payload: Buffer;
}

/** What {@link readStreamMessage} returns. */
export type StreamMessage = Exclude<WireMessage, { type: typeof MessageType.user }> | StreamUserMessage;

/** Options of {@link readStreamMessage}. */
export interface ReadStreamOptions {
  /** Keys to decrypt with; when set and `verifyIncoming`, plaintext streams are refused. */
  readonly keyring?: Keyring | undefined;
  /** Refuse unencrypted streams when a keyring is set (memberlist `GossipVerifyIncoming`, default true). */
  readonly verifyIncoming?: boolean;
  /** Give up at this absolute time (ms since epoch, `Date.now()` clock). */
  readonly deadline: number;
  /** Decoder bounds (push-pull node count, msgpack limits). */
  readonly decode?: WireDecodeOptions;
  /** Most bytes to buffer (default 20 MiB + 64 KiB, memberlist's push-pull limit plus headers). */
  readonly maxBytes?: number;
}

/** Collects a stream's bytes and wakes a waiter on every new chunk. */
class Collector {
  readonly #conn: Duplex;
  readonly #maxBytes: number;
  #chunks: Buffer[] = [];
  #length = 0;
  #ended: Error | undefined;
  #wake: (() => void) | undefined;
  readonly #onData = (c: Buffer): void => {
    this.#chunks.push(c);
    this.#length += c.length;
    if (this.#length > this.#maxBytes) {
      this.#ended = gossipWireError(GossipWireErrorCode.LIMIT, `gossip: stream message larger than ${this.#maxBytes} bytes`);
    }
    this.#wake?.();
  };
  readonly #onEnd = (): void => {
    this.#ended ??= new MeshfedError(STREAM_EOF, 'gossip: stream ended before a whole message arrived (EOF)');
    this.#wake?.();
  };
  readonly #onError = (err: Error): void => {
    this.#ended ??= new MeshfedError(STREAM_EOF, `gossip: stream failed: ${err.message}`, { cause: err });
    this.#wake?.();
  };

  constructor(conn: Duplex, maxBytes: number) {
    this.#conn = conn;
    this.#maxBytes = maxBytes;
    conn.on('data', this.#onData);
    conn.on('end', this.#onEnd);
    conn.on('close', this.#onEnd);
    conn.on('error', this.#onError);
  }

  get length(): number {
    return this.#length;
  }

  bytes(): Buffer {
    if (this.#chunks.length > 1) this.#chunks = [Buffer.concat(this.#chunks)];
    return this.#chunks[0] ?? Buffer.alloc(0);
  }

  /** Wait for more bytes than `have`; rejects on end, error, limit or deadline. */
  async more(have: number, deadline: number): Promise<void> {
    while (this.#length <= have) {
      if (this.#ended) throw this.#ended;
      const left = deadline - Date.now();
      if (left <= 0) throw new MeshfedError(STREAM_EOF, 'gossip: i/o timeout reading a stream message');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.#wake = undefined;
    }
    if (this.#ended && this.#length > this.#maxBytes) throw this.#ended;
  }

  dispose(): void {
    this.#conn.off('data', this.#onData);
    this.#conn.off('end', this.#onEnd);
    this.#conn.off('close', this.#onEnd);
    this.#conn.off('error', this.#onError);
  }
}

function isTruncated(err: unknown): boolean {
  return err instanceof MeshfedError && err.code === GossipWireErrorCode.TRUNCATED;
}

/** Decode a complete plaintext stream message (compress wrapper allowed). TRUNCATED if incomplete. */
export function decodeStreamMessage(plain: Buffer, options: WireDecodeOptions = {}): StreamMessage {
  if (plain.length < 1) throw gossipWireError(GossipWireErrorCode.TRUNCATED, 'gossip: empty stream message');
  let msg = plain;
  if (msg[0] === MessageType.compress) {
    msg = decompressMessage(msg, options);
    if (msg.length < 1) throw gossipWireError(GossipWireErrorCode.DECODE, 'gossip: empty compressed stream message');
  }
  if (msg[0] === MessageType.user) {
    const dec = new MsgpackStreamDecoder({ ...options.msgpack, maxObjectBytes: Math.max(1, msg.length) });
    dec.push(msg.subarray(1));
    const obj = dec.next();
    if (!obj) throw gossipWireError(GossipWireErrorCode.TRUNCATED, 'gossip: truncated user message header');
    const header = decode(obj, UserMsgHeader, options.msgpack);
    const start = 1 + obj.length;
    if (header.UserMsgLen < 0 || header.UserMsgLen > MAX_PUSH_STATE_BYTES) {
      throw gossipWireError(GossipWireErrorCode.LIMIT, `gossip: user message length ${header.UserMsgLen} out of range`);
    }
    if (msg.length - start < header.UserMsgLen) {
      throw gossipWireError(GossipWireErrorCode.TRUNCATED, `Failed to read full user message (${msg.length - start} / ${header.UserMsgLen})`);
    }
    return { type: MessageType.user, payload: Buffer.from(msg.subarray(start, start + header.UserMsgLen)) };
  }
  const m = decodeMessage(msg, options);
  if (m.type === MessageType.user) throw gossipWireError(GossipWireErrorCode.DECODE, 'gossip: unexpected user message');
  return m;
}

/**
 * Read one message from a stream. Throws (MeshfedError) on EOF, timeout, oversize, bad
 * encryption (texts as memberlist's: "Remote state is encrypted and encryption is not
 * configured", "Encryption is configured but remote state is not encrypted") or bad bytes.
 * Listeners are removed before it returns; the stream is left open.
 */
export async function readStreamMessage(conn: Duplex, options: ReadStreamOptions): Promise<StreamMessage> {
  const c = new Collector(conn, options.maxBytes ?? MAX_PUSH_STATE_BYTES + 65_536);
  try {
    await c.more(0, options.deadline);
    const first = c.bytes()[0];
    if (first === MessageType.encrypt) {
      if (!options.keyring) throw gossipWireError(GossipWireErrorCode.DECRYPT, 'Remote state is encrypted and encryption is not configured');
      while (c.length < 5) await c.more(c.length, options.deadline);
      const total = encryptedStreamFrameLength(c.bytes().subarray(0, 5));
      while (c.length < total) await c.more(c.length, options.deadline);
      const plain = decryptStream(options.keyring, c.bytes().subarray(0, total));
      return decodeStreamMessage(plain, options.decode);
    }
    if (options.keyring && (options.verifyIncoming ?? true)) {
      throw gossipWireError(GossipWireErrorCode.DECRYPT, 'Encryption is configured but remote state is not encrypted');
    }
    for (;;) {
      try {
        return decodeStreamMessage(c.bytes(), options.decode);
      } catch (err) {
        if (!isTruncated(err)) throw err;
      }
      await c.more(c.length, options.deadline);
    }
  } finally {
    c.dispose();
  }
}
