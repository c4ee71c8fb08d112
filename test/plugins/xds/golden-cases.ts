/**
 * The golden cases of the mesh-gateway xDS resources (spec §9, "(a) Test scenarios" xDS list),
 * shared by golden.test.ts and codec.test.ts. An inert module: it defines data only.
 *
 * Each case builds a state store, reads the gateway's snapshot from it and states the exact
 * resources expected. The expected objects are written out here (with tiny local helpers for the
 * repeated pieces) — they do not use the builders under test.
 */
import type { XdsResource, XdsResources } from '../../../src/core/types.js';
import { readMeshGatewaySnapshot, type MeshGatewaySnapshot } from '../../../src/plugins/xds/snapshot.js';
import { fedGateway, gatewayRegistration, serverRegistration, StoreFixture, WANFED_META } from './fixtures.js';

/** One golden case. */
export interface GoldenCase {
  readonly name: string;
  readonly snapshot: MeshGatewaySnapshot;
  readonly expected: XdsResources;
}

const L = 'type.googleapis.com/envoy.config.listener.v3.Listener';
const C = 'type.googleapis.com/envoy.config.cluster.v3.Cluster';
const E = 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment';
const TCP = 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy';

const tlsInspector = [
  { name: 'envoy.filters.listener.tls_inspector', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector' } },
];

function chain(sni: string, cluster: string, statPrefix: string): Record<string, unknown> {
  return { filter_chain_match: { server_names: [sni] }, filters: [{ name: 'envoy.filters.network.tcp_proxy', typed_config: { '@type': TCP, stat_prefix: statPrefix, cluster } }] };
}

const catchAll = {
  filters: [
    { name: 'envoy.filters.network.sni_cluster', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.sni_cluster.v3.SniCluster' } },
    { name: 'envoy.filters.network.tcp_proxy', typed_config: { '@type': TCP, stat_prefix: 'mesh_gateway_local.default', cluster: '' } },
  ],
};

function listener(ip: string, port: number, chains: Record<string, unknown>[]): XdsResource {
  return { '@type': L, name: `default:${ip}:${port}`, address: { socket_address: { address: ip, port_value: port } }, listener_filters: tlsInspector, filter_chains: chains };
}

function eds(name: string): XdsResource {
  return {
    '@type': C,
    name,
    type: 'EDS',
    eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 'V3' } },
    connect_timeout: { seconds: 5 },
    outlier_detection: {},
  };
}

function ep(address: string, port: number, health: string): Record<string, unknown> {
  return { endpoint: { address: { socket_address: { address, port_value: port } } }, health_status: health };
}

function cla(name: string, lbEndpoints: Record<string, unknown>[]): XdsResource {
  return { '@type': E, name, cluster_name: name, endpoints: lbEndpoints.length === 0 ? [] : [{ lb_endpoints: lbEndpoints }] };
}

const localGw = (meta: Record<string, string> = { ...WANFED_META }) =>
  gatewayRegistration({ node: 'mesh-gateway', datacenter: 'dc1', address: '1.2.3.4', port: 8443, wan: '198.18.0.1:443', meta });

function snapshotOf(f: StoreFixture, domain = 'consul'): MeshGatewaySnapshot {
  const r = readMeshGatewaySnapshot(f.store, { datacenter: 'dc1', domain, proxyId: 'mesh-gateway' });
  if (!r.value) throw new Error(`fixture gateway not found: ${r.lookup.message ?? ''}`);
  return r.value;
}

/** local dc1, remote dc2 (catalog) / dc4 / dc6 (federation states), servers node1 and node2. */
function federationControlPlane(): GoldenCase {
  const f = new StoreFixture();
  // Written out of order on purpose: the output is sorted by datacenter, then node.
  f.register(serverRegistration('node2', 'dc1', '10.10.1.2'));
  f.federationState('dc6', [fedGateway('dc6-gw1', 'dc6', '198.18.1.6:443', 3), fedGateway('dc6-gw2', 'dc6', '198.18.1.5:443', 3)]);
  f.register(localGw());
  f.register(gatewayRegistration({ node: 'dc2-gw2', datacenter: 'dc2', address: '10.2.0.2', port: 8443, wan: '198.18.1.2:443', meta: { ...WANFED_META } }));
  f.register(gatewayRegistration({ node: 'dc2-gw1', datacenter: 'dc2', address: '10.2.0.1', port: 8443, wan: '198.18.1.1:443', meta: { ...WANFED_META } }));
  f.federationState('dc4', [fedGateway('dc4-gw1', 'dc4', '198.18.1.3:443', 4), fedGateway('dc4-gw2', 'dc4', '198.18.1.4:443', 4)]);
  f.federationState('dc1', [fedGateway('mesh-gateway', 'dc1', '198.18.0.1:443', 5)]);
  f.register(serverRegistration('node1', 'dc1', '10.10.1.1'));
  return {
    name: 'mesh-gateway-using-federation-control-plane',
    snapshot: snapshotOf(f),
    expected: {
      listeners: [
        {
          '@type': L,
          name: 'default:1.2.3.4:8443',
          address: { socket_address: { address: '1.2.3.4', port_value: 8443 } },
          listener_filters: [
            { name: 'envoy.filters.listener.tls_inspector', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector' } },
          ],
          filter_chains: [
            {
              filter_chain_match: { server_names: ['*.server.dc2.consul'] },
              filters: [{ name: 'envoy.filters.network.tcp_proxy', typed_config: { '@type': TCP, stat_prefix: 'mesh_gateway_remote.default.dc2', cluster: 'server.dc2.consul' } }],
            },
            {
              filter_chain_match: { server_names: ['*.server.dc4.consul'] },
              filters: [{ name: 'envoy.filters.network.tcp_proxy', typed_config: { '@type': TCP, stat_prefix: 'mesh_gateway_remote.default.dc4', cluster: 'server.dc4.consul' } }],
            },
            {
              filter_chain_match: { server_names: ['*.server.dc6.consul'] },
              filters: [{ name: 'envoy.filters.network.tcp_proxy', typed_config: { '@type': TCP, stat_prefix: 'mesh_gateway_remote.default.dc6', cluster: 'server.dc6.consul' } }],
            },
            {
              filter_chain_match: { server_names: ['node1.server.dc1.consul'] },
              filters: [
                { name: 'envoy.filters.network.tcp_proxy', typed_config: { '@type': TCP, stat_prefix: 'mesh_gateway_local_server.default.dc1', cluster: 'node1.server.dc1.consul' } },
              ],
            },
            {
              filter_chain_match: { server_names: ['node2.server.dc1.consul'] },
              filters: [
                { name: 'envoy.filters.network.tcp_proxy', typed_config: { '@type': TCP, stat_prefix: 'mesh_gateway_local_server.default.dc1', cluster: 'node2.server.dc1.consul' } },
              ],
            },
            {
              filters: [
                { name: 'envoy.filters.network.sni_cluster', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.sni_cluster.v3.SniCluster' } },
                { name: 'envoy.filters.network.tcp_proxy', typed_config: { '@type': TCP, stat_prefix: 'mesh_gateway_local.default', cluster: '' } },
              ],
            },
          ],
        },
      ],
      clusters: [
        eds('node1.server.dc1.consul'),
        eds('node2.server.dc1.consul'),
        eds('server.dc1.consul'),
        eds('server.dc2.consul'),
        eds('server.dc4.consul'),
        eds('server.dc6.consul'),
      ],
      endpoints: [
        cla('node1.server.dc1.consul', [ep('10.10.1.1', 8300, 'UNKNOWN')]),
        cla('node2.server.dc1.consul', [ep('10.10.1.2', 8300, 'UNKNOWN')]),
        cla('server.dc1.consul', [ep('10.10.1.1', 8300, 'UNKNOWN'), ep('10.10.1.2', 8300, 'UNKNOWN')]),
        cla('server.dc2.consul', [ep('198.18.1.1', 443, 'HEALTHY'), ep('198.18.1.2', 443, 'HEALTHY')]),
        cla('server.dc4.consul', [ep('198.18.1.3', 443, 'HEALTHY'), ep('198.18.1.4', 443, 'HEALTHY')]),
        cla('server.dc6.consul', [ep('198.18.1.5', 443, 'HEALTHY'), ep('198.18.1.6', 443, 'HEALTHY')]),
      ],
      routes: [],
    },
  };
}

/** dc2 known from the catalog (older) and from its federation state (newer): the federation state wins. */
function newerInFederationStates(): GoldenCase {
  const f = new StoreFixture();
  f.register(localGw());
  f.register(serverRegistration('node1', 'dc1', '10.10.1.1'));
  f.register(gatewayRegistration({ node: 'dc2-old', datacenter: 'dc2', address: '10.2.0.1', port: 8443, wan: '198.18.1.1:443', meta: { ...WANFED_META } })); // index 3
  f.skipTo(10);
  f.federationState('dc2', [fedGateway('dc2-new', 'dc2', '198.18.2.1:443', 9), fedGateway('dc2-new2', 'dc2', '198.18.2.2:443', 9)]);
  return {
    name: 'mesh-gateway-newer-information-in-federation-states',
    snapshot: snapshotOf(f),
    expected: {
      listeners: [
        listener('1.2.3.4', 8443, [
          chain('*.server.dc2.consul', 'server.dc2.consul', 'mesh_gateway_remote.default.dc2'),
          chain('node1.server.dc1.consul', 'node1.server.dc1.consul', 'mesh_gateway_local_server.default.dc1'),
          catchAll,
        ]),
      ],
      clusters: [eds('node1.server.dc1.consul'), eds('server.dc1.consul'), eds('server.dc2.consul')],
      endpoints: [
        cla('node1.server.dc1.consul', [ep('10.10.1.1', 8300, 'UNKNOWN')]),
        cla('server.dc1.consul', [ep('10.10.1.1', 8300, 'UNKNOWN')]),
        cla('server.dc2.consul', [ep('198.18.2.1', 443, 'HEALTHY'), ep('198.18.2.2', 443, 'HEALTHY')]),
      ],
      routes: [],
    },
  };
}

/** dc2's federation state is older than the catalog's view: the catalog wins. */
function olderInFederationStates(): GoldenCase {
  const f = new StoreFixture();
  f.register(localGw());
  f.register(serverRegistration('node1', 'dc1', '10.10.1.1'));
  f.federationState('dc2', [fedGateway('dc2-stale', 'dc2', '198.18.2.1:443', 1)]);
  f.skipTo(20);
  f.register(gatewayRegistration({ node: 'dc2-gw1', datacenter: 'dc2', address: '10.2.0.1', port: 8443, wan: '198.18.1.1:443', meta: { ...WANFED_META } })); // index 21
  return {
    name: 'mesh-gateway-older-information-in-federation-states',
    snapshot: snapshotOf(f),
    expected: {
      listeners: [
        listener('1.2.3.4', 8443, [
          chain('*.server.dc2.consul', 'server.dc2.consul', 'mesh_gateway_remote.default.dc2'),
          chain('node1.server.dc1.consul', 'node1.server.dc1.consul', 'mesh_gateway_local_server.default.dc1'),
          catchAll,
        ]),
      ],
      clusters: [eds('node1.server.dc1.consul'), eds('server.dc1.consul'), eds('server.dc2.consul')],
      endpoints: [
        cla('node1.server.dc1.consul', [ep('10.10.1.1', 8300, 'UNKNOWN')]),
        cla('server.dc1.consul', [ep('10.10.1.1', 8300, 'UNKNOWN')]),
        cla('server.dc2.consul', [ep('198.18.1.1', 443, 'HEALTHY')]),
      ],
      routes: [],
    },
  };
}

/** A gateway without the wanfed meta and nothing else: only the catch-all chain, no clusters. */
function noServices(): GoldenCase {
  const f = new StoreFixture();
  f.register(localGw({}));
  return {
    name: 'mesh-gateway-no-services',
    snapshot: snapshotOf(f),
    expected: { listeners: [listener('1.2.3.4', 8443, [catchAll])], clusters: [], endpoints: [], routes: [] },
  };
}

/** A wanfed gateway alone (no servers, no other datacenter): the local server cluster is empty. */
function wanfedNoServers(): GoldenCase {
  const f = new StoreFixture();
  f.register(localGw());
  return {
    name: 'mesh-gateway-wanfed-no-servers',
    snapshot: snapshotOf(f, 'consul.'),
    expected: {
      listeners: [listener('1.2.3.4', 8443, [catchAll])],
      clusters: [eds('server.dc1.consul')],
      endpoints: [cla('server.dc1.consul', [])],
      routes: [],
    },
  };
}

/** dc3's gateways have hostnames: a LOGICAL_DNS cluster to the first (sorted) hostname, no EDS for it. */
function hostnameGateways(): GoldenCase {
  const f = new StoreFixture();
  f.register(localGw());
  f.register(serverRegistration('node1', 'dc1', '10.10.1.1'));
  f.federationState('dc3', [fedGateway('dc3-gw2', 'dc3', 'gw-b.dc3.example.com:443', 3), fedGateway('dc3-gw1', 'dc3', 'gw-a.dc3.example.com:443', 3)]);
  f.register(gatewayRegistration({ node: 'dc2-gw1', datacenter: 'dc2', address: '10.2.0.1', port: 8443, wan: '198.18.1.1:443', meta: { ...WANFED_META } }));
  f.register(gatewayRegistration({ node: 'dc2-gw2', datacenter: 'dc2', address: '10.2.0.2', port: 8443, wan: '198.18.1.2:443', meta: { ...WANFED_META }, status: 'critical' }));
  return {
    name: 'mesh-gateway-hostname-gateways',
    snapshot: snapshotOf(f, 'example'),
    expected: {
      listeners: [
        listener('1.2.3.4', 8443, [
          chain('*.server.dc2.example', 'server.dc2.example', 'mesh_gateway_remote.default.dc2'),
          chain('*.server.dc3.example', 'server.dc3.example', 'mesh_gateway_remote.default.dc3'),
          chain('node1.server.dc1.example', 'node1.server.dc1.example', 'mesh_gateway_local_server.default.dc1'),
          catchAll,
        ]),
      ],
      clusters: [
        eds('node1.server.dc1.example'),
        eds('server.dc1.example'),
        eds('server.dc2.example'),
        {
          '@type': C,
          name: 'server.dc3.example',
          type: 'LOGICAL_DNS',
          connect_timeout: { seconds: 5 },
          outlier_detection: {},
          load_assignment: { cluster_name: 'server.dc3.example', endpoints: [{ lb_endpoints: [ep('gw-a.dc3.example.com', 443, 'HEALTHY')] }] },
          dns_lookup_family: 'V4_ONLY',
          dns_refresh_rate: { seconds: 10 },
        },
      ],
      endpoints: [
        cla('node1.server.dc1.example', [ep('10.10.1.1', 8300, 'UNKNOWN')]),
        cla('server.dc1.example', [ep('10.10.1.1', 8300, 'UNKNOWN')]),
        cla('server.dc2.example', [ep('198.18.1.1', 443, 'HEALTHY'), ep('198.18.1.2', 443, 'UNHEALTHY')]),
      ],
      routes: [],
    },
  };
}

/** Every golden case (built fresh on each call). */
export function goldenCases(): GoldenCase[] {
  return [federationControlPlane(), newerInFederationStates(), olderInFederationStates(), noServices(), wanfedNoServers(), hostnameGateways()];
}
