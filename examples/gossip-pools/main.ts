/**
 * Two datacenters on loopback, gossiping: servers a1 + a2 in dc1, b1 in dc2. a2 and b1 join
 * through `retry_join` / `retry_join_wan`; the LAN→WAN flood join brings a1's and a2's WAN
 * identities into the WAN pool; the router learns both datacenters from membership events alone
 * and routes a `Status.Ping` from a1 to dc2 through the RPC connection pool. A user event sent
 * in dc1 reaches every dc1 server. Then a2 leaves gracefully: everyone sees it `left`.
 *
 *   node dist/examples/gossip-pools/main.js
 */
import { createAgent, silentLogger, type Agent } from '../../src/index.js';
import { gossip, GossipTokens } from '../../src/plugins/gossip/index.js';
import { router, RouterTokens } from '../../src/plugins/router/index.js';
import { rpc, RpcTokens } from '../../src/plugins/rpc/index.js';
import { tls } from '../../src/plugins/tls/index.js';
import { waitFor } from '../../src/testing/index.js';

/** Gossip timings for one host (memberlist's LAN defaults are for real networks). */
const FAST = { probe_interval: '200ms', probe_timeout: '100ms', gossip_interval: '50ms', push_pull_interval: '2s' };

const events: string[] = [];

async function server(name: string, dc: string, extra: Record<string, unknown> = {}): Promise<Agent> {
  const agent = await createAgent({
    config: { node_name: name, datacenter: dc, server: true, bind_addr: '127.0.0.1', ports: { server: 0, serf_lan: 0, serf_wan: 0, http: -1 }, gossip_lan: FAST, gossip_wan: FAST, retry_interval: '200ms', retry_interval_wan: '200ms', ...extra },
    logger: silentLogger(),
    plugins: [tls({ dev: true }), rpc(), gossip({ floodIntervalMs: 500, onUserEvent: (pool, e) => events.push(`${name}:${pool}:${e.name}`) }), router()],
  });
  await agent.start();
  return agent;
}

const alive = (a: Agent, pool: 'lan' | 'wan'): string =>
  a.services
    .get(pool === 'lan' ? GossipTokens.Lan : GossipTokens.Wan)
    .members()
    .filter((m) => m.status === 'alive')
    .map((m) => m.name)
    .sort()
    .join(' ');

async function main(): Promise<void> {
  const a1 = await server('a1', 'dc1');
  const lanA1 = a1.services.get(GossipTokens.Lan).advertiseAddress;
  const wanA1 = a1.services.get(GossipTokens.Wan).advertiseAddress;
  const a2 = await server('a2', 'dc1', { retry_join: [lanA1] });
  const b1 = await server('b1', 'dc2', { retry_join_wan: [wanA1] });
  const agents = [a1, a2, b1];
  try {
    await waitFor(() => alive(a1, 'lan') === 'a1 a2', { timeoutMs: 15_000, message: 'dc1 LAN pool did not form' });
    await waitFor(() => agents.every((a) => alive(a, 'wan') === 'a1.dc1 a2.dc1 b1.dc2'), { timeoutMs: 20_000, message: 'WAN pool did not converge' });
    console.log(`ok  LAN dc1: ${alive(a1, 'lan')}`);
    console.log(`ok  WAN:     ${alive(a1, 'wan')}`);

    const r = a1.services.get(RouterTokens.Router);
    await waitFor(() => r.getDatacenters().join() === 'dc1,dc2', { message: 'router did not learn dc2' });
    const route = r.routeOrThrow('dc2');
    await a1.services.get(RpcTokens.Pool).ping({ datacenter: 'dc2', node: route.server.shortName, address: route.server.addr });
    console.log(`ok  router: dc2 -> ${route.server.name} (${route.server.addr}), Status.Ping answered`);

    await a1.services.get(GossipTokens.Lan).serf.userEvent('deploy', Buffer.from('v1'), false);
    await waitFor(() => events.includes('a2:lan:deploy') && events.includes('a1:lan:deploy'), { message: 'user event did not arrive' });
    console.log('ok  user event "deploy" reached a1 and a2');

    await a2.stop();
    agents.splice(agents.indexOf(a2), 1);
    const status = (a: Agent, pool: 'lan' | 'wan', name: string): string | undefined =>
      a.services
        .get(pool === 'lan' ? GossipTokens.Lan : GossipTokens.Wan)
        .members()
        .find((m) => m.name === name)?.status;
    await waitFor(() => status(a1, 'lan', 'a2') === 'left' && status(b1, 'wan', 'a2.dc1') === 'left', { timeoutMs: 15_000, message: 'a2 not seen left' });
    console.log('ok  a2 left gracefully: left in the LAN and the WAN pool');
  } finally {
    for (const a of agents.reverse()) await a.stop();
  }
  console.log('gossip pools example done');
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
