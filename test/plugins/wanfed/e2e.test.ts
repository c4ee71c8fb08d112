/**
 * Consul's TestServer_JoinWAN_viaMeshGateway with real meshfed gateways: three datacenters, one
 * server and one built-in gateway each; servers of different datacenters reach each other only
 * through gateways (asserted on every server's RPC port); the WAN pool converges; every locator
 * can pick gateways for every datacenter; catalog reads cross every pair of datacenters.
 * The secondaries are configured with nothing but the primary's gateway (case-wanfed-gw).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Stage, type Agent, type AgentPlugin } from '../../../src/index.js';
import { Alpn } from '../../../src/core/protocol.js';
import { FederationTokens } from '../../../src/plugins/federation/index.js';
import { GossipTokens } from '../../../src/plugins/gossip/index.js';
import { HttpTokens } from '../../../src/plugins/http/index.js';
import { loadAdsProtos, type MeshGateway } from '../../../src/plugins/mesh-gateway/index.js';
import { RpcTokens } from '../../../src/plugins/rpc/index.js';
import { StateTokens } from '../../../src/plugins/state/index.js';
import { generateCa } from '../../../src/plugins/tls/index.js';
import { WanfedTokens } from '../../../src/plugins/wanfed/index.js';
import { createMemoryLogger, waitFor } from '../../../src/testing/index.js';
import { startGatewayFor, startWanfedDatacenter, writeServerTls } from '../../../src/testing/wanfed-datacenter.js';

const DCS = [
  { dc: 'dc1', node: 'bob', serverIp: '127.0.0.11', gatewayIp: '127.0.0.21' },
  { dc: 'dc2', node: 'betty', serverIp: '127.0.0.12', gatewayIp: '127.0.0.22' },
  { dc: 'dc3', node: 'bonnie', serverIp: '127.0.0.13', gatewayIp: '127.0.0.23' },
] as const;
const GATEWAY_IPS = new Set<string>(DCS.map((d) => d.gatewayIp));

/** Records every connection a server's RPC port dispatches, with its remote address (passes it on). */
function acceptRecorder(seen: { key: string | number; from: string }[]): AgentPlugin {
  return {
    name: 'accept-recorder',
    apply({ hooks }) {
      for (const key of [Alpn.RpcMultiplexV2, Alpn.RpcConsul, Alpn.WanGossipPacket, Alpn.WanGossipStream, Alpn.RpcGRPC, 0, 4, 8]) {
        hooks.onRpcAccept.for(key).tap({ stage: Stage.FIRST }, (_conn, info) => {
          seen.push({ key, from: info.remoteAddress.replace(/:\d+$/, '').replace(/^::ffff:/, '') });
          return undefined;
        });
      }
    },
  };
}

describe('WAN federation through mesh gateways (TestServer_JoinWAN_viaMeshGateway, case-wanfed-gw)', () => {
  let dir: string;
  const servers: Agent[] = [];
  const gateways: MeshGateway[] = [];
  const retired: MeshGateway[] = [];
  const accepted: { key: string | number; from: string }[][] = [];
  const protos = loadAdsProtos();

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'meshfed-wanfed-e2e-'));
    const ca = await generateCa({ domain: 'consul', days: 2 });
    let primaryGateway = '';
    for (const [i, d] of DCS.entries()) {
      const seen: { key: string | number; from: string }[] = [];
      accepted.push(seen);
      const { server, gateway } = await startWanfedDatacenter({
        dc: d.dc,
        node: d.node,
        tls: await writeServerTls(dir, ca, d.dc, d.node),
        serverIp: d.serverIp,
        gatewayIp: d.gatewayIp,
        // the gateway's upstream connections leave from its own address, so servers can tell them apart
        gatewaySourceAddress: true,
        ...(i > 0 ? { primaryGateways: [primaryGateway] } : {}),
        extraPlugins: [acceptRecorder(seen)],
        logger: createMemoryLogger('silent'),
        protos,
      });
      servers.push(server);
      gateways.push(gateway);
      if (i === 0) primaryGateway = gateway.address;
    }
  });

  after(async () => {
    for (const g of [...gateways, ...retired]) await g.stop().catch(() => undefined);
    for (const s of servers.reverse()) await s.stop().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });

  test('the WAN pool converges to three alive servers through the gateways alone', async () => {
    await waitFor(() => servers.every((s) => s.services.get(GossipTokens.Wan).members().filter((m) => m.status === 'alive').length === 3), {
      timeoutMs: 30_000,
      message: `WAN pool did not converge: ${servers.map((s) => s.services.get(GossipTokens.Wan).members().map((m) => `${m.name}:${m.status}`).join(',')).join(' | ')}`,
    });
    const t = servers[1]?.services.get(WanfedTokens.Transport).transport;
    assert.ok((t?.stats().streamsDialed ?? 0) > 0, 'dc2 dialed no gossip stream through a gateway');
  });

  test('every locator can pick gateways for every datacenter (anti-entropy → primary → replication)', async () => {
    await waitFor(
      async () => {
        for (const s of servers) for (const d of DCS) if ((await s.services.get(FederationTokens.Locator).pickGateway(d.dc)) === '') return false;
        return true;
      },
      { timeoutMs: 30_000, message: 'a locator cannot pick a gateway for some datacenter' },
    );
  });

  test('GET /v1/catalog/nodes?dc= from every datacenter to every other returns that datacenter’s nodes', async () => {
    for (const s of servers) {
      for (const d of DCS) {
        const nodes = await waitFor(
          async () => {
            const res = await fetch(`http://${s.services.get(HttpTokens.HttpApi).address}/v1/catalog/nodes?dc=${d.dc}`);
            if (res.status !== 200) return undefined;
            return (await res.json()) as { Node: string; Datacenter: string }[];
          },
          { timeoutMs: 20_000, message: `${s.config.datacenter} → ${d.dc}` },
        );
        assert.ok(nodes);
        assert.deepEqual(nodes.map((n) => n.Node).sort(), [d.node, `${d.node}-gw`].sort(), `${s.config.datacenter} → ${d.dc}`);
        assert.ok(nodes.every((n) => n.Datacenter === d.dc));
      }
    }
  });

  test('no server accepted a connection from another datacenter except through a gateway', async () => {
    // One server per datacenter and the test speaks HTTP only: every connection a server's RPC
    // port accepted came from another datacenter, so each must come from a gateway (ALPN, no type byte).
    for (const [i, d] of DCS.entries()) {
      const seen = accepted[i] ?? [];
      assert.deepEqual(seen.filter((c) => !GATEWAY_IPS.has(c.from) || typeof c.key === 'number'), [], `${d.dc} accepted connections not routed by a gateway`);
      await waitFor(() => seen.some((c) => c.key === Alpn.WanGossipStream || c.key === Alpn.WanGossipPacket), { timeoutMs: 20_000, message: `${d.dc} never got gossip through a gateway` });
      await waitFor(() => seen.some((c) => c.key === Alpn.RpcMultiplexV2), { timeoutMs: 20_000, message: `${d.dc} never got RPC through a gateway` });
      assert.deepEqual(seen.filter((c) => !GATEWAY_IPS.has(c.from) || typeof c.key === 'number'), [], `${d.dc} accepted connections not routed by a gateway`);
    }
  });

  /** Replace gateway `i` with a fresh one on the same address (a gateway restart). */
  const restartGateway = async (i: number): Promise<void> => {
    const d = DCS[i] as (typeof DCS)[number];
    const old = gateways[i] as MeshGateway;
    const gw = await startGatewayFor(servers[i] as Agent, {
      node: `${d.node}-gw`,
      ip: d.gatewayIp,
      port: Number(old.address.split(':').pop()),
      sourceAddress: true,
      logger: createMemoryLogger('silent'),
      protos,
    });
    retired.push(old); // its ADS client and check timer are stopped in after()
    gateways[i] = gw;
  };

  test('failover: with the primary’s gateway down, secondary leaders dial the primary’s gateways directly after 3 failed rounds, and recover when it returns', async () => {
    const locator = (i: number) => (servers[i] as Agent).services.get(FederationTokens.Locator);
    await waitFor(() => locator(1).status().mode === 'local-gateways' && locator(2).status().mode === 'local-gateways', { timeoutMs: 20_000, message: 'secondaries not dialing through their local gateways' });
    // stop dc1's gateway without deregistering it (a crash): the path dc2 → gw2 → gw1 is gone
    await (gateways[0] as MeshGateway).proxy.close({ drain: false });
    await waitFor(() => locator(1).status().mode === 'primary-gateways' && locator(2).status().mode === 'primary-gateways', {
      timeoutMs: 30_000,
      message: `secondaries did not switch to the primary's gateways: ${JSON.stringify(locator(1).status().replication)}`,
    });
    assert.ok(locator(1).status().replication.consecutive_failures >= 3);
    await restartGateway(0);
    await waitFor(() => locator(1).status().mode === 'local-gateways' && locator(2).status().mode === 'local-gateways', {
      timeoutMs: 40_000,
      message: `secondaries did not recover: ${JSON.stringify(locator(1).status().replication)}`,
    });
    // replication works again end to end: a new gateway in dc1 reaches dc3's replica
    const res = await fetch(`http://${(servers[0] as Agent).services.get(HttpTokens.HttpApi).address}/v1/catalog/register`, {
      method: 'PUT',
      body: JSON.stringify({ Node: 'bob-gw2', Address: '127.0.0.31', Service: { Kind: 'mesh-gateway', Service: 'mesh-gateway', ID: 'mesh-gateway', Port: 9999, Meta: { 'consul-wan-federation': '1' } } }),
    });
    assert.equal(res.status, 200);
    await waitFor(() => (servers[2] as Agent).services.get(StateTokens.Store).federationStateGet('dc1').value?.MeshGateways.length === 2, { timeoutMs: 20_000, message: 'dc1 change not replicated to dc3 after recovery' });
    // that gateway has no listener: dials that pick it must fall over to the real one
    for (let k = 0; k < 10; k++) {
      const r = await fetch(`http://${(servers[0] as Agent).services.get(HttpTokens.HttpApi).address}/v1/catalog/nodes?dc=dc3`);
      assert.equal(r.status, 200, await r.text());
      (servers[0] as Agent).services.get(RpcTokens.Pool).forget('bonnie'); // force a fresh dial next time
    }
    const del = await fetch(`http://${(servers[0] as Agent).services.get(HttpTokens.HttpApi).address}/v1/catalog/deregister`, { method: 'PUT', body: JSON.stringify({ Node: 'bob-gw2' }) });
    assert.equal(del.status, 200);
  });

  test('a secondary’s gateway restart: its server keeps (or regains) the WAN pool without a restart', async () => {
    await (gateways[1] as MeshGateway).proxy.close({ drain: false });
    await restartGateway(1);
    await waitFor(() => servers.every((s) => s.services.get(GossipTokens.Wan).members().filter((m) => m.status === 'alive').length === 3), {
      timeoutMs: 40_000,
      message: `WAN pool not whole after dc2's gateway came back: ${servers.map((s) => s.services.get(GossipTokens.Wan).members().map((m) => `${m.name}:${m.status}`).join(',')).join(' | ')}`,
    });
    const res = await fetch(`http://${(servers[0] as Agent).services.get(HttpTokens.HttpApi).address}/v1/catalog/nodes?dc=dc2`);
    assert.equal(res.status, 200, await res.text());
  });
});
