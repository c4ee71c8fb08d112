/**
 * A datacenter of WAN federation via mesh gateways on one host, for tests, benchmarks and the
 * demo: one server (tls, rpc, http, gossip, router, grpc, state, federation, xds, wanfed) and one
 * built-in mesh gateway fed by that server over ADS. Not exported from `meshfed/testing`'s index
 * (it pulls in every plugin): import `meshfed/testing/wanfed-datacenter` directly.
 *
 * @example
 * ```ts
 * const ca = await generateCa({ domain: 'consul' });
 * const dc1 = await startWanfedDatacenter({ dc: 'dc1', node: 's1', tls: await writeServerTls(dir, ca, 'dc1', 's1') });
 * const dc2 = await startWanfedDatacenter({ dc: 'dc2', node: 's2', tls: await writeServerTls(dir, ca, 'dc2', 's2'), primaryGateways: [dc1.gateway.address] });
 * // … dc2 joins the WAN pool through dc1's gateway …
 * await stopWanfedDatacenters([dc2, dc1]);
 * ```
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createAgent, type Agent } from '../core/agent.js';
import type { Logger } from '../core/logger.js';
import { silentLogger } from '../core/logger.js';
import type { AgentPlugin } from '../core/plugin.js';
import { federation } from '../plugins/federation/index.js';
import { gossip } from '../plugins/gossip/index.js';
import { grpc } from '../plugins/grpc/index.js';
import { http, HttpTokens } from '../plugins/http/index.js';
import { MeshGateway, type AdsProtos } from '../plugins/mesh-gateway/index.js';
import { router } from '../plugins/router/index.js';
import { rpc } from '../plugins/rpc/index.js';
import { state } from '../plugins/state/index.js';
import { generateCert, tls, type PemPair } from '../plugins/tls/index.js';
import { wanfed } from '../plugins/wanfed/index.js';
import { xds, XdsTokens } from '../plugins/xds/index.js';

/** The server's TLS files (`tls.ca_file`, `cert_file`, `key_file`). */
export interface ServerTlsFiles {
  readonly ca_file: string;
  readonly cert_file: string;
  readonly key_file: string;
}

/**
 * Write the CA (once) and a server certificate for `<node>.server.<dc>.consul` into `dir`,
 * keeping files that already exist (the demo generates them on its first run only).
 */
export async function writeServerTls(dir: string, ca: PemPair, dc: string, node: string): Promise<ServerTlsFiles> {
  const files = { ca_file: join(dir, 'consul-agent-ca.pem'), cert_file: join(dir, `${node}.pem`), key_file: join(dir, `${node}-key.pem`) };
  if (!existsSync(files.ca_file)) writeFileSync(files.ca_file, ca.certPem);
  if (!existsSync(files.cert_file) || !existsSync(files.key_file)) {
    const pair = await generateCert({ ca, kind: 'server', datacenter: dc, domain: 'consul', node, days: 365 });
    writeFileSync(files.cert_file, pair.certPem);
    writeFileSync(files.key_file, pair.keyPem, { mode: 0o600 });
  }
  return files;
}

/** Options of {@link startWanfedDatacenter}. */
export interface WanfedDatacenterOptions {
  readonly dc: string;
  /** Server node name; the gateway registers as `<node>-gw` unless `gatewayNode` says otherwise. */
  readonly node: string;
  readonly tls: ServerTlsFiles;
  /** Primary datacenter (default `dc1`). */
  readonly primaryDatacenter?: string;
  /** `primary_gateways` of a secondary (discovery retried every second). */
  readonly primaryGateways?: readonly string[];
  /** Server bind address (default 127.0.0.1). */
  readonly serverIp?: string;
  /** Gateway address (default 127.0.0.1) and port (default 0: a free one). */
  readonly gatewayIp?: string;
  readonly gatewayPort?: number;
  readonly gatewayNode?: string;
  /**
   * Gateway upstream connections leave from the gateway's own address (so servers can tell
   * gateway traffic apart on loopback). Default false.
   */
  readonly gatewaySourceAddress?: boolean;
  /** Extra configuration merged over the defaults (ports, federation timings, data_dir, …). */
  readonly config?: Readonly<Record<string, unknown>>;
  /** Plugins placed before the standard ones (e.g. a recorder tapping `onRpcAccept` first). */
  readonly extraPlugins?: readonly AgentPlugin[];
  readonly logger?: Logger;
  /** Shared ADS protos (load once per process with `loadAdsProtos()`). */
  readonly protos?: AdsProtos;
}

/** A started datacenter. */
export interface WanfedDatacenter {
  readonly server: Agent;
  readonly gateway: MeshGateway;
}

/** Gossip timings for one host (memberlist's defaults are for real networks). */
const FAST = { probe_interval: '200ms', probe_timeout: '100ms', gossip_interval: '50ms', suspicion_mult: 3, push_pull_interval: '2s' };

/** Start a datacenter's server, then its gateway (which resolves once it has routes). */
export async function startWanfedDatacenter(o: WanfedDatacenterOptions): Promise<WanfedDatacenter> {
  const logger = o.logger ?? silentLogger();
  const serverIp = o.serverIp ?? '127.0.0.1';
  const gatewayIp = o.gatewayIp ?? '127.0.0.1';
  const server = await createAgent({
    config: {
      node_name: o.node,
      datacenter: o.dc,
      primary_datacenter: o.primaryDatacenter ?? 'dc1',
      server: true,
      bind_addr: serverIp,
      ports: { server: 0, serf_lan: 0, serf_wan: 0, http: 0, grpc: 0 },
      gossip_lan: FAST,
      gossip_wan: FAST,
      connect: { enabled: true, enable_mesh_gateway_wan_federation: true },
      tls: { ...o.tls, verify_incoming: true, verify_outgoing: true, verify_server_hostname: true },
      federation: { anti_entropy_interval: '0s', replication_rate: 0 },
      retry_interval_wan: '500ms',
      ...(o.primaryGateways && o.primaryGateways.length > 0 ? { primary_gateways: [...o.primaryGateways], primary_gateways_interval: '1s' } : {}),
      ...o.config,
    },
    host: { hostname: o.node, privateIPv4: serverIp },
    logger,
    plugins: [...(o.extraPlugins ?? []), tls(), rpc(), http(), gossip({ serf: { leavePropagateDelayMs: 0 } }), router(), grpc(), state(), federation(), xds(), wanfed()],
  });
  await server.start();
  let gateway: MeshGateway;
  try {
    gateway = await startGatewayFor(server, {
      node: o.gatewayNode ?? `${o.node}-gw`,
      ip: gatewayIp,
      port: o.gatewayPort ?? 0,
      sourceAddress: o.gatewaySourceAddress ?? false,
      logger,
      ...(o.protos ? { protos: o.protos } : {}),
    });
  } catch (err) {
    await server.stop();
    throw err;
  }
  return { server, gateway };
}

/** Options of {@link startGatewayFor}. */
export interface GatewayForOptions {
  /** Catalog node of the gateway. */
  readonly node: string;
  readonly ip: string;
  /** 0 = a free port. */
  readonly port: number;
  /** Upstream connections leave from `ip` (so servers can tell gateway traffic apart). */
  readonly sourceAddress: boolean;
  readonly logger: Logger;
  readonly protos?: AdsProtos;
}

/**
 * Start a mesh gateway (`-register -expose-servers`) fed over ADS by `server`, e.g. to replace one
 * that was stopped; resolves once it has routes.
 */
export async function startGatewayFor(server: Agent, o: GatewayForOptions): Promise<MeshGateway> {
  const gateway = new MeshGateway({
    node: o.node,
    address: { host: o.ip, port: o.port },
    exposeServers: true,
    httpAddr: server.services.get(HttpTokens.HttpApi).address as string,
    adsServers: [server.services.get(XdsTokens.Server).address as string],
    logger: o.logger,
    ...(o.protos ? { protos: o.protos } : {}),
    ...(o.sourceAddress ? { proxy: { sourceAddress: o.ip } } : {}),
  });
  await gateway.start();
  return gateway;
}

/** Stop gateways (they deregister), then servers; errors are ignored (teardown). */
export async function stopWanfedDatacenters(dcs: readonly WanfedDatacenter[], extraGateways: readonly MeshGateway[] = []): Promise<void> {
  for (const g of [...dcs.map((d) => d.gateway), ...extraGateways]) await g.stop().catch(() => undefined);
  for (const d of [...dcs].reverse()) await d.server.stop().catch(() => undefined);
}
