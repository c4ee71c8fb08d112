import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MessageType, StateErrorCode, ZERO_TIME, type Command } from '../../../../src/plugins/state/store/index.js';
import { dereg, fsDelete, fsUpsert, gateway, newStore, reg } from './helpers.js';

describe('federation states', () => {
  test('upsert: keys are case-insensitive, CreateIndex kept, ModifyIndex and table index bumped', () => {
    const { store } = newStore();
    assert.equal(store.apply(5, fsUpsert({ Datacenter: 'dc2' })), true);
    let got = store.federationStateGet('DC2').value;
    assert.deepEqual(got, { Datacenter: 'dc2', MeshGateways: [], UpdatedAt: ZERO_TIME, PrimaryModifyIndex: 5, CreateIndex: 5, ModifyIndex: 5 });
    store.apply(7, fsUpsert({ Datacenter: 'DC2', UpdatedAt: '2020-01-01T00:00:00Z' }));
    got = store.federationStateGet('dc2').value;
    assert.equal(got?.Datacenter, 'DC2');
    assert.equal(got?.CreateIndex, 5);
    assert.equal(got?.ModifyIndex, 7);
    assert.equal(got?.PrimaryModifyIndex, 7, 'PrimaryModifyIndex 0 is stamped with the write index');
    assert.equal(store.federationStateList().value.length, 1);
    assert.equal(store.tableIndex('federation-states'), 7);
    assert.equal(store.federationStateGet('dC2').index, 7);
    assert.ok(Object.isFrozen(got));
  });

  test('upsert keeps a replicated PrimaryModifyIndex', () => {
    const { store } = newStore();
    store.apply(3, fsUpsert({ Datacenter: 'dc3', PrimaryModifyIndex: 99 }));
    assert.equal(store.federationStateGet('dc3').value?.PrimaryModifyIndex, 99);
  });

  test('list is ordered by lowercase datacenter; get of a missing dc is undefined with index ≥ 1', () => {
    const { store } = newStore();
    assert.deepEqual(store.federationStateGet('nope'), { index: 1, value: undefined });
    assert.deepEqual(store.federationStateList(), { index: 1, value: [] });
    store.apply(1, fsUpsert({ Datacenter: 'dc-b' }));
    store.apply(2, fsUpsert({ Datacenter: 'DC-A' }));
    store.apply(3, fsUpsert({ Datacenter: 'dc-c' }));
    assert.deepEqual(store.federationStateList().value.map((s) => s.Datacenter), ['DC-A', 'dc-b', 'dc-c']);
  });

  test('delete bumps the table index; deleting a missing record is a no-op', () => {
    const { store } = newStore();
    store.apply(4, fsUpsert({ Datacenter: 'dc2' }));
    assert.equal(store.apply(6, fsDelete('DC2')), undefined);
    assert.equal(store.federationStateGet('dc2').value, undefined);
    assert.equal(store.tableIndex('federation-states'), 6);
    store.apply(8, fsDelete('dc2'));
    assert.equal(store.tableIndex('federation-states'), 6, 'no bump for a missing record');
    assert.equal(store.latestIndex(), 8);
  });

  test('unknown op and unknown message type are rejected', () => {
    const { store } = newStore();
    const badOp = { Type: MessageType.FederationState, Body: { Op: 'merge', State: { Datacenter: 'dc2' } } } as unknown as Command;
    assert.throws(() => store.apply(1, badOp), { code: StateErrorCode.UNKNOWN_COMMAND, message: /invalid federation state operation type: merge/ });
    assert.throws(() => store.apply(1, { Type: 77, Body: {} } as unknown as Command), { code: StateErrorCode.UNKNOWN_COMMAND });
    assert.throws(() => store.apply(0, fsUpsert({ Datacenter: 'x' })), { code: StateErrorCode.BAD_INDEX });
    store.apply(10, fsUpsert({ Datacenter: 'x' }));
    assert.throws(() => store.apply(9, fsUpsert({ Datacenter: 'x' })), { code: StateErrorCode.BAD_INDEX });
  });

  test('stored mesh gateways are a copy of the input', () => {
    const { store } = newStore();
    store.apply(1, reg(gateway('gw1')));
    const gws = [...store.serviceDumpByKind('mesh-gateway').value];
    store.apply(2, fsUpsert({ Datacenter: 'dc1', MeshGateways: gws }));
    gws.pop();
    assert.equal(store.federationStateGet('dc1').value?.MeshGateways.length, 1);
    assert.equal(store.federationStateGet('dc1').value?.MeshGateways[0]?.Service.Kind, 'mesh-gateway');
  });
});

describe('catalog register/deregister', () => {
  test('register writes node, service and checks with indexes; reads see them', () => {
    const { store } = newStore();
    store.apply(10, reg(gateway('gw1')));
    assert.equal(store.tableIndex('nodes'), 10);
    assert.equal(store.tableIndex('services'), 10);
    assert.equal(store.tableIndex('checks'), 10);
    const [n] = store.nodes().value;
    assert.deepEqual(n, { ID: '', Node: 'gw1', Address: '10.0.0.1', Datacenter: 'dc1', TaggedAddresses: {}, Meta: {}, CreateIndex: 10, ModifyIndex: 10 });
    assert.deepEqual(store.services(), { index: 10, value: { 'mesh-gateway': [] } });
    const [sn] = store.serviceNodes('Mesh-Gateway').value;
    assert.equal(sn?.ServiceID, 'mgw');
    assert.equal(sn?.ServicePort, 8443);
    assert.deepEqual(sn?.ServiceTaggedAddresses.wan, { Address: '198.51.100.1', Port: 443 });
    const [csn] = store.checkServiceNodes('mesh-gateway').value;
    assert.equal(csn?.Checks[0]?.ServiceName, 'mesh-gateway');
    assert.equal(csn?.Node.Node, 'gw1');
    assert.equal(store.serviceDumpByKind('mesh-gateway').value.length, 1);
    assert.equal(store.serviceDumpByKind('').value.length, 0);
  });

  test('re-registering unchanged keeps every ModifyIndex and table index', () => {
    const { store } = newStore();
    store.apply(10, reg(gateway('gw1')));
    store.apply(11, reg(gateway('gw1')));
    assert.equal(store.tableIndex('nodes'), 10);
    assert.equal(store.tableIndex('services'), 10);
    assert.equal(store.tableIndex('checks'), 10);
    assert.equal(store.nodes().value[0]?.ModifyIndex, 10);
    assert.equal(store.latestIndex(), 11);
    // a changed check only touches the checks table and keeps its CreateIndex
    store.apply(12, reg(gateway('gw1', 'critical')));
    assert.equal(store.tableIndex('nodes'), 10);
    assert.equal(store.tableIndex('services'), 10);
    assert.equal(store.tableIndex('checks'), 12);
    const c = store.checkServiceNodes('mesh-gateway').value[0]?.Checks[0];
    assert.deepEqual([c?.Status, c?.CreateIndex, c?.ModifyIndex], ['critical', 10, 12]);
  });

  test('node names and service IDs are case-insensitive; SkipNodeUpdate keeps the node', () => {
    const { store } = newStore();
    store.apply(1, reg({ Node: 'web1', Address: '10.0.0.2' }));
    store.apply(2, reg({ Node: 'WEB1', Address: '10.0.0.3', SkipNodeUpdate: true, Service: { Service: 'web', Port: 80, Tags: ['b', 'a'] } }));
    assert.equal(store.nodes().value.length, 1);
    assert.equal(store.nodes().value[0]?.Address, '10.0.0.2');
    store.apply(3, reg({ Node: 'web1', Address: '10.0.0.2', Service: { ID: 'WEB', Service: 'web', Port: 81, Tags: ['c'] } }));
    assert.equal(store.serviceNodes('web').value.length, 1);
    assert.equal(store.serviceNodes('web').value[0]?.ServicePort, 81);
    assert.equal(store.serviceNodes('web').value[0]?.CreateIndex, 2);
  });

  test('services() unions tags; checkServiceNodes passingOnly filters unhealthy instances', () => {
    const { store } = newStore();
    store.apply(1, reg({ Node: 'a', Address: '10.0.0.1', Service: { Service: 'web', Tags: ['x', 'y'] }, Checks: [{ CheckID: 'node-ok', Status: 'passing' }] }));
    store.apply(2, reg({ Node: 'b', Address: '10.0.0.2', Service: { Service: 'web', Tags: ['y', 'z'] }, Check: { Name: 'web-check', Status: 'warning', ServiceID: 'web' } }));
    assert.deepEqual(store.services().value, { web: ['x', 'y', 'z'] });
    assert.equal(store.checkServiceNodes('web').value.length, 2);
    assert.deepEqual(store.checkServiceNodes('web', { passingOnly: true }).value.map((c) => c.Node.Node), ['a']);
    // an empty status defaults to critical
    store.apply(3, reg({ Node: 'a', Address: '10.0.0.1', Checks: [{ CheckID: 'node-ok' }] }));
    assert.equal(store.checkServiceNodes('web', { passingOnly: true }).value.length, 0);
    assert.equal(store.checkServiceNodes('web').index, 3);
  });

  test('deregister check, service (with its checks) and node (with everything); deletes bump table indexes', () => {
    const { store } = newStore();
    store.apply(1, reg(gateway('gw1')));
    store.apply(2, reg({ Node: 'gw1', Address: '10.0.0.1', Datacenter: 'dc1', Checks: [{ CheckID: 'serf', Status: 'passing' }] }));
    store.apply(3, dereg('gw1', { CheckID: 'serf' }));
    assert.equal(store.tableIndex('checks'), 3);
    assert.deepEqual(store.checkServiceNodes('mesh-gateway').value[0]?.Checks.map((c) => c.CheckID), ['mgw-alive']);
    store.apply(4, dereg('GW1', { ServiceID: 'MGW' }));
    assert.equal(store.tableIndex('services'), 4);
    assert.equal(store.tableIndex('checks'), 4);
    assert.equal(store.serviceNodes('mesh-gateway').value.length, 0);
    assert.equal(store.nodes().value.length, 1);
    store.apply(5, dereg('gw1', { ServiceID: 'mgw' }));
    assert.equal(store.tableIndex('services'), 4, 'missing service: no bump');
    store.apply(6, reg(gateway('gw1')));
    store.apply(7, dereg('gw1'));
    assert.deepEqual([store.tableIndex('nodes'), store.tableIndex('services'), store.tableIndex('checks')], [7, 7, 7]);
    assert.deepEqual(store.nodes().value, []);
    assert.deepEqual(store.services().value, {});
    assert.equal(store.nodes().index, 7);
    store.apply(8, dereg('gw1'));
    assert.equal(store.tableIndex('nodes'), 7);
  });
});
