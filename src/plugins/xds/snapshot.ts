/**
 * The proxy-config snapshot of one mesh gateway (spec §9.2): everything its Envoy resources are
 * built from, read from the local state store in one pass that records every key it depends on,
 * so a blocking query over {@link readMeshGatewaySnapshot} wakes exactly when the resources may
 * change.
 *
 * Inputs: the mesh-gateway catalog dump (this datacenter's gateways, the gateway's own
 * registration, and other datacenters' gateways grouped by their node's datacenter), the
 * federation-state table (`ListMeshGateways` of the local datacenter), and the health of service
 * `consul` (this datacenter's servers).
 */
import { isIP } from 'node:net';
import { parseHostPort } from '../../core/address.js';
import { bestAddress, WAN_FEDERATION_META_KEY } from '../federation/locator.js';
import type { CheckServiceNode, QueryResult, StateStore, WatchSet } from '../state/store/index.js';
import { DEFAULT_CONNECT_TIMEOUT_MS, type EndpointHealth, type EndpointSpec } from './resources.js';

/** What the snapshot reads from the state store. */
export type SnapshotSource = Pick<StateStore, 'serviceDumpByKind' | 'checkServiceNodes' | 'federationStateList'>;

/** The gateway the snapshot is for (its own registration). */
export interface SnapshotProxy {
  /** Service instance ID of the gateway. */
  readonly id: string;
  /** Catalog node the gateway is registered on. */
  readonly node: string;
  /** Service name. */
  readonly service: string;
  /** Bind address of the main listener: the service address, else `0.0.0.0`. */
  readonly address: string;
  /** Service port (the listener port). */
  readonly port: number;
  /** Service meta. */
  readonly meta: Readonly<Record<string, string>>;
}

/** A remote gateway as an upstream endpoint. */
export interface GatewayEndpoint extends EndpointSpec {
  /** Node the gateway runs on. */
  readonly node: string;
  /** Whether `host` is a DNS name rather than an IP. */
  readonly hostname: boolean;
}

/** The gateways chosen for one remote datacenter. */
export interface RemoteDatacenter {
  /** Datacenter name. */
  readonly datacenter: string;
  /** Which list won the newer-information rule (spec §9.2). */
  readonly source: 'catalog' | 'federation-state';
  /** Highest `Service.ModifyIndex` of the chosen list. */
  readonly maxModifyIndex: number;
  /** The gateways (WAN addresses), sorted by host then port. */
  readonly gateways: readonly GatewayEndpoint[];
}

/** One server of this datacenter. */
export interface LocalServer {
  /** Node name (the `<node>` of `<node>.server.<dc>.<domain>`). */
  readonly node: string;
  /** LAN address. */
  readonly host: string;
  /** Port of service `consul` (the server RPC port). */
  readonly port: number;
}

/** The proxy-config snapshot of one mesh gateway (JSON-able). */
export interface MeshGatewaySnapshot {
  /** This datacenter. */
  readonly datacenter: string;
  /** Agent domain, without a trailing dot. */
  readonly domain: string;
  /** The gateway itself. */
  readonly proxy: SnapshotProxy;
  /** Whether the gateway exposes servers (meta `consul-wan-federation = "1"`): wanfed chains. */
  readonly wanFederation: boolean;
  /** Every other datacenter with gateways, sorted by name. */
  readonly remoteDatacenters: readonly RemoteDatacenter[];
  /** This datacenter's servers (service `consul`), sorted by node. */
  readonly localServers: readonly LocalServer[];
  /** Connect timeout of gateway clusters, ms. */
  readonly connectTimeoutMs: number;
}

/** Options of {@link readMeshGatewaySnapshot}. */
export interface SnapshotOptions {
  /** This datacenter. */
  readonly datacenter: string;
  /** Agent `domain` (a trailing dot is stripped). */
  readonly domain: string;
  /** The Envoy node id naming the gateway, see {@link findGateway}. */
  readonly proxyId: string;
  /** Connect timeout of gateway clusters (default 5000 ms). */
  readonly connectTimeoutMs?: number;
}

/** Outcome of {@link findGateway}. */
export type GatewayLookup =
  | { readonly found: CheckServiceNode; readonly error?: undefined; readonly message?: undefined }
  | { readonly found?: undefined; readonly error: 'not-found' | 'ambiguous'; readonly message: string };

const byString = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** Strip one trailing dot (`consul.` → `consul`). */
export function normalizeDomain(domain: string): string {
  return domain.endsWith('.') ? domain.slice(0, -1) : domain;
}

function inDatacenter(csn: CheckServiceNode, dc: string): boolean {
  return csn.Node.Datacenter === dc || csn.Node.Datacenter === '';
}

/**
 * Find the gateway an Envoy node id names among this datacenter's mesh gateways. The node id is
 * the gateway's **service ID** (as `consul connect envoy` sets it); when several nodes register
 * the same service ID, `<node>/<service-id>` picks one. Datacenter `''` on a node counts as local.
 */
export function findGateway(dump: readonly CheckServiceNode[], datacenter: string, nodeId: string): GatewayLookup {
  const local = dump.filter((c) => c.Service.Kind === 'mesh-gateway' && inDatacenter(c, datacenter));
  let hits = local.filter((c) => c.Service.ID === nodeId);
  const slash = nodeId.indexOf('/');
  if (hits.length === 0 && slash > 0) {
    const node = nodeId.slice(0, slash).toLowerCase();
    const id = nodeId.slice(slash + 1);
    hits = local.filter((c) => c.Node.Node.toLowerCase() === node && c.Service.ID === id);
  }
  if (hits.length === 1) return { found: hits[0] as CheckServiceNode };
  if (hits.length === 0) {
    return {
      error: 'not-found',
      message: `no mesh gateway with service ID "${nodeId}" is registered in datacenter ${datacenter}: register it (kind mesh-gateway) and use its service ID as the Envoy node id`,
    };
  }
  const nodes = hits.map((c) => c.Node.Node).sort(byString);
  return {
    error: 'ambiguous',
    message: `mesh gateway service ID "${nodeId}" is registered on several nodes (${nodes.join(', ')}): use "<node>/${nodeId}" as the Envoy node id`,
  };
}

function health(csn: CheckServiceNode): EndpointHealth {
  return (csn.Checks ?? []).some((c) => c.Status === 'critical') ? 'UNHEALTHY' : 'HEALTHY';
}

function gatewayEndpoint(csn: CheckServiceNode): GatewayEndpoint | undefined {
  const addr = parseHostPort(bestAddress(csn, true));
  if (!addr) return undefined;
  return { node: csn.Node.Node ?? '', host: addr.host, port: addr.port, hostname: isIP(addr.host) === 0, health: health(csn) };
}

function maxModifyIndex(list: readonly CheckServiceNode[]): number {
  return list.reduce((m, c) => Math.max(m, c.Service.ModifyIndex ?? 0), 0);
}

function endpoints(list: readonly CheckServiceNode[]): GatewayEndpoint[] {
  return list
    .map(gatewayEndpoint)
    .filter((e): e is GatewayEndpoint => e !== undefined)
    .sort((a, b) => byString(a.host, b.host) || a.port - b.port || byString(a.node, b.node));
}

/**
 * Per remote datacenter, the gateways to route to: the catalog's list or the federation state's,
 * whichever has the larger max `Service.ModifyIndex` (the federation state wins only when
 * strictly newer); a datacenter only one source knows uses that one.
 */
export function chooseRemoteGateways(
  localDatacenter: string,
  catalog: ReadonlyMap<string, readonly CheckServiceNode[]>,
  federationStates: ReadonlyMap<string, readonly CheckServiceNode[]>,
): RemoteDatacenter[] {
  const dcs = new Set([...catalog.keys(), ...federationStates.keys()]);
  dcs.delete(localDatacenter);
  const out: RemoteDatacenter[] = [];
  for (const dc of [...dcs].sort(byString)) {
    const cat = catalog.get(dc) ?? [];
    const fed = federationStates.get(dc) ?? [];
    const useFed = cat.length === 0 || (fed.length > 0 && maxModifyIndex(fed) > maxModifyIndex(cat));
    const list = useFed ? fed : cat;
    if (list.length === 0) continue;
    out.push({ datacenter: dc, source: useFed ? 'federation-state' : 'catalog', maxModifyIndex: maxModifyIndex(list), gateways: endpoints(list) });
  }
  return out;
}

/**
 * Read the snapshot of gateway `opts.proxyId` from `store`, adding every key read to `ws`.
 * `value` is `undefined` when the gateway is not registered (see {@link findGateway}); `index` is
 * the highest index of the tables read (block on it).
 */
export function readMeshGatewaySnapshot(store: SnapshotSource, opts: SnapshotOptions, ws?: WatchSet): QueryResult<MeshGatewaySnapshot | undefined> & { lookup: GatewayLookup } {
  const dc = opts.datacenter;
  const dump = store.serviceDumpByKind('mesh-gateway', ws);
  const servers = store.checkServiceNodes('consul', {}, ws);
  const fed = store.federationStateList(ws);
  const index = Math.max(dump.index, servers.index, fed.index);
  const lookup = findGateway(dump.value, dc, opts.proxyId);
  if (!lookup.found) return { index, value: undefined, lookup };
  const self = lookup.found;

  const catalog = new Map<string, CheckServiceNode[]>();
  for (const csn of dump.value) {
    const nodeDc = csn.Node.Datacenter === '' ? dc : csn.Node.Datacenter;
    let list = catalog.get(nodeDc);
    if (!list) catalog.set(nodeDc, (list = []));
    list.push(csn);
  }
  const fedGateways = new Map<string, readonly CheckServiceNode[]>();
  for (const st of fed.value) if (st.MeshGateways.length > 0) fedGateways.set(st.Datacenter, st.MeshGateways);

  const localServers: LocalServer[] = [];
  for (const csn of servers.value) {
    if (!inDatacenter(csn, dc) || csn.Service.Service !== 'consul') continue;
    const addr = parseHostPort(bestAddress(csn, false));
    if (addr) localServers.push({ node: csn.Node.Node, host: addr.host, port: addr.port });
  }
  localServers.sort((a, b) => byString(a.node, b.node));

  const value: MeshGatewaySnapshot = {
    datacenter: dc,
    domain: normalizeDomain(opts.domain),
    proxy: {
      id: self.Service.ID,
      node: self.Node.Node,
      service: self.Service.Service,
      address: self.Service.Address !== '' ? self.Service.Address : '0.0.0.0',
      port: self.Service.Port,
      meta: { ...self.Service.Meta },
    },
    wanFederation: self.Service.Meta[WAN_FEDERATION_META_KEY] === '1',
    remoteDatacenters: chooseRemoteGateways(dc, catalog, fedGateways),
    localServers,
    connectTimeoutMs: opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
  };
  return { index, value, lookup };
}
