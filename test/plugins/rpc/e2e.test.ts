import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { alpnForRpcType, createAgent, Stage, Tokens, type Agent, type AgentPlugin } from '../../../src/index.js';
import { defineEndpoint, GoTime, rpc, RpcTokens, splitHostPort, t } from '../../../src/plugins/rpc/index.js';
import { generateCa, generateCert, memoryTlsSource, tls, TlsTokens, type PemPair } from '../../../src/plugins/tls/index.js';
import { createMemoryLogger } from '../../../src/testing/index.js';

const host = { hostname: 'h', privateIPv4: '127.0.0.1' };
const Payload = t.struct({ Name: t.string, Raw: t.bytes, When: t.time, Nested: t.struct({ Tags: t.list(t.string), Meta: t.map(t.string) }) });
const echo = defineEndpoint({ method: 'Test.Echo', request: Payload, response: Payload, handler: async (req) => req });
const fail = defineEndpoint({ method: 'Test.Fail', request: t.struct({}), response: t.struct({}), handler: async () => { throw new Error('permission denied'); } });

/** Serves the test endpoints. */
const endpoints: AgentPlugin = {
  name: 'test-endpoints',
  requires: ['rpc'],
  apply: ({ services }) => void services.get(RpcTokens.Endpoints).register(echo).register(fail),
};

/** Stand-in for wanfed: reaches `dc2` by native TLS + ALPN to a fixed address (no type byte). */
function alpnDialer(address: () => string): AgentPlugin {
  return {
    name: 'alpn-dialer',
    apply: ({ hooks, services, config }) =>
      hooks.onDial.tapPromise({ stage: Stage.DEFAULT }, async (target, ctx) => {
        if (target.datacenter === config.datacenter) return undefined;
        const conf = services.get(TlsTokens.Configurator);
        const alpn = target.alpn ?? alpnForRpcType(target.rpcType ?? -1);
        const { host: h, port } = splitHostPort(address());
        const sock = connect({ host: h, port });
        return conf.wrapAlpnClient(sock, { datacenter: target.datacenter, node: target.node, alpn, signal: ctx.signal });
      }),
  };
}

describe('rpc end to end between agents over TLS', () => {
  let ca: PemPair;
  const certs: Record<string, PemPair> = {};
  const agents: Agent[] = [];
  const tlsCfg = { ca_file: 'x', cert_file: 'x', key_file: 'x', verify_incoming: true, verify_outgoing: true, verify_server_hostname: true };

  before(async () => {
    ca = await generateCa();
    for (const [node, dc] of [['s1', 'dc1'], ['s2', 'dc1'], ['s3', 'dc2']] as const) certs[node] = await generateCert({ ca, kind: 'server', datacenter: dc, node });
  });
  after(async () => {
    for (const a of agents.reverse()) await a.stop();
  });

  async function server(node: string, dc: string, extra: AgentPlugin[] = []): Promise<Agent> {
    const c = certs[node] as PemPair;
    const agent = await createAgent({
      config: { node_name: node, datacenter: dc, primary_datacenter: 'dc1', server: true, bind_addr: '127.0.0.1', ports: { server: 0 }, tls: tlsCfg },
      host,
      logger: createMemoryLogger('silent'),
      plugins: [tls({ source: memoryTlsSource({ caPem: ca.certPem, certPem: c.certPem, keyPem: c.keyPem }) }), rpc(), endpoints, ...extra],
    });
    agents.push(agent);
    await agent.start();
    return agent;
  }

  const addr = (a: Agent): string => a.services.get(RpcTokens.Listener).address as string;

  test('same DC: 0x03 + TLS + 0x04 + yamux + msgpack-RPC, concurrent calls on one pooled session', async () => {
    const s1 = await server('s1', 'dc1');
    const s2 = await server('s2', 'dc1');
    const pool = s2.services.get(RpcTokens.Pool);
    const target = { datacenter: 'dc1', node: 's1', address: addr(s1) };
    const when = GoTime.fromDate(new Date('2024-01-02T03:04:05.123Z'));
    const replies = await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        pool.callEndpoint(target, echo, { Name: `n${i}`, Raw: Uint8Array.of(0xc3, 0x28, i), When: when, Nested: { Tags: ['a', 'b'], Meta: { k: 'v' } } }),
      ),
    );
    assert.equal(replies.length, 100);
    assert.deepEqual([...replies[42]!.Raw], [0xc3, 0x28, 42]);
    assert.equal(replies[42]!.Nested.Meta['k'], 'v');
    assert.equal(pool.sessions, 1);
    await pool.ping(target);
    await assert.rejects(pool.callEndpoint(target, fail, {}), /permission denied/);
    await s1.services.get(Tokens.Leadership).acquire();
    const leader = await pool.call(target, 'Status.Leader', {}, t.struct({}), t.string);
    assert.equal(leader, addr(s1));
    assert.equal(replies[42]!.When.toDate().toISOString(), '2024-01-02T03:04:05.123Z');
  });

  test('cross DC: native TLS with SNI <node>.server.<dc>.<domain> and ALPN consul/rpc-multi, no type byte', async () => {
    const s3 = await server('s3', 'dc2');
    const s2 = await server('s2', 'dc1', [alpnDialer(() => addr(s3))]);
    const pool = s2.services.get(RpcTokens.Pool);
    const reply = await pool.callEndpoint({ datacenter: 'dc2', node: 's3' }, echo, { Name: 'x-dc', Raw: Uint8Array.of(0xff), When: GoTime.fromDate(new Date(0)), Nested: { Tags: [], Meta: {} } });
    assert.equal(reply.Name, 'x-dc');
    const listener = s3.services.get(RpcTokens.Listener);
    assert.equal(listener.stats.dispatched, 1);
    // A node whose name the server certificate does not cover is refused by the client.
    await assert.rejects(pool.ping({ datacenter: 'dc2', node: 'other' }), /other\.server\.dc2\.consul|altnames|Hostname/i);
  });
});
