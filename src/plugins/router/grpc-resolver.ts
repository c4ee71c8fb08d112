/**
 * gRPC name resolution for servers (spec §11.3, Consul `agent/grpc-internal/resolver`): a
 * {@link ServerTracker} fed by the {@link Router}, plus a `@grpc/grpc-js` resolver for a custom
 * URI scheme so a channel targeting `<scheme>:///server.<dc>` always has the DC's current servers.
 *
 * **One scheme per builder.** grpc-js keeps its resolvers in a module-level registry keyed by
 * scheme, so each builder registers its own scheme (`meshfed-<random>` by default) and two agents
 * in one process never share server lists. grpc-js 1.14 has no way to unregister a scheme: on
 * {@link GrpcResolverBuilder.shutdown} the registered class is detached from the builder (it then
 * only reports `UNAVAILABLE` and holds no reference to servers or resolvers), so what stays behind
 * is one small class per builder ever created.
 *
 * **Addresses.** Consul pushes `"<dc>-<ip:port>"` strings that only its custom dialer can dial
 * (it maps them back with `ServerForGlobalAddr` and dials through a mesh gateway when needed).
 * grpc-js offers no custom dialer hook (subchannels always `net.connect` a `{host, port}`), so this
 * resolver pushes the real `{host, port}` (by default the server's RPC `addr`, see
 * {@link GrpcResolverOptions.dialAddress}) and keeps the Consul naming alongside: every pushed
 * result carries the attribute {@link GLOBAL_ADDRS_ATTRIBUTE} (the `"<dc>-<ip:port>"` names in
 * endpoint order), and {@link GrpcResolverBuilder.serverForGlobalAddr} maps such a name back to
 * the server.
 *
 * **Remote datacenters through mesh gateways.** With WAN federation via mesh gateways a server
 * must not dial another datacenter's servers directly (spec §1.6, §11.3 "Dialer"): an optional
 * {@link RemoteEndpointsProvider} (option {@link GrpcResolverOptions.remoteEndpoints} or
 * {@link GrpcResolverBuilder.setRemoteEndpoints}; the `wanfed` plugin sets it from the gateway
 * locator) replaces a remote DC's server list with gateway addresses; the channel's credentials
 * then speak TLS with ALPN `consul/rpc-grpc` to the gateway. An empty gateway list makes the
 * resolver report `UNAVAILABLE` with Consul's `Remote DC has no server currently reachable`.
 * Call {@link GrpcResolverBuilder.refresh} / {@link GrpcResolverBuilder.refreshAll} when the
 * provider's answer changed.
 */
import { randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { parseHostPort } from '../../core/address.js';
import type { Logger } from '../../core/logger.js';
import { ErrDCNotAvailable, RouterError, RouterErrorCode } from './errors.js';
import { shuffled } from './manager.js';
import { AREA_LAN, type AreaId, type ServerTracker } from './router.js';
import type { ServerMeta } from './server-metadata.js';

/** Resolver-result attribute holding the Consul-style `"<dc>-<ip:port>"` names, in endpoint order. */
export const GLOBAL_ADDRS_ATTRIBUTE = 'meshfed.globalAddrs';

/**
 * Gateway addresses (`host:port`) standing in for the servers of remote datacenter `dc`, or
 * `undefined` to dial its servers directly. May answer asynchronously (e.g. after `onGatewayList`
 * taps); a resolver waits for the first answer. Never asked about the local datacenter.
 */
export type RemoteEndpointsProvider = (dc: string) => readonly string[] | undefined | PromiseLike<readonly string[] | undefined>;

/** Options of {@link GrpcResolverBuilder}. */
export interface GrpcResolverOptions {
  /** The local datacenter (required). */
  readonly datacenter: string;
  /** Whether this agent is a server or a client (the ignore rules differ). */
  readonly agentType: 'server' | 'client';
  /** URI scheme to register (letters, digits, `+`, `-`, `.`; default `meshfed-<random hex>`). */
  readonly scheme?: string;
  /** Default `:authority` of channels using the scheme (default: the target path, e.g. `server.dc1`). */
  readonly authority?: string;
  /** The `host:port` a connection to `server` dials (default: its RPC `addr`; e.g. use its `grpc_port` tag). */
  readonly dialAddress?: (server: ServerMeta) => string;
  /** Random source of the rebalancer's shuffle. */
  readonly random?: () => number;
  /** Replace remote DCs' server lists with gateway addresses (see {@link RemoteEndpointsProvider}). */
  readonly remoteEndpoints?: RemoteEndpointsProvider;
  /** Component logger. */
  readonly logger?: Logger;
}

/** One address a resolver pushes: a server, or a mesh gateway standing in for a remote DC's servers. */
export interface ResolvedEndpoint {
  /** `"<dc>-<ip:port>"` (Consul's naming; for a gateway, its address). */
  readonly globalAddr: string;
  /** What the connection actually dials. */
  readonly host: string;
  /** Port the connection dials. */
  readonly port: number;
  /** The server, when the endpoint is one. */
  readonly server?: ServerMeta | undefined;
  /** The gateway `host:port`, when the endpoint is a mesh gateway. */
  readonly gateway?: string | undefined;
}

/** One resolved server address. */
export interface ResolvedServerAddress extends ResolvedEndpoint {
  /** The server. */
  readonly server: ServerMeta;
}

/** A live resolver for one target. */
interface ResolverHandle {
  readonly dc: string;
  /** A new endpoint list; `unavailable` is the error text when it is empty. */
  push(list: readonly ResolvedEndpoint[], unavailable: string): void;
}

const SCHEME = /^[a-z][a-z0-9+.-]*$/;

/** Index key of a server: `"<dc>-<id>"` (the name when a server has no `id` tag). */
function serverKey(s: ServerMeta): string {
  return `${s.datacenter}-${s.id || s.name}`;
}

/**
 * The gRPC resolver builder of one agent; register it with `router.registerTracker(builder)`.
 *
 * @example
 * ```ts
 * const builder = new GrpcResolverBuilder({ datacenter: 'dc1', agentType: 'server' });
 * router.registerTracker(builder);
 * const client = new grpc.Client(builder.target('dc2'), grpc.credentials.createInsecure());
 * ```
 */
export class GrpcResolverBuilder implements ServerTracker {
  /** The URI scheme this builder registered with grpc-js. */
  readonly scheme: string;
  /** The local datacenter. */
  readonly datacenter: string;
  /** Server or client agent. */
  readonly agentType: 'server' | 'client';
  readonly #authority: string | undefined;
  readonly #dialAddress: (server: ServerMeta) => string;
  readonly #random: () => number;
  readonly #logger: Logger | undefined;
  /** area → `"<dc>-<id>"` → server. */
  readonly #servers = new Map<AreaId, Map<string, ServerMeta>>();
  /** dc → the server list last computed (the rebalancer shuffles it). */
  readonly #lists = new Map<string, readonly ResolvedServerAddress[]>();
  /** dc → the gateway list last pushed in place of the servers (remote DCs with a provider answer). */
  readonly #gatewayLists = new Map<string, readonly ResolvedEndpoint[]>();
  /** Remote DCs whose provider answer was `undefined`: their servers are pushed. */
  readonly #answeredServers = new Set<string>();
  /** dc → generation of the latest provider question (a later question wins). */
  readonly #generation = new Map<string, number>();
  /** Remote DCs with a provider question in flight. */
  readonly #inFlight = new Set<string>();
  readonly #resolvers = new Map<string, Set<ResolverHandle>>();
  #remote: RemoteEndpointsProvider | undefined;
  #closed = false;

  constructor(options: GrpcResolverOptions) {
    if (!options.datacenter) throw new RouterError(RouterErrorCode.GRPC_RESOLVER_CONFIG, 'the gRPC resolver builder needs the local datacenter (datacenter: "dc1")');
    if (options.agentType !== 'server' && options.agentType !== 'client') {
      throw new RouterError(RouterErrorCode.GRPC_RESOLVER_CONFIG, `agentType must be "server" or "client", got ${JSON.stringify(options.agentType)}`);
    }
    const scheme = options.scheme ?? `meshfed-${randomBytes(6).toString('hex')}`;
    if (!SCHEME.test(scheme)) {
      throw new RouterError(RouterErrorCode.GRPC_RESOLVER_CONFIG, `gRPC resolver scheme ${JSON.stringify(scheme)} is not a valid URI scheme: use lowercase letters, digits, "+", "-" or "."`);
    }
    this.scheme = scheme;
    this.datacenter = options.datacenter;
    this.agentType = options.agentType;
    this.#authority = options.authority;
    this.#dialAddress = options.dialAddress ?? ((s) => s.addr);
    this.#random = options.random ?? Math.random;
    this.#logger = options.logger;
    this.#remote = options.remoteEndpoints;
    grpc.experimental.registerResolver(scheme, makeResolverClass(this));
  }

  /** The channel target for a DC's servers: `<scheme>:///server.<dc>`. */
  target(dc: string): string {
    return `${this.scheme}:///server.${dc}`;
  }

  /** Whether {@link shutdown} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  #ignored(area: AreaId, server: ServerMeta): boolean {
    // Clients only talk to their own DC's servers over LAN addresses; servers reach their own DC
    // over LAN addresses too, so WAN entries for it are ignored.
    if (this.agentType === 'client') return area !== AREA_LAN;
    return area !== AREA_LAN && server.datacenter === this.datacenter;
  }

  /** {@link ServerTracker.addServer}: index it and push the DC's full list to its resolvers. */
  addServer(area: AreaId, server: ServerMeta): void {
    if (this.#closed || this.#ignored(area, server)) return;
    let byKey = this.#servers.get(area);
    if (!byKey) this.#servers.set(area, (byKey = new Map<string, ServerMeta>()));
    byKey.set(serverKey(server), server);
    this.#refresh(server.datacenter);
  }

  /** {@link ServerTracker.removeServer}: drop it and push the DC's full list to its resolvers. */
  removeServer(area: AreaId, server: ServerMeta): void {
    if (this.#closed || this.#ignored(area, server)) return;
    const byKey = this.#servers.get(area);
    if (!byKey?.delete(serverKey(server))) return;
    if (byKey.size === 0) this.#servers.delete(area);
    this.#refresh(server.datacenter);
  }

  /**
   * {@link ServerTracker.newRebalancer}: shuffle the DC's last list (its gateways when they stand
   * in for its servers) and re-push it, so pick-first moves on.
   */
  newRebalancer(dc: string): () => void {
    return () => {
      if (this.#closed) return;
      const gateways = this.#gatewayLists.get(dc);
      if (gateways) {
        if (gateways.length < 2) return;
        const next = Object.freeze(shuffled(gateways, this.#random));
        this.#gatewayLists.set(dc, next);
        this.#pushAll(dc, next);
        return;
      }
      const list = this.#lists.get(dc);
      if (!list || list.length < 2) return;
      const next = Object.freeze(shuffled(list, this.#random));
      this.#lists.set(dc, next);
      this.#pushAll(dc, next);
    };
  }

  /** The server addresses for `dc`, in the order last pushed (whether or not gateways stand in for them). */
  addresses(dc: string): readonly ResolvedServerAddress[] {
    return this.#lists.get(dc) ?? this.#compute(dc);
  }

  /**
   * What resolvers for `dc` get: its gateways when the {@link RemoteEndpointsProvider} answered
   * with a list, else its servers; `undefined` while the provider's first answer is pending.
   */
  endpoints(dc: string): readonly ResolvedEndpoint[] | undefined {
    if (!this.#overridden(dc)) return this.addresses(dc);
    return this.#gatewayLists.get(dc) ?? (this.#answeredServers.has(dc) ? this.addresses(dc) : undefined);
  }

  /**
   * Set (or clear, with `undefined`) the provider of gateway addresses for remote DCs and
   * re-resolve every DC with live resolvers or a known list.
   */
  setRemoteEndpoints(provider: RemoteEndpointsProvider | undefined): void {
    this.#remote = provider;
    this.#gatewayLists.clear();
    this.#answeredServers.clear();
    this.#inFlight.clear();
    this.refreshAll();
  }

  /** Recompute `dc`'s endpoints (asking the provider again for a remote DC) and push them. */
  refresh(dc: string): void {
    if (this.#closed) return;
    this.#refresh(dc);
  }

  /**
   * {@link refresh} every remote DC that has live resolvers or a known list (e.g. when gateways
   * changed). The local DC never depends on the provider and is left alone.
   */
  refreshAll(): void {
    if (this.#closed) return;
    for (const dc of new Set([...this.#lists.keys(), ...this.#resolvers.keys(), ...this.#gatewayLists.keys()])) {
      if (dc !== this.datacenter) this.#refresh(dc);
    }
  }

  /** The server whose `"<dc>-<ip:port>"` name is `addr` (Consul `ServerForGlobalAddr`). */
  serverForGlobalAddr(addr: string): ServerMeta | undefined {
    for (const byKey of this.#servers.values()) {
      for (const s of byKey.values()) if (`${s.datacenter}-${s.addr}` === addr) return s;
    }
    return undefined;
  }

  /** Detach from grpc-js: live resolvers report `UNAVAILABLE`, new ones too; servers are forgotten. */
  shutdown(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const set of this.#resolvers.values()) for (const r of set) r.push([], 'meshfed gRPC resolver was shut down');
    this.#resolvers.clear();
    this.#servers.clear();
    this.#lists.clear();
    this.#gatewayLists.clear();
    this.#answeredServers.clear();
    this.#generation.clear();
    this.#inFlight.clear();
    this.#remote = undefined;
  }

  /** Whether a provider decides `dc`'s endpoints (remote DCs only). */
  #overridden(dc: string): boolean {
    return this.#remote !== undefined && dc !== this.datacenter;
  }

  /** Addresses for a DC: LAN-area entries for the local DC, non-LAN areas otherwise; deduplicated by server ID. */
  #compute(dc: string): ResolvedServerAddress[] {
    const out: ResolvedServerAddress[] = [];
    const seen = new Set<string>();
    for (const [area, byKey] of this.#servers) {
      if ((dc === this.datacenter) !== (area === AREA_LAN)) continue;
      for (const s of byKey.values()) {
        if (s.datacenter !== dc || seen.has(s.id || s.name)) continue;
        seen.add(s.id || s.name);
        const dial = this.#dialAddress(s);
        const hp = parseHostPort(dial);
        if (!hp) {
          this.#logger?.warn('server has no dialable gRPC address, skipping it', { server: s.name, address: dial });
          continue;
        }
        out.push(Object.freeze({ globalAddr: `${dc}-${s.addr}`, host: hp.host, port: hp.port, server: s }));
      }
    }
    return out;
  }

  #refresh(dc: string): void {
    const list = Object.freeze(this.#compute(dc));
    this.#lists.set(dc, list);
    const provider = this.#overridden(dc) ? this.#remote : undefined;
    if (!provider) {
      this.#pushAll(dc, list);
      return;
    }
    const generation = (this.#generation.get(dc) ?? 0) + 1;
    this.#generation.set(dc, generation);
    this.#inFlight.add(dc);
    const apply = (gateways: readonly string[] | undefined): void => {
      // a newer question (or shutdown, or another provider) superseded this one
      if (this.#closed || this.#remote !== provider || this.#generation.get(dc) !== generation) return;
      this.#inFlight.delete(dc);
      if (gateways === undefined) {
        this.#gatewayLists.delete(dc);
        this.#answeredServers.add(dc);
        this.#pushAll(dc, this.#lists.get(dc) ?? list);
        return;
      }
      this.#answeredServers.delete(dc);
      const endpoints = Object.freeze(this.#gatewayEndpoints(dc, gateways));
      this.#gatewayLists.set(dc, endpoints);
      this.#pushAll(dc, endpoints);
    };
    const failed = (err: unknown): void => {
      this.#logger?.warn('could not list the mesh gateways of a datacenter for gRPC, reporting it unavailable', { datacenter: dc, err: err instanceof Error ? err.message : String(err) });
      apply([]);
    };
    let answer: ReturnType<RemoteEndpointsProvider>;
    try {
      answer = provider(dc);
    } catch (err) {
      failed(err);
      return;
    }
    if (answer !== undefined && typeof (answer as PromiseLike<unknown>).then === 'function') {
      Promise.resolve(answer).then(apply, failed);
    } else {
      apply(answer as readonly string[] | undefined);
    }
  }

  #gatewayEndpoints(dc: string, gateways: readonly string[]): ResolvedEndpoint[] {
    const out: ResolvedEndpoint[] = [];
    for (const gateway of new Set(gateways)) {
      const hp = parseHostPort(gateway);
      if (!hp) {
        this.#logger?.warn('mesh gateway address is not host:port, skipping it', { datacenter: dc, gateway });
        continue;
      }
      out.push(Object.freeze({ globalAddr: `${dc}-${gateway}`, host: hp.host, port: hp.port, gateway }));
    }
    return out;
  }

  /** The error text of an empty list for `dc`. */
  #unavailable(dc: string): string {
    return this.#gatewayLists.has(dc) ? ErrDCNotAvailable : `no known servers in datacenter ${dc}`;
  }

  #pushAll(dc: string, list: readonly ResolvedEndpoint[]): void {
    const why = this.#unavailable(dc);
    for (const r of this.#resolvers.get(dc) ?? []) r.push(list, why);
  }

  /** @internal Called by the resolver class; asks the provider on first use of a remote DC. */
  attach(handle: ResolverHandle): (() => void) | undefined {
    if (this.#closed) return undefined;
    let set = this.#resolvers.get(handle.dc);
    if (!set) this.#resolvers.set(handle.dc, (set = new Set<ResolverHandle>()));
    set.add(handle);
    if (this.endpoints(handle.dc) === undefined && !this.#inFlight.has(handle.dc)) this.#refresh(handle.dc);
    return () => {
      const s = this.#resolvers.get(handle.dc);
      s?.delete(handle);
      if (s?.size === 0) this.#resolvers.delete(handle.dc);
    };
  }

  /** @internal The error text of an empty list for `dc`. */
  unavailableReason(dc: string): string {
    return this.#unavailable(dc);
  }

  /** @internal The authority for a target path. */
  authorityFor(path: string): string {
    return this.#authority ?? path;
  }
}

/**
 * The class grpc-js instantiates per channel. It reaches its builder through a closure variable
 * that {@link GrpcResolverBuilder.shutdown} does not need to clear: a closed builder refuses to
 * attach and holds no servers.
 */
function makeResolverClass(builder: GrpcResolverBuilder): Parameters<typeof grpc.experimental.registerResolver>[1] {
  return class MeshfedServerResolver implements grpc.experimental.Resolver {
    readonly #listener: grpc.experimental.ResolverListener;
    readonly #dc: string | undefined;
    readonly #badTarget: string | undefined;
    #detach: (() => void) | undefined;
    /** `undefined` while the builder's first answer for a remote DC is pending. */
    #latest: readonly ResolvedEndpoint[] | undefined = [];
    #unavailable = '';
    #wanted = false;
    #scheduled = false;

    static getDefaultAuthority(target: grpc.experimental.GrpcUri): string {
      return builder.authorityFor(target.path);
    }

    constructor(target: grpc.experimental.GrpcUri, listener: grpc.experimental.ResolverListener) {
      this.#listener = listener;
      // Targets are "<serverType>.<dc>"; only "server" is supported (Consul's "leader" type is not).
      const m = /^server\.(.+)$/.exec(target.path);
      if (!m) {
        this.#badTarget = `gRPC target path ${JSON.stringify(target.path)} is not "server.<datacenter>"`;
        return;
      }
      this.#dc = m[1];
      this.#attach();
    }

    #attach(): void {
      const dc = this.#dc;
      if (dc === undefined || this.#detach) return;
      this.#latest = builder.endpoints(dc);
      this.#unavailable = builder.unavailableReason(dc);
      this.#detach = builder.attach({
        dc,
        push: (list, unavailable) => {
          this.#latest = list;
          this.#unavailable = unavailable;
          if (this.#wanted) this.#schedule();
        },
      });
    }

    // Listener calls must never happen synchronously inside the constructor or updateResolution.
    #schedule(): void {
      if (this.#scheduled) return;
      this.#scheduled = true;
      process.nextTick(() => {
        this.#scheduled = false;
        if (this.#wanted) this.#report();
      });
    }

    #report(): void {
      const dc = this.#dc;
      if (this.#badTarget !== undefined || dc === undefined) {
        this.#listener(grpc.experimental.statusOrFromError({ code: grpc.status.UNAVAILABLE, details: this.#badTarget ?? 'bad target' }), {}, null, '');
        return;
      }
      if (builder.closed) {
        this.#listener(grpc.experimental.statusOrFromError({ code: grpc.status.UNAVAILABLE, details: 'meshfed gRPC resolver was shut down' }), {}, null, '');
        return;
      }
      const list = this.#latest;
      // the first gateway answer is pending: it is pushed (and reported) when it comes
      if (list === undefined) return;
      if (list.length === 0) {
        this.#listener(
          grpc.experimental.statusOrFromError({ code: grpc.status.UNAVAILABLE, details: this.#unavailable || `no known servers in datacenter ${dc}` }),
          {},
          null,
          `no servers for ${dc}`,
        );
        return;
      }
      const endpoints = list.map((a) => ({ addresses: [{ host: a.host, port: a.port }] }));
      this.#listener(grpc.experimental.statusOrFromValue(endpoints), { [GLOBAL_ADDRS_ATTRIBUTE]: list.map((a) => a.globalAddr) }, null, '');
    }

    updateResolution(): void {
      this.#wanted = true;
      this.#attach();
      this.#schedule();
    }

    destroy(): void {
      this.#wanted = false;
      this.#detach?.();
      this.#detach = undefined;
    }
  };
}
