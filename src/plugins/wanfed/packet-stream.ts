/**
 * Gossip packets over one TLS connection (spec §2.4, ALPN `consul/wan-gossip/packet`): frames of
 * a u32 big-endian length and that many bytes, each one memberlist packet. The receiving side
 * drops the connection after 2 minutes without a frame, and on a frame of 0 bytes or over
 * 4 MiB — that connection only: everything else keeps serving.
 */
import type { Duplex } from 'node:stream';
import { errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';

/** Idle time after which a pooled packet connection is closed (both ends). */
export const GOSSIP_PACKET_MAX_IDLE_MS = 2 * 60_000;
/** Largest gossip packet carried through a gateway. */
export const GOSSIP_PACKET_MAX_BYTES = 4 * 1024 * 1024;

/** Encode one packet frame: u32 BE length, then the bytes. */
export function encodePacketFrame(bytes: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(4 + bytes.length);
  out.writeUInt32BE(bytes.length, 0);
  out.set(bytes, 4);
  return out;
}

/** Options of {@link servePacketStream}. */
export interface PacketStreamOptions {
  /** Hand one packet to the WAN pool. */
  readonly ingest: (buf: Buffer, from: string, timestamp: Date) => void;
  /** The peer (normally a gateway) as `ip:port`: the packets' source. */
  readonly remoteAddress: string;
  readonly logger: Logger;
  /** Close after this long without a frame (default 2 min). */
  readonly maxIdleMs?: number;
  /** Largest frame (default 4 MiB). */
  readonly maxBytes?: number;
  /** Aborts serving (agent stopping): the connection is closed. */
  readonly signal?: AbortSignal;
}

/**
 * Read packet frames from `conn` until it ends or misbehaves. Resolves when the connection is
 * closed; never rejects (a bad frame is logged once, with the reason, and closes `conn`).
 */
export function servePacketStream(conn: Duplex, o: PacketStreamOptions): Promise<void> {
  const maxIdle = o.maxIdleMs ?? GOSSIP_PACKET_MAX_IDLE_MS;
  const maxBytes = o.maxBytes ?? GOSSIP_PACKET_MAX_BYTES;
  return new Promise((resolve) => {
    let chunks: Buffer[] = [];
    let buffered = 0;
    let need = -1; // body length of the frame being read; -1 = reading the header
    let timer: NodeJS.Timeout | undefined;
    let done = false;
    const finish = (reason?: string): void => {
      if (done) return;
      done = true;
      if (timer) clearTimeout(timer);
      o.signal?.removeEventListener('abort', onAbort);
      if (reason) o.logger.warn('closing gossip packet connection', { remote: o.remoteAddress, reason });
      conn.destroy();
      resolve();
    };
    const onAbort = (): void => finish();
    const arm = (): void => {
      if (timer) clearTimeout(timer);
      timer = setTimeout(() => finish(), maxIdle);
      timer.unref();
    };
    const take = (n: number): Buffer => {
      const all = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, buffered);
      const head = all.subarray(0, n);
      const rest = all.subarray(n);
      chunks = rest.length > 0 ? [rest] : [];
      buffered = rest.length;
      return head;
    };
    conn.on('data', (chunk: Buffer) => {
      if (done) return;
      chunks.push(chunk);
      buffered += chunk.length;
      for (;;) {
        if (need < 0) {
          if (buffered < 4) return;
          const len = take(4).readUInt32BE(0);
          if (len === 0) return finish('packet too short (0 bytes)');
          if (len > maxBytes) return finish(`gossip packet size ${len} exceeds threshold of ${maxBytes}`);
          need = len;
        }
        if (buffered < need) return;
        // copy: the frame must not pin the (possibly larger) read buffer
        const frame = Buffer.from(take(need));
        need = -1;
        arm();
        try {
          o.ingest(frame, o.remoteAddress, new Date());
        } catch (err) {
          return finish(`failed to ingest RPC: ${errorMessage(err)}`);
        }
      }
    });
    conn.on('end', () => finish(need >= 0 || buffered > 0 ? 'connection ended inside a frame' : undefined));
    conn.on('close', () => finish());
    conn.on('error', () => finish());
    o.signal?.addEventListener('abort', onAbort, { once: true });
    arm();
  });
}
