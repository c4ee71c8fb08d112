import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Etcd3 } from 'etcd3';
import { StateBackendErrorCode } from '../../../../src/plugins/state/backend/types.js';
import { MessageType } from '../../../../src/plugins/state/store/index.js';
import { waitFor } from '../../../../src/testing/index.js';
import { EtcdCluster, makeBackend, register, waitLeader, type TestBackend } from './cluster.js';

describe('etcd backend: replication and election (3 backends, 1-member etcd)', () => {
  let cluster: EtcdCluster;
  let backends: TestBackend[];
  let leader: TestBackend;
  let followers: TestBackend[];

  before(async () => {
    cluster = await EtcdCluster.start(1);
    backends = ['s1', 's2', 's3'].map((n) => makeBackend(cluster.endpoints(), n, { prefix: '/basic/' }));
    await Promise.all(backends.map((b) => b.backend.start(AbortSignal.timeout(10_000))));
    leader = await waitLeader(backends);
    followers = backends.filter((b) => b !== leader);
  });

  after(async () => {
    await Promise.all(backends.map((b) => b.backend.close()));
    await cluster.stop();
  });

  it('elects exactly one leader that every backend names, and lists three peers', async () => {
    await waitFor(() => backends.every((b) => b.backend.leader()?.node === leader.node), { message: 'every backend names the leader' });
    assert.equal(backends.filter((b) => b.backend.isLeader()).length, 1);
    assert.deepEqual(leader.leadership, [true]);
    for (const f of followers) assert.deepEqual(f.leadership, []);
    await waitFor(() => backends.every((b) => b.backend.peers().length === 3), { message: 'three peers everywhere' });
    assert.deepEqual(backends[0]?.backend.peers(), ['127.0.0.1:8301', '127.0.0.1:8302', '127.0.0.1:8303']);
    assert.equal(leader.backend.status().isLeader, true);
  });

  it('replicates writes to followers at the same indexes', async () => {
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => leader.backend.apply(register(`rt-${i}`))));
    const max = Math.max(...results.map((r) => r.index));
    // visible on the leader as soon as acknowledged
    for (let i = 0; i < 20; i++) assert.equal(leader.store.nodes().value.find((n) => n.Node === `rt-${i}`)?.CreateIndex, results[i]?.index);
    for (const f of followers) {
      await waitFor(() => f.store.latestIndex() >= max, { message: `${f.node} catches up to ${max}` });
      assert.deepEqual(f.store.snapshot(), leader.store.snapshot());
    }
  });

  it('rejects apply on a follower with NOT_LEADER naming the leader', async () => {
    const f = followers[0] as TestBackend;
    await assert.rejects(f.backend.apply(register('nope')), (err: { code?: string; message: string }) => {
      assert.equal(err.code, StateBackendErrorCode.NOT_LEADER);
      assert.match(err.message, new RegExp(leader.node));
      return true;
    });
  });

  it('rejects an invalid command with the store error and writes no log entry', async () => {
    const client = new Etcd3({ hosts: cluster.endpoints() });
    try {
      const before = await client.getAll().prefix('/basic/log/').count();
      const bad = { Type: MessageType.Register, Body: { Node: '', Address: '10.0.0.1' } } as const;
      await assert.rejects(leader.backend.apply(bad), (err: { code?: string }) => err.code === 'MESHFED_ERR_STATE_INVALID');
      const ok = await leader.backend.apply(register('after-invalid'));
      assert.equal(await client.getAll().prefix('/basic/log/').count(), before + 1);
      assert.ok(ok.index > 0);
    } finally {
      client.close();
    }
  });

  it('defers a command that depends on an earlier one in the same batch, and rejects one that fails at apply time everywhere alike', async () => {
    // the check names a service that only the first command creates: validated again next batch
    const first = leader.backend.apply({ Type: MessageType.Register, Body: { Node: 'dep', Address: '10.0.0.9', Service: { ID: 's1', Service: 'api', Port: 80 } } });
    const second = leader.backend.apply({ Type: MessageType.Register, Body: { Node: 'dep', Address: '10.0.0.9', Check: { CheckID: 'c1', Name: 'api', ServiceID: 's1' } } });
    const [r1, r2] = await Promise.all([first, second]);
    assert.ok(r2.index > r1.index, 'the dependent command landed in a later entry');
    // passes check() now, but fails at apply time after the deregister queued before it
    const dereg = leader.backend.apply({ Type: MessageType.Deregister, Body: { Node: 'dep' } });
    const late = leader.backend.apply({ Type: MessageType.Register, Body: { Node: 'dep', Address: '10.0.0.9', SkipNodeUpdate: true, Check: { CheckID: 'c2', Name: 'api', ServiceID: 's1' } } });
    const [d, l] = await Promise.allSettled([dereg, late]);
    assert.equal(d.status, 'fulfilled');
    if (l.status !== 'rejected') assert.fail('the command failing at apply time was acknowledged');
    assert.equal((l.reason as { code?: string }).code, 'MESHFED_ERR_STATE_INVALID');
    const { index } = await leader.backend.apply(register('after-dep'));
    for (const f of followers) {
      await waitFor(() => f.store.latestIndex() >= index, { message: `${f.node} follows` });
      assert.deepEqual(f.store.snapshot(), leader.store.snapshot());
    }
  });

  it('barrier on a follower sees every acknowledged write', async () => {
    const f = followers[1] as TestBackend;
    const { index } = await leader.backend.apply(register('barrier-node'));
    await f.backend.barrier();
    assert.ok(f.store.latestIndex() >= index);
    assert.ok(f.store.nodes().value.some((n) => n.Node === 'barrier-node'));
  });

  it('close() resigns: another backend leads at once, and the closed one fired onLeadership(false)', async () => {
    const t0 = Date.now();
    await leader.backend.close();
    assert.deepEqual(leader.leadership, [true, false]);
    const next = await waitLeader(followers, 1500);
    assert.ok(Date.now() - t0 < 1500, 'resignation does not wait for the lease TTL');
    await waitFor(() => followers.every((f) => f.backend.peers().length === 2), { message: 'the closed server left peers()' });
    await next.backend.apply(register('after-resign'));
    await assert.rejects(leader.backend.apply(register('closed')), (err: { code?: string }) => err.code === 'MESHFED_ERR_STATE_ETCD_CLOSED');
    await leader.backend.close();
  });
});
