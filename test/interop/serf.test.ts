/**
 * meshfed's gossip plugin and Debian's serf agent (serf 0.9.4 on memberlist 0.2.2) in one pool:
 * both join directions, tags both ways, a killed meshfed node failed at serf and a leaving one
 * left, a killed serf agent failed at meshfed, serf user events and queries reaching meshfed, an
 * encrypted pool with a shared key, a wrong key refused with a clear log line on both sides, and
 * the WAN pool refusing a non-server.
 */
import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import { createAgent, type Agent } from '../../src/index.js';
import { gossip, GossipTokens } from '../../src/plugins/gossip/index.js';
import type { SerfUserEvent } from '../../src/plugins/gossip/serf/types.js';
import { rpc } from '../../src/plugins/rpc/index.js';
import { tls } from '../../src/plugins/tls/index.js';
import { createMemoryLogger, waitFor, type MemoryLogger } from '../../src/testing/index.js';
import { startSerfAgent, type SerfAgent, type SerfAgentOptions } from './serf-agent.js';

const FAST = { probe_interval: '200ms', probe_timeout: '100ms', gossip_interval: '50ms', suspicion_mult: 3, push_pull_interval: '2s' };

interface MeshfedNode {
  readonly agent: Agent;
  readonly logger: MemoryLogger;
  readonly events: SerfUserEvent[];
  lan(): string;
  wan(): string;
}

async function meshfed(t: TestContext, name: string, extra: Record<string, unknown> = {}): Promise<MeshfedNode> {
  const logger = createMemoryLogger('info');
  const events: SerfUserEvent[] = [];
  const agent = await createAgent({
    config: { node_name: name, datacenter: 'dc1', server: true, bind_addr: '127.0.0.1', ports: { server: 0, serf_lan: 0, serf_wan: 0 }, gossip_lan: FAST, gossip_wan: FAST, ...extra },
    host: { hostname: 'h', privateIPv4: '127.0.0.1' },
    logger,
    plugins: [tls({ dev: true }), rpc(), gossip({ onUserEvent: (_pool, e) => events.push(e), serf: { leavePropagateDelayMs: 200 } })],
  });
  await agent.start();
  t.after(() => agent.stop().catch(() => undefined));
  return {
    agent,
    logger,
    events,
    lan: () => agent.services.get(GossipTokens.Lan).advertiseAddress,
    wan: () => agent.services.get(GossipTokens.Wan).advertiseAddress,
  };
}

async function serf(t: TestContext, opts: SerfAgentOptions): Promise<SerfAgent> {
  const a = await startSerfAgent({ profile: 'local', ...opts });
  t.after(() => a.kill());
  return a;
}

const statusAt = async (s: SerfAgent, name: string): Promise<string | undefined> => (await s.members()).find((m) => m.name === name)?.status;
const meshfedSees = (n: MeshfedNode, name: string, status = 'alive'): boolean =>
  n.agent.services.get(GossipTokens.Lan).members().some((m) => m.name === name && m.status === status);

describe('gossip interop with the Debian serf agent', { timeout: 180_000 }, () => {
  test('one pool in both join directions, tags both ways; failure, leave and crash; user events and queries', async (t) => {
    const s1 = await serf(t, { node: 'serf-1', tags: { role: 'serfer', zone: 'a' } });
    const a = await meshfed(t, 'mf-a', { retry_join: [s1.addr], retry_interval: '200ms' }); // meshfed joins serf
    const b = await meshfed(t, 'mf-b');
    const c = await meshfed(t, 'mf-c');
    await s1.join(b.lan()); // serf joins meshfed
    await s1.join(c.lan());
    await s1.waitForMembers((ms) => ['mf-a', 'mf-b', 'mf-c'].every((n) => ms.some((m) => m.name === n && m.status === 'alive')), 20_000);
    const ms = await s1.members();
    const mfA = ms.find((m) => m.name === 'mf-a')!;
    assert.equal(mfA.tags['role'], 'consul');
    assert.equal(mfA.tags['dc'], 'dc1');
    assert.equal(mfA.tags['vsn'], '2');
    assert.deepEqual(mfA.protocol, { min: 2, max: 5, version: 5 }, 'serf shows the serf (delegate) protocol range');
    await waitFor(() => ['mf-b', 'mf-c', 'serf-1'].every((n) => meshfedSees(a, n)), { timeoutMs: 20_000, message: 'mf-a does not see the pool' });
    const serfAtA = a.agent.services.get(GossipTokens.Lan).members().find((m) => m.name === 'serf-1')!;
    assert.deepEqual(serfAtA.tags, { role: 'serfer', zone: 'a' });

    // A serf user event reaches meshfed's event hook (once).
    await s1.event('deploy', 'v1');
    await waitFor(() => a.events.some((e) => e.name === 'deploy' && e.payload.toString() === 'v1'), { message: 'user event did not reach mf-a' });
    await waitFor(() => c.events.some((e) => e.name === 'deploy'), { message: 'user event did not reach mf-c' });
    assert.equal(a.events.filter((e) => e.name === 'deploy').length, 1);
    // A serf query is acked by every meshfed node.
    const q = await s1.query('whoami', '', { timeoutMs: 2_000 });
    for (const n of ['mf-a', 'mf-b', 'mf-c']) assert.ok(q.acks.includes(n), `${n} did not ack the query: ${JSON.stringify(q)}`);

    // A crashed meshfed node (pool shut down without leaving) becomes failed at serf.
    await c.agent.services.get(GossipTokens.Lan).shutdown();
    await waitFor(async () => (await statusAt(s1, 'mf-c')) === 'failed', { timeoutMs: 30_000, message: 'serf did not mark mf-c failed' });
    // A meshfed node that stops gracefully is left, not failed.
    await b.agent.stop();
    await waitFor(async () => (await statusAt(s1, 'mf-b')) === 'left', { timeoutMs: 20_000, message: 'serf did not see mf-b leave' });
    // A killed serf agent becomes failed at meshfed.
    await s1.kill();
    await waitFor(() => meshfedSees(a, 'serf-1', 'failed'), { timeoutMs: 30_000, message: 'mf-a did not mark serf-1 failed' });
  });

  test('encryption: a shared key forms one pool; a wrong key is refused and logged on both sides', async (t) => {
    const key = Buffer.alloc(32, 0x42).toString('base64');
    const s1 = await serf(t, { node: 'serf-enc', encryptKey: key });
    const a = await meshfed(t, 'mf-enc', { encrypt: key, retry_join: [s1.addr], retry_interval: '200ms' });
    await s1.waitForMembers((ms) => ms.some((m) => m.name === 'mf-enc' && m.status === 'alive'), 20_000);
    await waitFor(() => meshfedSees(a, 'serf-enc'));

    const wrong = await meshfed(t, 'mf-wrong', { encrypt: Buffer.alloc(32, 1).toString('base64') });
    await assert.rejects(wrong.agent.services.get(GossipTokens.Lan).join([s1.addr]), /No installed keys could decrypt the message/);
    await s1.waitForLog(/failed to receive: No installed keys could decrypt the message/, 10_000);
    await assert.rejects(s1.join(wrong.lan()));
    await waitFor(() => wrong.logger.entries.some((e) => /failed to receive: No installed keys could decrypt the message/.test(e.msg)), { message: 'meshfed did not log the wrong key' });
    assert.ok(!(await s1.members()).some((m) => m.name === 'mf-wrong'));
  });

  test("meshfed's WAN pool refuses a serf agent that is not a server", async (t) => {
    const a = await meshfed(t, 'mf-w');
    const s1 = await serf(t, { node: 'serf-client', tags: { role: 'node' } });
    // serf's own join succeeds (it merges our state, as against Consul), but meshfed refuses the
    // push-pull merge and every alive message about the non-server.
    await s1.join(a.wan()).catch(() => 0);
    await waitFor(() => a.logger.entries.some((e) => /Member 'serf-client' is not a server/.test(e.msg)), { message: 'WAN refusal not logged' });
    await s1.waitForMembers((ms) => ms.some((m) => m.name === 'mf-w.dc1'), 10_000);
    // Its gossip keeps arriving; the member still never enters meshfed's WAN pool.
    await waitFor(() => a.logger.entries.filter((e) => /serf-client/.test(e.msg)).length >= 2, { timeoutMs: 10_000, message: 'no further alive messages refused' });
    assert.ok(!a.agent.services.get(GossipTokens.Wan).members().some((m) => m.name === 'serf-client'));
  });
});
