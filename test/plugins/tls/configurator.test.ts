import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { ErrorCode, MeshfedError } from '../../../src/core/errors.js';
import { createMemoryLogger, waitFor } from '../../../src/testing/index.js';
import { silentLogger } from '../../../src/core/logger.js';
import { Alpn, RPC_NEXT_PROTOS } from '../../../src/core/protocol.js';
import { generateCa, generateCert } from '../../../src/plugins/tls/certs.js';
import type { PemPair } from '../../../src/plugins/tls/certs.js';
import { TlsConfigurator } from '../../../src/plugins/tls/configurator.js';
import type { TlsConfiguratorOptions } from '../../../src/plugins/tls/configurator.js';
import { TlsErrorCode } from '../../../src/plugins/tls/errors.js';
import { fileTlsSource, memoryTlsSource } from '../../../src/plugins/tls/material.js';
import type { TlsMaterialSource } from '../../../src/plugins/tls/material.js';

function serial(pem: string): string {
  return new X509Certificate(pem).serialNumber;
}

function tlsErr(code: string, pattern?: RegExp): (err: unknown) => boolean {
  return (err: unknown) => {
    assert.ok(err instanceof MeshfedError, `expected a MeshfedError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (pattern) assert.match(err.message, pattern);
    return true;
  };
}

/** Wait for `socket` to close, failing after a deadline. */
async function closed(socket: net.Socket, timeoutMs = 5000): Promise<void> {
  if (socket.closed) return;
  await once(socket, 'close', { signal: AbortSignal.timeout(timeoutMs) }).catch((err: unknown) => {
    if (socket.closed) return;
    assert.fail(`socket still open after ${timeoutMs} ms (${err instanceof Error ? err.message : String(err)})`);
  });
}

/** Read everything until the peer ends the stream. */
async function readAll(socket: tls.TLSSocket): Promise<string> {
  let data = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    data += chunk;
  });
  await once(socket, 'end', { signal: AbortSignal.timeout(5000) });
  return data;
}

describe('TlsConfigurator', { timeout: 60_000 }, () => {
  let dir: string;
  let caA: PemPair;
  let caB: PemPair;
  let serverS1: PemPair;
  let serverS1Rotated: PemPair;
  let clientC1: PemPair;
  let clientFromB: PemPair;
  // Only the outermost socket of a connection is tracked: once a socket is wrapped in TLS it must
  // be closed through the TLS socket (destroying it underneath can crash Node 20).
  const sockets = new Set<net.Socket>();
  const servers = new Set<net.Server>();
  /** Aborts every pending acceptTls at the end of the suite. */
  const shutdown = new AbortController();

  function track<T extends net.Socket>(s: T): T {
    sockets.add(s);
    return s;
  }

  async function listen<T extends net.Server>(server: T): Promise<number> {
    servers.add(server);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return (server.address() as net.AddressInfo).port;
  }

  function configurator(source: TlsMaterialSource, extra: Partial<TlsConfiguratorOptions> = {}): TlsConfigurator {
    return new TlsConfigurator({
      source,
      datacenter: 'dc1',
      domain: 'consul.',
      nodeName: 'node',
      verifyIncoming: true,
      verifyOutgoing: true,
      verifyServerHostname: true,
      logger: silentLogger(),
      ...extra,
    });
  }

  async function memoryConf(ca: string, leaf?: PemPair, extra: Partial<TlsConfiguratorOptions> = {}): Promise<TlsConfigurator> {
    const conf = configurator(memoryTlsSource({ caPem: ca, ...(leaf ? { certPem: leaf.certPem, keyPem: leaf.keyPem } : {}) }), extra);
    await conf.init();
    return conf;
  }

  /** A tls.Server built from incomingOptions that records what happens to each client. */
  async function rpcServer(conf: TlsConfigurator, alpnProtocols: readonly string[] | null = RPC_NEXT_PROTOS) {
    const accepted: tls.TLSSocket[] = [];
    const clientErrors: Error[] = [];
    const server = tls.createServer(conf.incomingOptions({ requireClientCert: true, ...(alpnProtocols ? { alpnProtocols } : {}) }));
    server.on('secureConnection', (s: tls.TLSSocket) => {
      track(s);
      accepted.push(s);
      s.end(`${s.alpnProtocol || 'none'} authorized=${s.authorized}`);
    });
    server.on('tlsClientError', (err: Error) => clientErrors.push(err));
    const port = await listen(server);
    return { port, accepted, clientErrors };
  }

  async function dial(conf: TlsConfigurator, port: number, node: string, alpn: string = Alpn.RpcMultiplexV2): Promise<tls.TLSSocket> {
    // wrapAlpnClient owns the raw socket from here on (and destroys it on failure).
    const raw = net.connect(port, '127.0.0.1');
    return track(await conf.wrapAlpnClient(raw, { datacenter: 'dc1', node, alpn, timeoutMs: 5000 }));
  }

  /** A TCP server handing every connection to acceptTls; results are recorded in order. */
  async function acceptServer(conf: TlsConfigurator, options: { requireClientCert: boolean; alpnProtocols?: readonly string[]; timeoutMs?: number }, onAccept?: (s: tls.TLSSocket) => void) {
    const results: Array<tls.TLSSocket | Error> = [];
    const port = await listen(
      net.createServer((sock) => {
        conf.acceptTls(sock, { ...options, signal: shutdown.signal }).then(
          (s) => {
            results.push(track(s));
            onAccept?.(s);
          },
          (err: Error) => {
            results.push(err);
          },
        );
      }),
    );
    return { port, results };
  }

  function acceptedSocket(result: tls.TLSSocket | Error | undefined): tls.TLSSocket {
    if (result instanceof tls.TLSSocket) return result;
    return assert.fail(`acceptTls did not accept: ${result instanceof Error ? result.message : 'no result'}`);
  }

  function acceptError(result: tls.TLSSocket | Error | undefined): Error {
    if (result instanceof Error) return result;
    return assert.fail('acceptTls accepted a connection it should have refused');
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'meshfed-tlsconf-'));
    [caA, caB] = await Promise.all([generateCa(), generateCa()]);
    [serverS1, serverS1Rotated, clientC1, clientFromB] = await Promise.all([
      generateCert({ ca: caA, kind: 'server', node: 's1' }),
      generateCert({ ca: caA, kind: 'server', node: 's1' }),
      generateCert({ ca: caA, kind: 'server', node: 'c1' }),
      generateCert({ ca: caB, kind: 'server', node: 'c1' }),
    ]);
  });

  after(async () => {
    shutdown.abort();
    for (const s of sockets) s.destroy();
    await Promise.all(
      [...servers].map(
        (s) =>
          new Promise<void>((resolve) => {
            s.close(() => resolve());
          }),
      ),
    );
    await rm(dir, { recursive: true, force: true });
  });

  test('mesh-gateway dial: mutual TLS to a tls.Server from incomingOptions negotiates consul/rpc-multi', async () => {
    const server = await memoryConf(caA.certPem, serverS1);
    const client = await memoryConf(caA.certPem, clientC1);
    assert.equal(server.mutualTlsCapable(), true);
    const { port, accepted } = await rpcServer(server);

    const conn = await dial(client, port, 's1');
    assert.equal(conn.alpnProtocol, 'consul/rpc-multi');
    assert.equal(conn.authorized, true);
    assert.equal(conn.getPeerX509Certificate()?.serialNumber, serial(serverS1.certPem));
    assert.equal(await readAll(conn), 'consul/rpc-multi authorized=true');
    assert.equal(accepted.length, 1);
    assert.equal(accepted[0]?.getPeerX509Certificate()?.serialNumber, serial(clientC1.certPem));
    assert.equal(accepted[0]?.servername, 's1.server.dc1.consul');
  });

  test('acceptTls on an accepted socket: handshake, client certificate verified, ALPN negotiated', async () => {
    const server = await memoryConf(caA.certPem, serverS1);
    const client = await memoryConf(caA.certPem, clientC1);
    const { port, results } = await acceptServer(server, { requireClientCert: true, alpnProtocols: RPC_NEXT_PROTOS }, (s) => {
      s.end(`hello ${s.alpnProtocol || 'none'}`);
    });
    const conn = await dial(client, port, '*', Alpn.WanGossipStream);
    assert.equal(conn.alpnProtocol, 'consul/wan-gossip/stream');
    assert.equal(await readAll(conn), 'hello consul/wan-gossip/stream');
    await waitFor(() => results.length === 1, { timeoutMs: 5000, message: 'acceptTls to settle' });
    const accepted = acceptedSocket(results[0]);
    assert.equal(accepted.getPeerX509Certificate()?.serialNumber, serial(clientC1.certPem));
    assert.equal(accepted.servername, 'server.dc1.consul', 'node "*" dials the datacenter name');
  });

  test('a client certificate from another CA is refused (tls.Server and acceptTls)', async () => {
    const server = await memoryConf(caA.certPem, serverS1);
    // The client trusts the server's CA but presents a certificate from CA B.
    const client = await memoryConf(caA.certPem + caB.certPem, clientFromB);

    const { port, accepted, clientErrors } = await rpcServer(server);
    // With TLS 1.3 the client's side of the handshake completes before the server has judged its
    // certificate, so the refusal shows as the server dropping the connection.
    const conn = await dial(client, port, 's1').catch((err: unknown) => err);
    if (conn instanceof tls.TLSSocket) {
      conn.on('error', () => undefined);
      conn.resume();
      await closed(conn);
    }
    await waitFor(() => clientErrors.length > 0, { timeoutMs: 5000, message: 'the server to drop the client' });
    assert.equal(accepted.length, 0);

    const { port: rawPort, results } = await acceptServer(server, { requireClientCert: true, alpnProtocols: RPC_NEXT_PROTOS });
    const conn2 = await dial(client, rawPort, 's1').catch((err: unknown) => err);
    await waitFor(() => results.length === 1, { timeoutMs: 5000, message: 'acceptTls to settle' });
    tlsErr(TlsErrorCode.HANDSHAKE, /client certificate rejected/)(acceptError(results[0]));
    if (conn2 instanceof tls.TLSSocket) {
      conn2.on('error', () => undefined);
      conn2.resume();
      // The server refused by closing the connection.
      await closed(conn2);
    }
  });

  test('acceptTls without requireClientCert accepts a client without a certificate', async () => {
    const server = await memoryConf(caA.certPem, serverS1);
    const { port, results } = await acceptServer(server, { requireClientCert: false });
    const caOnly = await memoryConf(caA.certPem);
    const conn = track(tls.connect({ host: '127.0.0.1', port, ...caOnly.outgoingOptions('dc1') }));
    await once(conn, 'secureConnect', { signal: AbortSignal.timeout(5000) });
    await waitFor(() => results.length === 1, { timeoutMs: 5000, message: 'acceptTls to settle' });
    assert.equal(acceptedSocket(results[0]).getPeerX509Certificate(), undefined);
  });

  test('the SNI node must be covered by the server certificate (s1 cert, dial s2 → hostname mismatch)', async () => {
    const server = await memoryConf(caA.certPem, serverS1);
    const client = await memoryConf(caA.certPem, clientC1);
    const { port } = await rpcServer(server);
    const raw = net.connect(port, '127.0.0.1');
    await assert.rejects(client.wrapAlpnClient(raw, { datacenter: 'dc1', node: 's2', alpn: Alpn.RpcMultiplexV2 }), (err: unknown) => {
      tlsErr(TlsErrorCode.HANDSHAKE, /s2\.server\.dc1\.consul/)(err);
      assert.equal((err as Error & { cause?: { code?: string } }).cause?.code, 'ERR_TLS_CERT_ALTNAME_INVALID');
      return true;
    });
    assert.ok(raw.destroyed);
  });

  test('verification is forced on the gateway path even with verify_outgoing off', async () => {
    const server = await memoryConf(caA.certPem, serverS1);
    const lax = await memoryConf(caA.certPem, clientC1, { verifyOutgoing: false, verifyServerHostname: false });
    const { port } = await rpcServer(server);
    await assert.rejects(dial(lax, port, 's2'), tlsErr(TlsErrorCode.HANDSHAKE, /altnames/));
    // A server certificate from an untrusted CA is refused too.
    const serverB = await memoryConf(caB.certPem + caA.certPem, await generateCert({ ca: caB, kind: 'server', node: 's1' }));
    const { port: portB } = await rpcServer(serverB);
    await assert.rejects(dial(lax, portB, 's1'), tlsErr(TlsErrorCode.HANDSHAKE));
  });

  test('an ALPN id the server does not offer, or a server without ALPN, is refused', async () => {
    const server = await memoryConf(caA.certPem, serverS1);
    const client = await memoryConf(caA.certPem, clientC1);
    const { port } = await rpcServer(server);
    await assert.rejects(dial(client, port, 's1', 'consul/no-such-protocol'), tlsErr(TlsErrorCode.HANDSHAKE, /consul\/no-such-protocol/));

    const { port: noAlpnPort } = await rpcServer(server, null);
    await assert.rejects(dial(client, noAlpnPort, 's1'), tlsErr(TlsErrorCode.ALPN, /did not accept ALPN protocol consul\/rpc-multi \(negotiated: none\)/));
  });

  test('wrapAlpnClient preconditions: exact errors, socket destroyed', async () => {
    const client = await memoryConf(caA.certPem, clientC1);
    const cases = [
      [{ datacenter: '', node: 's1', alpn: Alpn.RpcMultiplexV2 }, 'cannot dial using ALPN-RPC without a target datacenter'],
      [{ datacenter: 'dc1', node: '', alpn: Alpn.RpcMultiplexV2 }, 'cannot dial using ALPN-RPC without a target node'],
      [{ datacenter: 'dc1', node: 's1', alpn: '' }, 'cannot dial using ALPN-RPC without a target alpn protocol'],
    ] as const;
    for (const [opts, message] of cases) {
      const sock = new PassThrough();
      await assert.rejects(client.wrapAlpnClient(sock, opts), (err: unknown) => {
        tlsErr(TlsErrorCode.ALPN)(err);
        assert.equal((err as Error).message, message);
        return true;
      });
      assert.ok(sock.destroyed);
    }

    const caOnly = await memoryConf(caA.certPem);
    assert.equal(caOnly.mutualTlsCapable(), false);
    const sock = new PassThrough();
    await assert.rejects(caOnly.wrapAlpnClient(sock, { datacenter: 'dc1', node: 's1', alpn: Alpn.RpcMultiplexV2 }), (err: unknown) => {
      tlsErr(TlsErrorCode.ALPN)(err);
      assert.equal((err as Error).message, 'cannot dial via a mesh gateway when outgoing TLS is disabled');
      return true;
    });
    assert.ok(sock.destroyed);

    const uninitialised = configurator(memoryTlsSource({ caPem: caA.certPem }));
    await assert.rejects(uninitialised.wrapAlpnClient(new PassThrough(), { datacenter: 'dc1', node: 's1', alpn: Alpn.RpcMultiplexV2 }), tlsErr(TlsErrorCode.NOT_INITIALIZED));
    assert.throws(() => uninitialised.incomingOptions({ requireClientCert: true }), tlsErr(TlsErrorCode.NOT_INITIALIZED));
    assert.throws(() => caOnly.incomingOptions({ requireClientCert: true }), tlsErr(TlsErrorCode.NO_CERT, /cert_file and key_file/));
  });

  test('handshake deadline and abort destroy the socket', async () => {
    const server = await memoryConf(caA.certPem, serverS1);
    const client = await memoryConf(caA.certPem, clientC1);
    // A peer that accepts TCP but never speaks TLS.
    const silentPort = await listen(net.createServer((s) => track(s)));
    const raw = net.connect(silentPort, '127.0.0.1');
    await assert.rejects(
      client.wrapAlpnClient(raw, { datacenter: 'dc1', node: 's1', alpn: Alpn.RpcMultiplexV2, timeoutMs: 50 }),
      tlsErr(TlsErrorCode.HANDSHAKE, /did not complete within 50 ms/),
    );
    assert.ok(raw.destroyed);

    const ac = new AbortController();
    const raw2 = net.connect(silentPort, '127.0.0.1');
    const pending = client.wrapAlpnClient(raw2, { datacenter: 'dc1', node: 's1', alpn: Alpn.RpcMultiplexV2, signal: ac.signal });
    ac.abort(new Error('shutting down'));
    await assert.rejects(pending, tlsErr(ErrorCode.ABORTED, /shutting down/));
    assert.ok(raw2.destroyed);

    // Server side: a client that connects and sends nothing.
    const { port, results } = await acceptServer(server, { requireClientCert: true, timeoutMs: 50 });
    const silentClient = track(net.connect(port, '127.0.0.1'));
    await waitFor(() => results.length === 1, { timeoutMs: 5000, message: 'acceptTls to time out' });
    tlsErr(TlsErrorCode.HANDSHAKE, /did not complete within 50 ms/)(acceptError(results[0]));
    // The server closed the connection.
    silentClient.resume();
    await closed(silentClient);
  });

  test('outgoingOptions: server.<dc>.<domain> with verify_server_hostname, chain only with verify_outgoing alone', async () => {
    const server = await memoryConf(caA.certPem, serverS1);
    const { port } = await rpcServer(server, null);
    const strict = await memoryConf(caA.certPem, clientC1);
    const chainOnly = await memoryConf(caA.certPem, clientC1, { verifyServerHostname: false });

    const opts = strict.outgoingOptions('dc2');
    assert.equal(opts.servername, 'server.dc2.consul');
    assert.equal(opts.rejectUnauthorized, true);
    assert.equal(opts.checkServerIdentity, undefined, 'default hostname check');
    assert.equal(chainOnly.outgoingOptions('dc2').checkServerIdentity?.('x', {} as tls.PeerCertificate), undefined);

    const connect = async (options: tls.ConnectionOptions): Promise<tls.TLSSocket> => {
      const s = track(tls.connect({ host: '127.0.0.1', port, ...options }));
      await new Promise<void>((resolve, reject) => {
        s.once('secureConnect', resolve);
        s.once('error', reject);
      });
      return s;
    };
    // The server cert names dc1: fine for dc1, a mismatch for dc2 unless only the chain is checked.
    assert.equal(await readAll(await connect(strict.outgoingOptions('dc1'))), 'none authorized=true');
    await assert.rejects(connect(strict.outgoingOptions('dc2')), { code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
    assert.equal(await readAll(await connect(chainOnly.outgoingOptions('dc2'))), 'none authorized=true');
    // Chain verification still applies with verify_outgoing.
    const otherCa = await memoryConf(caB.certPem, clientFromB, { verifyServerHostname: false });
    await assert.rejects(connect(otherCa.outgoingOptions('dc1')), { code: 'SELF_SIGNED_CERT_IN_CHAIN' });
  });

  test('rotation: rewritten cert files take effect at the next handshake; a broken rewrite keeps the old cert and warns once', async () => {
    const caFile = join(dir, 'ca.pem');
    const certFile = join(dir, 'server.pem');
    const keyFile = join(dir, 'server-key.pem');
    await writeFile(caFile, caA.certPem);
    await writeFile(certFile, serverS1.certPem);
    await writeFile(keyFile, serverS1.keyPem);
    let now = 0;
    const logger = createMemoryLogger();
    const server = configurator(fileTlsSource({ caFile, certFile, keyFile, clock: () => now }), { logger });
    await server.init();
    const client = await memoryConf(caA.certPem, clientC1);
    const { port } = await rpcServer(server);
    const peerSerial = async (): Promise<string | undefined> => {
      const conn = await dial(client, port, 's1');
      const s = conn.getPeerX509Certificate()?.serialNumber;
      conn.destroy();
      return s;
    };
    assert.equal(await peerSerial(), serial(serverS1.certPem));

    // Rotate as tools do: write aside, rename over (cert, then key).
    await writeFile(`${certFile}.new`, serverS1Rotated.certPem);
    await writeFile(`${keyFile}.new`, serverS1Rotated.keyPem);
    await rename(`${certFile}.new`, certFile);
    await rename(`${keyFile}.new`, keyFile);
    assert.equal(await peerSerial(), serial(serverS1.certPem), 'the source is not re-checked within its interval');
    now += 1000;
    assert.equal(await peerSerial(), serial(serverS1Rotated.certPem));
    assert.deepEqual(
      logger.entries.filter((l) => l.level === 'info').map((l) => [l.msg, l.fields['serial']]),
      [['TLS material reloaded', serial(serverS1Rotated.certPem)]],
    );

    // A broken rewrite: the running server keeps its certificate and says so once.
    await writeFile(certFile, 'garbage\n');
    now += 1000;
    assert.equal(await peerSerial(), serial(serverS1Rotated.certPem));
    now += 1000;
    assert.equal(await peerSerial(), serial(serverS1Rotated.certPem));
    const warnings = logger.entries.filter((l) => l.level === 'warn');
    assert.equal(warnings.length, 1, JSON.stringify(warnings));
    assert.equal(warnings[0]?.msg, 'TLS material reload failed; keeping the previous certificates');
    assert.match(String(warnings[0]?.fields['error']), new RegExp(`cert_file "${certFile.replace(/[.\\/]/g, '\\$&')}" is not a PEM certificate`));

    // Fixing the file recovers.
    await writeFile(certFile, serverS1.certPem);
    await writeFile(keyFile, serverS1.keyPem);
    now += 1000;
    assert.equal(await peerSerial(), serial(serverS1.certPem));
  });

  test('acceptTls picks up rotated material too (memory source)', async () => {
    const source = memoryTlsSource({ caPem: caA.certPem, certPem: serverS1.certPem, keyPem: serverS1.keyPem });
    const server = configurator(source);
    await server.init();
    const client = await memoryConf(caA.certPem, clientC1);
    const { port } = await acceptServer(server, { requireClientCert: true, alpnProtocols: RPC_NEXT_PROTOS }, (s) => s.end());
    const first = await dial(client, port, 's1');
    assert.equal(first.getPeerX509Certificate()?.serialNumber, serial(serverS1.certPem));
    source.replace({ caPem: caA.certPem, certPem: serverS1Rotated.certPem, keyPem: serverS1Rotated.keyPem });
    const second = await dial(client, port, 's1');
    assert.equal(second.getPeerX509Certificate()?.serialNumber, serial(serverS1Rotated.certPem));
  });

  test('init propagates validation errors; refresh keeps the old material when the new one drops the certificate', async () => {
    const bad = configurator(memoryTlsSource({ caPem: caA.certPem, certPem: clientFromB.certPem, keyPem: clientFromB.keyPem }));
    await assert.rejects(bad.init(), tlsErr(TlsErrorCode.MATERIAL, /is not signed by a CA/));
    assert.equal(bad.mutualTlsCapable(), false);

    const logger = createMemoryLogger();
    const source = memoryTlsSource({ caPem: caA.certPem, certPem: serverS1.certPem, keyPem: serverS1.keyPem });
    const conf = configurator(source, { logger });
    await conf.init();
    assert.equal(await conf.refresh(), false, 'unchanged');
    source.replace({ caPem: caA.certPem });
    assert.equal(await conf.refresh(), false);
    assert.equal(conf.mutualTlsCapable(), true);
    assert.equal(logger.entries.filter((l) => l.level === 'warn').length, 1);

    const ac = new AbortController();
    ac.abort();
    await assert.rejects(configurator(source).init(ac.signal), tlsErr(ErrorCode.ABORTED));
  });
});
