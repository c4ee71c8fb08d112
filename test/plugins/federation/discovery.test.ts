import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { discoverPrimaryGateways, NO_MESH_GATEWAYS_FOUND, type DiscoverPrimaryGatewaysOptions, type DiscoveryLocator } from '../../../src/plugins/federation/discovery.js';
import { GatewayLocator } from '../../../src/plugins/federation/locator.js';
import { MessageType, StateStore } from '../../../src/plugins/state/store/index.js';
import { createMemoryLogger, FakeClock, waitFor, type MemoryLogger } from '../../../src/testing/index.js';

const COMPLETED = 'Refreshing mesh gateways completed';
const FAILED = 'Refreshing mesh gateways failed, will retry';
const INTERVAL = 30_000;

/** A locator stand-in recording every refresh, with a controllable ready promise. */
function fakeLocator(): DiscoveryLocator & { refreshes: string[][]; markReady: () => void } {
  let markReady: () => void = () => undefined;
  const primaryGatewaysReady = new Promise<void>((r) => {
    markReady = r;
  });
  const refreshes: string[][] = [];
  return {
    refreshes,
    primaryGatewaysReady,
    markReady: () => markReady(),
    refreshPrimaryGatewayFallbackAddresses(addrs: readonly string[]) {
      refreshes.push([...addrs]);
    },
  };
}

function track<T>(p: Promise<T>): { settled: () => boolean; p: Promise<T>; done: () => Promise<T> } {
  let done = false;
  const q = p.finally(() => {
    done = true;
  });
  // Fail (with a deadline) instead of hanging when discovery does not return.
  const finished = async (): Promise<T> => {
    await waitFor(() => done, { timeoutMs: 2000, message: 'discovery returned' });
    return q;
  };
  return { settled: () => done, p: q, done: finished };
}

const count = (logger: MemoryLogger, msg: string): number => logger.entries.filter((e) => e.msg === msg).length;

function setup(extra: Partial<DiscoverPrimaryGatewaysOptions> & Pick<DiscoverPrimaryGatewaysOptions, 'addrs'>) {
  const clock = new FakeClock();
  const logger = createMemoryLogger();
  const locator = fakeLocator();
  const ctl = new AbortController();
  const lookups: string[] = [];
  const opts: DiscoverPrimaryGatewaysOptions = {
    intervalMs: INTERVAL,
    locator,
    signal: ctl.signal,
    logger,
    clock,
    lookup: async (host) => {
      lookups.push(host);
      throw new Error(`no lookup expected for ${host}`);
    },
    ...extra,
  };
  return { clock, logger, locator, ctl, lookups, run: () => track(discoverPrimaryGateways(opts)) };
}

describe('discoverPrimaryGateways', () => {
  test('empty primary_gateways returns at once without logging', async () => {
    const { logger, locator, run } = setup({ addrs: [] });
    await run().done();
    assert.equal(locator.refreshes.length, 0);
    assert.equal(logger.entries.length, 0);
  });

  test('success on the first try: IP literals kept verbatim, one-shot', async () => {
    const { clock, logger, locator, lookups, run } = setup({ addrs: ['1.2.3.4:443', '[2001:db8::1]:8443', '10.0.0.9'] });
    await run().done();
    assert.deepEqual(locator.refreshes, [['1.2.3.4:443', '[2001:db8::1]:8443', '10.0.0.9']]);
    assert.deepEqual(lookups, []);
    assert.equal(count(logger, COMPLETED), 1);
    assert.equal(count(logger, FAILED), 0);
    assert.equal(clock.pending, 0, 'no retry timer left');
  });

  test('failure, then success after the interval', async () => {
    let answer: string[] = [];
    const { clock, logger, locator, run } = setup({ addrs: ['gw.primary.example:8443'], lookup: async () => answer });
    const d = run();
    await clock.advanceAsync(0);
    assert.equal(count(logger, FAILED), 1);
    const failed = logger.entries.find((e) => e.msg === FAILED);
    assert.equal(failed?.level, 'warn');
    assert.match(String((failed?.fields['err'] as Error | undefined)?.message), new RegExp(NO_MESH_GATEWAYS_FOUND));
    assert.equal(locator.refreshes.length, 0);
    answer = ['192.0.2.10'];
    await clock.advanceAsync(INTERVAL - 1);
    assert.equal(d.settled(), false);
    assert.equal(locator.refreshes.length, 0, 'no second attempt before the interval');
    await clock.advanceAsync(1);
    await d.done();
    assert.deepEqual(locator.refreshes, [['192.0.2.10:8443']]);
    assert.equal(count(logger, FAILED), 1);
    assert.equal(count(logger, COMPLETED), 1);
  });

  test('keeps retrying every interval while it fails', async () => {
    const { clock, logger, run, ctl } = setup({ addrs: ['gw.example:1'], lookup: async () => [] });
    const d = run();
    await clock.advanceAsync(3 * INTERVAL);
    assert.equal(count(logger, FAILED), 4);
    ctl.abort();
    await d.done();
  });

  test('exits quietly when the primary gateways become ready (real locator)', async () => {
    const clock = new FakeClock();
    const store = new StateStore({ clock, random: () => 0 });
    const logger = createMemoryLogger();
    const locator = new GatewayLocator({ datacenter: 'dc2', primaryDatacenter: 'dc1', store, logger, clock, isLocalStateReady: () => true });
    const d = track(discoverPrimaryGateways({ addrs: ['provider=k8s label_selector="app=gw"'], intervalMs: INTERVAL, locator, signal: new AbortController().signal, logger, clock }));
    await clock.advanceAsync(0);
    assert.equal(count(logger, FAILED), 1);
    assert.equal(d.settled(), false);
    store.apply(1, {
      Type: MessageType.FederationState,
      Body: {
        Op: 'upsert',
        State: {
          Datacenter: 'dc1',
          MeshGateways: [
            {
              Node: { ID: '', Node: 'gw1', Address: '198.51.100.7', Datacenter: 'dc1', TaggedAddresses: {}, Meta: {}, CreateIndex: 1, ModifyIndex: 1 },
              Service: { ID: 'mgw', Service: 'mgw', Kind: 'mesh-gateway', Tags: [], Address: '', TaggedAddresses: {}, Port: 443, Meta: { 'consul-wan-federation': '1' }, CreateIndex: 1, ModifyIndex: 1 },
              Checks: [],
            },
          ],
        },
      },
    });
    await locator.runOnce(0, new AbortController().signal);
    await d.done(); // resolves before the interval elapsed: the clock was not advanced
    assert.equal(clock.now(), 0);
    assert.equal(count(logger, FAILED), 1);
    assert.equal(count(logger, COMPLETED), 0);
    assert.deepEqual(locator.primaryGatewayFallbackAddresses(), []);
    assert.equal(clock.pending, 0, 'interval timer cleared');
  });

  test('exits quietly on abort while waiting', async () => {
    const { clock, logger, run, ctl, locator } = setup({ addrs: ['gw.example:1'], lookup: async () => [] });
    const d = run();
    await clock.advanceAsync(0);
    assert.equal(d.settled(), false);
    const before = logger.entries.length;
    ctl.abort();
    await d.done();
    assert.equal(logger.entries.length, before);
    assert.equal(locator.refreshes.length, 0);
    assert.equal(clock.pending, 0);
  });

  test('hostnames resolve to IPv4 keeping the port; a failed lookup keeps the raw entry', async () => {
    const seen: string[] = [];
    const { locator, run } = setup({
      addrs: ['gw.a.example:8443', 'broken.example:443', '5.6.7.8:9', 'bare.example'],
      lookup: async (host) => {
        seen.push(host);
        if (host === 'gw.a.example') return ['10.1.1.1', '10.1.1.2'];
        if (host === 'bare.example') return ['10.3.3.3'];
        throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
      },
    });
    await run().done();
    assert.deepEqual(seen, ['gw.a.example', 'broken.example', 'bare.example']);
    assert.deepEqual(locator.refreshes, [['10.1.1.1:8443', '10.1.1.2:8443', 'broken.example:443', '5.6.7.8:9', '10.3.3.3']]);
  });

  test('a lookup that hangs is cut off after 2 s and the raw entry kept', async () => {
    const { clock, locator, run } = setup({ addrs: ['slow.example:443'], lookup: () => new Promise<string[]>(() => undefined) });
    const d = run();
    await clock.advanceAsync(1999);
    assert.equal(d.settled(), false);
    await clock.advanceAsync(1);
    await d.done();
    assert.deepEqual(locator.refreshes, [['slow.example:443']]);
  });

  test('provider= entries are skipped with a single warning', async () => {
    const { clock, logger, locator, run, ctl } = setup({ addrs: ['provider=aws tag_key=gw tag_value=primary'] });
    const d = run();
    await clock.advanceAsync(2 * INTERVAL);
    const warnings = logger.entries.filter((e) => e.level === 'warn' && /provider=/.test(e.msg));
    assert.equal(warnings.length, 1, 'warned once over three attempts');
    assert.equal(count(logger, FAILED), 3);
    assert.equal(locator.refreshes.length, 0);
    ctl.abort();
    await d.done();

    const mixed = setup({ addrs: ['provider=k8s label_selector="app=gw"', '1.2.3.4:443'] });
    await mixed.run().done();
    assert.deepEqual(mixed.locator.refreshes, [['1.2.3.4:443']]);
    assert.equal(mixed.logger.entries.filter((e) => e.level === 'warn' && /provider=/.test(e.msg)).length, 1);
    assert.equal(count(mixed.logger, COMPLETED), 1);
  });

  test('the default lookup resolves localhost to IPv4', async () => {
    const logger = createMemoryLogger();
    const locator = fakeLocator();
    await discoverPrimaryGateways({ addrs: ['localhost:8443'], intervalMs: INTERVAL, locator, signal: new AbortController().signal, logger });
    assert.equal(locator.refreshes.length, 1);
    assert.ok(locator.refreshes[0]?.includes('127.0.0.1:8443'), `got ${JSON.stringify(locator.refreshes)}`);
  });
});
