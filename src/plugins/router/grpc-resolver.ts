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
 * the server, for a future gateway-aware transport.
 */
import { randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { parseHostPort } from '../../core/address.js';
import type { Logger } from '../../core/logger.js';
import { RouterError, RouterErrorCode } from './errors.js';
import { shuffled } from './manager.js';
import { AREA_LAN, type AreaId, type ServerTracker } from './router.js';
import type { ServerMeta } from './server-metadata.js';

/** Resolver-result attribute holding the Consul-style `"<dc>-<ip:port>"` names, in endpoint order. */
export const GLOBAL_ADDRS_ATTRIBUTE = 'meshfed.globalAddrs';

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
  /** Component logger. */
  readonly logger?: Logger;
}

/** One resolved server address. */
export interface ResolvedServerAddress {
  /** `"<dc>-<ip:port>"` (Consul's naming). */
  readonly globalAddr: string;
  /** What the connection actually dials. */
  readonly host: string;
  readonly port: number;
  /** The server. */
  readonly server: ServerMeta;
}

/** A live resolver for one target. */
interface ResolverHandle {
  readonly dc: string;
  push(list: readonly ResolvedServerAddress[]): void;
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
  /** dc → the list last pushed (the rebalancer shuffles it). */
  readonly #lists = new Map<string, readonly ResolvedServerAddress[]>();
  readonly #resolvers = new Map<string, Set<ResolverHandle>>();
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

  /** {@link ServerTracker.newRebalancer}: shuffle the DC's last list and re-push it, so pick-first moves on. */
  newRebalancer(dc: string): () => void {
    return () => {
      if (this.#closed) return;
      const list = this.#lists.get(dc);
      if (!list || list.length < 2) return;
      const next = Object.freeze(shuffled(list, this.#random));
      this.#lists.set(dc, next);
      this.#pushAll(dc, next);
    };
  }

  /** The addresses for `dc`, in the order last pushed. */
  addresses(dc: string): readonly ResolvedServerAddress[] {
    return this.#lists.get(dc) ?? this.#compute(dc);
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
    for (const set of this.#resolvers.values()) for (const r of set) r.push([]);
    this.#resolvers.clear();
    this.#servers.clear();
    this.#lists.clear();
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
    this.#pushAll(dc, list);
  }

  #pushAll(dc: string, list: readonly ResolvedServerAddress[]): void {
    for (const r of this.#resolvers.get(dc) ?? []) r.push(list);
  }

  /** @internal Called by the resolver class. */
  attach(handle: ResolverHandle): (() => void) | undefined {
    if (this.#closed) return undefined;
    let set = this.#resolvers.get(handle.dc);
    if (!set) this.#resolvers.set(handle.dc, (set = new Set<ResolverHandle>()));
    set.add(handle);
    return () => {
      const s = this.#resolvers.get(handle.dc);
      s?.delete(handle);
      if (s?.size === 0) this.#resolvers.delete(handle.dc);
    };
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
    #latest: readonly ResolvedServerAddress[] = [];
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
      this.#latest = builder.addresses(dc);
      this.#detach = builder.attach({
        dc,
        push: (list) => {
          this.#latest = list;
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
      if (list.length === 0) {
        this.#listener(
          grpc.experimental.statusOrFromError({ code: grpc.status.UNAVAILABLE, details: `no known servers in datacenter ${dc}` }),
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
