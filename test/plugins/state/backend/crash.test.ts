import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { EmbeddedBackend } from '../../../../src/plugins/state/backend/index.js';
import { StateStore } from '../../../../src/plugins/state/store/index.js';
import { waitFor } from '../../../../src/testing/index.js';
import { tempDir } from './helpers.js';

const child = fileURLToPath(new URL('./crash-child.js', import.meta.url));

for (const [workers, every] of [
  [8, 97],
  [1, 1000],
] as const) {
  test(`kill -9 at a random moment loses no acknowledged write (${workers} appliers, snapshot every ${every})`, async (t) => {
    const { dir, cleanup } = tempDir();
    t.after(cleanup);
    const target = 200 + Math.floor(Math.random() * 400);
    t.diagnostic(`killing after >= ${target} acks`);
    const proc = spawn(process.execPath, [child, dir, String(every), String(workers)], { stdio: ['ignore', 'pipe', 'pipe'] });
    const acks = new Map<number, string>();
    let buf = '';
    let stderr = '';
    let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    proc.on('exit', (code, signal) => (exited = { code, signal }));
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    proc.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const [idx, node] = buf.slice(0, nl).split(' ');
        buf = buf.slice(nl + 1);
        acks.set(Number(idx), node as string);
        if (acks.size >= target && proc.exitCode === null && !proc.killed) proc.kill('SIGKILL');
      }
    });
    await waitFor(() => exited, { timeoutMs: 60_000, message: `child killed (acks ${acks.size}, stderr ${stderr})` });
    assert.equal(exited?.signal, 'SIGKILL', `child died on its own: ${stderr}`);
    assert.ok(acks.size >= target);

    const store = new StateStore();
    const backend = EmbeddedBackend.open({ dir, store });
    t.after(() => backend.close());
    const nodes = new Map(store.nodes().value.map((n) => [n.Node, n]));
    for (const [index, node] of acks) {
      const rec = nodes.get(node);
      assert.ok(rec, `acknowledged node ${node} (index ${index}) lost`);
      assert.equal(rec.CreateIndex, index);
      assert.equal(rec.ModifyIndex, index);
    }
    assert.ok(backend.latestIndex() >= Math.max(...acks.keys()));
    t.diagnostic(`acks ${acks.size}, recovered index ${backend.latestIndex()}, snapshot ${backend.stats.snapshotIndex}, replayed ${backend.stats.replayed}`);
  });
}
