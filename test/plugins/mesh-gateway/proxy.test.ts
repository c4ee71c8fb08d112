import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { loadNativeRelay } from '../../../src/plugins/mesh-gateway/native/relay.js';
import { SniProxy } from '../../../src/plugins/mesh-gateway/proxy.js';
import { compileRoutingTable, matchChain } from '../../../src/plugins/mesh-gateway/routing.js';
import { createMemoryLogger } from '../../../src/testing/memory-logger.js';
import { waitFor } from '../../../src/testing/wait.js';
import {
  captureClientHello,
  closedPort,
  edsCluster,
  expectTlsRefused,
  listener,
  loadAssignment,
  makePki,
  rawRefused,
  sniClusterChain,
  startStuckListener,
  dataPlanesHere,
  startEchoServer,
  tcpChain,
  tlsRoundTrip,
  wanfedResources,
  type EchoServer,
  type TestPki,
} from './helpers.js';

/** Every data plane this build provides runs every end-to-end test. */
const DATA_PLANES = dataPlanesHere();

test('the native data plane is built and is the default (the test command builds it; MESHFED_NO_NATIVE=1 skips this on machines without a C compiler)', { skip: process.env['MESHFED_NO_NATIVE'] === '1' }, () => {
  const { relay, why } = loadNativeRelay();
  assert.ok(relay, why);
  assert.equal(new SniProxy().dataPlane, 'native');
  assert.equal(new SniProxy({ dataPlane: 'auto', connect: (o) => net.connect(o) }).dataPlane, 'streams', 'a custom connect needs net.Socket');
  assert.throws(() => new SniProxy({ dataPlane: 'native', connect: (o) => net.connect(o) }), /custom connect function needs dataPlane "streams"/);
  assert.throws(() => new SniProxy({ dataPlane: 'fast' as 'native' }), /dataPlane must be "auto", "native", "handles" or "streams"/);
});

describe('routing table', () => {
  const table = compileRoutingTable(wanfedResources({ node1: 1, dc2: 2, dc1: 3 }));
  test('exact, wildcard (needs a label), catch-all', () => {
    assert.equal(matchChain(table, 'node1.server.dc1.consul')?.cluster, 'node1.server.dc1.consul');
    assert.equal(matchChain(table, 'bob.server.dc2.consul')?.cluster, 'server.dc2.consul');
    assert.equal(matchChain(table, 'a.b.server.dc2.consul')?.cluster, 'server.dc2.consul');
    const bare = matchChain(table, 'server.dc2.consul');
    assert.ok(bare && bare.cluster === undefined, 'server.dc2.consul falls to the sni_cluster catch-all');
    assert.equal(matchChain(table, 'node2.server.dc1.consul')?.cluster, undefined);
  });
  test('longest wildcard suffix wins', () => {
    const t = compileRoutingTable({
      listeners: [listener([tcpChain(['*.consul'], 'short'), tcpChain(['*.dc2.consul'], 'long')])],
      clusters: [],
      endpoints: [],
    });
    assert.equal(matchChain(t, 'x.dc2.consul')?.cluster, 'long');
    assert.equal(matchChain(t, 'x.dc3.consul')?.cluster, 'short');
    assert.equal(matchChain(t, 'consul'), undefined);
  });
  test('invalid resources are rejected with a clear message', () => {
    assert.throws(() => compileRoutingTable({ listeners: [{ name: 'l', filter_chains: [] }], clusters: [], endpoints: [] }), /no filter chains/);
    assert.throws(() => compileRoutingTable({ listeners: [listener([{ filters: [] }])], clusters: [], endpoints: [] }), /no envoy.filters.network.tcp_proxy/);
    assert.throws(() => compileRoutingTable({ listeners: [listener([tcpChain(['a'], '')])], clusters: [], endpoints: [] }), /no cluster/);
  });
  test('UNHEALTHY endpoints are skipped', () => {
    const t = compileRoutingTable({ listeners: [], clusters: [edsCluster('c')], endpoints: [loadAssignment('c', [{ port: 1, health: 'UNHEALTHY' }, { port: 2, health: 'HEALTHY' }, { port: 3 }])] });
    assert.deepEqual(t.clusters.get('c')?.endpoints.map((e) => e.port), [2, 3]);
  });
});

for (const dataPlane of DATA_PLANES) describe(`SniProxy end to end, ${dataPlane} data plane (real TLS on 127.0.0.1)`, () => {
  let pki: TestPki;
  let node1: EchoServer;
  let dc2: EchoServer;
  let dc1: EchoServer;
  let other: EchoServer;
  let proxy: SniProxy;
  let port: number;
  const logger = createMemoryLogger('debug');

  before(async () => {
    pki = await makePki();
    [node1, dc2, dc1, other] = await Promise.all([startEchoServer(pki, 'node1'), startEchoServer(pki, 'dc2'), startEchoServer(pki, 'dc1'), startEchoServer(pki, 'other')]);
    proxy = new SniProxy({ dataPlane, logger, helloTimeoutMs: 300 });
    proxy.update(wanfedResources({ node1: node1.port, dc2: dc2.port, dc1: dc1.port }));
    await proxy.listen('127.0.0.1', 0);
    port = proxy.address.port;
  });
  after(async () => {
    await proxy.close();
    await Promise.all([node1, dc2, dc1, other].map((s) => s.close()));
  });

  /** Route server.dc1.consul to [firstPort (never connects), dc1] with a 250 ms connect timeout; the call must wait for it, then succeed on dc1. */
  async function expectConnectTimeoutFailover(p: SniProxy, firstPort: number): Promise<void> {
    p.update({
      listeners: [listener([sniClusterChain()])],
      clusters: [{ ...edsCluster('server.dc1.consul'), connect_timeout: { nanos: 250_000_000 } }],
      endpoints: [loadAssignment('server.dc1.consul', [{ port: firstPort }, { port: dc1.port }])],
    });
    await p.listen('127.0.0.1', 0);
    const t0 = Date.now();
    assert.equal((await tlsRoundTrip(p.address.port, pki, 'server.dc1.consul')).reply, 'dc1:ping');
    const took = Date.now() - t0;
    assert.ok(took >= 240, `the first endpoint was waited for (${took} ms)`);
    assert.equal(p.stats().clusters['server.dc1.consul']?.connectFailures, 1);
  }

  test('exact chain: node1.server.dc1.consul reaches node1; the server sees the SNI and ALPN the client sent', async () => {
    const before = node1.seen.length;
    const r = await tlsRoundTrip(port, pki, 'node1.server.dc1.consul', 'hi', ['consul/rpc-multi']);
    assert.equal(r.reply, 'node1:hi');
    assert.equal(r.alpn, 'consul/rpc-multi');
    assert.deepEqual(node1.seen[before], { servername: 'node1.server.dc1.consul', alpn: 'consul/rpc-multi' });
  });

  test('wildcard chain: bob.server.dc2.consul reaches the dc2 cluster', async () => {
    const r = await tlsRoundTrip(port, pki, 'bob.server.dc2.consul');
    assert.equal(r.reply, 'dc2:ping');
    assert.equal(dc2.seen.at(-1)?.servername, 'bob.server.dc2.consul');
  });

  test('server.dc1.consul falls to the sni_cluster catch-all (cluster = SNI)', async () => {
    const r = await tlsRoundTrip(port, pki, 'server.dc1.consul');
    assert.equal(r.reply, 'dc1:ping');
  });

  test('unknown SNI (no such cluster) is refused', async () => {
    const before = proxy.stats().refused['unknown-cluster'] ?? 0;
    await expectTlsRefused(port, 'foo.example');
    await waitFor(() => (proxy.stats().refused['unknown-cluster'] ?? 0) === before + 1);
    assert.ok(logger.entries.some((e) => e.level === 'debug' && e.fields['reason'] === 'unknown-cluster' && e.fields['sni'] === 'foo.example'));
  });

  test('no SNI is refused', async () => {
    const before = proxy.stats().refused['no-sni'] ?? 0;
    await expectTlsRefused(port, undefined);
    await waitFor(() => (proxy.stats().refused['no-sni'] ?? 0) === before + 1);
  });

  test('non-TLS is refused: an HTTP request, random bytes, a stalled partial hello', async () => {
    const s0 = proxy.stats().refused;
    const reply = await rawRefused(port, 'GET / HTTP/1.1\r\nHost: node1.server.dc1.consul\r\n\r\n');
    assert.equal(reply.length, 0, 'nothing is answered to a non-TLS client');
    await rawRefused(port, Buffer.concat([Buffer.from([22, 3, 1, 0, 60, 2]), randomBytes(80)]));
    const hello = await captureClientHello({ servername: 'node1.server.dc1.consul' });
    await rawRefused(port, hello.subarray(0, 20)); // then silence: refused at the 300 ms deadline
    const s1 = proxy.stats().refused;
    assert.equal((s1['not-tls'] ?? 0) - (s0['not-tls'] ?? 0), 1);
    assert.equal((s1.malformed ?? 0) - (s0.malformed ?? 0), 1);
    assert.equal((s1.timeout ?? 0) - (s0.timeout ?? 0), 1);
  });

  test('the ClientHello deadline is overall, not idle: a client dribbling bytes is cut off', async () => {
    const hello = await captureClientHello({ servername: 'node1.server.dc1.consul' });
    const before = proxy.stats().refused.timeout ?? 0;
    const sock = net.connect({ host: '127.0.0.1', port });
    sock.on('error', () => undefined);
    let i = 0;
    const closed = new Promise<void>((resolve) => sock.once('close', () => resolve()));
    const t0 = Date.now();
    // One byte every 50 ms: each byte resets an idle timer of 300 ms, so only an overall deadline stops it.
    const dribble = setInterval(() => {
      if (i < hello.length - 1 && !sock.destroyed) sock.write(hello.subarray(i, ++i));
    }, 50);
    try {
      await closed;
    } finally {
      clearInterval(dribble);
    }
    const took = Date.now() - t0;
    assert.ok(took < 2_000, `cut off after ${took} ms`);
    assert.equal((proxy.stats().refused.timeout ?? 0) - before, 1);
  });

  test('listen on a taken port rejects and can be retried; address reports the bound port', async () => {
    const p = new SniProxy({ dataPlane });
    await assert.rejects(p.listen('127.0.0.1', port), /EADDRINUSE/);
    await p.listen('127.0.0.1', 0);
    assert.notEqual(p.address.port, port);
    await assert.rejects(p.listen('127.0.0.1', 0), /already listening/);
    await p.close();
  });

  test('refusal floods are warned about once per window', async () => {
    const log = createMemoryLogger('debug');
    const p = new SniProxy({ dataPlane, logger: log, floodThreshold: 5, floodWindowMs: 60_000 });
    p.update(wanfedResources({ node1: node1.port, dc2: dc2.port, dc1: dc1.port }));
    await p.listen('127.0.0.1', 0);
    try {
      for (let k = 0; k < 12; k++) await rawRefused(p.address.port, 'GET / HTTP/1.0\r\n\r\n');
      await waitFor(() => p.stats().refused['not-tls'] === 12);
      assert.equal(log.entries.filter((e) => e.level === 'debug' && e.msg === 'mesh gateway refused a connection').length, 12, 'each refusal logged once at debug');
      assert.equal(log.entries.filter((e) => e.level === 'warn').length, 1, 'one flood warning per window');
    } finally {
      await p.close();
    }
  });

  test('no matching chain and no catch-all is refused', async () => {
    const p = new SniProxy({ dataPlane });
    p.update({ listeners: [listener([tcpChain(['node1.server.dc1.consul'], 'node1.server.dc1.consul')])], clusters: [edsCluster('node1.server.dc1.consul')], endpoints: [loadAssignment('node1.server.dc1.consul', [{ port: node1.port }])] });
    await p.listen('127.0.0.1', 0);
    try {
      await expectTlsRefused(p.address.port, 'server.dc1.consul');
      assert.equal(p.stats().refused['no-route'], 1);
      assert.equal((await tlsRoundTrip(p.address.port, pki, 'node1.server.dc1.consul')).reply, 'node1:ping');
    } finally {
      await p.close();
    }
  });

  test('fails over to the next endpoint when the first refuses; UNHEALTHY endpoints are never tried', async () => {
    const dead = await closedPort();
    const p = new SniProxy({ dataPlane });
    p.update({
      listeners: [listener([tcpChain(['*.server.dc2.consul'], 'server.dc2.consul')])],
      clusters: [edsCluster('server.dc2.consul')],
      endpoints: [loadAssignment('server.dc2.consul', [{ port: dead }, { port: dc2.port }])],
    });
    await p.listen('127.0.0.1', 0);
    try {
      for (let i = 0; i < 4; i++) assert.equal((await tlsRoundTrip(p.address.port, pki, 'x.server.dc2.consul')).reply, 'dc2:ping');
      const cs = p.stats().clusters['server.dc2.consul'];
      assert.equal(cs?.connections, 4);
      assert.equal(cs?.connectFailures, 2, 'round robin starts on the dead endpoint every other connection');
      p.update({
        listeners: [listener([tcpChain(['*.server.dc2.consul'], 'server.dc2.consul')])],
        clusters: [edsCluster('server.dc2.consul')],
        endpoints: [loadAssignment('server.dc2.consul', [{ port: dead, health: 'UNHEALTHY' }, { port: dc2.port, health: 'HEALTHY' }])],
      });
      for (let i = 0; i < 4; i++) assert.equal((await tlsRoundTrip(p.address.port, pki, 'x.server.dc2.consul')).reply, 'dc2:ping');
      assert.equal(p.stats().clusters['server.dc2.consul']?.connectFailures, 2, 'no new failures');
    } finally {
      await p.close();
    }
  });

  test('every endpoint failing refuses the client', async () => {
    const p = new SniProxy({ dataPlane });
    p.update({ listeners: [listener([sniClusterChain()])], clusters: [edsCluster('server.dc1.consul')], endpoints: [loadAssignment('server.dc1.consul', [{ port: await closedPort() }])] });
    await p.listen('127.0.0.1', 0);
    try {
      await expectTlsRefused(p.address.port, 'server.dc1.consul');
      await waitFor(() => p.stats().refused['upstream-failed'] === 1);
    } finally {
      await p.close();
    }
  });

  test('connect timeout (injected connect, streams plane): an endpoint that never connects is abandoned after connect_timeout, then the next one is used', { skip: dataPlane !== 'streams' }, async () => {
    const neverPort = 1; // routed to a socket that never connects
    const p = new SniProxy({
      connect: ({ host, port: target }) => (target === neverPort ? new net.Socket() : net.connect({ host, port: target, allowHalfOpen: true })),
    });
    try {
      await expectConnectTimeoutFailover(p, neverPort);
    } finally {
      await p.close();
    }
  });

  test('connect timeout: a listener whose accept queue is full (its SYNs dropped) is abandoned after connect_timeout, then the next endpoint is used', async () => {
    const stuck = await startStuckListener();
    const p = new SniProxy({ dataPlane });
    try {
      await expectConnectTimeoutFailover(p, stuck.port);
    } finally {
      await p.close();
      await stuck.close();
    }
  });

  test('LOGICAL_DNS clusters resolve their hostname at connect time (injected lookup)', async () => {
    const asked: string[] = [];
    const p = new SniProxy({
      lookup: async (name) => {
        asked.push(name);
        return ['127.0.0.1'];
      },
    });
    p.update({
      listeners: [listener([tcpChain(['*.server.dc2.consul'], 'server.dc2.consul')])],
      clusters: [
        {
          name: 'server.dc2.consul',
          type: 'LOGICAL_DNS',
          connect_timeout: { seconds: 5 },
          dns_lookup_family: 'V4_ONLY',
          load_assignment: loadAssignment('server.dc2.consul', [{ host: 'gw.dc2.example', port: dc2.port }]),
        },
      ],
      endpoints: [],
    });
    await p.listen('127.0.0.1', 0);
    try {
      assert.equal((await tlsRoundTrip(p.address.port, pki, 'a.server.dc2.consul')).reply, 'dc2:ping');
      assert.equal((await tlsRoundTrip(p.address.port, pki, 'b.server.dc2.consul')).reply, 'dc2:ping');
      assert.deepEqual(asked, ['gw.dc2.example', 'gw.dc2.example']);
    } finally {
      await p.close();
    }
  });

  test('update while a connection is open: it keeps working; new connections follow the new table', async () => {
    const p = new SniProxy({ dataPlane });
    const sni = 'node1.server.dc1.consul';
    p.update({ listeners: [listener([tcpChain([sni], 'c')])], clusters: [edsCluster('c')], endpoints: [loadAssignment('c', [{ port: node1.port }])] });
    await p.listen('127.0.0.1', 0);
    const tls = await import('node:tls');
    const sock = tls.connect({ host: '127.0.0.1', port: p.address.port, servername: sni, ca: pki.ca.certPem });
    try {
      await new Promise<void>((resolve, reject) => {
        sock.once('secureConnect', resolve);
        sock.once('error', reject);
      });
      const echo = (msg: string): Promise<string> =>
        new Promise((resolve) => {
          sock.once('data', (d: Buffer) => resolve(d.toString()));
          sock.write(msg);
        });
      assert.equal(await echo('a'), 'node1:a');
      p.update({ listeners: [listener([tcpChain([sni], 'c')])], clusters: [edsCluster('c')], endpoints: [loadAssignment('c', [{ port: other.port }])] });
      assert.equal(await echo('b'), 'node1:b', 'the open connection still reaches the old endpoint');
      assert.equal((await tlsRoundTrip(p.address.port, pki, sni)).reply, 'other:ping');
      await waitFor(() => p.stats().active === 1, { message: 'only the long-lived connection stays open' });
      assert.equal(await echo('c'), 'node1:c');
    } finally {
      sock.destroy();
      await waitFor(() => p.stats().active === 0);
      await p.close();
    }
  });

  test('close(): stops accepting and destroys open connections; drain waits for them', async () => {
    const p = new SniProxy({ dataPlane });
    p.update(wanfedResources({ node1: node1.port, dc2: dc2.port, dc1: dc1.port }));
    await p.listen('127.0.0.1', 0);
    const tls = await import('node:tls');
    const sock = tls.connect({ host: '127.0.0.1', port: p.address.port, servername: 'server.dc1.consul', ca: pki.ca.certPem });
    sock.on('error', () => undefined);
    const sock2 = tls.connect({ host: '127.0.0.1', port: p.address.port, servername: 'server.dc1.consul', ca: pki.ca.certPem });
    sock2.on('error', () => undefined);
    await Promise.all([sock, sock2].map((s) => new Promise<void>((resolve) => s.once('secureConnect', resolve))));
    const closed = new Promise<void>((resolve) => sock.once('close', () => resolve()));
    let drained = false;
    const closing = p.close({ drain: true }).then(() => {
      drained = true;
    });
    const listenPort = p.address.port;
    await waitFor(async () => {
      const s = net.connect({ host: '127.0.0.1', port: listenPort });
      return new Promise<boolean>((resolve) => {
        s.on('error', () => resolve(true));
        s.on('connect', () => {
          s.destroy();
          resolve(false);
        });
      });
    }, { message: 'listener stopped accepting' });
    assert.equal(drained, false, 'drain waits for the open connection');
    assert.equal(p.stats().active, 2);
    sock.end();
    await closed;
    await waitFor(() => p.stats().active === 1, { message: 'the ended connection finished' });
    assert.equal(drained, false, 'drain still waits for the second connection');
    // close() without drain while draining destroys what is left.
    const sock2Closed = new Promise<void>((resolve) => sock2.once('close', () => resolve()));
    await p.close();
    await sock2Closed;
    await closing;
    assert.equal(drained, true);
    assert.equal(p.stats().active, 0);
  });
  test('a connection that has sent nothing yet is counted as active, and close() refuses it (closing); drain waits for it until its deadline', async () => {
    const p = new SniProxy({ dataPlane, helloTimeoutMs: 60_000 });
    p.update(wanfedResources({ node1: node1.port, dc2: dc2.port, dc1: dc1.port }));
    await p.listen('127.0.0.1', 0);
    const quiet = net.connect({ host: '127.0.0.1', port: p.address.port });
    quiet.on('error', () => undefined);
    const quietClosed = new Promise<void>((resolve) => quiet.once('close', () => resolve()));
    await waitFor(() => p.stats().active === 1 && p.stats().total === 1, { message: 'the silent connection is counted' });
    let drained = false;
    const closing = p.close({ drain: true, drainTimeoutMs: 200 }).then(() => {
      drained = true;
    });
    await quietClosed; // by the drain deadline
    await closing;
    assert.equal(drained, true);
    const s = p.stats();
    assert.equal(s.active, 0);
    assert.equal(s.total, 1);
    assert.equal(s.refused.closing, 1);
  });
});
