import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Agent } from '../../../src/index.js';
import { federationStructs, FederationTokens } from '../../../src/plugins/federation/index.js';
import { GossipTokens } from '../../../src/plugins/gossip/index.js';
import { GoTime, RpcTokens, t } from '../../../src/plugins/rpc/index.js';
import { StateTokens } from '../../../src/plugins/state/index.js';
import { MessageType } from '../../../src/plugins/state/store/index.js';
import { waitFor } from '../../../src/testing/index.js';
import { apiOf, fedServer } from './helpers.js';

const api = apiOf;
const rpcAddr = (a: Agent): string => `127.0.0.1:${a.services.get(RpcTokens.Listener).address?.split(':').pop()}`;

async function get<T = unknown>(a: Agent, path: string): Promise<{ status: number; json: T; text: string; headers: Headers }> {
  const res = await fetch(`${api(a)}${path}`);
  const text = await res.text();
  const json = (text && res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : undefined) as T;
  return { status: res.status, json, text, headers: res.headers };
}

async function registerGateway(a: Agent, dc: string, node: string, port: number, meta = true): Promise<void> {
  const res = await fetch(`${api(a)}/v1/catalog/register`, {
    method: 'PUT',
    body: JSON.stringify({
      Node: node,
      Address: `10.${dc.slice(2)}.0.1`,
      Service: {
        Kind: 'mesh-gateway',
        Service: 'mesh-gateway',
        ID: `mgw-${node}`,
        Port: port,
        Meta: meta ? { 'consul-wan-federation': '1' } : {},
        TaggedAddresses: { lan: { Address: `10.${dc.slice(2)}.0.1`, Port: port }, wan: { Address: `198.18.${dc.slice(2)}.1`, Port: port } },
      },
      Checks: [{ CheckID: `mgw-${node}-tcp`, Name: 'tcp', Status: 'passing', ServiceID: `mgw-${node}` }],
    }),
  });
  assert.equal(res.status, 200, await res.text());
}

/** Federation states of `a` as `dc:gatewayNode,…` strings. */
function fedStates(a: Agent): string[] {
  return a.services
    .get(StateTokens.Store)
    .federationStateList()
    .value.map((s) => `${s.Datacenter}:${s.MeshGateways.map((g) => g.Node.Node).join(',')}`);
}

describe('federation: three datacenters over direct WAN', () => {
  const agents: Agent[] = [];
  let s1: Agent;
  let s2: Agent;
  let s3: Agent;
  before(async () => {
    s1 = await fedServer('s1', 'dc1');
    agents.push(s1);
    const wan1 = s1.services.get(GossipTokens.Wan).advertiseAddress;
    s2 = await fedServer('s2', 'dc2', { retry_join_wan: [wan1], retry_interval_wan: '200ms' });
    agents.push(s2);
    s3 = await fedServer('s3', 'dc3', { retry_join_wan: [wan1], retry_interval_wan: '200ms' });
    agents.push(s3);
    await waitFor(() => agents.every((a) => a.services.get(GossipTokens.Wan).members().filter((m) => m.status === 'alive').length === 3), {
      timeoutMs: 15_000,
      message: 'WAN pool did not converge',
    });
  });
  after(async () => {
    for (const a of agents.reverse()) await a.stop().catch(() => undefined);
  });

  test('mesh gateways registered in each datacenter converge to the same three federation states everywhere', async () => {
    await registerGateway(s1, 'dc1', 'gw1', 8443);
    await registerGateway(s2, 'dc2', 'gw2', 8443);
    await registerGateway(s3, 'dc3', 'gw3', 8443);
    const want = ['dc1:gw1', 'dc2:gw2', 'dc3:gw3'];
    await waitFor(() => agents.every((a) => fedStates(a).join() === want.join()), { timeoutMs: 15_000, message: `federation states did not converge: ${agents.map((a) => fedStates(a).join(' ')).join(' | ')}` });
    // secondaries carry the primary's ModifyIndex in PrimaryModifyIndex
    const primary = new Map(s1.services.get(StateTokens.Store).federationStateList().value.map((s) => [s.Datacenter, s.ModifyIndex]));
    for (const a of [s2, s3]) for (const s of a.services.get(StateTokens.Store).federationStateList().value) assert.equal(s.PrimaryModifyIndex, primary.get(s.Datacenter));
    assert.equal(s1.services.get(FederationTokens.Feature).supported(), true);
    // every gateway locator learns its lists from the replicated states (LAN locally, WAN for the primary)
    await waitFor(() => agents.every((a) => a.services.get(FederationTokens.Locator).populated && a.services.get(FederationTokens.Locator).listGateways(true).length > 0 && a.services.get(FederationTokens.Locator).listGateways(false).length > 0), {
      message: 'locators not populated',
    });
    assert.deepEqual(s1.services.get(FederationTokens.Locator).listGateways(true), ['198.18.1.1:8443']);
    assert.deepEqual(s2.services.get(FederationTokens.Locator).listGateways(false), ['10.2.0.1:8443']);
    for (const a of agents) for (const dc of ['dc1', 'dc2', 'dc3']) assert.notEqual(await a.services.get(FederationTokens.Locator).pickGateway(dc), '', `${a.config.datacenter} → ${dc}`);
    const status = await get<{ gateway_locator: { mode: string; primary: { address: string; source: string }[] } }>(s2, '/v1/meshfed/federation');
    assert.equal(status.json.gateway_locator.mode, 'local-gateways');
    assert.deepEqual(status.json.gateway_locator.primary, [{ address: '198.18.1.1:8443', source: 'federation-state' }]);
  });

  test('the internal HTTP endpoints return them, in every datacenter, with blocking headers', async () => {
    for (const a of agents) {
      const list = await get<{ Datacenter: string; MeshGateways: unknown[]; UpdatedAt: string }[]>(a, '/v1/internal/federation-states');
      assert.equal(list.status, 200);
      assert.deepEqual(list.json.map((s) => s.Datacenter), ['dc1', 'dc2', 'dc3']);
      assert.match(list.json[0]?.UpdatedAt ?? '', /^\d{4}-\d\d-\d\dT/);
      assert.match(list.headers.get('x-consul-index') ?? '', /^[1-9]/);
      const gws = await get<Record<string, { Node: { Node: string } }[]>>(a, '/v1/internal/federation-states/mesh-gateways');
      assert.deepEqual(Object.keys(gws.json).sort(), ['dc1', 'dc2', 'dc3']);
      assert.equal(gws.json['dc2']?.[0]?.Node.Node, 'gw2');
      const one = await get<{ State: { Datacenter: string }; Index: number; KnownLeader: boolean }>(a, '/v1/internal/federation-state/dc2');
      assert.equal(one.status, 200);
      assert.equal(one.json.State.Datacenter, 'dc2');
      assert.equal(one.json.KnownLeader, true);
      const missing = await get(a, '/v1/internal/federation-state/dc9');
      assert.equal(missing.status, 404);
      assert.equal(missing.text, '');
      const empty = await get(a, '/v1/internal/federation-state/');
      assert.equal(empty.status, 400);
      assert.match(empty.text, /Missing datacenter name/);
    }
    // ?dc= routes the Get to another datacenter
    const remote = await get<{ State: { Datacenter: string } }>(s3, '/v1/internal/federation-state/dc1?dc=dc2');
    assert.equal(remote.status, 200);
    assert.equal(remote.json.State.Datacenter, 'dc1');
  });

  test('GET /v1/catalog/nodes?dc= works from every datacenter to every other', async () => {
    const dcs = ['dc1', 'dc2', 'dc3'];
    for (const a of agents) {
      for (const dc of dcs) {
        const r = await get<{ Node: string; Datacenter: string }[]>(a, `/v1/catalog/nodes?dc=${dc}`);
        assert.equal(r.status, 200, `${a.config.datacenter} → ${dc}: ${r.text}`);
        assert.ok(r.json.length > 0 && r.json.every((n) => n.Datacenter === dc), `${a.config.datacenter} → ${dc}`);
        assert.ok(r.json.some((n) => n.Node === `gw${dc.slice(2)}`));
      }
    }
  });

  test('Apply from a secondary lands in the primary and comes back by replication; bad applies change nothing', async () => {
    const pool = s2.services.get(RpcTokens.Pool);
    const target = { datacenter: 'dc2', node: 's2', address: rpcAddr(s2) };
    const state = { Datacenter: 'dc-extra', MeshGateways: [], UpdatedAt: GoTime.ZERO, PrimaryModifyIndex: 0, CreateIndex: 0, ModifyIndex: 0 };
    const ok = await pool.call(target, 'FederationState.Apply', { Op: 'upsert', State: state }, federationStructs.FederationStateRequest, t.bool);
    assert.equal(ok, true);
    assert.ok(s1.services.get(StateTokens.Store).federationStateGet('dc-extra').value, 'not in the primary');
    await waitFor(() => s3.services.get(StateTokens.Store).federationStateGet('dc-extra').value, { timeoutMs: 10_000, message: 'not replicated to dc3' });

    const before = agents.map((a) => a.services.get(StateTokens.Store).tableIndex('federation-states'));
    const bad: [unknown, RegExp][] = [
      [{ Op: 'upsert', State: null }, /missing federation state datacenter/],
      [{ Op: 'upsert', State: { ...state, Datacenter: '' } }, /missing federation state datacenter/],
      [{ Op: 'rename', State: state }, /Invalid federation state operation: rename/],
      [{ Op: 'upsert', State: { ...state, Datacenter: 'dc 1!' } }, /not a datacenter name/],
      [{ Op: 'upsert', State: { ...state, MeshGateways: Array.from({ length: 1025 }, () => ({ Node: { Node: 'n', Address: '1.1.1.1' }, Service: { Service: 'mgw', Port: 1 }, Checks: [] })) } }, /exceed the limit/],
    ];
    for (const [args, re] of bad) {
      await assert.rejects(pool.call(target, 'FederationState.Apply', args as never, federationStructs.FederationStateRequest, t.bool), re);
    }
    assert.deepEqual(agents.map((a) => a.services.get(StateTokens.Store).tableIndex('federation-states')), before, 'a refused Apply wrote something');
  });

  test('replication of 50 states through create, update to 3 gateways, and delete', async () => {
    const primaryStore = s1.services.get(StateTokens.Store);
    const srv = s1.services.get(StateTokens.Server);
    const gw = (i: number, k: number, port: number) => ({
      Node: { ID: '', Node: `alt${i}-gw${k}`, Address: `10.9.${i}.${k}`, Datacenter: `alt-dc${i}`, TaggedAddresses: {}, Meta: {}, CreateIndex: 0, ModifyIndex: 0 },
      Service: { ID: 'mgw', Service: 'mesh-gateway', Kind: 'mesh-gateway' as const, Tags: [], Address: '', TaggedAddresses: {}, Port: port, Meta: { 'consul-wan-federation': '1' }, CreateIndex: 0, ModifyIndex: 0 },
      Checks: [],
    });
    const write = (i: number, n: number, port: number) =>
      srv.write({ Type: MessageType.FederationState, Body: { Datacenter: 'dc1', Op: 'upsert', State: { Datacenter: `alt-dc${i}`, MeshGateways: Array.from({ length: n }, (_, k) => gw(i, k, port)) } } });
    const alt = (a: Agent) =>
      a.services
        .get(StateTokens.Store)
        .federationStateList()
        .value.filter((s) => s.Datacenter.startsWith('alt-'))
        .map((s) => `${s.Datacenter}:${s.MeshGateways.map((g) => `${g.Node.Node}@${g.Service.Port}`).join(',')}`)
        .sort()
        .join(' ');
    const converged = (msg: string) => waitFor(() => [s2, s3].every((a) => alt(a) === alt(s1)), { timeoutMs: 15_000, message: msg });
    await Promise.all(Array.from({ length: 50 }, (_, i) => write(i + 1, 2, 443)));
    assert.equal(primaryStore.federationStateList().value.filter((s) => s.Datacenter.startsWith('alt-')).length, 50);
    await converged('create did not converge');
    await Promise.all(Array.from({ length: 50 }, (_, i) => write(i + 1, 3, 8443)));
    await converged('update did not converge');
    assert.match(alt(s2), /alt1-gw2@8443/);
    await Promise.all(
      Array.from({ length: 50 }, (_, i) => srv.write({ Type: MessageType.FederationState, Body: { Datacenter: 'dc1', Op: 'delete', State: { Datacenter: `alt-dc${i + 1}` } } })),
    );
    await converged('delete did not converge');
    assert.equal(alt(s2), '');
  });
});
