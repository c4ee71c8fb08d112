/**
 * The headline demo: three datacenters federated **through mesh gateways** on loopback.
 *
 * dc1 (primary), dc2 and dc3 each run one server and one built-in mesh gateway. The servers of
 * different datacenters never talk directly: WAN gossip and RPC ride TLS connections that the
 * gateways route by SNI. dc2 and dc3 know nothing but the address of dc1's gateway
 * (`primary_gateways`); they discover the rest through the primary (anti-entropy pushes each
 * datacenter's gateways to the primary, replication brings them back out).
 *
 *   node dist/examples/three-dc/main.js               # fixed ports, runs until Ctrl-C
 *   node dist/examples/three-dc/main.js --ephemeral --once   # free ports, exits when formed (CI)
 *
 * TLS material (a CA and one server certificate per datacenter, with the `<node>.server.<dc>.consul`
 * names gateways route by) is generated on the first run into `--data DIR` (default
 * `.meshfed-three-dc/` in the current directory) and reused afterwards.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Agent } from '../../src/index.js';
import { FederationTokens } from '../../src/plugins/federation/index.js';
import { GossipTokens } from '../../src/plugins/gossip/index.js';
import { HttpTokens } from '../../src/plugins/http/index.js';
import { loadAdsProtos, type MeshGateway } from '../../src/plugins/mesh-gateway/index.js';
import { StateTokens } from '../../src/plugins/state/index.js';
import { generateCa, type PemPair } from '../../src/plugins/tls/index.js';
import { XdsTokens } from '../../src/plugins/xds/index.js';
import { waitFor } from '../../src/testing/index.js';
import { startWanfedDatacenter, writeServerTls } from '../../src/testing/wanfed-datacenter.js';

const args = process.argv.slice(2);
const ephemeral = args.includes('--ephemeral');
const once = args.includes('--once');
const dataArg = args.indexOf('--data');
const dataDir = resolve(dataArg >= 0 ? (args[dataArg + 1] ?? '.') : ephemeral ? join(tmpdir(), `meshfed-three-dc-${process.pid}`) : '.meshfed-three-dc');

/** Gossip timings for one host (memberlist's defaults are for real networks). */
const FAST = { probe_interval: '500ms', probe_timeout: '250ms', gossip_interval: '100ms', push_pull_interval: '5s' };

const DCS = [
  { dc: 'dc1', node: 'server-1', http: 8501, grpc: 8511, gateway: 8443 },
  { dc: 'dc2', node: 'server-2', http: 8502, grpc: 8512, gateway: 9443 },
  { dc: 'dc3', node: 'server-3', http: 8503, grpc: 8513, gateway: 10443 },
] as const;

const log = (line: string): void => void process.stdout.write(`${line}\n`);

/** The CA, generated once into the data directory (server certificates follow in writeServerTls). */
async function demoCa(tlsDir: string): Promise<PemPair> {
  const caFile = join(tlsDir, 'consul-agent-ca.pem');
  const caKey = join(tlsDir, 'consul-agent-ca-key.pem');
  mkdirSync(tlsDir, { recursive: true });
  if (!existsSync(caFile) || !existsSync(caKey)) {
    log(`==> generating TLS material in ${tlsDir}`);
    const ca = await generateCa({ domain: 'consul', days: 365 });
    writeFileSync(caFile, ca.certPem);
    writeFileSync(caKey, ca.keyPem, { mode: 0o600 });
  }
  return { certPem: readFileSync(caFile, 'utf8'), keyPem: readFileSync(caKey, 'utf8') };
}

const servers: Agent[] = [];
const gateways: MeshGateway[] = [];
let stopping = false;

async function stopAll(): Promise<void> {
  if (stopping) return;
  stopping = true;
  log('==> stopping gateways and servers');
  for (const g of gateways.reverse()) await g.stop().catch(() => undefined);
  for (const s of servers.reverse()) await s.stop().catch(() => undefined);
  if (ephemeral) rmSync(dataDir, { recursive: true, force: true });
  log('==> stopped');
}

async function main(): Promise<void> {
  const tlsDir = join(dataDir, 'tls');
  const ca = await demoCa(tlsDir);
  const protos = loadAdsProtos();
  let primaryGateway = '';
  for (const [i, d] of DCS.entries()) {
    const port = (fixed: number): number => (ephemeral ? 0 : fixed);
    const { server: agent, gateway: gw } = await startWanfedDatacenter({
      dc: d.dc,
      node: d.node,
      tls: await writeServerTls(tlsDir, ca, d.dc, d.node),
      gatewayNode: `${d.dc}-gateway`,
      gatewayPort: port(d.gateway),
      // a secondary is told only where the primary's gateway is
      ...(i > 0 ? { primaryGateways: [primaryGateway] } : {}),
      config: {
        data_dir: join(dataDir, d.node),
        ports: { server: 0, serf_lan: 0, serf_wan: 0, http: port(d.http), grpc: port(d.grpc) },
        gossip_lan: FAST,
        gossip_wan: FAST,
        federation: { anti_entropy_interval: '1s' },
        retry_interval_wan: '1s',
      },
      protos,
    });
    servers.push(agent);
    gateways.push(gw);
    log(`==> ${d.dc}: server ${d.node} up (HTTP ${agent.services.get(HttpTokens.HttpApi).address}, ADS ${agent.services.get(XdsTokens.Server).address})${i > 0 ? `, primary_gateways = [${primaryGateway}]` : ''}`);
    log(`==> ${d.dc}: mesh gateway listening on ${gw.address}`);
    if (i === 0) primaryGateway = gw.address;
  }

  // Progress as the federation forms.
  const wanAlive = (): number[] => servers.map((s) => s.services.get(GossipTokens.Wan).members().filter((m) => m.status === 'alive').length);
  await waitFor(() => wanAlive().every((n) => n === 3), { timeoutMs: 60_000, intervalMs: 100, message: 'the WAN pool did not form through the gateways' });
  log(`==> WAN pool formed through the gateways: ${servers[0]?.services.get(GossipTokens.Wan).members().map((m) => m.name).sort().join(' ')}`);
  const fedStates = (s: Agent): string =>
    s.services
      .get(StateTokens.Store)
      .federationStateList()
      .value.map((f) => `${f.Datacenter}(${f.MeshGateways.length} gw)`)
      .join(' ');
  await waitFor(() => servers.every((s) => fedStates(s) === 'dc1(1 gw) dc2(1 gw) dc3(1 gw)'), { timeoutMs: 60_000, intervalMs: 100, message: 'federation states did not converge' });
  for (const s of servers) log(`==> ${s.config.datacenter}: federation states ${fedStates(s)}`);
  await waitFor(
    async () => {
      for (const s of servers) for (const d of DCS) if ((await s.services.get(FederationTokens.Locator).pickGateway(d.dc)) === '') return false;
      return true;
    },
    { timeoutMs: 60_000, intervalMs: 100, message: 'some server cannot pick a gateway for some datacenter' },
  );
  for (const s of servers) {
    const loc = s.services.get(FederationTokens.Locator).status();
    log(`==> ${s.config.datacenter}: gateway locator mode ${loc.mode}; local ${loc.local.map((e) => e.address).join(',') || '-'}; primary ${loc.primary.map((e) => `${e.address} (${e.source})`).join(', ')}`);
  }
  // A catalog read from dc3 about dc2: two hops through gateways.
  const dc3 = servers[2]?.services.get(HttpTokens.HttpApi).address as string;
  const nodes = await waitFor(
    async () => {
      const res = await fetch(`http://${dc3}/v1/catalog/nodes?dc=dc2`);
      return res.status === 200 ? ((await res.json()) as { Node: string }[]) : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 200, message: 'dc3 could not read dc2 through the gateways' },
  );
  log(`==> from dc3, GET /v1/catalog/nodes?dc=dc2 → ${(nodes ?? []).map((n) => n.Node).join(', ')}`);
  log('==> federation formed');
  if (once) return;
  const h = (i: number): string => servers[i]?.services.get(HttpTokens.HttpApi).address as string;
  log(`
Explore (Ctrl-C stops everything):
  node dist/src/cli/meshfed.js members -wan -http-addr ${h(0)}
  curl ${h(1)}/v1/internal/federation-states
  curl ${h(0)}/v1/internal/federation-states/mesh-gateways
  curl '${h(2)}/v1/catalog/nodes?dc=dc1'
  curl ${h(1)}/v1/meshfed/federation        # locator mode, lists and where each address came from
  curl ${h(0)}/v1/meshfed/xds               # gateways connected over ADS
`);
  await new Promise<void>((r) => {
    process.once('SIGINT', r);
    process.once('SIGTERM', r);
  });
}

main()
  .then(async () => {
    await stopAll();
    process.exit(0);
  })
  .catch(async (err: unknown) => {
    process.stderr.write(`three-dc example failed: ${err instanceof Error ? err.message : String(err)}\n`);
    await stopAll();
    process.exit(1);
  });
