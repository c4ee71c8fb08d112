import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Member } from '../../../src/core/types.js';
import { ServerReconciler } from '../../../src/plugins/state/reconcile.js';
import { MessageType, StateStore, type Command } from '../../../src/plugins/state/store/index.js';
import { createMemoryLogger } from '../../../src/testing/memory-logger.js';
import { waitFor } from '../../../src/testing/wait.js';

const server = (name: string, address: string, status: Member['status'], port = 8300, dc = 'dc1'): Member => ({ name, address, port: 8301, status, tags: { role: 'consul', dc, port: String(port) } });

function setup(members: Member[]): { store: StateStore; writes: Command[]; r: ServerReconciler; members: Member[] } {
  const store = new StateStore();
  const writes: Command[] = [];
  const r = new ServerReconciler({
    datacenter: 'dc1',
    selfNode: 's1',
    store,
    members: () => members,
    write: (cmd) => {
      writes.push(cmd);
      store.apply(store.latestIndex() + 1, cmd);
      return Promise.resolve();
    },
    logger: createMemoryLogger('silent'),
  });
  return { store, writes, r, members };
}

function seed(store: StateStore, index: number, node: string, address: string, check: string): void {
  store.apply(index, {
    Type: MessageType.Register,
    Body: { Node: node, Address: address, TaggedAddresses: { lan: address, wan: '198.51.100.9' }, Service: { ID: 'consul', Service: 'consul', Port: 8300 }, Checks: [{ CheckID: 'serfHealth', Name: 'Serf Health Status', Status: check }] },
  });
}

describe('ServerReconciler (leader: LAN server members → catalog)', () => {
  test('on leadership: alive servers registered, failed ones critical, departed ones deregistered, gateways and self untouched; a second pass writes nothing', async () => {
    const { store, writes, r } = setup([server('s1', '10.0.0.1', 'alive'), server('s2', '10.0.0.2', 'alive', 8310), server('s3', '10.0.0.3', 'failed'), { ...server('c1', '10.0.0.9', 'alive'), tags: { role: 'node', dc: 'dc1' } }]);
    seed(store, 1, 's1', '10.0.0.1', 'passing');
    seed(store, 2, 's3', '10.0.0.3', 'passing');
    seed(store, 3, 's4', '10.0.0.4', 'passing');
    store.apply(4, { Type: MessageType.Register, Body: { Node: 'gw', Address: '10.0.0.50', Service: { ID: 'mesh-gateway', Service: 'mesh-gateway', Kind: 'mesh-gateway', Port: 8443 } } });
    const ac = new AbortController();
    await r.lead(ac.signal);
    assert.equal(store.nodeService('s2', 'consul')?.Port, 8310, 's2 registered with its port tag');
    assert.equal(store.nodeCheck('s2', 'serfHealth')?.Status, 'passing');
    assert.equal(store.nodeCheck('s3', 'serfHealth')?.Status, 'critical', 'failed server: check critical');
    assert.equal(store.nodeService('s3', 'consul')?.Port, 8300, 'failed server keeps its registration');
    assert.deepEqual(store.node('s3')?.TaggedAddresses, { lan: '10.0.0.3', wan: '198.51.100.9' }, 'the check update leaves the node alone');
    assert.equal(store.node('s4'), undefined, 'a server that is no longer a member is deregistered');
    assert.ok(store.node('gw'), 'nodes without service consul are not the reconciler’s');
    assert.equal(store.node('c1'), undefined, 'client agents are not reconciled');
    assert.equal(writes.length, 3, 'self was already right: s2 register, s3 check, s4 deregister');
    const before = writes.length;
    await r.lead(ac.signal);
    assert.equal(writes.length, before, 'reconciling again writes nothing');
    ac.abort();
  });

  test('membership events while leading: join, fail, leave, reap; other DCs, clients and self-leave ignored; nothing after leadership is lost', async () => {
    const { store, writes, r } = setup([server('s1', '10.0.0.1', 'alive')]);
    seed(store, 1, 's1', '10.0.0.1', 'passing');
    const ac = new AbortController();
    r.onMembership({ type: 'join', pool: 'lan', members: [server('s2', '10.0.0.2', 'alive')] });
    assert.equal(writes.length, 0, 'not leading yet');
    await r.lead(ac.signal);
    r.onMembership({ type: 'join', pool: 'lan', members: [server('s2', '10.0.0.2', 'alive'), server('x1', '10.9.0.1', 'alive', 8300, 'dc9'), { ...server('c1', '10.0.0.9', 'alive'), tags: { role: 'node', dc: 'dc1' } }] });
    await waitFor(() => store.nodeCheck('s2', 'serfHealth')?.Status === 'passing');
    r.onMembership({ type: 'fail', pool: 'lan', members: [server('s2', '10.0.0.2', 'failed')] });
    await waitFor(() => store.nodeCheck('s2', 'serfHealth')?.Status === 'critical');
    r.onMembership({ type: 'join', pool: 'lan', members: [server('s2', '10.0.0.2', 'alive')] });
    await waitFor(() => store.nodeCheck('s2', 'serfHealth')?.Status === 'passing');
    r.onMembership({ type: 'leave', pool: 'lan', members: [server('s2', '10.0.0.2', 'left')] });
    await waitFor(() => store.node('s2') === undefined);
    r.onMembership({ type: 'join', pool: 'lan', members: [server('s5', '10.0.0.5', 'alive')] });
    await waitFor(() => store.node('s5') !== undefined);
    r.onMembership({ type: 'reap', pool: 'lan', members: [server('s5', '10.0.0.5', 'failed')] });
    await waitFor(() => store.node('s5') === undefined);
    r.onMembership({ type: 'leave', pool: 'lan', members: [server('s1', '10.0.0.1', 'left')] });
    r.onMembership({ type: 'join', pool: 'wan', members: [server('s7.dc1', '10.0.0.7', 'alive')] });
    assert.equal(store.node('x1'), undefined);
    assert.equal(store.node('c1'), undefined);
    const count = writes.length;
    ac.abort();
    r.onMembership({ type: 'join', pool: 'lan', members: [server('s6', '10.0.0.6', 'alive')] });
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(writes.length, count, 'nothing after leadership is lost');
    assert.ok(store.node('s1'), 'the leader never deregisters itself');
  });
});
