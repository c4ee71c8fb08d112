/** Test helpers: session pairs over memory or real TCP, and a hand-driven raw yamux peer. */
import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { FrameType, HEADER_SIZE, YamuxSession, encodeFrameHeader, type YamuxSessionOptions, type YamuxStream } from '../../../src/plugins/yamux/index.js';
import { duplexPair, waitFor } from '../../../src/testing/index.js';

/** Where a test runs: in-memory duplex pair, or a real TCP connection on 127.0.0.1. */
export type Transport = 'memory' | 'tcp';

/** Two connected ends plus a cleanup. */
export interface ConnPair {
  readonly a: Duplex;
  readonly b: Duplex;
  close(): Promise<void>;
}

/** A connected pair: `a` dials, `b` is accepted. */
export async function connPair(transport: Transport): Promise<ConnPair> {
  if (transport === 'memory') {
    const [a, b] = duplexPair();
    return {
      a,
      b,
      close: async () => {
        a.destroy();
        b.destroy();
      },
    };
  }
  const server: Server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const a = connect((server.address() as { port: number }).port, '127.0.0.1');
  await once(a, 'connect');
  const [b] = await accepted;
  return {
    a,
    b,
    close: async () => {
      a.destroy();
      b.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}

/** A client and a server session over one connection. */
export interface SessionPair {
  readonly client: YamuxSession;
  readonly server: YamuxSession;
  close(): Promise<void>;
}

/** Client/server sessions over `transport`. */
export async function sessionPair(transport: Transport, clientOptions: YamuxSessionOptions = {}, serverOptions: YamuxSessionOptions = {}): Promise<SessionPair> {
  const conns = await connPair(transport);
  const client = YamuxSession.client(conns.a, { keepAliveIntervalMs: 0, ...clientOptions });
  const server = YamuxSession.server(conns.b, { keepAliveIntervalMs: 0, ...serverOptions });
  return {
    client,
    server,
    close: async () => {
      await Promise.all([client.close(), server.close()]);
      await conns.close();
    },
  };
}

/** Collect a readable to its end (shared with the interop peer ops). */
export { readAll } from './peer-ops.js';

/** Deterministic pseudo-random bytes. */
export function pattern(n: number, seed = 1): Buffer {
  const b = Buffer.allocUnsafe(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

/** Write `data` respecting backpressure, then end. */
export async function writeAllAndEnd(stream: YamuxStream, data: Buffer, chunk = 64 * 1024): Promise<void> {
  for (let off = 0; off < data.length; off += chunk) {
    if (!stream.write(data.subarray(off, off + chunk))) await once(stream, 'drain');
  }
  stream.end();
}

/** A frame seen by a {@link RawPeer}. */
export interface RawFrame {
  readonly version: number;
  readonly type: number;
  readonly flags: number;
  readonly streamId: number;
  readonly length: number;
  /** Payload of data frames. */
  readonly payload?: Buffer;
}

/**
 * The far end of a session driven by hand: the test writes frames (or garbage) and inspects the
 * frames the session sends.
 */
export class RawPeer {
  readonly frames: RawFrame[] = [];
  readonly conn: Duplex;
  #buf = Buffer.alloc(0);

  constructor(conn: Duplex) {
    this.conn = conn;
    conn.on('error', () => undefined);
    // Like a TCP socket without allowHalfOpen: when the session ends its side, end ours.
    conn.on('end', () => conn.end());
    conn.on('data', (d: Buffer) => {
      this.#buf = Buffer.concat([this.#buf, d]);
      for (;;) {
        if (this.#buf.length < HEADER_SIZE) return;
        const b = this.#buf;
        const f = { version: b[0] as number, type: b[1] as number, flags: b.readUInt16BE(2), streamId: b.readUInt32BE(4), length: b.readUInt32BE(8) };
        if (f.type === FrameType.Data) {
          if (b.length < HEADER_SIZE + f.length) return;
          this.frames.push({ ...f, payload: Buffer.from(b.subarray(HEADER_SIZE, HEADER_SIZE + f.length)) });
          this.#buf = b.subarray(HEADER_SIZE + f.length);
        } else {
          this.frames.push(f);
          this.#buf = b.subarray(HEADER_SIZE);
        }
      }
    });
  }

  /** Send one frame (payload only for data frames). */
  send(type: number, flags: number, streamId: number, length: number, payload?: Buffer): void {
    const hdr = encodeFrameHeader(type, flags, streamId, length);
    this.conn.write(payload ? Buffer.concat([hdr, payload]) : hdr);
  }

  /** Send raw bytes. */
  sendBytes(bytes: Buffer): void {
    this.conn.write(bytes);
  }

  /** Wait for a frame matching `pred` (already received or future). */
  async waitFrame(pred: (f: RawFrame) => boolean, message = 'expected frame', timeoutMs = 5000): Promise<RawFrame> {
    return (await waitFor(() => this.frames.find(pred), { message, timeoutMs })) as RawFrame;
  }

  /** Total data payload bytes received for a stream. */
  dataBytes(streamId: number): number {
    return this.frames.filter((f) => f.type === FrameType.Data && f.streamId === streamId).reduce((n, f) => n + f.length, 0);
  }
}

/** A session of the given side facing a {@link RawPeer} over an in-memory pair. */
export function rawPair(side: 'client' | 'server', options: YamuxSessionOptions = {}): { session: YamuxSession; peer: RawPeer } {
  const [a, b] = duplexPair({ highWaterMark: 16 * 1024 });
  const opts = { keepAliveIntervalMs: 0, ...options };
  const session = side === 'client' ? YamuxSession.client(a, opts) : YamuxSession.server(a, opts);
  return { session, peer: new RawPeer(b) };
}

/** Active timers right now (`process.getActiveResourcesInfo()`). */
export function activeTimers(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'Timeout' || r === 'Immediate').length;
}
