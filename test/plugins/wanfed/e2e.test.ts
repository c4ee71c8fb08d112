/**
 * Consul's TestServer_JoinWAN_viaMeshGateway with real meshfed gateways: three datacenters, one
 * server and one built-in gateway each; servers of different datacenters reach each other only
 * through gateways (asserted on every server's RPC port); the WAN pool converges; every locator
 * can pick gateways for every datacenter; catalog reads cross every pair of datacenters.
 * The secondaries are configured with nothing but the primary's gateway (case-wanfed-gw).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createAgent, Stage, type Agent, type AgentPlugin } from '../../../src/index.js';
import { Alpn } from '../../../src/core/protocol.js';
import { federation, FederationTokens } from '../../../src/plugins/federation/index.js';
import { gossip, GossipTokens } from '../../../src/plugins/gossip/index.js';
import { http, HttpTokens } from '../../../src/plugins/http/index.js';
import { loadAdsProtos, MeshGateway } from '../../../src/plugins/mesh-gateway/index.js';
import { router } from '../../../src/plugins/router/index.js';
import { rpc, RpcTokens } from '../../../src/plugins/rpc/index.js';
import { state, StateTokens } from '../../../src/plugins/state/index.js';
import { generateCa, generateCert, tls } from '../../../src/plugins/tls/index.js';
import { wanfed, WanfedTokens } from '../../../src/plugins/wanfed/index.js';
import { xds, XdsTokens } from '../../../src/plugins/xds/index.js';
import { createMemoryLogger, freePort, waitFor } from '../../../src/testing/index.js';

const FAST = { probe_interval: '200ms', probe_timeout: '100ms', gossip_interval: '50ms', suspicion_mult: 3, push_pull_interval: '2s' };
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
    writeFileSync(join(dir, 'ca.pem'), ca.certPem);
    let primaryGateway = '';
    for (const [i, d] of DCS.entries()) {
      const cert = await generateCert({ ca, kind: 'server', datacenter: d.dc, domain: 'consul', node: d.node, days: 2 });
      writeFileSync(join(dir, `${d.node}.pem`), cert.certPem);
      writeFileSync(join(dir, `${d.node}-key.pem`), cert.keyPem);
      const seen: { key: string | number; from: string }[] = [];
      accepted.push(seen);
      const agent = await createAgent({
        config: {
          node_name: d.node,
          datacenter: d.dc,
          primary_datacenter: 'dc1',
          server: true,
          bind_addr: d.serverIp,
          ports: { server: 0, serf_lan: 0, serf_wan: 0, http: 0, grpc: 0 },
          gossip_lan: FAST,
          gossip_wan: FAST,
          connect: { enabled: true, enable_mesh_gateway_wan_federation: true },
          tls: { ca_file: join(dir, 'ca.pem'), cert_file: join(dir, `${d.node}.pem`), key_file: join(dir, `${d.node}-key.pem`), verify_incoming: true, verify_outgoing: true, verify_server_hostname: true },
          federation: { anti_entropy_interval: '0s', replication_rate: 0 },
          retry_interval_wan: '500ms',
          ...(i > 0 ? { primary_gateways: [primaryGateway], primary_gateways_interval: '1s' } : {}),
        },
        host: { hostname: d.node, privateIPv4: d.serverIp },
        logger: createMemoryLogger('silent'),
        plugins: [acceptRecorder(seen), tls(), rpc(), http(), gossip({ serf: { leavePropagateDelayMs: 0 } }), router(), state(), federation(), xds(), wanfed()],
      });
      await agent.start();
      servers.push(agent);
      const port = await freePort();
      const gw = new MeshGateway({
        node: `${d.node}-gw`,
        address: { host: d.gatewayIp, port },
        exposeServers: true,
        httpAddr: agent.services.get(HttpTokens.HttpApi).address as string,
        adsServers: [agent.services.get(XdsTokens.Server).address as string],
        logger: createMemoryLogger('silent'),
        protos,
        // the gateway's upstream connections leave from its own address, so servers can tell them apart
        proxy: { connect: ({ host, port: p }) => netConnect({ host, port: p, localAddress: d.gatewayIp }) },
      });
      await gw.start();
      gateways.push(gw);
      if (i === 0) primaryGateway = gw.address;
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
    const [host, port] = [d.gatewayIp, Number(old.address.split(':').pop())];
    const agent = servers[i] as Agent;
    const gw = new MeshGateway({
      node: `${d.node}-gw`,
      address: { host, port },
      exposeServers: true,
      httpAddr: agent.services.get(HttpTokens.HttpApi).address as string,
      adsServers: [agent.services.get(XdsTokens.Server).address as string],
      logger: createMemoryLogger('silent'),
      protos,
      proxy: { connect: ({ host: h, port: p }) => netConnect({ host: h, port: p, localAddress: d.gatewayIp }) },
    });
    await gw.start();
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
