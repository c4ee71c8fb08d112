import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import Database from 'better-sqlite3';
import { BackendErrorCode, EmbeddedBackend, type EmbeddedBackendOptions } from '../../../../src/plugins/state/backend/index.js';
import { StateErrorCode, StateStore } from '../../../../src/plugins/state/store/index.js';
import { deregister, register, tempDir } from './helpers.js';

/** Open a backend on a fresh store; closed by the test's cleanup. */
function open(t: TestContext, dir: string, extra: Partial<EmbeddedBackendOptions> = {}): { backend: EmbeddedBackend; store: StateStore } {
  const store = new StateStore();
  const backend = EmbeddedBackend.open({ dir, store, ...extra });
  t.after(() => backend.close());
  return { backend, store };
}

/** The error of a settled promise that must have rejected. */
function reason(r: PromiseSettledResult<unknown> | undefined): { code?: string; message: string } {
  if (r?.status !== 'rejected') throw new Error(`expected a rejection, got ${JSON.stringify(r)}`);
  return r.reason as { code?: string; message: string };
}

function fresh(t: TestContext): string {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  return dir;
}

describe('EmbeddedBackend', () => {
  test('apply, close, reopen restores state and every index', async (t) => {
    const dir = fresh(t);
    const a = open(t, dir);
    assert.deepEqual(await a.backend.apply(register('web1', 'web')), { index: 1 });
    assert.deepEqual(await a.backend.apply(register('web2', 'web')), { index: 2 });
    assert.deepEqual(await a.backend.apply(register('web1', 'api')), { index: 3 });
    assert.deepEqual(await a.backend.apply(deregister('web2')), { index: 4 });
    assert.deepEqual(await a.backend.apply(deregister('nobody')), { index: 5 }); // no-op still logged
    const before = a.store.snapshot();
    assert.equal(a.store.latestIndex(), 5);
    a.backend.close();
    await assert.rejects(a.backend.apply(register('x')), { code: BackendErrorCode.CLOSED });

    const b = open(t, dir);
    assert.deepEqual(b.store.snapshot(), before);
    assert.equal(b.store.latestIndex(), 5);
    assert.equal(b.backend.latestIndex(), 5);
    assert.equal(b.backend.stats.replayed, 5);
    const [web1] = b.store.nodes().value;
    assert.equal(web1?.Node, 'web1');
    assert.equal(web1?.CreateIndex, 1);
    assert.deepEqual(await b.backend.apply(register('web3')), { index: 6 });
  });

  test('snapshot every N entries truncates the log; reopen restores snapshot + tail', async (t) => {
    const dir = fresh(t);
    const a = open(t, dir, { snapshotEvery: 10 });
    for (let i = 1; i <= 25; i++) await a.backend.apply(register(`n${i}`, 'web'));
    assert.equal(a.backend.stats.snapshots, 2);
    assert.equal(a.backend.stats.snapshotIndex, 20);
    const before = a.store.snapshot();
    a.backend.close();

    const db = new Database(join(dir, 'state.db'), { readonly: true });
    const rows = db.prepare<[], { idx: number }>('SELECT idx FROM log ORDER BY idx').all();
    const snap = db.prepare<[], { idx: number }>('SELECT idx FROM snapshot').get();
    db.close();
    assert.deepEqual(
      rows.map((r) => r.idx),
      [21, 22, 23, 24, 25],
    );
    assert.equal(snap?.idx, 20);

    const b = open(t, dir);
    assert.deepEqual(b.store.snapshot(), before);
    assert.equal(b.backend.stats.replayed, 5);
    assert.equal(b.store.nodes().value.find((n) => n.Node === 'n20')?.CreateIndex, 20);
  });

  test('an invalid command is rejected, not logged, and uses no index', async (t) => {
    const dir = fresh(t);
    const a = open(t, dir);
    await a.backend.apply(register('web1'));
    const bad = { Type: 0, Body: { Node: 'web2', Address: 'not an address!' } } as const;
    const results = await Promise.allSettled([a.backend.apply(bad), a.backend.apply(register('web3')), a.backend.apply({ Type: 99, Body: {} } as never)]);
    assert.equal(reason(results[0]).code, StateErrorCode.INVALID);
    assert.deepEqual(results[1], { status: 'fulfilled', value: { index: 2 } });
    assert.equal(reason(results[2]).code, StateErrorCode.UNKNOWN_COMMAND);
    assert.equal(a.backend.latestIndex(), 2);
    a.backend.close();
    const b = open(t, dir);
    assert.deepEqual(
      b.store.nodes().value.map((n) => n.Node),
      ['web1', 'web3'],
    );
    assert.equal(b.backend.stats.replayed, 2);
  });

  test('group commit: concurrent applies share one transaction', async (t) => {
    const dir = fresh(t);
    const a = open(t, dir);
    const results = await Promise.all(Array.from({ length: 64 }, (_, i) => a.backend.apply(register(`n${i}`))));
    assert.deepEqual(
      results.map((r) => r.index),
      Array.from({ length: 64 }, (_, i) => i + 1),
    );
    assert.equal(a.backend.stats.transactions, 1);
    assert.equal(a.backend.stats.maxBatch, 64);
    // sequential applies commit one transaction each
    for (let i = 0; i < 3; i++) await a.backend.apply(register(`s${i}`));
    assert.equal(a.backend.stats.transactions, 4);
    assert.equal(a.backend.stats.entries, 67);
  });

  test('writers woken by a flush that write again still share one transaction', async (t) => {
    const a = open(t, fresh(t));
    const writers = 16;
    const rounds = 4;
    await Promise.all(
      Array.from({ length: writers }, async (_, w) => {
        for (let r = 0; r < rounds; r++) await a.backend.apply(register(`w${w}-r${r}`));
      }),
    );
    assert.equal(a.backend.stats.entries, writers * rounds);
    assert.equal(a.backend.stats.transactions, rounds);
    assert.equal(a.backend.stats.maxBatch, writers);
  });

  test('a sequential writer flushes back to back but does not starve the event loop', async (t) => {
    const a = open(t, fresh(t));
    let turns = 0;
    let spinning = true;
    const spin = (): void => {
      turns++;
      if (spinning) setImmediate(spin);
    };
    setImmediate(spin);
    const start = performance.now();
    let writes = 0;
    while (performance.now() - start < 30 || writes < 5) await a.backend.apply(register(`seq${writes++}`));
    const ms = performance.now() - start;
    spinning = false;
    assert.equal(a.backend.stats.transactions, writes); // one transaction each: nothing else to group with
    // the loop got a turn at least every millisecond or write (back-to-back flushes stop after 1 ms)
    assert.ok(turns >= 3, `${turns} event-loop turns during ${writes} writes in ${ms.toFixed(1)} ms`);
  });

  test('a failed write (disk full) rejects the whole batch, which is neither visible nor durable', async (t) => {
    const dir = fresh(t);
    const a = open(t, dir, { maxPageCount: 16 });
    await a.backend.apply(register('small'));
    const before = a.store.snapshot();
    const big: Record<string, string> = {};
    for (let k = 0; k < 64; k++) big[`k${k}`] = 'x'.repeat(512);
    const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => a.backend.apply(register(`big${i}`, undefined, big))));
    for (const r of results) {
      assert.equal(reason(r).code, BackendErrorCode.WRITE);
      assert.match(reason(r).message, /full/);
    }
    assert.deepEqual(a.store.snapshot(), before);
    assert.equal(a.backend.latestIndex(), 1);
    assert.equal(a.backend.stats.failedBatches, 1);
    // still usable for writes that fit
    assert.deepEqual(await a.backend.apply(register('small2')), { index: 2 });
    a.backend.close();
    const b = open(t, dir);
    assert.deepEqual(
      b.store.nodes().value.map((n) => n.Node),
      ['small', 'small2'],
    );
  });

  test('a corrupt or missing log entry refuses to start, naming the index', async (t) => {
    const dir = fresh(t);
    const a = open(t, dir);
    for (let i = 1; i <= 4; i++) await a.backend.apply(register(`n${i}`));
    a.backend.close();
    const db = new Database(join(dir, 'state.db'));
    db.prepare('UPDATE log SET command = ? WHERE idx = 3').run('{not json');
    db.close();
    assert.throws(() => EmbeddedBackend.open({ dir, store: new StateStore() }), (err: Error & { code?: string }) => {
      assert.equal(err.code, BackendErrorCode.CORRUPT);
      assert.match(err.message, /index 3 is not valid JSON/);
      return true;
    });
    const db2 = new Database(join(dir, 'state.db'));
    db2.prepare('UPDATE log SET command = ? WHERE idx = 3').run(JSON.stringify({ Type: 0, Body: { Node: '', Address: 'x' } }));
    db2.close();
    assert.throws(() => EmbeddedBackend.open({ dir, store: new StateStore() }), /log entry at index 3 does not apply/);
    const db3 = new Database(join(dir, 'state.db'));
    db3.prepare('DELETE FROM log WHERE idx = 3').run();
    db3.close();
    assert.throws(() => EmbeddedBackend.open({ dir, store: new StateStore() }), /log entry at index 3 is missing/);
  });

  test('refuses a store that was already written', (t) => {
    const dir = fresh(t);
    const store = new StateStore();
    store.apply(1, register('x'));
    assert.throws(() => EmbeddedBackend.open({ dir, store }), { code: BackendErrorCode.OPEN });
  });
});
