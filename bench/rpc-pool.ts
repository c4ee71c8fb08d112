/**
 * Pooled msgpack-RPC benchmark: `Status.Ping` calls/s and p50/p99 latency over ONE pooled yamux
 * session (type byte 4, a stream per concurrent caller), at concurrency 1 and 64.
 * meshfed (ConnPool client agent → rpc plugin server agent) vs the Go reference (net/rpc +
 * net-rpc-msgpackrpc + hashicorp/yamux, test/interop/rpcpool-peer), each client and server in
 * its own process, interleaved, median of 3. No TLS (the same for both). The meshfed client
 * warms up for 1 s under the same load before measuring (JIT); Go needs none.
 *
 *   node dist/bench/rpc-pool.js            # the whole comparison
 *   node dist/bench/rpc-pool.js server     # a meshfed server agent (prints "listening <addr>")
 *   node dist/bench/rpc-pool.js client ADDR CONC SECONDS
 */
import { fileURLToPath } from 'node:url';
import { createAgent, silentLogger } from '../src/index.js';
import { rpc, RpcTokens } from '../src/plugins/rpc/index.js';
import { tls } from '../src/plugins/tls/index.js';
import { buildGoPeer } from '../test/interop/go-peer.js';
import { machineBusyPercent, median, runToEnd, startServer } from './machine.js';

const SELF = fileURLToPath(import.meta.url);

async function server(): Promise<void> {
  const agent = await createAgent({
    config: { node_name: 'bench-server', server: true, bind_addr: '127.0.0.1', ports: { server: 0 }, limits: { rpc_max_conns_per_client: 0 } },
    logger: silentLogger(),
    plugins: [tls(), rpc()],
  });
  await agent.start();
  process.stdout.write(`listening ${agent.services.get(RpcTokens.Listener).address}\n`);
}

async function client(address: string, conc: number, seconds: number): Promise<void> {
  const agent = await createAgent({ config: { node_name: 'bench-client', server: true, ports: { server: -1 } }, logger: silentLogger(), plugins: [tls(), rpc()] });
  await agent.start();
  const pool = agent.services.get(RpcTokens.Pool);
  const target = { datacenter: 'dc1', node: 'bench-server', address };
  // Dial and warm the JIT outside the measurement (1 s of the same load): the Go client is
  // compiled ahead of time and dials before its clock starts.
  const warm = performance.now() + 1000;
  await Promise.all(
    Array.from({ length: conc }, async () => {
      while (performance.now() < warm) await pool.ping(target);
    }),
  );
  const lat: number[] = [];
  const start = performance.now();
  const end = start + seconds * 1000;
  await Promise.all(
    Array.from({ length: conc }, async () => {
      while (performance.now() < end) {
        const t0 = performance.now();
        await pool.ping(target);
        lat.push(performance.now() - t0);
      }
    }),
  );
  const elapsed = (performance.now() - start) / 1000;
  lat.sort((a, b) => a - b);
  const pct = (p: number): number => (lat.length ? (lat[Math.floor((lat.length - 1) * p)] as number) * 1000 : 0);
  process.stdout.write(`calls=${lat.length} seconds=${elapsed.toFixed(3)} p50_us=${pct(0.5).toFixed(1)} p99_us=${pct(0.99).toFixed(1)}\n`);
  await agent.stop();
}

interface Result {
  rate: number;
  p50: number;
  p99: number;
}

function parse(line: string): Result {
  const m = /calls=(\d+) seconds=([\d.]+) p50_us=([\d.]+) p99_us=([\d.]+)/.exec(line);
  if (!m) throw new Error(`unexpected client output: ${line}`);
  return { rate: Number(m[1]) / Number(m[2]), p50: Number(m[3]), p99: Number(m[4]) };
}

async function compare(): Promise<void> {
  const seconds = Number(process.env['BENCH_SECONDS'] ?? 3);
  const go = await buildGoPeer('rpcpool-peer');
  process.stdout.write(`machine busy before: ${await machineBusyPercent()}%\n`);
  const goSrv = await startServer(go, ['-mode', 'server', '-addr', '127.0.0.1:0']);
  const mfSrv = await startServer(process.execPath, [SELF, 'server']);
  const rows: string[] = [];
  try {
    for (const conc of [1, 64]) {
      const res: Record<'go' | 'meshfed', Result[]> = { go: [], meshfed: [] };
      for (let round = 0; round < 3; round++) {
        const order: ('go' | 'meshfed')[] = round % 2 ? ['meshfed', 'go'] : ['go', 'meshfed'];
        for (const which of order) {
          const out =
            which === 'go'
              ? await runToEnd(go, ['-mode', 'client', '-addr', goSrv.address, '-conc', String(conc), '-duration', `${seconds}s`])
              : await runToEnd(process.execPath, [SELF, 'client', mfSrv.address, String(conc), String(seconds)]);
          res[which].push(parse(out));
        }
      }
      const m = (which: 'go' | 'meshfed', k: keyof Result): number => median(res[which].map((r) => r[k]));
      rows.push(
        `| ${conc} | ${m('meshfed', 'rate').toFixed(0)} | ${m('go', 'rate').toFixed(0)} | **${(m('meshfed', 'rate') / m('go', 'rate')).toFixed(2)}×** | ` +
          `${m('meshfed', 'p50').toFixed(0)} / ${m('meshfed', 'p99').toFixed(0)} | ${m('go', 'p50').toFixed(0)} / ${m('go', 'p99').toFixed(0)} |`,
      );
    }
  } finally {
    goSrv.stop();
    mfSrv.stop();
  }
  process.stdout.write('| concurrency | meshfed calls/s | Go calls/s | meshfed/Go | meshfed p50/p99 µs | Go p50/p99 µs |\n|---|---|---|---|---|---|\n');
  process.stdout.write(`${rows.join('\n')}\n`);
  process.stdout.write(`machine busy after: ${await machineBusyPercent()}%\n`);
}

const [mode, a1, a2, a3] = process.argv.slice(2);
if (mode === 'server') await server();
else if (mode === 'client') await client(a1 as string, Number(a2), Number(a3));
else await compare();
