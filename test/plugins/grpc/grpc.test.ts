/**
 * The grpc plugin within one datacenter: a service added through GrpcTokens.Server on s1 is
 * called from s2 through GrpcTokens.Channels over the RPC port with type byte 8, in clear and
 * inside the 0x03 TLS upgrade; bad input on byte 8 is logged once and closed.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import * as grpcJs from '@grpc/grpc-js';
import { createAgent, Tokens, type Agent, type RawConfig } from '../../../src/index.js';
import { grpc, GrpcErrorCode, GrpcTokens, HTTP2_CLIENT_PREFACE } from '../../../src/plugins/grpc/index.js';
import { router } from '../../../src/plugins/router/index.js';
import { rpc, RpcTokens, splitHostPort } from '../../../src/plugins/rpc/index.js';
import { generateCa, generateCert, memoryTlsSource, tls, type PemPair } from '../../../src/plugins/tls/index.js';
import { createMemoryLogger, waitFor, type MemoryLogger } from '../../../src/testing/index.js';
import { serverMember, who, WhoClient } from '../router/helpers.js';
import { whoPlugin, type AcceptRecord } from './helpers.js';

const host = { hostname: 'h', privateIPv4: '127.0.0.1' };

describe('grpc plugin: internal gRPC on the RPC port within a datacenter', () => {
  let ca: PemPair;
  const certs: Record<string, PemPair> = {};
  const agents: Agent[] = [];

  before(async () => {
    ca = await generateCa();
    for (const node of ['s1', 's2']) certs[node] = await generateCert({ ca, kind: 'server', datacenter: 'dc1', node });
  });
  after(async () => {
    for (const a of agents.reverse()) await a.stop();
  });

  async function server(node: string, withTls: boolean, seen: AcceptRecord[] = [], logger: MemoryLogger = createMemoryLogger(process.env['DBG'] ? 'debug' : 'silent')): Promise<Agent> {
    const c = certs[node] as PemPair;
    const config: RawConfig = { node_name: node, datacenter: 'dc1', server: true, bind_addr: '127.0.0.1', ports: { server: 0 }, limits: { rpc_handshake_timeout: '2s' } };
    if (withTls) (config as Record<string, unknown>)['tls'] = { ca_file: 'x', cert_file: 'x', key_file: 'x', verify_incoming: true, verify_outgoing: true, verify_server_hostname: true };
    const agent = await createAgent({
      config,
      host,
      logger,
      plugins: [tls(withTls ? { source: memoryTlsSource({ caPem: ca.certPem, certPem: c.certPem, keyPem: c.keyPem }) } : {}), rpc(), router(), grpc(), whoPlugin(seen)],
    });
    agents.push(agent);
    await agent.start();
    return agent;
  }

  /** Tell `agent`'s router (as LAN gossip would) that `other` is a server of dc1. */
  function introduce(agent: Agent, other: Agent): void {
    const { port } = splitHostPort(other.services.get(RpcTokens.Listener).address as string);
    agent.services.get(Tokens.MembershipEmitter).emit({ type: 'join', pool: 'lan', members: [serverMember(other.config.node_name, 'dc1', { port, id: `id-${other.config.node_name}` })] });
  }

  const grpcStatus = (a: Agent): Record<string, unknown> => a.status().plugins.find((p) => p.name === 'grpc')?.status ?? {};

  for (const withTls of [false, true]) {
    test(`s2 calls s1's service through the router's target with type byte 8 ${withTls ? 'inside 0x03 + TLS' : 'in clear'}`, async () => {
      const seen: AcceptRecord[] = [];
      const s1 = await server('s1', withTls, seen);
      const s2 = await server('s2', withTls);
      introduce(s2, s1);
      const channels = s2.services.get(GrpcTokens.Channels);
      assert.equal(channels.path('dc1'), 'rpc-port');
      const client = channels.client(WhoClient, 'dc1');
      assert.equal(await waitFor(() => who(client), { message: 'gRPC call to s1' }), 's1');
      assert.deepEqual(seen, [{ key: 8, tls: withTls, from: '127.0.0.1' }], 'one connection, byte 8, TLS as configured');
      assert.deepEqual(s1.services.get(GrpcTokens.Server).services, ['meshfed.test.Who']);
      assert.equal(grpcStatus(s1)['accepted_type_byte'], 1);
      assert.equal(grpcStatus(s1)['accepted_alpn'], 0);
      assert.equal(grpcStatus(s2)['clients'], 1);
      // services are fixed once the agent runs
      assert.throws(
        () => s1.services.get(GrpcTokens.Server).addService({}, {}),
        (e: { code?: string }) => e.code === GrpcErrorCode.SERVICE,
      );
      await s2.stop();
      await s1.stop();
      assert.equal(grpcStatus(s2)['clients'], 0, 'clients closed on stop');
      assert.throws(() => channels.client(WhoClient, 'dc1'), (e: { code?: string }) => e.code === GrpcErrorCode.CLOSED);
    });
  }

  test('bad input on byte 8: garbage and a silent peer are closed and logged once each; the RPC port keeps serving', async () => {
    const logger = createMemoryLogger('debug');
    const s1 = await server('s1', false, [], logger);
    const s2 = await server('s2', false);
    const { host: h, port } = splitHostPort(s1.services.get(RpcTokens.Listener).address as string);
    const closedAfter = (bytes: Buffer): Promise<void> =>
      new Promise((resolve, reject) => {
        const sock = connect({ host: h, port }, () => sock.write(bytes));
        sock.on('data', () => undefined);
        sock.on('error', () => undefined);
        sock.on('close', () => resolve());
        setTimeout(() => reject(new Error('the server did not close the connection')), 5_000).unref();
      });
    // not HTTP/2 at all
    await closedAfter(Buffer.concat([Buffer.of(8), Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')]));
    // a valid beginning of the preface, then a wrong byte
    await closedAfter(Buffer.concat([Buffer.of(8), HTTP2_CLIENT_PREFACE.subarray(0, 10), Buffer.from('X')]));
    // byte 8 and then nothing: closed at the handshake deadline (2 s)
    await closedAfter(Buffer.of(8));
    // a valid preface, then bytes that are no HTTP/2 frame: the HTTP/2 session itself refuses them
    await closedAfter(Buffer.concat([Buffer.of(8), HTTP2_CLIENT_PREFACE, Buffer.alloc(64, 0xff)]));
    const notHttp2 = logger.entries.filter((e) => e.msg === 'gRPC connection did not start with the HTTP/2 client preface: closing it');
    assert.equal(notHttp2.length, 2, 'each bad connection logged exactly once');
    assert.ok(notHttp2.every((e) => e.level === 'warn' && e.fields['via'] === 'type byte 8'));
    assert.equal(logger.entries.filter((e) => e.msg === 'gRPC connection sent no HTTP/2 preface in time: closing it').length, 1);
    assert.equal(logger.entries.filter((e) => e.level === 'error').length, 0);
    assert.equal(grpcStatus(s1)['rejected'], 3);
    assert.equal(grpcStatus(s1)['injected'], 1, 'the one with a valid preface reached the gRPC server');
    introduce(s2, s1);
    const client = s2.services.get(GrpcTokens.Channels).client(WhoClient, 'dc1');
    assert.equal(await waitFor(() => who(client), { message: 'gRPC after bad input' }), 's1');
    assert.equal(grpcStatus(s1)['injected'], 2);
  });

  test('credentials: one instance per datacenter, equal only to itself; a mesh-gateway path needs TLS', async () => {
    const s1 = await server('s1', false);
    const channels = s1.services.get(GrpcTokens.Channels);
    const a = channels.credentials('dc1');
    assert.equal(channels.credentials('dc1'), a);
    assert.notEqual(channels.credentials('dc2'), a);
    assert.equal(a._equals(a), true);
    assert.equal(a._equals(channels.credentials('dc2')), false);
    assert.equal(a._equals(grpcJs.credentials.createInsecure()), false);
    assert.equal(a._isSecure(), false, 'no TLS configured');
    assert.equal(channels.path('dc2'), 'rpc-port', 'no wanfed: other DCs over their RPC ports too');
    assert.deepEqual(channels.channelOptions({ 'grpc.max_receive_message_length': 10 }), { 'grpc.use_local_subchannel_pool': 1, 'grpc.max_receive_message_length': 10 });
    assert.match(channels.target('dc2'), /^meshfed-[0-9a-f]+:\/\/\/server\.dc2$/);
  });
});
