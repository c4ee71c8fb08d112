/**
 * Envoy v3 resources of a mesh gateway that exposes servers (spec §9.3–§9.5), as plain objects.
 *
 * **Representation** (a contract the gateway data plane consumes): every resource is a plain JS
 * object using the **protobuf field names** (snake_case, as `@grpc/proto-loader` with
 * `keepCase: true` produces them), with `'@type'` = its full type URL and `name`. Nested `Any`
 * values (`typed_config`) are objects with their own `'@type'`. Enums are their value names
 * (`'EDS'`, `'V3'`), durations `{ seconds, nanos? }`. A `ClusterLoadAssignment` has no `name`
 * field in protobuf: it carries both `name` (for {@link XdsResource}) and `cluster_name`, and
 * `name` is dropped when it is encoded.
 *
 * Everything here is pure: same snapshot in, same objects out (filter chains ordered by sorted
 * datacenter, then sorted node; each resource list sorted by name).
 */
import type { XdsResource, XdsResources } from '../../core/types.js';
import type { MeshGatewaySnapshot } from './snapshot.js';

/** Type URL prefix of every packed resource. */
export const TYPE_URL_PREFIX = 'type.googleapis.com/';

/** Envoy v3 resource type URLs. */
export const TypeUrl = Object.freeze({
  /** LDS. */
  Listener: 'type.googleapis.com/envoy.config.listener.v3.Listener',
  /** CDS. */
  Cluster: 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
  /** EDS. */
  ClusterLoadAssignment: 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
  /** RDS. */
  RouteConfiguration: 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration',
  /** Typed config of the TLS inspector listener filter. */
  TlsInspector: 'type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector',
  /** Typed config of the TCP proxy network filter. */
  TcpProxy: 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy',
  /** Typed config of the SNI cluster network filter. */
  SniCluster: 'type.googleapis.com/envoy.extensions.filters.network.sni_cluster.v3.SniCluster',
} as const);

/** Envoy filter names. */
export const FilterName = Object.freeze({
  /** Listener filter reading the TLS ClientHello (SNI) without terminating TLS. */
  TlsInspector: 'envoy.filters.listener.tls_inspector',
  /** Network filter proxying TCP to a cluster. */
  TcpProxy: 'envoy.filters.network.tcp_proxy',
  /** Network filter that picks the TCP proxy's cluster from the SNI. */
  SniCluster: 'envoy.filters.network.sni_cluster',
} as const);

/** Which {@link XdsResources} list holds each resource type URL, in push order (CDS, EDS, LDS, RDS). */
export const RESOURCE_KINDS: readonly { readonly kind: keyof XdsResources; readonly typeUrl: string }[] = Object.freeze([
  Object.freeze({ kind: 'clusters' as const, typeUrl: TypeUrl.Cluster }),
  Object.freeze({ kind: 'endpoints' as const, typeUrl: TypeUrl.ClusterLoadAssignment }),
  Object.freeze({ kind: 'listeners' as const, typeUrl: TypeUrl.Listener }),
  Object.freeze({ kind: 'routes' as const, typeUrl: TypeUrl.RouteConfiguration }),
]);

/** Connect timeout of gateway clusters when the snapshot does not say (spec §9.4: 5 s). */
export const DEFAULT_CONNECT_TIMEOUT_MS = 5000;

/** DNS refresh rate of LOGICAL_DNS gateway clusters, seconds (spec §9.4). */
export const DNS_REFRESH_RATE_SECONDS = 10;

/** Name of the main bind address in listener names and stat prefixes. */
export const DEFAULT_BIND_NAME = 'default';

/** Envoy endpoint health. */
export type EndpointHealth = 'UNKNOWN' | 'HEALTHY' | 'UNHEALTHY';

/** One upstream endpoint. */
export interface EndpointSpec {
  /** IP address or DNS name. */
  readonly host: string;
  /** Port. */
  readonly port: number;
  /** Health reported to Envoy. */
  readonly health: EndpointHealth;
}

/** A protobuf `Duration` for `ms` milliseconds (`nanos` only when not whole seconds). */
export function duration(ms: number): { seconds: number; nanos?: number } {
  const seconds = Math.floor(ms / 1000);
  const nanos = Math.round((ms - seconds * 1000) * 1e6);
  return nanos === 0 ? { seconds } : { seconds, nanos };
}

/** An `envoy.config.core.v3.Address` with a socket address. */
export function socketAddress(host: string, port: number): { socket_address: { address: string; port_value: number } } {
  return { socket_address: { address: host, port_value: port } };
}

/** A `tcp_proxy` network filter to `cluster` (`''` = chosen by a preceding `sni_cluster`). */
export function tcpProxyFilter(statPrefix: string, cluster: string): Record<string, unknown> {
  return { name: FilterName.TcpProxy, typed_config: { '@type': TypeUrl.TcpProxy, stat_prefix: statPrefix, cluster } };
}

/** The `sni_cluster` network filter. */
export function sniClusterFilter(): Record<string, unknown> {
  return { name: FilterName.SniCluster, typed_config: { '@type': TypeUrl.SniCluster } };
}

/** A TLS-passthrough filter chain matching SNI `serverName` (exact, or `*.`-prefixed wildcard) to `cluster`. */
export function sniFilterChain(serverName: string, cluster: string, statPrefix: string): Record<string, unknown> {
  return { filter_chain_match: { server_names: [serverName] }, filters: [tcpProxyFilter(statPrefix, cluster)] };
}

/** The catch-all chain: the SNI names the cluster (spec §9.3 item 5). */
export function sniCatchAllChain(statPrefix: string): Record<string, unknown> {
  return { filters: [sniClusterFilter(), tcpProxyFilter(statPrefix, '')] };
}

/** A listener with the TLS inspector and the given filter chains. */
export function gatewayListener(name: string, host: string, port: number, filterChains: readonly Record<string, unknown>[]): XdsResource {
  return {
    '@type': TypeUrl.Listener,
    name,
    address: socketAddress(host, port),
    listener_filters: [{ name: FilterName.TlsInspector, typed_config: { '@type': TypeUrl.TlsInspector } }],
    filter_chains: [...filterChains],
  };
}

function lbEndpoints(endpoints: readonly EndpointSpec[]): Record<string, unknown>[] {
  return endpoints.map((e) => ({ endpoint: { address: socketAddress(e.host, e.port) }, health_status: e.health }));
}

/** The `endpoints` field of a load assignment: one locality, or none when there are no endpoints. */
function localities(endpoints: readonly EndpointSpec[]): Record<string, unknown>[] {
  return endpoints.length === 0 ? [] : [{ lb_endpoints: lbEndpoints(endpoints) }];
}

/** A `ClusterLoadAssignment` (name = cluster name). */
export function loadAssignment(clusterName: string, endpoints: readonly EndpointSpec[]): XdsResource {
  return { '@type': TypeUrl.ClusterLoadAssignment, name: clusterName, cluster_name: clusterName, endpoints: localities(endpoints) };
}

/** An EDS cluster fed over ADS. */
export function edsCluster(name: string, connectTimeoutMs: number): XdsResource {
  return {
    '@type': TypeUrl.Cluster,
    name,
    type: 'EDS',
    eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 'V3' } },
    connect_timeout: duration(connectTimeoutMs),
    outlier_detection: {},
  };
}

/**
 * A LOGICAL_DNS cluster to one hostname endpoint (Envoy accepts exactly one endpoint in such a
 * cluster), IPv4 lookups, refreshed every 10 s.
 */
export function logicalDnsCluster(name: string, endpoint: EndpointSpec, connectTimeoutMs: number): XdsResource {
  return {
    '@type': TypeUrl.Cluster,
    name,
    type: 'LOGICAL_DNS',
    connect_timeout: duration(connectTimeoutMs),
    outlier_detection: {},
    load_assignment: { cluster_name: name, endpoints: localities([endpoint]) },
    dns_lookup_family: 'V4_ONLY',
    dns_refresh_rate: { seconds: DNS_REFRESH_RATE_SECONDS },
  };
}

/** `server.<dc>.<domain>`, or `<node>.server.<dc>.<domain>` with a node (spec §1.3). */
export function serverSni(datacenter: string, domain: string, node?: string): string {
  const base = `server.${datacenter}.${domain}`;
  return node === undefined || node === '' ? base : `${node}.${base}`;
}

const byName = (a: XdsResource, b: XdsResource): number => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/**
 * The Envoy resources of one mesh gateway (spec §9.3–§9.5). For a gateway registered with meta
 * `consul-wan-federation = "1"`:
 * - one listener `default:<ip>:<port>` with the TLS inspector and, in order: per remote
 *   datacenter (sorted) `*.server.<dc>.<domain>` → cluster `server.<dc>.<domain>` (stat prefix
 *   `mesh_gateway_remote.default.<dc>`); per local server (sorted) the exact
 *   `<node>.server.<localdc>.<domain>` → the cluster of that name (stat prefix
 *   `mesh_gateway_local_server.default.<localdc>`); the catch-all `sni_cluster` chain (stat prefix
 *   `mesh_gateway_local.default`);
 * - clusters `server.<dc>.<domain>` for every remote datacenter (EDS, or LOGICAL_DNS when its
 *   gateways have hostnames) and for the local one (EDS to every local server), plus one EDS
 *   cluster per local server;
 * - load assignments for every EDS cluster: remote gateways' WAN addresses, local servers' LAN
 *   address and service port (health UNKNOWN).
 *
 * Any other gateway gets the listener with only the catch-all chain and no clusters (the
 * service-mesh chains `*.<dc>.internal.<trust-domain>` are not built).
 */
export function buildResources(snapshot: MeshGatewaySnapshot): XdsResources {
  const { datacenter: localDc, domain, proxy } = snapshot;
  const timeout = snapshot.connectTimeoutMs;
  const chains: Record<string, unknown>[] = [];
  const clusters: XdsResource[] = [];
  const endpoints: XdsResource[] = [];
  const bind = DEFAULT_BIND_NAME;
  if (snapshot.wanFederation) {
    for (const remote of snapshot.remoteDatacenters) {
      const cluster = serverSni(remote.datacenter, domain);
      chains.push(sniFilterChain(`*.${cluster}`, cluster, `mesh_gateway_remote.${bind}.${remote.datacenter}`));
      const hostnames = remote.gateways.filter((g) => g.hostname);
      const first = hostnames[0];
      if (first !== undefined) {
        clusters.push(logicalDnsCluster(cluster, first, timeout));
      } else {
        clusters.push(edsCluster(cluster, timeout));
        endpoints.push(loadAssignment(cluster, remote.gateways));
      }
    }
    const servers: EndpointSpec[] = snapshot.localServers.map((s) => ({ host: s.host, port: s.port, health: 'UNKNOWN' }));
    snapshot.localServers.forEach((s, i) => {
      const name = serverSni(localDc, domain, s.node);
      chains.push(sniFilterChain(name, name, `mesh_gateway_local_server.${bind}.${localDc}`));
      clusters.push(edsCluster(name, timeout));
      endpoints.push(loadAssignment(name, [servers[i] as EndpointSpec]));
    });
    const local = serverSni(localDc, domain);
    clusters.push(edsCluster(local, timeout));
    endpoints.push(loadAssignment(local, servers));
  }
  chains.push(sniCatchAllChain(`mesh_gateway_local.${bind}`));
  const listener = gatewayListener(`${bind}:${proxy.address}:${proxy.port}`, proxy.address, proxy.port, chains);
  return { listeners: [listener], clusters: clusters.sort(byName), endpoints: endpoints.sort(byName), routes: [] };
}
