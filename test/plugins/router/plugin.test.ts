import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { createAgent, Tokens, type Agent } from '../../../src/index.js';
import { router, RouterTokens, type ServerMeta } from '../../../src/plugins/router/index.js';
import { rpc, RpcTokens } from '../../../src/plugins/rpc/index.js';
import { tls } from '../../../src/plugins/tls/index.js';
import { createMemoryLogger, FakeClock } from '../../../src/testing/index.js';
import { serverMember } from './helpers.js';

const host = { hostname: 'h', privateIPv4: '127.0.0.1' };

describe('router plugin in an agent', () => {
  const agents: Agent[] = [];
  after(async () => {
    for (const a of agents.reverse()) await a.stop();
  });

  test('membership events emitted through the kernel reach the router; status and stop', async () => {
    const clock = new FakeClock();
    const agent = await createAgent({
      config: { node_name: 's1', datacenter: 'dc1', server: true, bind_addr: '127.0.0.1', ports: { server: 0 } },
      host,
      logger: createMemoryLogger('silent'),
      plugins: [tls({ dev: true }), rpc(), router({ clock })],
    });
    agents.push(agent);
    await agent.start();
    const r = agent.services.get(RouterTokens.Router);
    assert.deepEqual(r.areas, ['lan', 'wan']);
    assert.equal(r.hasDatacenter('dc1'), true);
    const emitter = agent.services.get(Tokens.MembershipEmitter);
    emitter.emit({ type: 'join', pool: 'wan', members: [serverMember('s9.dc2', 'dc2', { ip: '10.0.0.9' }), serverMember('s1.dc1', 'dc1')] });
    emitter.emit({ type: 'join', pool: 'lan', members: [serverMember('s1', 'dc1')] });
    assert.equal(r.findRoute('dc2')?.server.addr, '10.0.0.9:8300');
    assert.equal(r.findRoute('dc1')?.server.name, 's1');
    assert.deepEqual(r.getDatacenters(), ['dc1', 'dc2']);
    const status = agent.status().plugins.find((p) => p.name === 'router')?.status as { datacenters: string[]; areas: Record<string, Record<string, { servers: number; offline: boolean }>> };
    assert.deepEqual(status.datacenters, ['dc1', 'dc2']);
    assert.deepEqual(status.areas['wan'], { dc1: { servers: 1, offline: false }, dc2: { servers: 1, offline: false } });
    // The gRPC resolver builder is registered as a tracker.
    const g = agent.services.get(RouterTokens.GrpcResolver);
    assert.deepEqual(g.addresses('dc2').map((a) => a.globalAddr), ['dc2-10.0.0.9:8300']);
    assert.deepEqual(g.addresses('dc1').map((a) => a.server.name), ['s1'], 'own DC from the LAN area');
    emitter.emit({ type: 'leave', pool: 'wan', members: [serverMember('s9.dc2', 'dc2', { ip: '10.0.0.9' })] });
    assert.equal(r.hasDatacenter('dc2'), false);
    assert.ok(clock.pending > 0);
    await agent.stop();
    assert.equal(clock.pending, 0, 'stop stopped every rebalance timer');
    assert.equal(g.closed, true);
  });

  test('rebalance pings servers through the RPC pool (Status.Ping)', async () => {
    const clock = new FakeClock();
    const agent = await createAgent({
      config: { node_name: 's1', datacenter: 'dc1', server: true, bind_addr: '127.0.0.1', ports: { server: 0 } },
      host,
      logger: createMemoryLogger('silent'),
      plugins: [tls({ dev: true }), rpc(), router({ clock, random: () => 0.9999999 })],
    });
    agents.push(agent);
    await agent.start();
    const rpcAddr = agent.services.get(RpcTokens.Listener).address as string;
    const port = Number(rpcAddr.split(':').pop());
    const r = agent.services.get(RouterTokens.Router);
    const emitter = agent.services.get(Tokens.MembershipEmitter);
    // "dead" points at a closed port; "s1" is this agent itself (never pinged); "alive" at the real RPC port.
    emitter.emit({
      type: 'join',
      pool: 'lan',
      members: [serverMember('dead', 'dc1', { port: 1 }), serverMember('s1', 'dc1', { port })],
    });
    const mgr = r.manager('lan', 'dc1');
    assert.ok(mgr);
    await mgr.rebalanceServers();
    assert.equal(mgr.isOffline, false);
    assert.deepEqual(mgr.servers().map((s: ServerMeta) => s.name), ['s1', 'dead'], 'the dead server was cycled away, itself counts as healthy');
    // A server that really answers Status.Ping (this agent under another name).
    emitter.emit({ type: 'leave', pool: 'lan', members: [serverMember('s1', 'dc1', { port })] });
    emitter.emit({ type: 'join', pool: 'lan', members: [serverMember('alias', 'dc1', { port })] });
    await mgr.rebalanceServers();
    assert.deepEqual(mgr.servers().map((s: ServerMeta) => s.name), ['alias', 'dead'], 'alias answered Status.Ping');
    assert.equal(mgr.isOffline, false);
    emitter.emit({ type: 'leave', pool: 'lan', members: [serverMember('alias', 'dc1', { port })] });
    await mgr.rebalanceServers();
    assert.equal(mgr.isOffline, true, 'only the dead server is left');
    assert.equal(r.findRoute('dc1'), undefined);
    await agent.stop();
  });

  test('two agents in one process get different gRPC schemes', async () => {
    const mk = async (node: string): Promise<Agent> => {
      const a = await createAgent({
        config: { node_name: node, server: false, ports: { server: -1 } },
        host,
        logger: createMemoryLogger('silent'),
        plugins: [tls(), rpc(), router({ clock: new FakeClock() })],
      });
      agents.push(a);
      await a.start();
      return a;
    };
    const a = await mk('c1');
    const b = await mk('c2');
    const ga = a.services.get(RouterTokens.GrpcResolver);
    const gb = b.services.get(RouterTokens.GrpcResolver);
    assert.notEqual(ga.scheme, gb.scheme);
    assert.equal(ga.agentType, 'client');
    assert.deepEqual(a.services.get(RouterTokens.Router).areas, ['lan']);
    a.services.get(Tokens.MembershipEmitter).emit({ type: 'join', pool: 'lan', members: [serverMember('s1', 'dc1')] });
    assert.equal(ga.addresses('dc1').length, 1);
    assert.equal(gb.addresses('dc1').length, 0);
  });
});
