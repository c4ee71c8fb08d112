/**
 * The SniProxy process of the gateway bench (bench/gateway.ts spawns it): only the proxy and its
 * routing resources are loaded, so its RSS and CPU are the gateway's, not the bench's (no TLS
 * certificate code, no test helpers).
 *
 *   node dist/bench/gateway-child.js <upstreamPort> <serverName>
 *
 * Routes `<serverName>` through an Envoy v3 listener (filter chain matching the server name →
 * tcp_proxy) to an EDS cluster whose one endpoint is 127.0.0.1:<upstreamPort>. Prints
 * `LISTEN <port>`; a `stats` line on stdin prints `STATS <json>`, `mem` prints
 * `MEM <process.memoryUsage() json>`; SIGTERM exits (so that
 * `--cpu-prof` writes its profile). MESHFED_BENCH_DATA_PLANE=native|handles|streams picks the data plane
 * (default: the proxy's own choice); MESHFED_BENCH_NATIVE_ROUTING=0 makes the native engine hand every
 * connection to TypeScript (`nativeRouting: false`), to measure that path.
 */
import { SniProxy } from '../src/plugins/mesh-gateway/proxy.js';
import type { MeshGatewayResources } from '../src/plugins/mesh-gateway/routing.js';

/** Resources a Consul-style control plane would send for one routed server name. */
function benchResources(upstreamPort: number, serverName: string): MeshGatewayResources {
  const cluster = 'bench.upstream';
  return {
    listeners: [
      {
        '@type': 'type.googleapis.com/envoy.config.listener.v3.Listener',
        name: 'default:127.0.0.1:8443',
        address: { socket_address: { address: '127.0.0.1', port_value: 8443 } },
        listener_filters: [{ name: 'envoy.filters.listener.tls_inspector', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector' } }],
        filter_chains: [
          {
            filter_chain_match: { server_names: [serverName] },
            filters: [
              {
                name: 'envoy.filters.network.tcp_proxy',
                typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', stat_prefix: 'bench_gateway', cluster },
              },
            ],
          },
        ],
      },
    ],
    clusters: [{ '@type': 'type.googleapis.com/envoy.config.cluster.v3.Cluster', name: cluster, type: 'EDS', connect_timeout: { seconds: 5 }, eds_cluster_config: { eds_config: { ads: {} } } }],
    endpoints: [
      {
        '@type': 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
        cluster_name: cluster,
        endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: upstreamPort } } }, health_status: 'HEALTHY' }] }],
      },
    ],
  };
}

async function main(): Promise<void> {
  const [, , portArg, serverName] = process.argv;
  if (!portArg || !serverName) throw new Error('usage: gateway-child.js <upstreamPort> <serverName>');
  const plane = process.env['MESHFED_BENCH_DATA_PLANE'];
  const proxy = new SniProxy({
    ...(plane === 'native' || plane === 'handles' || plane === 'streams' ? { dataPlane: plane } : {}),
    ...(process.env['MESHFED_BENCH_NATIVE_ROUTING'] === '0' ? { nativeRouting: false } : {}),
  });
  process.stderr.write(`gateway child: ${proxy.dataPlane} data plane\n`);
  proxy.update(benchResources(Number(portArg), serverName));
  await proxy.listen('127.0.0.1', 0);
  process.stdout.write(`LISTEN ${proxy.address.port}\n`);
  let buf = '';
  process.stdin.on('data', (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i).trim();
      buf = buf.slice(i + 1);
      if (line === 'stats') process.stdout.write(`STATS ${JSON.stringify(proxy.stats())}\n`);
      else if (line === 'mem') process.stdout.write(`MEM ${JSON.stringify(process.memoryUsage())}\n`);
    }
  });
  process.once('SIGTERM', () => process.exit(0));
}

await main();
