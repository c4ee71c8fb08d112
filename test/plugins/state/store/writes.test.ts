/** The register write path: field-wise change detection, shared unchanged parts, index upkeep. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { StateStore, WatchSet } from '../../../../src/plugins/state/store/index.js';
import { dereg, newStore, reg } from './helpers.js';

const body = (extra: Record<string, unknown> = {}): Parameters<typeof reg>[0] => ({
    Node: 'web1',
    Address: '10.0.0.1',
    TaggedAddresses: { wan: '198.51.100.1', lan: '10.0.0.1' },
    NodeMeta: { zone: 'a', rack: 'r1' },
    Service: { ID: 'web-1', Service: 'web', Port: 80, Tags: ['v1'], TaggedAddresses: { lan: { Address: '10.0.0.1', Port: 80 } }, Meta: { v: '1' } },
    Checks: [{ CheckID: 'web-alive', Status: 'passing', ServiceID: 'web-1' }],
    ...extra,
  });

describe('register write path', () => {
  test('an unchanged registration keeps the very same frozen rows; key order and absent vs empty do not matter', () => {
    const { store } = newStore();
    store.apply(1, reg(body()));
    const node = store.nodes().value[0];
    const svc = store.checkServiceNodes('web').value[0];
    assert.ok(node && svc);
    assert.ok(Object.isFrozen(node) && Object.isFrozen(node.Meta) && Object.isFrozen(node.TaggedAddresses));
    assert.ok(Object.isFrozen(svc.Service) && Object.isFrozen(svc.Service.Tags) && Object.isFrozen(svc.Service.TaggedAddresses.lan));
    assert.deepEqual(Object.keys(node.Meta), ['rack', 'zone'], 'stored keys are sorted');
    store.apply(2, reg(body({ NodeMeta: { rack: 'r1', zone: 'a' }, TaggedAddresses: { lan: '10.0.0.1', wan: '198.51.100.1' } })));
    assert.equal(store.nodes().value[0], node);
    assert.equal(store.checkServiceNodes('web').value[0]?.Service, svc.Service);
    assert.equal(store.checkServiceNodes('web').value[0]?.Checks[0], svc.Checks[0]);
    assert.deepEqual([store.tableIndex('nodes'), store.tableIndex('services'), store.tableIndex('checks'), store.latestIndex()], [1, 1, 1, 2]);
    // absent meta and an empty object are the same data
    store.apply(3, reg({ Node: 'web2', Address: '10.0.0.2' }));
    const web2 = store.nodes().value[1];
    store.apply(4, reg({ Node: 'web2', Address: '10.0.0.2', NodeMeta: {}, TaggedAddresses: {} }));
    assert.equal(store.nodes().value[1], web2);
    assert.equal(store.tableIndex('nodes'), 3);
  });

  test('each changed field is detected', () => {
    const { store } = newStore();
    let idx = 1;
    store.apply(idx, reg(body()));
    const changes: [Record<string, unknown>, 'nodes' | 'services' | 'checks'][] = [
      [{ ID: 'id-1' }, 'nodes'],
      [{ Address: '10.0.0.9' }, 'nodes'],
      [{ Datacenter: 'dc9' }, 'nodes'],
      [{ TaggedAddresses: { lan: '10.0.0.1' } }, 'nodes'],
      [{ TaggedAddresses: { lan: '10.0.0.1', wan: '198.51.100.2' } }, 'nodes'],
      [{ NodeMeta: { zone: 'a', rack: 'r1', extra: 'x' } }, 'nodes'],
      [{ NodeMeta: { zone: 'b', rack: 'r1' } }, 'nodes'],
      [{ Service: { ID: 'web-1', Service: 'web', Port: 81, Tags: ['v1'], TaggedAddresses: { lan: { Address: '10.0.0.1', Port: 80 } }, Meta: { v: '1' } } }, 'services'],
      [{ Service: { ID: 'web-1', Service: 'web', Port: 80, Tags: ['v1', 'x'], TaggedAddresses: { lan: { Address: '10.0.0.1', Port: 80 } }, Meta: { v: '1' } } }, 'services'],
      [{ Service: { ID: 'web-1', Service: 'web', Port: 80, Tags: ['v2'], TaggedAddresses: { lan: { Address: '10.0.0.1', Port: 80 } }, Meta: { v: '1' } } }, 'services'],
      [{ Service: { ID: 'web-1', Service: 'web', Port: 80, Tags: ['v2'], TaggedAddresses: { lan: { Address: '10.0.0.1', Port: 8080 } }, Meta: { v: '1' } } }, 'services'],
      [{ Service: { ID: 'web-1', Service: 'web', Port: 80, Tags: ['v2'], TaggedAddresses: { lan: { Address: '10.0.0.1', Port: 8080 } }, Meta: { v: '2' } } }, 'services'],
      [{ Service: { ID: 'web-1', Service: 'web', Port: 80, Tags: ['v2'], Address: '10.0.0.5', TaggedAddresses: { lan: { Address: '10.0.0.1', Port: 8080 } }, Meta: { v: '2' } } }, 'services'],
      [{ Checks: [{ CheckID: 'web-alive', Status: 'critical', ServiceID: 'web-1' }] }, 'checks'],
      [{ Checks: [{ CheckID: 'web-alive', Status: 'critical', ServiceID: 'web-1', Output: 'boom' }] }, 'checks'],
      [{ Checks: [{ CheckID: 'web-alive', Status: 'critical', ServiceID: 'web-1', Output: 'boom', Notes: 'n' }] }, 'checks'],
      [{ Checks: [{ CheckID: 'web-alive', Name: 'alive', Status: 'critical', ServiceID: 'web-1', Output: 'boom', Notes: 'n' }] }, 'checks'],
    ];
    let acc: Record<string, unknown> = {};
    for (const [change, table] of changes) {
      acc = { ...acc, ...change };
      idx++;
      store.apply(idx, reg(body(acc)));
      assert.equal(store.tableIndex(table), idx, `${JSON.stringify(change)} changes ${table}`);
      // and re-applying it changes nothing
      store.apply(idx + 1, reg(body(acc)));
      assert.equal(store.tableIndex(table), idx, `${JSON.stringify(change)} again is a no-op`);
      idx++;
    }
  });

  test('secondary indexes follow a service rename, a kind change and a check moving between services', () => {
    const { store } = newStore();
    store.apply(1, reg({ Node: 'n1', Address: '10.0.0.1', Service: { ID: 's1', Service: 'web' }, Checks: [{ CheckID: 'c1', ServiceID: 's1' }] }));
    store.apply(2, reg({ Node: 'n1', Address: '10.0.0.1', Service: { ID: 's2', Service: 'db' } }));
    store.apply(3, reg({ Node: 'n1', Address: '10.0.0.1', Service: { ID: 's1', Service: 'api', Kind: 'connect-proxy' } }));
    assert.equal(store.serviceNodes('web').value.length, 0);
    assert.equal(store.serviceNodes('api').value.length, 1);
    assert.equal(store.serviceDumpByKind('connect-proxy').value.length, 1);
    assert.equal(store.serviceDumpByKind('').value.length, 1);
    // the check still names the old service name until re-registered; move it to s2
    store.apply(4, reg({ Node: 'n1', Address: '10.0.0.1', Checks: [{ CheckID: 'c1', ServiceID: 's2' }] }));
    assert.equal(store.checkServiceNodes('db').value[0]?.Checks[0]?.ServiceName, 'db');
    // deregistering s1 must not take c1 along any more; deregistering s2 does
    store.apply(5, dereg('n1', { ServiceID: 's1' }));
    assert.deepEqual(store.checkServiceNodes('db').value[0]?.Checks.map((c) => c.CheckID), ['c1']);
    store.apply(6, dereg('n1', { ServiceID: 's2' }));
    assert.equal(store.tableIndex('checks'), 6);
    assert.equal(store.serviceDumpByKind('').value.length, 0);
    store.apply(7, reg({ Node: 'n1', Address: '10.0.0.1', Checks: [{ CheckID: 'c1' }] }));
    store.apply(8, dereg('n1'));
    assert.deepEqual(store.snapshot().Tables.checks.Records, []);
  });

  test('watchers wake only for changed keys, also when the first write happened with nobody watching', async () => {
    const { store } = newStore();
    store.apply(1, reg(body()));
    store.apply(2, reg({ Node: 'other', Address: '10.0.0.2', Service: { Service: 'db' } }));
    const ws = new WatchSet();
    const { index } = store.checkServiceNodes('web', {}, ws);
    let woke = 0;
    const q = store.blockingQuery({ minQueryIndex: index }, (w) => store.checkServiceNodes('web', {}, w)).then((r) => {
      woke++;
      return r;
    });
    store.apply(3, reg({ Node: 'other', Address: '10.0.0.2', Service: { Service: 'db', Port: 1 } }));
    store.apply(4, reg(body())); // unchanged: no wake
    await new Promise((r) => setImmediate(r));
    assert.equal(woke, 0);
    store.apply(5, reg(body({ NodeMeta: { zone: 'b' } })));
    const r = await q;
    assert.equal(woke, 1);
    assert.equal(r.index, 5);
    assert.equal(store.watcherCount, 0);
  });

  test('validation errors name the first bad key in sorted order, whatever the input key order', () => {
    const { store } = newStore();
    const field = (body: Record<string, unknown>): string | undefined => {
      try {
        store.apply(1, reg({ Node: 'n', Address: '10.0.0.1', ...body }));
      } catch (err) {
        return (err as { field?: string }).field;
      }
      return undefined;
    };
    assert.equal(field({ NodeMeta: { z: 1, 'b!': 'x', a: 'ok' } }), 'NodeMeta.b!');
    assert.equal(field({ NodeMeta: { z: 'x'.repeat(513), c: 2 } }), 'NodeMeta.c');
    assert.equal(field({ NodeMeta: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [i === 0 ? 'bad key' : `k${i}`, 'v'])) }), 'NodeMeta');
    assert.equal(field({ TaggedAddresses: { wan: 'not an address!', lan: '', ok: '10.0.0.1' } }), 'TaggedAddresses.lan');
    assert.equal(field({ Service: { Service: 's', Meta: { y: 'ok', x: null } } }), 'Service.Meta.x');
    assert.equal(store.latestIndex(), 0);
    // unsorted valid input is stored sorted; integer-like keys too
    store.apply(1, reg({ Node: 'n', Address: '10.0.0.1', NodeMeta: { b: '1', a: '2', '10': 'x', '9': 'y' }, TaggedAddresses: { wan: '10.0.0.2', lan: '10.0.0.1' } }));
    const n = store.nodes().value[0];
    assert.deepEqual(Object.entries(n?.Meta ?? {}), [['9', 'y'], ['10', 'x'], ['a', '2'], ['b', '1']]);
    assert.deepEqual(Object.keys(n?.TaggedAddresses ?? {}), ['lan', 'wan']);
  });

  test('a restored row with the same data is not rewritten; the next change rewrites it whole', () => {
    const { store } = newStore();
    store.apply(1, reg(body()));
    const snap = JSON.parse(JSON.stringify(store.snapshot())) as ReturnType<StateStore['snapshot']>;
    const copy = new StateStore();
    copy.restore(snap);
    copy.apply(2, reg(body()));
    assert.equal(copy.tableIndex('nodes'), 1);
    copy.apply(3, reg(body({ Address: '10.0.0.3' })));
    assert.deepEqual(copy.nodes().value[0], { ...store.nodes().value[0], Address: '10.0.0.3', ModifyIndex: 3 });
  });
});
