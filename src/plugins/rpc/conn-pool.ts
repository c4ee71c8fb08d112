/**
 * The RPC connection pool (spec §1.7): one yamux client session per remote server (keyed by
 * node name and address), idle msgpack-RPC stream clients reused LIFO up to `maxStreams`,
 * concurrent callers coalesced onto one dial, one re-dial when opening a stream fails, per-call
 * deadlines, and a reaper for sessions idle longer than `maxIdleTimeMs`. It dials only through
 * the kernel's Dialer (`onDial`), asking for RPC type 4 (`consul/rpc-multi` through gateways).
 */
import { ErrorCode, MeshfedError, abortError, errorMessage } from '../../core/errors.js';
import type { Dialer } from '../../core/kernel-services.js';
import type { Logger } from '../../core/logger.js';
import { RpcType } from '../../core/protocol.js';
import { YamuxSession, type YamuxSessionOptions, type YamuxStream } from '../yamux/index.js';
import { RpcErrorCode } from './errors.js';
import { Empty, MsgpackRpcErrorCode, RpcClient, type AnySchema, type EndpointDefinition, type Infer, type InferInput } from './msgpack/index.js';

/** The server a call goes to. */
export interface PoolTarget {
  /** Datacenter of the server. */
  readonly datacenter: string;
  /** Node name of the server (mandatory: it keys the pool and names the TLS server through gateways). */
  readonly node: string;
  /** `host:port` of its RPC port (same-DC dials; ignored by the gateway path). */
  readonly address?: string | undefined;
}

/** Options of one pooled call. */
export interface PoolCallOptions {
  /** Abort the call. */
  readonly signal?: AbortSignal | undefined;
  /**
   * For blocking queries: the query's wait in ms. The deadline becomes wait + rpc_hold_timeout
   * instead of rpc_client_timeout.
   */
  readonly blockingWaitMs?: number | undefined;
}

/** Options of {@link ConnPool}. */
export interface ConnPoolOptions {
  readonly dialer: Dialer;
  readonly logger: Logger;
  /** Idle stream clients kept per session (servers: 64). */
  readonly maxStreams?: number;
  /** Close sessions unused this long (servers: 2 min). 0 = never. */
  readonly maxIdleTimeMs?: number;
  /** Reaper tick (1 s). */
  readonly reapIntervalMs?: number;
  /** Deadline of a call (`limits.rpc_client_timeout`, 60 s). 0 = none. */
  readonly rpcClientTimeoutMs?: number;
  /** Added to blocking waits (`performance.rpc_hold_timeout`, 7 s). */
  readonly rpcHoldTimeoutMs?: number;
  /** Options of the yamux client sessions. */
  readonly yamux?: YamuxSessionOptions;
}

interface StreamClient {
  readonly stream: YamuxStream;
  readonly client: RpcClient;
}

interface PooledConn {
  readonly key: string;
  readonly session: YamuxSession;
  readonly idle: StreamClient[];
  refCount: number;
  lastUsed: number;
  shouldClose: boolean;
}

/** Counters for status and tests. */
export interface ConnPoolStats {
  dials: number;
  streamsOpened: number;
  streamsReused: number;
  reaped: number;
}

function isConnFailure(err: unknown): boolean {
  return err instanceof MeshfedError && (err.code === MsgpackRpcErrorCode.CONN_CLOSED || err.code.startsWith('MESHFED_ERR_YAMUX'));
}

/** Pool of yamux sessions to other servers, carrying msgpack-RPC calls. */
export class ConnPool {
  readonly #o: Required<Omit<ConnPoolOptions, 'yamux'>> & { yamux: YamuxSessionOptions };
  readonly #conns = new Map<string, PooledConn>();
  readonly #dialing = new Map<string, Promise<PooledConn>>();
  readonly #reaper: NodeJS.Timeout | undefined;
  #closed = false;
  /** Counters. */
  readonly stats: ConnPoolStats = { dials: 0, streamsOpened: 0, streamsReused: 0, reaped: 0 };

  constructor(options: ConnPoolOptions) {
    this.#o = {
      dialer: options.dialer,
      logger: options.logger,
      maxStreams: options.maxStreams ?? 64,
      maxIdleTimeMs: options.maxIdleTimeMs ?? 120_000,
      reapIntervalMs: options.reapIntervalMs ?? 1000,
      rpcClientTimeoutMs: options.rpcClientTimeoutMs ?? 60_000,
      rpcHoldTimeoutMs: options.rpcHoldTimeoutMs ?? 7000,
      yamux: { logger: options.logger, ...options.yamux },
    };
    if (this.#o.maxIdleTimeMs > 0) {
      this.#reaper = setInterval(() => this.#reap(), this.#o.reapIntervalMs);
      this.#reaper.unref();
    }
  }

  /** Number of pooled sessions. */
  get sessions(): number {
    return this.#conns.size;
  }

  /** Call a typed endpoint on `target`. */
  callEndpoint<Req extends AnySchema, Res extends AnySchema>(
    target: PoolTarget,
    endpoint: Pick<EndpointDefinition<Req, Res>, 'method' | 'request' | 'response'>,
    args: InferInput<Req>,
    options: PoolCallOptions = {},
  ): Promise<Infer<Res>> {
    return this.call(target, endpoint.method, args, endpoint.request, endpoint.response, options);
  }

  /** `Status.Ping` on `target`. */
  async ping(target: PoolTarget, options: PoolCallOptions = {}): Promise<void> {
    await this.call(target, 'Status.Ping', {}, Empty, Empty, options);
  }

  /** Call `method` on `target` over a pooled stream. */
  async call<Req extends AnySchema, Res extends AnySchema>(
    target: PoolTarget,
    method: string,
    args: InferInput<Req>,
    request: Req,
    response: Res,
    options: PoolCallOptions = {},
  ): Promise<Infer<Res>> {
    if (!target.node) throw new MeshfedError(RpcErrorCode.POOL, 'pool: ConnPool.acquire requires a node name');
    if (this.#closed) throw new MeshfedError(RpcErrorCode.POOL, 'rpc error: shutdown');
    const timeoutMs = options.blockingWaitMs !== undefined && options.blockingWaitMs > 0 ? options.blockingWaitMs + this.#o.rpcHoldTimeoutMs : this.#o.rpcClientTimeoutMs;
    let conn: PooledConn | undefined;
    let sc: StreamClient | undefined;
    // Open a stream; if that fails, drop the session and re-dial once (spec §1.7).
    for (let attempt = 0; ; attempt++) {
      conn = await this.#acquire(target, options.signal);
      try {
        sc = await this.#streamClient(conn, options.signal);
        break;
      } catch (err) {
        this.#clear(conn);
        this.#release(conn);
        if (options.signal?.aborted) throw abortError(options.signal, `rpc ${method}`);
        if (attempt >= 1) throw new MeshfedError(RpcErrorCode.STREAM, `failed to start stream: ${errorMessage(err)}`, { cause: err });
      }
    }
    try {
      const reply = await sc.client.call(method, args, request, response, { signal: options.signal, timeoutMs });
      this.#returnStream(conn, sc);
      return reply;
    } catch (err) {
      sc.client.close();
      sc.stream.destroy();
      if (isConnFailure(err) || conn.session.isClosed) this.#clear(conn);
      throw err;
    } finally {
      this.#release(conn);
    }
  }

  /**
   * Drop the pooled sessions to `node` (every address): the router calls this when a server
   * leaves, so no idle session to a gone server lingers until the reaper. Calls in flight finish;
   * the session closes when the last one releases it.
   */
  forget(node: string): number {
    let n = 0;
    for (const conn of [...this.#conns.values()]) {
      if (conn.key.startsWith(`${node}:`)) {
        this.#clear(conn);
        n++;
      }
    }
    return n;
  }

  /** Close every session and stop the reaper. Calls in flight fail. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#reaper);
    const all = [...this.#conns.values()];
    this.#conns.clear();
    await Promise.allSettled(all.map((c) => c.session.close()));
  }

  async #acquire(target: PoolTarget, signal: AbortSignal | undefined): Promise<PooledConn> {
    const key = `${target.node}:${target.address ?? ''}`;
    for (;;) {
      const existing = this.#conns.get(key);
      if (existing && !existing.session.isClosed && !existing.session.remoteGoAway) {
        existing.refCount++;
        existing.lastUsed = Date.now();
        return existing;
      }
      if (existing) this.#clear(existing);
      let pending = this.#dialing.get(key);
      const lead = pending === undefined;
      if (!pending) {
        pending = this.#dial(key, target);
        this.#dialing.set(key, pending);
        void pending.finally(() => this.#dialing.delete(key)).catch(() => undefined);
      }
      if (!lead) {
        // Waiters look the session up again once the lead dial finished (spec §1.7).
        await raceAbort(pending, signal).catch(() => undefined);
        if (signal?.aborted) throw abortError(signal, `dial ${target.node}.${target.datacenter}`);
        if (this.#closed) throw new MeshfedError(RpcErrorCode.POOL, 'rpc error: shutdown');
        const got = this.#conns.get(key);
        if (!got) throw new MeshfedError(RpcErrorCode.POOL, "rpc error: lead thread didn't get connection");
        continue;
      }
      const conn = await raceAbort(pending, signal);
      conn.refCount++;
      conn.lastUsed = Date.now();
      return conn;
    }
  }

  async #dial(key: string, target: PoolTarget): Promise<PooledConn> {
    this.stats.dials++;
    const raw = await this.#o.dialer.dial({ datacenter: target.datacenter, node: target.node, address: target.address, rpcType: RpcType.MultiplexV2 });
    if (this.#closed) {
      raw.destroy();
      throw new MeshfedError(RpcErrorCode.POOL, 'rpc error: shutdown');
    }
    const session = YamuxSession.client(raw, this.#o.yamux);
    const conn: PooledConn = { key, session, idle: [], refCount: 0, lastUsed: Date.now(), shouldClose: false };
    session.on('error', (err) => this.#o.logger.debug('pooled session failed', { node: target.node, datacenter: target.datacenter, err: err.message }));
    session.on('close', () => {
      if (this.#conns.get(key) === conn) this.#conns.delete(key);
    });
    this.#conns.set(key, conn);
    return conn;
  }

  async #streamClient(conn: PooledConn, signal: AbortSignal | undefined): Promise<StreamClient> {
    while (conn.idle.length > 0) {
      const sc = conn.idle.pop() as StreamClient;
      if (!sc.client.isClosed && !sc.stream.destroyed) {
        this.stats.streamsReused++;
        return sc;
      }
    }
    const stream = await conn.session.open(signal ? { signal } : {});
    this.stats.streamsOpened++;
    return { stream, client: new RpcClient(stream, { logger: this.#o.logger }) };
  }

  #returnStream(conn: PooledConn, sc: StreamClient): void {
    if (!conn.shouldClose && !conn.session.isClosed && conn.idle.length < this.#o.maxStreams && !sc.client.isClosed) {
      conn.idle.push(sc);
      return;
    }
    sc.client.close();
    sc.stream.end();
  }

  #release(conn: PooledConn): void {
    conn.refCount--;
    conn.lastUsed = Date.now();
    if (conn.refCount <= 0 && conn.shouldClose) void conn.session.close();
  }

  /** Remove `conn` from the pool; it closes once its last user released it. */
  #clear(conn: PooledConn): void {
    if (this.#conns.get(conn.key) === conn) this.#conns.delete(conn.key);
    conn.shouldClose = true;
    if (conn.refCount <= 0) void conn.session.close();
  }

  #reap(): void {
    const now = Date.now();
    for (const conn of [...this.#conns.values()]) {
      if (conn.refCount > 0 || now - conn.lastUsed < this.#o.maxIdleTimeMs) continue;
      this.#conns.delete(conn.key);
      this.stats.reaped++;
      void conn.session.close();
    }
  }
}

function raceAbort<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  if (signal.aborted) return Promise.reject(abortError(signal, 'rpc'));
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(abortError(signal, 'rpc'));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e instanceof Error ? e : new MeshfedError(ErrorCode.ABORTED, String(e)));
      },
    );
  });
}
