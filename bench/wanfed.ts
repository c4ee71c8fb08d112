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
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Agent } from '../src/index.js';
import { GossipTokens } from '../src/plugins/gossip/index.js';
import { HttpTokens } from '../src/plugins/http/index.js';
import { loadAdsProtos, matchChain, type MeshGateway } from '../src/plugins/mesh-gateway/index.js';
import { RpcTokens } from '../src/plugins/rpc/index.js';
import { generateCa } from '../src/plugins/tls/index.js';
import { waitFor } from '../src/testing/index.js';
import { startWanfedDatacenter, stopWanfedDatacenters, writeServerTls, type WanfedDatacenter } from '../src/testing/wanfed-datacenter.js';
import { machineBusyPercent } from './machine.js';

const quick = process.argv.includes('--quick');

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] as number;
}

async function main(): Promise<void> {
  process.stdout.write(`wanfed bench, node ${process.version}; machine busy before: ${await machineBusyPercent()}%\n`);
  const dir = mkdtempSync(join(tmpdir(), 'meshfed-bench-wanfed-'));
  const ca = await generateCa({ domain: 'consul', days: 2 });
  const protos = loadAdsProtos();
  const dcs: WanfedDatacenter[] = [];
  try {
    for (const [i, d] of [
      { dc: 'dc1', node: 'bob' },
      { dc: 'dc2', node: 'betty' },
    ].entries()) {
      dcs.push(await startWanfedDatacenter({ dc: d.dc, node: d.node, tls: await writeServerTls(dir, ca, d.dc, d.node), protos, ...(i > 0 ? { primaryGateways: [dcs[0]?.gateway.address as string] } : {}) }));
    }
    const servers = dcs.map((d) => d.server);
    const gateways = dcs.map((d) => d.gateway);
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
    await stopWanfedDatacenters(dcs);
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
