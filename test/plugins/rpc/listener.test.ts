import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect, createServer, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { Alpn, createAgent, RpcType, Tokens, type Agent, type AgentPlugin, type RawConfig } from '../../../src/index.js';
import { dialTcp, rpc, RpcTokens } from '../../../src/plugins/rpc/index.js';
import { generateCa, generateCert, memoryTlsSource, tls, TlsConfigurator, type PemPair } from '../../../src/plugins/tls/index.js';
import { createMemoryLogger, waitFor, type MemoryLogger } from '../../../src/testing/index.js';

const host = { hostname: 'h', privateIPv4: '127.0.0.1' };

/** Echo everything on connections dispatched under `keys` (ones the rpc plugin leaves free). */
function echo(keys: readonly (number | string)[]): AgentPlugin {
  return {
    name: 'echo',
    apply: ({ hooks }) => {
      for (const key of keys) {
        hooks.onRpcAccept.for(key).tap({}, (conn) => {
          conn.on('error', () => conn.destroy());
          conn.pipe(conn);
          return true;
        });
      }
    },
  };
}

async function roundTrip(conn: Duplex, payload: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    conn.on('data', (d: Buffer) => {
      got += d.toString();
      if (got.length >= payload.length) {
        conn.destroy();
        resolve(got);
      }
    });
    conn.on('error', reject);
    conn.on('close', () => resolve(got));
    conn.write(payload);
  });
}

function tcp(address: string): Promise<Socket> {
  const [h, p] = address.split(':');
  return new Promise((resolve, reject) => {
    const s = connect({ host: h, port: Number(p) }, () => resolve(s));
    s.on('error', reject);
  });
}

function closed(s: Duplex): Promise<void> {
  return new Promise((resolve) => {
    if (s.destroyed) resolve();
    s.on('error', () => undefined);
    s.once('close', () => resolve());
    s.resume();
  });
}

describe('rpc listener', () => {
  let ca: PemPair;
  let otherCa: PemPair;
  let server: PemPair;
  let client: PemPair;
  let foreign: PemPair;
  const agents: Agent[] = [];

  before(async () => {
    [ca, otherCa] = await Promise.all([generateCa(), generateCa()]);
    [server, client, foreign] = await Promise.all([
      generateCert({ ca, kind: 'server', datacenter: 'dc1', node: 's1' }),
      generateCert({ ca, kind: 'server', datacenter: 'dc1', node: 'c1' }),
      generateCert({ ca: otherCa, kind: 'server', datacenter: 'dc1', node: 'c1' }),
    ]);
  });
  after(async () => {
    for (const a of agents) await a.stop();
  });

  async function serverAgent(config: RawConfig, logger: MemoryLogger, withTls = true): Promise<{ agent: Agent; address: string }> {
    const plugins = [
      tls(withTls ? { source: memoryTlsSource({ caPem: ca.certPem, certPem: server.certPem, keyPem: server.keyPem }) } : {}),
      rpc(),
      echo([RpcType.Snapshot, Alpn.RpcSnapshot]),
    ];
    const agent = await createAgent({ config: { node_name: 's1', server: true, bind_addr: '127.0.0.1', ports: { server: 0 }, ...config }, host, logger, plugins });
    agents.push(agent);
    await agent.start();
    const address = agent.services.get(RpcTokens.Listener).address as string;
    return { agent, address };
  }

  async function clientConf(leaf: PemPair, caPem: string = ca.certPem): Promise<TlsConfigurator> {
    const conf = new TlsConfigurator({
      source: memoryTlsSource({ caPem, certPem: leaf.certPem, keyPem: leaf.keyPem }),
      datacenter: 'dc1',
      domain: 'consul',
      nodeName: 'c1',
      verifyIncoming: true,
      verifyOutgoing: true,
      verifyServerHostname: true,
      logger: createMemoryLogger('silent'),
    });
    await conf.init();
    return conf;
  }

  const count = (l: MemoryLogger, msg: string): number => l.entries.filter((e) => e.msg === msg).length;

  test('plain type byte 0 is dispatched; an unknown byte is logged once and closed; serving continues', async () => {
    const logger = createMemoryLogger('debug');
    const { address } = await serverAgent({}, logger, false);
    const conn = await dialTcp({ datacenter: 'dc1', node: 's1', rpcType: RpcType.Snapshot, address }, { useTls: false, signal: AbortSignal.timeout(5000) });
    assert.ok(conn);
    assert.equal(await roundTrip(conn, 'ping'), 'ping');
    const bad = await tcp(address);
    bad.write(Buffer.of(RpcType.Multiplex, 1, 2, 3));
    await closed(bad);
    await waitFor(() => count(logger, 'unrecognized RPC byte') === 1);
    const again = await dialTcp({ datacenter: 'dc1', node: 's1', rpcType: RpcType.Snapshot, address }, { useTls: false, signal: AbortSignal.timeout(5000) });
    assert.equal(await roundTrip(again as Duplex, 'still'), 'still');
  });

  test('verify_incoming refuses plain bytes, accepts 0x03 + TLS + inner byte, refuses nested TLS', async () => {
    const logger = createMemoryLogger('debug');
    const { address } = await serverAgent({ tls: { ca_file: 'x', cert_file: 'x', key_file: 'x', verify_incoming: true, verify_outgoing: true } }, logger);
    const plain = await tcp(address);
    plain.write(Buffer.of(RpcType.Snapshot));
    await closed(plain);
    await waitFor(() => count(logger, 'Non-TLS connection attempted with VerifyIncoming set') === 1);

    const conf = await clientConf(client);
    const conn = await dialTcp({ datacenter: 'dc1', node: 's1', rpcType: RpcType.Snapshot, address }, { tls: conf, useTls: true, signal: AbortSignal.timeout(5000) });
    assert.equal(await roundTrip(conn as Duplex, 'over tls'), 'over tls');

    const nested = await dialTcp({ datacenter: 'dc1', node: 's1', rpcType: RpcType.TLS, address }, { tls: conf, useTls: true, signal: AbortSignal.timeout(5000) });
    await closed(nested as Duplex);
    await waitFor(() => count(logger, 'TLS connection attempting to establish inner TLS connection') === 1);
  });

  test('native TLS: mandatory mTLS, dispatch on ALPN; other CA and unknown ALPN refused', async () => {
    const logger = createMemoryLogger('debug');
    const { address } = await serverAgent({}, logger);
    const good = await clientConf(client);
    const tlsConn = await good.wrapAlpnClient(await tcp(address), { datacenter: 'dc1', node: 's1', alpn: Alpn.RpcSnapshot });
    assert.equal(tlsConn.alpnProtocol, Alpn.RpcSnapshot);
    assert.equal(await roundTrip(tlsConn, 'alpn'), 'alpn');

    const raft = await good.wrapAlpnClient(await tcp(address), { datacenter: 'dc1', node: 's1', alpn: Alpn.RpcRaft });
    await closed(raft);
    await waitFor(() => count(logger, 'unrecognized ALPN protocol') === 1);

    // Trusts the server's CA, but presents a certificate from another CA.
    const bad = await clientConf(foreign, ca.certPem + otherCa.certPem);
    await assert.rejects(
      (async () => {
        const t = await bad.wrapAlpnClient(await tcp(address), { datacenter: 'dc1', node: 's1', alpn: Alpn.RpcSnapshot });
        // TLS 1.3: the client may finish before the server rejects its certificate.
        await roundTrip(t, 'x').then((got) => {
          if (got === 'x') throw new Error('served a client with a foreign certificate');
          throw new Error('closed');
        });
      })(),
      (err: Error) => !/served a client with a foreign certificate/.test(err.message),
    );
    await waitFor(() => count(logger, 'native TLS handshake failed') >= 1);
  });

  test('the handshake deadline closes silent connections and is logged once', async () => {
    const logger = createMemoryLogger('debug');
    const { agent, address } = await serverAgent({ limits: { rpc_handshake_timeout: '150ms' } }, logger);
    const silent = await tcp(address);
    await closed(silent);
    await waitFor(() => count(logger, 'RPC handshake timed out') === 1);
    await waitFor(() => agent.services.get(RpcTokens.Listener).connections === 0);
  });

  test('per-client connection limit', async () => {
    const logger = createMemoryLogger('debug');
    const { address } = await serverAgent({ limits: { rpc_max_conns_per_client: 2 } }, logger);
    const a = await tcp(address);
    const b = await tcp(address);
    const c = await tcp(address);
    await closed(c);
    await waitFor(() => count(logger, 'rejecting RPC connection: too many connections from this client') === 1);
    a.destroy();
    b.destroy();
  });

  test('fuzz: random and truncated first bytes are closed and logged, the port keeps serving, nothing leaks', async () => {
    const logger = createMemoryLogger('debug');
    const { agent, address } = await serverAgent({ limits: { rpc_handshake_timeout: '300ms' } }, logger);
    const listener = agent.services.get(RpcTokens.Listener);
    const conf = await clientConf(client);
    // A real ClientHello to truncate: capture what a TLS client sends to a plain TCP server.
    const hello = await new Promise<Buffer>((resolve, reject) => {
      const capture = createServer((s) => {
        s.once('data', (d: Buffer) => {
          resolve(d);
          s.destroy();
          capture.close();
        });
      });
      capture.listen(0, '127.0.0.1', () => {
        const port = (capture.address() as { port: number }).port;
        void conf.wrapAlpnClient(connect({ host: '127.0.0.1', port }), { datacenter: 'dc1', node: 's1', alpn: Alpn.RpcSnapshot, timeoutMs: 5000 }).catch(() => undefined);
      });
      capture.on('error', reject);
    });
    assert.equal(hello[0], 0x16, 'a TLS handshake record');
    const rssBefore = process.memoryUsage().rss;
    const N = 200;
    for (let i = 0; i < N; i++) {
      const s = await tcp(address);
      s.on('error', () => undefined);
      const kind = i % 4;
      let payload: Buffer;
      if (kind === 0) payload = randomBytes(1 + (i % 64));
      else if (kind === 1) payload = hello.subarray(0, 1 + (i % Math.max(1, hello.length - 1)));
      else if (kind === 2) payload = Buffer.concat([Buffer.of(10 + (i % 246)), randomBytes(i % 512)]);
      else payload = Buffer.concat([Buffer.of(RpcType.TLS), randomBytes(1 + (i % 300))]);
      s.write(payload);
      if (i % 2 === 0) s.end();
      else setImmediate(() => s.destroy());
    }
    await waitFor(() => listener.connections === 0, { timeoutMs: 20_000, message: 'fuzzed connections are still open' });
    const conn = await conf.wrapAlpnClient(await tcp(address), { datacenter: 'dc1', node: 's1', alpn: Alpn.RpcSnapshot });
    assert.equal(await roundTrip(conn, 'alive'), 'alive');
    // Each fuzzed connection produced at most one warning-or-worse line (listener or handler).
    const bad = logger.entries.filter((e) => e.level === 'warn' || e.level === 'error');
    assert.ok(bad.length <= N, `${bad.length} warnings for ${N} fuzzed connections`);
    assert.ok(listener.stats.rejected > 0);
    assert.ok(process.memoryUsage().rss - rssBefore < 128 * 1024 * 1024, 'memory grew by more than 128 MiB');
  });

  test('a default-dialer dial between two agents goes through the Dialer service with TLS', async () => {
    const logger = createMemoryLogger('silent');
    const { address } = await serverAgent({ tls: { ca_file: 'x', cert_file: 'x', key_file: 'x', verify_incoming: true, verify_outgoing: true, verify_server_hostname: true } }, logger);
    const dialerAgent = await createAgent({
      config: { node_name: 'c1', server: true, bind_addr: '127.0.0.1', ports: { server: -1 }, tls: { ca_file: 'x', cert_file: 'x', key_file: 'x', verify_outgoing: true, verify_server_hostname: true } },
      host,
      logger,
      plugins: [tls({ source: memoryTlsSource({ caPem: ca.certPem, certPem: client.certPem, keyPem: client.keyPem }) }), rpc()],
    });
    agents.push(dialerAgent);
    await dialerAgent.start();
    const conn = await dialerAgent.services.get(Tokens.Dialer).dial({ datacenter: 'dc1', node: 's1', rpcType: RpcType.Snapshot, address });
    assert.equal(await roundTrip(conn, 'dialer'), 'dialer');
    // verify_server_hostname: a server name for another datacenter is refused.
    await assert.rejects(dialerAgent.services.get(Tokens.Dialer).dial({ datacenter: 'dc9', node: 's1', rpcType: RpcType.Snapshot, address }), /TLS handshake/);
  });
});
