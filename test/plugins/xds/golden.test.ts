import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { buildResources } from '../../../src/plugins/xds/resources.js';
import { chooseRemoteGateways, findGateway, normalizeDomain, readMeshGatewaySnapshot } from '../../../src/plugins/xds/snapshot.js';
import { WatchSet } from '../../../src/plugins/state/store/index.js';
import { fedGateway, gatewayRegistration, serverRegistration, StoreFixture, WANFED_META } from './fixtures.js';
import { goldenCases } from './golden-cases.js';

describe('xds golden resources (spec §9.3–§9.5)', () => {
  for (const c of goldenCases()) {
    test(c.name, () => {
      const got = buildResources(c.snapshot);
      assert.deepStrictEqual(got.listeners, c.expected.listeners, 'listeners');
      assert.deepStrictEqual(got.clusters, c.expected.clusters, 'clusters');
      assert.deepStrictEqual(got.endpoints, c.expected.endpoints, 'endpoints');
      assert.deepStrictEqual(got.routes, c.expected.routes, 'routes');
    });
  }

  test('the chosen source per datacenter is recorded in the snapshot', () => {
    const byName = new Map(goldenCases().map((c) => [c.name, c.snapshot]));
    const newer = byName.get('mesh-gateway-newer-information-in-federation-states');
    const older = byName.get('mesh-gateway-older-information-in-federation-states');
    assert.deepStrictEqual(newer?.remoteDatacenters.map((r) => [r.datacenter, r.source, r.maxModifyIndex]), [['dc2', 'federation-state', 9]]);
    assert.deepStrictEqual(older?.remoteDatacenters.map((r) => [r.datacenter, r.source, r.maxModifyIndex]), [['dc2', 'catalog', 21]]);
    const cp = byName.get('mesh-gateway-using-federation-control-plane');
    assert.deepStrictEqual(cp?.remoteDatacenters.map((r) => [r.datacenter, r.source]), [
      ['dc2', 'catalog'],
      ['dc4', 'federation-state'],
      ['dc6', 'federation-state'],
    ]);
    assert.deepStrictEqual(cp?.localServers.map((s) => s.node), ['node1', 'node2']);
  });

  test('a federation state with the same max ModifyIndex as the catalog loses (strictly newer only)', () => {
    const f = new StoreFixture();
    f.register(gatewayRegistration({ node: 'dc2-gw', datacenter: 'dc2', address: '10.2.0.1', port: 8443, wan: '198.18.1.1:443' })); // index 1
    const catalog = new Map([['dc2', f.store.serviceDumpByKind('mesh-gateway').value]]);
    const tie = chooseRemoteGateways('dc1', catalog, new Map([['dc2', [fedGateway('x', 'dc2', '198.18.9.9:443', 1)]]]));
    assert.equal(tie[0]?.source, 'catalog');
    assert.equal(tie[0]?.gateways[0]?.host, '198.18.1.1');
    const newer = chooseRemoteGateways('dc1', catalog, new Map([['dc2', [fedGateway('x', 'dc2', '198.18.9.9:443', 2)]]]));
    assert.equal(newer[0]?.source, 'federation-state');
    assert.equal(newer[0]?.gateways[0]?.host, '198.18.9.9');
    // The local datacenter is never a remote key, whichever list names it.
    assert.deepStrictEqual(chooseRemoteGateways('dc2', catalog, new Map([['dc2', [fedGateway('x', 'dc2', '198.18.9.9:443', 2)]]])), []);
  });

  test('building is deterministic and independent of write order', () => {
    const build = (order: number[]) => {
      const f = new StoreFixture();
      const writes = [
        () => f.register(gatewayRegistration({ node: 'gw', datacenter: 'dc1', address: '127.0.0.1', port: 8443, meta: { ...WANFED_META } })),
        () => f.register(serverRegistration('b', 'dc1', '10.0.0.2')),
        () => f.register(serverRegistration('a', 'dc1', '10.0.0.1')),
        () => f.register(gatewayRegistration({ node: 'z', datacenter: 'dc9', address: '10.9.0.1', port: 1, wan: '198.18.9.1:443' })),
        () => f.register(gatewayRegistration({ node: 'y', datacenter: 'dc3', address: '10.3.0.1', port: 1, wan: '198.18.3.1:443' })),
      ];
      for (const i of order) writes[i]?.();
      const snap = readMeshGatewaySnapshot(f.store, { datacenter: 'dc1', domain: 'consul', proxyId: 'mesh-gateway' }).value;
      assert.ok(snap);
      return buildResources(snap);
    };
    const a = build([0, 1, 2, 3, 4]);
    const b = build([4, 3, 2, 1, 0]);
    assert.deepStrictEqual(a, b);
    const names = (a.listeners[0]?.['filter_chains'] as { filter_chain_match?: { server_names: string[] } }[]).map((c) => c.filter_chain_match?.server_names[0] ?? '*');
    assert.deepStrictEqual(names, ['*.server.dc3.consul', '*.server.dc9.consul', 'a.server.dc1.consul', 'b.server.dc1.consul', '*']);
  });

  test('the snapshot reads only this datacenter for servers and the gateway; domain loses a trailing dot', () => {
    const f = new StoreFixture();
    f.register(gatewayRegistration({ node: 'gw', datacenter: 'dc1', address: '127.0.0.1', port: 8443, meta: { ...WANFED_META } }));
    f.register(gatewayRegistration({ node: 'gw-other', datacenter: 'dc2', address: '10.2.0.9', port: 8443, id: 'other' }));
    f.register(serverRegistration('s1', 'dc1', '10.0.0.1', 8301));
    f.register(serverRegistration('s-remote', 'dc2', '10.2.0.1'));
    const r = readMeshGatewaySnapshot(f.store, { datacenter: 'dc1', domain: 'consul.', proxyId: 'mesh-gateway' });
    assert.equal(r.value?.domain, 'consul');
    assert.deepStrictEqual(r.value?.localServers, [{ node: 's1', host: '10.0.0.1', port: 8301 }]);
    assert.deepStrictEqual(r.value?.proxy, { id: 'mesh-gateway', node: 'gw', service: 'mesh-gateway', address: '127.0.0.1', port: 8443, meta: { ...WANFED_META } });
    // A gateway of another datacenter is not a local proxy.
    assert.equal(readMeshGatewaySnapshot(f.store, { datacenter: 'dc1', domain: 'consul', proxyId: 'other' }).value, undefined);
    assert.equal(normalizeDomain('example.'), 'example');
    assert.equal(normalizeDomain('example'), 'example');
  });

  test('the snapshot read registers watches on every table it depends on', () => {
    const f = new StoreFixture();
    f.register(gatewayRegistration({ node: 'gw', datacenter: 'dc1', address: '127.0.0.1', port: 8443 }));
    const ws = new WatchSet();
    readMeshGatewaySnapshot(f.store, { datacenter: 'dc1', domain: 'consul', proxyId: 'mesh-gateway' }, ws);
    const keys = ws.keys();
    for (const k of ['services/kind:mesh-gateway', 'services/name:consul', 'federation-states']) assert.ok(keys.includes(k), `watches ${k}: ${keys.join(', ')}`);
  });

  test('findGateway: service ID, <node>/<id> to disambiguate, clear errors', () => {
    const f = new StoreFixture();
    f.register(gatewayRegistration({ node: 'gw-a', datacenter: 'dc1', address: '10.0.0.1', port: 8443 }));
    f.register(gatewayRegistration({ node: 'gw-b', datacenter: 'dc1', address: '10.0.0.2', port: 8443 }));
    f.register(gatewayRegistration({ node: 'gw-b', datacenter: 'dc1', address: '10.0.0.2', port: 9443, id: 'unique' }));
    const dump = f.store.serviceDumpByKind('mesh-gateway').value;
    assert.equal(findGateway(dump, 'dc1', 'unique').found?.Service.Port, 9443);
    const amb = findGateway(dump, 'dc1', 'mesh-gateway');
    assert.equal(amb.error, 'ambiguous');
    assert.match(amb.message ?? '', /gw-a, gw-b.*<node>\/mesh-gateway/);
    assert.equal(findGateway(dump, 'dc1', 'gw-b/mesh-gateway').found?.Node.Node, 'gw-b');
    const nf = findGateway(dump, 'dc1', 'nope');
    assert.equal(nf.error, 'not-found');
    assert.match(nf.message ?? '', /no mesh gateway with service ID "nope"/);
  });
});
