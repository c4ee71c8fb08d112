/**
 * The `mesh-gateway` agent plugin: runs a built-in mesh gateway ({@link MeshGateway}) inside an
 * agent process, next to the server it takes its routes from — what `meshfed gateway` does as a
 * process of its own. By default it registers through this agent's HTTP API and follows this
 * agent's ADS server (so the agent needs the `http` and `xds` plugins); give `httpAddr` and
 * `adsServers` to follow other servers instead.
 *
 * The gateway starts once every plugin has started (`onStarted`: the HTTP API and the ADS server
 * are listening, and the state store takes the registration) and stops first when the agent
 * stops (`onStopping`: it deregisters while the HTTP API still answers).
 *
 * Following this agent's ADS server, it prefers the TLS listener (`ports.grpc_tls`) when there is
 * one: CA, client certificate and server name (`server.<dc>.<domain>`) come from the agent's own
 * TLS material. `https://` entries of `adsServers` get the same material unless `adsTls` is given.
 * `token` is sent on the registration and on the ADS stream.
 */
import { MeshfedError } from '../../core/errors.js';
import type { AgentPlugin } from '../../core/plugin.js';
import { HttpTokens } from '../http/index.js';
import { TlsTokens, type TlsConfigurator } from '../tls/index.js';
import { XdsTokens } from '../xds/index.js';
import { parseAdsServer, type AdsClientTlsOptions } from './ads-client.js';
import { MeshGateway, parseHostPort, type MeshGatewayOptions } from './gateway.js';
import type { SniProxyOptions } from './proxy.js';

/** Options of {@link meshGateway}. */
export interface MeshGatewayPluginOptions {
  /** LAN `host:port` to listen on and register (tagged address `lan`); port 0 picks a free port. */
  readonly address: string;
  /** WAN `host:port` other datacenters dial (tagged address `wan`; default `address`). */
  readonly wanAddress?: string;
  /** Bind host when it differs from the `address` host (e.g. `0.0.0.0`). */
  readonly bind?: string;
  /** Service name (default `mesh-gateway`). */
  readonly service?: string;
  /** Service ID, also the ADS node id (default: the service name). */
  readonly serviceId?: string;
  /** Catalog node to register under (default `<node_name>-gateway`). */
  readonly node?: string;
  /** Carry WAN federation traffic to and from this datacenter's servers (default true). */
  readonly exposeServers?: boolean;
  /** Register in the catalog and deregister on stop (default true). */
  readonly register?: boolean;
  /** HTTP API of a server for the registration (default: this agent's; needs the `http` plugin). */
  readonly httpAddr?: string;
  /**
   * ADS servers, tried in order: `host:port`, or `https://host:port` for TLS (default: this
   * agent's, over TLS when `ports.grpc_tls` is on; needs the `xds` plugin).
   */
  readonly adsServers?: readonly string[];
  /** TLS settings for `https://` ADS servers (default: this agent's CA, certificate and `server.<dc>.<domain>`). */
  readonly adsTls?: AdsClientTlsOptions;
  /**
   * ACL token (never logged) for the registration and the ADS stream: with ACLs on it needs
   * `service:write` on the gateway's service name (and `node:write` on its node to register).
   */
  readonly token?: string;
  /** Interval of the gateway's TCP check (default 10 s). */
  readonly checkIntervalMs?: number;
  /** How long the start waits for the first routes (default 15 s; then it runs and logs a warning). */
  readonly routesTimeoutMs?: number;
  /** Data-plane options (`dataPlane`, `sourceAddress`, timeouts, …). */
  readonly proxy?: Omit<SniProxyOptions, 'logger'>;
}

/**
 * A mesh gateway inside this agent.
 *
 * @example
 * ```ts
 * const agent = await createAgent({
 *   config: { datacenter: 'dc1', node_name: 's1', server: true, connect: { enabled: true, enable_mesh_gateway_wan_federation: true }, … },
 *   plugins: [tls(), rpc(), http(), gossip(), router(), state(), federation(), xds(), wanfed(), meshGateway({ address: '127.0.0.1:8443' })],
 * });
 * await agent.start(); // the gateway is registered and routing once this resolves
 * ```
 * Runnable: `examples/three-dc` runs dc3's gateway this way.
 */
export function meshGateway(options: MeshGatewayPluginOptions): AgentPlugin {
  return {
    name: 'mesh-gateway',
    requires: [...(options.httpAddr === undefined ? ['http'] : []), ...(options.adsServers === undefined ? ['xds'] : [])],
    validate() {
      parseHostPort(options.address, 'mesh-gateway address', { allowPortZero: true });
      if (options.wanAddress !== undefined) parseHostPort(options.wanAddress, 'mesh-gateway wanAddress');
      if (options.httpAddr !== undefined) parseHostPort(options.httpAddr, 'mesh-gateway httpAddr');
      if (options.adsServers !== undefined) {
        if (options.adsServers.length === 0) throw new MeshfedError('MESHFED_ERR_MESH_GATEWAY_CONFIG', 'mesh-gateway adsServers is empty: give at least one ADS server (host:port) or leave it out to use this agent\'s', { plugin: 'mesh-gateway' });
        for (const s of options.adsServers) parseHostPort(parseAdsServer(s).address, 'mesh-gateway adsServers entry');
      }
      if (options.exposeServers === true && options.register === false) throw new MeshfedError('MESHFED_ERR_MESH_GATEWAY_CONFIG', "mesh-gateway: 'exposeServers' requires 'register'", { plugin: 'mesh-gateway' });
    },
    apply({ hooks, services, config, logger }) {
      let gateway: MeshGateway | undefined;
      hooks.onStarted.tapPromise({}, async () => {
        const register = options.register ?? true;
        const o: MeshGatewayOptions = {
          node: options.node ?? `${config.node_name}-gateway`,
          address: parseHostPort(options.address, 'mesh-gateway address', { allowPortZero: true }),
          exposeServers: options.exposeServers ?? register,
          register,
          httpAddr: options.httpAddr ?? String(services.get(HttpTokens.HttpApi).address),
          ...adsTarget(options, services.tryGet(XdsTokens.Server), services.tryGet(TlsTokens.Configurator)),
          logger,
          ...(options.wanAddress !== undefined ? { wanAddress: parseHostPort(options.wanAddress, 'mesh-gateway wanAddress') } : {}),
          ...(options.bind !== undefined ? { bindHost: options.bind } : {}),
          ...(options.service !== undefined ? { service: options.service } : {}),
          ...(options.serviceId !== undefined ? { serviceId: options.serviceId } : {}),
          ...(options.token !== undefined ? { token: options.token } : {}),
          ...(options.checkIntervalMs !== undefined ? { checkIntervalMs: options.checkIntervalMs } : {}),
          ...(options.routesTimeoutMs !== undefined ? { routesTimeoutMs: options.routesTimeoutMs } : {}),
          ...(options.proxy !== undefined ? { proxy: options.proxy } : {}),
        };
        const g = new MeshGateway(o);
        gateway = g;
        await g.start();
      });
      hooks.onStopping.tapPromise({}, async () => {
        const g = gateway;
        gateway = undefined;
        await g?.stop();
      });
      return {
        async stop() {
          // The agent failed to start after the gateway did, or onStopping was skipped.
          const g = gateway;
          gateway = undefined;
          await g?.stop();
        },
        status: () => {
          const g = gateway;
          if (!g) return { running: false };
          const s = g.proxy.stats();
          return { running: true, service_id: g.serviceId, address: g.address, data_plane: g.proxy.dataPlane, active: s.active, total: s.total, spliced: s.spliced, refused: s.refused };
        },
      };
    },
  };
}

/** The ADS servers and their TLS settings: the given ones, or this agent's (TLS listener first). */
function adsTarget(
  options: MeshGatewayPluginOptions,
  xdsServer: { readonly address: string | undefined; readonly tlsAddress: string | undefined } | undefined,
  conf: TlsConfigurator | undefined,
): Pick<MeshGatewayOptions, 'adsServers' | 'adsTls'> {
  let servers = options.adsServers;
  if (servers === undefined) {
    const tlsAddress = xdsServer?.tlsAddress;
    const address = tlsAddress !== undefined ? `https://${tlsAddress}` : xdsServer?.address;
    if (address === undefined) {
      throw new MeshfedError('MESHFED_ERR_MESH_GATEWAY_CONFIG', "mesh-gateway: this agent's ADS server is not listening (ports.grpc and ports.grpc_tls are -1): enable one or give adsServers", { plugin: 'mesh-gateway' });
    }
    servers = [address];
  }
  if (options.adsTls !== undefined) return { adsServers: servers, adsTls: options.adsTls };
  if (!servers.some((s) => parseAdsServer(s).tls)) return { adsServers: servers };
  if (!conf?.mutualTlsCapable()) {
    throw new MeshfedError('MESHFED_ERR_MESH_GATEWAY_CONFIG', 'mesh-gateway: https:// ADS servers need a CA: give adsTls, or configure the tls plugin with a certificate (tls.ca_file, tls.cert_file, tls.key_file)', { plugin: 'mesh-gateway' });
  }
  // incomingOptions is the configurator's way to hand out its current PEMs.
  const own = conf.incomingOptions({ requireClientCert: false });
  const pem = (v: unknown): string => (Buffer.isBuffer(v) ? v.toString('utf8') : String(v));
  return { adsServers: servers, adsTls: { caPem: pem(own.ca), certPem: pem(own.cert), keyPem: pem(own.key), serverName: `server.${conf.datacenter}.${conf.domain}` } };
}
