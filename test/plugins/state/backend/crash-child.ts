/**
 * Child process of the crash test: opens the backend in `argv[2]` (snapshot every `argv[3]`
 * entries), then `argv[4]` concurrent appliers register nodes forever, writing each acknowledged
 * `<index> <node>` line to stdout. The parent kills it with SIGKILL.
 */
import { EmbeddedBackend } from '../../../../src/plugins/state/backend/index.js';
import { StateStore } from '../../../../src/plugins/state/store/index.js';
import { register } from './helpers.js';

const [dir, every, workers] = process.argv.slice(2);
if (dir === undefined) throw new Error('usage: crash-child <dir> [snapshotEvery] [workers]');
const backend = EmbeddedBackend.open({ dir, store: new StateStore(), snapshotEvery: Number(every ?? 100) });

async function worker(w: number): Promise<void> {
  for (let i = 0; ; i++) {
    const node = `n-${w}-${i}`;
    const { index } = await backend.apply(register(node, 'web'));
    process.stdout.write(`${index} ${node}\n`);
  }
}

await Promise.all(Array.from({ length: Number(workers ?? 8) }, (_, w) => worker(w)));
