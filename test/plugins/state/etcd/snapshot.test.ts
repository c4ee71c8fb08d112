import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Etcd3 } from 'etcd3';
import { MessageType, type Command } from '../../../../src/plugins/state/store/index.js';
import { waitFor } from '../../../../src/testing/index.js';
import { EtcdCluster, makeBackend, register, waitLeader, type TestBackend } from './cluster.js';

describe('etcd backend snapshots (1-member etcd)', () => {
  let cluster: EtcdCluster;
  const backends: TestBackend[] = [];

  before(async () => {
    cluster = await EtcdCluster.start(1);
  });

  after(async () => {
    await Promise.all(backends.map((b) => b.backend.close()));
    await cluster.stop();
  });

  it('a fresh backend restores from the snapshot plus the log and matches the leader', async () => {
    const prefix = '/snap/';
    const leader = makeBackend(cluster.endpoints(), 'a1', { prefix, snapshotEvery: 20 });
    backends.push(leader);
    await leader.backend.start(AbortSignal.timeout(10_000));
    await waitLeader([leader]);
    for (let i = 0; i < 50; i++) await leader.backend.apply(register(`sn-${i}`, `svc-${i % 7}`));
    await leader.backend.apply({ Type: MessageType.Deregister, Body: { Node: 'sn-3' } });
    const client = new Etcd3({ hosts: cluster.endpoints() });
    try {
      await waitFor(async () => (await client.get(`${prefix}snapshot`).string()) !== null, { message: 'snapshot pointer written' });
      const ptr = JSON.parse((await client.get(`${prefix}snapshot`).string()) as string) as { index: number; seq: number; chunks: number };
      assert.ok(ptr.seq >= 40, `snapshot covers seq ${ptr.seq}`);
      const logKeys = await client.getAll().prefix(`${prefix}log/`).keys();
      assert.ok(logKeys.length <= 51 - ptr.seq, `log truncated up to the snapshot (${logKeys.length} entries left)`);
      assert.equal((await client.getAll().prefix(`${prefix}snapshot/`).keys()).length, ptr.chunks, 'older chunk sets deleted');
    } finally {
      client.close();
    }
    const fresh = makeBackend(cluster.endpoints(), 'a2', { prefix, snapshotEvery: 20 });
    backends.push(fresh);
    await fresh.backend.start(AbortSignal.timeout(10_000));
    assert.ok(Number(fresh.backend.status().snapshotIndex) > 0);
    assert.deepEqual(fresh.store.snapshot(), leader.store.snapshot());
    const { index } = await leader.backend.apply(register('after-snapshot'));
    await waitFor(() => fresh.store.latestIndex() >= index, { message: 'fresh backend follows' });
    assert.deepEqual(fresh.store.snapshot(), leader.store.snapshot());
  });

  it('each snapshot compacts etcd history up to itself (not with compactHistory: false)', async () => {
    const client = new Etcd3({ hosts: cluster.endpoints() });
    const revision = async (): Promise<number> => Number((await client.kv.range({ key: Buffer.from('/none') })).header.revision);
    const readableAt = async (rev: number): Promise<boolean> => {
      try {
        await client.kv.range({ key: Buffer.from('/none'), revision: rev });
        return true;
      } catch (err) {
        assert.match((err as Error).message, /compacted/);
        return false;
      }
    };
    const writeUntilSnapshot = async (prefix: string, node: string, compactHistory: boolean): Promise<void> => {
      const b = makeBackend(cluster.endpoints(), node, { prefix, snapshotEvery: 5, compactHistory });
      backends.push(b);
      await b.backend.start(AbortSignal.timeout(10_000));
      await waitLeader([b]);
      for (let i = 0; i < 12; i++) await b.backend.apply(register(`${node}-${i}`));
      await waitFor(() => Number(b.backend.status().snapshotIndex) > 0, { message: `${node}: snapshot written` });
    };
    try {
      const offStart = await revision();
      await writeUntilSnapshot('/compact-off/', 'c1', false);
      assert.equal(await readableAt(offStart), true, 'history kept with compactHistory: false');
      const onStart = await revision();
      await writeUntilSnapshot('/compact-on/', 'c2', true);
      await waitFor(async () => !(await readableAt(onStart)), { message: 'history before the snapshot compacted' });
    } finally {
      client.close();
    }
  });

  it('chunks a large snapshot into several keys', async () => {
    const prefix = '/bigsnap/';
    const leader = makeBackend(cluster.endpoints(), 'b1', { prefix, snapshotEvery: 30 });
    backends.push(leader);
    await leader.backend.start(AbortSignal.timeout(10_000));
    await waitLeader([leader]);
    const big = 'x'.repeat(500);
    const cmds: Command[] = Array.from({ length: 1200 }, (_, i) => ({ Type: MessageType.Register, Body: { Node: `big-${i}`, Address: '10.0.0.2', NodeMeta: { blob: big } } }));
    for (let i = 0; i < cmds.length; i += 40) await Promise.all(cmds.slice(i, i + 40).map((c) => leader.backend.apply(c)));
    await waitFor(() => Number(leader.backend.status().snapshotIndex) > 0, { message: 'snapshot written' });
    const fresh = makeBackend(cluster.endpoints(), 'b2', { prefix });
    backends.push(fresh);
    await fresh.backend.start(AbortSignal.timeout(10_000));
    assert.deepEqual(fresh.store.snapshot(), leader.store.snapshot());
    const client = new Etcd3({ hosts: cluster.endpoints() });
    try {
      const keys = await client.getAll().prefix(`${prefix}snapshot/`).keys();
      assert.ok(keys.length >= 2, `snapshot in ${keys.length} chunks`);
    } finally {
      client.close();
    }
  });
});
