import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { SniProxy } from '../../../src/plugins/mesh-gateway/proxy.js';
import { waitFor } from '../../../src/testing/wait.js';
import { activeHandles, captureClientHello, edsCluster, listener, loadAssignment, tcpChain } from './helpers.js';

type Mode = 'client-end' | 'server-end' | 'client-reset' | 'server-reset' | 'half-close';
const MODES: readonly Mode[] = ['client-end', 'server-end', 'client-reset', 'server-reset', 'half-close'];

/**
 * A raw upstream: the first 2 bytes after the ClientHello say how to behave ("E" end, "R" reset,
 * "H" half-close: answer after the client's FIN); otherwise it echoes.
 */
function startRawUpstream(helloLength: number): Promise<{ server: net.Server; port: number; sockets: Set<net.Socket> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    let seen = 0;
    let cmd = '';
    let received = '';
    s.on('data', (d: Buffer) => {
      seen += d.length;
      if (seen <= helloLength) return;
      const fresh = d.subarray(Math.max(0, d.length - (seen - helloLength))).toString();
      received += fresh;
      if (cmd === '') {
        cmd = received[0] ?? '';
        if (cmd === 'E') s.end('bye');
        else if (cmd === 'R') s.resetAndDestroy();
        else if (cmd === 'C') s.write('ok');
      }
    });
    s.on('end', () => {
      if (cmd === 'H') s.end(`got:${received}`);
      else if (!s.writableEnded) s.end();
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as net.AddressInfo).port, sockets })));
}

/** Run one connection through the proxy in the given mode; resolves when the client socket closed. */
function runOne(port: number, hello: Buffer, mode: Mode): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const c = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    c.on('error', () => undefined);
    let got = '';
    c.on('data', (d: Buffer) => {
      got += d.toString();
      if (mode === 'client-end' && got === 'ok') c.end();
      if (mode === 'client-reset' && got === 'ok') c.resetAndDestroy();
    });
    c.on('end', () => {
      if (mode === 'server-end' && got !== 'bye') reject(new Error(`server-end: got ${got}`));
      if (mode === 'half-close' && got !== 'got:Hxyz') reject(new Error(`half-close: got ${got}`));
      c.end();
    });
    c.on('close', () => resolve());
    const cmd = mode === 'server-end' ? 'E' : mode === 'server-reset' ? 'R' : mode === 'half-close' ? 'H' : 'C';
    c.write(Buffer.concat([hello, Buffer.from(cmd)]));
    if (mode === 'half-close') {
      c.write('xyz');
      c.end();
    }
  });
}

describe('SniProxy connection lifecycle', () => {
  let hello: Buffer;
  let upstream: Awaited<ReturnType<typeof startRawUpstream>>;
  let proxy: SniProxy;
  let port: number;
  before(async () => {
    hello = await captureClientHello({ servername: 'node1.server.dc1.consul', alpn: ['consul/rpc-multi'] });
    upstream = await startRawUpstream(hello.length);
    proxy = new SniProxy();
    proxy.update({ listeners: [listener([tcpChain(['node1.server.dc1.consul'], 'n1')])], clusters: [edsCluster('n1')], endpoints: [loadAssignment('n1', [{ port: upstream.port }])] });
    await proxy.listen('127.0.0.1', 0);
    port = proxy.address.port;
  });
  after(async () => {
    await proxy.close();
    await new Promise<void>((resolve) => upstream.server.close(() => resolve()));
  });

  test('half-close client → server: the upstream sees FIN, still answers, then both close; bytes are counted', async () => {
    const s0 = proxy.stats();
    await runOne(port, hello, 'half-close');
    await waitFor(() => proxy.stats().active === 0);
    const s1 = proxy.stats();
    assert.equal(s1.bytesUp - s0.bytesUp, hello.length + 'Hxyz'.length, 'ClientHello + payload forwarded up');
    assert.equal(s1.bytesDown - s0.bytesDown, 'got:Hxyz'.length);
    assert.equal((s1.clusters['n1']?.bytesDown ?? 0) - (s0.clusters['n1']?.bytesDown ?? 0), 'got:Hxyz'.length);
  });

  test('half-close server → client: the client keeps sending after the server FIN', async () => {
    const c = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    c.on('error', () => undefined);
    let got = '';
    c.on('data', (d: Buffer) => (got += d.toString()));
    const ended = new Promise<void>((resolve) => c.once('end', () => resolve()));
    const closed = new Promise<void>((resolve) => c.once('close', () => resolve()));
    c.write(Buffer.concat([hello, Buffer.from('E')]));
    await ended;
    assert.equal(got, 'bye');
    // The server's write side is done; ours is still open and must reach it.
    const upstreamSock = [...upstream.sockets][0];
    assert.ok(upstreamSock, 'upstream connection still open (half-closed)');
    const more = new Promise<string>((resolve) => upstreamSock.once('data', (d: Buffer) => resolve(d.toString())));
    c.write('after-fin');
    assert.equal(await more, 'after-fin');
    c.end();
    await closed;
    await waitFor(() => proxy.stats().active === 0 && upstream.sockets.size === 0);
  });

  test('2 000 connections closed from either side leave no sockets behind', { timeout: 60_000 }, async () => {
    const baseline = activeHandles();
    const before = proxy.stats();
    const total = 2000;
    const concurrency = 50;
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < total) {
        const i = next++;
        await runOne(port, hello, MODES[i % MODES.length] ?? 'client-end');
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    await waitFor(() => proxy.stats().active === 0, { message: 'proxy connections all finished', timeoutMs: 15_000 });
    await waitFor(() => upstream.sockets.size === 0, { message: 'upstream sockets all closed', timeoutMs: 15_000 });
    await waitFor(() => activeHandles() <= baseline, { message: `handles back to the baseline ${baseline} (now ${activeHandles()})`, timeoutMs: 15_000 });
    const s = proxy.stats();
    assert.equal(s.total - before.total, total);
    assert.equal(s.spliced - before.spliced, total, 'every connection was spliced');
    assert.equal(s.clusters['n1']?.active, 0);
  });
});
