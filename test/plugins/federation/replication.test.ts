import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { federationStructs} from '../../../src/plugins/federation/index.js';
import { FederationFeature, FederationStateReplicator, type ReplicatorOptions } from '../../../src/plugins/federation/index.js';
import { GoTime } from '../../../src/plugins/rpc/index.js';
import type { StateServer } from '../../../src/plugins/state/index.js';
import { StateStore, type Command } from '../../../src/plugins/state/store/index.js';
import { createMemoryLogger, FakeClock, waitFor } from '../../../src/testing/index.js';

type Wire = federationStructs.WireFederationState;
const IDLE = Symbol('idle');

const gw = (node: string) => ({
  Node: { ID: '', Node: node, Address: '10.0.0.1', Datacenter: 'dc1', TaggedAddresses: {}, Meta: {}, CreateIndex: 1, ModifyIndex: 1 },
  Service: { ID: 'mgw', Service: 'mesh-gateway', Kind: 'mesh-gateway', Tags: [], Address: '', TaggedAddresses: {}, Port: 443, Meta: {}, CreateIndex: 1, ModifyIndex: 1 },
  Checks: [],
});
const state = (dc: string, modify: number, gws: string[] = ['g']): Wire => ({
  Datacenter: dc,
  MeshGateways: gws.map(gw),
  UpdatedAt: GoTime.parse('2026-01-01T00:00:00Z'),
  PrimaryModifyIndex: modify,
  CreateIndex: modify,
  ModifyIndex: modify,
});

/** A StateServer stand-in: a real local store, writes applied in order, `List` answered by `remote()`. */
function fakeServer(remote: () => unknown) {
  const store = new StateStore();
  let index = 0;
  const writes: Command[] = [];
  const server = {
    store,
    async write(command: Command) {
      writes.push(command);
      store.apply(++index, command);
      return index;
    },
    async call(method: string, _req: unknown, ctx: { signal: AbortSignal }) {
      assert.equal(method, 'FederationState.List');
      const r = remote();
      if (r === IDLE) {
        return new Promise((_resolve, reject) => {
          if (ctx.signal.aborted) reject(new Error('aborted'));
          ctx.signal.addEventListener('abort', () => reject(new Error('aborted')), { once: true });
        });
      }
      if (r instanceof Error) throw r;
      return r;
    },
  };
  return { server: server as unknown as StateServer, store, writes };
}

function replicator(server: StateServer, extra: Partial<ReplicatorOptions> = {}) {
  const feature = new FederationFeature({ datacenter: 'dc2', primaryDatacenter: 'dc1', node: 's2' });
  feature.markSupported();
  const fetches: (Error | undefined)[] = [];
  const r = new FederationStateReplicator({
    datacenter: 'dc2',
    primaryDatacenter: 'dc1',
    server,
    feature,
    token: () => 'repl',
    logger: createMemoryLogger('silent'),
    onFetch: (e) => fetches.push(e),
    ...extra,
  });
  return { r, fetches };
}

const dcs = (store: StateStore) =>
  store
    .federationStateList()
    .value.map((s) => `${s.Datacenter}@${s.PrimaryModifyIndex}:${s.MeshGateways.length}`)
    .join(' ');

describe('federation-state replication rounds', () => {
  test('create, update only what the primary changed since the last round, delete; deletions first', async () => {
    let answer: unknown = { States: [state('dc1', 5), state('dc3', 7)], Index: 7 };
    const { server, store, writes } = fakeServer(() => answer);
    const { r, fetches } = replicator(server);
    const signal = new AbortController().signal;
    assert.equal(await r.replicateOnce(0, signal), 7);
    assert.equal(dcs(store), 'dc1@5:1 dc3@7:1');
    assert.deepEqual(fetches, [undefined]);

    writes.length = 0;
    answer = { States: [state('dc1', 5), state('dc4', 9, ['a', 'b', 'c'])], Index: 9 };
    assert.equal(await r.replicateOnce(7, signal), 9);
    assert.equal(dcs(store), 'dc1@5:1 dc4@9:3');
    // dc1 unchanged (ModifyIndex 5 ≤ 7) is not rewritten; the deletion of dc3 comes first
    assert.deepEqual(
      writes.map((w) => `${(w.Body as { Op: string }).Op}:${(w.Body as { State: { Datacenter: string } }).State.Datacenter}`),
      ['delete:dc3', 'upsert:dc4'],
    );
  });

  test('a primary answering garbage changes nothing, the locator hears the failure, and a good answer recovers', async () => {
    const garbage: unknown[] = [
      { States: 'nope', Index: 3 },
      { States: [state('dc1', 5), { ...state('bad dc!', 6) }], Index: 6 },
      { States: [state('dc1', 5), state('DC1', 6)], Index: 6 },
      { States: [state('dc1', 5), { ...state('dc3', 0) }], Index: 6 },
      { States: [state('dc1', 5), { ...state('dc3', 6), MeshGateways: [{ Node: null, Service: null, Checks: [] }] }], Index: 6 },
      new Error('connection reset'),
    ];
    let answer: unknown;
    const { server, store, writes } = fakeServer(() => answer);
    const { r, fetches } = replicator(server);
    const signal = new AbortController().signal;
    for (const g of garbage) {
      answer = g;
      await assert.rejects(r.replicateOnce(0, signal), /fetching federation states from dc1 failed/);
    }
    assert.equal(writes.length, 0, 'garbage was partly applied');
    assert.equal(fetches.length, garbage.length);
    assert.ok(fetches.every((e) => e instanceof Error));
    answer = { States: [state('dc1', 5)], Index: 5 };
    assert.equal(await r.replicateOnce(0, signal), 5);
    assert.equal(dcs(store), 'dc1@5:1');
  });

  test('a remote index that moves backwards forces a full sync', async () => {
    let answer: unknown = { States: [state('dc1', 50)], Index: 50 };
    const { server, store } = fakeServer(() => answer);
    const logger = createMemoryLogger('warn');
    const { r } = replicator(server, { logger });
    const signal = new AbortController().signal;
    await r.replicateOnce(0, signal);
    // the primary was restored from an old snapshot: indexes went back, dc1 changed at index 3
    answer = { States: [state('dc1', 3, ['x', 'y'])], Index: 4 };
    assert.equal(await r.replicateOnce(50, signal), 4);
    assert.equal(dcs(store), 'dc1@3:2');
    assert.equal(logger.entries.filter((e) => e.msg === 'replication remote index moved backwards, forcing a full sync').length, 1);
  });

  test('run() backs off after failures, reports status 0 then 1, and stops on abort', async () => {
    let calls = 0;
    const { server, store } = fakeServer(() => {
      calls++;
      if (calls <= 2) return new Error('primary unreachable');
      if (calls === 3) return { States: [state('dc1', 2)], Index: 2 };
      return IDLE; // an idle blocking query, until aborted
    });
    const { r } = replicator(server, { rate: 0, random: () => 0, maxRetryWaitMs: 5 });
    const ctl = new AbortController();
    const running = r.run(ctl.signal);
    const deadline = Date.now() + 10_000;
    while (r.status().status !== 1 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 5));
    assert.equal(r.status().status, 1);
    assert.equal(r.status().index, 2);
    assert.equal(dcs(store), 'dc1@2:1');
    assert.ok(r.status().rounds >= 3);
    ctl.abort();
    await running;
  });

  test('a replicator waiting for the feature starts the moment it turns on, not after its backoff', async () => {
    let served = 0;
    const { server, store } = fakeServer(() => (served++ === 0 ? { States: [state('dc1', 3)], Index: 3 } : IDLE));
    const feature = new FederationFeature({ datacenter: 'dc2', primaryDatacenter: 'dc1', node: 's2' });
    const clock = new FakeClock(); // never advanced: only the feature can end the wait
    const r = new FederationStateReplicator({ datacenter: 'dc2', primaryDatacenter: 'dc1', server, feature, token: () => '', logger: createMemoryLogger('silent'), clock, rate: 0 });
    const ctl = new AbortController();
    const running = r.run(ctl.signal);
    await waitFor(() => r.status().status === 0, { message: 'first round did not fail on the feature' });
    assert.equal(dcs(store), '');
    feature.observe({ type: 'join', pool: 'wan', members: [{ name: 'p1.dc1', address: '127.0.0.1', port: 1, status: 'alive', tags: { role: 'consul', dc: 'dc1', ft_fs: '1' } }] });
    await waitFor(() => dcs(store) === 'dc1@3:1', { message: 'replication did not start when the feature turned on' });
    ctl.abort();
    await running;
  });

  test('without the feature the round fails with Consul’s text and the locator is not told', async () => {
    const { server } = fakeServer(() => ({ States: [], Index: 1 }));
    const feature = new FederationFeature({ datacenter: 'dc2', primaryDatacenter: 'dc1', node: 's2' });
    const fetches: unknown[] = [];
    const r = new FederationStateReplicator({ datacenter: 'dc2', primaryDatacenter: 'dc1', server, feature, token: () => '', logger: createMemoryLogger('silent'), onFetch: (e) => fetches.push(e) });
    await assert.rejects(r.replicateOnce(0, new AbortController().signal), /Not all servers in the datacenter support federation states - preventing replication/);
    assert.equal(fetches.length, 0);
  });
});
