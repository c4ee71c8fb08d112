import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createAgent, type Agent, type AgentPlugin } from '../../../src/index.js';
import { gossip, GossipTokens } from '../../../src/plugins/gossip/index.js';
import { http, HttpTokens } from '../../../src/plugins/http/index.js';
import { router } from '../../../src/plugins/router/index.js';
import { rpc, RpcTokens, StatusLeaderResponse, Empty } from '../../../src/plugins/rpc/index.js';
import { state, StateTokens, structs } from '../../../src/plugins/state/index.js';
import { tls } from '../../../src/plugins/tls/index.js';
import { createMemoryLogger, waitFor, type MemoryLogger } from '../../../src/testing/index.js';

const host = { hostname: 'h', privateIPv4: '127.0.0.1' };
const FAST = { probe_interval: '200ms', probe_timeout: '100ms', gossip_interval: '50ms', suspicion_mult: 3, push_pull_interval: '2s' };

async function server(name: string, dc: string, extra: Record<string, unknown> = {}, logger: MemoryLogger = createMemoryLogger('silent')): Promise<Agent> {
  const agent = await createAgent({
    config: { node_name: name, datacenter: dc, server: true, bind_addr: '127.0.0.1', ports: { server: 0, serf_lan: 0, serf_wan: 0, http: 0 }, gossip_lan: FAST, gossip_wan: FAST, ...extra },
    host,
    logger,
    plugins: [tls({ dev: true }), rpc(), http(), gossip({ serf: { leavePropagateDelayMs: 0 } }), router(), state()],
  });
  await agent.start();
  return agent;
}

const api = (a: Agent): string => `http://${a.services.get(HttpTokens.HttpApi).address}`;
const rpcAddr = (a: Agent): string => `127.0.0.1:${a.services.get(RpcTokens.Listener).address?.split(':').pop()}`;

async function put(a: Agent, path: string, body: unknown, headers: Record<string, string> = { 'content-type': 'application/json' }): Promise<{ status: number; text: string }> {
  const res = await fetch(`${api(a)}${path}`, { method: 'PUT', headers, body: typeof body === 'string' ? body : JSON.stringify(body) });
  return { status: res.status, text: await res.text() };
}

async function get<T = unknown>(a: Agent, path: string): Promise<{ status: number; json: T; headers: Headers }> {
  const res = await fetch(`${api(a)}${path}`);
  const text = await res.text();
  return { status: res.status, json: (text && res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text) as T, headers: res.headers };
}

const web = (node: string, extra: Record<string, unknown> = {}) => ({
  Node: node,
  Address: '10.0.0.5',
  Service: { Service: 'web', ID: `web-${node}`, Port: 80, Tags: ['v1'], Meta: { team: 'a' } },
  Checks: [{ CheckID: `web-${node}-alive`, Name: 'alive', Status: 'passing', ServiceID: `web-${node}` }],
  ...extra,
});

describe('state plugin: embedded server, catalog over HTTP and RPC', () => {
  let dir: string;
  let s1: Agent;
  const agents: Agent[] = [];
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'meshfed-state-plugin-'));
    s1 = await server('s1', 'dc1', { data_dir: join(dir, 's1') });
    agents.push(s1);
  });
  after(async () => {
    for (const a of agents.reverse()) await a.stop().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });

  test('the single embedded server leads; Status.Leader, /v1/status/* and the consul service say so', async () => {
    assert.equal(s1.status().leader, true);
    const pool = s1.services.get(RpcTokens.Pool);
    const leader = await pool.call({ datacenter: 'dc1', node: 's1', address: rpcAddr(s1) }, 'Status.Leader', {}, Empty, StatusLeaderResponse);
    assert.equal(leader, rpcAddr(s1));
    assert.equal((await get<string>(s1, '/v1/status/leader')).json, rpcAddr(s1));
    assert.deepEqual((await get<string[]>(s1, '/v1/status/peers')).json, [rpcAddr(s1)]);
    const consul = await waitFor(async () => {
      const r = await get<{ ServicePort: number; Node: string; Address: string }[]>(s1, '/v1/catalog/service/consul');
      return r.json.length === 1 ? r.json[0] : undefined;
    });
    assert.equal(consul?.Node, 's1');
    assert.equal(consul?.ServicePort, Number(rpcAddr(s1).split(':')[1]));
    const health = await get<{ Checks: { CheckID: string; Status: string }[] }[]>(s1, '/v1/health/service/consul');
    assert.deepEqual(health.json[0]?.Checks.map((c) => [c.CheckID, c.Status]), [['serfHealth', 'passing']]);
  });

  test('register, read back in Consul shapes with X-Consul headers, deregister', async () => {
    const r = await put(s1, '/v1/catalog/register', web('web1'));
    assert.equal(r.status, 200, r.text);
    assert.equal(r.text.trim(), 'true');
    const nodes = await get<{ Node: string; Datacenter: string; CreateIndex: number }[]>(s1, '/v1/catalog/nodes');
    assert.equal(nodes.status, 200);
    assert.deepEqual(nodes.json.map((n) => n.Node).sort(), ['s1', 'web1']);
    assert.ok(nodes.json.every((n) => n.Datacenter === 'dc1'));
    assert.match(nodes.headers.get('x-consul-index') ?? '', /^[1-9]\d*$/);
    assert.equal(nodes.headers.get('x-consul-knownleader'), 'true');
    assert.equal(nodes.headers.get('x-consul-lastcontact'), '0');
    const services = await get<Record<string, string[]>>(s1, '/v1/catalog/services');
    assert.deepEqual(services.json, { consul: [], web: ['v1'] });
    const svc = await get<{ ServiceID: string; ServicePort: number; ServiceMeta: Record<string, string> }[]>(s1, '/v1/catalog/service/web?tag=v1');
    assert.deepEqual(svc.json.map((s) => [s.ServiceID, s.ServicePort, s.ServiceMeta['team']]), [['web-web1', 80, 'a']]);
    assert.deepEqual((await get<unknown[]>(s1, '/v1/catalog/service/web?tag=v2')).json, []);
    assert.deepEqual((await get<unknown[]>(s1, '/v1/catalog/service/nothing')).json, []);

    await put(s1, '/v1/catalog/register', web('web2', { Checks: [{ CheckID: 'web-web2-alive', Name: 'alive', Status: 'critical', ServiceID: 'web-web2' }] }));
    const all = await get<{ Node: { Node: string } }[]>(s1, '/v1/health/service/web');
    assert.deepEqual(all.json.map((n) => n.Node.Node).sort(), ['web1', 'web2']);
    const passing = await get<{ Node: { Node: string } }[]>(s1, '/v1/health/service/web?passing');
    assert.deepEqual(passing.json.map((n) => n.Node.Node), ['web1']);

    assert.equal((await put(s1, '/v1/catalog/deregister', { Node: 'web2' })).status, 200);
    assert.deepEqual((await get<{ Node: { Node: string } }[]>(s1, '/v1/health/service/web')).json.map((n) => n.Node.Node), ['web1']);
  });

  test('a blocking query wakes on a relevant write only, and ?wait bounds it', async () => {
    const first = await get<unknown[]>(s1, '/v1/health/service/web');
    const index = Number(first.headers.get('x-consul-index'));
    const pending = get<{ Service: { Meta: Record<string, string> } }[]>(s1, `/v1/health/service/web?index=${index}&wait=20s`);
    // An unrelated write (another service) must not wake it; if it did, the response would be
    // computed now, before the relevant write below.
    const store = s1.services.get(StateTokens.Store);
    await waitFor(() => store.watcherCount > 0, { message: 'the blocking query did not start waiting' });
    assert.equal((await put(s1, '/v1/catalog/register', { Node: 'db1', Address: '10.0.0.9', Service: { Service: 'db', Port: 5432 } })).status, 200);
    assert.equal((await put(s1, '/v1/catalog/register', web('web1', { Service: { Service: 'web', ID: 'web-web1', Port: 80, Tags: ['v1'], Meta: { team: 'b' } } }))).status, 200);
    const woke = await pending;
    assert.equal(woke.json[0]?.Service.Meta['team'], 'b');
    assert.ok(Number(woke.headers.get('x-consul-index')) > index);

    const idle = Number(woke.headers.get('x-consul-index'));
    const t0 = Date.now();
    const timedOut = await get<unknown[]>(s1, `/v1/health/service/web?index=${idle}&wait=300ms`);
    assert.equal(timedOut.status, 200);
    assert.equal(Number(timedOut.headers.get('x-consul-index')), idle);
    assert.ok(Date.now() - t0 >= 290, 'returned before the wait ended');
  });

  test('bad input: 400 naming the field, nothing written', async () => {
    const store = s1.services.get(StateTokens.Store);
    const before = store.latestIndex();
    const cases: [unknown, RegExp, Record<string, string>?][] = [
      [{ Address: '10.0.0.1' }, /Node/],
      [{ Node: 'x', Address: 'not an address!' }, /invalid Address/],
      [{ Node: 'x', Address: '10.0.0.1', Checks: [{ CheckID: 'c', Status: 'sideways' }] }, /Checks\[0\]\.Status/],
      [{ Node: 'x', Address: '10.0.0.1', NodeMeta: { k: 'v'.repeat(600) } }, /NodeMeta/],
      [{ Node: 'x', Address: '10.0.0.1', Service: { Service: 'w', Port: '80' } }, /Service\.Port/],
      [{ Node: 'x', Address: '10.0.0.1', Service: { Service: 'w', Port: 80 }, Checks: [{ CheckID: 'c', Status: 'passing', ServiceID: 'nope' }] }, /ServiceID/],
      ['{"Node": "x", ', /invalid JSON/],
      ['[1,2]', /JSON object/],
      [{ Node: 'x', Address: '10.0.0.1' }, /Content-Type/, { 'content-type': 'text/xml' }],
    ];
    for (const [body, re, headers] of cases) {
      const r = await put(s1, '/v1/catalog/register', body, headers);
      assert.equal(r.status, 400, `${JSON.stringify(body)} → ${r.status} ${r.text}`);
      assert.match(r.text, re);
    }
    assert.equal(store.latestIndex(), before, 'a refused registration wrote something');
    assert.equal(store.nodes().value.some((n) => n.Node === 'x'), false);
    // curl's default form content type is accepted when the body is JSON (Consul's docs use it)
    assert.equal((await put(s1, '/v1/catalog/register', { Node: 'curl', Address: '10.0.0.7' }, { 'content-type': 'application/x-www-form-urlencoded' })).status, 200);

    for (const [q, re] of [
      ['?stale&consistent', /conflicting/],
      ['?index=abc', /Invalid index/],
      ['?index=1&wait=10', /Invalid wait/],
      ['?node-meta=novalue', /node-meta/],
    ] as const) {
      const r = await get<string>(s1, `/v1/catalog/nodes${q}`);
      assert.equal(r.status, 400, q);
      assert.match(r.json, re);
    }
  });

  test('?stale and ?consistent report their consistency', async () => {
    const stale = await get(s1, '/v1/catalog/nodes?stale');
    assert.equal(stale.headers.get('x-consul-effective-consistency'), 'stale');
    const consistent = await get(s1, '/v1/catalog/nodes?consistent');
    assert.equal(consistent.headers.get('x-consul-effective-consistency'), 'consistent');
  });

  test('catalog RPCs over msgpack-RPC from another agent, including a blocking ListNodes', async () => {
    const pool = s1.services.get(RpcTokens.Pool);
    const target = { datacenter: 'dc1', node: 's1', address: rpcAddr(s1) };
    const list = await pool.call(target, 'Catalog.ListNodes', {}, structs.DCSpecificRequest, structs.IndexedNodes);
    assert.ok(list.Nodes.some((n) => n.Node === 'web1'));
    assert.equal(list.KnownLeader, true);
    const waiting = pool.call(target, 'Catalog.ListNodes', { MinQueryIndex: list.Index, MaxQueryTime: 20e9 }, structs.DCSpecificRequest, structs.IndexedNodes, { blockingWaitMs: 20_000 });
    await pool.call(target, 'Catalog.Register', { Node: 'rpc1', Address: '10.1.1.1' }, structs.RegisterRequest, Empty);
    const after = await waiting;
    assert.ok(after.Index > list.Index);
    assert.ok(after.Nodes.some((n) => n.Node === 'rpc1'));
    await assert.rejects(pool.call(target, 'Catalog.Register', { Node: '', Address: '10.1.1.1' }, structs.RegisterRequest, Empty), /Node/);
  });

  test('a restart from the same data_dir restores every record and index', async () => {
    const before = s1.services.get(StateTokens.Store).snapshot();
    await s1.stop();
    agents.splice(agents.indexOf(s1), 1);
    const again = await server('s1', 'dc1', { data_dir: join(dir, 's1') });
    agents.push(again);
    const restored = again.services.get(StateTokens.Store).snapshot();
    // The restarted server re-registers itself as `consul` (same data: no new index); compare the rest.
    assert.deepEqual(restored.Tables['federation-states'], before.Tables['federation-states']);
    assert.deepEqual(restored.Tables.checks, before.Tables.checks);
    assert.deepEqual(
      restored.Tables.nodes.Records.filter((n) => n.Node !== 's1'),
      before.Tables.nodes.Records.filter((n) => n.Node !== 's1'),
    );
    assert.ok(restored.LatestIndex >= before.LatestIndex);
    s1 = again;
  });
});

describe('state plugin: memory mode and cross-datacenter reads', () => {
  const agents: Agent[] = [];
  after(async () => {
    for (const a of agents.reverse()) await a.stop().catch(() => undefined);
  });

  test('leadership hooks fire once every plugin has started, and the leader loses it at stop', async () => {
    const seen: string[] = [];
    const late: AgentPlugin = {
      name: 'late-plugin',
      apply({ hooks }) {
        hooks.onLeadershipAcquired.tapPromise({}, async (ctx) => {
          seen.push(`acquired:${ctx.datacenter}:${started ? 'after-start' : 'before-start'}`);
        });
        hooks.onLeadershipLost.tapPromise({}, async () => {
          seen.push('lost');
        });
        let started = false;
        return { start: () => void (started = true) };
      },
    };
    const a = await createAgent({
      config: { node_name: 'h1', datacenter: 'dc7', server: true, bind_addr: '127.0.0.1', ports: { server: 0, serf_lan: -1, serf_wan: -1, http: -1 } },
      host,
      logger: createMemoryLogger('silent'),
      plugins: [tls({ dev: true }), rpc(), state(), late],
    });
    await a.start();
    assert.deepEqual(seen, ['acquired:dc7:after-start']);
    await a.stop();
    assert.deepEqual(seen, ['acquired:dc7:after-start', 'lost']);
  });

  test('without data_dir the server warns once that state is in memory only', async () => {
    const logger = createMemoryLogger('warn');
    const a = await server('m1', 'dc1', {}, logger);
    agents.push(a);
    const warnings = logger.entries.filter((e) => /memory only/.test(e.msg));
    assert.equal(warnings.length, 1);
    assert.equal(a.services.get(StateTokens.Backend).kind, 'memory');
  });

  test('?dc= reads another datacenter through the router', async () => {
    const d1 = await server('d1', 'dc1');
    agents.push(d1);
    const e1 = await server('e1', 'dc2', { retry_join_wan: [d1.services.get(GossipTokens.Wan).advertiseAddress], retry_interval_wan: '200ms' });
    agents.push(e1);
    assert.equal((await put(e1, '/v1/catalog/register', { Node: 'only-in-dc2', Address: '10.2.0.1' })).status, 200);
    const nodes = await waitFor(async () => {
      const r = await get<{ Node: string; Datacenter: string }[]>(d1, '/v1/catalog/nodes?dc=dc2');
      return r.status === 200 && r.json.some((n) => n.Node === 'only-in-dc2') ? r.json : undefined;
    }, { timeoutMs: 15_000, message: 'dc1 could not read dc2 nodes' });
    assert.ok(nodes?.every((n) => n.Datacenter === 'dc2'));
    const unknown = await get<string>(d1, '/v1/catalog/nodes?dc=dc9');
    assert.equal(unknown.status, 500);
    assert.match(unknown.json, /No path to datacenter/);
    // a write for dc2 sent to dc1 lands in dc2
    assert.equal((await put(d1, '/v1/catalog/register?dc=dc2', { Node: 'via-dc1', Address: '10.2.0.2' })).status, 200);
    assert.ok(e1.services.get(StateTokens.Store).nodes().value.some((n) => n.Node === 'via-dc1'));
    assert.ok(!d1.services.get(StateTokens.Store).nodes().value.some((n) => n.Node === 'via-dc1'));
  });
});
