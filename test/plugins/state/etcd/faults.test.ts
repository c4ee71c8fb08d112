import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { Etcd3 } from 'etcd3';
import { StateBackendErrorCode } from '../../../../src/plugins/state/backend/types.js';
import { waitFor } from '../../../../src/testing/index.js';
import { EtcdCluster, makeBackend, register, waitLeader, type TestBackend } from './cluster.js';

const childScript = fileURLToPath(new URL('./leader-child.js', import.meta.url));

/** Assert every acknowledged `[index, node]` is in `b`'s store at exactly that index. */
function assertAcked(b: TestBackend, acks: ReadonlyMap<string, number>): void {
  const nodes = new Map(b.store.nodes().value.map((n) => [n.Node, n]));
  for (const [node, index] of acks) {
    const rec = nodes.get(node);
    assert.ok(rec, `${b.node}: acknowledged ${node} (index ${index}) is missing`);
    assert.equal(rec.CreateIndex, index, `${b.node}: ${node} has the wrong index`);
  }
}

describe('etcd backend on a 3-member etcd cluster', () => {
  let cluster: EtcdCluster;
  const backends: TestBackend[] = [];

  before(async () => {
    cluster = await EtcdCluster.start(3);
  });

  after(async () => {
    await Promise.all(backends.map((b) => b.backend.close()));
    await cluster.stop();
  });

  it('loses no acknowledged write when the etcd raft leader is SIGKILLed during continuous writes', async (t) => {
    // TTL 5 s, so a raft election (~1-2 s here) usually does not force the leader to step down
    const pair = ['k1', 'k2'].map((n) => makeBackend(cluster.endpoints(), n, { prefix: '/kill-member/', leaseTtlSec: 5 }));
    backends.push(...pair);
    await Promise.all(pair.map((b) => b.backend.start(AbortSignal.timeout(10_000))));
    await waitLeader(pair);
    const acks = new Map<string, number>();
    let failures = 0;
    let stop = false;
    let killed: number | undefined;
    // writes go to whichever backend leads: losing etcd's raft leader stalls lease keep-alives for
    // an election, and a backend that cannot rule out its lease expiring must step down
    const worker = async (w: number): Promise<void> => {
      for (let i = 0; !stop; ) {
        const leader = pair.find((b) => b.backend.isLeader());
        if (!leader) {
          await new Promise((r) => setTimeout(r, 5));
          continue;
        }
        const node = `km-${w}-${i}`;
        try {
          acks.set(node, (await leader.backend.apply(register(node))).index);
          i++;
        } catch (err) {
          failures++;
          const code = (err as { code?: string }).code;
          assert.ok(code === StateBackendErrorCode.UNAVAILABLE || code === StateBackendErrorCode.NOT_LEADER, `unexpected failure: ${(err as Error).message}`);
          i++; // the outcome is unknown: never reuse the name
          await new Promise((r) => setImmediate(r));
        }
      }
    };
    const workers = [0, 1, 2, 3].map(worker);
    try {
      await waitFor(() => acks.size >= 200, { timeoutMs: 15_000, message: '200 acks before the kill' });
      killed = await cluster.raftLeader();
      await cluster.kill(killed, 'SIGKILL');
      const atKill = acks.size;
      await waitFor(() => acks.size >= atKill + 200, { timeoutMs: 20_000, message: '200 more acks after the kill' });
    } finally {
      stop = true;
      await Promise.all(workers);
    }
    const leader = await waitLeader(pair);
    const follower = pair.find((b) => b !== leader) as TestBackend;
    await follower.backend.barrier();
    await leader.backend.barrier();
    assertAcked(leader, acks);
    assertAcked(follower, acks);
    assert.deepEqual(follower.store.snapshot(), leader.store.snapshot());
    t.diagnostic(`killed etcd raft leader m${String(killed)}; ${acks.size} acks, ${failures} UNAVAILABLE/NOT_LEADER rejections`);
    if (killed !== undefined) await cluster.restart(killed);
  });

  it('replaces a SIGKILLed leader server within TTL + 2 s, keeping its acknowledged writes', async () => {
    const prefix = '/kill-leader/';
    const child = spawn(process.execPath, [childScript, cluster.endpoints().join(','), prefix, 'c9'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const acks = new Map<string, number>();
    let isLeader = false;
    let stderr = '';
    let buf = '';
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).split(' ');
        buf = buf.slice(nl + 1);
        if (line[0] === 'leader') isLeader = true;
        else if (line[0] === 'ack') acks.set(line[2] as string, Number(line[1]));
      }
    });
    try {
      await waitFor(() => isLeader, { timeoutMs: 15_000, message: `child leads (stderr: ${stderr})` });
      const others = ['o1', 'o2'].map((n) => makeBackend(cluster.endpoints(), n, { prefix }));
      backends.push(...others);
      await Promise.all(others.map((b) => b.backend.start(AbortSignal.timeout(10_000))));
      await waitFor(() => others.every((b) => b.backend.leader()?.node === 'c9'), { message: 'everyone follows the child' });
      await waitFor(() => acks.size >= 100, { timeoutMs: 15_000, message: `child acks (stderr: ${stderr})` });
      child.kill('SIGKILL');
      assert.equal(await exited, 'SIGKILL');
      const killedAt = Date.now();
      // a correctness bound ("within a few seconds"), generous for a loaded machine; speed is in bench/
      const next = await waitLeader(others, 2000 + 8000);
      const took = Date.now() - killedAt;
      assert.ok(took <= 2000 + 8000, `new leader after ${took} ms (TTL 2 s + 8 s allowed)`);
      const { index } = await next.backend.apply(register('after-failover'));
      assert.ok(index > Math.max(...acks.values()));
      for (const b of others) {
        await b.backend.barrier();
        assertAcked(b, acks);
      }
      assert.equal(next.backend.leader()?.node, next.node);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  });
});

describe('etcd backend partitions, compaction and etcd outages (1-member etcd)', () => {
  let cluster: EtcdCluster;
  const backends: TestBackend[] = [];
  let client: Etcd3;

  before(async () => {
    cluster = await EtcdCluster.start(1);
    client = new Etcd3({ hosts: cluster.endpoints() });
  });

  after(async () => {
    await Promise.all(backends.map((b) => b.backend.close()));
    client.close();
    await cluster.stop();
  });

  it('a follower cut off from etcd misses writes, reports growing lastContact, and catches up after restore — also across a compaction', async () => {
    const { TcpProxy } = await import('./cluster.js');
    const proxy = await TcpProxy.start(cluster.clientPort(0));
    const prefix = '/partition/';
    const leader = makeBackend(cluster.endpoints(), 'p1', { prefix });
    backends.push(leader);
    await leader.backend.start(AbortSignal.timeout(10_000));
    await waitLeader([leader]);
    const follower = makeBackend([proxy.url], 'p2', { prefix });
    backends.push(follower);
    try {
      await follower.backend.start(AbortSignal.timeout(10_000));
      const first = await Promise.all(Array.from({ length: 10 }, (_, i) => leader.backend.apply(register(`pa-${i}`))));
      await waitFor(() => follower.store.latestIndex() >= Math.max(...first.map((r) => r.index)), { message: 'follower caught up before the cut' });
      await waitFor(() => follower.backend.lastContactMs() === 0, { message: 'healthy follower reports lastContact 0' });

      for (const compact of [false, true]) {
        proxy.cut();
        const cutIndex = follower.store.latestIndex();
        const more = [];
        for (let i = 0; i < 20; i++) more.push(await leader.backend.apply(register(`pb-${compact}-${i}`)));
        const target = leader.store.latestIndex();
        await waitFor(() => follower.backend.lastContactMs() >= 500, { message: 'lastContact grows while cut' });
        assert.equal(follower.store.latestIndex(), cutIndex, 'the cut follower saw none of the new writes');
        await assert.rejects(follower.backend.barrier(), (err: { code?: string }) => err.code === StateBackendErrorCode.UNAVAILABLE);
        if (compact) {
          const rev = Number((await client.kv.range({ key: Buffer.from('x') })).header.revision);
          await client.kv.compact({ revision: rev, physical: true });
        }
        const relists = Number(follower.backend.status().relists);
        proxy.restore();
        await waitFor(() => follower.store.latestIndex() === target, { timeoutMs: 20_000, message: `follower catches up to ${target} (compacted: ${compact})` });
        assert.deepEqual(follower.store.snapshot(), leader.store.snapshot());
        await waitFor(() => follower.backend.lastContactMs() === 0, { message: 'lastContact back to 0' });
        assert.ok(more.length === 20);
        if (compact) assert.ok(Number(follower.backend.status().relists) > relists, 'the compacted watch made the follower re-list');
      }
    } finally {
      await proxy.close();
    }
  });

  it('a deposed leader cannot write (fencing on the leader key)', async () => {
    const prefix = '/fence/';
    const pair = ['f1', 'f2'].map((n) => makeBackend(cluster.endpoints(), n, { prefix }));
    backends.push(...pair);
    await Promise.all(pair.map((b) => b.backend.start(AbortSignal.timeout(10_000))));
    const leader = await waitLeader(pair);
    await leader.backend.apply(register('fence-before'));
    const countLog = async (): Promise<number> => client.getAll().prefix(`${prefix}log/`).count();
    const logBefore = await countLog();
    // An intruder replaces the leader key (as if our lease had expired and another server won).
    // etcdctl runs synchronously, so this process handles no I/O in between: the leader's watch
    // cannot tell it before the write below, which only the fence on the key can refuse.
    const key = `${prefix}leader`;
    const ctl = (...args: string[]): void => {
      execFileSync('/usr/bin/etcdctl', [`--endpoints=${cluster.endpoints().join(',')}`, ...args], { env: { ...process.env, ETCDCTL_API: '3' }, stdio: 'ignore' });
    };
    ctl('del', key);
    ctl('put', key, '{"node":"intruder","address":"127.0.0.1:1"}');
    assert.ok(leader.backend.isLeader(), 'the leader has not noticed yet');
    await assert.rejects(leader.backend.apply(register('fence-after')), (err: { code?: string }) => err.code === StateBackendErrorCode.NOT_LEADER);
    assert.equal(await countLog(), logBefore, 'the deposed leader wrote nothing');
    await waitFor(() => !leader.backend.isLeader() && leader.leadership.at(-1) === false, { message: 'deposed leader stepped down' });
    await waitFor(() => pair.every((b) => b.backend.leader()?.node === 'intruder'), { message: 'everyone sees the intruder' });
    await client.delete().key(key);
    const again = await waitLeader(pair, 5000);
    await again.backend.apply(register('fence-recovered'));
  });

  it('rejects with UNAVAILABLE within about requestTimeoutMs while etcd is down, and recovers without a restart', async () => {
    const prefix = '/outage/';
    // TTL 4 s: the lease guard must not step down before the write below, even on a loaded machine
    const b = makeBackend(cluster.endpoints(), 'u1', { prefix, requestTimeoutMs: 1000, leaseTtlSec: 4 });
    backends.push(b);
    await b.backend.start(AbortSignal.timeout(10_000));
    await waitLeader([b]);
    await b.backend.apply(register('before-outage'));
    await cluster.kill(0, 'SIGKILL');
    try {
      const t0 = Date.now();
      await assert.rejects(b.backend.apply(register('during-outage')), (err: { code?: string; message: string }) => {
        assert.equal(err.code, StateBackendErrorCode.UNAVAILABLE, err.message);
        assert.match(err.message, /etcd unreachable/);
        return true;
      });
      // bounded by the request timeout (1 s), not hanging; generous for a loaded machine
      assert.ok(Date.now() - t0 < 1000 + 5000, `rejected after ${Date.now() - t0} ms`);
      await assert.rejects(b.backend.barrier(), (err: { code?: string }) => err.code === StateBackendErrorCode.UNAVAILABLE);
      await waitFor(() => !b.backend.isLeader(), { timeoutMs: 12_000, message: 'steps down once the lease may have expired' });
      await waitFor(() => b.backend.lastContactMs() > 0, { message: 'lastContact grows' });
    } finally {
      await cluster.restart(0);
    }
    await waitLeader([b], 10_000);
    const { index } = await b.backend.apply(register('after-outage'));
    assert.ok(b.store.nodes().value.some((n) => n.Node === 'after-outage' && n.CreateIndex === index));
    assert.equal(b.leadership[0], true);
    assert.equal(b.leadership[1], false, 'stepped down during the outage');
    assert.equal(b.leadership.at(-1), true, 'leads again');
  });
});
