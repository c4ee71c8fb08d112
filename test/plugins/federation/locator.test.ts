import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ErrorCode, MeshfedError, silentLogger } from '../../../src/index.js';
import { createKernelHooks } from '../../../src/core/hooks.js';
import { createKernelServices, type GatewayListResolver } from '../../../src/core/kernel-services.js';
import type { GatewayCandidate, GatewayListContext } from '../../../src/core/types.js';
import {
  bestAddress,
  GatewayLocator,
  isUsableFederationGateway,
  LOG_DIAL_PRIMARY_DIRECTLY,
  LOG_DIAL_PRIMARY_VIA_LOCAL,
  type FederationStateSource,
  type GatewayLocatorOptions,
} from '../../../src/plugins/federation/locator.js';
import { MessageType, StateStore, type CheckServiceNode, type HealthStatus } from '../../../src/plugins/state/store/index.js';
import { createMemoryLogger, FakeClock, waitFor, type MemoryLogger } from '../../../src/testing/index.js';

// ---- fixtures ---------------------------------------------------------------------------------

interface GatewaySpec {
  node?: string;
  nodeAddress?: string;
  nodeWan?: string;
  address?: string;
  port?: number;
  lan?: { Address: string; Port: number };
  wan?: { Address: string; Port: number };
  meta?: Record<string, string>;
  status?: HealthStatus;
}

/** A mesh-gateway CheckServiceNode as federation state carries it. */
function gw(dc: string, spec: GatewaySpec): CheckServiceNode {
  const node = spec.node ?? `gw-${spec.nodeAddress ?? spec.address ?? 'x'}`;
  const idx = { CreateIndex: 1, ModifyIndex: 1 };
  const tagged: Record<string, { Address: string; Port: number }> = {};
  if (spec.lan) tagged['lan'] = spec.lan;
  if (spec.wan) tagged['wan'] = spec.wan;
  return {
    Node: { ID: '', Node: node, Address: spec.nodeAddress ?? '', Datacenter: dc, TaggedAddresses: spec.nodeWan ? { wan: spec.nodeWan } : {}, Meta: {}, ...idx },
    Service: {
      ID: 'mesh-gateway',
      Service: 'mesh-gateway',
      Kind: 'mesh-gateway',
      Tags: [],
      Address: spec.address ?? '',
      TaggedAddresses: tagged,
      Port: spec.port ?? 0,
      Meta: spec.meta ?? { 'consul-wan-federation': '1' },
      ...idx,
    },
    Checks: [
      { Node: node, CheckID: 'mesh-gateway:alive', Name: 'alive', Status: spec.status ?? 'passing', Notes: '', Output: '', ServiceID: 'mesh-gateway', ServiceName: 'mesh-gateway', ...idx },
    ],
  };
}

/** The spec's fixture gateway: node address + service port, no tagged addresses (LAN = WAN). */
const simple = (dc: string, hostPort: string): CheckServiceNode => {
  const [host, port] = hostPort.split(':') as [string, string];
  return gw(dc, { node: `gw-${dc}-${host}`, nodeAddress: host, port: Number(port) });
};

const DC1_GWS = ['1.2.3.4:5555', '4.3.2.1:9999'];
const DC2_GWS = ['5.6.7.8:5555', '8.7.6.5:9999'];
const FALLBACK = ['7.7.7.7:7777', '8.8.8.8:8888'];

function upsert(store: StateStore, index: number, dc: string, gateways: readonly CheckServiceNode[]): void {
  store.apply(index, { Type: MessageType.FederationState, Body: { Op: 'upsert', State: { Datacenter: dc, MeshGateways: [...gateways], UpdatedAt: '2020-01-01T00:00:00Z' } } });
}

/** The spec's data: dc1 at index 1, dc2 at index 2. */
function withSpecData(store: StateStore): void {
  upsert(store, 1, 'dc1', DC1_GWS.map((a) => simple('dc1', a)));
  upsert(store, 2, 'dc2', DC2_GWS.map((a) => simple('dc2', a)));
}

type Role = 'leader' | 'follower';

interface Harness {
  locator: GatewayLocator;
  store: StateStore;
  clock: FakeClock;
  logger: MemoryLogger;
  flagged: () => boolean;
  signal: AbortSignal;
}

function newLocator(datacenter: string, role: Role, extra: Partial<GatewayLocatorOptions> = {}): Harness {
  const clock = new FakeClock(1_700_000_000_000);
  const store = new StateStore({ clock, random: () => 0 });
  const logger = createMemoryLogger();
  let flag = false;
  const locator = new GatewayLocator({
    datacenter,
    primaryDatacenter: 'dc1',
    store,
    logger,
    clock,
    // A leader is ready because it leads; a follower because the leader contacted it.
    isLocalStateReady: () => true,
    onFederationStatesSeen: () => {
      flag = true;
    },
    ...extra,
  });
  if (role === 'leader') {
    // What the server does on gaining leadership in a secondary (spec §4.2).
    locator.setUseReplicationSignal(true);
    locator.setLastFederationStateReplicationError(undefined, false);
  }
  return { locator, store, clock, logger, flagged: () => flag, signal: new AbortController().signal };
}

const messages = (logger: MemoryLogger, msg: string): number => logger.entries.filter((e) => e.msg === msg).length;

function track<T>(p: Promise<T>): { settled: () => boolean; p: Promise<T> } {
  let done = false;
  const q = p.finally(() => {
    done = true;
  });
  return { settled: () => done, p: q };
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

// ---- TestGatewayLocator (spec (a)) -------------------------------------------------------------

describe('GatewayLocator (TestGatewayLocator port)', () => {
  for (const role of ['leader', 'follower'] as const) {
    describe(`as ${role}`, () => {
      test('primary, no data', async () => {
        const { locator, flagged, signal } = newLocator('dc1', role);
        assert.equal(locator.dialPrimaryThroughLocalGateway(), false);
        assert.deepEqual(locator.listGateways(false), []);
        assert.deepEqual(locator.listGateways(true), []);
        assert.equal(locator.populated, false);
        assert.equal(await locator.runOnce(0, signal), 1);
        assert.equal(locator.populated, true);
        assert.deepEqual(locator.listGateways(false), []);
        assert.deepEqual(locator.listGateways(true), []);
        assert.equal(await locator.pickGateway('dc1'), '');
        assert.equal(flagged(), false);
      });

      test('secondary, no data: defaults to dialing through local gateways', async () => {
        const { locator, flagged, signal } = newLocator('dc2', role);
        assert.equal(locator.dialPrimaryThroughLocalGateway(), true);
        assert.deepEqual(locator.listGateways(false), []);
        assert.deepEqual(locator.listGateways(true), []);
        assert.equal(await locator.runOnce(0, signal), 1);
        assert.deepEqual(locator.listGateways(false), []);
        assert.deepEqual(locator.listGateways(true), []);
        assert.equal(flagged(), false);
      });

      test('secondary, just fallback', async () => {
        const { locator, flagged, signal } = newLocator('dc2', role);
        locator.refreshPrimaryGatewayFallbackAddresses([...FALLBACK].reverse());
        assert.deepEqual(locator.primaryGatewayFallbackAddresses(), FALLBACK);
        assert.equal(locator.dialPrimaryThroughLocalGateway(), true);
        // Not populated yet: nothing, not even the fallback.
        assert.deepEqual(locator.listGateways(false), []);
        assert.deepEqual(locator.listGateways(true), []);
        assert.equal(await locator.pickGateway('dc1'), '');
        assert.equal(await locator.runOnce(0, signal), 1);
        assert.deepEqual(locator.listGateways(false), []);
        assert.deepEqual(locator.listGateways(true), FALLBACK);
        assert.ok(FALLBACK.includes(await locator.pickGateway('dc1')));
        assert.equal(flagged(), false);
      });

      test('primary with data', async () => {
        const { locator, store, flagged, signal } = newLocator('dc1', role);
        withSpecData(store);
        assert.equal(locator.dialPrimaryThroughLocalGateway(), false);
        assert.deepEqual(locator.listGateways(true), []);
        assert.equal(await locator.runOnce(0, signal), 2);
        assert.deepEqual(locator.listGateways(false), DC1_GWS);
        assert.deepEqual(locator.listGateways(true), DC1_GWS);
        assert.equal(flagged(), true);
      });

      test('secondary with data: the primary is reached through the local gateways', async () => {
        const { locator, store, flagged, signal } = newLocator('dc2', role);
        withSpecData(store);
        assert.equal(locator.dialPrimaryThroughLocalGateway(), true);
        assert.equal(await locator.runOnce(0, signal), 2);
        assert.deepEqual(locator.listGateways(false), DC2_GWS);
        assert.deepEqual(locator.listGateways(true), DC2_GWS);
        assert.ok(DC2_GWS.includes(await locator.pickGateway('dc1')));
        assert.ok(DC2_GWS.includes(await locator.pickGateway('dc3')));
        assert.equal(flagged(), true);
      });
    });
  }

  describe('leader only: replication health decides', () => {
    async function secondaryLeaderWithDataAndFallback(): Promise<Harness> {
      const h = newLocator('dc2', 'leader');
      withSpecData(h.store);
      h.locator.refreshPrimaryGatewayFallbackAddresses(FALLBACK);
      assert.equal(await h.locator.runOnce(0, h.signal), 2);
      return h;
    }
    const MERGED = ['1.2.3.4:5555', '4.3.2.1:9999', '7.7.7.7:7777', '8.8.8.8:8888'];

    test('replication ok: local gateways', async () => {
      const { locator } = await secondaryLeaderWithDataAndFallback();
      locator.setLastFederationStateReplicationError(undefined, true);
      assert.equal(locator.dialPrimaryThroughLocalGateway(), true);
      assert.deepEqual(locator.listGateways(false), DC2_GWS);
      assert.deepEqual(locator.listGateways(true), DC2_GWS);
    });

    test('replication ok then 2 failures: still local gateways', async () => {
      const { locator } = await secondaryLeaderWithDataAndFallback();
      locator.setLastFederationStateReplicationError(undefined, true);
      locator.setLastFederationStateReplicationError(new Error('fail 1'), true);
      locator.setLastFederationStateReplicationError(new Error('fail 2'), true);
      assert.equal(locator.dialPrimaryThroughLocalGateway(), true);
      assert.deepEqual(locator.listGateways(false), DC2_GWS);
      assert.deepEqual(locator.listGateways(true), DC2_GWS);
    });

    test('replication ok then 3 failures: the primary gateways merged with the fallback', async () => {
      const { locator } = await secondaryLeaderWithDataAndFallback();
      locator.setLastFederationStateReplicationError(undefined, true);
      for (let i = 1; i <= 3; i++) locator.setLastFederationStateReplicationError(new Error(`fail ${i}`), true);
      assert.equal(locator.dialPrimaryThroughLocalGateway(), false);
      assert.deepEqual(locator.listGateways(false), DC2_GWS);
      assert.deepEqual(locator.listGateways(true), MERGED);
      assert.ok(MERGED.includes(await locator.pickGateway('dc1')));
    });

    test('3 failures then ok: local gateways again', async () => {
      const { locator } = await secondaryLeaderWithDataAndFallback();
      for (let i = 1; i <= 3; i++) locator.setLastFederationStateReplicationError(new Error(`fail ${i}`), true);
      assert.equal(locator.dialPrimaryThroughLocalGateway(), false);
      locator.setLastFederationStateReplicationError(undefined, true);
      assert.equal(locator.dialPrimaryThroughLocalGateway(), true);
      assert.deepEqual(locator.listGateways(true), DC2_GWS);
    });

    test('a follower ignores replication failures (no signal)', async () => {
      const { locator, store, signal } = newLocator('dc2', 'follower');
      withSpecData(store);
      await locator.runOnce(0, signal);
      for (let i = 1; i <= 5; i++) locator.setLastFederationStateReplicationError(new Error(`fail ${i}`), false);
      assert.equal(locator.dialPrimaryThroughLocalGateway(), true);
      assert.deepEqual(locator.listGateways(true), DC2_GWS);
    });

    test('without local gateways the primary list is used even when dialing through local is preferred', async () => {
      const { locator, store, signal } = newLocator('dc2', 'leader');
      upsert(store, 1, 'dc1', DC1_GWS.map((a) => simple('dc1', a)));
      locator.refreshPrimaryGatewayFallbackAddresses(FALLBACK);
      await locator.runOnce(0, signal);
      assert.equal(locator.dialPrimaryThroughLocalGateway(), true);
      assert.deepEqual(locator.listGateways(true), MERGED);
    });
  });
});

// ---- logs and status ---------------------------------------------------------------------------

describe('GatewayLocator dialing mode: logs and status', () => {
  test('construction logs the initial mode in a secondary, not in the primary', () => {
    const sec = newLocator('dc2', 'follower');
    assert.equal(messages(sec.logger, LOG_DIAL_PRIMARY_VIA_LOCAL), 1);
    assert.equal(messages(sec.logger, LOG_DIAL_PRIMARY_DIRECTLY), 0);
    assert.equal(sec.logger.entries.find((e) => e.msg === LOG_DIAL_PRIMARY_VIA_LOCAL)?.fields['component'], 'gateway_locator');
    const pri = newLocator('dc1', 'leader');
    for (let i = 0; i < 4; i++) pri.locator.setLastFederationStateReplicationError(new Error('x'), true);
    assert.equal(messages(pri.logger, LOG_DIAL_PRIMARY_VIA_LOCAL), 0);
    assert.equal(messages(pri.logger, LOG_DIAL_PRIMARY_DIRECTLY), 0);
    assert.equal(pri.locator.status().mode, 'primary');
  });

  test('a mode flip logs the spec message exactly once per flip and shows in status()', () => {
    const { locator, logger, clock } = newLocator('dc2', 'leader');
    assert.equal(messages(logger, LOG_DIAL_PRIMARY_VIA_LOCAL), 1);
    assert.equal(locator.status().mode, 'local-gateways');
    for (let i = 1; i <= 2; i++) {
      clock.advance(1000);
      locator.setLastFederationStateReplicationError(new Error(`fail ${i}`), true);
    }
    assert.equal(messages(logger, LOG_DIAL_PRIMARY_DIRECTLY), 0);
    clock.advance(1000);
    locator.setLastFederationStateReplicationError(new Error('fail 3'), true);
    assert.equal(messages(logger, LOG_DIAL_PRIMARY_DIRECTLY), 1);
    assert.equal(locator.status().mode, 'primary-gateways');
    clock.advance(1000);
    locator.setLastFederationStateReplicationError(new Error('fail 4'), true);
    assert.equal(messages(logger, LOG_DIAL_PRIMARY_DIRECTLY), 1, 'no log without a flip');
    clock.advance(1000);
    locator.setLastFederationStateReplicationError(undefined, true);
    assert.equal(messages(logger, LOG_DIAL_PRIMARY_VIA_LOCAL), 2);
    assert.equal(messages(logger, LOG_DIAL_PRIMARY_DIRECTLY), 1);
    assert.equal(locator.status().mode, 'local-gateways');
    const r = locator.status().replication;
    assert.equal(r.use_signal, true);
    assert.equal(r.consecutive_successes, 1);
    assert.equal(r.consecutive_failures, 0);
    assert.equal(r.last_success, new Date(clock.now()).toISOString());
    assert.equal(r.last_failure, new Date(clock.now() - 1000).toISOString());
  });

  test('losing leadership (signal off) flips back to local gateways and logs it', () => {
    const { locator, logger } = newLocator('dc2', 'leader');
    for (let i = 1; i <= 3; i++) locator.setLastFederationStateReplicationError(new Error(`fail ${i}`), true);
    assert.equal(locator.dialPrimaryThroughLocalGateway(), false);
    locator.setUseReplicationSignal(false);
    locator.setLastFederationStateReplicationError(undefined, false);
    assert.equal(locator.dialPrimaryThroughLocalGateway(), true);
    assert.equal(messages(logger, LOG_DIAL_PRIMARY_VIA_LOCAL), 2);
    assert.equal(locator.status().replication.use_signal, false);
  });

  test('a success from replication turns the signal on; one from elsewhere does not', () => {
    const { locator } = newLocator('dc2', 'follower');
    locator.setLastFederationStateReplicationError(undefined, false);
    assert.equal(locator.status().replication.use_signal, false);
    locator.setLastFederationStateReplicationError(undefined, true);
    assert.equal(locator.status().replication.use_signal, true);
  });

  test('status() lists every address with its source and is JSON-able', async () => {
    const { locator, store, signal } = newLocator('dc2', 'leader');
    withSpecData(store);
    locator.refreshPrimaryGatewayFallbackAddresses(['4.3.2.1:9999', '0.0.0.9:1']);
    await locator.runOnce(0, signal);
    const s = locator.status();
    assert.deepEqual(JSON.parse(JSON.stringify(s)), s);
    assert.equal(s.datacenter, 'dc2');
    assert.equal(s.primary_datacenter, 'dc1');
    assert.equal(s.populated, true);
    assert.deepEqual(s.local, DC2_GWS.map((address) => ({ address, source: 'local' })));
    assert.deepEqual(s.primary, [
      { address: '0.0.0.9:1', source: 'fallback' },
      { address: '1.2.3.4:5555', source: 'federation-state' },
      { address: '4.3.2.1:9999', source: 'federation-state' },
      { address: '4.3.2.1:9999', source: 'fallback' },
    ]);
    assert.deepEqual(s.fallback, ['0.0.0.9:1', '4.3.2.1:9999']);
  });

  test('refreshPrimaryGatewayFallbackAddresses logs only changes and returns copies', () => {
    const { locator, logger } = newLocator('dc2', 'follower');
    const msg = 'updated fallback list of primary mesh gateways';
    locator.refreshPrimaryGatewayFallbackAddresses(['b:1', 'a:1']);
    locator.refreshPrimaryGatewayFallbackAddresses(['a:1', 'b:1']);
    assert.equal(messages(logger, msg), 1);
    const copy = locator.primaryGatewayFallbackAddresses();
    copy.push('c:1');
    assert.deepEqual(locator.primaryGatewayFallbackAddresses(), ['a:1', 'b:1']);
    locator.refreshPrimaryGatewayFallbackAddresses([]);
    assert.equal(messages(logger, msg), 2);
  });
});

// ---- pickGateway -------------------------------------------------------------------------------

describe('GatewayLocator.pickGateway', () => {
  test('picks uniformly: random r in [i/n, (i+1)/n) selects the i-th candidate', async () => {
    let r = 0;
    const { locator, store, signal } = newLocator('dc2', 'leader', { random: () => r });
    withSpecData(store);
    locator.refreshPrimaryGatewayFallbackAddresses(FALLBACK);
    for (let i = 1; i <= 3; i++) locator.setLastFederationStateReplicationError(new Error('x'), true);
    await locator.runOnce(0, signal);
    const list = locator.listGateways(true);
    assert.equal(list.length, 4);
    for (let i = 0; i < list.length; i++) {
      for (const frac of [0, 0.5, 0.999]) {
        r = (i + frac) / list.length;
        assert.equal(await locator.pickGateway('dc1'), list[i], `r=${r}`);
      }
    }
  });

  test('every candidate is reachable with Math.random', async () => {
    const { locator, store, signal } = newLocator('dc2', 'follower');
    withSpecData(store);
    await locator.runOnce(0, signal);
    const seen = new Set<string>();
    for (let i = 0; i < 200 && seen.size < DC2_GWS.length; i++) seen.add(await locator.pickGateway('dc2'));
    assert.deepEqual([...seen].sort(), DC2_GWS);
  });

  test('exclude (a dialer retrying after refused connects) skips those gateways unless none is left', async () => {
    const { locator, store, signal } = newLocator('dc2', 'follower');
    withSpecData(store);
    await locator.runOnce(0, signal);
    const [first, second] = DC2_GWS as [string, string];
    for (let i = 0; i < 20; i++) assert.equal(await locator.pickGateway('dc2', new Set([first])), second);
    assert.ok(DC2_GWS.includes(await locator.pickGateway('dc2', new Set(DC2_GWS))), 'all excluded: still picks one');
  });

  test('the candidate list passes through the onGatewayList resolver (filter + reorder), with context and sources', async () => {
    const calls: { candidates: readonly GatewayCandidate[]; ctx: GatewayListContext }[] = [];
    const resolver: GatewayListResolver = {
      async resolve(candidates, ctx) {
        calls.push({ candidates, ctx });
        return candidates.filter((c) => c.address !== '1.2.3.4:5555').reverse();
      },
    };
    const { locator, store, signal } = newLocator('dc2', 'leader', { random: () => 0, gatewayLists: resolver });
    withSpecData(store);
    locator.refreshPrimaryGatewayFallbackAddresses(FALLBACK);
    for (let i = 1; i <= 3; i++) locator.setLastFederationStateReplicationError(new Error('x'), true);
    await locator.runOnce(0, signal);
    // random 0 picks the first of the resolver's (reversed) list.
    assert.equal(await locator.pickGateway('dc1'), '8.8.8.8:8888');
    assert.deepEqual(calls[0]?.ctx, { targetDatacenter: 'dc1', list: 'primary' });
    assert.deepEqual(calls[0]?.candidates, [
      { address: '1.2.3.4:5555', datacenter: 'dc1', source: 'federation-state' },
      { address: '4.3.2.1:9999', datacenter: 'dc1', source: 'federation-state' },
      { address: '7.7.7.7:7777', datacenter: 'dc1', source: 'fallback' },
      { address: '8.8.8.8:8888', datacenter: 'dc1', source: 'fallback' },
    ]);
    // The dropped address is never picked, whatever the random value.
    const picks = new Set<string>();
    for (const r of [0, 0.3, 0.6, 0.99]) {
      const l = new GatewayLocator({ datacenter: 'dc2', primaryDatacenter: 'dc1', store, logger: silentLogger(), random: () => r, gatewayLists: resolver, isLocalStateReady: () => true });
      l.setUseReplicationSignal(true);
      l.refreshPrimaryGatewayFallbackAddresses(FALLBACK);
      for (let i = 1; i <= 3; i++) l.setLastFederationStateReplicationError(new Error('x'), true);
      await l.runOnce(0, signal);
      picks.add(await l.pickGateway('dc1'));
    }
    assert.equal(picks.has('1.2.3.4:5555'), false);
    assert.equal(picks.size, 3);
    // Local list for another DC.
    await locator.pickGateway('dc3');
    assert.deepEqual(calls.at(-1)?.ctx, { targetDatacenter: 'dc3', list: 'local' });
    assert.deepEqual(calls.at(-1)?.candidates.map((c) => c.source), ['local', 'local']);
  });

  test('through the kernel onGatewayList hook: a tap that drops everything yields ""', async () => {
    const hooks = createKernelHooks();
    const services = createKernelServices({ hooks, logger: silentLogger(), localDatacenter: 'dc2', agentSignal: new AbortController().signal });
    hooks.onGatewayList.tapPromise('pin', async (list: readonly GatewayCandidate[], ctx: GatewayListContext) => (ctx.targetDatacenter === 'dc9' ? [] : list.filter((c) => c.address.startsWith('8.'))));
    const { locator, store, signal } = newLocator('dc2', 'follower', { gatewayLists: services.gatewayLists, random: () => 0.99 });
    withSpecData(store);
    await locator.runOnce(0, signal);
    assert.equal(await locator.pickGateway('dc1'), '8.7.6.5:9999');
    assert.equal(await locator.pickGateway('dc9'), '');
  });

  test('logs the pick at trace level', async () => {
    const { locator, store, logger, signal } = newLocator('dc2', 'follower', { random: () => 0 });
    withSpecData(store);
    await locator.runOnce(0, signal);
    await locator.pickGateway('dc3');
    const e = logger.entries.find((x) => x.msg === 'picking gateway for transit');
    assert.equal(e?.level, 'trace');
    assert.equal(e?.fields['gateway'], '5.6.7.8:5555');
    assert.equal(e?.fields['dest'], 'dc3');
  });
});

// ---- refresh -----------------------------------------------------------------------------------

describe('GatewayLocator refresh', () => {
  test('runOnce with the current index blocks until a federation-state write', async () => {
    const { locator, store, signal } = newLocator('dc2', 'follower');
    withSpecData(store);
    assert.equal(await locator.runOnce(0, signal), 2);
    const q = track(locator.runOnce(2, signal));
    await tick();
    await tick();
    assert.equal(q.settled(), false);
    assert.deepEqual(locator.listGateways(false), DC2_GWS);
    upsert(store, 3, 'dc2', [simple('dc2', '9.9.9.9:1')]);
    assert.equal(await q.p, 3);
    assert.deepEqual(locator.listGateways(false), ['9.9.9.9:1']);
  });

  test('runOnce rejects with ABORTED when the signal aborts during the wait', async () => {
    const { locator, store } = newLocator('dc2', 'follower');
    withSpecData(store);
    const ctl = new AbortController();
    const q = locator.runOnce(2, ctl.signal);
    await tick();
    ctl.abort();
    await assert.rejects(q, (err: unknown) => err instanceof MeshfedError && err.code === ErrorCode.ABORTED);
  });

  test('local state not ready: returns lastIndex at once, no error, not populated', async () => {
    let ready = false;
    const { locator, store, signal } = newLocator('dc2', 'follower', { isLocalStateReady: () => ready });
    withSpecData(store);
    // Must return at once (a real query with minQueryIndex 7 would block: the table is at 2).
    const q = track(locator.runOnce(7, signal));
    await tick();
    assert.equal(q.settled(), true, 'runOnce must not query while the local state is not ready');
    assert.equal(await q.p, 7);
    assert.equal(locator.populated, false);
    assert.deepEqual(locator.listGateways(false), []);
    ready = true;
    assert.equal(await locator.runOnce(0, signal), 2);
    assert.equal(locator.populated, true);
  });

  test('"new cached locations of mesh gateways" is logged only when a list changes', async () => {
    const { locator, store, logger, signal } = newLocator('dc2', 'follower');
    const msg = 'new cached locations of mesh gateways';
    await locator.runOnce(0, signal);
    assert.equal(messages(logger, msg), 0);
    withSpecData(store);
    await locator.runOnce(1, signal);
    assert.equal(messages(logger, msg), 1);
    const e = logger.entries.find((x) => x.msg === msg);
    assert.deepEqual(e?.fields['primary'], DC1_GWS);
    assert.deepEqual(e?.fields['local'], DC2_GWS);
    // A write that does not change the rendered lists.
    upsert(store, 3, 'dc2', DC2_GWS.map((a) => simple('dc2', a)).reverse());
    assert.equal(await locator.runOnce(2, signal), 3);
    assert.equal(messages(logger, msg), 1);
  });

  test('primaryGatewaysReady resolves on the first non-empty federation-state primary list, not from the fallback', async () => {
    const { locator, store, signal } = newLocator('dc2', 'follower');
    let ready = false;
    void locator.primaryGatewaysReady.then(() => {
      ready = true;
    });
    locator.refreshPrimaryGatewayFallbackAddresses(FALLBACK);
    await locator.runOnce(0, signal);
    await tick();
    assert.equal(ready, false, 'fallback alone must not make the primary ready');
    assert.deepEqual(locator.listGateways(true), FALLBACK);
    upsert(store, 1, 'dc2', DC2_GWS.map((a) => simple('dc2', a)));
    await locator.runOnce(0, signal);
    await tick();
    assert.equal(ready, false, 'local gateways do not count');
    upsert(store, 2, 'dc1', [simple('dc1', '1.2.3.4:5555')].map((g) => ({ ...g, Checks: [{ ...(g.Checks[0] as CheckServiceNode['Checks'][number]), Status: 'critical' as const }] })));
    await locator.runOnce(1, signal);
    await tick();
    assert.equal(ready, false, 'no usable primary gateway yet');
    upsert(store, 3, 'dc1', DC1_GWS.map((a) => simple('dc1', a)));
    await locator.runOnce(2, signal);
    await locator.primaryGatewaysReady;
    assert.equal(ready, true);
  });

  test('the feature flag callback fires whenever states exist', async () => {
    const { locator, store, flagged, signal } = newLocator('dc2', 'follower');
    await locator.runOnce(0, signal);
    assert.equal(flagged(), false);
    upsert(store, 1, 'dc3', []);
    await locator.runOnce(0, signal);
    assert.equal(flagged(), true);
  });

  test('run() follows writes and stops on abort', async () => {
    const { locator, store } = newLocator('dc2', 'follower');
    const ctl = new AbortController();
    const running = locator.run(ctl.signal);
    await waitFor(() => locator.populated, { timeoutMs: 5000, message: 'locator populated' });
    withSpecData(store);
    await waitFor(() => locator.listGateways(false).length === 2, { timeoutMs: 5000, message: 'local gateways seen' });
    assert.deepEqual(locator.listGateways(false), DC2_GWS);
    ctl.abort();
    await running;
  });

  test('run() rate limit: burst of 5 at once, then one run per 5 s', async () => {
    const clock = new FakeClock();
    let calls = 0;
    // Returns at once every time (index keeps rising) to exercise the limiter alone.
    const source: FederationStateSource = {
      federationStateList: () => ({ index: calls, value: [] }),
      blockingQuery: async () => ({ index: ++calls, value: [] }) as never,
    };
    const locator = new GatewayLocator({ datacenter: 'dc2', primaryDatacenter: 'dc1', store: source, logger: silentLogger(), clock, isLocalStateReady: () => true });
    const ctl = new AbortController();
    const running = locator.run(ctl.signal);
    await clock.advanceAsync(0);
    assert.equal(calls, 5);
    await clock.advanceAsync(4999);
    assert.equal(calls, 5);
    await clock.advanceAsync(1);
    assert.equal(calls, 6);
    await clock.advanceAsync(5000);
    assert.equal(calls, 7);
    ctl.abort();
    await running;
    assert.equal(clock.pending, 0, 'no timer left behind');
  });

  test('run() backs off 2, 4, 8, … 256, 256 s on errors and resets after a success', async () => {
    const clock = new FakeClock();
    let calls = 0;
    const failUntil = 10;
    const times: number[] = [];
    const source: FederationStateSource = {
      federationStateList: () => ({ index: 1, value: [] }),
      blockingQuery: async (opts) => {
        calls++;
        times.push(clock.now());
        if (calls <= failUntil) throw new Error(`boom ${calls}`);
        // After the failures: block until aborted, like a real blocking query.
        return new Promise<never>((_, reject) => opts.signal?.addEventListener('abort', () => reject(new Error('aborted'))));
      },
    };
    const logger = createMemoryLogger();
    const locator = new GatewayLocator({ datacenter: 'dc2', primaryDatacenter: 'dc1', store: source, logger, clock, isLocalStateReady: () => true });
    const ctl = new AbortController();
    const running = locator.run(ctl.signal);
    const total = [2, 4, 8, 16, 32, 64, 128, 256, 256].reduce((a, b) => a + b, 0) * 1000;
    await clock.advanceAsync(total);
    assert.equal(calls, 10);
    const gaps = times.slice(1).map((t, i) => (t - (times[i] as number)) / 1000);
    assert.deepEqual(gaps, [2, 4, 8, 16, 32, 64, 128, 256, 256]);
    assert.equal(logger.entries.filter((e) => e.level === 'error').length, 10);
    ctl.abort();
    await running;

    // Reset: fail, succeed, fail again → the second wait is 2 s again.
    calls = 0;
    times.length = 0;
    const seq: ('fail' | 'ok')[] = ['fail', 'fail', 'ok', 'fail'];
    const source2: FederationStateSource = {
      federationStateList: () => ({ index: 1, value: [] }),
      blockingQuery: async () => {
        const outcome = seq[calls] ?? 'ok';
        calls++;
        times.push(clock.now());
        if (outcome === 'fail') throw new Error('boom');
        return { index: 1, value: [] } as never;
      },
    };
    const l2 = new GatewayLocator({ datacenter: 'dc2', primaryDatacenter: 'dc1', store: source2, logger: silentLogger(), clock, isLocalStateReady: () => true });
    const ctl2 = new AbortController();
    const running2 = l2.run(ctl2.signal);
    await clock.advanceAsync(2000 + 4000 + 2000);
    assert.ok(calls >= 5);
    const start = times[0] as number;
    assert.deepEqual(times.slice(0, 5).map((t) => (t - start) / 1000), [0, 2, 6, 6, 8]);
    ctl2.abort();
    await running2;
  });

  test('run() skips (no backoff, no error) while the local state is not ready', async () => {
    const clock = new FakeClock();
    const logger = createMemoryLogger();
    let reads = 0;
    const source: FederationStateSource = {
      federationStateList: () => ({ index: 1, value: [] }),
      blockingQuery: async () => {
        reads++;
        return { index: 1, value: [] } as never;
      },
    };
    let ready = false;
    const locator = new GatewayLocator({ datacenter: 'dc2', primaryDatacenter: 'dc1', store: source, logger, clock, isLocalStateReady: () => ready });
    const ctl = new AbortController();
    const running = locator.run(ctl.signal);
    await clock.advanceAsync(20_000);
    assert.equal(reads, 0);
    assert.equal(logger.entries.filter((e) => e.level === 'error').length, 0);
    ready = true;
    await clock.advanceAsync(5_000);
    assert.ok(reads >= 1);
    assert.equal(locator.populated, true);
    ctl.abort();
    await running;
  });
});

// ---- gateway filtering and BestAddress -------------------------------------------------------

describe('gateway selection rules', () => {
  test('critical or non-federation gateways are excluded; warning is kept', async () => {
    const { locator, store, signal } = newLocator('dc1', 'leader');
    upsert(store, 1, 'dc1', [
      gw('dc1', { node: 'a', nodeAddress: '10.0.0.1', port: 443 }),
      gw('dc1', { node: 'b', nodeAddress: '10.0.0.2', port: 443, status: 'critical' }),
      gw('dc1', { node: 'c', nodeAddress: '10.0.0.3', port: 443, meta: {} }),
      gw('dc1', { node: 'd', nodeAddress: '10.0.0.4', port: 443, meta: { 'consul-wan-federation': '0' } }),
      gw('dc1', { node: 'e', nodeAddress: '10.0.0.5', port: 443, status: 'warning' }),
    ]);
    await locator.runOnce(0, signal);
    assert.deepEqual(locator.listGateways(false), ['10.0.0.1:443', '10.0.0.5:443']);
    assert.deepEqual(locator.listGateways(true), ['10.0.0.1:443', '10.0.0.5:443']);
  });

  test('isUsableFederationGateway: a critical node-level check excludes too', () => {
    const g = gw('dc1', { nodeAddress: '10.0.0.1', port: 1 });
    assert.equal(isUsableFederationGateway(g), true);
    const nodeCheck = { ...(g.Checks[0] as CheckServiceNode['Checks'][number]), CheckID: 'serfHealth', ServiceID: '', Status: 'critical' as const };
    assert.equal(isUsableFederationGateway({ ...g, Checks: [...g.Checks, nodeCheck] }), false);
  });

  test('bestAddress precedence', () => {
    const full: GatewaySpec = { nodeAddress: '10.0.0.1', nodeWan: '198.51.100.1', address: '10.0.0.2', port: 8443, wan: { Address: '203.0.113.5', Port: 443 } };
    // WAN: service wan tagged (with its port).
    assert.equal(bestAddress(gw('dc1', full), true), '203.0.113.5:443');
    // LAN: service address (tagged wan ignored).
    assert.equal(bestAddress(gw('dc1', full), false), '10.0.0.2:8443');
    // WAN tagged without port → service port.
    assert.equal(bestAddress(gw('dc1', { ...full, wan: { Address: '203.0.113.5', Port: 0 } }), true), '203.0.113.5:8443');
    // WAN, no service wan: service address beats node wan.
    assert.equal(bestAddress(gw('dc1', { ...full, wan: undefined }), true), '10.0.0.2:8443');
    // WAN, no service addresses: node wan tagged.
    assert.equal(bestAddress(gw('dc1', { ...full, wan: undefined, address: '' }), true), '198.51.100.1:8443');
    // LAN, no service address: node address (node wan ignored).
    assert.equal(bestAddress(gw('dc1', { ...full, wan: undefined, address: '' }), false), '10.0.0.1:8443');
    // WAN, nothing tagged: node address.
    assert.equal(bestAddress(gw('dc1', { nodeAddress: '10.0.0.1', port: 1 }), true), '10.0.0.1:1');
    // Service lan tagged address is not used by BestAddress.
    assert.equal(bestAddress(gw('dc1', { nodeAddress: '10.0.0.1', port: 1, lan: { Address: '10.9.9.9', Port: 9 } }), false), '10.0.0.1:1');
    // IPv6 bracketed.
    assert.equal(bestAddress(gw('dc1', { nodeAddress: '10.0.0.1', address: '2001:db8::1', port: 443 }), false), '[2001:db8::1]:443');
    assert.equal(bestAddress(gw('dc1', { nodeAddress: 'fd00::1', port: 443 }), false), '[fd00::1]:443');
    assert.equal(bestAddress(gw('dc1', { nodeAddress: '10.0.0.1', port: 443, wan: { Address: '2001:db8::5', Port: 8443 } }), true), '[2001:db8::5]:8443');
  });

  test('the locator renders local gateways as LAN and the primary as WAN', async () => {
    const { locator, store, signal } = newLocator('dc2', 'leader');
    upsert(store, 1, 'dc1', [gw('dc1', { nodeAddress: '10.1.0.1', port: 8443, wan: { Address: '2001:db8::1', Port: 443 } })]);
    upsert(store, 2, 'dc2', [gw('dc2', { nodeAddress: '10.2.0.1', nodeWan: '198.51.100.2', port: 8443 })]);
    locator.refreshPrimaryGatewayFallbackAddresses(['203.0.113.9:443']);
    for (let i = 1; i <= 3; i++) locator.setLastFederationStateReplicationError(new Error('x'), true);
    await locator.runOnce(0, signal);
    assert.deepEqual(locator.listGateways(false), ['10.2.0.1:8443']);
    assert.deepEqual(locator.listGateways(true), ['203.0.113.9:443', '[2001:db8::1]:443']);
  });

  test('federation states are matched to datacenters case-insensitively', async () => {
    const { locator, store, signal } = newLocator('dc2', 'follower');
    upsert(store, 1, 'DC2', [simple('dc2', '5.6.7.8:5555')]);
    await locator.runOnce(0, signal);
    assert.deepEqual(locator.listGateways(false), ['5.6.7.8:5555']);
  });
});

// ---- change notification (gRPC resolver) -------------------------------------------------------

describe('GatewayLocator.onChange and candidateGateways', () => {
  test('fires on the first read, on list changes, on a new fallback list and on a mode flip; never for a no-op', async () => {
    const { locator, store, signal } = newLocator('dc2', 'leader');
    let fired = 0;
    const off = locator.onChange(() => fired++);
    assert.deepEqual(await locator.candidateGateways('dc1'), [], 'nothing before the first read');
    let index = await locator.runOnce(0, signal);
    assert.equal(fired, 1, 'first read (lists still empty) makes the lists meaningful');
    withSpecData(store);
    index = await locator.runOnce(index, signal);
    assert.equal(fired, 2, 'lists changed');
    assert.deepEqual(await locator.candidateGateways('dc1'), DC2_GWS, 'a secondary reaches the primary through its own gateways');
    assert.deepEqual(await locator.candidateGateways('dc3'), DC2_GWS);
    upsert(store, 3, 'dc2', DC2_GWS.map((a) => simple('dc2', a)));
    await locator.runOnce(index, signal);
    assert.equal(fired, 2, 'same lists: no event');
    locator.refreshPrimaryGatewayFallbackAddresses(FALLBACK);
    assert.equal(fired, 3);
    locator.refreshPrimaryGatewayFallbackAddresses([...FALLBACK].reverse());
    assert.equal(fired, 3, 'same fallback list: no event');
    for (let i = 1; i <= 3; i++) locator.setLastFederationStateReplicationError(new Error('x'), true);
    assert.equal(fired, 4, 'the mode flipped to the primary’s gateways');
    assert.deepEqual(await locator.candidateGateways('dc1'), [...DC1_GWS, ...FALLBACK].sort());
    off();
    locator.refreshPrimaryGatewayFallbackAddresses([]);
    assert.equal(fired, 4, 'unsubscribed');
  });

  test('a throwing listener is logged and the others still run; candidates pass through onGatewayList', async () => {
    const resolver: GatewayListResolver = { resolve: async (candidates) => candidates.filter((c) => c.address !== '5.6.7.8:5555') };
    const { locator, store, signal, logger } = newLocator('dc2', 'follower', { gatewayLists: resolver });
    let other = 0;
    locator.onChange(() => {
      throw new Error('boom');
    });
    locator.onChange(() => other++);
    withSpecData(store);
    await locator.runOnce(0, signal);
    assert.equal(other, 1);
    assert.equal(messages(logger, 'gateway locator change listener failed'), 1);
    assert.deepEqual(await locator.candidateGateways('dc1'), ['8.7.6.5:9999']);
  });
});
