/**
 * Runs the grpc-service example: a plugin serves a small gRPC service (no .proto: JSON messages)
 * on the RPC port of server s1 through `GrpcTokens.Server`; server s2 of the same datacenter calls
 * it through `GrpcTokens.Channels` — TCP to s1's RPC port, `0x03` + TLS, then type byte 8, then
 * HTTP/2. Exits non-zero if the answer is not what the service promises.
 *
 *   node dist/examples/grpc-service/main.js
 *
 * Across datacenters with WAN federation via mesh gateways the same client code goes through the
 * gateways (TLS with ALPN `consul/rpc-grpc`); see test/plugins/wanfed/grpc.test.ts.
 */
import * as grpcJs from '@grpc/grpc-js';
import { createAgent, Tokens, type AgentPlugin } from '../../src/index.js';
import { grpc, GrpcTokens } from '../../src/plugins/grpc/index.js';
import { router } from '../../src/plugins/router/index.js';
import { rpc, RpcTokens, splitHostPort } from '../../src/plugins/rpc/index.js';
import { generateCa, generateCert, memoryTlsSource, tls } from '../../src/plugins/tls/index.js';
import { createMemoryLogger } from '../../src/testing/index.js';

interface HelloRequest {
  name: string;
}
interface HelloReply {
  greeting: string;
  servedBy: string;
}

const json = {
  serialize: (v: unknown): Buffer => Buffer.from(JSON.stringify(v)),
  deserialize: (b: Buffer): unknown => JSON.parse(b.toString('utf8')),
};

/** A proto-less service definition: method path plus (de)serializers. */
const GreeterService = {
  sayHello: {
    path: '/example.Greeter/SayHello',
    requestStream: false,
    responseStream: false,
    requestSerialize: json.serialize,
    requestDeserialize: json.deserialize,
    responseSerialize: json.serialize,
    responseDeserialize: json.deserialize,
  },
} satisfies grpcJs.ServiceDefinition;
const GreeterClient = grpcJs.makeGenericClientConstructor(GreeterService, 'Greeter');

/** The plugin: adds the service in apply(), before the agent starts. */
const greeter: AgentPlugin = {
  name: 'greeter',
  requires: ['grpc'],
  apply({ services, config }) {
    services.get(GrpcTokens.Server).addService(GreeterService, {
      sayHello: (call: grpcJs.ServerUnaryCall<HelloRequest, HelloReply>, cb: grpcJs.sendUnaryData<HelloReply>) =>
        cb(null, { greeting: `hello, ${call.request.name}`, servedBy: config.node_name }),
    });
  },
};

const ca = await generateCa();
const logger = createMemoryLogger('warn');
async function server(node: string) {
  const cert = await generateCert({ ca, kind: 'server', datacenter: 'dc1', node });
  const agent = await createAgent({
    config: {
      node_name: node,
      datacenter: 'dc1',
      server: true,
      bind_addr: '127.0.0.1',
      ports: { server: 0 },
      tls: { ca_file: 'memory', cert_file: 'memory', key_file: 'memory', verify_incoming: true, verify_outgoing: true, verify_server_hostname: true },
    },
    host: { hostname: node, privateIPv4: '127.0.0.1' },
    logger,
    plugins: [tls({ source: memoryTlsSource({ caPem: ca.certPem, certPem: cert.certPem, keyPem: cert.keyPem }) }), rpc(), router(), grpc(), greeter],
  });
  await agent.start();
  return agent;
}

const s1 = await server('s1');
const s2 = await server('s2');
// LAN gossip normally tells s2's router about s1; here we say it directly.
const { port } = splitHostPort(s1.services.get(RpcTokens.Listener).address as string);
s2.services.get(Tokens.MembershipEmitter).emit({
  type: 'join',
  pool: 'lan',
  members: [{ name: 's1', address: '127.0.0.1', port: 8301, status: 'alive', tags: { role: 'consul', dc: 'dc1', id: 'id-s1', port: String(port), vsn: '2', build: '1.8.0' } }],
});

const client = s2.services.get(GrpcTokens.Channels).client(GreeterClient, 'dc1');
const reply = await new Promise<HelloReply>((resolve, reject) =>
  (client as unknown as { sayHello(req: HelloRequest, opts: grpcJs.CallOptions, cb: (err: grpcJs.ServiceError | null, res?: HelloReply) => void): void }).sayHello(
    { name: 's2' },
    { deadline: Date.now() + 10_000 },
    (err, res) => (err || !res ? reject(err ?? new Error('empty reply')) : resolve(res)),
  ),
);
const served = s1.status().plugins.find((p) => p.name === 'grpc')?.status ?? {};
process.stdout.write(`reply: ${JSON.stringify(reply)}\n`);
process.stdout.write(`s1 grpc: ${JSON.stringify(served)}\n`);

await s2.stop();
await s1.stop();
const ok = reply.greeting === 'hello, s2' && reply.servedBy === 's1' && served['accepted_type_byte'] === 1;
process.stdout.write(ok ? 'grpc-service example: ok\n' : 'grpc-service example: FAILED\n');
process.exitCode = ok ? 0 : 1;
