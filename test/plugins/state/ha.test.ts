import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createAgent, type Agent, type AgentPlugin } from '../../../src/index.js';
import { http, HttpTokens } from '../../../src/plugins/http/index.js';
import { Empty, rpc, RpcTokens, StatusLeaderResponse, StatusPeersResponse } from '../../../src/plugins/rpc/index.js';
import { state, StateTokens } from '../../../src/plugins/state/index.js';
import { tls } from '../../../src/plugins/tls/index.js';
import { createMemoryLogger, EtcdCluster, waitFor } from '../../../src/testing/index.js';

const host = { hostname: 'h', privateIPv4: '127.0.0.1' };

describe('state plugin on etcd: three servers of one datacenter', () => {
  let etcd: EtcdCluster;
  const agents: Agent[] = [];
  const events: string[] = [];
  const recorder = (name: string): AgentPlugin => ({
    name: 'leadership-recorder',
    apply({ hooks }) {
      hooks.onLeadershipAcquired.tapPromise({}, async () => void events.push(`${name}:acquired`));
      hooks.onLeadershipLost.tapPromise({}, async () => void events.push(`${name}:lost`));
    },
  });
  const start = async (name: string): Promise<Agent> => {
    const a = await createAgent({
      config: {
        node_name: name,
        datacenter: 'dc1',
        server: true,
        bind_addr: '127.0.0.1',
        ports: { server: 0, serf_lan: -1, serf_wan: -1, http: 0 },
        state: { backend: 'etcd', etcd: { endpoints: etcd.endpoints(), lease_ttl: '2s', request_timeout: '3s' } },
      },
      host,
      logger: createMemoryLogger('silent'),
      plugins: [tls({ dev: true }), rpc(), http(), state(), recorder(name)],
    });
    await a.start();
    return a;
  };
  const rpcAddr = (a: Agent): string => `127.0.0.1:${a.services.get(RpcTokens.Listener).address?.split(':').pop()}`;
  const api = (a: Agent): string => `http://${a.services.get(HttpTokens.HttpApi).address}`;
  const leaderOf = (list: readonly Agent[]): Agent | undefined => list.find((a) => a.services.get(StateTokens.Backend).isLeader());
  const mustLeader = async (list: readonly Agent[], timeoutMs = 15_000): Promise<Agent> => (await waitFor(() => leaderOf(list), { timeoutMs, message: 'no leader' })) as Agent;

  before(async () => {
    etcd = await EtcdCluster.start(3, { heartbeatMs: 100, electionMs: 1000 });
    for (const n of ['s1', 's2', 's3']) agents.push(await start(n));
  });
  after(async () => {
    for (const a of agents) await a.stop().catch(() => undefined);
    await etcd.stop();
  });

  test('exactly one leader; every server reports it over RPC and HTTP; peers list all three', async () => {
    const leader = await mustLeader(agents);
    assert.equal(agents.filter((a) => a.services.get(StateTokens.Backend).isLeader()).length, 1);
    assert.equal(agents.filter((a) => a.status().leader).length, 1, 'kernel leadership disagrees with the backend');
    await waitFor(() => agents.every((a) => a.services.get(StateTokens.Backend).peers().length === 3), { message: 'peers not complete' });
    for (const a of agents) {
      const pool = a.services.get(RpcTokens.Pool);
      const target = { datacenter: 'dc1', node: a.config.node_name, address: rpcAddr(a) };
      assert.equal(await pool.call(target, 'Status.Leader', {}, Empty, StatusLeaderResponse), rpcAddr(leader));
      assert.deepEqual([...(await pool.call(target, 'Status.Peers', {}, Empty, StatusPeersResponse))].sort(), agents.map(rpcAddr).sort());
      assert.equal(await (await fetch(`${api(a)}/v1/status/leader`)).json(), rpcAddr(leader));
    }
  });

  test('a write on a follower is forwarded to the leader and reaches every server; every server registered as consul', async () => {
    const leader = leaderOf(agents) as Agent;
    const follower = agents.find((a) => a !== leader) as Agent;
    const res = await fetch(`${api(follower)}/v1/catalog/register`, { method: 'PUT', body: JSON.stringify({ Node: 'web1', Address: '10.0.0.5', Service: { Service: 'web', Port: 80 } }) });
    assert.equal(res.status, 200, await res.text());
    await waitFor(() => agents.every((a) => a.services.get(StateTokens.Store).serviceNodes('web').value.length === 1), { message: 'write did not reach every server' });
    const idx = agents.map((a) => a.services.get(StateTokens.Store).serviceNodes('web').value[0]?.ModifyIndex);
    assert.ok(idx.every((i) => i === idx[0]), `different indexes ${idx.join()}`);
    await waitFor(() => leader.services.get(StateTokens.Store).serviceNodes('consul').value.length === 3, { message: 'not every server is registered as consul' });
    // a default read on a follower is answered by the leader; ?stale by the follower itself
    const r = await fetch(`${api(follower)}/v1/catalog/service/consul`);
    assert.equal(r.headers.get('x-consul-knownleader'), 'true');
    assert.equal(((await r.json()) as unknown[]).length, 3);
    const stale = await fetch(`${api(follower)}/v1/catalog/service/web?stale`);
    assert.equal(stale.headers.get('x-consul-effective-consistency'), 'stale');
    assert.match(stale.headers.get('x-consul-lastcontact') ?? '', /^\d+$/);
    const consistent = await fetch(`${api(follower)}/v1/catalog/service/web?consistent`);
    assert.equal(consistent.status, 200);
  });

  test('stopping the leader elects another within a few seconds; hooks fire on both; writes continue', async () => {
    const leader = leaderOf(agents) as Agent;
    const name = leader.config.node_name;
    await leader.stop();
    agents.splice(agents.indexOf(leader), 1);
    assert.ok(events.includes(`${name}:lost`), 'the old leader did not fire onLeadershipLost');
    const next = await mustLeader(agents, 8_000);
    await waitFor(() => events.includes(`${next.config.node_name}:acquired`), { message: 'the new leader did not fire onLeadershipAcquired' });
    const follower = agents.find((a) => a !== next) as Agent;
    await waitFor(async () => (await fetch(`${api(follower)}/v1/catalog/register`, { method: 'PUT', body: JSON.stringify({ Node: 'web2', Address: '10.0.0.6' }) })).status === 200, {
      timeoutMs: 8_000,
      message: 'writes did not resume',
    });
    await waitFor(() => agents.every((a) => a.services.get(StateTokens.Store).nodes().value.some((n) => n.Node === 'web2')), { message: 'web2 did not reach every server' });
    await waitFor(async () => (await (await fetch(`${api(follower)}/v1/status/leader`)).json()) === rpcAddr(next), { message: '/v1/status/leader did not follow' });
  });
});
