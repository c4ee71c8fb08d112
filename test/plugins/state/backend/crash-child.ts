/**
 * Child process of the crash test: opens the backend in `argv[2]` (snapshot every `argv[3]`
 * entries), then `argv[4]` concurrent appliers register nodes forever, writing each acknowledged
 * `<index> <node>` line to stdout. The parent kills it with SIGKILL.
 *
 * Node 20's test runner treats every `.js` file under a `test` directory as a test file, so it
 * runs this one too, without arguments: then it does nothing and exits 0.
 */
import { EmbeddedBackend } from '../../../../src/plugins/state/backend/index.js';
import { StateStore } from '../../../../src/plugins/state/store/index.js';
import { register } from './helpers.js';

const [dir, every, workers] = process.argv.slice(2);

async function worker(backend: EmbeddedBackend, w: number): Promise<void> {
  for (let i = 0; ; i++) {
    const node = `n-${w}-${i}`;
    const { index } = await backend.apply(register(node, 'web'));
    process.stdout.write(`${index} ${node}\n`);
  }
}

if (dir !== undefined) {
  const backend = EmbeddedBackend.open({ dir, store: new StateStore(), snapshotEvery: Number(every ?? 100) });
  await Promise.all(Array.from({ length: Number(workers ?? 8) }, (_, w) => worker(backend, w)));
}
