/**
 * Acknowledged writes/s of the etcd state backend vs a bare etcd3 client, same run, same etcd.
 *
 * Starts a 1-member etcd cluster on loopback (and a 3-member one with `--three`) through the test
 * harness, then measures, in `BENCH_ROUNDS` (default 7) rounds of `BENCH_SECONDS` (default 1.5)
 * per side:
 * - backend: `EtcdBackend.apply(register command)` on the leader (fenced txn + local apply),
 * - bare: `etcd3` `put` of the same JSON payload to a fresh key,
 * at concurrency 1 (sequential) and 16. Each round runs the two sides back to back (alternating
 * which goes first), so a round's ratio compares them under the same machine load; the verdict is
 * the median of the per-round ratios (target ≥ 0.8×), printed with the medians of the rates. On
 * these shared machines the load drifts by tens of percent within a minute: a ratio of medians
 * taken over different moments moved between 0.6× and 0.8× from run to run.
 *
 *   node dist/bench/state-etcd.js [--three]
 */
import { Etcd3 } from 'etcd3';
import { MessageType, type Command } from '../src/plugins/state/store/index.js';
import { EtcdCluster, makeBackend, waitLeader } from '../test/plugins/state/etcd/cluster.js';
import { machineBusyPercent, median } from './machine.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 1.5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);

/**
 * A catalog register of a node with one service and one check: a few hundred bytes of JSON. The
 * backend writes re-register 500 nodes in turn with a new service version each time (a real
 * change every write, a store of bounded size — the workload of bench/state.ts); registering ever
 * new nodes instead made the local store, and with it GC and snapshot work, grow through the
 * run, so later rounds measured a bigger store than earlier ones.
 */
function register(node: string, version = 0): Command {
  return {
    Type: MessageType.Register,
    Body: {
      Node: node,
      Address: '10.1.2.3',
      TaggedAddresses: { lan: '10.1.2.3', wan: '198.51.100.3' },
      NodeMeta: { rack: 'r12', zone: 'zone-a' },
      Service: { ID: 'web-1', Service: 'web', Tags: ['v1', 'primary'], Port: 8080, Meta: { version: `1.4.${version}` } },
      Checks: [{ CheckID: 'web-1-http', Name: 'HTTP on :8080', Status: 'passing', ServiceID: 'web-1', Output: 'HTTP GET http://10.1.2.3:8080/health: 200 OK' }],
    },
  };
}

/** Run `op` with `concurrency` loops for `seconds`; ops/s. */
async function measure(concurrency: number, seconds: number, op: (i: number) => Promise<unknown>): Promise<number> {
  let n = 0;
  const end = Date.now() + seconds * 1000;
  const t0 = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < end) await op(n++);
    }),
  );
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  return n / secs;
}

async function runCluster(members: number): Promise<void> {
  const cluster = await EtcdCluster.start(members);
  const tb = makeBackend(cluster.endpoints(), 'bench1', { prefix: '/bench/', leaseTtlSec: 5, requestTimeoutMs: 5000 });
  const bare = new Etcd3({ hosts: cluster.endpoints() });
  try {
    await tb.backend.start(AbortSignal.timeout(10_000));
    await waitLeader([tb]);
    const payload = JSON.stringify(register('bench-node-000000'));
    let seq = 0;
    const backendOp = (): Promise<unknown> => tb.backend.apply(register(`bench-node-${String(seq % 500).padStart(6, '0')}`, seq++));
    const bareOp = (): Promise<unknown> => bare.put(`/bare/${seq++}`).value(payload).exec();
    // warm up both paths, alternating, until the JIT has settled: grpc-js and the backend keep
    // getting cheaper for several seconds (one second of warm-up left the first measured side
    // paying up to 3× the CPU per call of the steady state)
    for (let w = 0; w < 3; w++) {
      for (const c of [1, 16]) {
        await measure(c, 1, backendOp);
        await measure(c, 1, bareOp);
      }
    }
    const results: Record<string, number[]> = {};
    for (let round = 0; round < ROUNDS; round++) {
      for (const c of [1, 16]) {
        // alternate which side goes first, so neither always runs on a "fresher" etcd
        const order = round % 2 === 0 ? (['backend', 'bare'] as const) : (['bare', 'backend'] as const);
        const rates: Record<string, number> = {};
        for (const side of order) (results[`${side} c=${c}`] ??= []).push((rates[side] = await measure(c, SECONDS, side === 'backend' ? backendOp : bareOp)));
        (results[`ratio c=${c}`] ??= []).push((rates['backend'] ?? 0) / (rates['bare'] ?? 1));
      }
    }
    console.log(`\netcd ${members} member(s), payload ${Buffer.byteLength(payload)} B, ${ROUNDS} rounds × ${SECONDS} s per side, medians:`);
    console.log('| concurrency | backend writes/s | bare put/s | **backend / bare (median of per-round ratios)** | per-round ratios |');
    console.log('|---|---|---|---|---|');
    for (const c of [1, 16]) {
      const b = median(results[`backend c=${c}`] ?? []);
      const p = median(results[`bare c=${c}`] ?? []);
      const ratios = results[`ratio c=${c}`] ?? [];
      console.log(`| ${c} | ${Math.round(b)} | ${Math.round(p)} | **${median(ratios).toFixed(2)}×** | ${ratios.map((r) => r.toFixed(2)).join(' ')} |`);
    }
    console.log(`backend status: ${JSON.stringify({ index: tb.backend.status().appliedIndex, seq: tb.backend.status().appliedSeq, snapshotIndex: tb.backend.status().snapshotIndex })}`);
  } finally {
    bare.close();
    await tb.backend.close();
    await cluster.stop();
  }
}

console.log(`machine busy before: ${await machineBusyPercent()} %`);
await runCluster(1);
if (process.argv.includes('--three')) await runCluster(3);
console.log(`machine busy after: ${await machineBusyPercent()} %`);
