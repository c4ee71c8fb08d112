import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { NodeState, Keyring } from '../../../../src/plugins/gossip/wire/index.js';
import { gridDelay, pushPullScale, suspicionTimeout, remainingSuspicionTime, TransmitLimitedQueue, retransmitLimit } from '../../../../src/plugins/gossip/memberlist/index.js';
import { waitFor } from '../../../../src/testing/index.js';
import { allSee, shutdownAll, startNode, type TestNode } from './helpers.js';

describe('memberlist pool on loopback', () => {
  test('five nodes converge, a killed node becomes dead everywhere, a leaving node left', async () => {
    const nodes: TestNode[] = [];
    try {
      for (let i = 0; i < 5; i++) nodes.push(await startNode(`n${i}`));
      const seed = `n0/${nodes[0]!.m.advertiseAddress}`;
      for (const n of nodes.slice(1)) assert.equal(await n.m.join([seed]), 1);
      const names = nodes.map((_, i) => `n${i}`);
      await waitFor(() => allSee(nodes, names), { timeoutMs: 10_000, message: 'pool did not converge' });
      // Every node saw every join, its own included.
      for (const n of nodes) assert.deepEqual([...new Set(n.joins)].sort(), names);

      await nodes[4]!.m.shutdown(); // a crash: no leave
      await waitFor(() => allSee(nodes.slice(0, 4), names.slice(0, 4)), { timeoutMs: 15_000, message: 'n4 was not declared dead' });
      for (const n of nodes.slice(0, 4)) {
        const l = n.leaves.find((x) => x.name === 'n4');
        assert.equal(l?.state, NodeState.dead, `${n.m.localNode().name} should see n4 dead`);
      }
      await nodes[3]!.m.leave(2_000);
      await nodes[3]!.m.shutdown();
      await waitFor(() => allSee(nodes.slice(0, 3), names.slice(0, 3)), { timeoutMs: 10_000, message: 'n3 leave not seen' });
      for (const n of nodes.slice(0, 3)) assert.equal(n.leaves.find((x) => x.name === 'n3')?.state, NodeState.left);
    } finally {
      await shutdownAll(nodes);
    }
  });

  test('a suspected node that is alive refutes with a higher incarnation', async () => {
    const a = await startNode('a');
    const b = await startNode('b');
    try {
      await b.m.join([a.m.advertiseAddress]);
      await waitFor(() => allSee([a, b], ['a', 'b']));
      const before = b.m.localNode().incarnation;
      // Tell b that a suspects it; b must refute.
      const { encodeMessage, MessageType } = await import('../../../../src/plugins/gossip/wire/index.js');
      const { createNetTransport } = await import('../../../../src/plugins/gossip/transport/index.js');
      const sender = await createNetTransport({ bindAddr: '127.0.0.1' });
      await sender.writeToAddress(encodeMessage(MessageType.suspect, { Incarnation: before, Node: 'b', From: 'a' }), { name: 'b', addr: b.m.advertiseAddress });
      await waitFor(() => b.m.localNode().incarnation > before, { message: 'b did not refute' });
      await waitFor(() => a.m.members().find((x) => x.name === 'b')?.incarnation === b.m.localNode().incarnation, { message: 'a did not learn the refutation' });
      assert.ok(b.logger.entries.some((e) => /Refuting a suspect message/.test(e.msg)));
      await sender.shutdown();
    } finally {
      await shutdownAll([a, b]);
    }
  });

  test('meta updates reach other nodes as updates', async () => {
    let meta = new Uint8Array([1]);
    const a = await startNode('a');
    const b = await startNode('b', {
      delegates: {
        delegate: { nodeMeta: () => meta, notifyMsg: () => undefined, getBroadcasts: () => [], localState: () => new Uint8Array(0), mergeRemoteState: () => undefined },
      },
    });
    try {
      await b.m.join([a.m.advertiseAddress]);
      await waitFor(() => allSee([a, b], ['a', 'b']));
      assert.deepEqual([...(a.m.members().find((x) => x.name === 'b')?.meta ?? [])], [1]);
      meta = new Uint8Array([2, 3]);
      await b.m.updateNode(2_000);
      await waitFor(() => a.updates.some((u) => u.name === 'b' && u.meta.length === 2), { message: 'no update at a' });
    } finally {
      await shutdownAll([a, b]);
    }
  });

  test('user messages: best effort, reliable, and delegate broadcasts', async () => {
    let pending: Uint8Array[] = [Buffer.from('broadcast-1')];
    const a = await startNode('a');
    const b = await startNode('b', {
      delegates: {
        delegate: {
          nodeMeta: () => new Uint8Array(0),
          notifyMsg: () => undefined,
          getBroadcasts: () => {
            const out = pending;
            pending = [];
            return out;
          },
          localState: () => new Uint8Array(0),
          mergeRemoteState: () => undefined,
        },
      },
    });
    try {
      await b.m.join([a.m.advertiseAddress]);
      await waitFor(() => allSee([a, b], ['a', 'b']));
      const an = b.m.members().find((x) => x.name === 'a')!;
      await b.m.sendBestEffort(an, Buffer.from('hello'));
      const big = Buffer.alloc(100_000, 7);
      await b.m.sendReliable(an, big);
      await waitFor(() => a.msgs.some((m) => m.toString() === 'hello') && a.msgs.some((m) => m.length === big.length && m.equals(big)) && a.msgs.some((m) => m.toString() === 'broadcast-1'), {
        message: 'messages missing at a',
      });
    } finally {
      await shutdownAll([a, b]);
    }
  });

  test('an encrypted pool works with one key; a node without the key or with another key is refused', async () => {
    const key = Buffer.alloc(32, 9);
    const a = await startNode('a', { keyring: new Keyring(key) });
    const b = await startNode('b', { keyring: new Keyring(key) });
    const plain = await startNode('plain');
    const wrong = await startNode('wrong', { keyring: new Keyring(Buffer.alloc(32, 1)) });
    try {
      await b.m.join([a.m.advertiseAddress]);
      await waitFor(() => allSee([a, b], ['a', 'b']));
      // a answers the plaintext join with an encrypted error, as memberlist does.
      await assert.rejects(plain.m.join([a.m.advertiseAddress]), /Remote state is encrypted and encryption is not configured/);
      assert.ok(a.logger.entries.some((e) => /failed to receive: Encryption is configured but remote state is not encrypted/.test(e.msg)));
      await assert.rejects(a.m.join([plain.m.advertiseAddress]), /Encryption is configured but remote state is not encrypted/);
      await assert.rejects(wrong.m.join([a.m.advertiseAddress]), /No installed keys could decrypt the message/);
      assert.ok(a.logger.entries.some((e) => /failed to receive: No installed keys could decrypt the message/.test(e.msg)), 'a logs the wrong key');
      assert.deepEqual(a.m.members().map((x) => x.name).sort(), ['a', 'b']);
    } finally {
      await shutdownAll([a, b, plain, wrong]);
    }
  });

  test('keyring rotation: install a new key, use it, remove the old one, the pool stays together', async () => {
    const k1 = Buffer.alloc(16, 1);
    const k2 = Buffer.alloc(16, 2);
    const ra = new Keyring(k1);
    const rb = new Keyring(k1);
    const a = await startNode('a', { keyring: ra });
    const b = await startNode('b', { keyring: rb });
    try {
      await b.m.join([a.m.advertiseAddress]);
      await waitFor(() => allSee([a, b], ['a', 'b']));
      ra.addKey(k2);
      rb.addKey(k2);
      ra.useKey(k2);
      rb.useKey(k2);
      ra.removeKey(k1);
      rb.removeKey(k1);
      const c = await startNode('c', { keyring: new Keyring(k2) });
      nodesToStop.push(c);
      await c.m.join([a.m.advertiseAddress]);
      await waitFor(() => allSee([a, b, c], ['a', 'b', 'c']), { message: 'pool with rotated key did not converge' });
    } finally {
      await shutdownAll([a, b, ...nodesToStop.splice(0)]);
    }
  });
  const nodesToStop: TestNode[] = [];

  test('merge delegate veto and incompatible delegate versions fail the join with the reason', async () => {
    const a = await startNode('a', { delegateProtocolMin: 2, delegateProtocolMax: 5, delegateProtocolVersion: 5 });
    const plain = await startNode('plain');
    const vetoing = await startNode('vetoing', { delegateProtocolMin: 2, delegateProtocolMax: 5, delegateProtocolVersion: 5, delegates: { merge: { notifyMerge: (peers) => `Member '${peers[0]?.name}' is not a server` } } });
    try {
      await assert.rejects(plain.m.join([a.m.advertiseAddress]), /delegate protocol version \(5\) is incompatible: \[2, 0\]|delegate protocol version \(0\) is incompatible/);
      await assert.rejects(vetoing.m.join([a.m.advertiseAddress]), /Member 'a' is not a server/);
      assert.deepEqual(vetoing.m.members().map((x) => x.name), ['vetoing']);
    } finally {
      await shutdownAll([a, plain, vetoing]);
    }
  });

  test('join addresses: name/host:port, default port, empty name refused, node names required', async () => {
    const a = await startNode('a');
    const b = await startNode('b', { requireNodeNames: true });
    try {
      await assert.rejects(b.m.join([`/${a.m.advertiseAddress}`]), /empty node name provided/);
      await assert.rejects(b.m.join([a.m.advertiseAddress]), /node names are required by configuration but one was not provided/);
      assert.equal(await b.m.join([`a/${a.m.advertiseAddress}`]), 1);
      await waitFor(() => allSee([a, b], ['a', 'b']));
    } finally {
      await shutdownAll([a, b]);
    }
  });
});

describe('memberlist math', () => {
  test('suspicion timeouts scale with log10 of the pool, as memberlist', () => {
    assert.equal(suspicionTimeout(4, 1, 1_000), 4_000);
    assert.equal(suspicionTimeout(4, 10, 1_000), 4_000);
    assert.equal(suspicionTimeout(4, 100, 1_000), 8_000);
    assert.equal(suspicionTimeout(4, 1000, 1_000), 12_000);
    assert.equal(suspicionTimeout(6, 48, 5_000), 6 * 1681 * 5);
    // memberlist's TestSuspicion_remainingSuspicionTime table
    const table: [number, number, number, number, number, number][] = [
      [0, 3, 0, 2_000, 30_000, 30_000],
      [1, 3, 2_000, 2_000, 30_000, 14_000],
      [2, 3, 3_000, 2_000, 30_000, 4_810],
      [3, 3, 4_000, 2_000, 30_000, -2_000],
      [4, 3, 5_000, 2_000, 30_000, -3_000],
      [5, 3, 10_000, 2_000, 30_000, -8_000],
    ];
    for (const [n, k, elapsed, min, max, want] of table) assert.equal(remainingSuspicionTime(n, k, elapsed, min, max), want, `n=${n}`);
  });

  test('periodic ticks land on a grid of interval/10 (at most 100 ms) so pools share wakeups', () => {
    assert.equal(gridDelay(1_000, 1_200, 200), 200);
    assert.equal(gridDelay(1_003, 1_203, 200), 217, 'rounded up to the next 20 ms');
    assert.equal(gridDelay(1_000, 1_050, 50), 50);
    assert.equal(gridDelay(1_001, 1_051, 50), 54, 'a 5 ms grid for a 50 ms interval');
    assert.equal(gridDelay(1_000, 900, 200), 0, 'overdue ticks run at once');
    assert.equal(gridDelay(5, 6, 3), 1, 'tiny intervals: a 1 ms grid');
    assert.equal(gridDelay(10_030, 11_030, 1_000), 1_070, 'the 1 s probe: a 100 ms grid');
    assert.equal(gridDelay(10_030, 15_030, 5_000), 1_070 + 4_000, 'longer intervals: still 100 ms');
    assert.equal(gridDelay(1_003, 1_203, 200, 5), 237, 'gossip: five slots per interval');
  });

  test('push-pull interval scales above 32 nodes', () => {
    assert.equal(pushPullScale(1_000, 32), 1_000);
    assert.equal(pushPullScale(1_000, 33), 2_000);
    assert.equal(pushPullScale(1_000, 65), 3_000);
    assert.equal(pushPullScale(1_000, 1024), 6_000);
  });

  test('broadcast queue: fewest transmits first, replaced by name, dropped after the limit', () => {
    let n = 10;
    const q = new TransmitLimitedQueue(() => n, 2);
    assert.equal(retransmitLimit(2, 10), 4);
    const finished: string[] = [];
    q.queue({ name: 'x', message: Buffer.from('x-old'), finished: () => finished.push('x-old') });
    q.queue({ name: 'x', message: Buffer.from('x-new'), finished: () => finished.push('x-new') });
    q.queue({ message: Buffer.from('anon-long') });
    assert.deepEqual(finished, ['x-old']);
    assert.deepEqual(q.getBroadcasts(2, 100).map(String), ['anon-long', 'x-new']);
    // A limit that fits only one: the one sent fewer times goes.
    assert.equal(q.getBroadcasts(2, 12).length, 1);
    for (let i = 0; i < 4; i++) q.getBroadcasts(2, 100);
    assert.equal(q.length, 0);
    assert.deepEqual(finished, ['x-old', 'x-new']);
    n = 1;
    q.queue({ message: Buffer.from('a') });
    q.queue({ message: Buffer.from('b') });
    q.prune(1);
    assert.equal(q.length, 1);
  });
});
