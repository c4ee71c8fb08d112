import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { StateErrorCode, type StoreSnapshot } from '../../../../src/plugins/state/store/index.js';
import { dereg, fsDelete, fsUpsert, gateway, newStore, reg } from './helpers.js';

describe('snapshot and restore', () => {
  test('JSON round-trip preserves every record, record index and table index', () => {
    const { store } = newStore();
    store.apply(3, reg(gateway('gw1')));
    store.apply(4, reg(gateway('gw2')));
    store.apply(5, reg(gateway('gw1', 'critical')));
    store.apply(6, fsUpsert({ Datacenter: 'DC1', MeshGateways: store.serviceDumpByKind('mesh-gateway').value }));
    store.apply(7, fsUpsert({ Datacenter: 'dc2', PrimaryModifyIndex: 42 }));
    store.apply(8, fsUpsert({ Datacenter: 'gone' }));
    store.apply(9, fsDelete('gone'));
    store.apply(10, dereg('nobody'));
    const snap = store.snapshot();
    const wire = JSON.parse(JSON.stringify(snap)) as StoreSnapshot;

    const { store: copy } = newStore();
    copy.restore(wire);
    assert.deepEqual(copy.snapshot(), snap);
    for (const t of ['nodes', 'services', 'checks', 'federation-states'] as const) assert.equal(copy.tableIndex(t), store.tableIndex(t), t);
    assert.deepEqual([copy.tableIndex('nodes'), copy.tableIndex('checks'), copy.tableIndex('federation-states')], [4, 5, 9]);
    assert.equal(copy.latestIndex(), 10);
    assert.deepEqual(copy.federationStateGet('dc1'), store.federationStateGet('dc1'));
    assert.deepEqual(copy.checkServiceNodes('mesh-gateway'), store.checkServiceNodes('mesh-gateway'));
    // secondary indexes are rebuilt and the restored store keeps working
    copy.apply(11, dereg('GW1', { ServiceID: 'mgw' }));
    assert.equal(copy.serviceDumpByKind('mesh-gateway').value.length, 1);
    assert.equal(copy.federationStateGet('DC2').value?.PrimaryModifyIndex, 42);
    assert.equal(store.serviceDumpByKind('mesh-gateway').value.length, 2, 'source unaffected');
  });

  test('restore of a malformed snapshot fails and leaves the store unchanged', () => {
    const { store } = newStore();
    store.apply(1, fsUpsert({ Datacenter: 'dc1' }));
    const before = store.snapshot();
    assert.throws(() => store.restore({ Version: 2 } as unknown as StoreSnapshot), { code: StateErrorCode.BAD_SNAPSHOT });
    const bad = { ...before, Tables: { ...before.Tables, checks: { Index: 1 } } } as unknown as StoreSnapshot;
    assert.throws(() => store.restore(bad), { code: StateErrorCode.BAD_SNAPSHOT, message: /checks/ });
    assert.deepEqual(store.snapshot(), before);
  });
});
