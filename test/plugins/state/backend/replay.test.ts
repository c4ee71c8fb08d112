/**
 * Memory == disk: the embedded backend applies the caller's command object itself when the JSON
 * round trip reproduces it, else the parsed copy of the logged JSON. Whatever the input, the
 * store after a reopen (snapshot + log replay) must equal the live store exactly.
 */
import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import { EmbeddedBackend, isJsonFaithful, type EmbeddedBackendOptions } from '../../../../src/plugins/state/backend/embedded.js';
import { MessageType, StateErrorCode, StateStore, type Command } from '../../../../src/plugins/state/store/index.js';
import { tempDir } from './helpers.js';

function fresh(t: TestContext): string {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  return dir;
}

function open(t: TestContext, dir: string, extra: Partial<EmbeddedBackendOptions> = {}): { backend: EmbeddedBackend; store: StateStore } {
  const store = new StateStore();
  const backend = EmbeddedBackend.open({ dir, store, ...extra });
  t.after(() => backend.close());
  return { backend, store };
}

const reg = (body: unknown): Command => ({ Type: MessageType.Register, Body: body }) as Command;

class Body {
  Node = 'classy';
  Address = '10.0.0.9';
  NodeMeta = { b: '2', a: '1' };
}

/** Odd but possibly valid inputs; each says whether the backend must accept it. */
function oddCommands(): { name: string; command: Command; ok: boolean }[] {
  const nonEnumerableNode = { Address: '10.0.0.3' };
  Object.defineProperty(nonEnumerableNode, 'Node', { value: 'hidden', enumerable: false });
  const withToJSON = { Node: 'tojson-live', Address: '10.0.0.4', toJSON: () => ({ Node: 'tojson-disk', Address: '10.0.0.4' }) };
  const sparseTags: unknown[] = ['a'];
  sparseTags[2] = 'c';
  return [
    { name: 'plain', command: reg({ Node: 'n1', Address: '10.0.0.1', NodeMeta: { z: '1', a: '2' }, Service: { Service: 'web', Port: 80, Tags: ['b', 'a'] } }), ok: true },
    { name: 'undefined fields', command: reg({ Node: 'n2', Address: '10.0.0.2', ID: undefined, Datacenter: undefined, Service: { Service: 'api', Port: undefined, Meta: undefined } }), ok: true },
    { name: 'undefined meta value (JSON drops it)', command: reg({ Node: 'n2b', Address: '10.0.0.2', NodeMeta: { a: undefined, b: 'x' } }), ok: true },
    { name: 'extra unknown fields', command: reg({ Node: 'n3', Address: '10.0.0.3', Foo: { deep: [1, 2] }, Service: { Service: 'web', Bar: true, Port: 81 }, Checks: [{ CheckID: 'c1', Baz: null }] }), ok: true },
    { name: 'null fields', command: reg({ Node: 'n4', Address: '10.0.0.4', TaggedAddresses: null, NodeMeta: null, Service: null, Check: null, Checks: null }), ok: true },
    { name: 'port -0', command: reg({ Node: 'n5', Address: '10.0.0.5', Service: { Service: 'neg', Port: -0, TaggedAddresses: { lan: { Address: '10.0.0.5', Port: -0 } } } }), ok: true },
    { name: 'class instance body', command: reg(new Body()), ok: true },
    { name: 'toJSON (the logged form is what counts)', command: reg(withToJSON), ok: true },
    { name: 'non-enumerable Node (not in the JSON)', command: reg(nonEnumerableNode), ok: false },
    { name: 'number as string port', command: reg({ Node: 'n6', Address: '10.0.0.6', Service: { Service: 's', Port: '80' } }), ok: false },
    { name: 'string as number meta value', command: reg({ Node: 'n7', Address: '10.0.0.7', NodeMeta: { a: 1 } }), ok: false },
    // JSON writes NaN as null (= no port): the logged form is what counts, as before
    { name: 'NaN port', command: reg({ Node: 'n8', Address: '10.0.0.8', Service: { Service: 's', Port: Number.NaN } }), ok: true },
    { name: 'sparse tags', command: reg({ Node: 'n9', Address: '10.0.0.9', Service: { Service: 's', Tags: sparseTags } }), ok: false },
    // a Date is logged as its ISO string: the store sees that string, as replay will
    { name: 'Date as string field', command: reg({ Node: 'n10', Address: '10.0.0.10', Datacenter: new Date(0) }), ok: true },
    { name: 'BigInt (does not serialise)', command: reg({ Node: 'n11', Address: '10.0.0.11', Service: { Service: 's', Port: 1n } }), ok: false },
    { name: 'undefined command', command: undefined as unknown as Command, ok: false },
    {
      name: 'federation state with undefined, NaN and a Date deep inside',
      command: {
        Type: MessageType.FederationState,
        Body: {
          Op: 'upsert',
          State: {
            Datacenter: 'dc2',
            UpdatedAt: undefined,
            MeshGateways: [{ Node: { Node: 'gw', X: undefined, When: new Date(0) }, Service: { Port: Number.NaN, Tags: [undefined] }, Checks: [] }],
          },
        },
      } as unknown as Command,
      ok: true,
    },
    { name: 're-register n1 unchanged, keys in another order', command: reg({ Address: '10.0.0.1', Node: 'n1', NodeMeta: { a: '2', z: '1' }, Service: { Port: 80, Service: 'web', Tags: ['b', 'a'] } }), ok: true },
    { name: 'change only n1 service meta', command: reg({ Node: 'n1', Address: '10.0.0.1', NodeMeta: { a: '2', z: '1' }, Service: { Service: 'web', Port: 80, Tags: ['b', 'a'], Meta: { v: '2' } } }), ok: true },
  ];
}

describe('EmbeddedBackend replay equivalence', () => {
  for (const snapshotEvery of [1000, 3]) {
    test(`odd inputs: the store after reopen equals the live store (snapshot every ${snapshotEvery})`, async (t) => {
      const dir = fresh(t);
      const a = open(t, dir, { snapshotEvery });
      const cases = oddCommands();
      // one batch (group commit) and then one by one
      const batch = await Promise.allSettled(cases.map((c) => a.backend.apply(c.command)));
      const single: PromiseSettledResult<unknown>[] = [];
      for (const c of cases) single.push(...(await Promise.allSettled([a.backend.apply(c.command)])));
      for (const [k, c] of cases.entries()) {
        for (const r of [batch[k], single[k]]) assert.equal(r?.status, c.ok ? 'fulfilled' : 'rejected', `${c.name}: ${JSON.stringify(r?.status === 'rejected' ? String(r.reason) : r)}`);
      }
      const live = a.store.snapshot();
      const liveIndex = a.backend.latestIndex();
      assert.equal(liveIndex, 2 * cases.filter((c) => c.ok).length);
      // what the live store holds for the exotic inputs: what JSON carries, not what the object had
      assert.equal(a.store.nodes().value.find((n) => n.Node.startsWith('tojson'))?.Node, 'tojson-disk');
      assert.equal(a.store.nodes().value.find((n) => n.Node === 'hidden'), undefined);
      assert.deepEqual(a.store.nodes().value.find((n) => n.Node === 'n2b')?.Meta, { b: 'x' });
      assert.equal(a.store.serviceNodes('s').value.find((n) => n.Node === 'n8')?.ServicePort, 0);
      assert.equal(a.store.nodes().value.find((n) => n.Node === 'n10')?.Datacenter, '1970-01-01T00:00:00.000Z');
      assert.ok(Object.is(a.store.serviceNodes('neg').value[0]?.ServicePort, 0), 'port -0 is stored as 0, as replay sees it');
      const gw = a.store.federationStateGet('dc2').value?.MeshGateways[0] as unknown as { Node: Record<string, unknown>; Service: Record<string, unknown> };
      assert.deepEqual(gw.Node, { Node: 'gw', When: '1970-01-01T00:00:00.000Z' });
      assert.deepEqual(gw.Service, { Port: null, Tags: [null] });
      await new Promise((r) => setImmediate(r)); // let a due snapshot run
      if (snapshotEvery === 3) assert.ok(a.backend.stats.snapshots > 0);
      a.backend.close();

      const b = open(t, dir);
      assert.deepEqual(b.store.snapshot(), live);
      assert.equal(b.backend.latestIndex(), liveIndex);
      // and through a JSON snapshot too
      const c = new StateStore();
      c.restore(JSON.parse(JSON.stringify(live)) as typeof live);
      assert.deepEqual(c.snapshot(), live);
    });
  }

  test('rejections keep their store error (field named), use no index and are not logged', async (t) => {
    const dir = fresh(t);
    const a = open(t, dir);
    const [bad, good] = await Promise.allSettled([
      a.backend.apply(reg({ Node: 'x', Address: '10.0.0.1', Service: { Service: 's', Port: '80' } })),
      a.backend.apply(reg({ Node: 'y', Address: '10.0.0.2' })),
    ]);
    assert.ok(bad?.status === 'rejected');
    const why = bad.reason as { code?: string; field?: string };
    assert.equal(why.code, StateErrorCode.INVALID);
    assert.equal(why.field, 'Service.Port');
    assert.deepEqual(good, { status: 'fulfilled', value: { index: 1 } });
    await assert.rejects(a.backend.apply(undefined as unknown as Command), { code: StateErrorCode.INVALID, field: 'Body' });
    assert.equal(a.backend.latestIndex(), 1);
  });

  test('the snapshot runs after the batch is acknowledged; a crash before it loses nothing', async (t) => {
    const dir = fresh(t);
    const a = open(t, dir, { snapshotEvery: 5 });
    const acks = await Promise.all(Array.from({ length: 5 }, (_, i) => a.backend.apply(reg({ Node: `n${i}`, Address: '10.0.0.1' }))));
    assert.deepEqual(
      acks.map((r) => r.index),
      [1, 2, 3, 4, 5],
    );
    assert.equal(a.backend.stats.snapshots, 0, 'the acknowledgement did not wait for the snapshot');
    const live = a.store.snapshot();
    a.backend.close(); // "crash" before the scheduled snapshot ran
    await new Promise((r) => setImmediate(r));
    assert.equal(a.backend.stats.snapshots, 0);
    const b = open(t, dir, { snapshotEvery: 5 });
    assert.equal(b.backend.stats.replayed, 5);
    assert.deepEqual(b.store.snapshot(), live);
    await b.backend.apply(reg({ Node: 'n5', Address: '10.0.0.1' }));
    await new Promise((r) => setImmediate(r));
    assert.equal(b.backend.stats.snapshots, 1);
    assert.equal(b.backend.stats.snapshotIndex, 6);
  });

  test('isJsonFaithful: exactly the values the JSON round trip reproduces', () => {
    const ok: unknown[] = ['', 's', 0, 1.5, -3, true, false, null, [], {}, { a: [1, { b: 'c' }] }, Object.create(null) as unknown];
    for (const v of ok) assert.equal(isJsonFaithful(v), true, String(JSON.stringify(v)));
    const hidden = {};
    Object.defineProperty(hidden, 'x', { value: 1, enumerable: false });
    class C {
      a = 1;
    }
    const sparse: unknown[] = [];
    sparse[1] = 1;
    const deep: Record<string, unknown> = {};
    let cur = deep;
    for (let i = 0; i < 40; i++) cur = cur.n = {};
    const bad: unknown[] = [undefined, Number.NaN, Infinity, -0, 1n, Symbol('s'), () => 1, new Date(0), new C(), new Map(), { a: undefined }, [undefined], sparse, { toJSON: () => 1 }, hidden, deep];
    for (const v of bad) assert.equal(isJsonFaithful(v), false, typeof v === 'symbol' ? 'symbol' : String(v));
  });
});
