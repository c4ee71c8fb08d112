import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createAgent, type Agent } from '../../../src/index.js';
import { gossip, GossipTokens } from '../../../src/plugins/gossip/index.js';
import { http } from '../../../src/plugins/http/index.js';
import { router } from '../../../src/plugins/router/index.js';
import { rpc } from '../../../src/plugins/rpc/index.js';
import { state, StateTokens } from '../../../src/plugins/state/index.js';
import { tls } from '../../../src/plugins/tls/index.js';
import { createMemoryLogger, EtcdCluster, waitFor } from '../../../src/testing/index.js';

const FAST = { probe_interval: '200ms', probe_timeout: '100ms', gossip_interval: '50ms', suspicion_mult: 3, push_pull_interval: '2s' };

describe('leader reconciles server members into the catalog (three servers on etcd, one LAN pool)', () => {
  let etcd: EtcdCluster;
  const agents = new Map<string, Agent>();
  const start = async (name: string, retryJoin: readonly string[]): Promise<Agent> => {
    const a = await createAgent({
      config: {
        node_name: name,
        datacenter: 'dc1',
        server: true,
        bind_addr: '127.0.0.1',
        ports: { server: 0, serf_lan: 0, serf_wan: -1, http: -1, grpc: -1 },
        gossip_lan: FAST,
        retry_join: [...retryJoin],
        retry_interval: '200ms',
        state: { backend: 'etcd', etcd: { endpoints: etcd.endpoints(), lease_ttl: '2s', dial_timeout: '2s', request_timeout: '3s' } },
      },
      host: { hostname: name, privateIPv4: '127.0.0.1' },
      logger: createMemoryLogger('silent'),
      plugins: [tls({ dev: true }), rpc(), http(), gossip({ serf: { leavePropagateDelayMs: 200 } }), router(), state()],
    });
    await a.start();
    agents.set(name, a);
    return a;
  };
  const leader = (): Agent | undefined => [...agents.values()].find((a) => a.services.get(StateTokens.Backend).isLeader());
  const consulNodes = (a: Agent): string[] =>
    a.services
      .get(StateTokens.Store)
      .checkServiceNodes('consul')
      .value.map((e) => `${e.Node.Node}:${e.Checks.find((c) => c.CheckID === 'serfHealth')?.Status ?? '-'}`)
      .sort();

  before(async () => {
    etcd = await EtcdCluster.start(1);
    const s1 = await start('s1', []);
    const lan = s1.services.get(GossipTokens.Lan).advertiseAddress;
    await start('s2', [lan]);
    await start('s3', [lan]);
  });
  after(async () => {
    for (const a of agents.values()) await a.stop().catch(() => undefined);
    await etcd.stop();
  });

  test('every server is registered with serfHealth passing; a server that leaves is deregistered by the leader', async () => {
    await waitFor(() => leader(), { timeoutMs: 15_000, message: 'no leader' });
    await waitFor(() => consulNodes(leader() as Agent).join() === 's1:passing,s2:passing,s3:passing', { timeoutMs: 15_000, message: 'all three servers registered and passing' });
    const l = leader() as Agent;
    const [goneName, gone] = [...agents].find(([, a]) => a !== l) as [string, Agent];
    await gone.stop();
    agents.delete(goneName);
    await waitFor(() => !consulNodes(l).some((n) => n.startsWith(`${goneName}:`)), { timeoutMs: 15_000, message: `${goneName} deregistered after leaving` });
    assert.equal(consulNodes(l).length, 2);
  });
});
