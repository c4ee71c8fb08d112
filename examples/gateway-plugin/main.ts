/**
 * Runs the gateway-plugin example: one server of dc1 with the `mesh-gateway` plugin, so the agent
 * process also runs dc1's built-in mesh gateway (what `meshfed gateway -register -expose-servers`
 * does as a process of its own). It shows the gateway's catalog registration, opens a TLS
 * connection through the gateway to the server (SNI `s1.server.dc1.consul`, routed without
 * decryption, the server's certificate verified), and stops the agent (the gateway deregisters
 * first). Exits non-zero if any step is not what the plugin promises.
 *
 *   node dist/examples/gateway-plugin/main.js
 */
import tls from 'node:tls';
import { createAgent } from '../../src/index.js';
import { federation } from '../../src/plugins/federation/index.js';
import { gossip } from '../../src/plugins/gossip/index.js';
import { http, HttpTokens } from '../../src/plugins/http/index.js';
import { meshGateway } from '../../src/plugins/mesh-gateway/index.js';
import { router } from '../../src/plugins/router/index.js';
import { rpc } from '../../src/plugins/rpc/index.js';
import { state } from '../../src/plugins/state/index.js';
import { generateCa, generateCert, memoryTlsSource, tls as tlsPlugin } from '../../src/plugins/tls/index.js';
import { wanfed } from '../../src/plugins/wanfed/index.js';
import { xds } from '../../src/plugins/xds/index.js';
import { createMemoryLogger } from '../../src/testing/index.js';

const failures: string[] = [];
const check = (what: string, ok: boolean, detail: string): void => {
  process.stdout.write(`${ok ? 'ok  ' : 'FAIL'} ${what}: ${detail}\n`);
  if (!ok) failures.push(what);
};

const ca = await generateCa();
const cert = await generateCert({ ca, kind: 'server', datacenter: 'dc1', node: 's1' });
const logger = createMemoryLogger('warn');
const agent = await createAgent({
  config: {
    node_name: 's1',
    datacenter: 'dc1',
    primary_datacenter: 'dc1',
    server: true,
    bind_addr: '127.0.0.1',
    ports: { server: 0, serf_lan: 0, serf_wan: 0, http: 0, grpc: 0 },
    connect: { enabled: true, enable_mesh_gateway_wan_federation: true },
    tls: { ca_file: 'memory', cert_file: 'memory', key_file: 'memory', verify_incoming: true, verify_outgoing: true, verify_server_hostname: true },
  },
  host: { hostname: 's1', privateIPv4: '127.0.0.1' },
  logger,
  plugins: [
    tlsPlugin({ source: memoryTlsSource({ caPem: ca.certPem, certPem: cert.certPem, keyPem: cert.keyPem }) }),
    rpc(),
    http(),
    gossip(),
    router(),
    state(),
    federation(),
    xds(),
    wanfed(),
    // Listens on a free port of 127.0.0.1, registers through this agent's HTTP API and follows
    // this agent's ADS server.
    meshGateway({ address: '127.0.0.1:0', node: 's1-gateway' }),
  ],
});
await agent.start();

const gw = agent.status().plugins.find((p) => p.name === 'mesh-gateway')?.status ?? {};
process.stdout.write(`mesh-gateway status: ${JSON.stringify(gw)}\n`);
check('gateway running', gw['running'] === true, `${String(gw['address'])}, ${String(gw['data_plane'])} data plane`);

const httpAddr = String(agent.services.get(HttpTokens.HttpApi).address);
const reg = (await (await fetch(`http://${httpAddr}/v1/catalog/service/mesh-gateway`)).json()) as Array<{ Node: string; ServiceKind: string; ServiceMeta: Record<string, string>; ServiceTaggedAddresses: Record<string, { Address: string; Port: number }> }>;
const entry = reg[0];
check(
  'registered in the catalog',
  reg.length === 1 && entry?.ServiceKind === 'mesh-gateway' && entry.ServiceMeta['consul-wan-federation'] === '1' && `127.0.0.1:${entry.ServiceTaggedAddresses['lan']?.Port}` === gw['address'],
  entry ? `node ${entry.Node}, kind ${entry.ServiceKind}, meta ${JSON.stringify(entry.ServiceMeta)}, lan ${JSON.stringify(entry.ServiceTaggedAddresses['lan'])}, wan ${JSON.stringify(entry.ServiceTaggedAddresses['wan'])}` : 'no entry',
);

// Through the gateway to the server: the gateway peeks at the SNI and splices; the TLS session is
// between this client and the server (its certificate is checked against the CA here).
const [host, port] = String(gw['address']).split(':') as [string, string];
const cert1 = await new Promise<string>((resolve, reject) => {
  const s = tls.connect({ host, port: Number(port), servername: 's1.server.dc1.consul', ca: ca.certPem, ALPNProtocols: ['consul/rpc-multi'], cert: cert.certPem, key: cert.keyPem });
  s.once('secureConnect', () => {
    const subject = String(s.getPeerCertificate().subject.CN);
    s.end();
    resolve(`${subject}, ALPN ${String(s.alpnProtocol)}`);
  });
  s.once('error', reject);
});
check('TLS through the gateway', cert1.startsWith('server.dc1.consul') && cert1.endsWith('consul/rpc-multi'), cert1);

await agent.stop();
const deregFailed = logger.entries.some((e) => e.msg === 'deregistering the mesh gateway failed');
check('deregistered on stop', !deregFailed, deregFailed ? 'deregistration failed (see log)' : 'before the HTTP API closed');

process.stdout.write(failures.length === 0 ? 'gateway-plugin example: ok\n' : `gateway-plugin example: FAILED (${failures.join(', ')})\n`);
process.exitCode = failures.length === 0 ? 0 : 1;
