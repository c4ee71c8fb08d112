/**
 * The mesh gateway's data plane: a TLS-passthrough SNI proxy (spec §9.3, §9.6). Per connection it
 * reads the ClientHello without decrypting, picks the filter chain by server name, picks an
 * endpoint of the chain's cluster, connects (trying the next endpoint on failure), forwards the
 * ClientHello bytes, then splices both directions until both sides are done (half-close: an
 * end-of-stream from one side is passed on as a shutdown of the other's write side).
 *
 * Three interchangeable data planes move the bytes (routing, refusals, counters and closing rules
 * are shared, and every end-to-end test runs on each):
 * - **`native`** (the default where built, Linux): a small C engine (`native/relay.c`, a
 *   Node-API addon built by `scripts/build-native.sh`) with a thread and an edge-triggered epoll
 *   loop of its own owns the sockets — accept, the client's first bytes, hello and connect
 *   deadlines, connect, relaying with the same buffers, backpressure and half-close as `handles`.
 *   It parses each ClientHello itself (`native/fastpath.h`) and routes the server names that
 *   {@link SniProxy.update} pushed to it as fast routes (`native/fast-routes.ts`: chains whose
 *   cluster has IP endpoints only), round robin or random and with failover, without calling
 *   JavaScript at all; its counters are merged into {@link SniProxy.stats}. Every other
 *   connection is handed to this module with the bytes read so far and decided here exactly as
 *   on the other planes, as are fast ones it cannot finish (no endpoint accepted: refused here as
 *   `upstream-failed`; the client left before its upstream was connected: `client-closed`).
 * - **`handles`** (the default without the addon): drives libuv TCP handles directly
 *   (`tcp-handles.ts`), reading into fixed per-connection buffers (16 KiB, grown to 64 KiB for a
 *   direction that fills its buffer) and writing straight to the other handle; a write that does
 *   not finish at once stops reading on the source until it does (backpressure). Deadlines are
 *   checked by one sweep timer, not a timer per connection. About half the CPU per connection of
 *   the `streams` plane.
 * - **`streams`**: `net.Socket`s and `pipe()`, used for sockets handed to {@link SniProxy.handle},
 *   with a custom {@link SniProxyOptions.connect}, when asked for, or when this Node does not
 *   provide the handle bindings.
 *
 * Cost notes (see the gateway benchmark notes): handlers are shared module-level functions that
 * find their connection through a symbol-keyed property, so a connection costs its two sockets,
 * one small state object and no closures.
 *
 * Closing rules (the `pipe()` leak trap): when one side closes with an error, or without having
 * read its peer's end-of-stream, the other side is closed at once; a side that ended cleanly has
 * passed its EOF on, so the other side finishes its writes and ends by itself; once both
 * directions have ended and flushed, both are closed.
 */
import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { constants as osConstants } from 'node:os';
import { getSystemErrorMap, getSystemErrorName } from 'node:util';
import type { Logger } from '../../core/logger.js';
import { ClientHelloReader, DEFAULT_MAX_CLIENT_HELLO_BYTES } from './client-hello.js';
import type { ClientHello, ClientHelloRejection } from './client-hello.js';
import {
  MeshGatewayErrorCode,
  compileRoutingTable,
  emptyRoutingTable,
  matchChain,
  meshGatewayError,
  type MeshGatewayResources,
  type RouteCluster,
  type RouteEndpoint,
  type RoutingTable,
} from './routing.js';
import { encodeFastRoutes } from './native/fast-routes.js';
import { loadNativeRelay, RelayEvent, type NativeRelay } from './native/relay.js';
import { loadTcpHandles, UV_EOF, type TcpConnectReq, type TcpHandle, type TcpHandleApi, type SockAddr, type TcpWriteReq } from './tcp-handles.js';

/** Why a connection was closed before it was spliced to an upstream. */
export type RefusalReason =
  | ClientHelloRejection
  /** The client sent no complete ClientHello within the deadline. */
  | 'timeout'
  /** The client ended or reset the connection before a complete ClientHello. */
  | 'client-closed'
  /** The ClientHello has no server_name. */
  | 'no-sni'
  /** No filter chain matches the server name and there is no catch-all. */
  | 'no-route'
  /** The matched chain uses a feature the gateway does not implement. */
  | 'unsupported'
  /** The chain's cluster does not exist. */
  | 'unknown-cluster'
  /** The cluster has no endpoint that may take traffic. */
  | 'no-endpoints'
  /** Every endpoint failed to connect (refused, timed out, name did not resolve). */
  | 'upstream-failed'
  /** The proxy is closing. */
  | 'closing';

/** How upstream connections are opened (injectable for tests and benches). */
export type ConnectFn = (options: { readonly host: string; readonly port: number }) => net.Socket;

/** Resolves a hostname endpoint to addresses (LOGICAL_DNS clusters). */
export type LookupFn = (hostname: string, family: 0 | 4 | 6) => Promise<readonly string[]>;

/** Options of {@link SniProxy}. */
export interface SniProxyOptions {
  /** Logger; refusals are logged at debug, floods at warn. */
  readonly logger?: Logger;
  /** Deadline for the whole ClientHello (default 5000 ms). */
  readonly helloTimeoutMs?: number;
  /** Largest ClientHello accepted, in bytes (default 16 KiB). */
  readonly maxHelloBytes?: number;
  /** Listener to route by when the resources hold several (default: the first). */
  readonly listenerName?: string;
  /** Connect timeout for clusters that set none (default 5000 ms). */
  readonly defaultConnectTimeoutMs?: number;
  /** Endpoint choice: `round-robin` (default) or `random`. */
  readonly balance?: 'round-robin' | 'random';
  /** Opens upstream connections (default `net.connect`); implies the `streams` data plane. */
  readonly connect?: ConnectFn;
  /**
   * Local address upstream connections are made from (both planes; default: the kernel's choice).
   * An IP address of this host, e.g. the gateway's own address when servers must see it as the peer.
   */
  readonly sourceAddress?: string;
  /** Resolves hostname endpoints (default `dns.lookup` with the cluster's family). */
  readonly lookup?: LookupFn;
  /** Refusals within one window above which a warning is logged (default 100). */
  readonly floodThreshold?: number;
  /** Length of the refusal-flood window (default 10 000 ms). */
  readonly floodWindowMs?: number;
  /** `backlog` passed to `listen` (default 511). */
  readonly backlog?: number;
  /**
   * Which data plane moves the bytes (see the module notes): `auto` (default) uses `native` when
   * its addon is built, else `handles` when this Node provides the handle bindings, else
   * `streams`; always `streams` with a custom {@link connect}.
   */
  readonly dataPlane?: DataPlane | 'auto';
  /**
   * `native` plane only: let the engine route by itself the server names whose cluster has IP
   * endpoints (default `true`). `false` hands every connection to TypeScript, as the other planes
   * route — slower per connection, for diagnosis or comparison.
   */
  readonly nativeRouting?: boolean;
}

/** The data planes of {@link SniProxy} (see the module notes). */
export type DataPlane = 'native' | 'handles' | 'streams';

/** Per-cluster counters in {@link SniProxyStats}. */
export interface ClusterStats {
  /** Connections spliced to this cluster, ever. */
  connections: number;
  /** Spliced connections still open. */
  active: number;
  /** Upstream connect attempts that failed. */
  connectFailures: number;
  /** Bytes from clients to this cluster. */
  bytesUp: number;
  /** Bytes from this cluster to clients. */
  bytesDown: number;
}

/** A snapshot of the proxy's counters. */
export interface SniProxyStats {
  /** Connections accepted and not yet fully closed (client and upstream). */
  readonly active: number;
  /** Connections accepted, ever. */
  readonly total: number;
  /** Connections spliced to an upstream, ever. */
  readonly spliced: number;
  /** Refused connections by reason. */
  readonly refused: Readonly<Partial<Record<RefusalReason, number>>>;
  /** Bytes forwarded client → upstream (ClientHello included), open connections included. */
  readonly bytesUp: number;
  /** Bytes forwarded upstream → client, open connections included. */
  readonly bytesDown: number;
  /** Per-cluster counters. */
  readonly clusters: Readonly<Record<string, Readonly<ClusterStats>>>;
}

/** Options of {@link SniProxy.close}. */
export interface CloseOptions {
  /** Let open connections finish (default false: destroy them). */
  readonly drain?: boolean;
  /** With `drain`, destroy what is still open after this long (default: wait forever). */
  readonly drainTimeoutMs?: number;
}

const kConn = Symbol('meshfed.mesh-gateway.conn');

/** Per-direction read buffer of the handles plane: starts small, grows once a read fills it. */
const SMALL_BUFFER = 16 * 1024;
const LARGE_BUFFER = 64 * 1024;

/** A socket carrying its connection state. */
type TaggedSocket = net.Socket & { [kConn]?: StreamConn };

type Phase = 'peek' | 'route' | 'connect' | 'splice';

/** What routing, refusals and counters need of a connection, whichever plane moves its bytes. */
abstract class BaseConn {
  phase: Phase = 'peek';
  reader: ClientHelloReader | undefined;
  hello: Buffer | undefined = undefined;
  sni = '';
  cluster: RouteCluster | undefined = undefined;
  candidates: readonly RouteEndpoint[] = [];
  attempt = 0;
  start = 0;
  /** When the ClientHello must be complete (ms since the epoch). */
  helloDeadline = 0;
  refusal: RefusalReason | undefined = undefined;
  finished = false;
  clusterStats: ClusterStats | undefined = undefined;

  constructor(
    readonly proxy: SniProxy,
    maxHelloBytes: number,
  ) {
    this.reader = new ClientHelloReader({ maxHelloBytes });
  }

  /** The client is gone (closed or being closed). */
  abstract clientGone(): boolean;
  /** Start connecting to one endpoint; the outcome comes back through the proxy's internals. */
  abstract open(host: string, port: number, timeoutMs: number): void;
  /** Close both sides now (refusal, error, or proxy shutdown). */
  abstract destroy(): void;
  /** `address:port` of the client, for logs. */
  abstract remote(): string;
  /** Bytes forwarded so far: [client → upstream, upstream → client]. */
  abstract bytes(): [number, number];
  /** Part of a ClientHello arrived (the plane enforces the overall hello deadline its way). */
  abstract helloIncomplete(): void;
  /** The ClientHello is complete: stop reading the client until the upstream is connected. */
  abstract helloComplete(): void;
  /** The client went away while routing or connecting: finish once every socket has closed. */
  settle(): void {
    // the handles plane finishes in destroy(); the streams plane waits for 'close' events
  }
}

/** Internal hooks the shared handlers call; kept off the public surface through a symbol. */
const kInternal = Symbol('meshfed.mesh-gateway.internal');

interface Internal {
  /** Read buffers of the handles plane. */
  readonly buffers: BufferPool;
  onHello(c: BaseConn, chunk: Buffer): void;
  refuse(c: BaseConn, reason: RefusalReason, detail?: string): void;
  /** The connection is spliced: count it. */
  spliced(c: BaseConn): void;
  /** One endpoint failed: try the next. */
  attemptFailed(c: BaseConn): void;
  /** Every socket of the connection is closed. */
  finish(c: BaseConn): void;
  /** Unregister a handles connection from the deadline sweep. */
  unwatch(c: HandleConn): void;
  /** A native connection was closed from JavaScript: forget its id. */
  forget(c: NativeConn): void;
  /** The streams plane's upstream connect function. */
  connect: ConnectFn;
  /** Local address upstream connections leave from, if one is configured. */
  sourceAddress(): string | undefined;
  /** Debug logging for the data planes. */
  debug(message: string, fields: Record<string, unknown>): void;
}

// ---- streams data plane ----------------------------------------------------------------------

/** A connection on `net.Socket`s. */
class StreamConn extends BaseConn {
  readonly client: TaggedSocket;
  upstream: TaggedSocket | undefined = undefined;
  clientClosed = false;
  upstreamClosed = false;

  constructor(proxy: SniProxy, client: TaggedSocket, maxHelloBytes: number) {
    super(proxy, maxHelloBytes);
    this.client = client;
  }

  clientGone(): boolean {
    return this.clientClosed || this.client.destroyed;
  }

  open(host: string, port: number, timeoutMs: number): void {
    const internal = this.proxy[kInternal];
    let s: TaggedSocket;
    try {
      s = this.proxy[kInternal].connect({ host, port });
    } catch (err) {
      this.proxy[kInternal].debug('mesh gateway connect threw', { host, port, error: err instanceof Error ? err.message : String(err) });
      internal.attemptFailed(this);
      return;
    }
    s[kConn] = this;
    this.upstream = s;
    this.upstreamClosed = false;
    s.on('error', ignoreError);
    s.on('close', onUpstreamClose);
    s.once('connect', onUpstreamConnect);
    s.on('timeout', onUpstreamTimeout);
    s.setTimeout(timeoutMs);
  }

  destroy(): void {
    destroyOnce(this.upstream);
    destroyOnce(this.client);
  }

  remote(): string {
    return `${this.client.remoteAddress ?? '?'}:${this.client.remotePort ?? '?'}`;
  }

  bytes(): [number, number] {
    if (this.phase !== 'splice' || !this.upstream) return [0, 0];
    return [this.upstream.bytesWritten, this.client.bytesWritten];
  }

  helloIncomplete(): void {
    // The socket timer is an idle timer: re-arm it with what is left of the overall deadline so a
    // client dribbling bytes cannot hold the connection open.
    const left = this.helloDeadline - Date.now();
    if (left <= 0) this.proxy[kInternal].refuse(this, 'timeout', 'no complete ClientHello before the deadline');
    else this.client.setTimeout(left);
  }

  helloComplete(): void {
    const client = this.client;
    client.pause();
    client.removeListener('data', onClientData);
    client.removeListener('end', onClientEndEarly);
    client.removeListener('timeout', onClientTimeout);
    client.setTimeout(0);
  }

  /** Done once the client and the upstream are both closed. */
  override settle(): void {
    if (this.finished || !this.clientClosed) return;
    if (this.upstream && !this.upstreamClosed) return;
    this.client[kConn] = undefined;
    if (this.upstream) this.upstream[kConn] = undefined;
    this.proxy[kInternal].finish(this);
  }
}

function streamConnOf(s: net.Socket): StreamConn | undefined {
  return (s as TaggedSocket)[kConn];
}

function onClientData(this: net.Socket, chunk: Buffer): void {
  const c = streamConnOf(this);
  if (c) c.proxy[kInternal].onHello(c, chunk);
}

function onClientEndEarly(this: net.Socket): void {
  const c = streamConnOf(this);
  if (c && c.phase === 'peek') c.proxy[kInternal].refuse(c, 'client-closed', 'end of stream before a complete ClientHello');
}

function onClientTimeout(this: net.Socket): void {
  const c = streamConnOf(this);
  if (c && c.phase === 'peek') c.proxy[kInternal].refuse(c, 'timeout', 'no complete ClientHello before the deadline');
}

function onClientClose(this: net.Socket, hadError: boolean): void {
  const c = streamConnOf(this);
  if (!c) return;
  c.clientClosed = true;
  const client = c.client;
  if (c.phase === 'peek') c.proxy[kInternal].refuse(c, 'client-closed', 'connection closed before a complete ClientHello');
  const up = c.upstream;
  if (up && !up.destroyed) {
    if (c.phase !== 'splice' || hadError || !client.readableEnded) up.destroy();
  }
  c.settle();
}

function onUpstreamConnect(this: net.Socket): void {
  const c = streamConnOf(this);
  if (!c || c.upstream !== this || c.phase !== 'connect') return;
  const s = this as TaggedSocket;
  s.removeListener('timeout', onUpstreamTimeout);
  s.setTimeout(0);
  s.setNoDelay(true);
  const client = c.client;
  if (client.destroyed) {
    s.destroy();
    return;
  }
  c.proxy[kInternal].spliced(c);
  if (c.hello) s.write(c.hello);
  c.hello = undefined;
  client.pipe(s);
  s.pipe(client);
}

function onUpstreamTimeout(this: net.Socket): void {
  // Connect timeout: the close handler moves on to the next endpoint.
  this.destroy();
}

function onUpstreamClose(this: net.Socket, hadError: boolean): void {
  const c = streamConnOf(this);
  if (!c || c.upstream !== this) return;
  if (c.phase === 'connect') {
    // A failed attempt: try the next endpoint (unless the client is gone).
    c.upstream = undefined;
    c.proxy[kInternal].attemptFailed(c);
    return;
  }
  c.upstreamClosed = true;
  const client = c.client;
  if (!client.destroyed && (hadError || !this.readableEnded)) client.destroy();
  c.settle();
}

/** Destroy a socket unless it already is (every socket is destroyed exactly once). */
function destroyOnce(s: net.Socket | undefined): void {
  if (s && !s.destroyed) s.destroy();
}

function ignoreError(): void {
  // Errors are handled through 'close' (hadError); this listener keeps them from being thrown.
}

// ---- handles data plane ----------------------------------------------------------------------

/** A handle carrying its connection state (and, once spliced, its own read buffer). */
type TaggedHandle = TcpHandle & { [kConn]?: HandleConn | undefined; buffer?: Buffer };
/** Requests carrying their connection. */
type TaggedWrite = TcpWriteReq & {
  [kConn]?: HandleConn | undefined;
  buffer?: Buffer | undefined;
  toUpstream?: boolean;
  /** A pooled buffer to give back once this write is done (see onHandleData). */
  release?: Buffer | undefined;
};
type TaggedConnect = TcpConnectReq & { [kConn]?: HandleConn | undefined };

/**
 * Read buffers of the handles plane, carved from 256 KiB slabs and reused: a connection takes two
 * when it is spliced and gives them back when it closes (a closed handle neither reads into its
 * buffer nor writes from it any more). Slabs are kept for reuse, so memory follows the peak of
 * concurrently spliced connections.
 */
class BufferPool {
  readonly #free = new Map<number, Buffer[]>();

  take(size: number): Buffer {
    const list = this.#free.get(size);
    const b = list?.pop();
    if (b) return b;
    const slab = Buffer.allocUnsafeSlow(Math.max(size, 256 * 1024));
    const fresh = this.#free.get(size) ?? [];
    this.#free.set(size, fresh);
    for (let off = size; off + size <= slab.length; off += size) fresh.push(slab.subarray(off, off + size));
    return slab.subarray(0, size);
  }

  give(b: Buffer | undefined): void {
    if (!b) return;
    let list = this.#free.get(b.length);
    if (!list) this.#free.set(b.length, (list = []));
    list.push(b);
  }
}

/** A connection on raw libuv handles. */
class HandleConn extends BaseConn {
  readonly client: TaggedHandle;
  readonly api: TcpHandleApi;
  upstream: TaggedHandle | undefined = undefined;
  remoteLabel = '';
  /** When the current connect attempt times out (ms since the epoch; 0 = none). */
  connectDeadline = 0;
  /** End-of-stream read from the client / the upstream. */
  clientEof = false;
  upstreamEof = false;
  /** Writes still in flight towards the upstream / the client. */
  pendingUp = 0;
  pendingDown = 0;
  closed = false;
  up = 0;
  down = 0;
  /** A write request to reuse (only ones that finished at once are reused). */
  spareWrite: TaggedWrite | undefined = undefined;

  constructor(proxy: SniProxy, api: TcpHandleApi, client: TaggedHandle, maxHelloBytes: number) {
    super(proxy, maxHelloBytes);
    this.api = api;
    this.client = client;
  }

  clientGone(): boolean {
    return this.closed;
  }

  open(host: string, port: number, timeoutMs: number): void {
    const h = this.api.newSocket() as TaggedHandle;
    const req = this.api.newConnectReq() as TaggedConnect;
    req.oncomplete = onHandleConnect;
    req[kConn] = this;
    const v6 = isIP(host) === 6;
    const source = this.proxy[kInternal].sourceAddress();
    let err = 0;
    if (source !== undefined) err = isIP(source) === 6 ? h.bind6(source, 0, 0) : h.bind(source, 0);
    if (err === 0) err = v6 ? h.connect6(req, host, port) : h.connect(req, host, port);
    if (err < 0) {
      h.close();
      req[kConn] = undefined;
      this.proxy[kInternal].debug('mesh gateway connect failed', { host, port, error: getSystemErrorName(err) });
      this.proxy[kInternal].attemptFailed(this);
      return;
    }
    h[kConn] = this;
    h.buffer = this.proxy[kInternal].buffers.take(SMALL_BUFFER);
    h.useUserBuffer(h.buffer);
    this.upstream = h;
    this.connectDeadline = Date.now() + timeoutMs;
  }

  helloIncomplete(): void {
    // the sweep checks the overall hello deadline
  }

  helloComplete(): void {
    // Nothing more is read until the upstream is connected (the client waits for the server's
    // hello anyway); the connect deadline replaces the hello deadline in the sweep.
    this.client.readStop();
  }

  /** Abandon the current connect attempt (timeout): close its handle, try the next endpoint. */
  abandonAttempt(): void {
    const h = this.upstream;
    this.upstream = undefined;
    this.connectDeadline = 0;
    if (h) closeAttempt(this, h);
    this.proxy[kInternal].attemptFailed(this);
  }

  destroy(): void {
    if (this.closed) return;
    this.closed = true;
    const internal = this.proxy[kInternal];
    internal.unwatch(this);
    const client = this.client;
    client[kConn] = undefined;
    client.close();
    const up = this.upstream;
    if (up) {
      up[kConn] = undefined;
      up.close();
    }
    // Closed handles no longer read into or write from their buffers: reuse them. (A buffer that
    // was replaced by a larger one is dropped: an in-flight write may still hold it.)
    const pool = internal.buffers;
    pool.give(client.buffer);
    client.buffer = undefined;
    if (up) {
      pool.give(up.buffer);
      up.buffer = undefined;
    }
    internal.finish(this);
  }

  remote(): string {
    if (!this.remoteLabel) {
      const out: SockAddr = {};
      this.client.getpeername(out);
      this.remoteLabel = `${out.address ?? '?'}:${out.port ?? '?'}`;
    }
    return this.remoteLabel;
  }

  bytes(): [number, number] {
    return [this.up, this.down];
  }

  /**
   * Forward `data` to `dst`; a write left in flight pauses the source until it completes.
   * Returns the request when the write is in flight, `undefined` when it finished (or failed and
   * the connection was closed).
   */
  write(dst: TaggedHandle, data: Buffer, toUpstream: boolean): TaggedWrite | undefined {
    const req: TaggedWrite = this.spareWrite ?? this.api.newWriteReq();
    this.spareWrite = undefined;
    req.handle = dst;
    req.oncomplete = onHandleWritten;
    req[kConn] = this;
    req.buffer = data;
    req.toUpstream = toUpstream;
    const err = dst.writeBuffer(req, data);
    if (err < 0) {
      this.destroy();
      return undefined;
    }
    if (toUpstream) this.up += data.length;
    else this.down += data.length;
    if (this.api.lastWriteAsync()) {
      if (toUpstream) {
        this.pendingUp++;
        this.client.readStop();
      } else {
        this.pendingDown++;
        this.upstream?.readStop();
      }
      return req;
    }
    req.handle = undefined;
    req[kConn] = undefined;
    req.buffer = undefined;
    this.spareWrite = req;
    return undefined;
  }

  /**
   * The source of one direction ended (`fromClient`) and its writes are flushed: when the other
   * direction is done too, close both; otherwise shut down the destination's write side.
   */
  ended(fromClient: boolean): void {
    const otherDone = fromClient ? this.upstreamEof && this.pendingDown === 0 : this.clientEof && this.pendingUp === 0;
    if (otherDone) {
      this.destroy();
      return;
    }
    const dst = fromClient ? this.upstream : this.client;
    if (!dst) return;
    // No completion callback (one JS callback less per connection): a shutdown that fails shows
    // up as an error on the next read or write of that socket, which closes both sides.
    const req = this.api.newShutdownReq();
    req.handle = dst;
    if (dst.shutdown(req) < 0) this.destroy();
  }
}

/** Close the handle of a failed connect attempt and take its buffer back. */
function closeAttempt(c: HandleConn, h: TaggedHandle): void {
  h[kConn] = undefined;
  h.close();
  c.proxy[kInternal].buffers.give(h.buffer);
  h.buffer = undefined;
}

function onHandleHello(this: TaggedHandle): void {
  const c = this[kConn];
  if (!c || c.phase !== 'peek') return;
  const n = c.api.lastRead();
  const internal = c.proxy[kInternal];
  if (n < 0) {
    internal.refuse(c, 'client-closed', n === UV_EOF ? 'end of stream before a complete ClientHello' : 'connection closed before a complete ClientHello');
    return;
  }
  // Copy the bytes out: the next read reuses the buffer, the reader keeps its chunks.
  const buf = this.buffer;
  if (n > 0 && buf) {
    const copy = Buffer.allocUnsafe(n); // small: from Node's shared pool
    buf.copy(copy, 0, 0, n);
    internal.onHello(c, copy);
  }
}

function onHandleConnect(this: TaggedConnect, status: number, handle: TcpHandle): void {
  const c = this[kConn];
  this[kConn] = undefined;
  if (!c || c.upstream !== handle || c.phase !== 'connect' || c.closed) return;
  c.connectDeadline = 0;
  const up = handle as TaggedHandle;
  if (status < 0) {
    c.upstream = undefined;
    closeAttempt(c, up);
    c.proxy[kInternal].debug('mesh gateway connect failed', { error: getSystemErrorName(status) });
    c.proxy[kInternal].attemptFailed(c);
    return;
  }
  const internal = c.proxy[kInternal];
  internal.unwatch(c);
  internal.spliced(c);
  up.setNoDelay(true);
  const client = c.client;
  client.onread = onHandleClientData;
  up.onread = onHandleUpstreamData;
  const hello = c.hello;
  c.hello = undefined;
  if (hello) c.write(up, hello, true);
  if (c.closed) return;
  if (c.pendingUp === 0) client.readStart();
  up.readStart();
}

/** Data (or the end) from one side of a spliced connection. */
function onHandleData(c: HandleConn, src: TaggedHandle, fromClient: boolean): void {
  const n = c.api.lastRead();
  if (n > 0) {
    const buf = src.buffer;
    const dst = fromClient ? c.upstream : c.client;
    if (!buf || !dst) return;
    const data = n === buf.length ? buf : buf.subarray(0, n);
    if (n < buf.length || buf.length >= LARGE_BUFFER) {
      c.write(dst, data, fromClient);
      return;
    }
    // A full read: this direction carries bulk data; give it the large buffer. The small one goes
    // back to the pool once the write of what it holds is done (no other write can be using it:
    // the source does not read while one is in flight).
    const pool = c.proxy[kInternal].buffers;
    src.buffer = pool.take(LARGE_BUFFER);
    src.useUserBuffer(src.buffer);
    const inFlight = c.write(dst, data, fromClient);
    if (inFlight) inFlight.release = buf;
    else pool.give(buf);
    return;
  }
  if (n === UV_EOF) {
    src.readStop();
    if (fromClient) {
      c.clientEof = true;
      if (c.pendingUp === 0) c.ended(true);
    } else {
      c.upstreamEof = true;
      if (c.pendingDown === 0) c.ended(false);
    }
    return;
  }
  // A read error (reset): close both.
  if (n < 0) c.destroy();
}

function onHandleClientData(this: TaggedHandle): void {
  const c = this[kConn];
  if (c && !c.closed) onHandleData(c, this, true);
}

function onHandleUpstreamData(this: TaggedHandle): void {
  const c = this[kConn];
  if (c && !c.closed) onHandleData(c, this, false);
}

function onHandleWritten(this: TaggedWrite, status: number): void {
  const c = this[kConn];
  this[kConn] = undefined;
  this.buffer = undefined;
  this.handle = undefined;
  if (!c) return;
  if (this.release) {
    c.proxy[kInternal].buffers.give(this.release);
    this.release = undefined;
  }
  if (c.closed) return;
  if (status < 0) {
    c.destroy();
    return;
  }
  if (this.toUpstream) {
    if (--c.pendingUp > 0) return;
    if (c.clientEof) c.ended(true);
    else c.client.readStart();
  } else {
    if (--c.pendingDown > 0) return;
    if (c.upstreamEof) c.ended(false);
    else c.upstream?.readStart();
  }
}

// ---- native data plane -----------------------------------------------------------------------

/** A connection whose sockets the native engine owns (native/relay.c); this side decides. */
class NativeConn extends BaseConn {
  closed = false;
  up = 0;
  down = 0;
  remoteLabel = '';

  constructor(
    proxy: SniProxy,
    readonly relay: NativeRelay,
    readonly id: number,
    maxHelloBytes: number,
  ) {
    super(proxy, maxHelloBytes);
  }

  clientGone(): boolean {
    return this.closed;
  }

  open(host: string, port: number, timeoutMs: number): void {
    const internal = this.proxy[kInternal];
    let err: number;
    try {
      err = this.relay.connect(this.id, host, port, timeoutMs, internal.sourceAddress());
    } catch (e) {
      // an endpoint the engine cannot parse (it only takes IP addresses): try the next one
      internal.debug('mesh gateway connect failed', { host, port, error: e instanceof Error ? e.message : String(e) });
      internal.attemptFailed(this);
      return;
    }
    if (err === UV_ECANCELED) return; // the client is gone: its CLIENT_END event is on the way
    if (err < 0) {
      internal.debug('mesh gateway connect failed', { host, port, error: getSystemErrorName(err) });
      internal.attemptFailed(this);
    }
  }

  destroy(): void {
    if (this.closed) return;
    this.closed = true;
    const b = this.relay.destroy(this.id);
    if (b) [this.up, this.down] = b;
    const internal = this.proxy[kInternal];
    internal.forget(this);
    internal.finish(this);
  }

  /** The engine closed the pair by itself. */
  ended(up: number, down: number): void {
    this.closed = true;
    this.up = up;
    this.down = down;
    this.proxy[kInternal].finish(this);
  }

  remote(): string {
    if (!this.remoteLabel && !this.closed) this.remoteLabel = this.relay.peer(this.id) ?? '';
    return this.remoteLabel || '?:?';
  }

  bytes(): [number, number] {
    return (!this.closed && this.relay.bytes(this.id)) || [this.up, this.down];
  }

  helloIncomplete(): void {
    // the engine keeps reading; its hello deadline runs
  }

  helloComplete(): void {
    this.relay.pause(this.id);
  }
}

// ---- the proxy -------------------------------------------------------------------------------

/** libuv's ECANCELED: the native engine's answer for a connection that has closed meanwhile. */
const UV_ECANCELED = -osConstants.errno.ECANCELED;

function connectFrom(sourceAddress: string | undefined): ConnectFn {
  return (options) => net.connect({ host: options.host, port: options.port, allowHalfOpen: true, noDelay: true, ...(sourceAddress !== undefined ? { localAddress: sourceAddress } : {}) });
}

async function defaultLookup(hostname: string, family: 0 | 4 | 6): Promise<readonly string[]> {
  const all = await dnsLookup(hostname, { family, all: true });
  return all.map((a) => a.address);
}

function newClusterStats(): ClusterStats {
  return { connections: 0, active: 0, connectFailures: 0, bytesUp: 0, bytesDown: 0 };
}

/** How often the handles plane checks deadlines: a tenth of the shortest one, 20–250 ms. */
function sweepInterval(helloTimeoutMs: number, shortestConnectTimeoutMs: number): number {
  return Math.min(250, Math.max(20, Math.floor(Math.min(helloTimeoutMs, shortestConnectTimeoutMs) / 10)));
}

/** A listen error shaped like `net`'s (`listen EADDRINUSE: address already in use 127.0.0.1:80`). */
function listenError(errno: number, syscall: string, host: string, port: number): NodeJS.ErrnoException {
  const code = getSystemErrorName(errno);
  const text = getSystemErrorMap().get(errno)?.[1] ?? 'failed';
  const err: NodeJS.ErrnoException = new Error(`${syscall} ${code}: ${text} ${host}:${port}`);
  err.code = code;
  err.errno = errno;
  err.syscall = syscall;
  return err;
}

/**
 * A TLS-passthrough SNI proxy routed by xDS resources.
 *
 * @example
 * ```ts
 * const proxy = new SniProxy({ logger });
 * proxy.update({ listeners, clusters, endpoints });
 * await proxy.listen('127.0.0.1', 8443);
 * console.log(proxy.address.port, proxy.dataPlane, proxy.stats());
 * await proxy.close({ drain: true, drainTimeoutMs: 10_000 });
 * ```
 */
export class SniProxy {
  readonly #logger: Logger | undefined;
  readonly #helloTimeoutMs: number;
  readonly #maxHelloBytes: number;
  readonly #listenerName: string | undefined;
  readonly #defaultConnectTimeoutMs: number | undefined;
  readonly #random: boolean;
  readonly #connect: ConnectFn;
  readonly #lookup: LookupFn;
  readonly #floodThreshold: number;
  readonly #floodWindowMs: number;
  readonly #backlog: number;
  readonly #handles: TcpHandleApi | undefined;
  readonly #sourceAddress: string | undefined;
  readonly #nativeRouting: boolean;
  #table: RoutingTable = emptyRoutingTable();
  #rr = new Map<string, number>();
  #server: net.Server | undefined;
  #serverHandle: TcpHandle | undefined;
  #bound: AddressInfo | undefined;
  #closing = false;
  #closed: Promise<void> | undefined;
  readonly #conns = new Set<BaseConn>();
  #drainWaiters: Array<() => void> = [];
  /** Handles connections in peek or connect phase (their deadlines), and the sweep over them. */
  readonly #watched = new Set<HandleConn>();
  /** The native engine (`native` plane) and its connections by id. */
  readonly #relay: NativeRelay | undefined;
  readonly #native = new Map<number, NativeConn>();
  /** The native engine's per-cluster stats slots, by cluster name and by slot. */
  readonly #slots = new Map<string, number>();
  readonly #slotNames: string[] = [];
  /** Why `auto` did not take the native plane (for the start log), if it did not. */
  #nativeMissing: string | undefined;
  #sweep: NodeJS.Timeout | undefined;
  #sweepMs: number;
  // Counters.
  #total = 0;
  #spliced = 0;
  #refused: Partial<Record<RefusalReason, number>> = {};
  #bytesUp = 0;
  #bytesDown = 0;
  readonly #clusterStats = new Map<string, ClusterStats>();
  #floodWindowStart = 0;
  #floodCount = 0;

  /** Create a proxy; it routes nothing until {@link update} and accepts nothing until {@link listen}. */
  constructor(options: SniProxyOptions = {}) {
    this.#logger = options.logger;
    this.#helloTimeoutMs = options.helloTimeoutMs ?? 5_000;
    this.#maxHelloBytes = options.maxHelloBytes ?? DEFAULT_MAX_CLIENT_HELLO_BYTES;
    this.#listenerName = options.listenerName;
    this.#defaultConnectTimeoutMs = options.defaultConnectTimeoutMs;
    this.#random = options.balance === 'random';
    if (options.sourceAddress !== undefined && isIP(options.sourceAddress) === 0) {
      throw meshGatewayError(MeshGatewayErrorCode.STATE, `SniProxy: sourceAddress must be an IP address, got ${JSON.stringify(options.sourceAddress)}`);
    }
    if (options.sourceAddress !== undefined && options.connect) throw meshGatewayError(MeshGatewayErrorCode.STATE, 'SniProxy: give either connect or sourceAddress (a custom connect chooses its own source)');
    this.#sourceAddress = options.sourceAddress;
    this.#nativeRouting = options.nativeRouting ?? true;
    this.#connect = options.connect ?? connectFrom(options.sourceAddress);
    this.#lookup = options.lookup ?? defaultLookup;
    this.#floodThreshold = options.floodThreshold ?? 100;
    this.#floodWindowMs = options.floodWindowMs ?? 10_000;
    this.#backlog = options.backlog ?? 511;
    const plane = options.dataPlane ?? 'auto';
    if (plane !== 'auto' && plane !== 'native' && plane !== 'handles' && plane !== 'streams') {
      throw meshGatewayError(MeshGatewayErrorCode.STATE, `SniProxy: dataPlane must be "auto", "native", "handles" or "streams", got ${JSON.stringify(plane)}`);
    }
    if ((plane === 'handles' || plane === 'native') && options.connect) throw meshGatewayError(MeshGatewayErrorCode.STATE, 'SniProxy: a custom connect function needs dataPlane "streams" (or "auto")');
    if ((plane === 'auto' || plane === 'native') && !options.connect) {
      const { relay: Relay, why } = loadNativeRelay();
      if (Relay) {
        const onEvent = (kind: number, id: number, a: number, b: number, data: Buffer | undefined): void => this.#onRelayEvent(kind, id, a, b, data);
        this.#relay = new Relay(onEvent, this.#helloTimeoutMs, this.#maxHelloBytes + 64 * 1024, this.#maxHelloBytes, this.#random, this.#sourceAddress);
      }
      else this.#nativeMissing = why;
      if (!Relay && plane === 'native') throw meshGatewayError(MeshGatewayErrorCode.STATE, `SniProxy: dataPlane "native" is not available: ${why}; use "auto" or "handles"`);
    }
    const api = plane === 'streams' || this.#relay ? undefined : loadTcpHandles();
    if (plane === 'handles' && !api) throw meshGatewayError(MeshGatewayErrorCode.STATE, 'SniProxy: dataPlane "handles" is not available on this Node (its TCP handle bindings are missing or changed); use "auto" or "streams"');
    this.#handles = options.connect ? undefined : api;
    this.#sweepMs = sweepInterval(this.#helloTimeoutMs, options.defaultConnectTimeoutMs ?? 5_000);
  }

  /** The data plane accepted connections use (see the module notes). */
  get dataPlane(): DataPlane {
    return this.#relay ? 'native' : this.#handles ? 'handles' : 'streams';
  }

  /** For the start log: why the native plane is not in use when `auto` would have taken it. */
  #nativeNote(): { native_unavailable?: string } {
    return this.#nativeMissing === undefined ? {} : { native_unavailable: this.#nativeMissing };
  }

  /** The native engine's events: a connection's first bytes or end, a failed attempt, a closed pair. */
  #onRelayEvent(kind: number, id: number, a: number, b: number, data: Buffer | undefined): void {
    const relay = this.#relay;
    if (!relay) return;
    if (kind === RelayEvent.ACCEPT_ERROR) {
      this.#logger?.error('mesh gateway listener error', { error: `accept ${getSystemErrorName(a)}` });
      return;
    }
    if (kind === RelayEvent.IDLE) {
      this.#maybeDrained();
      return;
    }
    let c = this.#native.get(id);
    if (!c) {
      if (kind !== RelayEvent.DATA && kind !== RelayEvent.CLIENT_END && kind !== RelayEvent.FAST_FAILED) return;
      c = new NativeConn(this, relay, id, this.#maxHelloBytes);
      this.#native.set(id, c);
      this.#total++;
      this.#conns.add(c);
    }
    switch (kind) {
      case RelayEvent.DATA:
        if (data) this.#onHello(c, data);
        return;
      case RelayEvent.CLIENT_END:
        // the engine has closed it already
        c.closed = true;
        this.#native.delete(id);
        if (b === 1) this.#refuse(c, 'timeout', 'no complete ClientHello before the deadline');
        else this.#refuse(c, 'client-closed', a === UV_EOF ? 'end of stream before a complete ClientHello' : `connection closed before a complete ClientHello (${getSystemErrorName(a)})`);
        this.#finish(c);
        return;
      case RelayEvent.CONNECT_FAILED:
        this.#logger?.debug('mesh gateway connect failed', { error: getSystemErrorName(a), sni: c.sni });
        this[kInternal].attemptFailed(c);
        return;
      case RelayEvent.CLOSED:
        this.#native.delete(id);
        if (c.phase === 'connect') this.#onSpliced(c);
        c.ended(a, b);
        return;
      case RelayEvent.CLIENT_EOF:
        // the end came after bytes this side has judged: refused only if they were not a whole hello
        if (c.phase === 'peek') this.#refuse(c, 'client-closed', 'end of stream before a complete ClientHello');
        return;
      case RelayEvent.FAST_FAILED: {
        // routed by the engine, every endpoint refused: refused here, with the server name for the log
        if (data) {
          const v = new ClientHelloReader({ maxHelloBytes: this.#maxHelloBytes }).push(data);
          if (v.kind === 'hello') c.sni = v.hello.serverName ?? '';
        }
        c.phase = 'route';
        c.reader = undefined;
        const name = this.#slotNames[b] ?? '?';
        this.#logger?.debug('mesh gateway connect failed', { error: getSystemErrorName(a), sni: c.sni });
        this.#refuse(c, 'upstream-failed', `no endpoint of cluster ${name} accepted the connection`);
        return;
      }
    }
  }

  /** The native engine's stats slot of a cluster (stable for the proxy's life: its counters live there). */
  #slotFor(cluster: string): number {
    let slot = this.#slots.get(cluster);
    if (slot === undefined) {
      slot = this.#slotNames.length;
      this.#slots.set(cluster, slot);
      this.#slotNames.push(cluster);
    }
    return slot;
  }

  /**
   * Replace the routing table atomically. Open connections keep their upstream; connections whose
   * ClientHello completes afterwards use the new table. Throws (and keeps the old table) when the
   * resources are invalid — the ADS client turns that into a NACK.
   */
  update(resources: MeshGatewayResources): void {
    const opts: { listenerName?: string; defaultConnectTimeoutMs?: number } = {};
    if (this.#listenerName !== undefined) opts.listenerName = this.#listenerName;
    if (this.#defaultConnectTimeoutMs !== undefined) opts.defaultConnectTimeoutMs = this.#defaultConnectTimeoutMs;
    const table = compileRoutingTable(resources, opts);
    this.#table = table;
    const rr = new Map<string, number>();
    let shortest = this.#defaultConnectTimeoutMs ?? 5_000;
    for (const [name, cluster] of table.clusters) {
      rr.set(name, this.#rr.get(name) ?? 0);
      shortest = Math.min(shortest, cluster.connectTimeoutMs);
    }
    // applies from the next time the sweep starts (it stops whenever nothing is watched)
    this.#sweepMs = sweepInterval(this.#helloTimeoutMs, shortest);
    this.#rr = rr;
    const relay = this.#relay;
    if (relay) {
      try {
        relay.setRoutes(encodeFastRoutes(this.#nativeRouting ? table : emptyRoutingTable(), (name) => this.#slotFor(name)));
      } catch (err) {
        // every connection is then decided here, as on the other planes
        this.#logger?.warn('mesh gateway: the native engine refused its fast routes; routing every connection in JavaScript', { error: err instanceof Error ? err.message : String(err) });
        relay.setRoutes(encodeFastRoutes(emptyRoutingTable(), (name) => this.#slotFor(name)));
      }
    }
    this.#logger?.debug('mesh gateway routes updated', {
      listener: table.listener,
      exact: table.exact.size,
      wildcard: table.wildcard.size,
      catch_all: table.catchAll !== undefined,
      clusters: table.clusters.size,
    });
  }

  /** The routing table in use. */
  get table(): RoutingTable {
    return this.#table;
  }

  /** Start accepting connections on `host:port` (port 0 picks a free port; see {@link address}). */
  async listen(host: string, port: number): Promise<void> {
    if (this.#server || this.#serverHandle || this.#bound || this.#closing) throw meshGatewayError(MeshGatewayErrorCode.STATE, 'SniProxy.listen: the proxy is already listening or closed; create a new SniProxy');
    const relay = this.#relay;
    if (relay) {
      const address = isIP(host) !== 0 ? host : (await dnsLookup(host)).address;
      if (this.#bound || this.#closing) throw meshGatewayError(MeshGatewayErrorCode.STATE, 'SniProxy.listen: the proxy is already listening or closed; create a new SniProxy');
      const err = relay.listen(address, port, this.#backlog);
      if (err < 0) throw listenError(err, 'listen', host, port);
      const [a, p, family] = relay.address() ?? [address, port, isIP(address) === 6 ? 'IPv6' : 'IPv4'];
      this.#bound = { address: a, family, port: p };
      this.#logger?.info('mesh gateway listening', { address: `${host}:${p}`, data_plane: 'native' });
      return;
    }
    const api = this.#handles;
    if (api) {
      const address = isIP(host) !== 0 ? host : (await dnsLookup(host)).address;
      if (this.#serverHandle || this.#closing) throw meshGatewayError(MeshGatewayErrorCode.STATE, 'SniProxy.listen: the proxy is already listening or closed; create a new SniProxy');
      this.#listenHandle(api, address, port);
      this.#logger?.info('mesh gateway listening', { address: `${host}:${this.address.port}`, data_plane: 'handles', ...this.#nativeNote() });
      return;
    }
    const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => this.handle(socket));
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) => {
        this.#server = undefined;
        reject(err);
      });
      server.listen({ host, port, backlog: this.#backlog }, () => {
        server.removeAllListeners('error');
        const a = server.address();
        if (a && typeof a !== 'string') this.#bound = a;
        resolve();
      });
    });
    server.on('error', (err) => this.#logger?.error('mesh gateway listener error', { error: err.message }));
    this.#logger?.info('mesh gateway listening', { address: `${host}:${this.address.port}`, data_plane: 'streams', ...this.#nativeNote() });
  }

  #listenHandle(api: TcpHandleApi, host: string, port: number): void {
    const family = isIP(host);
    const h = api.newServer();
    let err = family === 6 ? h.bind6(host, port, 0) : h.bind(host, port);
    if (err < 0) {
      h.close();
      throw listenError(err, 'bind', host, port);
    }
    err = h.listen(this.#backlog);
    if (err < 0) {
      h.close();
      throw listenError(err, 'listen', host, port);
    }
    const out: SockAddr = {};
    h.getsockname(out);
    this.#bound = { address: out.address ?? host, family: out.family ?? (family === 6 ? 'IPv6' : 'IPv4'), port: out.port ?? port };
    h.onconnection = (status, client) => {
      if (status < 0 || !client) {
        this.#logger?.error('mesh gateway listener error', { error: `accept ${getSystemErrorName(status)}` });
        return;
      }
      this.#acceptHandle(api, client);
    };
    this.#serverHandle = h;
  }

  /** The bound address (after {@link listen}; still readable after {@link close}). */
  get address(): AddressInfo {
    const a = this.#bound;
    if (!a) throw meshGatewayError(MeshGatewayErrorCode.STATE, 'SniProxy.address: the proxy is not listening; call listen() first');
    return a;
  }

  /**
   * Proxy one accepted client socket (what the `streams` listener does for each connection; usable
   * to feed sockets accepted elsewhere, whichever plane the listener uses). The socket should allow
   * half-open operation.
   */
  handle(socket: net.Socket): void {
    const client = socket as TaggedSocket;
    this.#total++;
    const conn = new StreamConn(this, client, this.#maxHelloBytes);
    client[kConn] = conn;
    this.#conns.add(conn);
    client.on('error', ignoreError);
    client.on('close', onClientClose);
    if (this.#closing) {
      this.#refuse(conn, 'closing');
      return;
    }
    client.setNoDelay(true);
    client.on('data', onClientData);
    client.on('end', onClientEndEarly);
    client.on('timeout', onClientTimeout);
    conn.helloDeadline = Date.now() + this.#helloTimeoutMs;
    client.setTimeout(this.#helloTimeoutMs);
  }

  #acceptHandle(api: TcpHandleApi, client: TaggedHandle): void {
    this.#total++;
    const conn = new HandleConn(this, api, client, this.#maxHelloBytes);
    client[kConn] = conn;
    this.#conns.add(conn);
    if (this.#closing) {
      this.#refuse(conn, 'closing');
      return;
    }
    client.setNoDelay(true);
    // The connection's own read buffer from the start (the hello bytes are copied out of it).
    client.buffer = this[kInternal].buffers.take(SMALL_BUFFER);
    client.useUserBuffer(client.buffer);
    client.onread = onHandleHello;
    const err = client.readStart();
    if (err < 0) {
      this.#refuse(conn, 'client-closed', `read ${getSystemErrorName(err)}`);
      return;
    }
    conn.helloDeadline = Date.now() + this.#helloTimeoutMs;
    this.#watch(conn);
  }

  #watch(c: HandleConn): void {
    this.#watched.add(c);
    if (!this.#sweep) {
      this.#sweep = setInterval(() => this.#sweepDeadlines(), this.#sweepMs);
      this.#sweep.unref();
    }
  }

  #unwatch(c: HandleConn): void {
    this.#watched.delete(c);
  }

  #sweepDeadlines(): void {
    if (this.#watched.size === 0) {
      // Stopped here rather than in #unwatch: under load the set empties and refills all the time.
      clearInterval(this.#sweep);
      this.#sweep = undefined;
      return;
    }
    const now = Date.now();
    for (const c of [...this.#watched]) {
      if (c.closed) this.#unwatch(c);
      else if (c.phase === 'peek' && now >= c.helloDeadline) this.#refuse(c, 'timeout', 'no complete ClientHello before the deadline');
      else if (c.phase === 'connect' && c.connectDeadline !== 0 && now >= c.connectDeadline) c.abandonAttempt();
    }
  }

  /** Counters; byte counts include connections still open. */
  stats(): SniProxyStats {
    const relay = this.#relay;
    let open = 0;
    let done = 0;
    let spliced = this.#spliced;
    let up = this.#bytesUp;
    let down = this.#bytesDown;
    const clusters: Record<string, ClusterStats> = {};
    for (const [name, s] of this.#clusterStats) clusters[name] = { ...s };
    if (relay) {
      // The engine does not call back when a pair connects: count the ones that have.
      for (const c of this.#native.values()) if (c.phase === 'connect' && relay.connected(c.id)) this.#onSpliced(c);
      spliced = this.#spliced;
      // Connections the engine routed by itself (this side never heard of them).
      const e = relay.engineStats();
      open = e[0] ?? 0;
      done = e[1] ?? 0;
      spliced += e[2] ?? 0;
      up += e[3] ?? 0;
      down += e[4] ?? 0;
      for (let slot = 0; 5 + 5 * slot < e.length; slot++) {
        const name = this.#slotNames[slot];
        const at = 5 + 5 * slot;
        if (name === undefined || (e[at] ?? 0) + (e[at + 2] ?? 0) === 0) continue;
        const cs = (clusters[name] ??= newClusterStats());
        cs.connections += e[at] ?? 0;
        cs.active += e[at + 1] ?? 0;
        cs.connectFailures += e[at + 2] ?? 0;
        cs.bytesUp += e[at + 3] ?? 0;
        cs.bytesDown += e[at + 4] ?? 0;
      }
    }
    for (const c of this.#conns) {
      if (c.phase !== 'splice') continue;
      const [u, d] = c.bytes();
      up += u;
      down += d;
      const cs = c.cluster && clusters[c.cluster.name];
      if (cs) {
        cs.bytesUp += u;
        cs.bytesDown += d;
      }
    }
    return { active: this.#conns.size + open, total: this.#total + open + done, spliced, refused: { ...this.#refused }, bytesUp: up, bytesDown: down, clusters };
  }

  /**
   * Stop accepting. By default open connections are destroyed; with `drain` they may finish
   * (until `drainTimeoutMs`, if given). Resolves when the listener and every connection are closed.
   * Calling it again without `drain` while draining destroys the remaining connections.
   */
  close(options: CloseOptions = {}): Promise<void> {
    if (this.#closed) {
      if (!options.drain) this.#destroyAll();
      return this.#closed;
    }
    this.#closing = true;
    const server = this.#server;
    const serverHandle = this.#serverHandle;
    let serverClosed: Promise<void> = Promise.resolve();
    if (server) serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
    else if (serverHandle) {
      serverHandle.onconnection = undefined;
      serverClosed = new Promise<void>((resolve) => serverHandle.close(resolve));
    } else this.#relay?.unlisten(); // its descriptor is closed at once
    const drained = new Promise<void>((resolve) => {
      if (this.#conns.size === 0 && (this.#relay?.unreported ?? 0) === 0) resolve();
      else this.#drainWaiters.push(resolve);
    });
    let timer: NodeJS.Timeout | undefined;
    if (!options.drain) this.#destroyAll();
    else if (options.drainTimeoutMs !== undefined) {
      timer = setTimeout(() => this.#destroyAll(), options.drainTimeoutMs);
    }
    this.#closed = Promise.all([serverClosed, drained]).then(() => {
      if (timer) clearTimeout(timer);
    });
    return this.#closed;
  }

  #destroyAll(): void {
    const relay = this.#relay;
    if (relay) {
      // accepted by the engine, nothing read yet: refused like peeking connections
      const n = relay.destroyUnreported();
      if (n > 0) {
        this.#total += n;
        this.#refused.closing = (this.#refused.closing ?? 0) + n;
        this.#maybeDrained();
      }
    }
    for (const c of [...this.#conns]) {
      if (c.phase === 'peek') this.#refuse(c, 'closing');
      else c.destroy();
    }
  }

  /** Handlers called by the shared socket listeners. @internal */
  readonly [kInternal]: Internal = {
    buffers: new BufferPool(),
    onHello: (c, chunk) => this.#onHello(c, chunk),
    refuse: (c, reason, detail) => this.#refuse(c, reason, detail),
    spliced: (c) => this.#onSpliced(c),
    attemptFailed: (c) => {
      if (c.clusterStats) c.clusterStats.connectFailures++;
      this.#tryEndpoint(c);
    },
    finish: (c) => this.#finish(c),
    unwatch: (c) => this.#unwatch(c),
    forget: (c) => this.#native.delete(c.id),
    connect: (o) => this.#connect(o),
    sourceAddress: () => this.#sourceAddress,
    debug: (message, fields) => this.#logger?.debug(message, fields),
  };

  #onHello(c: BaseConn, chunk: Buffer): void {
    if (c.phase !== 'peek' || !c.reader) return;
    const v = c.reader.push(chunk);
    if (v.kind === 'incomplete') {
      c.helloIncomplete();
      return;
    }
    if (v.kind !== 'hello') {
      this.#refuse(c, v.kind, v.detail);
      return;
    }
    c.helloComplete();
    c.hello = c.reader.bytes();
    c.reader = undefined;
    c.phase = 'route';
    this.#route(c, v.hello);
  }

  /** Pick chain, cluster and first endpoint for a complete ClientHello, then connect (or refuse). */
  #route(c: BaseConn, hello: ClientHello): void {
    const sni = hello.serverName;
    if (sni === undefined) {
      this.#refuse(c, 'no-sni', 'the ClientHello has no server_name');
      return;
    }
    c.sni = sni;
    const table = this.#table;
    const chain = matchChain(table, sni);
    if (!chain) {
      this.#refuse(c, 'no-route', `no filter chain matches ${sni}`);
      return;
    }
    if (chain.unsupported) {
      this.#refuse(c, 'unsupported', `filter chain ${chain.index}: ${chain.unsupported}`);
      return;
    }
    const clusterName = chain.cluster ?? sni;
    const cluster = table.clusters.get(clusterName);
    if (!cluster) {
      this.#refuse(c, 'unknown-cluster', `cluster ${clusterName} does not exist`);
      return;
    }
    if (cluster.unsupported) {
      this.#refuse(c, 'unsupported', `cluster ${clusterName}: ${cluster.unsupported}`);
      return;
    }
    const n = cluster.endpoints.length;
    if (n === 0) {
      this.#refuse(c, 'no-endpoints', `cluster ${clusterName} has no healthy endpoints`);
      return;
    }
    let start: number;
    if (this.#random) start = Math.floor(Math.random() * n);
    else {
      start = (this.#rr.get(clusterName) ?? 0) % n;
      this.#rr.set(clusterName, start + 1);
    }
    c.cluster = cluster;
    c.clusterStats = this.#statsFor(clusterName);
    c.candidates = cluster.endpoints;
    c.attempt = 0;
    c.start = start;
    c.phase = 'connect';
    this.#tryEndpoint(c);
  }

  #statsFor(cluster: string): ClusterStats {
    let s = this.#clusterStats.get(cluster);
    if (!s) {
      s = newClusterStats();
      this.#clusterStats.set(cluster, s);
    }
    return s;
  }

  /** Connect to candidate `(start + attempt) % n`, or refuse when every candidate was tried. */
  #tryEndpoint(c: BaseConn): void {
    if (c.clientGone()) {
      c.settle();
      return;
    }
    const n = c.candidates.length;
    if (c.attempt >= n) {
      this.#refuse(c, 'upstream-failed', `no endpoint of cluster ${c.cluster?.name ?? '?'} accepted the connection`);
      return;
    }
    const ep = c.candidates[(c.start + c.attempt) % n];
    c.attempt++;
    if (!ep) return;
    const cluster = c.cluster;
    if (!cluster) return;
    if (isIP(ep.host) !== 0) {
      c.open(ep.host, ep.port, cluster.connectTimeoutMs);
      return;
    }
    this.#lookup(ep.host, cluster.dnsFamily).then(
      (addrs) => {
        const addr = addrs[0];
        if (addr === undefined) throw new Error(`${ep.host} resolved to no address`);
        if (c.clientGone()) {
          c.settle();
          return;
        }
        c.open(addr, ep.port, cluster.connectTimeoutMs);
      },
      (err: unknown) => {
        if (c.clusterStats) c.clusterStats.connectFailures++;
        this.#logger?.debug('mesh gateway endpoint name did not resolve', { host: ep.host, error: err instanceof Error ? err.message : String(err) });
        this.#tryEndpoint(c);
      },
    );
  }

  #onSpliced(c: BaseConn): void {
    c.phase = 'splice';
    this.#spliced++;
    const cs = c.clusterStats;
    if (cs) {
      cs.connections++;
      cs.active++;
    }
  }

  /** Every socket of `c` is closed: fold its counters in and release drain waiters. */
  #finish(c: BaseConn): void {
    if (c.finished) return;
    c.finished = true;
    this.#conns.delete(c);
    if (c.phase === 'splice') {
      const [up, down] = c.bytes();
      this.#bytesUp += up;
      this.#bytesDown += down;
      const cs = c.clusterStats;
      if (cs) {
        cs.active--;
        cs.bytesUp += up;
        cs.bytesDown += down;
      }
    }
    this.#maybeDrained();
  }

  /** Release drain waiters once no connection is left. */
  #maybeDrained(): void {
    if (this.#conns.size > 0 || this.#drainWaiters.length === 0 || (this.#relay?.unreported ?? 0) > 0) return;
    const waiters = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const w of waiters) w();
  }

  /** Record a refusal (once per connection) and close the client. */
  #refuse(c: BaseConn, reason: RefusalReason, detail?: string): void {
    this.#countRefusal(c, reason, detail);
    c.phase = c.phase === 'peek' ? 'route' : c.phase;
    c.reader = undefined;
    c.hello = undefined;
    c.destroy();
  }

  #countRefusal(c: BaseConn, reason: RefusalReason, detail?: string): void {
    if (c.refusal !== undefined) return;
    c.refusal = reason;
    this.#refused[reason] = (this.#refused[reason] ?? 0) + 1;
    const log = this.#logger;
    if (!log) return;
    if (log.isLevelEnabled('debug')) {
      log.debug('mesh gateway refused a connection', { reason, detail, remote: c.remote(), sni: c.sni || undefined });
    }
    const now = Date.now();
    if (now - this.#floodWindowStart >= this.#floodWindowMs) {
      this.#floodWindowStart = now;
      this.#floodCount = 0;
    }
    if (++this.#floodCount === this.#floodThreshold) {
      log.warn('mesh gateway is refusing many connections', { refused_in_window: this.#floodCount, window_ms: this.#floodWindowMs, totals: { ...this.#refused } });
    }
  }
}
