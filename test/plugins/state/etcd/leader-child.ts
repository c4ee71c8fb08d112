/**
 * Child process of the leader-kill test: `node leader-child.js <endpoints,comma-separated> <prefix>
 * <node>` starts an EtcdBackend, prints `leader` once it leads, then writes register commands
 * forever (4 concurrent appliers), printing `ack <index> <node>` per acknowledged write. The
 * parent kills it with SIGKILL, so it never resigns.
 *
 * Node 20's test runner runs every `.js` file under `dist/test`, this one included, without
 * arguments: then it does nothing and exits 0.
 */
import { makeBackend, register } from './cluster.js';

const [endpoints, prefix, node] = process.argv.slice(2);

if (endpoints !== undefined && prefix !== undefined && node !== undefined) {
  const { backend } = makeBackend(endpoints.split(','), node, { prefix });
  await backend.start(AbortSignal.timeout(10_000));
  while (!backend.isLeader()) await new Promise((r) => setTimeout(r, 20));
  process.stdout.write('leader\n');
  const worker = async (w: number): Promise<void> => {
    for (let i = 0; ; i++) {
      const name = `child-${w}-${i}`;
      try {
        const { index } = await backend.apply(register(name));
        process.stdout.write(`ack ${index} ${name}\n`);
      } catch (err) {
        process.stderr.write(`apply failed: ${(err as Error).message}\n`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  };
  await Promise.all([0, 1, 2, 3].map(worker));
}
