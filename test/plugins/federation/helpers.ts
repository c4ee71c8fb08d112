/** Shared fixtures of the federation tests: Consul-like servers on loopback with fast gossip. */
import { createAgent, type Agent } from '../../../src/index.js';
import { federation, type FederationPluginOptions } from '../../../src/plugins/federation/index.js';
import { gossip, GossipTokens } from '../../../src/plugins/gossip/index.js';
import { http, HttpTokens } from '../../../src/plugins/http/index.js';
import { router } from '../../../src/plugins/router/index.js';
import { rpc } from '../../../src/plugins/rpc/index.js';
import { state } from '../../../src/plugins/state/index.js';
import { tls } from '../../../src/plugins/tls/index.js';
import { createMemoryLogger, waitFor } from '../../../src/testing/index.js';

const host = { hostname: 'h', privateIPv4: '127.0.0.1' };
const FAST = { probe_interval: '200ms', probe_timeout: '100ms', gossip_interval: '50ms', suspicion_mult: 3, push_pull_interval: '2s' };

/** A started server of `dc` (primary dc1) with the federation plugin, anti-entropy debounce 0. */
export async function fedServer(name: string, dc: string, extra: Record<string, unknown> = {}, opts: FederationPluginOptions = {}): Promise<Agent> {
  const agent = await createAgent({
    config: {
      node_name: name,
      datacenter: dc,
      primary_datacenter: 'dc1',
      server: true,
      bind_addr: '127.0.0.1',
      ports: { server: 0, serf_lan: 0, serf_wan: 0, http: 0 },
      gossip_lan: FAST,
      gossip_wan: FAST,
      federation: { anti_entropy_interval: '0s', replication_rate: 0 },
      ...extra,
    },
    host,
    logger: createMemoryLogger('silent'),
    plugins: [tls({ dev: true }), rpc(), http(), gossip({ serf: { leavePropagateDelayMs: 0 } }), router(), state(), federation(opts)],
  });
  await agent.start();
  return agent;
}

/** The agent's HTTP API base URL. */
export const apiOf = (a: Agent): string => `http://${a.services.get(HttpTokens.HttpApi).address}`;

/** The agent's WAN gossip address (for `retry_join_wan`). */
export const wanAddr = (a: Agent): string => a.services.get(GossipTokens.Wan).advertiseAddress;

/** Wait until every agent sees every other alive in the WAN pool. */
export async function wanConverged(agents: readonly Agent[]): Promise<void> {
  await waitFor(() => agents.every((a) => a.services.get(GossipTokens.Wan).members().filter((m) => m.status === 'alive').length === agents.length), {
    timeoutMs: 15_000,
    message: 'WAN pool did not converge',
  });
}
