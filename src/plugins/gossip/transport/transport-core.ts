/**
 * The parts every {@link GossipTransport} shares: one packet and one stream handler, safe
 * delivery (a throwing handler never kills the transport), validation of inbound packets with
 * rate-limited warnings, ingestion, dial deadlines (signal + timeout + shutdown), and tracking of
 * the streams handed out so `shutdown()` can free them. Transports extend it and add the I/O.
 */
import { setMaxListeners } from 'node:events';
import type { Duplex } from 'node:stream';
import { ErrorCode, MeshfedError, abortError, errorMessage } from '../../../core/errors.js';
import { createLogger, type Logger } from '../../../core/logger.js';
import { GossipTransportErrorCode } from './errors.js';
import {
  DEFAULT_DIAL_TIMEOUT_MS,
  MAX_UDP_PACKET_SIZE,
  type DialOptions,
  type GossipAddress,
  type GossipPacket,
  type PacketHandler,
  type StreamHandler,
} from './gossip-transport.js';
import { RateLimitedLog } from './rate-limited-log.js';

/** Options shared by every transport built on {@link TransportCore}. */
export interface TransportCoreOptions {
  /** Logger (a `component: 'gossip-transport'` child is used). Default: silent. */
  readonly logger?: Logger;
  /** Largest packet sent or accepted from the network (default {@link MAX_UDP_PACKET_SIZE}). */
  readonly maxPacketSize?: number;
  /** Rate limit of identical warnings about bad input, in ms (default 60 000). */
  readonly warnIntervalMs?: number;
  /** Default dial timeout when `dialAddress` is not given one (default {@link DEFAULT_DIAL_TIMEOUT_MS}). */
  readonly dialTimeoutMs?: number;
}

/** Counters of a transport, for tests and metrics. */
export interface TransportStats {
  /** Packets delivered to the packet handler (network and ingested). */
  readonly packetsDelivered: number;
  /** Packets dropped: empty, oversize, no handler, or after shutdown. */
  readonly packetsDropped: number;
  /** Streams handed to the stream handler (accepted and ingested). */
  readonly streamsDelivered: number;
}

/** Shared implementation of handlers, ingestion, dial deadlines and stream tracking. */
export abstract class TransportCore {
  /** Largest packet sent or accepted from the network. */
  readonly maxPacketSize: number;
  /** The component logger. */
  protected readonly log: Logger;
  /** Fires on shutdown: aborts pending dials. */
  protected readonly shutdownSignal: AbortSignal;
  readonly #shutdown = new AbortController();
  readonly #warnings: RateLimitedLog;
  readonly #dialTimeoutMs: number;
  readonly #streams = new Set<Duplex>();
  #packetHandler: PacketHandler | undefined;
  #streamHandler: StreamHandler | undefined;
  #stats = { packetsDelivered: 0, packetsDropped: 0, streamsDelivered: 0 };

  protected constructor(options: TransportCoreOptions) {
    this.log = (options.logger ?? createLogger({ level: 'silent' })).child({ component: 'gossip-transport' });
    this.maxPacketSize = options.maxPacketSize ?? MAX_UDP_PACKET_SIZE;
    this.#dialTimeoutMs = options.dialTimeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS;
    this.#warnings = new RateLimitedLog(this.log, { intervalMs: options.warnIntervalMs ?? 60_000 });
    this.shutdownSignal = this.#shutdown.signal;
    // Every pending dial listens on it; hundreds of concurrent dials are normal during push-pull.
    setMaxListeners(0, this.shutdownSignal);
  }

  /** Counters since creation. */
  get stats(): TransportStats {
    return { ...this.#stats };
  }

  /** Whether `shutdown()` has begun. */
  get isShutdown(): boolean {
    return this.#shutdown.signal.aborted;
  }

  /** See {@link GossipTransport.onPacket}. */
  onPacket(handler: PacketHandler): () => void {
    if (this.#packetHandler) {
      throw new MeshfedError(GossipTransportErrorCode.HANDLER, 'a gossip packet handler is already set; remove it (call the function onPacket returned) first');
    }
    this.#packetHandler = handler;
    return () => {
      if (this.#packetHandler === handler) this.#packetHandler = undefined;
    };
  }

  /** See {@link GossipTransport.onStream}. */
  onStream(handler: StreamHandler): () => void {
    if (this.#streamHandler) {
      throw new MeshfedError(GossipTransportErrorCode.HANDLER, 'a gossip stream handler is already set; remove it (call the function onStream returned) first');
    }
    this.#streamHandler = handler;
    return () => {
      if (this.#streamHandler === handler) this.#streamHandler = undefined;
    };
  }

  /** See {@link GossipTransport.ingestPacket}. */
  ingestPacket(buf: Buffer, from: string, timestamp: Date): void {
    this.#throwIfShutdown('ingest a packet');
    if (buf.length < 1) {
      this.#stats.packetsDropped++;
      throw new MeshfedError(GossipTransportErrorCode.PACKET, `ingested gossip packet from ${from} is too short (0 bytes); close the connection it came from`);
    }
    this.#deliverPacket({ buf, from, timestamp });
  }

  /** See {@link GossipTransport.ingestStream}. */
  ingestStream(conn: Duplex): void {
    if (this.isShutdown) {
      conn.destroy();
      this.#throwIfShutdown('ingest a stream');
    }
    this.deliverStream(conn);
  }

  /** A datagram read from the network: validate (≥ 1 byte, ≤ maxPacketSize), then deliver. */
  protected receivePacket(buf: Buffer, from: string, timestamp: Date): void {
    if (this.isShutdown) {
      this.#stats.packetsDropped++;
      return;
    }
    if (buf.length < 1) {
      this.#stats.packetsDropped++;
      this.#warnings.warn('empty-packet', 'dropped a gossip packet that is too short (0 bytes)', { from });
      return;
    }
    if (buf.length > this.maxPacketSize) {
      this.#stats.packetsDropped++;
      this.#warnings.warn('oversize-packet', `dropped a gossip packet larger than ${this.maxPacketSize} bytes`, { from, bytes: buf.length });
      return;
    }
    this.#deliverPacket({ buf, from, timestamp });
  }

  #deliverPacket(packet: GossipPacket): void {
    const handler = this.#packetHandler;
    if (!handler) {
      this.#stats.packetsDropped++;
      this.log.debug('dropped a gossip packet: no packet handler is set', { from: packet.from });
      return;
    }
    this.#stats.packetsDelivered++;
    try {
      handler(packet);
    } catch (err) {
      this.#warnings.warn('packet-handler', `gossip packet handler threw: ${errorMessage(err)}`, { from: packet.from });
    }
  }

  /** An accepted or ingested stream: track it, hand it to the handler (or close it). */
  protected deliverStream(conn: Duplex): void {
    const handler = this.#streamHandler;
    if (!handler) {
      this.log.debug('closed a gossip stream: no stream handler is set');
      conn.destroy();
      return;
    }
    this.trackStream(conn);
    this.#stats.streamsDelivered++;
    try {
      handler(conn);
    } catch (err) {
      this.#warnings.warn('stream-handler', `gossip stream handler threw: ${errorMessage(err)}`);
      conn.destroy();
    }
  }

  /** Remember `conn` until it closes, so shutdown can destroy it. */
  protected trackStream(conn: Duplex): void {
    if (conn.destroyed) return;
    this.#streams.add(conn);
    conn.once('close', () => this.#streams.delete(conn));
  }

  /** Validate an outgoing packet; throws `MESHFED_ERR_GOSSIP_PACKET` or `…_SHUTDOWN`. */
  protected checkOutgoing(bytes: Uint8Array, to: GossipAddress): void {
    this.#throwIfShutdown(`send a packet to ${to.addr}`);
    if (bytes.length < 1) {
      throw new MeshfedError(GossipTransportErrorCode.PACKET, `refusing to send an empty gossip packet to ${to.addr}: packets carry at least a message type byte`);
    }
    if (bytes.length > this.maxPacketSize) {
      throw new MeshfedError(
        GossipTransportErrorCode.PACKET,
        `gossip packet to ${to.addr} is ${bytes.length} bytes, more than the maximum ${this.maxPacketSize}; send it over a stream instead`,
      );
    }
  }

  /**
   * Run `dial` under one signal that fires on the caller's signal, the timeout or shutdown, and turn
   * its failure into the documented error codes. `dial` must destroy any half-open connection when
   * its signal fires.
   */
  protected async dialWithDeadline(to: GossipAddress, options: DialOptions, dial: (signal: AbortSignal) => Promise<Duplex>): Promise<Duplex> {
    const what = `dial gossip stream to ${to.name ? `${to.name} ` : ''}(${to.addr})`;
    this.#throwIfShutdown(what);
    const user = options.signal;
    if (user?.aborted) throw abortError(user, what);
    const timeoutMs = options.timeoutMs ?? this.#dialTimeoutMs;
    const ac = new AbortController();
    let timedOut = false;
    const onAbort = (): void => ac.abort();
    user?.addEventListener('abort', onAbort, { once: true });
    this.shutdownSignal.addEventListener('abort', onAbort, { once: true });
    const timer = setTimeout(() => {
      timedOut = true;
      ac.abort();
    }, timeoutMs);
    // Not unref'd: a pending dial is work in progress (an in-memory black hole has no socket to keep
    // the loop alive). It is always cleared below, and shutdown aborts every pending dial.
    try {
      const conn = await dial(ac.signal);
      if (ac.signal.aborted) {
        conn.destroy();
        throw new Error('aborted');
      }
      this.trackStream(conn);
      return conn;
    } catch (err) {
      if (user?.aborted) throw abortError(user, what);
      if (this.isShutdown) throw new MeshfedError(GossipTransportErrorCode.SHUTDOWN, `${what}: the transport was shut down`, { cause: err });
      if (timedOut) {
        throw new MeshfedError(GossipTransportErrorCode.DIAL_TIMEOUT, `${what} timed out after ${timeoutMs} ms; is the node reachable?`, { cause: err });
      }
      if (err instanceof MeshfedError && err.code !== ErrorCode.ABORTED) throw err;
      throw new MeshfedError(GossipTransportErrorCode.DIAL, `${what} failed: ${errorMessage(err)}; check that the node is up and its gossip port is reachable`, {
        cause: err,
      });
    } finally {
      clearTimeout(timer);
      user?.removeEventListener('abort', onAbort);
      this.shutdownSignal.removeEventListener('abort', onAbort);
    }
  }

  /** Mark shut down (idempotent): aborts pending dials and destroys every tracked stream. */
  protected beginShutdown(): boolean {
    if (this.isShutdown) return false;
    this.#shutdown.abort(new MeshfedError(GossipTransportErrorCode.SHUTDOWN, 'gossip transport shut down'));
    this.#packetHandler = undefined;
    this.#streamHandler = undefined;
    for (const s of this.#streams) s.destroy();
    this.#streams.clear();
    return true;
  }

  #throwIfShutdown(what: string): void {
    if (this.isShutdown) {
      throw new MeshfedError(GossipTransportErrorCode.SHUTDOWN, `cannot ${what}: the gossip transport was shut down`);
    }
  }
}
