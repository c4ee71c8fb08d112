/**
 * The router (spec §11.1, Consul `agent/router/router.go`): which servers can take an RPC for a
 * datacenter. Servers are grouped by area (`lan` = the local serf pool, `wan` = the WAN pool) and,
 * within an area, by datacenter, each group a {@link ServerManager}. A global index maps each DC to
 * its managers across areas.
 *
 * Membership events are the only input: the router never reads gossip itself. Every server change
 * is also pushed to the registered {@link ServerTracker}s (the gRPC resolver builder).
 */
import { errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { Member, MembershipEvent } from '../../core/types.js';
import type { Clock } from '../../core/clock.js';
import { ErrDCNotAvailable, ErrNoDCPath, RouterError, RouterErrorCode } from './errors.js';
import { ServerManager, type ServerPinger } from './manager.js';
import { describeServer, inspectServer, type ServerMeta } from './server-metadata.js';

/** The local serf pool's area. */
export const AREA_LAN = 'lan';
/** The WAN serf pool's area. */
export const AREA_WAN = 'wan';

/** An area id: `lan`, `wan`, or another (network-area) id. */
export type AreaId = string;

/**
 * Receives every server add/remove the router sees (Consul `router.ServerTracker`); the gRPC
 * resolver builder is one. Methods must not throw or block.
 */
export interface ServerTracker {
  /** A function the DC's managers call on each rebalance tick (the gRPC builder shuffles and re-pushes). */
  newRebalancer(dc: string): () => void;
  /** A server was added to (or refreshed in) an area. */
  addServer(area: AreaId, server: ServerMeta): void;
  /** A server was removed from an area. */
  removeServer(area: AreaId, server: ServerMeta): void;
}

/** A tracker that ignores everything (Consul `NoOpServerTracker`). */
export const noOpServerTracker: ServerTracker = Object.freeze({
  newRebalancer: () => () => undefined,
  addServer: () => undefined,
  removeServer: () => undefined,
});

/** Options of {@link Router.addArea}. */
export interface AreaOptions {
  /** Members of the area's pool (serf `NumNodes`): scales the managers' rebalance interval. */
  readonly numNodes: () => number;
  /** Current members to seed the area with. */
  readonly members?: readonly Member[];
  /** Pinger for this area's managers (default: the router's). */
  readonly pinger?: ServerPinger;
  /** Force `useTls` on every server of this area. */
  readonly useTls?: boolean;
}

/** Options of {@link Router}. */
export interface RouterOptions {
  /** The local datacenter. */
  readonly datacenter: string;
  /** This agent's node name when it is a server: its own entry is never pinged. */
  readonly serverName?: string | undefined;
  /** Pings servers during rebalances (the RPC pool's `Status.Ping`). */
  readonly pinger: ServerPinger;
  /** Time source for the managers' rebalance timers. */
  readonly clock?: Clock;
  /** Random source for shuffles and jitter. */
  readonly random?: () => number;
  /** Component logger. */
  readonly logger: Logger;
}

/** Where an RPC for a datacenter goes: the manager (to report failures to) and its front server. */
export interface Route {
  readonly manager: ServerManager;
  readonly server: ServerMeta;
}

interface AreaInfo {
  readonly numNodes: () => number;
  readonly pinger: ServerPinger;
  readonly useTls: boolean;
  readonly managers: Map<string, ServerManager>;
}

/** The router of one agent. */
export class Router {
  /** The local datacenter. */
  readonly datacenter: string;
  readonly #serverName: string | undefined;
  readonly #pinger: ServerPinger;
  readonly #clock: Clock | undefined;
  readonly #random: (() => number) | undefined;
  readonly #logger: Logger;
  readonly #areas = new Map<AreaId, AreaInfo>();
  /** dc → managers across areas (Consul `r.managers`). */
  readonly #index = new Map<string, ServerManager[]>();
  readonly #trackers = new Set<ServerTracker>();
  /** Per tracker, per DC: the rebalancer it handed out (made once, like Consul's per-manager rebalancer). */
  readonly #rebalancers = new Map<ServerTracker, Map<string, () => void>>();
  #closed = false;

  constructor(options: RouterOptions) {
    this.datacenter = options.datacenter;
    this.#serverName = options.serverName;
    this.#pinger = options.pinger;
    this.#clock = options.clock;
    this.#random = options.random;
    this.#logger = options.logger;
  }

  /** Area ids added so far. */
  get areas(): readonly AreaId[] {
    return [...this.#areas.keys()];
  }

  /**
   * Add an area. The LAN area always gets a manager for the local DC (so the local DC is known
   * even before the first server event). Seeds the area from `members`: servers are added;
   * non-servers are skipped, with a warning outside the LAN area (only servers belong there).
   */
  addArea(area: AreaId, options: AreaOptions): void {
    if (this.#areas.has(area)) {
      throw new RouterError(RouterErrorCode.AREA_EXISTS, `area "${area}" was already added to the router: add each area once`);
    }
    const info: AreaInfo = { numNodes: options.numNodes, pinger: options.pinger ?? this.#pinger, useTls: options.useTls ?? false, managers: new Map() };
    this.#areas.set(area, info);
    if (area === AREA_LAN) this.#maybeInitManager(area, info, this.datacenter);
    for (const m of options.members ?? []) {
      const r = inspectServer(m);
      if (!r.ok) {
        if (area !== AREA_LAN || !r.notServer) this.#logger.warn('Non-server in server-only area', { area, member: m.name, reason: r.reason });
        continue;
      }
      this.addServer(area, r.server);
    }
  }

  /** Remove an area: its managers stop and its servers are removed from the trackers. */
  removeArea(area: AreaId): void {
    const info = this.#areas.get(area);
    if (!info) return;
    for (const [dc, manager] of info.managers) {
      for (const s of manager.servers()) this.#notifyTrackers((t) => t.removeServer(area, s));
      this.#dropManager(info, dc, manager);
    }
    this.#areas.delete(area);
  }

  /**
   * Apply one membership event from the LAN (area `lan`) or WAN (area `wan`) pool: join and
   * update → {@link addServer} (an update refreshes metadata), leave and reap →
   * {@link removeServer}, fail → {@link failServer} (the server stays listed). Non-servers are
   * ignored; events for an area that was not added are ignored.
   */
  handleMembership(event: MembershipEvent): void {
    if (this.#closed) return;
    const area = event.pool;
    if (!this.#areas.has(area)) {
      this.#logger.debug('membership event for an area the router does not have', { area, type: event.type });
      return;
    }
    for (const m of event.members) {
      const r = inspectServer(m);
      if (!r.ok) {
        if (!r.notServer) this.#logger.warn('ignoring server with invalid tags', { area, member: m.name, reason: r.reason });
        else if (area !== AREA_LAN) this.#logger.warn('Non-server in server-only area', { area, member: m.name });
        continue;
      }
      try {
        switch (event.type) {
          case 'join':
          case 'update':
            this.addServer(area, r.server);
            break;
          case 'leave':
          case 'reap':
            this.removeServer(area, r.server);
            break;
          case 'fail':
            this.failServer(area, r.server);
            break;
        }
      } catch (err) {
        this.#logger.error('router failed to apply membership event', { area, type: event.type, member: m.name, err: errorMessage(err) });
      }
    }
  }

  #area(area: AreaId): AreaInfo {
    const info = this.#areas.get(area);
    if (!info) throw new RouterError(RouterErrorCode.AREA_UNKNOWN, `area "${area}" is not known to the router: call addArea("${area}", …) first`);
    return info;
  }

  #maybeInitManager(area: AreaId, info: AreaInfo, dc: string): ServerManager {
    const existing = info.managers.get(dc);
    if (existing) return existing;
    const manager = new ServerManager({
      datacenter: dc,
      area,
      pinger: info.pinger,
      numNodes: info.numNodes,
      rebalancer: () => this.#runRebalancers(dc),
      serverName: dc === this.datacenter ? this.#serverName : undefined,
      ...(this.#clock ? { clock: this.#clock } : {}),
      ...(this.#random ? { random: this.#random } : {}),
      logger: this.#logger.child({ area, datacenter: dc }),
    });
    info.managers.set(dc, manager);
    const list = this.#index.get(dc) ?? [];
    list.push(manager);
    this.#index.set(dc, list);
    if (!this.#closed) manager.start();
    return manager;
  }

  #dropManager(info: AreaInfo, dc: string, manager: ServerManager): void {
    manager.stop();
    info.managers.delete(dc);
    const list = (this.#index.get(dc) ?? []).filter((m) => m !== manager);
    if (list.length === 0) this.#index.delete(dc);
    else this.#index.set(dc, list);
  }

  #runRebalancers(dc: string): void {
    for (const t of this.#trackers) {
      let perDc = this.#rebalancers.get(t);
      if (!perDc) this.#rebalancers.set(t, (perDc = new Map<string, () => void>()));
      let fn = perDc.get(dc);
      if (!fn) perDc.set(dc, (fn = t.newRebalancer(dc)));
      try {
        fn();
      } catch (err) {
        this.#logger.warn('server tracker rebalancer failed', { datacenter: dc, err: errorMessage(err) });
      }
    }
  }

  #notifyTrackers(fn: (t: ServerTracker) => void): void {
    for (const t of this.#trackers) {
      try {
        fn(t);
      } catch (err) {
        this.#logger.warn('server tracker failed', { err: errorMessage(err) });
      }
    }
  }

  /**
   * Add (or refresh) a server in an area: creates and starts the manager for its DC on demand,
   * forces `useTls` if the area requires it, then tells every tracker.
   */
  addServer(area: AreaId, server: ServerMeta): void {
    if (this.#closed) return;
    const info = this.#area(area);
    const manager = this.#maybeInitManager(area, info, server.datacenter);
    manager.addServer(info.useTls && !server.useTls ? Object.freeze({ ...server, useTls: true }) : server);
    this.#notifyTrackers((t) => t.addServer(area, server));
  }

  /**
   * Remove a server from an area and from the trackers. When its manager becomes empty the
   * manager is dropped, so a DC whose last server left disappears ({@link hasDatacenter} false).
   */
  removeServer(area: AreaId, server: ServerMeta): void {
    if (this.#closed) return;
    const info = this.#area(area);
    const manager = info.managers.get(server.datacenter);
    if (!manager) return;
    manager.removeServer(server);
    this.#notifyTrackers((t) => t.removeServer(area, server));
    if (manager.numServers === 0) {
      this.#dropManager(info, server.datacenter, manager);
      this.#logger.debug('datacenter has no servers left in area', { area, datacenter: server.datacenter });
    }
  }

  /** A server failed (serf `failed`): cycle it away from the front; it stays listed until it leaves or is reaped. */
  failServer(area: AreaId, server: ServerMeta): void {
    const manager = this.#areas.get(area)?.managers.get(server.datacenter);
    manager?.notifyFailedServer(server);
  }

  /** The front server of the first manager for `dc` that is not offline and not empty. */
  findRoute(dc: string): Route | undefined {
    for (const manager of this.#index.get(dc) ?? []) {
      if (manager.isOffline) continue;
      const server = manager.servers()[0];
      if (server) return { manager, server };
    }
    return undefined;
  }

  /**
   * {@link findRoute}, or throw a {@link RouterError}: {@link ErrDCNotAvailable} when the DC is
   * known but has no usable server, {@link ErrNoDCPath} when no area knows it.
   */
  routeOrThrow(dc: string): Route {
    const route = this.findRoute(dc);
    if (route) return route;
    if (this.hasDatacenter(dc)) throw new RouterError(RouterErrorCode.DC_NOT_AVAILABLE, ErrDCNotAvailable, { datacenter: dc });
    throw new RouterError(RouterErrorCode.NO_DC_PATH, ErrNoDCPath, { datacenter: dc });
  }

  /**
   * Run `call` against the route for `dc` (Consul `forwardDC`): a routing failure throws as
   * {@link routeOrThrow}; if `call` rejects, the server is reported failed to its manager (so the
   * next call tries another) and the error is rethrown.
   */
  async forwardDC<T>(dc: string, call: (server: ServerMeta) => Promise<T>): Promise<T> {
    const { manager, server } = this.routeOrThrow(dc);
    try {
      return await call(server);
    } catch (err) {
      manager.notifyFailedServer(server);
      throw err;
    }
  }

  /** Every datacenter with at least one manager, sorted. */
  getDatacenters(): string[] {
    return [...this.#index.keys()].sort();
  }

  /** {@link getDatacenters} without `local` (default: this router's datacenter). */
  getRemoteDatacenters(local: string = this.datacenter): string[] {
    return this.getDatacenters().filter((dc) => dc !== local);
  }

  /** Whether any area has a manager for `dc`. */
  hasDatacenter(dc: string): boolean {
    return this.#index.has(dc);
  }

  /** The managers for `dc`, in area order. */
  managers(dc: string): readonly ServerManager[] {
    return [...(this.#index.get(dc) ?? [])];
  }

  /** The manager of one area for one DC. */
  manager(area: AreaId, dc: string): ServerManager | undefined {
    return this.#areas.get(area)?.managers.get(dc);
  }

  /** Call `fn` for every server of `dc` (manager by manager) until it returns `false`. */
  checkServers(dc: string, fn: (server: ServerMeta) => boolean): void {
    for (const m of this.#index.get(dc) ?? []) if (!m.checkServers(fn)) return;
  }

  /**
   * Register a tracker: it first receives every current server (a replay, area by area), then
   * every change. Returns a function that unregisters it.
   */
  registerTracker(tracker: ServerTracker): () => void {
    this.#trackers.add(tracker);
    for (const [area, info] of this.#areas) {
      for (const manager of info.managers.values()) {
        for (const s of manager.servers()) {
          try {
            tracker.addServer(area, s);
          } catch (err) {
            this.#logger.warn('server tracker failed during replay', { err: errorMessage(err), server: describeServer(s) });
          }
        }
      }
    }
    return () => {
      this.#trackers.delete(tracker);
      this.#rebalancers.delete(tracker);
    };
  }

  /** Stop every manager; later membership changes are ignored. Idempotent. */
  shutdown(): void {
    this.#closed = true;
    for (const info of this.#areas.values()) for (const m of info.managers.values()) m.stop();
  }

  /** Per area, per DC: server count and offline flag. */
  summary(): Record<AreaId, Record<string, { servers: number; offline: boolean }>> {
    const out: Record<AreaId, Record<string, { servers: number; offline: boolean }>> = {};
    for (const [area, info] of this.#areas) {
      const dcs: Record<string, { servers: number; offline: boolean }> = {};
      for (const [dc, m] of [...info.managers].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) dcs[dc] = { servers: m.numServers, offline: m.isOffline };
      out[area] = dcs;
    }
    return out;
  }
}
