/**
 * Serf membership on the fake memberlist: join, graceful leave (left, not failed), crash (failed),
 * reaping, reconnect, recent intents, leave refutation, force-leave with prune, push-pull merge,
 * tags updates and the merge veto.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  NodeState,
} from '../../../../src/plugins/gossip/wire/index.js';
import {
  SERF_DEFAULTS, Serf, SerfErrorCode, SerfMessageType, decodeSerfMessage, encodeSerfMessage, encodeTags,
} from '../../../../src/plugins/gossip/serf/index.js';
import { createMemoryLogger } from '../../../../src/testing/memory-logger.js';
import { FakeNetwork } from './fake-memberlist.js';
import { drive, makeCluster, makeNode, memberEvents, statusOf, stopAll, userEvents, type TestNode } from './serf-harness.js';
import { FakeClock } from '../../../../src/testing/fake-clock.js';

const at = (nodes: TestNode[], i: number): TestNode => nodes[i] as TestNode;

describe('serf membership', () => {
  test('join: every node lists every other alive, with tags and versions, and got join events', async () => {
    const c = await makeCluster(3, (n) => ({ role: 'consul', id: n }));
    for (const viewer of c.nodes) {
      const members = viewer.serf.members().sort((x, y) => x.name.localeCompare(y.name));
      assert.deepEqual(members.map((m) => [m.name, m.status, m.tags.id]), [['a', 'alive', 'a'], ['b', 'alive', 'b'], ['c', 'alive', 'c']]);
      assert.deepEqual(members.map((m) => [m.delegateMin, m.delegateMax, m.delegateCur, m.protocolCur]), [[2, 5, 5, 2], [2, 5, 5, 2], [2, 5, 5, 2]]);
      assert.deepEqual(memberEvents(viewer, 'join').sort(), ['a', 'b', 'c']);
      assert.equal(viewer.serf.localMember().name, viewer.name);
      assert.equal(viewer.serf.numMembers(), 3);
      assert.equal(viewer.serf.state, 'alive');
    }
    assert.equal(at(c.nodes, 0).serf.stats().members, '3');
    assert.deepEqual(at(c.nodes, 0).ml.meta.delegateVersions, { dmin: 2, dmax: 5, dcur: 5 });
    await stopAll(c);
  });

  test('graceful leave: the leaver is `left` everywhere (never failed) and its state is left', async () => {
    const c = await makeCluster(3);
    const b = at(c.nodes, 1);
    await drive(c, b.serf.leave());
    assert.equal(b.serf.state, 'left');
    for (const viewer of [at(c.nodes, 0), at(c.nodes, 2)]) {
      assert.equal(statusOf(viewer, 'b'), 'left');
      assert.deepEqual(memberEvents(viewer, 'leave'), ['b']);
      assert.deepEqual(memberEvents(viewer, 'fail'), []);
      assert.deepEqual(viewer.serf.leftMembers(), ['b']);
    }
    await b.serf.leave(); // a second call after it finished is a no-op
    await stopAll(c);
  });

  test('the leave intent goes out first, encoded exactly as Go serf encodes it', async () => {
    const c = await makeCluster(2);
    const a = at(c.nodes, 0);
    const p = a.serf.leave();
    const out = a.ml.delegates.delegate?.getBroadcasts(2, 1400) ?? [];
    const leave = out.find((m) => m[0] === SerfMessageType.leave);
    assert.ok(leave, 'a leave intent is queued');
    const msg = decodeSerfMessage(leave);
    assert.equal(msg.type, SerfMessageType.leave);
    const ltime = Number((msg.body as { LTime: number }).LTime);
    assert.ok(ltime < 128);
    // 00 83 a5"LTime" <fixint> a4"Node" a1"a" a5"Prune" c2
    const expected = Buffer.concat([Buffer.from('0083a54c54696d65', 'hex'), Buffer.of(ltime), Buffer.from('a44e6f6465a161a55072756e65c2', 'hex')]);
    assert.equal(Buffer.from(leave).toString('hex'), expected.toString('hex'));
    await drive(c, p);
    await stopAll(c);
  });

  test('crash: the node is `failed`, then reaped after reconnectTimeout with a reap event', async () => {
    const c = await makeCluster(3, undefined, { reconnectTimeoutMs: 60_000, reapIntervalMs: 1_000, reconnectIntervalMs: 3_600_000 });
    const a = at(c.nodes, 0);
    c.net.crash('c');
    assert.equal(statusOf(a, 'c'), 'failed');
    assert.deepEqual(memberEvents(a, 'fail'), ['c']);
    assert.deepEqual(a.serf.failedMembers(), ['c']);
    await c.clock.advanceAsync(30_000);
    assert.equal(statusOf(a, 'c'), 'failed');
    await c.clock.advanceAsync(32_000);
    assert.equal(statusOf(a, 'c'), undefined);
    assert.deepEqual(memberEvents(a, 'reap'), ['c']);
    assert.deepEqual(a.serf.failedMembers(), []);
    await stopAll(c);
  });

  test('left members are reaped after tombstoneTimeout', async () => {
    const c = await makeCluster(2, undefined, { tombstoneTimeoutMs: 10_000, reapIntervalMs: 1_000 });
    const [a, b] = [at(c.nodes, 0), at(c.nodes, 1)];
    await drive(c, b.serf.leave());
    assert.equal(statusOf(a, 'b'), 'left');
    await c.clock.advanceAsync(12_000);
    assert.equal(statusOf(a, 'b'), undefined);
    assert.deepEqual(memberEvents(a, 'reap'), ['b']);
    await stopAll(c);
  });

  test('reconnect: a failed member that is reachable again is joined with name/addr:port and is alive', async () => {
    const c = await makeCluster(3, undefined, { reconnectIntervalMs: 5_000 });
    const a = at(c.nodes, 0);
    c.net.crash('b');
    assert.equal(statusOf(a, 'b'), 'failed');
    c.net.heal('b');
    await c.clock.advanceAsync(5_000);
    const b = at(c.nodes, 1);
    assert.ok(a.ml.joinCalls.some((j) => j[0] === `b/${b.ml.addr}:7946`), JSON.stringify(a.ml.joinCalls));
    assert.equal(statusOf(a, 'b'), 'alive');
    assert.deepEqual(a.serf.failedMembers(), []);
    await stopAll(c);
  });

  test('intents about unknown members are buffered, applied when the member appears, and expire', async () => {
    const c = await makeCluster(2, undefined, { recentIntentTimeoutMs: 60_000, reapIntervalMs: 10_000 });
    const a = at(c.nodes, 0);
    const ghost = (name: string): Parameters<typeof a.ml.learn>[0] => ({
      name, addr: '10.9.9.9', port: 7946, meta: encodeTags({ role: 'x' }), state: NodeState.alive,
      vsn: { pmin: 1, pmax: 5, pcur: 2, dmin: 2, dmax: 5, dcur: 5 }, incarnation: 1,
    });
    const leave = (node: string, ltime: number): Buffer => Buffer.from(encodeSerfMessage(SerfMessageType.leave, { LTime: ltime, Node: node, Prune: false }));
    const before = Number(a.serf.stats().intent_queue);
    a.ml.delegates.delegate?.notifyMsg(leave('ghost', 50));
    assert.equal(Number(a.serf.stats().intent_queue), before + 1, 'first sight is rebroadcast');
    a.ml.delegates.delegate?.notifyMsg(leave('ghost', 50));
    assert.equal(Number(a.serf.stats().intent_queue), before + 1, 'a repeat is not');
    a.ml.learn(ghost('ghost'));
    assert.equal(statusOf(a, 'ghost'), 'leaving');
    a.ml.markDown('ghost', NodeState.dead);
    assert.equal(statusOf(a, 'ghost'), 'left', 'a leave intent before the memberlist dead means left, not failed');
    // An intent older than recentIntentTimeout is forgotten.
    a.ml.delegates.delegate?.notifyMsg(leave('ghost2', 60));
    await c.clock.advanceAsync(80_000);
    a.ml.learn(ghost('ghost2'));
    assert.equal(statusOf(a, 'ghost2'), 'alive');
    await stopAll(c);
  });

  test('a leave intent about a live node is refuted with a newer join intent', async () => {
    const c = await makeCluster(3);
    const [a, b] = [at(c.nodes, 0), at(c.nodes, 1)];
    b.ml.delegates.delegate?.notifyMsg(Buffer.from(encodeSerfMessage(SerfMessageType.leave, { LTime: 900, Node: 'a', Prune: false })));
    assert.equal(statusOf(b, 'a'), 'leaving');
    c.net.tick(); // b rebroadcasts the leave to a and c
    await Promise.resolve();
    const joins = (a.ml.delegates.delegate?.getBroadcasts(2, 1400) ?? []).map((m) => decodeSerfMessage(m)).filter((m) => m.type === SerfMessageType.join);
    assert.ok(joins.some((m) => m.type === SerfMessageType.join && m.body.Node === 'a' && BigInt(m.body.LTime) > 900n), 'a gossips a newer join');
    c.net.tick(6);
    for (const n of c.nodes) assert.equal(statusOf(n, 'a'), 'alive', `${n.name} sees a alive again`);
    assert.equal(a.serf.state, 'alive');
    await stopAll(c);
  });

  test('forceLeave with prune: a failed member becomes left (leave event) and is erased at once', async () => {
    const c = await makeCluster(3);
    const [a, b] = [at(c.nodes, 0), at(c.nodes, 1)];
    c.net.crash('c');
    await drive(c, a.serf.forceLeave('c', true));
    for (const n of [a, b]) {
      assert.equal(statusOf(n, 'c'), undefined, `${n.name} erased c`);
      assert.deepEqual(memberEvents(n, 'leave'), ['c']);
      assert.deepEqual(memberEvents(n, 'reap'), ['c']);
    }
    await stopAll(c);
  });

  test('push-pull: left members become left, Lamport clocks are witnessed, events replayed', async () => {
    const c = await makeCluster(3);
    const a = at(c.nodes, 0);
    c.net.crash('c');
    assert.equal(statusOf(a, 'c'), 'failed');
    const ring = new Array<null | { LTime: number; Events: { Name: string; Payload: Uint8Array }[] }>(512).fill(null);
    ring[300] = { LTime: 300, Events: [{ Name: 'old', Payload: Buffer.from('x') }] };
    const state = encodeSerfMessage(SerfMessageType.pushPull, {
      LTime: 500, StatusLTimes: { a: 1, b: 2, c: 3 }, LeftMembers: ['c'], EventLTime: 301, Events: ring, QueryLTime: 77,
    });
    a.ml.delegates.delegate?.mergeRemoteState(Buffer.from(state), false);
    assert.equal(statusOf(a, 'c'), 'left');
    assert.deepEqual(memberEvents(a, 'leave'), ['c']);
    const stats = a.serf.stats();
    assert.ok(BigInt(stats.member_time as string) >= 500n, stats.member_time);
    assert.ok(BigInt(stats.event_time as string) >= 301n, stats.event_time);
    assert.ok(BigInt(stats.query_time as string) >= 77n, stats.query_time);
    assert.deepEqual(userEvents(a), ['old=x']);
    // Our own state round-trips through the codec with the full 512-slot ring.
    const mine = decodeSerfMessage(a.ml.delegates.delegate?.localState(false) ?? new Uint8Array(0));
    assert.equal(mine.type, SerfMessageType.pushPull);
    if (mine.type === SerfMessageType.pushPull) {
      assert.equal(mine.body.Events.length, 512);
      assert.deepEqual(mine.body.LeftMembers, ['c']);
      assert.deepEqual(Object.keys(mine.body.StatusLTimes).sort(), ['a', 'b', 'c']);
    }
    await stopAll(c);
  });

  test('join with ignoreOld skips earlier user events; a plain join replays them', async () => {
    const c = await makeCluster(2);
    const a = at(c.nodes, 0);
    await a.serf.userEvent('deploy', Buffer.from('v1'), false);
    c.net.tick(8);
    const d = await makeNode(c.net, c.clock, 'd');
    await d.serf.join([`${a.ml.addr}:7946`], true);
    const e = await makeNode(c.net, c.clock, 'e');
    await e.serf.join([`${a.ml.addr}:7946`], false);
    assert.deepEqual(userEvents(d), []);
    assert.deepEqual(userEvents(e), ['deploy=v1']);
    // Later events reach both.
    await a.serf.userEvent('deploy', Buffer.from('v2'), false);
    c.net.tick(8);
    assert.deepEqual(userEvents(d), ['deploy=v2']);
    assert.deepEqual(userEvents(e), ['deploy=v1', 'deploy=v2']);
    await stopAll({ ...c, nodes: [...c.nodes, d, e] });
  });

  test('setTags: every node gets an update event with the new tags; oversized tags are refused', async () => {
    const c = await makeCluster(3, () => ({ role: 'consul' }));
    const b = at(c.nodes, 1);
    await b.serf.setTags({ role: 'consul', build: '1.2.3' });
    for (const n of c.nodes) {
      assert.deepEqual(memberEvents(n, 'update'), ['b']);
      assert.equal(n.serf.members().find((m) => m.name === 'b')?.tags.build, '1.2.3');
    }
    await assert.rejects(b.serf.setTags({ big: 'x'.repeat(600) }), { code: SerfErrorCode.TAGS });
    assert.equal(b.serf.tags.build, '1.2.3');
    await assert.rejects(
      Serf.create({ nodeName: 'z', tags: { big: 'x'.repeat(600) }, logger: createMemoryLogger(), createMemberlist: new FakeNetwork().factory('z') }),
      { code: SerfErrorCode.TAGS },
    );
    await stopAll(c);
  });

  test('merge veto: a non-server is refused with the delegate\'s text, and nobody lists it', async () => {
    const net = new FakeNetwork();
    const clock = new FakeClock(0);
    const merge = (members: { name: string; tags: Readonly<Record<string, string>> }[]): string | undefined => {
      const bad = members.find((m) => m.tags.role !== 'consul');
      return bad ? `Member '${bad.name}' is not a server` : undefined;
    };
    const a = await makeNode(net, clock, 'a', { role: 'consul' }, { merge });
    const b = await makeNode(net, clock, 'b', { role: 'node' });
    await assert.rejects(b.serf.join([`${a.ml.addr}:7946`]), /Member 'b' is not a server/);
    assert.equal(statusOf(a, 'b'), undefined);
    const s = await makeNode(net, clock, 's', { role: 'consul' }, { merge });
    assert.equal(await s.serf.join([`${a.ml.addr}:7946`]), 1);
    assert.equal(statusOf(a, 's'), 'alive');
    for (const n of [a, b, s]) await n.serf.shutdown();
  });

  test('defaults are serf\'s', () => {
    assert.deepEqual(SERF_DEFAULTS, {
      reconnectTimeoutMs: 259_200_000, reconnectIntervalMs: 30_000, tombstoneTimeoutMs: 86_400_000, reapIntervalMs: 15_000,
      recentIntentTimeoutMs: 300_000, eventBuffer: 512, queryBuffer: 512, queryTimeoutMult: 16, gossipIntervalMs: 200,
      querySizeLimit: 1024, queryResponseSizeLimit: 1024, userEventSizeLimit: 512, broadcastTimeoutMs: 5_000,
      leavePropagateDelayMs: 1_000, maxQueueDepth: 4096, retransmitMult: 4,
    });
  });

  test('shutdown without leave: state shutdown, warned, idempotent; join afterwards refused', async () => {
    const c = await makeCluster(2);
    const a = at(c.nodes, 0);
    await a.serf.shutdown();
    await a.serf.shutdown();
    assert.equal(a.serf.state, 'shutdown');
    assert.equal(a.ml.running, false);
    assert.ok(a.logger.entries.some((e) => e.level === 'warn' && e.msg.includes('shutdown without a leave')));
    await assert.rejects(a.serf.join(['10.0.0.2:7946']), { code: 'MESHFED_ERR_SERF_STATE' });
    await assert.rejects(a.serf.leave(), { code: 'MESHFED_ERR_SERF_STATE' });
    await stopAll(c);
    assert.equal(c.clock.pending, 0, 'no timers left behind');
  });
});
