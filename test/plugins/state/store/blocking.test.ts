import assert from 'node:assert/strict';
import { setMaxListeners } from 'node:events';
import { describe, test } from 'node:test';
import { ErrorCode } from '../../../../src/index.js';
import { queryWaitMs, type QueryResult, type WatchSet } from '../../../../src/plugins/state/store/index.js';
import { waitFor } from '../../../../src/testing/index.js';
import { dereg, fsUpsert, gateway, newStore, reg, tick } from './helpers.js';

/** Track whether a promise has settled. */
function track<T>(p: Promise<T>): { settled: () => boolean; p: Promise<T> } {
  let done = false;
  const q = p.finally(() => {
    done = true;
  });
  return { settled: () => done, p: q };
}

describe('blocking queries', () => {
  test('minQueryIndex 0 and a newer index return at once; index is never below 1', async () => {
    const { store } = newStore();
    assert.deepEqual(await store.blockingQuery({}, (ws) => store.nodes(ws)), { index: 1, value: [] });
    store.apply(5, fsUpsert({ Datacenter: 'dc1' }));
    const r = await store.blockingQuery({ minQueryIndex: 4 }, (ws) => store.federationStateGet('dc1', ws));
    assert.equal(r.index, 5);
    assert.equal(store.watcherCount, 0);
  });

  test('wakes on a write to the watched key and returns the new result', async () => {
    const { store } = newStore();
    store.apply(1, fsUpsert({ Datacenter: 'dc1' }));
    let runs = 0;
    const q = track(
      store.blockingQuery({ minQueryIndex: 1 }, (ws) => {
        runs++;
        return store.federationStateGet('DC1', ws);
      }),
    );
    await tick();
    assert.equal(q.settled(), false);
    assert.equal(store.watcherCount, 1);
    store.apply(2, fsUpsert({ Datacenter: 'dc1', UpdatedAt: '2030-01-01T00:00:00Z' }));
    const r = await q.p;
    assert.equal(r.index, 2);
    assert.equal(r.value?.UpdatedAt, '2030-01-01T00:00:00Z');
    assert.equal(runs, 2);
    assert.equal(store.watcherCount, 0);
  });

  test('a write elsewhere does not wake; the query times out at the wait and returns the current index', async () => {
    const { store, clock } = newStore();
    store.apply(1, reg(gateway('gw1')));
    let runs = 0;
    const q = track(
      store.blockingQuery({ minQueryIndex: 1 }, (ws) => {
        runs++;
        return store.checkServiceNodes('mesh-gateway', {}, ws);
      }),
    );
    await tick();
    store.apply(2, reg({ Node: 'other', Address: '10.9.9.9', Service: { Service: 'web' }, Checks: [{ CheckID: 'x', Status: 'passing' }] }));
    store.apply(3, fsUpsert({ Datacenter: 'dc9' }));
    await tick();
    assert.equal(runs, 1, 'unrelated writes do not re-run the read');
    assert.equal(q.settled(), false);
    await clock.advanceAsync(299_999);
    assert.equal(q.settled(), false);
    await clock.advanceAsync(1);
    const r = await q.p;
    assert.equal(runs, 2);
    assert.equal(r.index, 2, 'the timed-out result reports the tables’ current index');
    assert.equal(store.watcherCount, 0);
    assert.equal(clock.pending, 0);
  });

  test('a relevant check change wakes a health query; a woken query whose index did not pass keeps waiting', async () => {
    const { store } = newStore();
    store.apply(1, reg(gateway('gw1')));
    let runs = 0;
    const read = (ws: WatchSet): QueryResult<number> => {
      runs++;
      const r = store.checkServiceNodes('mesh-gateway', { passingOnly: true }, ws);
      return { index: r.index, value: r.value.length };
    };
    const q = track(store.blockingQuery({ minQueryIndex: 5 }, read));
    await tick();
    store.apply(2, reg(gateway('gw1', 'critical')));
    await waitFor(() => runs === 2);
    assert.equal(q.settled(), false, 'index 2 ≤ 5: re-armed');
    store.apply(6, dereg('gw1', { CheckID: 'mgw-alive' }));
    assert.deepEqual(await q.p, { index: 6, value: 1 });
    assert.equal(runs, 3);
  });

  test('a change to a node the result contains wakes serviceNodes; other nodes do not', async () => {
    const { store } = newStore();
    store.apply(1, reg({ Node: 'a', Address: '10.0.0.1', Service: { Service: 'web' } }));
    store.apply(2, reg({ Node: 'b', Address: '10.0.0.2' }));
    let runs = 0;
    const q = track(
      store.blockingQuery({ minQueryIndex: 2 }, (ws) => {
        runs++;
        return store.serviceNodes('web', ws);
      }),
    );
    await tick();
    store.apply(3, reg({ Node: 'b', Address: '10.0.0.3' }));
    await tick();
    assert.equal(runs, 1);
    store.apply(4, reg({ Node: 'a', Address: '10.0.0.4' }));
    const r = await q.p;
    assert.equal(r.value[0]?.Address, '10.0.0.4');
    assert.equal(runs, 2);
  });

  test('wait: default 300 s, capped at 600 s, jitter up to wait/16', async () => {
    const limits = { defaultQueryTimeMs: 300_000, maxQueryTimeMs: 600_000 };
    assert.equal(queryWaitMs(undefined, { ...limits, random: () => 0 }), 300_000);
    assert.equal(queryWaitMs(0, { ...limits, random: () => 0 }), 300_000);
    assert.equal(queryWaitMs(10_000_000, { ...limits, random: () => 0 }), 600_000);
    assert.equal(queryWaitMs(1_600, { ...limits, random: () => 0.5 }), 1_650);
    assert.ok(queryWaitMs(600_000, { ...limits, random: () => 0.999999 }) < 600_000 + 37_500);

    const { store, clock } = newStore({ random: () => 0.5 });
    const q = track(store.blockingQuery({ minQueryIndex: 1, maxQueryTimeMs: 1_600 }, (ws) => store.nodes(ws)));
    await clock.advanceAsync(1_649);
    assert.equal(q.settled(), false);
    await clock.advanceAsync(1);
    assert.deepEqual(await q.p, { index: 1, value: [] });
  });

  test('abort rejects with MESHFED_ERR_ABORTED and unregisters the watcher and timer', async () => {
    const { store, clock } = newStore();
    const ac = new AbortController();
    const q = store.blockingQuery({ minQueryIndex: 1, signal: ac.signal }, (ws) => store.federationStateList(ws));
    await tick();
    assert.equal(store.watcherCount, 1);
    ac.abort(new Error('client went away'));
    await assert.rejects(q, { code: ErrorCode.ABORTED, message: /client went away/ });
    assert.equal(store.watcherCount, 0);
    assert.equal(clock.pending, 0);
    await assert.rejects(store.blockingQuery({ minQueryIndex: 1, signal: ac.signal }, (ws) => store.nodes(ws)), { code: ErrorCode.ABORTED });
  });

  test('restore wakes blocked queries, which return', async () => {
    const { store } = newStore();
    store.apply(3, fsUpsert({ Datacenter: 'dc1' }));
    const snap = store.snapshot();
    const q = store.blockingQuery({ minQueryIndex: 3 }, (ws) => store.federationStateGet('dc1', ws));
    await tick();
    store.restore(snap);
    assert.equal((await q).index, 3);
    assert.equal(store.watcherCount, 0);
  });

  test('1 000 watchers on different federation-state keys: writes wake exactly the right ones', async () => {
    const { store, clock } = newStore();
    const N = 1_000;
    for (let i = 0; i < N; i++) store.apply(i + 1, fsUpsert({ Datacenter: `dc${i}` }));
    const runs = new Array<number>(N).fill(0);
    let listRuns = 0;
    const ac = new AbortController();
    setMaxListeners(0, ac.signal); // one shared signal for 1 001 queries
    const min = store.tableIndex('federation-states');
    const queries = runs.map((_, i) =>
      track(
        store.blockingQuery({ minQueryIndex: min, signal: ac.signal }, (ws) => {
          runs[i] = (runs[i] ?? 0) + 1;
          return store.federationStateGet(`DC${i}`, ws);
        }),
      ),
    );
    const list = track(
      store.blockingQuery({ minQueryIndex: min, signal: ac.signal }, (ws) => {
        listRuns++;
        return store.federationStateList(ws);
      }),
    );
    await tick();
    assert.equal(store.watcherCount, N + 1);
    const total = (): number => runs.reduce((a, b) => a + b, 0);
    assert.equal(total(), N);

    // a write elsewhere (new key) and unrelated catalog writes wake only the table-level list watcher
    store.apply(N + 1, fsUpsert({ Datacenter: 'elsewhere' }));
    store.apply(N + 2, reg(gateway('gw1')));
    await list.p;
    await tick();
    assert.equal(listRuns, 2);
    assert.equal(total(), N, 'no per-key watcher re-ran');
    assert.equal(queries.filter((q) => q.settled()).length, 0);
    assert.equal(store.watcherCount, N);

    // a write to dc537 (any case) wakes exactly that watcher
    store.apply(N + 3, fsUpsert({ Datacenter: 'Dc537' }));
    const r = await queries[537]?.p;
    assert.equal(r?.value?.Datacenter, 'Dc537');
    await tick();
    assert.equal(total(), N + 1);
    assert.equal(runs[537], 2);
    assert.equal(queries.filter((q) => q.settled()).length, 1);
    assert.equal(store.watcherCount, N - 1);

    ac.abort();
    const results = await Promise.allSettled(queries.map((q) => q.p));
    assert.equal(results.filter((x) => x.status === 'rejected').length, N - 1);
    assert.equal(store.watcherCount, 0);
    assert.equal(clock.pending, 0);
  });
});
