import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createLogger } from '../../../src/index.js';
import { rebalanceTimeoutMs, ServerManager, shuffled, type ServerManagerOptions } from '../../../src/plugins/router/index.js';
import { createMemoryLogger, FakeClock, waitFor } from '../../../src/testing/index.js';
import { deferred, FakePinger, server } from './helpers.js';

// random() = 0.999…: Fisher–Yates swaps every element with itself, so the shuffle keeps the order.
const identity = (): number => 0.9999999;

function manager(extra: Partial<ServerManagerOptions> = {}): { m: ServerManager; pinger: FakePinger; logger: ReturnType<typeof createMemoryLogger> } {
  const pinger = new FakePinger();
  const logger = createMemoryLogger();
  const m = new ServerManager({ datacenter: 'dc1', pinger, numNodes: () => 0, random: identity, clock: new FakeClock(), logger, ...extra });
  return { m, pinger, logger };
}

const names = (m: ServerManager): string[] => m.servers().map((s) => s.name);

describe('ServerManager list', () => {
  test('addServer appends, replaces by name, removeServer removes; snapshots are immutable copies', () => {
    const { m } = manager();
    assert.equal(m.findServer(), undefined);
    m.addServer(server('a', 'dc1'));
    m.addServer(server('b', 'dc1'));
    const before = m.servers();
    m.addServer(server('a', 'dc1', { port: 9000 }));
    assert.deepEqual(names(m), ['a', 'b']);
    assert.equal(m.servers()[0]?.port, 9000);
    assert.equal(before[0]?.port, 8300, 'an earlier snapshot is not changed (copy-on-write)');
    assert.ok(Object.isFrozen(m.servers()));
    m.removeServer(server('a', 'dc1'));
    assert.deepEqual(names(m), ['b']);
    m.removeServer(server('zzz', 'dc1'));
    assert.deepEqual(names(m), ['b']);
    assert.equal(m.findServer()?.name, 'b');
  });

  test('findServer on an empty list warns', () => {
    const { m, logger } = manager();
    assert.equal(m.findServer(), undefined);
    assert.ok(logger.entries.some((e) => e.level === 'warn' && e.msg === 'No servers available'));
  });

  test('notifyFailedServer cycles the front to the back (order after 1, 2, 3 cycles)', () => {
    const { m, logger } = manager();
    for (const n of ['a', 'b', 'c']) m.addServer(server(n, 'dc1'));
    m.notifyFailedServer(server('a', 'dc1'));
    assert.deepEqual(names(m), ['b', 'c', 'a']);
    m.notifyFailedServer(server('b', 'dc1'));
    assert.deepEqual(names(m), ['c', 'a', 'b']);
    m.notifyFailedServer(server('c', 'dc1'));
    assert.deepEqual(names(m), ['a', 'b', 'c']);
    assert.equal(logger.entries.filter((e) => e.msg === 'cycled away from server').length, 3);
  });

  test('notifyFailedServer ignores a server that is not in front, and a single-server list', () => {
    const { m } = manager();
    m.addServer(server('a', 'dc1'));
    m.notifyFailedServer(server('a', 'dc1'));
    assert.deepEqual(names(m), ['a']);
    m.addServer(server('b', 'dc1'));
    m.notifyFailedServer(server('b', 'dc1'));
    assert.deepEqual(names(m), ['a', 'b']);
  });

  test('concurrent failure reports for the same server rotate once', async () => {
    const { m } = manager();
    for (const n of ['a', 'b', 'c']) m.addServer(server(n, 'dc1'));
    const a = m.servers()[0]!;
    await Promise.all(Array.from({ length: 5 }, async () => m.notifyFailedServer(a)));
    assert.deepEqual(names(m), ['b', 'c', 'a']);
  });

  test('the try-lock: a report arriving while a rotation is in progress does nothing', () => {
    const box: { m?: ServerManager } = {};
    let nested = 0;
    // The "cycled away" debug line is written while the barrier is held; report the new front then.
    const logger = createLogger({
      level: 'debug',
      sink: (e) => {
        if (e.msg !== 'cycled away from server') return;
        nested++;
        box.m?.notifyFailedServer(box.m.servers()[0]!);
      },
    });
    const m = new ServerManager({ datacenter: 'dc1', pinger: new FakePinger(), numNodes: () => 0, clock: new FakeClock(), logger });
    box.m = m;
    for (const n of ['a', 'b', 'c']) m.addServer(server(n, 'dc1'));
    m.notifyFailedServer(server('a', 'dc1'));
    assert.equal(nested, 1);
    assert.deepEqual(names(m), ['b', 'c', 'a'], 'the nested report for b found the barrier taken');
  });

  test('checkServers stops at the first false', () => {
    const { m } = manager();
    for (const n of ['a', 'b', 'c']) m.addServer(server(n, 'dc1'));
    const seen: string[] = [];
    assert.equal(m.checkServers((s) => (seen.push(s.name), s.name !== 'b')), false);
    assert.deepEqual(seen, ['a', 'b']);
  });
});

describe('ServerManager.rebalanceServers', () => {
  test('shuffled is a Fisher–Yates permutation driven by the random source', () => {
    const input = ['a', 'b', 'c', 'd', 'e'];
    assert.deepEqual(shuffled(input, identity), input);
    assert.deepEqual(shuffled(input, () => 0), ['b', 'c', 'd', 'e', 'a']);
    let seed = 7;
    const rnd = (): number => ((seed = (seed * 16807) % 2147483647) / 2147483647);
    assert.deepEqual([...shuffled(input, rnd)].sort(), input);
    assert.deepEqual(input, ['a', 'b', 'c', 'd', 'e'], 'input untouched');
  });

  test('unhealthy front servers are cycled until a healthy one is found', async () => {
    const { m, pinger } = manager();
    for (const n of ['a', 'b', 'c']) m.addServer(server(n, 'dc1'));
    pinger.healthy = new Set(['c']);
    await m.rebalanceServers();
    assert.deepEqual(pinger.pinged, ['a', 'b', 'c']);
    assert.deepEqual(names(m), ['c', 'a', 'b']);
    assert.equal(m.isOffline, false);
  });

  test('a healthy front stops at the first ping', async () => {
    const { m, pinger } = manager();
    for (const n of ['a', 'b']) m.addServer(server(n, 'dc1'));
    pinger.healthy = new Set(['a', 'b']);
    await m.rebalanceServers();
    assert.deepEqual(pinger.pinged, ['a']);
    assert.deepEqual(names(m), ['a', 'b']);
  });

  test('pinger rejections count as unhealthy', async () => {
    const { m } = manager({
      pinger: {
        ping: async (s) => {
          if (s.name === 'a') throw new Error('connection refused');
          return true;
        },
      },
    });
    for (const n of ['a', 'b']) m.addServer(server(n, 'dc1'));
    await m.rebalanceServers();
    assert.deepEqual(names(m), ['b', 'a']);
  });

  test('no healthy server: offline, list kept; addServer clears offline', async () => {
    const { m, pinger } = manager();
    for (const n of ['a', 'b', 'c']) m.addServer(server(n, 'dc1'));
    await m.rebalanceServers();
    assert.equal(pinger.pinged.length, 3, 'each server pinged once');
    assert.equal(m.isOffline, true);
    assert.deepEqual(names(m), ['a', 'b', 'c']);
    m.addServer(server('d', 'dc1'));
    assert.equal(m.isOffline, false);
    pinger.healthy.add('b');
    await m.rebalanceServers();
    assert.equal(m.isOffline, false);
    assert.equal(m.findServer()?.name, 'b');
  });

  test('freeze: if the chosen front server is removed during the ping, the live list is kept', async () => {
    const { m, pinger } = manager();
    for (const n of ['a', 'b', 'c']) m.addServer(server(n, 'dc1'));
    pinger.healthy = new Set(['a', 'b', 'c']);
    const gate = deferred();
    pinger.gate = gate.promise;
    const done = m.rebalanceServers();
    await waitFor(() => pinger.pinged.length === 1);
    m.removeServer(server('a', 'dc1'));
    gate.resolve();
    await done;
    assert.equal(m.isOffline, false);
    assert.deepEqual(names(m), ['b', 'c']);
  });

  test('reconcile: servers added during the ping are appended, removed ones dropped', async () => {
    const { m, pinger } = manager({ random: () => 0 });
    for (const n of ['a', 'b', 'c']) m.addServer(server(n, 'dc1'));
    pinger.healthy = new Set(['a', 'b', 'c']);
    const gate = deferred();
    pinger.gate = gate.promise;
    const done = m.rebalanceServers();
    await waitFor(() => pinger.pinged.length === 1);
    assert.deepEqual(pinger.pinged, ['b'], 'random 0 rotates the shuffled copy: b, c, a');
    m.removeServer(server('c', 'dc1'));
    m.addServer(server('d', 'dc1'));
    m.addServer(server('a', 'dc1', { port: 9999 }));
    assert.deepEqual(names(m), ['a', 'b', 'd'], 'live list untouched while the rebalance runs');
    gate.resolve();
    await done;
    assert.deepEqual(names(m), ['b', 'a', 'd']);
    assert.equal(m.servers()[1]?.port, 9999, 'kept servers carry the live (fresh) metadata');
  });

  test('its own server name is not pinged and counts as healthy', async () => {
    const { m, pinger } = manager({ serverName: 'a' });
    for (const n of ['a', 'b']) m.addServer(server(n, 'dc1'));
    await m.rebalanceServers();
    assert.deepEqual(pinger.pinged, []);
    assert.equal(m.isOffline, false);
    assert.equal(m.findServer()?.name, 'a');
    // WAN names carry the DC suffix: the short name matches too.
    const wan = manager({ serverName: 'a' });
    for (const n of ['b.dc1', 'a.dc1']) wan.m.addServer(server(n, 'dc1'));
    await wan.m.rebalanceServers();
    assert.deepEqual(wan.pinger.pinged, ['b.dc1']);
    assert.equal(wan.m.findServer()?.name, 'a.dc1');
  });

  test('concurrent rebalances share one run', async () => {
    const { m, pinger } = manager();
    m.addServer(server('a', 'dc1'));
    pinger.healthy.add('a');
    await Promise.all([m.rebalanceServers(), m.rebalanceServers()]);
    assert.deepEqual(pinger.pinged, ['a']);
  });
});

describe('ServerManager rebalance timer', () => {
  test('first tick after 120 s calls the rebalancer, rebalances, then re-arms with the scaled interval', async () => {
    const clock = new FakeClock();
    let rebalancerCalls = 0;
    const { m, pinger } = manager({ clock, random: () => 0.5, numNodes: () => 3, rebalancer: () => void rebalancerCalls++ });
    for (const n of ['a', 'b']) m.addServer(server(n, 'dc1'));
    pinger.healthy = new Set(['a', 'b']);
    m.start();
    m.start();
    assert.equal(clock.pending, 1);
    await clock.advanceAsync(119_999);
    assert.equal(rebalancerCalls, 0);
    assert.equal(pinger.pinged.length, 0);
    await clock.advanceAsync(1);
    await waitFor(() => pinger.pinged.length === 1 && clock.pending === 1);
    assert.equal(rebalancerCalls, 1);
    // random 0.5 → jitter 30 s: next tick 150 s later.
    await clock.advanceAsync(149_999);
    assert.equal(rebalancerCalls, 1);
    await clock.advanceAsync(1);
    await waitFor(() => rebalancerCalls === 2 && pinger.pinged.length === 2);
    m.stop();
    assert.equal(clock.pending, 0);
    await clock.advanceAsync(600_000);
    assert.equal(rebalancerCalls, 2);
  });

  test('stop aborts an in-flight ping and does not re-arm', async () => {
    const clock = new FakeClock();
    const { m, pinger } = manager({ clock });
    m.addServer(server('a', 'dc1'));
    const gate = deferred();
    pinger.gate = gate.promise;
    m.start();
    await clock.advanceAsync(120_000);
    await waitFor(() => pinger.pinged.length === 1);
    m.stop();
    gate.resolve();
    await m.rebalanceServers().catch(() => undefined);
    await clock.advanceAsync(1_000_000);
    assert.equal(clock.pending, 0);
  });

  test('refresh timer table (TestManagerInternal_refreshServerRebalanceTimer)', () => {
    const min = 60_000;
    const table: Array<[nodes: number, servers: number, minimum: number, tight: boolean]> = [
      [0, 3, 2 * min, true],
      [1, 0, 2 * min, true],
      [16384, 1, 4 * min, true],
      [65535, 1, 8 * min, false],
      [65535, 2, 3 * min, false],
      [65535, 3, 5 * min, true],
      [1_000_000, 1, 240 * min, false],
    ];
    for (const random of [() => 0, () => 0.5, () => 0.9999999]) {
      for (const [nodes, servers, minimum, tight] of table) {
        const ms = rebalanceTimeoutMs(nodes, servers, random);
        assert.ok(ms >= minimum, `(${nodes}, ${servers}): ${ms} ms < ${minimum} ms`);
        if (tight) assert.ok(ms < minimum + min, `(${nodes}, ${servers}): ${ms} ms ≥ ${minimum + min} ms`);
      }
    }
    assert.equal(rebalanceTimeoutMs(0, 3, () => 0), 120_000);
    assert.equal(rebalanceTimeoutMs(0, 3, () => 0.9999999), 179_999);
    assert.equal(rebalanceTimeoutMs(65535, 1, () => 0), (65535 / 64) * 1000);
  });

  test('the manager uses the area size and its server count', async () => {
    const clock = new FakeClock();
    const { m } = manager({ clock, random: () => 0, numNodes: () => 16384 });
    m.addServer(server('a', 'dc1'));
    m.start();
    assert.equal(m.refreshServerRebalanceTimer(), 256_000);
    m.stop();
  });
});
