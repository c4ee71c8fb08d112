/**
 * The server RPC port (spec §2.1–§2.2): per-client connection limit, a handshake deadline that
 * covers the first byte and any TLS handshake, first-byte sniffing (a byte above the highest
 * type byte is a native TLS ClientHello: mandatory mTLS, then ALPN dispatch), type byte 3 (TLS
 * upgrade, then an inner byte), and dispatch of everything else through `onRpcAccept`. A bad
 * connection is logged once and closed; nothing a client sends stops the listener.
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { listenOn } from '../../core/address.js';
import { errorMessage } from '../../core/errors.js';
import type { RpcAcceptDispatcher } from '../../core/kernel-services.js';
import type { Logger } from '../../core/logger.js';
import { RPC_MAX_TYPE_VALUE, RPC_NEXT_PROTOS, RpcType } from '../../core/protocol.js';
import type { TlsConfigurator } from '../tls/index.js';

/** Settings of {@link RpcListener}. */
export interface RpcListenerOptions {
  readonly dispatcher: RpcAcceptDispatcher;
  readonly logger: Logger;
  /** TLS configurator; without one (or without a certificate) only plain type bytes are accepted. */
  readonly tls?: TlsConfigurator | undefined;
  /** `tls.verify_incoming`: refuse bytes other than 3 (and 7) outside TLS. */
  readonly verifyIncoming: boolean;
  /** `limits.rpc_max_conns_per_client` (0 = unlimited). */
  readonly maxConnsPerClient: number;
  /** `limits.rpc_handshake_timeout` in ms (0 = none). */
  readonly handshakeTimeoutMs: number;
  /** Aborted when the agent stops: handed to every dispatched connection. */
  readonly signal: AbortSignal;
}

/** Counters for status and tests. */
export interface RpcListenerStats {
  accepted: number;
  dispatched: number;
  rejected: number;
}

/** The RPC port. */
export class RpcListener {
  readonly #o: RpcListenerOptions;
  readonly #perClient = new Map<string, number>();
  readonly #sockets = new Set<Socket>();
  #server: Server | undefined;
  #address: string | undefined;
  /** Counters: accepted TCP connections, dispatched to a handler, rejected (logged + closed). */
  readonly stats: RpcListenerStats = { accepted: 0, dispatched: 0, rejected: 0 };

  constructor(options: RpcListenerOptions) {
    this.#o = options;
  }

  /** `host:port` once listening. */
  get address(): string | undefined {
    return this.#address;
  }

  /** Number of open client connections. */
  get connections(): number {
    return this.#sockets.size;
  }

  /** Listen on `host:port` (0 = any free port). */
  async listen(host: string, port: number, signal: AbortSignal): Promise<string> {
    const server = createServer({ noDelay: true, keepAlive: true, pauseOnConnect: true, allowHalfOpen: true }, (s) => this.#onConnection(s));
    server.on('error', (err) => this.#o.logger.error('RPC listener error', { err: errorMessage(err) }));
    this.#address = await listenOn(server, host, port, signal);
    this.#server = server;
    return this.#address;
  }

  /** Stop accepting and close every connection (handlers see their connections end). */
  async close(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    for (const s of this.#sockets) s.destroy();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  #reject(conn: Duplex, level: 'debug' | 'warn' | 'error', msg: string, fields: Record<string, unknown>): void {
    this.stats.rejected++;
    this.#o.logger[level](msg, fields);
    conn.destroy();
  }

  #onConnection(socket: Socket): void {
    this.stats.accepted++;
    const ip = socket.remoteAddress ?? 'unknown';
    const remote = `${socket.remoteAddress}:${socket.remotePort}`;
    const n = (this.#perClient.get(ip) ?? 0) + 1;
    this.#perClient.set(ip, n);
    this.#sockets.add(socket);
    socket.once('close', () => {
      this.#sockets.delete(socket);
      const left = (this.#perClient.get(ip) ?? 1) - 1;
      if (left <= 0) this.#perClient.delete(ip);
      else this.#perClient.set(ip, left);
    });
    // Errors are reported through the handshake or by the owner of the connection later.
    socket.on('error', () => undefined);
    if (this.#o.maxConnsPerClient > 0 && n > this.#o.maxConnsPerClient) {
      this.#reject(socket, 'warn', 'rejecting RPC connection: too many connections from this client', { remote, limit: this.#o.maxConnsPerClient });
      return;
    }
    const deadline = this.#o.handshakeTimeoutMs > 0 ? Date.now() + this.#o.handshakeTimeoutMs : Infinity;
    let timer: NodeJS.Timeout | undefined;
    const handshake = new AbortController();
    if (deadline !== Infinity) {
      timer = setTimeout(() => handshake.abort(new Error('handshake timeout')), this.#o.handshakeTimeoutMs);
    }
    const done = (): void => clearTimeout(timer);
    void this.#handle(socket, socket, false, remote, deadline, handshake.signal).finally(done);
  }

  /**
   * Sniff and dispatch one connection. `conn` is the byte stream (the socket, or the TLS socket
   * after a byte-3 upgrade); `raw` is the TCP socket, closed only through `conn` once wrapped.
   */
  async #handle(conn: Duplex, raw: Socket, isTLS: boolean, remote: string, deadline: number, handshake: AbortSignal): Promise<void> {
    let first: Buffer;
    try {
      first = await readFirstChunk(conn, handshake);
    } catch (err) {
      if (handshake.aborted) this.#reject(conn, 'warn', 'RPC handshake timed out', { remote, timeout_ms: this.#o.handshakeTimeoutMs });
      else this.#reject(conn, 'debug', 'RPC connection closed before the first byte', { remote, err: errorMessage(err) });
      return;
    }
    const byte = first[0] as number;
    const tls = this.#o.tls;
    const mtls = tls?.mutualTlsCapable() === true;

    if (!isTLS && mtls && byte > RPC_MAX_TYPE_VALUE) {
      // Native TLS (spec §2.2/§2.3): the ClientHello stays in the stream for the TLS socket.
      conn.unshift(first);
      let tlsSocket: TLSSocket;
      try {
        tlsSocket = await (tls).acceptTls(conn, {
          requireClientCert: true,
          alpnProtocols: RPC_NEXT_PROTOS,
          signal: handshake,
          timeoutMs: remaining(deadline),
        });
      } catch (err) {
        // acceptTls destroyed the connection.
        this.stats.rejected++;
        this.#o.logger.warn('native TLS handshake failed', { remote, err: errorMessage(err) });
        return;
      }
      const alpn = tlsSocket.alpnProtocol;
      if (typeof alpn !== 'string' || alpn === '') {
        this.#reject(tlsSocket, 'warn', 'native TLS connection without an ALPN protocol', { remote });
        return;
      }
      this.#dispatch(tlsSocket, alpn, remote, true, alpn);
      return;
    }

    const rest = first.subarray(1);
    if (rest.length > 0) conn.unshift(rest);

    if (this.#o.verifyIncoming && !isTLS && byte !== RpcType.TLS && byte !== RpcType.TLSInsecure) {
      this.#reject(conn, 'warn', 'Non-TLS connection attempted with VerifyIncoming set', { remote, byte });
      return;
    }

    if (byte === RpcType.TLS) {
      if (isTLS) {
        this.#reject(conn, 'warn', 'TLS connection attempting to establish inner TLS connection', { remote });
        return;
      }
      if (!tls) {
        this.#reject(conn, 'warn', 'TLS upgrade requested but TLS is not configured on this server', { remote });
        return;
      }
      let tlsSocket: TLSSocket;
      try {
        tlsSocket = await tls.acceptTls(conn, { requireClientCert: this.#o.verifyIncoming, signal: handshake, timeoutMs: remaining(deadline) });
      } catch (err) {
        this.stats.rejected++;
        this.#o.logger.warn('TLS upgrade handshake failed', { remote, err: errorMessage(err) });
        return;
      }
      // The deadline stays armed: the inner type byte counts against it too.
      await this.#handle(tlsSocket, raw, true, remote, deadline, handshake);
      return;
    }

    if (byte === RpcType.TLSInsecure) {
      this.#reject(conn, 'warn', 'insecure TLS (auto-encrypt) connections are not supported', { remote });
      return;
    }
    this.#dispatch(conn, byte, remote, isTLS, undefined);
  }

  #dispatch(conn: Duplex, key: number | string, remote: string, tls: boolean, alpn: string | undefined): void {
    let taken: boolean;
    try {
      taken = this.#o.dispatcher.dispatch(conn, { key, remoteAddress: remote, tls, alpn, signal: this.#o.signal });
    } catch (err) {
      this.#reject(conn, 'error', 'RPC connection handler failed', { remote, key, err: errorMessage(err) });
      return;
    }
    if (!taken) {
      this.#reject(conn, 'warn', typeof key === 'number' ? 'unrecognized RPC byte' : 'unrecognized ALPN protocol', { remote, [typeof key === 'number' ? 'byte' : 'alpn']: key });
      return;
    }
    this.stats.dispatched++;
  }
}

function remaining(deadline: number): number {
  return deadline === Infinity ? 0 : Math.max(1, deadline - Date.now());
}

/** Read the first chunk of a (paused) stream; the caller unshifts what it does not consume. */
export function readFirstChunk(conn: Duplex, signal: AbortSignal): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const cleanup = (): void => {
      conn.off('readable', onReadable);
      conn.off('end', onEnd);
      conn.off('close', onEnd);
      conn.off('error', onError);
      signal.removeEventListener('abort', onAbort);
    };
    const onReadable = (): void => {
      const chunk = conn.read() as Buffer | null;
      if (chunk === null || chunk.length === 0) return;
      cleanup();
      resolve(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      reject(new Error('connection closed'));
    };
    const onError = (err: Error): void => {
      cleanup();
      reject(err);
    };
    const onAbort = (): void => {
      cleanup();
      reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
    };
    if (signal.aborted) {
      onAbort();
      return;
    }
    conn.on('readable', onReadable);
    conn.once('end', onEnd);
    conn.once('close', onEnd);
    conn.once('error', onError);
    signal.addEventListener('abort', onAbort, { once: true });
    onReadable();
  });
}
