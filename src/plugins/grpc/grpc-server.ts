/**
 * The internal gRPC server of one agent (spec §2.2 byte 8, §2.3 `consul/rpc-grpc`): a
 * `@grpc/grpc-js` `Server` that never listens itself. The RPC listener hands it connections it
 * accepted with type byte 8 (after the optional `0x03` TLS layer) or native TLS with ALPN
 * `consul/rpc-grpc`; TLS is already terminated there, so they are injected with insecure server
 * credentials through grpc-js's connection injector. A connection is injected only after it sent
 * the HTTP/2 client preface: anything else is logged once and closed, and the port keeps serving.
 */
import { Duplex } from 'node:stream';
import * as grpcJs from '@grpc/grpc-js';
import { errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { RpcAcceptInfo } from '../../core/types.js';
import { readFirstChunk } from '../rpc/index.js';
import { GrpcErrorCode, grpcError } from './errors.js';

/** The HTTP/2 client connection preface (RFC 9113 §3.4): every gRPC connection starts with it. */
export const HTTP2_CLIENT_PREFACE: Buffer = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** Settings of {@link InternalGrpcServer}. */
export interface InternalGrpcServerOptions {
  /** Component logger. */
  readonly logger: Logger;
  /** Time a dispatched connection has to send the HTTP/2 preface (`limits.rpc_handshake_timeout`; 0 = none). */
  readonly prefaceTimeoutMs: number;
  /** grpc-js server options (message size limits, keepalive, …). */
  readonly serverOptions?: grpcJs.ServerOptions;
}

/** Counters for status and tests. */
export interface InternalGrpcServerStats {
  /** Connections dispatched with type byte 8 (plain or inside `0x03` TLS). */
  acceptedTypeByte: number;
  /** Connections dispatched by native TLS with ALPN `consul/rpc-grpc` (through mesh gateways). */
  acceptedAlpn: number;
  /** Connections handed to the gRPC server after a valid preface. */
  injected: number;
  /** Connections closed before injection: no preface in time, or not HTTP/2. */
  rejected: number;
}

type ConnectionInjector = ReturnType<grpcJs.Server['createConnectionInjector']>;

/**
 * One agent's internal gRPC server. Add services with {@link addService} before the agent
 * starts (in a plugin's `apply`); the `grpc` plugin feeds it connections and closes it on stop.
 *
 * @example
 * ```ts
 * const server = agent.services.get(GrpcTokens.Server); // in your plugin's apply()
 * server.addService(EchoService, { echo: (call, cb) => cb(null, call.request) });
 * ```
 */
export class InternalGrpcServer {
  readonly #o: InternalGrpcServerOptions;
  readonly #server: grpcJs.Server;
  readonly #injector: ConnectionInjector;
  readonly #pending = new Set<Duplex>();
  readonly #services: string[] = [];
  #started = false;
  #closed = false;
  /** Counters (see {@link InternalGrpcServerStats}). */
  readonly stats: InternalGrpcServerStats = { acceptedTypeByte: 0, acceptedAlpn: 0, injected: 0, rejected: 0 };

  constructor(options: InternalGrpcServerOptions) {
    this.#o = options;
    this.#server = new grpcJs.Server(options.serverOptions);
    // TLS (byte 3 or native ALPN) was terminated by the RPC listener: the bytes here are HTTP/2.
    this.#injector = this.#server.createConnectionInjector(grpcJs.ServerCredentials.createInsecure());
  }

  /** Names of the services added (their method paths' service part, e.g. `meshfed.test.Echo`). */
  get services(): readonly string[] {
    return [...this.#services];
  }

  /**
   * Serve a service: `definition` maps method names to paths and (de)serializers (from
   * `@grpc/proto-loader`, generated code, or hand-written with Buffer serializers), `implementation`
   * maps the same names to handlers. Valid until the agent starts.
   * @throws {MeshfedError} `MESHFED_ERR_GRPC_SERVICE` after start, or when a method path is served twice
   */
  addService(definition: grpcJs.ServiceDefinition, implementation: grpcJs.UntypedServiceImplementation): void {
    if (this.#started || this.#closed) {
      throw grpcError(GrpcErrorCode.SERVICE, 'gRPC services must be added before the agent starts: call addService in your plugin’s apply()');
    }
    const paths = Object.values(definition).map((m) => m.path);
    try {
      this.#server.addService(definition, implementation);
    } catch (err) {
      throw grpcError(GrpcErrorCode.SERVICE, `could not add gRPC service with methods ${paths.join(', ')}: ${errorMessage(err)} (is it added twice?)`, err);
    }
    for (const p of paths) {
      const name = p.split('/')[1] ?? p;
      if (!this.#services.includes(name)) this.#services.push(name);
    }
  }

  /** Freeze the service list (the `grpc` plugin calls it at start). */
  markStarted(): void {
    this.#started = true;
  }

  /**
   * Take a connection the RPC listener dispatched (type byte 8 or ALPN `consul/rpc-grpc`): wait
   * for the HTTP/2 client preface, then inject it into the gRPC server. Never throws; a bad
   * connection is logged once and destroyed.
   */
  accept(conn: Duplex, info: RpcAcceptInfo): void {
    if (typeof info.key === 'number') this.stats.acceptedTypeByte++;
    else this.stats.acceptedAlpn++;
    if (this.#closed) {
      conn.destroy();
      return;
    }
    this.#pending.add(conn);
    conn.on('error', () => undefined); // reported once below (or by the HTTP/2 session)
    void this.#admit(conn, info).finally(() => this.#pending.delete(conn));
  }

  async #admit(conn: Duplex, info: RpcAcceptInfo): Promise<void> {
    const deadline = new AbortController();
    const timer = this.#o.prefaceTimeoutMs > 0 ? setTimeout(() => deadline.abort(new Error('preface timeout')), this.#o.prefaceTimeoutMs) : undefined;
    const signal = AbortSignal.any([deadline.signal, info.signal]);
    const fields = { remote: info.remoteAddress, via: typeof info.key === 'number' ? `type byte ${info.key}` : `ALPN ${info.key}` };
    try {
      let seen = Buffer.alloc(0);
      while (seen.length < HTTP2_CLIENT_PREFACE.length) {
        seen = Buffer.concat([seen, await readFirstChunk(conn, signal)]);
        const n = Math.min(seen.length, HTTP2_CLIENT_PREFACE.length);
        if (!seen.subarray(0, n).equals(HTTP2_CLIENT_PREFACE.subarray(0, n))) {
          this.#reject(conn, 'warn', 'gRPC connection did not start with the HTTP/2 client preface: closing it', fields);
          return;
        }
      }
      // Put the preface (and whatever followed it) back for the HTTP/2 session.
      conn.unshift(seen);
    } catch (err) {
      if (info.signal.aborted || this.#closed) this.#reject(conn, 'debug', 'gRPC connection closed: agent stopping', fields);
      else if (deadline.signal.aborted) this.#reject(conn, 'warn', 'gRPC connection sent no HTTP/2 preface in time: closing it', { ...fields, timeout_ms: this.#o.prefaceTimeoutMs });
      else this.#reject(conn, 'debug', 'gRPC connection closed before the HTTP/2 preface', { ...fields, err: errorMessage(err) });
      return;
    } finally {
      clearTimeout(timer);
    }
    if (this.#closed) {
      conn.destroy();
      return;
    }
    this.stats.injected++;
    this.#injector.injectConnection(jsLevelStream(conn));
  }

  #reject(conn: Duplex, level: 'debug' | 'warn', msg: string, fields: Record<string, unknown>): void {
    this.stats.rejected++;
    this.#o.logger[level](msg, fields);
    conn.destroy();
  }

  /** Close every connection (pending and injected) and shut the gRPC server down. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const c of this.#pending) c.destroy();
    this.#pending.clear();
    this.#injector.destroy();
    this.#server.forceShutdown();
  }
}

/**
 * `conn` behind a plain JavaScript Duplex. An HTTP/2 session consumes a socket's native handle
 * directly and would miss bytes already read into JavaScript (the type byte's chunk, the preface
 * we checked and put back); through a JS-level stream it reads them like any later byte. Ending
 * or destroying either side ends or destroys the other.
 */
function jsLevelStream(conn: Duplex): Duplex {
  const d = Duplex.from({ readable: conn, writable: conn });
  d.once('close', () => conn.destroy());
  conn.once('close', () => d.destroy());
  return d;
}
