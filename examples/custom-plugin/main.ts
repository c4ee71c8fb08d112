/**
 * Runs the custom-plugin example: two agents in one process (dc1 and the "lab" datacenter) share
 * an in-memory network; the plugin's four taps are exercised through the kernel services, and
 * the results are printed. Exits non-zero if any result is not what the plugin promises.
 *
 *   node dist/examples/custom-plugin/main.js
 */
import { once } from 'node:events';
import { createAgent, Tokens } from '../../src/index.js';
import { MemoryNetwork, createMemoryLogger } from '../../src/testing/index.js';
import { ECHO_ALPN, gatewayPinning, PinningStatsToken } from './gateway-pinning.js';

const network = new MemoryNetwork();
const logger = createMemoryLogger('warn');
const plugin = gatewayPinning({
  pins: ['10.0.2.9:8443'],
  exclude: ['10.0.2.1:8443'],
  labDatacenter: 'lab',
  network,
  metricsSink: '127.0.0.1:9125',
});

const dc1 = await createAgent({ config: { datacenter: 'dc1', node_name: 'a1', server: true }, plugins: [plugin], logger });
const lab = await createAgent({ config: { datacenter: 'lab', node_name: 'l1', server: true }, plugins: [plugin], logger });
await dc1.start();
await lab.start();

// The lab agent accepts in-memory connections and dispatches them like its RPC listener would.
const stopListening = network.listen('l1.lab', (conn) => {
  const dispatcher = lab.services.get(Tokens.RpcAcceptDispatcher);
  if (!dispatcher.dispatch(conn, { key: ECHO_ALPN, remoteAddress: 'memory', tls: false, signal: lab.services.get(Tokens.AgentSignal) })) conn.destroy();
});

const failures: string[] = [];
const check = (what: string, ok: boolean, detail: string): void => {
  process.stdout.write(`${ok ? 'ok  ' : 'FAIL'} ${what}: ${detail}\n`);
  if (!ok) failures.push(what);
};

// onGatewayList
const gws = await dc1.services.get(Tokens.GatewayListResolver).resolve(
  ['10.0.2.1:8443', '10.0.2.5:8443', '10.0.2.9:8443'].map((address) => ({ address, datacenter: 'dc2', source: 'federation-state' as const })),
  { targetDatacenter: 'dc2', list: 'local' },
);
check('onGatewayList', gws.map((g) => g.address).join(',') === '10.0.2.9:8443,10.0.2.5:8443', gws.map((g) => g.address).join(', '));

// onDial + onRpcAccept: dc1 dials the lab server, which echoes.
const conn = await dc1.services.get(Tokens.Dialer).dial({ datacenter: 'lab', node: 'l1', alpn: ECHO_ALPN });
conn.write('hello lab\n');
const [reply] = (await once(conn, 'data')) as [Buffer];
conn.end();
check('onDial + onRpcAccept', reply.toString() === 'hello lab\n', JSON.stringify(reply.toString()));

// onXdsBuild
const xds = await dc1.services.get(Tokens.XdsBuilder).build(
  { listeners: [], clusters: [], endpoints: [], routes: [] },
  { proxy: { id: 'gw-1', kind: 'mesh-gateway', datacenter: 'dc1', meta: {} }, snapshot: undefined },
);
check('onXdsBuild', xds.clusters.some((c) => c.name === 'example-metrics-sink'), xds.clusters.map((c) => c.name).join(', '));

// Per-agent state: each agent has its own counters.
const s1 = dc1.services.get(PinningStatsToken);
const s2 = lab.services.get(PinningStatsToken);
check('per-agent state', s1.dials === 1 && s2.dials === 0 && s2.echoed === 1 && s1.echoed === 0, JSON.stringify({ dc1: s1, lab: s2 }));

stopListening();
await dc1.stop();
await lab.stop();
process.stdout.write(failures.length === 0 ? 'custom-plugin example: all hooks behaved\n' : `custom-plugin example: ${failures.length} failure(s)\n`);
process.exitCode = failures.length === 0 ? 0 : 1;
