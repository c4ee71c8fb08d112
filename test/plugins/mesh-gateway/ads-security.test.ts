/**
 * The gateway's ADS client against a real agent's ADS server: ACL tokens (`x-consul-token`,
 * `service:write` on the gateway's service) and the TLS listener (`ports.grpc_tls`).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { createAgent, type Agent, type AgentPlugin } from '../../../src/index.js';
import { acl } from '../../../src/plugins/acl/index.js';
import { http } from '../../../src/plugins/http/index.js';
import { AdsClient, loadAdsProtos, meshGateway, type AdsClientTlsOptions, type AdsProtos } from '../../../src/plugins/mesh-gateway/index.js';
import { rpc } from '../../../src/plugins/rpc/index.js';
import { state, StateTokens } from '../../../src/plugins/state/index.js';
import { MessageType } from '../../../src/plugins/state/store/index.js';
import { generateCa, generateCert, tls, TlsTokens } from '../../../src/plugins/tls/index.js';
import { XdsCodec, xds, XdsTokens } from '../../../src/plugins/xds/index.js';
import { createMemoryLogger, waitFor, type MemoryLogger } from '../../../src/testing/index.js';
import { gatewayRegistration, WANFED_META } from '../xds/fixtures.js';

const host = { hostname: 'h', privateIPv4: '127.0.0.1' };
const ROOT = 'root-secret';
const GW_TOKEN = 'gw-write-secret';
const READ_TOKEN = 'read-only-secret';

/** ACLs with default deny: a token with service:write on mesh-gateway, and a read-only one. */
const ACL_ON = {
  enabled: true,
  default_policy: 'deny' as const,
  tokens: { initial_management: ROOT },
  policies: [
    { name: 'gw', rules: { service: { 'mesh-gateway': 'write' as const }, node_prefix: { '': 'write' as const } } },
    { name: 'read', rules: { service_prefix: { '': 'read' as const }, node_prefix: { '': 'read' as const } } },
  ],
  static_tokens: [
    { secret_id: GW_TOKEN, policies: ['gw'] },
    { secret_id: READ_TOKEN, policies: ['read'] },
  ],
};

let codec: XdsCodec;
let protos: AdsProtos;

/** Start a server agent with `extra` config, and register gateway `gw1` (service mesh-gateway) in its catalog. */
async function startAgent(extra: Record<string, unknown>, plugins: AgentPlugin[] = [], logger: MemoryLogger = createMemoryLogger('silent')): Promise<Agent> {
  const agent = await createAgent({
    config: { node_name: 's1', datacenter: 'dc1', server: true, bind_addr: '127.0.0.1', ...extra },
    host,
    logger,
    plugins: [tls({ dev: extra['tls'] === undefined }), rpc(), http(), acl(), state(), xds({ codec }), ...plugins],
  });
  await agent.start();
  await agent.services.get(StateTokens.Backend).apply({
    Type: MessageType.Register,
    Body: gatewayRegistration({ node: 'gw1', datacenter: 'dc1', address: '127.0.0.1', port: 8443, id: 'gw1', meta: { ...WANFED_META } }),
  });
  return agent;
}

/** Every client made, closed after the tests (closing twice is harmless). */
const opened: AdsClient[] = [];

/** A gateway ADS client recording its disconnects. */
function client(servers: string[], extra: { token?: string; tls?: AdsClientTlsOptions } = {}, logger = createMemoryLogger('debug')) {
  const disconnects: { error: string; code?: grpc.status }[] = [];
  const ads = new AdsClient({ servers, nodeId: 'gw1', protos, logger, initialBackoffMs: 20, maxBackoffMs: 200, ...extra });
  opened.push(ads);
  ads.on('disconnected', (d) => disconnects.push(d));
  ads.start();
  return { ads, disconnects, logger };
}

/** Wait until `c` received listeners (routes). */
async function routed(c: { ads: AdsClient }): Promise<void> {
  await waitFor(() => c.ads.current().listeners.length > 0, { message: 'routes over ADS' });
}

/** Wait for `n` refusals of `c`, all with `code`, and check nothing was accepted. */
async function refused(c: ReturnType<typeof client>, code: grpc.status, n = 2): Promise<void> {
  await waitFor(() => c.disconnects.length >= n, { message: `${n} refused streams` });
  for (const d of c.disconnects) assert.equal(d.code, code, d.error);
  assert.deepEqual(c.ads.current(), { listeners: [], clusters: [], endpoints: [] });
  assert.equal(c.ads.versions().size, 0);
}

before(() => {
  codec = new XdsCodec();
  protos = loadAdsProtos();
});
after(() => {
  for (const c of opened) c.close();
});

describe('ADS with ACLs enabled', () => {
  let agent: Agent;
  let plain: string;

  before(async () => {
    agent = await startAgent({ ports: { server: 0, serf_lan: 0, serf_wan: 0, http: 0, grpc: 0 }, acl: ACL_ON });
    plain = agent.services.get(XdsTokens.Server).address ?? '';
  });
  after(async () => {
    await agent?.stop();
  });

  test('a token with service:write on the gateway service gets routes', async () => {
    const c = client([plain], { token: GW_TOKEN });
    await routed(c);
    assert.deepEqual(c.disconnects, []);
    c.ads.close();
  });

  test('no token (anonymous, default deny): PERMISSION_DENIED, no resources, logged by the gateway, retried', async () => {
    const before = agent.services.get(XdsTokens.Server).stats().permission_denied;
    const c = client([plain]);
    await refused(c, grpc.status.PERMISSION_DENIED);
    assert.match(c.disconnects[0]?.error ?? '', /permission denied: token lacks permission 'service:write' on "mesh-gateway"/);
    const errors = c.logger.entries.filter((e) => e.level === 'error' && /refused this gateway's ACL token \(PERMISSION_DENIED\)/.test(e.msg));
    assert.ok(errors.length >= 2, 'one error line per refused stream');
    assert.match(String(errors[0]?.fields['error']), /permission denied/);
    c.ads.close();
    assert.ok(agent.services.get(XdsTokens.Server).stats().permission_denied >= before + 2);
  });

  test('a read-only token: PERMISSION_DENIED', async () => {
    const c = client([plain], { token: READ_TOKEN });
    await refused(c, grpc.status.PERMISSION_DENIED);
    c.ads.close();
  });

  test('an unknown token: UNAUTHENTICATED "ACL not found"; the token never shows in logs', async () => {
    const c = client([plain], { token: 'no-such-secret' });
    await refused(c, grpc.status.UNAUTHENTICATED);
    assert.match(c.disconnects[0]?.error ?? '', /ACL not found/);
    assert.ok(agent.services.get(XdsTokens.Server).stats().unauthenticated >= 2);
    assert.ok(!JSON.stringify(c.logger.entries).includes('no-such-secret'));
    c.ads.close();
  });

  test('restarting the client with a good token works', async () => {
    const bad = client([plain], { token: READ_TOKEN });
    await refused(bad, grpc.status.PERMISSION_DENIED, 1);
    bad.ads.close();
    const good = client([plain], { token: GW_TOKEN });
    await routed(good);
    const proxies = agent.services.get(XdsTokens.Server).proxies();
    assert.ok(proxies.some((p) => p.proxy_id === 'gw1'));
    good.ads.close();
  });

  test('the management token is allowed', async () => {
    const c = client([plain], { token: ROOT });
    await routed(c);
    c.ads.close();
  });
});

describe('ADS with ACLs disabled', () => {
  test('the acl plugin with acl.enabled=false lets a gateway without a token in', async () => {
    const agent = await startAgent({ ports: { server: 0, serf_lan: 0, serf_wan: 0, http: 0, grpc: 0 }, acl: { ...ACL_ON, enabled: false } });
    const c = client([agent.services.get(XdsTokens.Server).address ?? '']);
    try {
      await routed(c);
      assert.equal(agent.services.get(XdsTokens.Server).stats().permission_denied, 0);
    } finally {
      c.ads.close();
      await agent.stop();
    }
  });
});

describe('ADS over TLS (ports.grpc_tls)', () => {
  let agent: Agent;
  let plain: string;
  let secure: string;
  let caPem: string;

  before(async () => {
    agent = await startAgent({ ports: { server: 0, serf_lan: 0, serf_wan: 0, http: 0, grpc: 0, grpc_tls: 0 }, acl: ACL_ON });
    const server = agent.services.get(XdsTokens.Server);
    plain = server.address ?? '';
    secure = server.tlsAddress ?? '';
    assert.match(secure, /^127\.0\.0\.1:\d+$/);
    assert.notEqual(secure, plain);
    caPem = String(agent.services.get(TlsTokens.Configurator).incomingOptions({ requireClientCert: false }).ca);
  });
  after(async () => {
    await agent?.stop();
  });

  test('a client verifying the CA and server.dc1.consul gets routes (token checked too)', async () => {
    const c = client([`https://${secure}`], { token: GW_TOKEN, tls: { caPem, serverName: 'server.dc1.consul' } });
    await routed(c);
    const refusedTls = client([`https://${secure}`], { tls: { caPem, serverName: 'server.dc1.consul' } });
    await refused(refusedTls, grpc.status.PERMISSION_DENIED, 1);
    c.ads.close();
    refusedTls.ads.close();
  });

  test('a plaintext client on the TLS port fails cleanly and gets nothing', async () => {
    const c = client([secure], { token: GW_TOKEN });
    await refused(c, grpc.status.UNAVAILABLE);
    c.ads.close();
  });

  test('a client trusting another CA fails cleanly and gets nothing', async () => {
    const other = await generateCa();
    const c = client([`https://${secure}`], { token: GW_TOKEN, tls: { caPem: other.certPem, serverName: 'server.dc1.consul' } });
    await refused(c, grpc.status.UNAVAILABLE);
    c.ads.close();
  });

  test('a client expecting another server name fails', async () => {
    const c = client([`https://${secure}`], { token: GW_TOKEN, tls: { caPem, serverName: 'server.dc9.consul' } });
    await refused(c, grpc.status.UNAVAILABLE);
    c.ads.close();
  });

  test('the plaintext port keeps working next to it', async () => {
    const c = client([plain], { token: GW_TOKEN });
    await routed(c);
    c.ads.close();
  });

  test('failover from the TLS server to the plaintext one', async () => {
    const c = client([`https://${secure}`, plain], { token: GW_TOKEN, tls: { caPem: (await generateCa()).certPem } });
    await routed(c);
    assert.equal(c.ads.server, plain);
    c.ads.close();
  });
});

describe('meshGateway() plugin following its agent over TLS', () => {
  test('with tls.verify_incoming and only ports.grpc_tls: it takes CA, client certificate and server name from the agent, and sends its token', async () => {
    const logger = createMemoryLogger('debug');
    const dir = await mkdtemp(join(tmpdir(), 'meshfed-ads-tls-'));
    const ca = await generateCa();
    const cert = await generateCert({ ca, kind: 'server', datacenter: 'dc1', node: 's1' });
    const files = { ca_file: join(dir, 'ca.pem'), cert_file: join(dir, 'cert.pem'), key_file: join(dir, 'key.pem') };
    await Promise.all([writeFile(files.ca_file, ca.certPem), writeFile(files.cert_file, cert.certPem), writeFile(files.key_file, cert.keyPem)]);
    const agent = await startAgent(
      { ports: { server: 0, serf_lan: 0, serf_wan: 0, http: 0, grpc: -1, grpc_tls: 0 }, tls: { ...files, verify_incoming: true }, acl: ACL_ON },
      [meshGateway({ address: '127.0.0.1:0', serviceId: 'plugin-gw', token: GW_TOKEN, routesTimeoutMs: 10_000 })],
      logger,
    );
    const server = agent.services.get(XdsTokens.Server);
    try {
      assert.equal(server.address, undefined);
      await waitFor(() => server.proxies().some((p) => p.proxy_id === 'plugin-gw' && Object.values(p.types).some((t) => t.acked_version !== '')), { message: 'the plugin gateway acked resources' });
      assert.ok(logger.entries.some((e) => e.msg === 'xDS (ADS) server listening (gRPC over TLS)' && e.fields['client_certificates'] === 'required'));
      assert.ok(!logger.entries.some((e) => e.msg === 'no routes from the servers yet; the gateway refuses connections until they arrive'));
      // Without a client certificate the TLS port refuses the handshake.
      const caPem = String(agent.services.get(TlsTokens.Configurator).incomingOptions({ requireClientCert: false }).ca);
      const c = client([`https://${server.tlsAddress ?? ''}`], { token: GW_TOKEN, tls: { caPem, serverName: 'server.dc1.consul' } });
      try {
        await refused(c, grpc.status.UNAVAILABLE);
      } finally {
        c.ads.close();
      }
    } finally {
      await agent.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('ports.grpc_tls without TLS material fails the start with the key named', async () => {
    const agent = await createAgent({
      config: { node_name: 's1', datacenter: 'dc1', server: true, bind_addr: '127.0.0.1', ports: { server: 0, serf_lan: 0, serf_wan: 0, grpc: -1, grpc_tls: 0 } },
      host,
      logger: createMemoryLogger('silent'),
      plugins: [tls(), rpc(), state(), xds({ codec })],
    });
    try {
      await assert.rejects(agent.start(), /ports\.grpc_tls: serving ADS over TLS needs the tls plugin with a certificate/);
    } finally {
      await agent.stop().catch(() => undefined);
    }
  });
});
