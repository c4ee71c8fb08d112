/**
 * The native engine's own behaviour (native/relay.c): what it routes by itself (the fast path)
 * against what it hands to JavaScript, ends of stream that race the hand-over, refusals of fast
 * connections, counters, and its thread's lifetime. The behaviour shared with the other data
 * planes is tested on every plane in proxy.test.ts and lifecycle.test.ts.
 * MESHFED_NO_NATIVE=1 (no C compiler) skips this file.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import net from 'node:net';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { SniProxy } from '../../../src/plugins/mesh-gateway/proxy.js';
import type { MeshGatewayResources } from '../../../src/plugins/mesh-gateway/routing.js';
import { createMemoryLogger } from '../../../src/testing/memory-logger.js';
import { waitFor } from '../../../src/testing/wait.js';
import { captureClientHello, closedPort, edsCluster, listener, loadAssignment, tcpChain } from './helpers.js';

const SKIP = process.env['MESHFED_NO_NATIVE'] === '1';

/** Threads of this process. */
function threads(): number {
  return readdirSync('/proc/self/task').length;
}

/**
 * An upstream that reads everything after the ClientHello until the client's end of stream, then
 * answers `<label>:<what it read>` and ends.
 */
function startUpstream(label: string, helloLength: number): Promise<{ server: net.Server; port: number; accepted: () => number }> {
  let accepted = 0;
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    accepted++;
    s.on('error', () => undefined);
    const chunks: Buffer[] = [];
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('end', () => s.end(`${label}:${Buffer.concat(chunks).subarray(helloLength).toString()}`));
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as net.AddressInfo).port, accepted: () => accepted })));
}

/** Send `bytes` and the end of stream in one go; what comes back before the proxy or upstream closes. */
function sendAndEnd(port: number, bytes: Buffer): Promise<string> {
  return new Promise((resolve) => {
    const c = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    let got = '';
    c.on('error', () => undefined);
    c.on('data', (d: Buffer) => (got += d.toString()));
    c.on('close', () => resolve(got));
    c.end(bytes);
  });
}

/** Resources: `fast.test` → an IP endpoint (the engine routes it); `slow.test` → a LOGICAL_DNS hostname (JavaScript routes it). */
function resources(fastPort: number, slowPort: number): MeshGatewayResources {
  return {
    listeners: [listener([tcpChain(['fast.test'], 'fast'), tcpChain(['slow.test'], 'slow'), tcpChain(['*.test'], 'fast')])],
    clusters: [
      edsCluster('fast'),
      { name: 'slow', type: 'LOGICAL_DNS', connect_timeout: { seconds: 5 }, dns_lookup_family: 'V4_ONLY', load_assignment: loadAssignment('slow', [{ host: 'slow.upstream.example', port: slowPort }]) },
    ],
    endpoints: [loadAssignment('fast', [{ port: fastPort }])],
  };
}

describe('native engine', { skip: SKIP ? 'MESHFED_NO_NATIVE=1' : false }, () => {
  let fastHello: Buffer;
  let slowHello: Buffer;
  let fast: Awaited<ReturnType<typeof startUpstream>>;
  let slow: Awaited<ReturnType<typeof startUpstream>>;
  const lookups: string[] = [];
  let proxy: SniProxy;

  before(async () => {
    fastHello = await captureClientHello({ servername: 'fast.test' });
    slowHello = await captureClientHello({ servername: 'slow.test' });
    assert.equal(fastHello.length, slowHello.length, 'both names have the same length, so one upstream can cut the hello');
    fast = await startUpstream('fast', fastHello.length);
    slow = await startUpstream('slow', slowHello.length);
    proxy = new SniProxy({
      dataPlane: 'native',
      lookup: async (name) => {
        lookups.push(name);
        return ['127.0.0.1'];
      },
    });
    proxy.update(resources(fast.port, slow.port));
    await proxy.listen('127.0.0.1', 0);
  });
  after(async () => {
    await proxy.close();
    await new Promise<void>((resolve) => fast.server.close(() => resolve()));
    await new Promise<void>((resolve) => slow.server.close(() => resolve()));
  });

  test('a hello, data and the end of stream sent at once are served on both paths (the end is passed on)', async () => {
    const before = proxy.stats();
    assert.equal(await sendAndEnd(proxy.address.port, Buffer.concat([fastHello, Buffer.from('abc')])), 'fast:abc');
    assert.equal(await sendAndEnd(proxy.address.port, Buffer.concat([slowHello, Buffer.from('xyz')])), 'slow:xyz');
    assert.deepEqual(lookups, ['slow.upstream.example'], 'only the hostname cluster went through JavaScript');
    await waitFor(() => proxy.stats().active === 0);
    const s = proxy.stats();
    assert.equal(s.total - before.total, 2);
    assert.equal(s.spliced - before.spliced, 2);
    assert.equal(s.bytesUp - before.bytesUp, 2 * fastHello.length + 6);
    assert.equal(s.bytesDown - before.bytesDown, 'fast:abc'.length + 'slow:xyz'.length);
    assert.equal((s.clusters['fast']?.connections ?? 0) - (before.clusters['fast']?.connections ?? 0), 1, 'the engine-routed connection is in its cluster counters');
    assert.equal((s.clusters['fast']?.bytesDown ?? 0) - (before.clusters['fast']?.bytesDown ?? 0), 'fast:abc'.length);
  });

  test('a hello with 256 KiB right behind it, sent at once, is served on both paths (nothing refused while the route is decided)', async () => {
    const bulk = Buffer.alloc(256 * 1024, 'a');
    const refusedBefore = Object.values(proxy.stats().refused).reduce((x, y) => x + (y ?? 0), 0);
    for (const [label, hello] of [['fast', fastHello], ['slow', slowHello]] as const) {
      const reply = await sendAndEnd(proxy.address.port, Buffer.concat([hello, bulk]));
      assert.equal(reply.length, label.length + 1 + bulk.length, `${label}: everything arrived`);
      assert.ok(reply.startsWith(`${label}:aaaa`));
    }
    assert.equal(Object.values(proxy.stats().refused).reduce((x, y) => x + (y ?? 0), 0), refusedBefore);
  });

  test('routing that waits until the client has sent its hello, 100 KiB and its end: all of it, end included, reaches the upstream', async () => {
    let open: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const p = new SniProxy({
      dataPlane: 'native',
      lookup: async () => {
        await gate;
        return ['127.0.0.1'];
      },
    });
    p.update(resources(fast.port, slow.port));
    await p.listen('127.0.0.1', 0);
    try {
      const bulk = Buffer.alloc(100 * 1024, 'b'); // hello + this: more than the engine keeps (80 KiB), less than a socket buffer
      const c = net.connect({ host: '127.0.0.1', port: p.address.port, allowHalfOpen: true });
      let reply = '';
      let closed = false;
      c.on('error', () => undefined);
      c.on('data', (d: Buffer) => (reply += d.toString()));
      c.on('close', () => (closed = true));
      c.end(Buffer.concat([slowHello, bulk]), () => open()); // everything handed to the kernel, then route
      await waitFor(() => closed, { message: 'the upstream saw the end of stream and answered', timeoutMs: 10_000 });
      assert.equal(reply.length, 'slow:'.length + bulk.length);
    } finally {
      open();
      await p.close();
    }
  });

  test('a partial hello followed by the end of stream is refused client-closed', async () => {
    const before = proxy.stats().refused['client-closed'] ?? 0;
    assert.equal(await sendAndEnd(proxy.address.port, fastHello.subarray(0, 40)), '');
    await waitFor(() => (proxy.stats().refused['client-closed'] ?? 0) === before + 1);
    await waitFor(() => proxy.stats().active === 0);
  });

  test('an exact chain the engine leaves to JavaScript is not taken over by a wildcard that also matches', async () => {
    const n = lookups.length;
    assert.equal(await sendAndEnd(proxy.address.port, Buffer.concat([slowHello, Buffer.from('1')])), 'slow:1');
    assert.equal(lookups.length, n + 1);
    const other = await captureClientHello({ servername: 'abcd.test' });
    assert.equal(other.length, fastHello.length);
    assert.equal(await sendAndEnd(proxy.address.port, Buffer.concat([other, Buffer.from('2')])), 'fast:2', 'the wildcard goes to the fast cluster');
  });

  test('every endpoint of an engine-routed cluster failing: refused upstream-failed, logged with the server name and cluster', async () => {
    const log = createMemoryLogger('debug');
    const dead = [await closedPort(), await closedPort()];
    const p = new SniProxy({ dataPlane: 'native', logger: log });
    p.update({ listeners: [listener([tcpChain(['fast.test'], 'dead')])], clusters: [edsCluster('dead')], endpoints: [loadAssignment('dead', dead.map((port) => ({ port })))] });
    await p.listen('127.0.0.1', 0);
    try {
      assert.equal(await sendAndEnd(p.address.port, fastHello), '');
      await waitFor(() => p.stats().refused['upstream-failed'] === 1);
      const entry = log.entries.find((e) => e.msg === 'mesh gateway refused a connection');
      assert.equal(entry?.fields?.['reason'], 'upstream-failed');
      assert.equal(entry?.fields?.['sni'], 'fast.test');
      assert.match(String(entry?.fields?.['detail']), /no endpoint of cluster dead accepted/);
      assert.equal(p.stats().clusters['dead']?.connectFailures, 2, 'both attempts counted');
      assert.equal(log.entries.filter((e) => e.msg === 'mesh gateway connect failed').length, 1, 'the engine tried both endpoints itself: TypeScript heard once, at the end');
      assert.equal(p.stats().active, 0);
    } finally {
      await p.close();
    }
  });

  test('routes replaced while connections are in flight: later connections follow the new table', async () => {
    const p = new SniProxy({ dataPlane: 'native' });
    p.update({ listeners: [listener([tcpChain(['fast.test'], 'a')])], clusters: [edsCluster('a')], endpoints: [loadAssignment('a', [{ port: fast.port }])] });
    await p.listen('127.0.0.1', 0);
    try {
      const held = net.connect({ host: '127.0.0.1', port: p.address.port, allowHalfOpen: true });
      held.on('error', () => undefined);
      const heldReply = new Promise<string>((resolve) => {
        let got = '';
        held.on('data', (d: Buffer) => (got += d.toString()));
        held.on('close', () => resolve(got));
      });
      held.write(Buffer.concat([fastHello, Buffer.from('old')]));
      await waitFor(() => p.stats().spliced === 1);
      p.update({ listeners: [listener([tcpChain(['fast.test'], 'b')])], clusters: [edsCluster('b')], endpoints: [loadAssignment('b', [{ port: slow.port }])] });
      assert.equal(await sendAndEnd(p.address.port, Buffer.concat([fastHello, Buffer.from('new')])), 'slow:new');
      held.end();
      assert.equal(await heldReply, 'fast:old', 'the open connection kept its upstream');
      const s = p.stats();
      assert.equal(s.clusters['a']?.connections, 1);
      assert.equal(s.clusters['b']?.connections, 1);
    } finally {
      await p.close();
    }
  });

  test('nativeRouting: false hands every connection to TypeScript, which routes it the same way', async () => {
    const log = createMemoryLogger('debug');
    const dead = [await closedPort(), await closedPort()];
    const p = new SniProxy({ dataPlane: 'native', nativeRouting: false, logger: log });
    p.update({
      listeners: [listener([tcpChain(['fast.test'], 'fast'), tcpChain(['dead.test'], 'dead')])],
      clusters: [edsCluster('fast'), edsCluster('dead')],
      endpoints: [loadAssignment('fast', [{ port: fast.port }]), loadAssignment('dead', dead.map((port) => ({ port })))],
    });
    await p.listen('127.0.0.1', 0);
    try {
      assert.equal(await sendAndEnd(p.address.port, Buffer.concat([fastHello, Buffer.from('js')])), 'fast:js');
      await waitFor(() => p.stats().active === 0);
      const s = p.stats();
      assert.equal(s.total, 1);
      assert.equal(s.clusters['fast']?.connections, 1);
      assert.equal(s.bytesUp, fastHello.length + 2);
      // TypeScript drives the attempts: it hears of each failed one (the engine-routed test above hears once)
      const deadHello = await captureClientHello({ servername: 'dead.test' });
      assert.equal(await sendAndEnd(p.address.port, deadHello), '');
      await waitFor(() => p.stats().refused['upstream-failed'] === 1);
      assert.equal(log.entries.filter((e) => e.msg === 'mesh gateway connect failed').length, 2, 'one per endpoint tried');
    } finally {
      await p.close();
    }
  });

  test('out of descriptors (EMFILE): the error is logged once, accepting pauses without spinning and resumes when connections close', async () => {
    // A gateway child limited to 64 descriptors; 60 clients that send nothing hold one descriptor
    // each in it (their hello deadline is a minute), so the last ones wait in the listen queue.
    const proxyModule = fileURLToPath(new URL('../../../src/plugins/mesh-gateway/proxy.js', import.meta.url));
    const script = `
      const { SniProxy } = await import(${JSON.stringify(proxyModule)});
      let errors = 0;
      const logger = { isLevelEnabled: () => false, child() { return logger; }, trace() {}, debug() {}, info() {}, warn() {},
        error(msg) { if (msg === 'mesh gateway listener error') errors++; } };
      const p = new SniProxy({ dataPlane: 'native', logger, helloTimeoutMs: 60000 });
      p.update(JSON.parse(process.argv[1]));
      await p.listen('127.0.0.1', 0);
      process.stdout.write('LISTEN ' + p.address.port + '\\n');
      process.stdin.on('data', () => process.stdout.write('STATS ' + errors + ' ' + p.stats().total + '\\n'));
    `;
    const child = spawn('prlimit', ['--nofile=64:64', process.execPath, '--input-type=module', '-e', script, JSON.stringify(resources(fast.port, slow.port))], { stdio: ['pipe', 'pipe', 'inherit'] });
    const lines = createInterface({ input: child.stdout });
    const waiters: Array<(line: string) => void> = [];
    lines.on('line', (l) => waiters.shift()?.(l));
    const next = (): Promise<string> => new Promise((resolve) => waiters.push(resolve));
    const held: net.Socket[] = [];
    const late: net.Socket[] = [];
    try {
      const port = Number((await next()).split(' ')[1]);
      const stats = async (): Promise<{ errors: number; total: number }> => {
        const line = next();
        child.stdin.write('\n');
        const [, e, t] = (await line).split(' ');
        return { errors: Number(e), total: Number(t) };
      };
      const open = (into: net.Socket[]): void => {
        const c = net.connect({ host: '127.0.0.1', port });
        c.on('error', () => undefined);
        into.push(c);
      };
      for (let i = 0; i < 60; i++) open(held);
      await waitFor(async () => (await stats()).errors > 0, { message: 'the accept error was logged' });
      const accepted = (await stats()).total;
      assert.ok(accepted > 0 && accepted < 60, `some clients accepted, the rest waiting (${accepted})`);
      // A level-triggered listener left in the epoll set would fail (and log) on every loop turn.
      for (let i = 0; i < 3; i++) open(late); // they wait in the listen queue with the others
      assert.equal((await stats()).errors, 1, 'one error for the blocked spell, not one per loop turn');
      // Free descriptors: everything waiting is accepted.
      for (const c of held) c.destroy();
      await waitFor(async () => (await stats()).total === 63, { message: 'the waiting clients were accepted once descriptors were free' });
    } finally {
      for (const c of [...held, ...late]) c.destroy();
      child.kill();
    }
  });

  test('each listening proxy runs one engine thread, gone once it is closed', async () => {
    await stat('/'); // libuv's thread pool starts on first use: not during the count
    const base = threads();
    const proxies = Array.from({ length: 4 }, () => new SniProxy({ dataPlane: 'native' }));
    for (const p of proxies) {
      p.update(resources(fast.port, slow.port));
      await p.listen('127.0.0.1', 0);
    }
    assert.equal(threads(), base + 4);
    for (const p of proxies) assert.equal(await sendAndEnd(p.address.port, Buffer.concat([fastHello, Buffer.from('t')])), 'fast:t');
    await Promise.all(proxies.map((p) => p.close()));
    await waitFor(() => threads() === base, { message: `threads back to ${base} (now ${threads()})` });
  });
});
