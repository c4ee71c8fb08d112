/**
 * The mesh gateway's routing table, compiled from Envoy v3 xDS resources (spec §9.3–§9.5) given
 * as plain objects with protobuf snake_case field names and an `'@type'`: listeners (filter chains
 * matched on SNI), clusters (EDS, STATIC, LOGICAL_DNS) and cluster load assignments.
 *
 * Server-name matching follows Envoy: an exact name first, then the wildcard `*.suffix` with the
 * longest suffix (the `*` stands for at least one label), then the chain without server names
 * (the catch-all). `envoy.filters.network.sni_cluster` makes the cluster name the SNI itself.
 */
import { MeshfedError } from '../../core/errors.js';

/** Stable error codes of the mesh-gateway plugin. */
export const MeshGatewayErrorCode = Object.freeze({
  /** xDS resources the gateway cannot use (a listener without filter chains, a chain without tcp_proxy, …). */
  INVALID_CONFIG: 'MESHFED_ERR_MESH_GATEWAY_INVALID_CONFIG',
  /** A discovery response whose resources could not be decoded. */
  DECODE: 'MESHFED_ERR_MESH_GATEWAY_DECODE',
  /** The proxy was used in a state that does not allow the call (listen twice, after close). */
  STATE: 'MESHFED_ERR_MESH_GATEWAY_STATE',
} as const);

/** A value of {@link MeshGatewayErrorCode}. */
export type MeshGatewayErrorCodeValue = (typeof MeshGatewayErrorCode)[keyof typeof MeshGatewayErrorCode];

/** A {@link MeshfedError} attributed to the `mesh-gateway` plugin. */
export function meshGatewayError(code: MeshGatewayErrorCodeValue, message: string, cause?: unknown): MeshfedError {
  return new MeshfedError(code, message, { cause, plugin: 'mesh-gateway' });
}

/** Type URL of an Envoy v3 Listener. */
export const LISTENER_TYPE_URL = 'type.googleapis.com/envoy.config.listener.v3.Listener';
/** Type URL of an Envoy v3 Cluster. */
export const CLUSTER_TYPE_URL = 'type.googleapis.com/envoy.config.cluster.v3.Cluster';
/** Type URL of an Envoy v3 ClusterLoadAssignment. */
export const ENDPOINT_TYPE_URL = 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment';
/** Type URL of the tcp_proxy network filter's config. */
export const TCP_PROXY_TYPE_URL = 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy';
/** Type URL of the sni_cluster network filter's config. */
export const SNI_CLUSTER_TYPE_URL = 'type.googleapis.com/envoy.extensions.filters.network.sni_cluster.v3.SniCluster';
/** Filter name of tcp_proxy. */
export const TCP_PROXY_FILTER = 'envoy.filters.network.tcp_proxy';
/** Filter name of sni_cluster. */
export const SNI_CLUSTER_FILTER = 'envoy.filters.network.sni_cluster';

/** An xDS resource as a plain object (snake_case fields, `'@type'`). Fields the gateway reads are typed loosely. */
export type XdsResource = Readonly<Record<string, unknown>>;

/** The full set of resources the gateway routes by (state-of-the-world). */
export interface MeshGatewayResources {
  /** Envoy v3 Listeners. */
  readonly listeners: readonly XdsResource[];
  /** Envoy v3 Clusters. */
  readonly clusters: readonly XdsResource[];
  /** Envoy v3 ClusterLoadAssignments. */
  readonly endpoints: readonly XdsResource[];
}

/** One endpoint a cluster can send connections to. */
export interface RouteEndpoint {
  /** IP address or hostname (resolved at connect time). */
  readonly host: string;
  /** TCP port. */
  readonly port: number;
}

/** A compiled filter chain. */
export interface RouteChain {
  /** Index of the chain in the listener (for logs and stats). */
  readonly index: number;
  /** The tcp_proxy stat prefix. */
  readonly statPrefix: string;
  /** Target cluster, or `undefined` when the cluster is the SNI (`sni_cluster`). */
  readonly cluster: string | undefined;
  /** Why connections matching this chain are refused (a feature the gateway does not implement), if so. */
  readonly unsupported: string | undefined;
}

/** A compiled cluster. */
export interface RouteCluster {
  /** Cluster name. */
  readonly name: string;
  /** Discovery type (`EDS`, `STATIC`, `LOGICAL_DNS`, `STRICT_DNS`). */
  readonly type: string;
  /** Connect timeout in milliseconds. */
  readonly connectTimeoutMs: number;
  /** Endpoints that may take traffic (HEALTHY or UNKNOWN; DEGRADED only when none is). */
  readonly endpoints: readonly RouteEndpoint[];
  /** DNS family for hostname endpoints: 4, 6 or 0 (any). */
  readonly dnsFamily: 0 | 4 | 6;
  /** Why connections to this cluster are refused, if so. */
  readonly unsupported: string | undefined;
}

/** An immutable routing table; {@link SniProxy.update} swaps one in atomically. */
export interface RoutingTable {
  /** Name of the listener the table was built from (empty when there was none). */
  readonly listener: string;
  /** Exact server name → chain. */
  readonly exact: ReadonlyMap<string, RouteChain>;
  /** Wildcard suffix (with its leading dot, e.g. `.server.dc2.consul`) → chain. */
  readonly wildcard: ReadonlyMap<string, RouteChain>;
  /** The chain without server names (or the listener's default chain). */
  readonly catchAll: RouteChain | undefined;
  /** Clusters by name. */
  readonly clusters: ReadonlyMap<string, RouteCluster>;
}

/** A table that routes nothing (before the first update). */
export function emptyRoutingTable(): RoutingTable {
  return { listener: '', exact: new Map(), wildcard: new Map(), catchAll: undefined, clusters: new Map() };
}

/** The chain an SNI (already lower-cased) selects, or `undefined`. */
export function matchChain(table: RoutingTable, sni: string): RouteChain | undefined {
  const exact = table.exact.get(sni);
  if (exact) return exact;
  if (table.wildcard.size > 0) {
    // Longest suffix first: drop one label at a time; `*` must stand for at least one label.
    let dot = sni.indexOf('.');
    while (dot > 0 && dot < sni.length - 1) {
      const chain = table.wildcard.get(sni.slice(dot));
      if (chain) return chain;
      dot = sni.indexOf('.', dot + 1);
    }
  }
  return table.catchAll;
}

function obj(v: unknown): Record<string, unknown> | undefined {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

function arr(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

function num(v: unknown): number | undefined {
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (typeof v === 'string' && v !== '' && Number.isFinite(Number(v))) return Number(v);
  return undefined;
}

function invalid(message: string): MeshfedError {
  return meshGatewayError(MeshGatewayErrorCode.INVALID_CONFIG, message);
}

/** Options of {@link compileRoutingTable}. */
export interface CompileOptions {
  /** Listener to use; default: the only (or first) listener. */
  readonly listenerName?: string;
  /** Connect timeout when a cluster sets none (default 5000 ms, Consul's gateway default). */
  readonly defaultConnectTimeoutMs?: number;
}

/** Default cluster connect timeout: 5 s (spec §9.4). */
export const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;

/**
 * Build a routing table from xDS resources. Throws a `MESHFED_ERR_MESH_GATEWAY_INVALID_CONFIG`
 * error for resources Envoy would reject too (a listener without filter chains, a chain without a
 * tcp_proxy or without a cluster, a cluster without a name); features the gateway does not
 * implement (TLS termination, other filters, other cluster types) only make the affected chain or
 * cluster refuse connections, so one such chain does not take the whole gateway down.
 */
export function compileRoutingTable(resources: MeshGatewayResources, options: CompileOptions = {}): RoutingTable {
  const defaultTimeout = options.defaultConnectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  const cla = new Map<string, XdsResource>();
  for (const e of resources.endpoints) {
    const name = str(e['cluster_name']);
    if (!name) throw invalid('a ClusterLoadAssignment has no cluster_name');
    cla.set(name, e);
  }
  const clusters = new Map<string, RouteCluster>();
  for (const c of resources.clusters) {
    const rc = compileCluster(c, cla, defaultTimeout);
    clusters.set(rc.name, rc);
  }

  let listener: XdsResource | undefined;
  if (options.listenerName !== undefined) {
    listener = resources.listeners.find((l) => l['name'] === options.listenerName);
  } else {
    listener = resources.listeners[0];
  }
  if (!listener) return { ...emptyRoutingTable(), clusters };
  const listenerName = str(listener['name']) ?? '';
  const chains = arr(listener['filter_chains']);
  const defaultChain = obj(listener['default_filter_chain']);
  if (chains.length === 0 && !defaultChain) throw invalid(`listener ${JSON.stringify(listenerName)} has no filter chains`);
  const exact = new Map<string, RouteChain>();
  const wildcard = new Map<string, RouteChain>();
  let catchAll: RouteChain | undefined;
  chains.forEach((raw, index) => {
    const chain = obj(raw);
    if (!chain) throw invalid(`listener ${listenerName}: filter chain ${index} is not an object`);
    const rc = compileChain(chain, index, listenerName);
    const names = arr(obj(chain['filter_chain_match'])?.['server_names']);
    if (names.length === 0) {
      catchAll ??= rc;
      return;
    }
    for (const n of names) {
      const name = str(n)?.toLowerCase();
      if (!name) throw invalid(`listener ${listenerName}: filter chain ${index} has an empty server name`);
      if (name.startsWith('*.')) {
        const suffix = name.slice(1);
        if (suffix.length < 2) throw invalid(`listener ${listenerName}: bad wildcard server name ${JSON.stringify(name)}`);
        if (!wildcard.has(suffix)) wildcard.set(suffix, rc);
      } else if (name.includes('*')) {
        throw invalid(`listener ${listenerName}: server name ${JSON.stringify(name)} has a wildcard other than a leading "*."`);
      } else if (!exact.has(name)) {
        exact.set(name, rc);
      }
    }
  });
  if (!catchAll && defaultChain) catchAll = compileChain(defaultChain, -1, listenerName);
  return { listener: listenerName, exact, wildcard, catchAll, clusters };
}

function typeOf(config: Record<string, unknown> | undefined): string | undefined {
  return str(config?.['@type']) ?? str(config?.['type_url']);
}

function compileChain(chain: Record<string, unknown>, index: number, listener: string): RouteChain {
  let sniCluster = false;
  let tcp: Record<string, unknown> | undefined;
  let unsupported: string | undefined;
  if (chain['transport_socket'] !== undefined) unsupported = 'TLS termination (transport_socket) is not supported';
  for (const raw of arr(chain['filters'])) {
    const f = obj(raw) ?? {};
    const name = str(f['name']) ?? '';
    const config = obj(f['typed_config']);
    const type = typeOf(config);
    if (name === SNI_CLUSTER_FILTER || type === SNI_CLUSTER_TYPE_URL) sniCluster = true;
    else if (name === TCP_PROXY_FILTER || type === TCP_PROXY_TYPE_URL) {
      tcp = config ?? {};
      break; // tcp_proxy is terminal
    } else unsupported ??= `network filter ${JSON.stringify(name || type)} is not supported`;
  }
  const where = `listener ${listener}: filter chain ${index}`;
  if (!tcp) throw invalid(`${where} has no envoy.filters.network.tcp_proxy filter`);
  const statPrefix = str(tcp['stat_prefix']) ?? '';
  const cluster = str(tcp['cluster']) ?? '';
  if (!sniCluster && cluster === '') {
    if (tcp['weighted_clusters'] !== undefined) unsupported ??= 'tcp_proxy weighted_clusters is not supported';
    else throw invalid(`${where}: tcp_proxy has no cluster`);
  }
  return { index, statPrefix, cluster: sniCluster ? undefined : cluster, unsupported };
}

const HEALTHY = new Set(['HEALTHY', 'UNKNOWN', 0, 1]);
const DEGRADED = new Set(['DEGRADED', 5]);

function compileCluster(c: XdsResource, cla: ReadonlyMap<string, XdsResource>, defaultTimeout: number): RouteCluster {
  const name = str(c['name']);
  if (!name) throw invalid('a Cluster has no name');
  const type = str(c['type']) ?? (c['type'] === undefined ? 'STATIC' : JSON.stringify(c['type']));
  const timeout = obj(c['connect_timeout']);
  const connectTimeoutMs = timeout ? Math.max(1, (num(timeout['seconds']) ?? 0) * 1000 + Math.floor((num(timeout['nanos']) ?? 0) / 1e6)) : defaultTimeout;
  const family = str(c['dns_lookup_family']);
  const dnsFamily: 0 | 4 | 6 = family === 'V4_ONLY' ? 4 : family === 'V6_ONLY' ? 6 : family === undefined ? 4 : 0;
  let unsupported: string | undefined;
  let assignment: XdsResource | undefined;
  if (type === 'EDS') {
    const serviceName = str(obj(c['eds_cluster_config'])?.['service_name']);
    assignment = cla.get(serviceName || name);
  } else if (type === 'STATIC' || type === 'LOGICAL_DNS' || type === 'STRICT_DNS') {
    assignment = obj(c['load_assignment']);
  } else {
    unsupported = `cluster type ${type} is not supported`;
  }
  const healthy: RouteEndpoint[] = [];
  const degraded: RouteEndpoint[] = [];
  for (const locality of arr(assignment?.['endpoints'])) {
    for (const raw of arr(obj(locality)?.['lb_endpoints'])) {
      const lb = obj(raw);
      const sa = obj(obj(obj(lb?.['endpoint'])?.['address'])?.['socket_address']);
      const host = str(sa?.['address']);
      const port = num(sa?.['port_value']);
      if (!host || port === undefined || port < 1 || port > 65_535) continue;
      const health = lb?.['health_status'] ?? 'UNKNOWN';
      if (HEALTHY.has(health as string)) healthy.push({ host, port });
      else if (DEGRADED.has(health as string)) degraded.push({ host, port });
    }
  }
  let endpoints = healthy.length > 0 ? healthy : degraded;
  // Envoy's LOGICAL_DNS uses only the first endpoint (resolving its name at connect time).
  if (type === 'LOGICAL_DNS' && endpoints.length > 1) endpoints = endpoints.slice(0, 1);
  return { name, type, connectTimeoutMs, endpoints, dnsFamily, unsupported };
}
