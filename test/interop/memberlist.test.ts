/**
 * meshfed's memberlist against HashiCorp memberlist 0.2.2 (Debian golang-github-hashicorp-memberlist-dev),
 * through the Go peer in test/interop/memberlist-peer: one pool in both join directions, failure
 * detection both ways, graceful leave, user messages over packets and streams, meta updates, and
 * encryption with a shared key (a wrong key is refused and logged).
 */
import assert from 'node:assert/strict';
import { before, describe, test, type TestContext } from 'node:test';
import { Keyring, NodeState } from '../../src/plugins/gossip/wire/index.js';
import { waitFor } from '../../src/testing/index.js';
import { startNode, type StartOptions, type TestNode } from '../plugins/gossip/memberlist/helpers.js';
import { buildGoPeer } from './go-peer.js';
import { startMemberlistPeer, type MemberlistPeer, type MemberlistPeerOptions } from './memberlist-peer.js';

const GO: Partial<MemberlistPeerOptions> = { profile: 'local', probeIntervalMs: 200, probeTimeoutMs: 100, pushPullIntervalMs: 2000, gossipIntervalMs: 50 };

async function goPeer(t: TestContext, opts: MemberlistPeerOptions): Promise<MemberlistPeer> {
  const p = await startMemberlistPeer({ ...GO, ...opts });
  t.after(() => p.stop());
  return p;
}

async function tsNode(t: TestContext, name: string, opts: StartOptions = {}): Promise<TestNode> {
  const n = await startNode(name, opts);
  t.after(() => n.m.shutdown());
  return n;
}

const goAlive = async (p: MemberlistPeer, names: string[], node = 0): Promise<boolean> => {
  const ms = await p.members(node);
  return names.every((n) => ms.some((m) => m.name === n && m.state === NodeState.alive));
};

describe('memberlist interop with HashiCorp memberlist 0.2.2', { timeout: 180_000 }, () => {
  before(async () => {
    await buildGoPeer('memberlist-peer');
  });

  test('TS nodes join a Go pool and Go nodes join a TS node: one pool, everyone alive', async (t) => {
    const go = await goPeer(t, { name: 'go', nodes: 2 });
    await go.join([go.address(0)], 1);
    const a = await tsNode(t, 'ts-a');
    const b = await tsNode(t, 'ts-b');
    assert.equal(await a.m.join([go.address(0)]), 1);
    // Reverse direction: a Go node joins through a TS node.
    const go2 = await goPeer(t, { name: 'go2' });
    await go2.join([`ts-b/${b.m.advertiseAddress}`]);
    await b.m.join([`ts-a/${a.m.advertiseAddress}`]);
    const all = ['go-0', 'go-1', 'go2', 'ts-a', 'ts-b'];
    await waitFor(() => [a, b].every((n) => all.every((x) => n.m.members().some((m) => m.name === x))), { timeoutMs: 20_000, message: 'TS nodes do not see everyone' });
    await waitFor(() => goAlive(go, all, 0), { timeoutMs: 20_000, message: 'go-0 does not see everyone alive' });
    await waitFor(() => goAlive(go2, all), { timeoutMs: 20_000, message: 'go2 does not see everyone alive' });
  });

  test('failure detection both ways and a graceful leave seen as left', async (t) => {
    const go = await goPeer(t, { name: 'go', nodes: 2 });
    const a = await tsNode(t, 'ts-a');
    const b = await tsNode(t, 'ts-b');
    const c = await tsNode(t, 'ts-c');
    for (const n of [a, b, c]) await n.m.join([go.address(0)]);
    await go.join([go.address(0)], 1);
    const all = ['go-0', 'go-1', 'ts-a', 'ts-b', 'ts-c'];
    await waitFor(() => goAlive(go, all, 1), { timeoutMs: 20_000 });
    await waitFor(() => all.every((x) => a.m.members().some((m) => m.name === x)), { timeoutMs: 20_000 });

    // A killed TS node becomes dead at the Go nodes.
    await c.m.shutdown();
    // (Go's Members() hides dead nodes: watch its leave events, which carry the state.)
    await go.events.waitFor('leave', (e) => e['name'] === 'ts-c' && e['state'] === NodeState.dead, 20_000);
    // A gracefully leaving TS node becomes left.
    await b.m.leave(3_000);
    await b.m.shutdown();
    await go.events.waitFor('leave', (e) => e['name'] === 'ts-b' && e['state'] === NodeState.left, 20_000);
    assert.ok(!go.events.all.some((e) => e['ev'] === 'leave' && e['name'] === 'ts-b' && e['state'] === NodeState.dead), 'ts-b must not be seen dead');
    // A crashed Go node becomes dead at the TS node.
    await go.shutdownNode(1);
    await waitFor(() => a.leaves.some((n) => n.name === 'go-1' && n.state === NodeState.dead), { timeoutMs: 20_000, message: 'TS did not mark go-1 dead' });
  });

  test('user messages over packets and streams, both ways; meta updates reach Go', async (t) => {
    let meta = Buffer.from('m1');
    const go = await goPeer(t, { name: 'go' });
    const a = await tsNode(t, 'ts-a', {
      delegates: {
        delegate: {
          nodeMeta: () => meta,
          notifyMsg: (m) => got.push(m),
          getBroadcasts: () => [],
          localState: () => new Uint8Array(0),
          mergeRemoteState: () => undefined,
        },
      },
    });
    const got: Buffer[] = [];
    await a.m.join([go.address(0)]);
    await waitFor(() => goAlive(go, ['ts-a']));
    await go.sendMsg('ts-a', Buffer.from('over-udp'));
    await go.sendMsg('ts-a', Buffer.alloc(70_000, 3), { reliable: true });
    await waitFor(() => got.some((m) => m.toString() === 'over-udp') && got.some((m) => m.length === 70_000), { message: 'TS did not get Go messages' });
    const goNode = a.m.members().find((m) => m.name === 'go-0' || m.name === 'go')!;
    const since = go.events.mark();
    await a.m.sendBestEffort(goNode, Buffer.from('to-go-udp'));
    await a.m.sendReliable(goNode, Buffer.alloc(50_000, 5));
    await go.events.waitFor('msg', (e) => Buffer.from(String(e['data']), 'hex').toString() === 'to-go-udp', 10_000, since);
    await go.events.waitFor('msg', (e) => String(e['data']).length === 100_000, 10_000, since);
    meta = Buffer.from('m2-longer');
    await a.m.updateNode(2_000);
    await waitFor(async () => (await go.members()).find((m) => m.name === 'ts-a')?.meta.equals(meta) === true, { message: 'Go did not see the new meta' });
  });

  test('encryption: a shared key forms one pool; a wrong key is refused on both sides with a clear log line', async (t) => {
    const key = Buffer.alloc(32, 0x5a);
    const go = await goPeer(t, { name: 'go', key });
    const a = await tsNode(t, 'ts-a', { keyring: new Keyring(key) });
    await a.m.join([go.address(0)]);
    await waitFor(() => goAlive(go, ['ts-a']));
    const wrong = await tsNode(t, 'ts-wrong', { keyring: new Keyring(Buffer.alloc(32, 1)) });
    await assert.rejects(wrong.m.join([go.address(0)]), /No installed keys could decrypt the message/);
    await waitFor(() => go.events.logs().some((l) => /failed to receive: No installed keys could decrypt the message/.test(l)), { message: 'Go did not log the wrong key' });
    const goWrong = await goPeer(t, { name: 'gowrong', key: Buffer.alloc(32, 2) });
    await assert.rejects(goWrong.join([`ts-a/${a.m.advertiseAddress}`]), /No installed keys could decrypt the message/);
    await waitFor(() => a.logger.entries.some((e) => /failed to receive: No installed keys could decrypt the message/.test(e.msg)), { message: 'TS did not log the wrong key' });
    assert.deepEqual(a.m.members().map((m) => m.name).sort(), ['go', 'ts-a'].sort());
  });
});


