import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { Agent } from '../../../src/index.js';
import { FederationTokens, isSameFederationState } from '../../../src/plugins/federation/index.js';
import { HttpTokens } from '../../../src/plugins/http/index.js';
import { RouterTokens } from '../../../src/plugins/router/index.js';
import { StateTokens } from '../../../src/plugins/state/index.js';
import { waitFor } from '../../../src/testing/index.js';
import { fedServer, wanAddr, wanConverged } from './helpers.js';



async function registerGateway(a: Agent, node: string): Promise<void> {
  const res = await fetch(`http://${a.services.get(HttpTokens.HttpApi).address}/v1/catalog/register`, {
    method: 'PUT',
    body: JSON.stringify({
      Node: node,
      Address: '10.0.0.1',
      Service: { Kind: 'mesh-gateway', Service: 'mesh-gateway', ID: `mgw-${node}`, Port: 8443, Meta: { 'consul-wan-federation': '1' } },
    }),
  });
  assert.equal(res.status, 200, await res.text());
}

const gatewaysOf = (a: Agent, dc: string): string[] =>
  a.services
    .get(StateTokens.Store)
    .federationStateGet(dc)
    .value?.MeshGateways.map((g) => g.Node.Node) ?? [];


describe('federation routines', () => {
  const agents: Agent[] = [];
  const dirs: string[] = [];
  after(async () => {
    for (const a of agents.reverse()) await a.stop().catch(() => undefined);
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  test('IsSame ignores raft indexes and UpdatedAt but not gateway order or content', () => {
    const gw = (n: string, idx: number) => ({ Node: { Node: n, CreateIndex: idx, ModifyIndex: idx }, Service: { Service: 'mgw', Port: 1, CreateIndex: idx, ModifyIndex: idx }, Checks: [] });
    const a = { Datacenter: 'dc2', MeshGateways: [gw('a', 1), gw('b', 2)] } as never;
    assert.equal(isSameFederationState(a, { Datacenter: 'dc2', MeshGateways: [gw('a', 7), gw('b', 9)] } as never), true);
    assert.equal(isSameFederationState(a, { Datacenter: 'dc2', MeshGateways: [gw('b', 2), gw('a', 1)] } as never), false);
    assert.equal(isSameFederationState(a, { Datacenter: 'dc2', MeshGateways: [gw('a', 1)] } as never), false);
    assert.equal(isSameFederationState(a, { Datacenter: 'dc3', MeshGateways: [gw('a', 1), gw('b', 2)] } as never), false);
  });

  test('anti-entropy blocking sequence (AE driven by hand in dc2)', async () => {
    const p = await fedServer('p1', 'dc1');
    agents.push(p);
    const s = await fedServer('q1', 'dc2', { retry_join_wan: [wanAddr(p)], retry_interval_wan: '200ms' }, { antiEntropy: false });
    agents.push(s);
    await wanConverged([p, s]);
    const ae = s.services.get(FederationTokens.AntiEntropy);
    const signal = new AbortController().signal;

    let d = await ae.details(0, signal);
    assert.equal(d.prev, undefined);
    assert.equal(d.curr.MeshGateways.length, 0);

    let pending = ae.details(d.index, signal);
    await registerGateway(s, 'gw1');
    d = await pending;
    assert.equal(d.prev, undefined);
    assert.equal(d.curr.MeshGateways.length, 1);

    pending = ae.details(d.index, signal);
    await ae.update(d.curr, signal);
    d = await pending; // woken by replication writing our own record back
    assert.equal(d.prev?.MeshGateways.length, 1);
    assert.equal(d.curr.MeshGateways.length, 1);
    assert.deepEqual(gatewaysOf(p, 'dc2'), ['gw1']);

    pending = ae.details(d.index, signal);
    await registerGateway(s, 'gw2');
    d = await pending;
    assert.equal(d.prev?.MeshGateways.length, 1);
    assert.equal(d.curr.MeshGateways.length, 2);

    pending = ae.details(d.index, signal);
    await ae.update(d.curr, signal);
    d = await pending;
    assert.equal(d.prev?.MeshGateways.length, 2);
    assert.deepEqual(gatewaysOf(p, 'dc2'), ['gw1', 'gw2']);
    await waitFor(() => gatewaysOf(s, 'dc2').length === 2, { message: 'not replicated back to dc2' });
    await s.stop();
    await p.stop();
  });

  test('pruning after a datacenter leaves the WAN pool', async () => {
    const p = await fedServer('r1', 'dc1');
    agents.push(p);
    const s2 = await fedServer('r2', 'dc2', { retry_join_wan: [wanAddr(p)], retry_interval_wan: '200ms' });
    agents.push(s2);
    const s3 = await fedServer('r3', 'dc3', { retry_join_wan: [wanAddr(p)], retry_interval_wan: '200ms' });
    agents.push(s3);
    await wanConverged([p, s2, s3]);
    await registerGateway(p, 'g1');
    await registerGateway(s2, 'g2');
    await registerGateway(s3, 'g3');
    const dcs = (a: Agent) =>
      a.services
        .get(StateTokens.Store)
        .federationStateList()
        .value.map((x) => x.Datacenter)
        .join();
    await waitFor(() => dcs(p) === 'dc1,dc2,dc3' && dcs(s2) === 'dc1,dc2,dc3', { timeoutMs: 15_000, message: 'states did not converge' });
    // nothing to prune while every datacenter is known
    assert.deepEqual(await p.services.get(FederationTokens.AntiEntropy).prune(), []);
    await s3.stop();
    await waitFor(() => !p.services.get(RouterTokens.Router).hasDatacenter('dc3'), { timeoutMs: 15_000, message: 'router still knows dc3' });
    assert.deepEqual(await p.services.get(FederationTokens.AntiEntropy).prune(), ['dc3']);
    assert.equal(dcs(p), 'dc1,dc2');
    await waitFor(() => dcs(s2) === 'dc1,dc2', { timeoutMs: 10_000, message: 'dc2 did not drop dc3 by replication' });
    await s2.stop();
    await p.stop();
  });

  test('the feature flag stays on when a restarted secondary cannot reach the primary', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'meshfed-fed-sticky-'));
    dirs.push(dir);
    const p = await fedServer('t1', 'dc1', { data_dir: join(dir, 't1') });
    agents.push(p);
    const s = await fedServer('t2', 'dc2', { data_dir: join(dir, 't2'), retry_join_wan: [wanAddr(p)], retry_interval_wan: '200ms' });
    agents.push(s);
    await wanConverged([p, s]);
    await registerGateway(p, 'h1');
    await registerGateway(s, 'h2');
    await waitFor(() => gatewaysOf(s, 'dc1').length === 1 && gatewaysOf(s, 'dc2').length === 1, { timeoutMs: 15_000, message: 'states did not reach dc2' });
    await s.stop();
    await p.stop();
    // only dc2 comes back; its WAN pool has no primary server with ft_fs, but it has records
    const again = await fedServer('t2', 'dc2', { data_dir: join(dir, 't2') });
    agents.push(again);
    assert.equal(again.services.get(FederationTokens.Feature).supported(), true);
    const res = await fetch(`http://${again.services.get(HttpTokens.HttpApi).address}/v1/internal/federation-states`);
    assert.equal(res.status, 200);
    assert.deepEqual(((await res.json()) as { Datacenter: string }[]).map((x) => x.Datacenter), ['dc1', 'dc2']);
  });

  test('without the feature, a secondary refuses federation-state reads with Consul’s text', async () => {
    // a secondary that never saw a primary server has no records and no ft_fs evidence
    const lone = await fedServer('u2', 'dc2');
    agents.push(lone);
    assert.equal(lone.services.get(FederationTokens.Feature).supported(), false);
    const res = await fetch(`http://${lone.services.get(HttpTokens.HttpApi).address}/v1/internal/federation-states`);
    assert.equal(res.status, 500);
    assert.match(await res.text(), /Federation states are currently disabled until all servers in the datacenter support the feature/);
  });
});
