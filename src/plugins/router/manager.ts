/**
 * The per-area, per-datacenter server list (spec §11.2, Consul `agent/router/manager.go`).
 *
 * The list is copy-on-write: every change stores a new frozen array, so readers
 * ({@link ServerManager.findServer}, {@link ServerManager.servers}) never see a half-made list and
 * a rebalance can work on its own copy while servers come and go. The front server is the one
 * RPCs use; a failure cycles it to the back, and a periodic rebalance shuffles the list and moves
 * a server that answers `Status.Ping` to the front, spreading clients over servers.
 */
import { errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import { systemClock, type Clock } from '../../core/clock.js';
import { describeServer, type ServerMeta } from './server-metadata.js';

/** `clientRPCMinReuseDuration`: the rebalance timer's base and first interval (120 s). */
export const CLIENT_RPC_MIN_REUSE_DURATION_MS = 120_000;
/** `clientRPCJitterFraction`: the low watermark adds up to base / 2 (60 s) of jitter. */
export const CLIENT_RPC_JITTER_FRACTION = 2;
/** `newRebalanceConnsPerSecPerServer`: cluster-wide rebalance rate per server. */
export const NEW_REBALANCE_CONNS_PER_SEC_PER_SERVER = 64;

/** Pings a server with `Status.Ping` (through the connection pool, via gateways for remote DCs). */
export interface ServerPinger {
  /** Resolve `true` when the server answered; `false` or a rejection means unhealthy. Must honour `signal`. */
  ping(server: ServerMeta, options: { readonly signal: AbortSignal }): Promise<boolean>;
}

/** Options of {@link ServerManager}. */
export interface ServerManagerOptions {
  /** Datacenter whose servers this manager lists. */
  readonly datacenter: string;
  /** Area the manager belongs to (`lan`, `wan`, …), for logs. */
  readonly area?: string;
  /** Pings the front server during a rebalance. */
  readonly pinger: ServerPinger;
  /** Number of members of the area (serf `NumNodes`), scales the rebalance interval. */
  readonly numNodes: () => number;
  /** Called on every rebalance tick before the list is rebalanced: the gRPC trackers' per-DC rebalancers. */
  readonly rebalancer?: () => void;
  /** This agent's own server name: an entry with that `name` (or `shortName`) is never pinged and counts as healthy. */
  readonly serverName?: string | undefined;
  /** Time source for the rebalance timer (default: the system clock, unref'd timers). */
  readonly clock?: Clock;
  /** Uniform random numbers in [0, 1) for the shuffle and the jitter (default `Math.random`). */
  readonly random?: () => number;
  /** Component logger. */
  readonly logger: Logger;
}

/**
 * The rebalance interval (Consul `refreshServerRebalanceTimer`): the low watermark
 * `120 s + jitter` with jitter uniform in [0, 60 s), raised so the whole cluster opens at most
 * `numServers × 64` new connections per second: `max(lowWatermark, numNodes / (numServers × 64) s)`.
 * With no servers (rate 0, i.e. ≤ 1/86400) the low watermark is used (`lib.RateScaledInterval`).
 *
 * @param numNodes members of the area
 * @param numServers servers in the manager's list
 * @param random uniform in [0, 1), for the jitter
 * @returns the interval in milliseconds
 */
export function rebalanceTimeoutMs(numNodes: number, numServers: number, random: () => number = Math.random): number {
  const jitterRange = CLIENT_RPC_MIN_REUSE_DURATION_MS / CLIENT_RPC_JITTER_FRACTION;
  // RandomStagger: uniform in [0, jitterRange); clamp so a sloppy random source cannot leave the range.
  const jitter = Math.min(jitterRange - 1, Math.max(0, Math.floor(random() * jitterRange)));
  const lowWatermark = CLIENT_RPC_MIN_REUSE_DURATION_MS + jitter;
  const rate = numServers * NEW_REBALANCE_CONNS_PER_SEC_PER_SERVER;
  if (rate <= 1 / 86_400) return lowWatermark;
  const interval = (numNodes / rate) * 1000;
  return Math.max(lowWatermark, interval);
}

/** Fisher–Yates shuffle of a copy, with an injectable random source. */
export function shuffled<T>(list: readonly T[], random: () => number = Math.random): T[] {
  const out = [...list];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const tmp = out[i] as T;
    out[i] = out[j] as T;
    out[j] = tmp;
  }
  return out;
}

/** Move the first element to the back (Consul `cycleServer`). */
function cycle(list: readonly ServerMeta[]): ServerMeta[] {
  if (list.length < 2) return [...list];
  return [...list.slice(1), list[0] as ServerMeta];
}

/** The server list of one datacenter within one area. */
export class ServerManager {
  /** Datacenter whose servers this manager lists. */
  readonly datacenter: string;
  /** Area the manager belongs to. */
  readonly area: string;
  readonly #pinger: ServerPinger;
  readonly #numNodes: () => number;
  readonly #rebalancer: (() => void) | undefined;
  readonly #serverName: string | undefined;
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #logger: Logger;
  #list: readonly ServerMeta[] = Object.freeze([]);
  #offline = false;
  #notifyFailedBarrier = false;
  #timer: unknown;
  #running = false;
  #rebalancing: Promise<void> | undefined;
  #abort = new AbortController();

  constructor(options: ServerManagerOptions) {
    this.datacenter = options.datacenter;
    this.area = options.area ?? 'lan';
    this.#pinger = options.pinger;
    this.#numNodes = options.numNodes;
    this.#rebalancer = options.rebalancer;
    this.#serverName = options.serverName;
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? Math.random;
    this.#logger = options.logger;
  }

  /** A snapshot of the list, front first. */
  servers(): readonly ServerMeta[] {
    return this.#list;
  }

  /** Number of servers listed. */
  get numServers(): number {
    return this.#list.length;
  }

  /** Whether the last rebalance found no healthy server (cleared by {@link addServer}). */
  get isOffline(): boolean {
    return this.#offline;
  }

  /** Whether the rebalance timer is running. */
  get running(): boolean {
    return this.#running;
  }

  #save(list: readonly ServerMeta[]): void {
    this.#list = Object.freeze([...list]);
  }

  /** Add a server, or replace the entry with the same name (metadata refresh); clears the offline flag. */
  addServer(server: ServerMeta): void {
    const list = [...this.#list];
    const i = list.findIndex((s) => s.name === server.name);
    if (i >= 0) list[i] = server;
    else list.push(server);
    this.#save(list);
    this.#offline = false;
  }

  /** Remove the server with this name, if listed. */
  removeServer(server: Pick<ServerMeta, 'name'>): void {
    const list = this.#list;
    const i = list.findIndex((s) => s.name === server.name);
    if (i < 0) return;
    this.#save([...list.slice(0, i), ...list.slice(i + 1)]);
  }

  /** The front server, or `undefined` (with a warning) when the list is empty. */
  findServer(): ServerMeta | undefined {
    const s = this.#list[0];
    if (!s) this.#logger.warn('No servers available', { datacenter: this.datacenter, area: this.area });
    return s;
  }

  /**
   * An RPC to `server` failed: if it is still the front server and there is another one, cycle
   * it to the back so the next RPC tries someone else. A try-lock (Consul's CAS barrier) makes
   * callers that race on the same failure rotate once: whoever finds the barrier taken, or finds
   * the server no longer in front after taking it, does nothing.
   */
  notifyFailedServer(server: Pick<ServerMeta, 'name'>): void {
    const before = this.#list;
    if (before.length < 2 || before[0]?.name !== server.name || this.#notifyFailedBarrier) return;
    this.#notifyFailedBarrier = true;
    try {
      const list = this.#list;
      if (list.length > 1 && list[0]?.name === server.name) {
        this.#save(cycle(list));
        this.#logger.debug('cycled away from server', { server: describeServer(list[0]), area: this.area });
      }
    } finally {
      this.#notifyFailedBarrier = false;
    }
  }

  /** Call `fn` for each server in order until it returns `false`; returns whether every call returned `true`. */
  checkServers(fn: (server: ServerMeta) => boolean): boolean {
    for (const s of this.#list) if (!fn(s)) return false;
    return true;
  }

  #isSelf(s: ServerMeta): boolean {
    return this.#serverName !== undefined && (s.name === this.#serverName || s.shortName === this.#serverName);
  }

  /**
   * Shuffle a copy of the list and find a healthy front server: ping the front (skipping this
   * agent itself, which counts as healthy), cycling on failure, at most once per server. None
   * healthy → offline, the list is kept. Otherwise the shuffled list is reconciled with the live
   * one (servers added meanwhile are appended, removed ones dropped) — unless the chosen front was
   * removed meanwhile, in which case the live list is left as it is until the next rebalance.
   * Concurrent calls share one run.
   */
  rebalanceServers(): Promise<void> {
    this.#rebalancing ??= this.#rebalance().finally(() => {
      this.#rebalancing = undefined;
    });
    return this.#rebalancing;
  }

  async #rebalance(): Promise<void> {
    let list = shuffled(this.#list, this.#random);
    const signal = this.#abort.signal;
    let healthy = false;
    for (let i = 0; i < list.length; i++) {
      const s = list[0] as ServerMeta;
      if (this.#isSelf(s)) {
        healthy = true;
        break;
      }
      let ok = false;
      try {
        ok = await this.#pinger.ping(s, { signal });
      } catch (err) {
        this.#logger.debug('pinging server failed', { server: describeServer(s), err: errorMessage(err), area: this.area });
      }
      if (signal.aborted) return;
      if (ok) {
        healthy = true;
        break;
      }
      list = cycle(list);
    }
    if (!healthy) {
      this.#offline = true;
      this.#logger.debug('No healthy servers during rebalance, aborting', { datacenter: this.datacenter, area: this.area });
      return;
    }
    this.#offline = false;
    if (this.#reconcile(list)) {
      this.#logger.debug('Rebalanced servers, new active server', { server: describeServer(list[0] as ServerMeta), area: this.area });
    } else {
      this.#logger.debug('Unable to reconcile server list, keeping it until the next rebalance', { datacenter: this.datacenter, area: this.area });
    }
  }

  /** Consul `reconcileServerList`: merge the rebalanced copy into the live list. */
  #reconcile(chosen: readonly ServerMeta[]): boolean {
    const live = this.#list;
    if (chosen.length === 0 || live.length === 0) return false;
    const liveByName = new Map(live.map((s) => [s.name, s]));
    const front = chosen[0] as ServerMeta;
    if (!liveByName.has(front.name)) return false;
    const chosenNames = new Set(chosen.map((s) => s.name));
    // Keep the rebalanced order for servers in both lists (with the live, freshest metadata),
    // drop those removed meanwhile, append those added meanwhile.
    const merged = chosen.filter((s) => liveByName.has(s.name)).map((s) => liveByName.get(s.name) as ServerMeta);
    for (const s of live) if (!chosenNames.has(s.name)) merged.push(s);
    this.#save(merged);
    return true;
  }

  /** Start the rebalance timer (first tick after 120 s). Idempotent. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    if (this.#abort.signal.aborted) this.#abort = new AbortController();
    this.resetRebalanceTimer();
  }

  /** Stop the timer and abort an in-flight rebalance's pings. Idempotent. */
  stop(): void {
    this.#running = false;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#abort.abort(new Error('server manager stopped'));
  }

  /** Re-arm the timer at the base interval (120 s), as Consul's `ResetRebalanceTimer`. */
  resetRebalanceTimer(): void {
    this.#arm(CLIENT_RPC_MIN_REUSE_DURATION_MS);
  }

  /** Re-arm the timer with {@link rebalanceTimeoutMs} for the current sizes; returns the interval. */
  refreshServerRebalanceTimer(): number {
    const ms = rebalanceTimeoutMs(this.#numNodes(), this.#list.length, this.#random);
    this.#arm(ms);
    return ms;
  }

  #arm(ms: number): void {
    if (!this.#running) return;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      void this.#tick();
    }, ms);
  }

  async #tick(): Promise<void> {
    try {
      this.#rebalancer?.();
    } catch (err) {
      this.#logger.warn('gRPC rebalancer failed', { err: errorMessage(err), datacenter: this.datacenter });
    }
    try {
      await this.rebalanceServers();
    } catch (err) {
      this.#logger.error('rebalance failed', { err: errorMessage(err), datacenter: this.datacenter, area: this.area });
    }
    this.refreshServerRebalanceTimer();
  }
}
