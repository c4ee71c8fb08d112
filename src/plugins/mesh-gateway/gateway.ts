/**
 * A running mesh gateway: registers itself in its datacenter's catalog (kind `mesh-gateway`,
 * tagged addresses `lan`/`wan`, meta `consul-wan-federation=1` with `exposeServers`, a TCP check
 * every 10 s), takes its routes over ADS from the datacenter's servers (failing over between
 * them), serves them with the {@link SniProxy} data plane, and deregisters on a clean stop.
 * `meshfed gateway` is a thin CLI around it; tests and examples use it directly.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { errorMessage, MeshfedError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import { AdsClient, loadAdsProtos, type AdsClientTlsOptions, type AdsProtos } from './ads-client.js';
import { SniProxy, type SniProxyOptions } from './proxy.js';

/** The meta key that marks a gateway as usable for WAN federation. */
export const WAN_FEDERATION_META = 'consul-wan-federation';

/** A `host:port` pair. */
export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** Options of {@link MeshGateway}. */
export interface MeshGatewayOptions {
  /** Service name (default `mesh-gateway`). */
  readonly service?: string;
  /** Service ID (default `<service>`); also the ADS node id. */
  readonly serviceId?: string;
  /** Catalog node the gateway registers under. */
  readonly node: string;
  /** LAN address: where it listens and what local servers' peers dial. */
  readonly address: HostPort;
  /** WAN address other datacenters dial (default = `address`). */
  readonly wanAddress?: HostPort;
  /** Bind address (default `address.host`). */
  readonly bindHost?: string;
  /** Register with meta `consul-wan-federation=1` (the gateway carries server traffic). */
  readonly exposeServers: boolean;
  /** Register (and deregister at stop) in the catalog (default true). */
  readonly register?: boolean;
  /** HTTP API of a server of the gateway's datacenter, `host:port`. */
  readonly httpAddr: string;
  /** ADS (gRPC) addresses of the datacenter's servers, tried in order: `host:port`, or `https://host:port` for TLS. */
  readonly adsServers: readonly string[];
  /** TLS settings for `https://` ADS servers (CA, server name, client certificate). */
  readonly adsTls?: AdsClientTlsOptions;
  /**
   * ACL token (never logged) for the registration and the ADS stream (`x-consul-token`): with ACLs
   * on it needs `service:write` on the gateway's service (and `node:write` on its node to register).
   */
  readonly token?: string;
  /** Interval of the TCP check (default 10 s). */
  readonly checkIntervalMs?: number;
  readonly logger: Logger;
  /** Shared, already loaded ADS protos (tests and several gateways in one process). */
  readonly protos?: AdsProtos;
  /** How long {@link MeshGateway.start} waits for the first routes over ADS (default 15 s). */
  readonly routesTimeoutMs?: number;
  /** Extra data-plane options (connect function, timeouts). */
  readonly proxy?: Omit<SniProxyOptions, 'logger'>;
}

/** Parse `host:port` (IPv6 in brackets); port 0 ("any free port") only with `allowPortZero`. */
export function parseHostPort(text: string, what: string, options: { readonly allowPortZero?: boolean } = {}): HostPort {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : NaN;
  if (!m || !((port > 0 || (port === 0 && options.allowPortZero === true)) && port < 65536)) throw new MeshfedError('MESHFED_ERR_MESH_GATEWAY_CONFIG', `${what}: "${text}" is not host:port (e.g. 10.0.0.5:8443)`, { plugin: 'mesh-gateway' });
  return { host: (m[1] ?? m[2]) as string, port };
}

/** A mesh gateway process's runtime. */
export class MeshGateway {
  readonly #o: MeshGatewayOptions;
  readonly proxy: SniProxy;
  #ads: AdsClient | undefined;
  #checkTimer: NodeJS.Timeout | undefined;
  #status: 'passing' | 'critical' | undefined;
  #stopped = false;

  /** A gateway (nothing opens before {@link start}). */
  constructor(options: MeshGatewayOptions) {
    this.#o = options;
    this.proxy = new SniProxy({ logger: options.logger.child({ component: 'mesh-gateway.proxy' }), ...options.proxy });
  }

  /** Service ID (and ADS node id). */
  get serviceId(): string {
    return this.#o.serviceId ?? this.#o.service ?? 'mesh-gateway';
  }

  /** Where the data plane listens (`host:port`), once started. */
  get address(): string {
    const a = this.proxy.address;
    return `${a.address.includes(':') ? `[${a.address}]` : a.address}:${a.port}`;
  }

  /** Listen, register, and follow the servers' routes. */
  async start(): Promise<void> {
    const o = this.#o;
    await this.proxy.listen(o.bindHost ?? o.address.host, o.address.port);
    if (o.register !== false) await this.#register('passing');
    this.#ads = new AdsClient({
      servers: o.adsServers,
      nodeId: this.serviceId,
      ...(o.token ? { token: o.token } : {}),
      ...(o.adsTls ? { tls: o.adsTls } : {}),
      apply: (r) => this.proxy.update(r),
      protos: o.protos ?? loadAdsProtos(),
      logger: o.logger.child({ component: 'mesh-gateway.ads' }),
    });
    // Resolve only once routes are in (as Envoy listens only after LDS): until then every
    // connection would be refused for want of a route.
    const routed = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), o.routesTimeoutMs ?? 15_000);
      const onResources = (r: { listeners: readonly unknown[] }): void => {
        if (r.listeners.length === 0) return; // clusters or endpoints first: not routable yet
        clearTimeout(timer);
        this.#ads?.off('resources', onResources);
        resolve(true);
      };
      this.#ads?.on('resources', onResources);
    });
    this.#ads.start();
    if (!(await routed)) o.logger.warn('no routes from the servers yet; the gateway refuses connections until they arrive', { servers: o.adsServers.join(',') });
    if (o.register !== false) this.#scheduleCheck();
    o.logger.info('mesh gateway running', { service: this.serviceId, address: this.address, wan: `${(o.wanAddress ?? this.#lan()).host}:${(o.wanAddress ?? this.#lan()).port}` });
  }

  /** The current routes as the ADS client accepted them. */
  routes(): ReturnType<AdsClient['current']> | undefined {
    return this.#ads?.current();
  }

  /** Stop: deregister (when registered), stop following routes, close the data plane. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#checkTimer) clearTimeout(this.#checkTimer);
    if (this.#o.register !== false) {
      await this.#api('/v1/catalog/deregister', { Node: this.#o.node, ServiceID: this.serviceId }).catch((err: unknown) =>
        this.#o.logger.warn('deregistering the mesh gateway failed', { err: errorMessage(err) }),
      );
    }
    this.#ads?.close();
    await this.proxy.close({ drain: false });
  }

  #scheduleCheck(): void {
    this.#checkTimer = setTimeout(() => {
      void this.#runCheck().finally(() => {
        if (!this.#stopped) this.#scheduleCheck();
      });
    }, this.#o.checkIntervalMs ?? 10_000);
    this.#checkTimer.unref();
  }

  /** The TCP check: can the listener be reached? Re-registers when the status changes. */
  async #runCheck(): Promise<void> {
    const { host, port } = this.#lan();
    const ok = await new Promise<boolean>((resolve) => {
      const s: Socket = netConnect({ host, port });
      const done = (v: boolean): void => {
        s.destroy();
        resolve(v);
      };
      s.setTimeout(5000, () => done(false));
      s.once('connect', () => done(true));
      s.once('error', () => done(false));
    });
    const status = ok ? 'passing' : 'critical';
    if (status !== this.#status) await this.#register(status).catch((err: unknown) => this.#o.logger.warn('updating the mesh gateway check failed', { err: errorMessage(err) }));
  }

  /** The LAN address with the bound port when configured as 0. */
  #lan(): HostPort {
    const o = this.#o;
    return o.address.port !== 0 ? o.address : { host: o.address.host, port: this.proxy.address.port };
  }

  async #register(status: 'passing' | 'critical'): Promise<void> {
    const o = this.#o;
    const lan = this.#lan();
    const wan = o.wanAddress ?? lan;
    const checkId = `${this.serviceId}:tcp`;
    await this.#api('/v1/catalog/register', {
      Node: o.node,
      Address: lan.host,
      Service: {
        Kind: 'mesh-gateway',
        ID: this.serviceId,
        Service: o.service ?? 'mesh-gateway',
        Address: lan.host,
        Port: lan.port,
        TaggedAddresses: { lan: { Address: lan.host, Port: lan.port }, wan: { Address: wan.host, Port: wan.port } },
        Meta: o.exposeServers ? { [WAN_FEDERATION_META]: '1' } : {},
      },
      Checks: [{ CheckID: checkId, Name: 'Mesh Gateway listening', Status: status, ServiceID: this.serviceId, Output: status === 'passing' ? `TCP connect ${lan.host}:${lan.port}: Success` : 'TCP connect failed' }],
    });
    this.#status = status;
  }

  async #api(path: string, body: unknown): Promise<void> {
    const res = await fetch(`http://${this.#o.httpAddr}${path}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json', ...(this.#o.token ? { 'x-consul-token': this.#o.token } : {}) },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
    if (res.status !== 200) throw new MeshfedError('MESHFED_ERR_MESH_GATEWAY_REGISTER', `${path} on ${this.#o.httpAddr}: HTTP ${res.status}: ${(await res.text()).trim()}`, { plugin: 'mesh-gateway' });
  }
}
