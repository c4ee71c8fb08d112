/**
 * The client side of net/rpc over msgpackrpc on one connection (Go's `rpc.Client` with
 * `msgpackrpc.NewClientCodec`): many calls may be outstanding at once, told apart by `Seq`;
 * replies may come in any order. A reply whose header carries `Error` rejects with a
 * {@link RemoteRpcError} whose message is the server's text, exactly. When the connection
 * fails or closes, every outstanding call rejects.
 */
import type { Duplex } from 'node:stream';
import { abortError, errorMessage } from '../../../core/errors.js';
import type { MeshfedError } from '../../../core/errors.js';
import { silentLogger, type Logger } from '../../../core/logger.js';
import { BatchedWriter } from './batched-writer.js';
import type { DecodeLimits } from './byte-reader.js';
import { decode, encodeInto } from './codec.js';
import type { EndpointDefinition } from './endpoint-registry.js';
import { MsgpackRpcErrorCode, RemoteRpcError, rpcError } from './errors.js';
import { NetRpcText, RequestHeader, ResponseHeader } from './net-rpc.js';
import type { AnySchema, Infer, InferInput } from './schema.js';
import { MsgpackStreamDecoder } from './stream-decoder.js';

/** Options of {@link RpcClient}. */
export interface RpcClientOptions {
  /** Where a broken connection is logged (once). Default: silent. */
  readonly logger?: Logger;
  /** Decoder limits for replies. */
  readonly limits?: DecodeLimits;
  /** Deadline for calls that set none, in ms (0 or unset: none). */
  readonly timeoutMs?: number;
}

/** Options of one call. */
export interface RpcCallOptions {
  /** Aborting rejects the call (`MESHFED_ERR_ABORTED`); a late reply is then ignored. */
  readonly signal?: AbortSignal;
  /** Deadline in ms (`MESHFED_ERR_RPC_TIMEOUT`); overrides the client's default. 0 = none. */
  readonly timeoutMs?: number;
}

interface PendingCall {
  readonly method: string;
  readonly schema: AnySchema;
  readonly resolve: (v: unknown) => void;
  readonly reject: (e: unknown) => void;
  timer: NodeJS.Timeout | undefined;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

/** A msgpack-RPC client over one connection (a TCP socket, a TLS socket, a yamux stream). */
export class RpcClient {
  readonly #conn: Duplex;
  readonly #logger: Logger;
  readonly #limits: DecodeLimits | undefined;
  readonly #defaultTimeout: number;
  readonly #decoder: MsgpackStreamDecoder;
  readonly #writer: BatchedWriter;
  readonly #pending = new Map<number, PendingCall>();
  #seq = 0;
  /** Response header read, waiting for its body. */
  #header: ResponseHeader | undefined;
  #closedBy: MeshfedError | undefined;
  #connError: Error | undefined;
  #resolveClosed!: () => void;
  readonly #whenClosed: Promise<void>;

  constructor(conn: Duplex, options: RpcClientOptions = {}) {
    this.#conn = conn;
    this.#logger = options.logger ?? silentLogger();
    this.#limits = options.limits;
    this.#defaultTimeout = options.timeoutMs ?? 0;
    this.#decoder = new MsgpackStreamDecoder(options.limits);
    this.#writer = new BatchedWriter(conn);
    this.#whenClosed = new Promise((resolve) => {
      this.#resolveClosed = resolve;
    });
    conn.on('data', (chunk: Buffer) => this.#onData(chunk));
    conn.on('end', () => this.#shutdown(rpcError(MsgpackRpcErrorCode.CONN_CLOSED, NetRpcText.unexpectedEof)));
    conn.on('error', (err: Error) => {
      this.#connError ??= err;
    });
    conn.on('close', () => this.#shutdown(rpcError(MsgpackRpcErrorCode.CONN_CLOSED, this.#connError?.message ?? 'connection closed', this.#connError)));
    if (conn.destroyed) this.#shutdown(rpcError(MsgpackRpcErrorCode.CONN_CLOSED, 'connection already closed'));
  }

  /** Calls sent and not yet answered. */
  get pendingCalls(): number {
    return this.#pending.size;
  }

  /** Whether the client can no longer make calls (closed, or its connection failed). */
  get isClosed(): boolean {
    return this.#closedBy !== undefined;
  }

  /** Why the client closed (`undefined` while open). */
  get closeReason(): MeshfedError | undefined {
    return this.#closedBy;
  }

  /** Resolves once the client is closed, by {@link close} or because the connection ended. */
  whenClosed(): Promise<void> {
    return this.#whenClosed;
  }

  /**
   * Call `method` with `args` encoded as `request`; resolves with the reply decoded as
   * `response`. Rejects with a {@link RemoteRpcError} (`MESHFED_ERR_RPC_REMOTE`, the server's
   * text as message), `MESHFED_ERR_RPC_CONN_CLOSED`, `MESHFED_ERR_RPC_TIMEOUT`,
   * `MESHFED_ERR_ABORTED`, or a codec error (`MESHFED_ERR_MSGPACK_*`: nothing was sent when
   * the args do not fit `request`).
   */
  call<Req extends AnySchema, Res extends AnySchema>(
    method: string,
    args: InferInput<Req>,
    request: Req,
    response: Res,
    options: RpcCallOptions = {},
  ): Promise<Infer<Res>> {
    if (this.#closedBy) return Promise.reject(this.#callClosedError(method));
    const signal = options.signal;
    if (signal?.aborted) return Promise.reject(abortError(signal, `rpc ${method}`));
    const seq = this.#seq++;
    const w = this.#writer.out;
    const mark = w.pos;
    try {
      encodeInto(w, { ServiceMethod: method, Seq: seq }, RequestHeader);
      encodeInto(w, args, request);
    } catch (err) {
      w.rewind(mark);
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    this.#writer.schedule();
    return new Promise<Infer<Res>>((resolve, reject) => {
      const call: PendingCall = { method, schema: response, resolve: resolve as (v: unknown) => void, reject, timer: undefined, signal: undefined, onAbort: undefined };
      const timeout = options.timeoutMs ?? this.#defaultTimeout;
      if (timeout > 0) {
        call.timer = setTimeout(() => {
          if (this.#pending.get(seq) !== call) return;
          this.#pending.delete(seq);
          this.#cleanup(call);
          reject(rpcError(MsgpackRpcErrorCode.TIMEOUT, `rpc ${method} timed out after ${timeout} ms (seq ${seq}); a late reply will be ignored`));
        }, timeout);
        // Not unref'd: a pending call keeps the process alive, as its socket would; the
        // timer is always cleared when the call settles.
      }
      if (signal) {
        call.signal = signal;
        call.onAbort = () => {
          if (this.#pending.get(seq) !== call) return;
          this.#pending.delete(seq);
          this.#cleanup(call);
          reject(abortError(signal, `rpc ${method}`));
        };
        signal.addEventListener('abort', call.onAbort, { once: true });
      }
      this.#pending.set(seq, call);
    });
  }

  /** Call an endpoint definition (its method and schemas), e.g. one shared with the server. */
  callEndpoint<Req extends AnySchema, Res extends AnySchema>(
    endpoint: Pick<EndpointDefinition<Req, Res>, 'method' | 'request' | 'response'>,
    args: InferInput<Req>,
    options?: RpcCallOptions,
  ): Promise<Infer<Res>> {
    return this.call(endpoint.method, args, endpoint.request, endpoint.response, options);
  }

  /**
   * Close the connection; outstanding calls reject with Go's `connection is shut down`
   * (`MESHFED_ERR_RPC_CONN_CLOSED`). Idempotent.
   */
  close(): void {
    this.#shutdown(rpcError(MsgpackRpcErrorCode.CONN_CLOSED, NetRpcText.shutdown));
  }

  #onData(chunk: Buffer): void {
    if (this.#closedBy) return;
    const decoder = this.#decoder;
    decoder.push(chunk);
    for (;;) {
      let frame: Uint8Array | undefined;
      try {
        frame = decoder.next();
      } catch (err) {
        this.#protocolError(err);
        return;
      }
      if (!frame) return;
      this.#onFrame(frame);
      if (this.#closedBy) return;
    }
  }

  #onFrame(frame: Uint8Array): void {
    const header = this.#header;
    if (header === undefined) {
      try {
        this.#header = decode(frame, ResponseHeader, this.#limits);
      } catch (err) {
        this.#protocolError(err);
      }
      return;
    }
    this.#header = undefined;
    const seq = header.Seq;
    const call = typeof seq === 'number' ? this.#pending.get(seq) : undefined;
    // No such call (it timed out or was aborted): the body is dropped, as Go's client does.
    if (!call) return;
    this.#pending.delete(seq as number);
    this.#cleanup(call);
    if (header.Error !== '') {
      call.reject(new RemoteRpcError(header.Error, call.method));
      return;
    }
    let value: unknown;
    try {
      value = decode(frame, call.schema, this.#limits);
    } catch (err) {
      // The reply was a whole object, so the stream is still usable: only this call fails.
      call.reject(err);
      return;
    }
    call.resolve(value);
  }

  #cleanup(call: PendingCall): void {
    if (call.timer) clearTimeout(call.timer);
    if (call.onAbort) call.signal?.removeEventListener('abort', call.onAbort);
  }

  #protocolError(err: unknown): void {
    this.#logger.warn('closing RPC client connection: the server sent an invalid msgpack-RPC stream', { error: errorMessage(err) });
    this.#shutdown(rpcError(MsgpackRpcErrorCode.PROTOCOL, `invalid reply stream: ${errorMessage(err)}`, err));
  }

  #callClosedError(method: string): MeshfedError {
    const reason = this.#closedBy!;
    return rpcError(MsgpackRpcErrorCode.CONN_CLOSED, `rpc ${method}: ${reason.message}`, reason);
  }

  #shutdown(reason: MeshfedError): void {
    if (this.#closedBy) return;
    this.#closedBy = reason;
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const call of pending) {
      this.#cleanup(call);
      call.reject(this.#callClosedError(call.method));
    }
    this.#conn.destroy();
    this.#resolveClosed();
  }
}
