/**
 * The mesh gateway's data plane: a TLS-passthrough SNI proxy (spec §9.3, §9.6). Per connection it
 * reads the ClientHello without decrypting, picks the filter chain by server name, picks an
 * endpoint of the chain's cluster, connects (trying the next endpoint on failure), forwards the
 * ClientHello bytes, then splices both directions with `pipe()` until both sides are done.
 *
 * Cost notes (see the gateway benchmark notes): handlers are shared module-level functions that
 * find their connection through a symbol-keyed property, so a connection costs two sockets, one
 * small state object and no closures; timeouts use the sockets' own idle timers; bytes are counted
 * from the sockets' counters, never per chunk.
 *
 * Closing rules (the `pipe()` leak trap): when one side closes with an error, or without having
 * read its peer's end-of-stream, the other side is destroyed at once; a side that closed cleanly
 * has already passed its EOF on, so the other side finishes its writes and closes by itself.
 */
import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../../core/logger.js';
import { ClientHelloReader, DEFAULT_MAX_CLIENT_HELLO_BYTES } from './client-hello.js';
import type { ClientHelloRejection } from './client-hello.js';
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
  /** Opens upstream connections (default `net.connect`). */
  readonly connect?: ConnectFn;
  /** Resolves hostname endpoints (default `dns.lookup` with the cluster's family). */
  readonly lookup?: LookupFn;
  /** Refusals within one window above which a warning is logged (default 100). */
  readonly floodThreshold?: number;
  /** Length of the refusal-flood window (default 10 000 ms). */
  readonly floodWindowMs?: number;
  /** `backlog` passed to `listen` (default 511). */
  readonly backlog?: number;
}

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

/** A socket carrying its connection state. */
type TaggedSocket = net.Socket & { [kConn]?: Conn };

type Phase = 'peek' | 'route' | 'connect' | 'splice';

/** State of one proxied connection. */
class Conn {
  phase: Phase = 'peek';
  readonly client: TaggedSocket;
  upstream: TaggedSocket | undefined = undefined;
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
  clientClosed = false;
  upstreamClosed = false;
  finished = false;
  clusterStats: ClusterStats | undefined = undefined;

  constructor(
    readonly proxy: SniProxy,
    client: TaggedSocket,
    maxHelloBytes: number,
  ) {
    this.client = client;
    this.reader = new ClientHelloReader({ maxHelloBytes });
  }
}

/** Internal hooks the shared handlers call; kept off the public surface through a symbol. */
const kInternal = Symbol('meshfed.mesh-gateway.internal');

interface Internal {
  onHelloData(c: Conn, chunk: Buffer): void;
  refuse(c: Conn, reason: RefusalReason, detail?: string): void;
  onClientClose(c: Conn, hadError: boolean): void;
  onUpstreamConnect(c: Conn, s: TaggedSocket): void;
  onUpstreamClose(c: Conn, s: TaggedSocket, hadError: boolean): void;
}

function connOf(s: net.Socket): Conn | undefined {
  return (s as TaggedSocket)[kConn];
}

function onClientData(this: net.Socket, chunk: Buffer): void {
  const c = connOf(this);
  if (c) c.proxy[kInternal].onHelloData(c, chunk);
}

function onClientEndEarly(this: net.Socket): void {
  const c = connOf(this);
  if (c && c.phase === 'peek') c.proxy[kInternal].refuse(c, 'client-closed', 'end of stream before a complete ClientHello');
}

function onClientTimeout(this: net.Socket): void {
  const c = connOf(this);
  if (c && c.phase === 'peek') c.proxy[kInternal].refuse(c, 'timeout', 'no complete ClientHello before the deadline');
}

function onClientClose(this: net.Socket, hadError: boolean): void {
  const c = connOf(this);
  if (c) c.proxy[kInternal].onClientClose(c, hadError);
}

function onUpstreamConnect(this: net.Socket): void {
  const c = connOf(this);
  if (c) c.proxy[kInternal].onUpstreamConnect(c, this);
}

function onUpstreamTimeout(this: net.Socket): void {
  // Connect timeout: the close handler moves on to the next endpoint.
  this.destroy();
}

function onUpstreamClose(this: net.Socket, hadError: boolean): void {
  const c = connOf(this);
  if (c) c.proxy[kInternal].onUpstreamClose(c, this, hadError);
}

/** Destroy a socket unless it already is (every socket is destroyed exactly once). */
function destroyOnce(s: net.Socket | undefined): void {
  if (s && !s.destroyed) s.destroy();
}

function ignoreError(): void {
  // Errors are handled through 'close' (hadError); this listener keeps them from being thrown.
}

function defaultConnect(options: { readonly host: string; readonly port: number }): net.Socket {
  return net.connect({ host: options.host, port: options.port, allowHalfOpen: true, noDelay: true });
}

async function defaultLookup(hostname: string, family: 0 | 4 | 6): Promise<readonly string[]> {
  const all = await dnsLookup(hostname, { family, all: true });
  return all.map((a) => a.address);
}

function newClusterStats(): ClusterStats {
  return { connections: 0, active: 0, connectFailures: 0, bytesUp: 0, bytesDown: 0 };
}

/**
 * A TLS-passthrough SNI proxy routed by xDS resources.
 *
 * @example
 * ```ts
 * const proxy = new SniProxy({ logger });
 * proxy.update({ listeners, clusters, endpoints });
 * await proxy.listen('127.0.0.1', 8443);
 * console.log(proxy.address.port, proxy.stats());
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
  #table: RoutingTable = emptyRoutingTable();
  #rr = new Map<string, number>();
  #server: net.Server | undefined;
  #bound: AddressInfo | undefined;
  #closing = false;
  #closed: Promise<void> | undefined;
  readonly #conns = new Set<Conn>();
  #drainWaiters: Array<() => void> = [];
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
    this.#connect = options.connect ?? defaultConnect;
    this.#lookup = options.lookup ?? defaultLookup;
    this.#floodThreshold = options.floodThreshold ?? 100;
    this.#floodWindowMs = options.floodWindowMs ?? 10_000;
    this.#backlog = options.backlog ?? 511;
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
    for (const name of table.clusters.keys()) rr.set(name, this.#rr.get(name) ?? 0);
    this.#rr = rr;
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
    if (this.#server || this.#closing) throw meshGatewayError(MeshGatewayErrorCode.STATE, 'SniProxy.listen: the proxy is already listening or closed; create a new SniProxy');
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
    this.#logger?.info('mesh gateway listening', { address: `${host}:${this.address.port}` });
  }

  /** The bound address (after {@link listen}; still readable after {@link close}). */
  get address(): AddressInfo {
    const a = this.#bound;
    if (!a) throw meshGatewayError(MeshGatewayErrorCode.STATE, 'SniProxy.address: the proxy is not listening; call listen() first');
    return a;
  }

  /**
   * Proxy one accepted client socket (what the listener does for each connection; usable to feed
   * sockets accepted elsewhere). The socket should allow half-open operation.
   */
  handle(socket: net.Socket): void {
    const client = socket as TaggedSocket;
    this.#total++;
    const conn = new Conn(this, client, this.#maxHelloBytes);
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

  /** Counters; byte counts include connections still open. */
  stats(): SniProxyStats {
    let up = this.#bytesUp;
    let down = this.#bytesDown;
    const clusters: Record<string, ClusterStats> = {};
    for (const [name, s] of this.#clusterStats) clusters[name] = { ...s };
    for (const c of this.#conns) {
      if (c.phase !== 'splice' || !c.upstream) continue;
      const u = c.upstream.bytesWritten;
      const d = c.client.bytesWritten;
      up += u;
      down += d;
      const cs = c.cluster && clusters[c.cluster.name];
      if (cs) {
        cs.bytesUp += u;
        cs.bytesDown += d;
      }
    }
    return { active: this.#conns.size, total: this.#total, spliced: this.#spliced, refused: { ...this.#refused }, bytesUp: up, bytesDown: down, clusters };
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
    const serverClosed = server ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
    const drained = new Promise<void>((resolve) => {
      if (this.#conns.size === 0) resolve();
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
    for (const c of [...this.#conns]) {
      if (c.phase === 'peek') this.#refuse(c, 'closing');
      else {
        destroyOnce(c.upstream);
        destroyOnce(c.client);
      }
    }
  }

  /** Handlers called by the shared socket listeners. @internal */
  readonly [kInternal]: Internal = {
    onHelloData: (c, chunk) => this.#onHelloData(c, chunk),
    refuse: (c, reason, detail) => this.#refuse(c, reason, detail),
    onClientClose: (c, hadError) => this.#onClientClose(c, hadError),
    onUpstreamConnect: (c, s) => this.#onUpstreamConnect(c, s),
    onUpstreamClose: (c, s, hadError) => this.#onUpstreamClose(c, s, hadError),
  };

  #onHelloData(c: Conn, chunk: Buffer): void {
    if (c.phase !== 'peek' || !c.reader) return;
    const v = c.reader.push(chunk);
    if (v.kind === 'incomplete') {
      // The socket timer is an idle timer: re-arm it with what is left of the overall deadline so
      // a client dribbling bytes cannot hold the connection open.
      const left = c.helloDeadline - Date.now();
      if (left <= 0) this.#refuse(c, 'timeout', 'no complete ClientHello before the deadline');
      else c.client.setTimeout(left);
      return;
    }
    if (v.kind !== 'hello') {
      this.#refuse(c, v.kind, v.detail);
      return;
    }
    const client = c.client;
    client.pause();
    client.removeListener('data', onClientData);
    client.removeListener('end', onClientEndEarly);
    client.removeListener('timeout', onClientTimeout);
    client.setTimeout(0);
    c.hello = c.reader.bytes();
    c.reader = undefined;
    c.phase = 'route';
    const sni = v.hello.serverName;
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
  #tryEndpoint(c: Conn): void {
    if (c.clientClosed || c.client.destroyed) {
      this.#maybeFinish(c);
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
      this.#open(c, ep.host, ep.port, cluster.connectTimeoutMs);
      return;
    }
    this.#lookup(ep.host, cluster.dnsFamily).then(
      (addrs) => {
        const addr = addrs[0];
        if (addr === undefined) throw new Error(`${ep.host} resolved to no address`);
        this.#open(c, addr, ep.port, cluster.connectTimeoutMs);
      },
      (err: unknown) => {
        if (c.clusterStats) c.clusterStats.connectFailures++;
        this.#logger?.debug('mesh gateway endpoint name did not resolve', { host: ep.host, error: err instanceof Error ? err.message : String(err) });
        this.#tryEndpoint(c);
      },
    );
  }

  #open(c: Conn, host: string, port: number, timeoutMs: number): void {
    if (c.clientClosed || c.client.destroyed) {
      this.#maybeFinish(c);
      return;
    }
    let s: TaggedSocket;
    try {
      s = this.#connect({ host, port });
    } catch (err) {
      if (c.clusterStats) c.clusterStats.connectFailures++;
      this.#logger?.debug('mesh gateway connect threw', { host, port, error: err instanceof Error ? err.message : String(err) });
      this.#tryEndpoint(c);
      return;
    }
    s[kConn] = c;
    c.upstream = s;
    c.upstreamClosed = false;
    s.on('error', ignoreError);
    s.on('close', onUpstreamClose);
    s.once('connect', onUpstreamConnect);
    s.on('timeout', onUpstreamTimeout);
    s.setTimeout(timeoutMs);
  }

  #onUpstreamConnect(c: Conn, s: TaggedSocket): void {
    if (c.upstream !== s || c.phase !== 'connect') return;
    s.removeListener('timeout', onUpstreamTimeout);
    s.setTimeout(0);
    s.setNoDelay(true);
    const client = c.client;
    if (client.destroyed) {
      s.destroy();
      return;
    }
    c.phase = 'splice';
    this.#spliced++;
    const cs = c.clusterStats;
    if (cs) {
      cs.connections++;
      cs.active++;
    }
    if (c.hello) s.write(c.hello);
    c.hello = undefined;
    client.pipe(s);
    s.pipe(client);
  }

  #onUpstreamClose(c: Conn, s: TaggedSocket, hadError: boolean): void {
    if (c.upstream !== s) return;
    if (c.phase === 'connect') {
      // A failed attempt: try the next endpoint (unless the client is gone).
      c.upstream = undefined;
      if (c.clusterStats) c.clusterStats.connectFailures++;
      this.#tryEndpoint(c);
      return;
    }
    c.upstreamClosed = true;
    const client = c.client;
    if (!client.destroyed && (hadError || !s.readableEnded)) client.destroy();
    this.#maybeFinish(c);
  }

  #onClientClose(c: Conn, hadError: boolean): void {
    c.clientClosed = true;
    const client = c.client;
    if (c.phase === 'peek') this.#countRefusal(c, 'client-closed', 'connection closed before a complete ClientHello');
    const up = c.upstream;
    if (up && !up.destroyed) {
      if (c.phase !== 'splice' || hadError || !client.readableEnded) up.destroy();
    }
    this.#maybeFinish(c);
  }

  #maybeFinish(c: Conn): void {
    if (c.finished || !c.clientClosed) return;
    if (c.upstream && !c.upstreamClosed) return;
    c.finished = true;
    this.#conns.delete(c);
    if (c.phase === 'splice' && c.upstream) {
      const up = c.upstream.bytesWritten;
      const down = c.client.bytesWritten;
      this.#bytesUp += up;
      this.#bytesDown += down;
      const cs = c.clusterStats;
      if (cs) {
        cs.active--;
        cs.bytesUp += up;
        cs.bytesDown += down;
      }
    }
    c.client[kConn] = undefined;
    if (c.upstream) c.upstream[kConn] = undefined;
    if (this.#conns.size === 0 && this.#drainWaiters.length > 0) {
      const waiters = this.#drainWaiters;
      this.#drainWaiters = [];
      for (const w of waiters) w();
    }
  }

  /** Record a refusal (once per connection) and close the client. */
  #refuse(c: Conn, reason: RefusalReason, detail?: string): void {
    this.#countRefusal(c, reason, detail);
    c.phase = c.phase === 'peek' ? 'route' : c.phase;
    c.reader = undefined;
    c.hello = undefined;
    destroyOnce(c.upstream);
    destroyOnce(c.client);
  }

  #countRefusal(c: Conn, reason: RefusalReason, detail?: string): void {
    if (c.refusal !== undefined) return;
    c.refusal = reason;
    this.#refused[reason] = (this.#refused[reason] ?? 0) + 1;
    const log = this.#logger;
    if (!log) return;
    if (log.isLevelEnabled('debug')) {
      log.debug('mesh gateway refused a connection', { reason, detail, remote: `${c.client.remoteAddress ?? '?'}:${c.client.remotePort ?? '?'}`, sni: c.sni || undefined });
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
