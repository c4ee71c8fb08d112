import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { createAgent, type Agent } from '../../../src/index.js';
import { gossip, GossipTokens, type AgentMemberJson } from '../../../src/plugins/gossip/index.js';
import { http, HttpTokens } from '../../../src/plugins/http/index.js';
import { router, RouterTokens } from '../../../src/plugins/router/index.js';
import { rpc, RpcTokens } from '../../../src/plugins/rpc/index.js';
import { tls } from '../../../src/plugins/tls/index.js';
import { createMemoryLogger, waitFor } from '../../../src/testing/index.js';

const host = { hostname: 'h', privateIPv4: '127.0.0.1' };
// Fast gossip, but probe timeouts closer to Consul's LAN default (500 ms): the graceful-stop check
// below failed twice on 2026-11-26 (t1 saw t2 `failed`, not `left`: its leave intent never
// arrived), once in a full-suite run. The likeliest cause is t2 wrongly holding t1 dead after a
// long event-loop stall (four agents in one process, 100 ms probe timeouts), so that it skips the
// leave broadcast as serf does with no live member; not reproduced on demand. No assertion here
// waits for failure detection.
const FAST = { probe_interval: '500ms', probe_timeout: '400ms', gossip_interval: '50ms', suspicion_mult: 3, push_pull_interval: '2s' };

async function server(name: string, dc: string, extra: Record<string, unknown> = {}): Promise<Agent> {
  const agent = await createAgent({
    config: {
      node_name: name,
      datacenter: dc,
      server: true,
      bind_addr: '127.0.0.1',
      ports: { server: 0, serf_lan: 0, serf_wan: 0, http: 0 },
      gossip_lan: FAST,
      gossip_wan: FAST,
      ...extra,
    },
    host,
    logger: createMemoryLogger('silent'),
    plugins: [tls({ dev: true }), rpc(), http(), gossip({ floodIntervalMs: 500, serf: { leavePropagateDelayMs: 0 } }), router()],
  });
  await agent.start();
  return agent;
}

const lanAddr = (a: Agent): string => a.services.get(GossipTokens.Lan).advertiseAddress;
const wanAddr = (a: Agent): string => a.services.get(GossipTokens.Wan).advertiseAddress;
const names = (a: Agent, pool: 'lan' | 'wan', status = 'alive'): string[] =>
  a.services
    .get(pool === 'lan' ? GossipTokens.Lan : GossipTokens.Wan)
    .members()
    .filter((m) => m.status === status)
    .map((m) => m.name)
    .sort();

describe('gossip plugin: LAN and WAN pools of several datacenters', () => {
  const agents: Agent[] = [];
  after(async () => {
    for (const a of agents.reverse()) await a.stop().catch(() => undefined);
  });

  test('servers of dc1 and dc2 form LAN pools and one WAN pool; the router routes RPC to the other DC', async () => {
    const s1 = await server('s1', 'dc1');
    agents.push(s1);
    const s2 = await server('s2', 'dc1', { retry_join: [lanAddr(s1)], retry_interval: '200ms' });
    agents.push(s2);
    const t1 = await server('t1', 'dc2');
    agents.push(t1);
    const t2 = await server('t2', 'dc2', { retry_join: [lanAddr(t1)], retry_join_wan: [wanAddr(s1)], retry_interval: '200ms', retry_interval_wan: '200ms' });
    agents.push(t2);

    await waitFor(() => names(s1, 'lan').join() === 's1,s2' && names(t1, 'lan').join() === 't1,t2', { timeoutMs: 15_000, message: 'LAN pools did not form' });
    // t2 joined the WAN pool; flood joins bring every other server in.
    const wanAll = 's1.dc1,s2.dc1,t1.dc2,t2.dc2';
    await waitFor(() => [s1, s2, t1, t2].every((a) => names(a, 'wan').join() === wanAll), { timeoutMs: 20_000, message: 'WAN pool did not converge' });

    // Consul's server tags.
    const me = s1.services.get(GossipTokens.Lan).members().find((m) => m.name === 's1')!;
    assert.equal(me.tags['role'], 'consul');
    assert.equal(me.tags['dc'], 'dc1');
    assert.equal(me.tags['port'], s1.services.get(RpcTokens.Listener).address!.split(':').pop());
    assert.equal(me.tags['wan_join_port'], wanAddr(s1).split(':').pop());
    assert.equal(me.tags['ft_fs'], '1');
    assert.equal(me.tags['vsn'], '2');
    assert.match(me.tags['id'] ?? '', /^[0-9a-f-]{36}$/);
    const wanMe = s1.services.get(GossipTokens.Wan).members().find((m) => m.name === 's1.dc1')!;
    assert.equal(wanMe.tags['wan_join_port'], undefined, 'wan_join_port only on LAN');

    // The router knows both datacenters from membership alone, and RPC to dc2 goes through the pool.
    const r = s1.services.get(RouterTokens.Router);
    await waitFor(() => r.getDatacenters().join() === 'dc1,dc2', { message: 'router does not know dc2' });
    const route = r.routeOrThrow('dc2');
    assert.ok(['t1', 't2'].includes(route.server.shortName));
    await s1.services.get(RpcTokens.Pool).ping({ datacenter: 'dc2', node: route.server.shortName, address: route.server.addr });
    assert.throws(() => r.routeOrThrow('dc9'), /No path to datacenter/);

    // HTTP /v1/agent/members in Consul's shape, LAN and WAN.
    const base = `http://${s1.services.get(HttpTokens.HttpApi).address}`;
    const lan = (await (await fetch(`${base}/v1/agent/members`)).json()) as AgentMemberJson[];
    assert.deepEqual(lan.map((m) => m.Name), ['s1', 's2']);
    assert.equal(lan[0]!.Status, 1);
    assert.equal(lan[0]!.Addr, '127.0.0.1');
    assert.deepEqual([lan[0]!.ProtocolMin, lan[0]!.ProtocolMax, lan[0]!.ProtocolCur, lan[0]!.DelegateMin, lan[0]!.DelegateMax, lan[0]!.DelegateCur], [1, 5, 2, 2, 5, 5]);
    const wan = (await (await fetch(`${base}/v1/agent/members?wan=1`)).json()) as AgentMemberJson[];
    assert.deepEqual(wan.map((m) => m.Name), wanAll.split(','));

    // A gracefully stopped server is `left`, not `failed`, in both pools.
    await t2.stop();
    agents.splice(agents.indexOf(t2), 1);
    await waitFor(() => names(t1, 'lan', 'left').join() === 't2' && names(s1, 'wan', 'left').join() === 't2.dc2', { timeoutMs: 15_000, message: 't2 not seen left' });
    assert.deepEqual(names(s1, 'wan', 'failed'), []);
    // The router dropped it; dc2 is still reachable through t1.
    await waitFor(() => r.routeOrThrow('dc2').server.shortName === 't1', { message: 'router still routes to t2' });
  });

  test('a LAN join across datacenters is refused by the merge check', async () => {
    const a = await server('x1', 'dc1');
    agents.push(a);
    const b = await server('y1', 'dc2');
    agents.push(b);
    await assert.rejects(b.services.get(GossipTokens.Lan).join([lanAddr(a)]), /Member 'x1' part of wrong datacenter 'dc1'/);
  });

  test('encryption key validation and an encrypted LAN pool', async () => {
    await assert.rejects(server('bad', 'dc1', { encrypt: 'not-a-key' }), /encrypt: expected a base64 key of 16, 24 or 32 bytes/);
    const key = Buffer.alloc(32, 3).toString('base64');
    const a = await server('e1', 'dc1', { encrypt: key });
    agents.push(a);
    const b = await server('e2', 'dc1', { encrypt: key, retry_join: [lanAddr(a)], retry_interval: '200ms' });
    agents.push(b);
    await waitFor(() => names(a, 'lan').join() === 'e1,e2', { message: 'encrypted pool did not form' });
    const st = a.status().plugins.find((p) => p.name === 'gossip')?.status as { encrypted: boolean };
    assert.equal(st.encrypted, true);
  });
});
