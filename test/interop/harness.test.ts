/**
 * Proves the interop harnesses themselves work, with real parts only: Debian's serf agent
 * (test/interop/serf-agent.ts) and the Go memberlist peer on Debian's hashicorp/memberlist 0.2.2
 * (test/interop/memberlist-peer.ts + memberlist-peer/main.go). scripts/setup.sh installs both;
 * without them the tests skip with a message.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test, type TestContext } from 'node:test';
import { promisify } from 'node:util';
import { buildGoPeer } from './go-peer.js';
import { serfTagsMeta, startMemberlistPeer, type MemberlistPeer, type MemberlistPeerOptions } from './memberlist-peer.js';
import { serfAvailable, startSerfAgent, type SerfAgent, type SerfAgentOptions, type SerfCliMember } from './serf-agent.js';

const haveSerf = await serfAvailable();
const haveGo = await promisify(execFile)('go', ['version']).then(
  () => true,
  () => false,
);
const NO_SERF = 'serf not installed (/usr/bin/serf): run scripts/setup.sh (Debian package serf)';
const NO_GO = 'go not installed: run scripts/setup.sh (golang-go + golang-github-hashicorp-memberlist-dev)';

/** Skip `t` unless the needed parts exist; true = go on. */
function need(t: TestContext, serf: boolean, go: boolean): boolean {
  if (serf && !haveSerf) {
    t.skip(NO_SERF);
    return false;
  }
  if (go && !haveGo) {
    t.skip(NO_GO);
    return false;
  }
  return true;
}

/** Fast local timings for Go peers (the process's own defaults are memberlist's). */
const FAST: Partial<MemberlistPeerOptions> = { profile: 'local', probeIntervalMs: 200, probeTimeoutMs: 100, pushPullIntervalMs: 2000 };

async function agent(t: TestContext, opts: SerfAgentOptions): Promise<SerfAgent> {
  const a = await startSerfAgent(opts);
  t.after(() => a.kill());
  return a;
}

async function goPeer(t: TestContext, opts: MemberlistPeerOptions): Promise<MemberlistPeer> {
  const p = await startMemberlistPeer({ ...FAST, ...opts });
  t.after(() => p.stop());
  return p;
}

const alive = (ms: SerfCliMember[], name: string, tags: Record<string, string> = {}): boolean =>
  ms.some((m) => m.name === name && m.status === 'alive' && Object.entries(tags).every(([k, v]) => m.tags[k] === v));

const ROLE_ML = serfTagsMeta({ role: 'ml' });

describe('interop harnesses', { timeout: 120_000 }, () => {
  before(async () => {
    if (haveGo) await buildGoPeer('memberlist-peer');
  });

  test('memberlist-peer builds (GOPATH mode) and its serf-style meta helper matches hashicorp-wire.md §6', async (t) => {
    if (!need(t, false, true)) return;
    const t0 = Date.now();
    await buildGoPeer('memberlist-peer'); // memoised: the real build ran in before()
    t.diagnostic(`buildGoPeer (memoised) ${Date.now() - t0} ms`);
    assert.equal(ROLE_ML.toString('hex'), 'ff81a4726f6c65a26d6c');
  });

  test('two serf agents join; each sees the other alive with its tags; query, event, leave', async (t) => {
    if (!need(t, true, false)) return;
    const a = await agent(t, { node: 'serf-a', tags: { role: 'a', dc: 'dc1' } });
    const b = await agent(t, { node: 'serf-b', tags: { role: 'b' }, eventHandlers: ['query:greet=echo hi-from-b'] });
    assert.equal(await b.join(a.addr), 1);
    await a.waitForMembers((ms) => alive(ms, 'serf-b', { role: 'b' }) && alive(ms, 'serf-a', { role: 'a', dc: 'dc1' }));
    const bm = await b.waitForMembers((ms) => alive(ms, 'serf-a', { role: 'a', dc: 'dc1' }) && alive(ms, 'serf-b'));
    const ma = bm.find((m) => m.name === 'serf-a')!;
    assert.equal(ma.addr, a.addr);
    assert.equal(ma.port, a.bindPort);
    assert.deepEqual(ma.protocol, { min: 2, max: 5, version: 5 });

    const q = await a.query('greet', '', { timeoutMs: 1000 });
    assert.deepEqual(q.acks.sort(), ['serf-a', 'serf-b']);
    assert.equal(q.responses['serf-b']?.trim(), 'hi-from-b');

    const mark = b.logs.length;
    await a.event('deploy', 'v1');
    await b.waitForLog(/Received event: user-event: deploy/, 5000, mark);

    await b.leave();
    await a.waitForMembers((ms) => ms.some((m) => m.name === 'serf-b' && m.status === 'left'));
    await a.waitForLog(/EventMemberLeave: serf-b/);
  });

  test('a Go memberlist peer with delegate versions 2,5,5 and serf meta joins a serf agent', async (t) => {
    if (!need(t, true, true)) return;
    const s = await agent(t, { node: 'serf-s', tags: { role: 's' } });
    const ml = await goPeer(t, { name: 'serfish-ml', dvsn: [2, 5, 5], meta: ROLE_ML });
    assert.equal(await ml.join([s.addr]), 1);
    await ml.waitForJoin('serf-s');
    const ms = await s.waitForMembers((x) => alive(x, 'serfish-ml', { role: 'ml' }));
    assert.equal(ms.find((m) => m.name === 'serfish-ml')?.port, ml.nodes[0]!.port);
    const seen = (await ml.members()).find((m) => m.name === 'serf-s');
    assert.ok(seen, 'the Go peer lists the serf agent');
    assert.equal(seen.state, 0);
    assert.equal(seen.meta[0], 0xff, 'serf meta = 0xff + msgpack tags');
  });

  test('a plain memberlist peer (delegate versions 0,0,0) is refused by serf', async (t) => {
    if (!need(t, true, true)) return;
    const s = await agent(t, { node: 'serf-p' });
    const ml = await goPeer(t, { name: 'plain-ml' });
    await assert.rejects(ml.join([s.addr]), /delegate protocol version \(5\) is incompatible/);
    await s.waitForLog(/Node 'plain-ml' delegate protocol version \(0\) is incompatible/);
  });

  test('a Go memberlist peer with -nodes 3 converges; members() reports all alive', async (t) => {
    if (!need(t, false, true)) return;
    const p = await goPeer(t, { name: 'trio', nodes: 3 });
    assert.deepEqual(
      p.nodes.map((n) => n.name),
      ['trio-0', 'trio-1', 'trio-2'],
    );
    await p.join([p.address(0)], 1);
    await p.join([p.address(0)], 2);
    for (let i = 0; i < 3; i++) for (const n of p.nodes) await p.waitForJoin(n.name, i, 10_000);
    for (let i = 0; i < 3; i++) {
      const ms = await p.members(i);
      assert.deepEqual(ms.map((m) => m.name).sort(), ['trio-0', 'trio-1', 'trio-2']);
      assert.ok(ms.every((m) => m.state === 0 && m.addr === '127.0.0.1'));
    }
    // A leave is seen as left (state 3), a crash (shutdown without leave) as dead (state 2). The
    // leave goes first: with a dead member in the pool, memberlist may spend a leave's few
    // retransmits on it (gossip to the dead) and the leaver is then only ever seen failed.
    // memberlist 0.2.2 reports the leave broadcast done when it is handed out, before it is
    // written; shutting the node down at once can lose it (serf waits LeavePropagateDelay), so
    // the leaver stays up ('stay') while the others hear of it.
    const since = p.events.mark();
    await p.leave(1, 2000, true);
    await p.events.waitFor('leave', (e) => e.node !== 'trio-1' && e.name === 'trio-1' && e.state === 3, 10_000, since);
    await p.shutdownNode(2);
    await p.events.waitFor('leave', (e) => e.node === 'trio-0' && e.name === 'trio-2' && e.state === 2, 10_000, since);
  });

  test('bench mode: join-all converges, stats, a killed node is detected failed', async (t) => {
    if (!need(t, false, true)) return;
    const p = await goPeer(t, { name: 'bn', nodes: 4, bench: true });
    const since = p.events.mark();
    await p.request({ cmd: 'join-all' });
    const conv = await p.events.waitFor('converged', undefined, 20_000, since);
    const s1 = await p.stats();
    assert.ok(s1.cpuMs > 0 && s1.rssBytes > 1 << 20 && s1.tMs > 0, JSON.stringify(s1));
    await p.request({ cmd: 'kill', node: 3 });
    const fd = await p.events.waitFor('failed-detected', (e) => e.name === 'bn-3', 20_000, since);
    t.diagnostic(`4 nodes: converged in ${String(conv.ms)} ms, failure detected in ${String(fd.ms)} ms; ${JSON.stringify(s1)}`);
  });

  test('a Go peer reports user messages sent by another Go peer (best effort and reliable)', async (t) => {
    if (!need(t, false, true)) return;
    const a = await goPeer(t, { name: 'msg-a' });
    const b = await goPeer(t, { name: 'msg-b' });
    await a.join([b.address()]);
    await a.waitForJoin('msg-b');
    const since = b.events.mark();
    await a.sendMsg('msg-b', Buffer.from('hello udp'));
    await a.sendMsg('msg-b', Buffer.from('hello tcp'), { reliable: true });
    const got = async (s: string): Promise<void> => {
      await b.events.waitFor('msg', (e) => e.data === Buffer.from(s).toString('hex'), 5000, since);
    };
    await Promise.all([got('hello udp'), got('hello tcp')]);
  });

  describe('encryption', () => {
    const key = randomBytes(32).toString('base64');
    let a: SerfAgent | undefined;
    let b: SerfAgent | undefined;
    after(async () => {
      await b?.kill();
      await a?.kill();
    });

    test('an encrypted serf pair joins and gossips', async (t) => {
      if (!need(t, true, false)) return;
      a = await startSerfAgent({ node: 'enc-a', encryptKey: key, tags: { role: 'a' } });
      b = await startSerfAgent({ node: 'enc-b', encryptKey: key, tags: { role: 'b' } });
      await a.waitForLog(/Encrypted: true/);
      assert.equal(await b.join(a.addr), 1);
      await a.waitForMembers((ms) => alive(ms, 'enc-b', { role: 'b' }));
      await b.waitForMembers((ms) => alive(ms, 'enc-a', { role: 'a' }));
      const mark = b.logs.length;
      await a.event('enc-ev', 'x');
      await b.waitForLog(/Received event: user-event: enc-ev/, 5000, mark);
    });

    test('a Go peer with the same key joins the encrypted pair', async (t) => {
      if (!need(t, true, true) || !a || !b) return;
      const ml = await goPeer(t, { name: 'enc-ml', dvsn: [2, 5, 5], meta: ROLE_ML, key });
      assert.equal(await ml.join([a.addr]), 1);
      await b.waitForMembers((ms) => alive(ms, 'enc-ml', { role: 'ml' }));
    });

    test('a Go peer with a wrong key is refused; both logs show the error', async (t) => {
      if (!need(t, true, true) || !a) return;
      const ml = await goPeer(t, { name: 'bad-key-ml', dvsn: [2, 5, 5], meta: ROLE_ML, key: randomBytes(32) });
      const mark = a.logs.length;
      await assert.rejects(ml.join([a.addr]), /No installed keys could decrypt the message/);
      assert.ok(
        ml.events.logs().some((l) => /\[DEBUG\] memberlist: Failed to join 127\.0\.0\.1: No installed keys could decrypt the message/.test(l)),
        ml.events.logs().join('\n'),
      );
      await a.waitForLog(/\[ERR\] memberlist: failed to receive: No installed keys could decrypt the message from=127\.0\.0\.1:\d+/, 5000, mark);
      assert.ok(!alive(await a.members(), 'bad-key-ml'));
    });

    test('a Go peer without a key is refused by the encrypted pair', async (t) => {
      if (!need(t, true, true) || !a) return;
      const ml = await goPeer(t, { name: 'no-key-ml', dvsn: [2, 5, 5], meta: ROLE_ML });
      const mark = a.logs.length;
      await assert.rejects(ml.join([a.addr]), /Remote state is encrypted and encryption is not configured/);
      await a.waitForLog(/failed to receive: Encryption is configured but remote state is not encrypted/, 5000, mark);
    });
  });
});
