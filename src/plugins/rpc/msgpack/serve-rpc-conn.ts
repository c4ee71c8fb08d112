/**
 * The server side of net/rpc over msgpackrpc on one connection (Go's `rpc.ServeCodec` with
 * `msgpackrpc.NewServerCodec`): read header + body pairs, run handlers concurrently, write
 * each response (header `{Error, Seq, ServiceMethod}` + body) as soon as it is ready.
 *
 * As in Go: an unknown method gets Go's error text and an empty-struct body (`80`) and the
 * connection keeps serving; a body that is valid msgpack but does not fit the method's request
 * type gets an error reply too; when the client half-closes, in-flight calls still get their
 * replies before the connection is closed. Unlike Go, a stream that is not msgpack (or breaks a
 * decoder limit) closes the connection at once, logged once.
 */
import { setMaxListeners } from 'node:events';
import type { Duplex } from 'node:stream';
import { MeshfedError, errorMessage } from '../../../core/errors.js';
import type { Logger } from '../../../core/logger.js';
import { BatchedWriter } from './batched-writer.js';
import type { DecodeLimits } from './byte-reader.js';
import { decode, encodeInto } from './codec.js';
import { MsgpackRpcErrorCode, rpcError } from './errors.js';
import type { EndpointDefinition, EndpointRegistry, RpcContext } from './endpoint-registry.js';
import { Empty, RequestHeader, ResponseHeader } from './net-rpc.js';
import type { AnySchema } from './schema.js';
import { MsgpackStreamDecoder } from './stream-decoder.js';

/** Options of {@link serveRpcConn}. */
export interface ServeRpcConnOptions {
  /** Where connection problems and handler bugs are logged (once per connection). */
  readonly logger: Logger;
  /** Aborting it closes the connection; handlers see their `ctx.signal` abort. */
  readonly signal?: AbortSignal;
  /** Decoder limits for requests (depth, collection length, object size). */
  readonly limits?: DecodeLimits;
  /**
   * Calls running at once on this connection before the server stops reading (TCP
   * backpressure then slows the client down). Default 256.
   */
  readonly maxInFlight?: number;
}

/**
 * Serve msgpack-RPC on `conn` until it closes. Resolves when the connection has closed (never
 * rejects: connection problems are logged and end that connection only).
 *
 * @example
 * ```ts
 * const registry = new EndpointRegistry().registerAll(statusEndpoints({ leader: () => '', peers: () => [] }));
 * net.createServer({ allowHalfOpen: true }, (sock) => void serveRpcConn(sock, registry, { logger })).listen(0);
 * ```
 */
export function serveRpcConn(conn: Duplex, registry: EndpointRegistry, options: ServeRpcConnOptions): Promise<void> {
  return new RpcServerConn(conn, registry, options).done;
}

type Req = RequestHeader;

class RpcServerConn {
  readonly done: Promise<void>;
  readonly #conn: Duplex;
  readonly #registry: EndpointRegistry;
  readonly #logger: Logger;
  readonly #limits: DecodeLimits | undefined;
  readonly #maxInFlight: number;
  readonly #decoder: MsgpackStreamDecoder;
  readonly #writer: BatchedWriter;
  readonly #abort = new AbortController();
  readonly #remote: string | undefined;
  readonly #signal: AbortSignal | undefined;
  #resolveDone!: () => void;
  /** Header read, waiting for its body. */
  #header: Req | undefined;
  #inFlight = 0;
  #paused = false;
  /** No more requests will be read (EOF, protocol error, close). */
  #readDone = false;
  #closed = false;
  readonly #onSignal = (): void => {
    this.#conn.destroy();
  };

  constructor(conn: Duplex, registry: EndpointRegistry, options: ServeRpcConnOptions) {
    this.#conn = conn;
    this.#registry = registry;
    this.#logger = options.logger;
    this.#limits = options.limits;
    this.#maxInFlight = Math.max(1, options.maxInFlight ?? 256);
    this.#decoder = new MsgpackStreamDecoder(options.limits);
    // Every in-flight handler may listen on the connection's signal: that is not a leak.
    setMaxListeners(this.#maxInFlight + 16, this.#abort.signal);
    this.#writer = new BatchedWriter(conn);
    this.#remote = (conn as { remoteAddress?: string }).remoteAddress;
    this.done = new Promise((resolve) => {
      this.#resolveDone = resolve;
    });

    conn.on('data', (chunk: Buffer) => this.#onData(chunk));
    conn.on('end', () => this.#onEnd());
    conn.on('drain', () => this.#pump());
    conn.on('error', (err: Error) => {
      this.#logger.debug('RPC connection error', { remote: this.#remote, error: err.message });
    });
    conn.on('close', () => this.#onClose());
    const signal = options.signal;
    this.#signal = signal;
    if (signal) {
      if (signal.aborted) queueMicrotask(this.#onSignal);
      else signal.addEventListener('abort', this.#onSignal, { once: true });
    }
    if (conn.destroyed) queueMicrotask(() => this.#onClose());
  }

  #onData(chunk: Buffer): void {
    if (this.#readDone) return;
    this.#decoder.push(chunk);
    this.#pump();
  }

  /** Handle buffered frames while under the in-flight and write-buffer limits. */
  #pump(): void {
    const conn = this.#conn;
    while (!this.#readDone) {
      if (this.#inFlight >= this.#maxInFlight || conn.writableNeedDrain) {
        if (!this.#paused) {
          this.#paused = true;
          conn.pause();
        }
        return;
      }
      let frame: Uint8Array | undefined;
      try {
        frame = this.#decoder.next();
      } catch (err) {
        this.#protocolError(err);
        return;
      }
      if (!frame) break;
      this.#onFrame(frame);
    }
    if (this.#paused && !this.#readDone) {
      this.#paused = false;
      conn.resume();
    }
  }

  #onFrame(frame: Uint8Array): void {
    const header = this.#header;
    if (header === undefined) {
      try {
        this.#header = decode(frame, RequestHeader, this.#limits);
      } catch (err) {
        this.#protocolError(err, 'rpc: server cannot decode request');
      }
      return;
    }
    this.#header = undefined;
    const { endpoint, error } = this.#registry.resolve(header.ServiceMethod);
    if (!endpoint) {
      // Go discards the body and answers with the lookup error.
      this.#reply(header, error, undefined, Empty);
      return;
    }
    let request: unknown;
    try {
      request = decode(frame, endpoint.request, this.#limits);
    } catch (err) {
      // The frame was whole, so the stream is still in sync: answer this call, keep serving.
      this.#logger.debug('RPC request body does not fit the method', { method: header.ServiceMethod, remote: this.#remote, error: errorMessage(err) });
      this.#reply(header, errorMessage(err), undefined, Empty);
      return;
    }
    this.#invoke(endpoint, header, request);
  }

  #invoke(endpoint: EndpointDefinition, header: Req, request: unknown): void {
    this.#inFlight++;
    const ctx: RpcContext = {
      method: header.ServiceMethod,
      seq: header.Seq,
      signal: this.#abort.signal,
      logger: this.#logger,
      remoteAddress: this.#remote,
    };
    let result: unknown;
    try {
      result = endpoint.handler(request, ctx);
    } catch (err) {
      this.#finished(endpoint, header, undefined, err, true);
      return;
    }
    if (result !== null && typeof result === 'object' && typeof (result as PromiseLike<unknown>).then === 'function') {
      (result as PromiseLike<unknown>).then(
        (value) => this.#finished(endpoint, header, value, undefined, false),
        (err: unknown) => this.#finished(endpoint, header, undefined, err, true),
      );
    } else {
      this.#finished(endpoint, header, result, undefined, false);
    }
  }

  #finished(endpoint: EndpointDefinition, header: Req, value: unknown, err: unknown, failed: boolean): void {
    this.#inFlight--;
    if (this.#closed) return;
    if (failed) {
      if (!(err instanceof MeshfedError)) {
        this.#logger.warn('RPC handler threw a non-MeshfedError (returned to the client as its Error text)', {
          method: header.ServiceMethod,
          error: errorMessage(err),
        });
      }
      // Go sends an error reply only for a non-empty text; never let a blank message pass as success.
      this.#reply(header, errorMessage(err) || 'rpc: handler failed without a message', undefined, Empty);
    } else {
      this.#reply(header, '', value, endpoint.response);
    }
    if (this.#paused) this.#pump();
    if (this.#readDone && this.#inFlight === 0) this.#finish();
  }

  /** Encode a response (header + body) into the write batch. */
  #reply(header: Req, error: string, value: unknown, schema: AnySchema): void {
    const w = this.#writer.out;
    const mark = w.pos;
    encodeInto(w, { Error: error, Seq: header.Seq, ServiceMethod: header.ServiceMethod }, ResponseHeader);
    try {
      encodeInto(w, value, schema);
    } catch (err) {
      w.rewind(mark);
      this.#logger.error('RPC handler returned a value that does not fit its response type', { method: header.ServiceMethod, error: errorMessage(err) });
      encodeInto(w, { Error: `rpc: server cannot encode response: ${errorMessage(err)}`, Seq: header.Seq, ServiceMethod: header.ServiceMethod }, ResponseHeader);
      encodeInto(w, {}, Empty);
    }
    this.#writer.schedule();
  }

  #onEnd(): void {
    if (this.#readDone) return;
    this.#readDone = true;
    if (this.#header !== undefined || this.#decoder.midObject) {
      this.#logger.debug('RPC client closed the connection in the middle of a request', { remote: this.#remote });
    }
    if (this.#inFlight === 0) this.#finish();
  }

  /** No more requests and no call running: send what is left, then close (Go: wg.Wait; codec.Close). */
  #finish(): void {
    if (this.#closed) return;
    this.#writer.flush();
    const conn = this.#conn;
    if (!conn.writableEnded) conn.end();
    // A Duplex that never reports 'close' after end() (allowHalfOpen peers) is destroyed once flushed.
    conn.once('finish', () => conn.destroy());
  }

  #protocolError(err: unknown, prefix = 'rpc: malformed request stream'): void {
    if (this.#readDone && this.#closed) return;
    this.#readDone = true;
    this.#logger.warn('closing RPC connection: not a valid msgpack-RPC request stream', {
      remote: this.#remote,
      error: `${prefix}: ${errorMessage(err)}`,
      code: err instanceof MeshfedError ? err.code : undefined,
    });
    this.#conn.destroy();
  }

  #onClose(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#readDone = true;
    this.#signal?.removeEventListener('abort', this.#onSignal);
    this.#abort.abort(rpcError(MsgpackRpcErrorCode.CONN_CLOSED, 'RPC connection closed'));
    this.#resolveDone();
  }
}
