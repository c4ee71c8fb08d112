import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { StateErrorCode, StateValidationError, type Command, type RegisterRequest } from '../../../../src/plugins/state/store/index.js';
import { dereg, fsUpsert, gateway, newStore, reg } from './helpers.js';

/** Assert `apply` throws a StateValidationError naming `field`, and the store is unchanged. */
function rejects(body: RegisterRequest | Command, field: string, message?: RegExp): void {
  const { store } = newStore();
  store.apply(1, reg(gateway('gw1')));
  const before = JSON.stringify(store.snapshot());
  const cmd = 'Type' in body ? body : reg(body);
  assert.throws(
    () => store.apply(2, cmd),
    (err: unknown) => {
      assert.ok(err instanceof StateValidationError, `expected StateValidationError, got ${String(err)}`);
      assert.equal(err.code, StateErrorCode.INVALID);
      assert.equal(err.field, field);
      assert.ok(err.message.includes(field), err.message);
      if (message) assert.match(err.message, message);
      return true;
    },
  );
  assert.equal(JSON.stringify(store.snapshot()), before, 'nothing half-written');
}

const bigMeta = (n: number): Record<string, string> => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, 'v']));

describe('validation names the field and writes nothing', () => {
  test('missing node / bad address', () => {
    rejects({ Node: '', Address: '10.0.0.1' }, 'Node', /missing node name/);
    rejects({ Address: '10.0.0.1' } as RegisterRequest, 'Node');
    rejects({ Node: 'n', Address: '' }, 'Address', /missing address/);
    rejects({ Node: 'n', Address: 'not an address!' }, 'Address', /bad address/);
    rejects({ Node: 'n', Address: '10.0.0.1', TaggedAddresses: { wan: '-bad-' } }, 'TaggedAddresses.wan');
    rejects({ ...gateway('gw9'), Service: { Service: 'web', TaggedAddresses: { wan: { Address: 'x y', Port: 1 } } } }, 'Service.TaggedAddresses.wan.Address');
    rejects({ ...gateway('gw9'), Service: { Service: 'web', Port: 70000 } }, 'Service.Port');
    rejects({ ...gateway('gw9'), Service: { Service: 'mgw', Kind: 'mesh-gateway' } }, 'Service.Port', /non-zero/);
    rejects({ ...gateway('gw9'), Service: { Service: '' } }, 'Service.Service');
    rejects({ ...gateway('gw9'), Service: { Service: 'x', Kind: 'weird' as never } }, 'Service.Kind');
    rejects(dereg(''), 'Node');
  });

  test('unknown check status, check for an unknown service, check of another node', () => {
    // the node and service parts are valid: the late check error must not leave them written
    rejects({ ...gateway('gw9'), Checks: [{ CheckID: 'ok', Status: 'passing' }, { CheckID: 'c', Status: 'sick' }] }, 'Checks[1].Status', /unknown check status "sick"/);
    rejects({ ...gateway('gw9'), Check: { CheckID: 'c', ServiceID: 'nope' } }, 'Check.ServiceID', /missing service registration/);
    rejects({ ...gateway('gw9'), Checks: [{ CheckID: 'c', Node: 'other' }] }, 'Checks[0].Node');
    rejects({ ...gateway('gw9'), Checks: [{ Status: 'passing' }] }, 'Checks[0].CheckID');
  });

  test('a check that is not an object is named by its position', () => {
    rejects({ ...gateway('gw9'), Checks: [{ CheckID: 'ok' }, 'x' as never] }, 'Checks[1]', /expected an object/);
    rejects({ ...gateway('gw9'), Check: 7 as never }, 'Check', /expected an object/);
  });

  test('values equal to the stored ones are accepted; new bad ones next to them are still refused', () => {
    const node = { Node: 'n', Address: '10.0.0.1', TaggedAddresses: { lan: '10.0.0.1' }, NodeMeta: bigMeta(64) };
    const service = { Service: 'web', Address: 'web.example.com', TaggedAddresses: { lan: { Address: '10.0.0.1', Port: 80 } }, Port: 80 };
    const { store } = newStore();
    store.apply(1, reg({ ...node, Service: service }));
    const again = (body: RegisterRequest): unknown => store.apply(2, reg(body));
    const invalid = (body: RegisterRequest, field: string, message?: RegExp): void => {
      assert.throws(() => again(body), (err: unknown) => err instanceof StateValidationError && err.field === field && (!message || message.test(err.message)));
    };
    invalid({ ...node, TaggedAddresses: { lan: '10.0.0.1', wan: '-bad-' } }, 'TaggedAddresses.wan');
    invalid({ ...node, NodeMeta: { ...bigMeta(64), extra: 'v' } }, 'NodeMeta', /65 > 64/);
    invalid({ ...node, NodeMeta: { ...bigMeta(63), 'bad key': 'v' } }, 'NodeMeta.bad key');
    invalid({ ...node, Address: 'not an address!' }, 'Address');
    invalid({ ...node, Service: { ...service, TaggedAddresses: { lan: { Address: '10.0.0.1', Port: 80 }, wan: { Address: 'x y', Port: 1 } } } }, 'Service.TaggedAddresses.wan.Address');
    invalid({ ...node, Service: { ...service, TaggedAddresses: { lan: { Address: '10.0.0.1', Port: 70000 } } } }, 'Service.TaggedAddresses.lan.Port');
    invalid({ ...node, Service: { ...service, Address: 'a b' } }, 'Service.Address');
    assert.equal(store.latestIndex(), 1);
    // the same registration again changes nothing: the stored rows are kept as they are
    const before = store.snapshot();
    again({ ...node, Service: service });
    assert.deepEqual(store.snapshot().Tables, before.Tables);
  });

  test('oversize meta: > 64 keys, values > 512 characters, bad keys', () => {
    rejects({ Node: 'n', Address: '10.0.0.1', NodeMeta: bigMeta(65) }, 'NodeMeta', /65 > 64/);
    rejects({ ...gateway('gw9'), Service: { Service: 'web', Meta: { long: 'x'.repeat(513) } } }, 'Service.Meta.long', /513 > 512/);
    rejects({ Node: 'n', Address: '10.0.0.1', NodeMeta: { 'bad key': 'v' } }, 'NodeMeta.bad key');
    const { store } = newStore();
    store.apply(1, reg({ Node: 'n', Address: 'host.example.com', NodeMeta: { ...bigMeta(63), edge: 'x'.repeat(512) } }));
    assert.equal(Object.keys(store.nodes().value[0]?.Meta ?? {}).length, 64);
  });

  test('federation state without datacenter', () => {
    rejects(fsUpsert({ Datacenter: '' }), 'State.Datacenter', /missing datacenter on federation state/);
    rejects(fsUpsert({ Datacenter: 'dc2', MeshGateways: [{}] as never }), 'State.MeshGateways[0]');
    rejects(fsUpsert({ Datacenter: 'dc2', PrimaryModifyIndex: -1 }), 'State.PrimaryModifyIndex');
  });

  test('IPv6 and host names are valid addresses', () => {
    const { store } = newStore();
    store.apply(1, reg({ Node: 'a', Address: '2001:db8::1' }));
    store.apply(2, reg({ Node: 'b', Address: 'node-b.dc1.consul.' }));
    assert.equal(store.nodes().value.length, 2);
  });
});
