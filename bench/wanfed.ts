/**
 * WAN federation through mesh gateways, end to end (issue 7):
 *
 * 1. `Status.Ping` from dc2's server to dc1's server through two built-in gateways (dc2's, then
 *    dc1's: TLS with SNI `bob.server.dc1.consul`, ALPN `consul/rpc-multi`) against the same call
 *    inside dc1 (dc1's server to itself over its pooled TLS session). Target: p50 ≤ 3×.
 * 2. Config change → applied on the gateway: a new server registered as service `consul` in dc1
 *    until dc1's gateway routes its SNI (`<node>.server.dc1.consul` in its table, via ADS).
 *    Target: p99 < 100 ms.
 *
 *   node dist/bench/wanfed.js [--quick]
 *
 * Both datacenters, both gateways and the clients run in this one process on 127.0.0.1, so the
 * ratios matter, not the absolute times.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createAgent, silentLogger, type Agent } from '../src/index.js';
import { federation } from '../src/plugins/federation/index.js';
import { gossip, GossipTokens } from '../src/plugins/gossip/index.js';
import { http, HttpTokens } from '../src/plugins/http/index.js';
import { loadAdsProtos, matchChain, MeshGateway } from '../src/plugins/mesh-gateway/index.js';
import { router } from '../src/plugins/router/index.js';
import { rpc, RpcTokens } from '../src/plugins/rpc/index.js';
import { state } from '../src/plugins/state/index.js';
import { generateCa, generateCert, tls } from '../src/plugins/tls/index.js';
import { wanfed } from '../src/plugins/wanfed/index.js';
import { xds, XdsTokens } from '../src/plugins/xds/index.js';
import { waitFor } from '../src/testing/index.js';
import { machineBusyPercent } from './machine.js';

const quick = process.argv.includes('--quick');
const FAST = { probe_interval: '200ms', probe_timeout: '100ms', gossip_interval: '50ms', push_pull_interval: '2s' };

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] as number;
}

async function main(): Promise<void> {
  process.stdout.write(`wanfed bench, node ${process.version}; machine busy before: ${await machineBusyPercent()}%\n`);
  const dir = mkdtempSync(join(tmpdir(), 'meshfed-bench-wanfed-'));
  const ca = await generateCa({ domain: 'consul', days: 2 });
  writeFileSync(join(dir, 'ca.pem'), ca.certPem);
  const protos = loadAdsProtos();
  const servers: Agent[] = [];
  const gateways: MeshGateway[] = [];
  let primaryGateway = '';
  try {
    for (const [i, d] of [
      { dc: 'dc1', node: 'bob' },
      { dc: 'dc2', node: 'betty' },
    ].entries()) {
      const cert = await generateCert({ ca, kind: 'server', datacenter: d.dc, domain: 'consul', node: d.node, days: 2 });
      writeFileSync(join(dir, `${d.node}.pem`), cert.certPem);
      writeFileSync(join(dir, `${d.node}-key.pem`), cert.keyPem);
      const agent = await createAgent({
        config: {
          node_name: d.node,
          datacenter: d.dc,
          primary_datacenter: 'dc1',
          server: true,
          bind_addr: '127.0.0.1',
          ports: { server: 0, serf_lan: 0, serf_wan: 0, http: 0, grpc: 0 },
          gossip_lan: FAST,
          gossip_wan: FAST,
          connect: { enabled: true, enable_mesh_gateway_wan_federation: true },
          tls: { ca_file: join(dir, 'ca.pem'), cert_file: join(dir, `${d.node}.pem`), key_file: join(dir, `${d.node}-key.pem`), verify_incoming: true, verify_outgoing: true, verify_server_hostname: true },
          federation: { anti_entropy_interval: '0s', replication_rate: 0 },
          retry_interval_wan: '500ms',
          ...(i > 0 ? { primary_gateways: [primaryGateway], primary_gateways_interval: '1s' } : {}),
        },
        logger: silentLogger(),
        plugins: [tls(), rpc(), http(), gossip(), router(), state(), federation(), xds(), wanfed()],
      });
      await agent.start();
      servers.push(agent);
      const gw = new MeshGateway({
        node: `${d.node}-gw`,
        address: { host: '127.0.0.1', port: 0 },
        exposeServers: true,
        httpAddr: agent.services.get(HttpTokens.HttpApi).address as string,
        adsServers: [agent.services.get(XdsTokens.Server).address as string],
        logger: silentLogger(),
        protos,
      });
      await gw.start();
      gateways.push(gw);
      if (i === 0) primaryGateway = gw.address;
    }
    const [s1, s2] = servers as [Agent, Agent];
    await waitFor(() => servers.every((s) => s.services.get(GossipTokens.Wan).members().filter((m) => m.status === 'alive').length === 2), { timeoutMs: 60_000, message: 'WAN pool' });
    const s1Rpc = `127.0.0.1:${s1.services.get(RpcTokens.Listener).address?.split(':').pop()}`;
    const target = { datacenter: 'dc1', node: 'bob', address: s1Rpc };
    // warm both paths (sessions, JIT), then interleave
    await waitFor(async () => {
      await s2.services.get(RpcTokens.Pool).ping(target);
      return true;
    }, { timeoutMs: 30_000, message: 'cross-DC ping never succeeded' });
    const rounds = quick ? 3 : 5;
    const per = quick ? 300 : 1000;
    const local: number[] = [];
    const cross: number[] = [];
    for (let r = 0; r < rounds + 1; r++) {
      for (const [pool, out] of [
        [s1.services.get(RpcTokens.Pool), local],
        [s2.services.get(RpcTokens.Pool), cross],
      ] as const) {
        for (let k = 0; k < per; k++) {
          const t0 = process.hrtime.bigint();
          await pool.ping(target);
          if (r > 0) out.push(Number(process.hrtime.bigint() - t0) / 1e6);
        }
      }
    }
    const ratio = pct(cross, 50) / pct(local, 50);
    process.stdout.write(
      `\n## Status.Ping dc2 → dc1 through two gateways vs inside dc1 (${cross.length} calls each, interleaved, after warm-up)\n\n` +
        `| path | p50 ms | p99 ms |\n|---|---|---|\n| inside dc1 (pooled TLS session) | ${pct(local, 50).toFixed(3)} | ${pct(local, 99).toFixed(3)} |\n` +
        `| dc2 → gw2 → gw1 → dc1 | ${pct(cross, 50).toFixed(3)} | ${pct(cross, 99).toFixed(3)} |\n\n` +
        `p50 ratio: **${ratio.toFixed(2)}×** (target ≤ 3×: ${ratio <= 3 ? 'met' : 'MISSED'})\n`,
    );

    // config change → applied on the gateway
    const gw1 = gateways[0] as MeshGateway;
    const api = s1.services.get(HttpTokens.HttpApi).address as string;
    const samples: number[] = [];
    const n = quick ? 15 : 40;
    for (let i = 0; i < n; i++) {
      const node = `extra-${i}`;
      const sni = `${node}.server.dc1.consul`;
      const t0 = process.hrtime.bigint();
      const res = await fetch(`http://${api}/v1/catalog/register`, {
        method: 'PUT',
        body: JSON.stringify({ Node: node, Address: '127.0.0.1', Service: { ID: 'consul', Service: 'consul', Port: 8300 + i } }),
      });
      if (res.status !== 200) throw new Error(`register ${node}: ${res.status}`);
      for (;;) {
        const chain = matchChain(gw1.proxy.table, sni);
        if (chain && chain.cluster === sni) break;
        if (Number(process.hrtime.bigint() - t0) > 10e9) throw new Error(`${sni} never reached the gateway`);
        await new Promise((r) => setImmediate(r));
      }
      samples.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    process.stdout.write(
      `\n## Config change → applied on the gateway (new server registered in dc1 until gw1 routes its SNI; ${n} samples)\n\n` +
        `p50 ${pct(samples, 50).toFixed(1)} ms, p99 ${pct(samples, 99).toFixed(1)} ms, max ${Math.max(...samples).toFixed(1)} ms (target p99 < 100 ms: ${pct(samples, 99) < 100 ? 'met' : 'MISSED'})\n`,
    );
  } finally {
    for (const g of gateways) await g.stop().catch(() => undefined);
    for (const s of servers.reverse()) await s.stop().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
  process.stdout.write(`\nmachine busy after: ${await machineBusyPercent()}%\n`);
}

void main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`wanfed bench failed: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  },
);
