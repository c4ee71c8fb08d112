import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createAgent, type Agent } from '../../../src/index.js';
import { acl } from '../../../src/plugins/acl/index.js';
import { gossip, GossipTokens } from '../../../src/plugins/gossip/index.js';
import { http, HttpTokens } from '../../../src/plugins/http/index.js';
import { router } from '../../../src/plugins/router/index.js';
import { rpc, RpcTokens, t, type AnySchema, type Infer } from '../../../src/plugins/rpc/index.js';
import { state, StateTokens, structs } from '../../../src/plugins/state/index.js';
import { tls } from '../../../src/plugins/tls/index.js';
import { createMemoryLogger, waitFor } from '../../../src/testing/index.js';

const host = { hostname: 'h', privateIPv4: '127.0.0.1' };
const FAST = { probe_interval: '200ms', probe_timeout: '100ms', gossip_interval: '50ms', suspicion_mult: 3, push_pull_interval: '2s' };
const ROOT = 'root-secret-cat-0001';
const T = {
  none: '',
  anonymous: 'anonymous',
  n1Web: 'n1web-secret-0002', // node n1 write + service web write
  webWrite: 'webwrite-secret-0003', // service web write only
  dbWrite: 'dbwrite-secret-0004', // service db write only
  allRead: 'allread-secret-0005', // every node and service read
  webRead: 'webread-secret-0006', // every node read, service web read
  n1Read: 'n1read-secret-0007', // node n1 read, every service read
  mgmt: ROOT,
};

const aclConfig = {
  enabled: true,
  default_policy: 'deny',
  tokens: { initial_management: ROOT },
  policies: [
    { name: 'n1-web', rules: { node: { n1: 'write' }, service: { web: 'write' } } },
    { name: 'web-write', rules: { service: { web: 'write' } } },
    { name: 'db-write', rules: { service: { db: 'write' } } },
    { name: 'all-read', rules: { node_prefix: { '': 'read' }, service_prefix: { '': 'read' } } },
    { name: 'web-read', rules: { node_prefix: { '': 'read' }, service: { web: 'read' } } },
    { name: 'n1-read', rules: { node: { n1: 'read' }, service_prefix: { '': 'read' } } },
  ],
  static_tokens: [
    { secret_id: T.n1Web, policies: ['n1-web'] },
    { secret_id: T.webWrite, policies: ['web-write'] },
    { secret_id: T.dbWrite, policies: ['db-write'] },
    { secret_id: T.allRead, policies: ['all-read'] },
    { secret_id: T.webRead, policies: ['web-read'] },
    { secret_id: T.n1Read, policies: ['n1-read'] },
  ],
};

async function server(name: string, dc: string, extra: Record<string, unknown> = {}, withGossip = false): Promise<Agent> {
  const agent = await createAgent({
    config: {
      node_name: name,
      datacenter: dc,
      server: true,
      bind_addr: '127.0.0.1',
      ports: { server: 0, serf_lan: withGossip ? 0 : -1, serf_wan: withGossip ? 0 : -1, http: 0 },
      ...(withGossip ? { gossip_lan: FAST, gossip_wan: FAST } : {}),
      ...extra,
    },
    host,
    logger: createMemoryLogger('silent'),
    plugins: [tls({ dev: true }), rpc(), http(), ...(withGossip ? [gossip({ serf: { leavePropagateDelayMs: 0 } })] : []), router(), acl(), state()],
  });
  await agent.start();
  return agent;
}

const api = (a: Agent): string => `http://${a.services.get(HttpTokens.HttpApi).address}`;

async function put(a: Agent, path: string, body: unknown, token = ''): Promise<{ status: number; text: string }> {
  const res = await fetch(`${api(a)}${path}`, { method: 'PUT', headers: { 'content-type': 'application/json', ...(token ? { 'x-consul-token': token } : {}) }, body: JSON.stringify(body) });
  return { status: res.status, text: await res.text() };
}

async function get<T = unknown>(a: Agent, path: string, headers: Record<string, string> = {}): Promise<{ status: number; json: T; text: string; filtered: boolean }> {
  const res = await fetch(`${api(a)}${path}`, { headers });
  const text = await res.text();
  const json = (res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : undefined) as T;
  return { status: res.status, json, text, filtered: res.headers.get('x-consul-results-filtered-by-acls') === 'true' };
}

const tok = (token: string): Record<string, string> => (token ? { 'X-Consul-Token': token } : {});

function rpcCall<S extends AnySchema>(a: Agent, method: string, args: unknown, request: AnySchema, response: S): Promise<Infer<S>> {
  const port = a.services.get(RpcTokens.Listener).address?.split(':').pop();
  return a.services.get(RpcTokens.Pool).call({ datacenter: 'dc1', node: a.status().node, address: `127.0.0.1:${port}` }, method, args, request, response);
}

const webOn = (node: string, id: string, extra: Record<string, unknown> = {}) => ({
  Node: node,
  Address: '10.0.0.1',
  Service: { ID: id, Service: 'web', Port: 80 },
  Checks: [{ CheckID: `${id}-alive`, Name: 'alive', Status: 'passing', ServiceID: id }],
  ...extra,
});

describe('catalog endpoints enforce ACLs (default deny)', () => {
  let a: Agent;
  before(async () => {
    a = await server('s1', 'dc1', { acl: aclConfig });
  });
  after(async () => {
    await a.stop();
  });
  const store = () => a.services.get(StateTokens.Store);
  const serviceIds = (node: string): string[] =>
    Object.keys(store().services().value)
      .flatMap((name) => store().serviceNodes(name).value)
      .filter((r) => r.Node === node)
      .map((r) => r.ServiceID)
      .sort();

  test('the server registers itself as "consul" without a token', async () => {
    await waitFor(() => store().serviceNodes('consul').value.length === 1, { message: 'consul never registered' });
  });

  test('register: a new node needs node:write, the service service:write; a refusal writes nothing', async () => {
    const before = store().latestIndex();
    for (const token of [T.none, T.anonymous, T.webWrite, T.allRead]) {
      const r = await put(a, '/v1/catalog/register', webOn('n1', 'web-1'), token);
      assert.equal(r.status, 403, `token ${token || '(none)'}`);
      assert.match(r.text, /^Permission denied/);
    }
    // node write without the service's write
    const db = await put(a, '/v1/catalog/register', { Node: 'n1', Address: '10.0.0.1', Service: { ID: 'db-1', Service: 'db', Port: 5432 } }, T.n1Web);
    assert.equal(db.status, 403);
    assert.match(db.text, /service:write.*"db"/);
    assert.equal(store().node('n1'), undefined);
    assert.equal(store().latestIndex(), before);
    assert.equal((await put(a, '/v1/catalog/register', webOn('n1', 'web-1'), T.n1Web)).status, 200);
    assert.deepEqual(serviceIds('n1'), ['web-1']);
  });

  test('register on an existing, unchanged node needs no node:write; changing the node does', async () => {
    assert.equal((await put(a, '/v1/catalog/register', webOn('n1', 'web-2'), T.webWrite)).status, 200);
    assert.equal((await put(a, '/v1/catalog/register', { ...webOn('n1', 'web-3'), SkipNodeUpdate: true, NodeMeta: { ignored: 'yes' } }, T.webWrite)).status, 200);
    const moved = await put(a, '/v1/catalog/register', webOn('n1', 'web-4', { Address: '10.9.9.9' }), T.webWrite);
    assert.equal(moved.status, 403);
    assert.match(moved.text, /node:write.*"n1"/);
    const meta = await put(a, '/v1/catalog/register', webOn('n1', 'web-4', { NodeMeta: { rack: 'r1' } }), T.webWrite);
    assert.equal(meta.status, 403);
    assert.equal(store().node('n1')?.Address, '10.0.0.1');
    assert.deepEqual(serviceIds('n1'), ['web-1', 'web-2', 'web-3']);
    // another service on the same node: service:write on it is enough
    assert.equal((await put(a, '/v1/catalog/register', { Node: 'n1', Address: '10.0.0.1', Service: { ID: 'db-1', Service: 'db', Port: 5432 } }, T.dbWrite)).status, 200);
    // taking over web-1's ID with another service needs write on web too
    const takeover = await put(a, '/v1/catalog/register', { Node: 'n1', Address: '10.0.0.1', Service: { ID: 'web-1', Service: 'db', Port: 5432 } }, T.dbWrite);
    assert.equal(takeover.status, 403);
    assert.match(takeover.text, /service:write.*"web"/);
    assert.equal(store().nodeService('n1', 'web-1')?.Service, 'web');
  });

  test('register: node checks need node:write, service checks write on their service', async () => {
    const nodeCheck = { Node: 'n1', Address: '10.0.0.1', Checks: [{ CheckID: 'mem', Name: 'mem', Status: 'passing' }] };
    assert.equal((await put(a, '/v1/catalog/register', nodeCheck, T.webWrite)).status, 403);
    assert.equal(store().nodeCheck('n1', 'mem'), undefined);
    assert.equal((await put(a, '/v1/catalog/register', nodeCheck, T.n1Web)).status, 200);
    const webCheck = { Node: 'n1', Address: '10.0.0.1', Checks: [{ CheckID: 'web-2-extra', Name: 'extra', Status: 'warning', ServiceID: 'web-2' }] };
    assert.equal((await put(a, '/v1/catalog/register', webCheck, T.dbWrite)).status, 403);
    assert.equal((await put(a, '/v1/catalog/register', webCheck, T.webWrite)).status, 200);
    assert.equal(store().nodeCheck('n1', 'web-2-extra')?.ServiceName, 'web');
  });

  test('register over RPC: the Token field decides; "Permission denied" / "ACL not found"', async () => {
    const req = (token: string) => ({ ...webOn('n2', 'web-n2', { Address: '10.0.0.2' }), Token: token });
    await assert.rejects(rpcCall(a, 'Catalog.Register', req(T.webWrite), structs.RegisterRequest, t.struct({})), /^.*Permission denied/);
    await assert.rejects(rpcCall(a, 'Catalog.Register', req('no-such-secret'), structs.RegisterRequest, t.struct({})), /ACL not found/);
    assert.equal(store().node('n2'), undefined);
    await rpcCall(a, 'Catalog.Register', req(T.mgmt), structs.RegisterRequest, t.struct({}));
    assert.deepEqual(serviceIds('n2'), ['web-n2']);
  });

  test('deregister: service → service:write; service check → its service; node check and node → node:write', async () => {
    const dereg = (body: Record<string, unknown>, token: string) => put(a, '/v1/catalog/deregister', { Node: 'n1', ...body }, token);
    assert.equal((await dereg({ ServiceID: 'web-3' }, T.dbWrite)).status, 403);
    assert.equal((await dereg({ ServiceID: 'web-3' }, T.none)).status, 403);
    assert.equal((await dereg({ ServiceID: 'web-3' }, T.webWrite)).status, 200);
    assert.equal((await dereg({ CheckID: 'web-2-extra' }, T.dbWrite)).status, 403);
    assert.equal((await dereg({ CheckID: 'web-2-extra' }, T.webWrite)).status, 200);
    assert.equal(store().nodeCheck('n1', 'web-2-extra'), undefined);
    assert.equal((await dereg({ CheckID: 'mem' }, T.webWrite)).status, 403);
    assert.ok(store().nodeCheck('n1', 'mem'));
    assert.equal((await dereg({}, T.webWrite)).status, 403);
    assert.ok(store().node('n1'));
    // nothing to delete: succeeds without writing
    const idx = store().latestIndex();
    assert.equal((await dereg({ ServiceID: 'no-such-service' }, T.none)).status, 200);
    assert.equal(store().latestIndex(), idx);
    // node:write covers everything on the node, even a service it may not write
    assert.equal((await dereg({ ServiceID: 'db-1' }, T.n1Web)).status, 200);
    assert.deepEqual(serviceIds('n1'), ['web-1', 'web-2']);
    // over RPC
    await assert.rejects(rpcCall(a, 'Catalog.Deregister', { Node: 'n2', Token: T.n1Web }, structs.DeregisterRequest, t.struct({})), /Permission denied/);
    assert.ok(store().node('n2'));
  });

  test('reads are filtered; the flag and header are set only for a real token', async () => {
    await put(a, '/v1/catalog/register', { Node: 'n3', Address: '10.0.0.3', Service: { ID: 'db-3', Service: 'db', Port: 5432 } }, T.mgmt);
    const nodes = async (token: string) => {
      const r = await get<{ Node: string }[]>(a, '/v1/catalog/nodes', tok(token));
      return { names: r.json.map((n) => n.Node).sort(), filtered: r.filtered };
    };
    assert.deepEqual(await nodes(T.mgmt), { names: ['n1', 'n2', 'n3', 's1'], filtered: false });
    assert.deepEqual(await nodes(T.allRead), { names: ['n1', 'n2', 'n3', 's1'], filtered: false });
    assert.deepEqual(await nodes(T.n1Read), { names: ['n1'], filtered: true });
    // anonymous sees nothing and is not told that anything is hidden
    assert.deepEqual(await nodes(T.none), { names: [], filtered: false });
    assert.deepEqual(await nodes(T.anonymous), { names: [], filtered: false });

    const services = async (token: string) => {
      const r = await get<Record<string, string[]>>(a, '/v1/catalog/services', tok(token));
      return { names: Object.keys(r.json).sort(), filtered: r.filtered };
    };
    assert.deepEqual(await services(T.mgmt), { names: ['consul', 'db', 'web'], filtered: false });
    assert.deepEqual(await services(T.webRead), { names: ['web'], filtered: true });
    assert.deepEqual(await services(T.none), { names: [], filtered: false });

    const instances = async (path: string, token: string) => {
      const r = await get<({ Node: string } | { Node: { Node: string } })[]>(a, path, tok(token));
      return { nodes: r.json.map((x) => (typeof x.Node === 'string' ? x.Node : x.Node.Node)).sort(), filtered: r.filtered };
    };
    for (const path of ['/v1/catalog/service/web', '/v1/health/service/web']) {
      assert.deepEqual(await instances(path, T.mgmt), { nodes: ['n1', 'n1', 'n2'], filtered: false }, path);
      assert.deepEqual(await instances(path, T.webRead), { nodes: ['n1', 'n1', 'n2'], filtered: false }, path);
      assert.deepEqual(await instances(path, T.n1Read), { nodes: ['n1', 'n1'], filtered: true }, path);
      assert.deepEqual(await instances(`${path}?token=${T.n1Read}`, T.none), { nodes: ['n1', 'n1'], filtered: true }, path);
      assert.deepEqual(await instances(path, T.none), { nodes: [], filtered: false }, path);
    }
    const db = await get<unknown[]>(a, '/v1/catalog/service/db', { Authorization: `Bearer ${T.webRead}` });
    assert.deepEqual([db.json.length, db.filtered], [0, true]);
    const unknown = await get(a, '/v1/catalog/nodes', tok('no-such-secret'));
    assert.equal(unknown.status, 403);
    assert.match(unknown.text, /ACL not found/);
  });

  test('RPC reads: QueryMeta.ResultsFilteredByACLs, Internal.ServiceDump per entry', async () => {
    const gw = (node: string) => ({ Node: node, Address: '10.1.0.1', Service: { ID: 'mgw', Service: 'mesh-gateway', Kind: 'mesh-gateway', Port: 8443 } });
    await put(a, '/v1/catalog/register', gw('gw-n1'), T.mgmt);
    await put(a, '/v1/catalog/register', { ...gw('n1'), Address: '10.0.0.1' }, T.mgmt);
    const dump = (token: string) => rpcCall(a, 'Internal.ServiceDump', { ServiceKind: 'mesh-gateway', UseServiceKind: true, Token: token }, structs.ServiceDumpRequest, structs.IndexedCheckServiceNodes);
    const all = await dump(T.mgmt);
    assert.deepEqual([all.Nodes.length, all.ResultsFilteredByACLs], [2, false]);
    const n1 = await dump(T.n1Read);
    assert.deepEqual([n1.Nodes.map((n) => n.Node?.Node), n1.ResultsFilteredByACLs], [['n1'], true]);
    const none = await dump(T.none);
    assert.deepEqual([none.Nodes.length, none.ResultsFilteredByACLs], [0, false]);
    const list = await rpcCall(a, 'Catalog.ListNodes', { Token: T.n1Read }, structs.DCSpecificRequest, structs.IndexedNodes);
    assert.deepEqual([list.Nodes.map((n) => n.Node), list.ResultsFilteredByACLs], [['n1'], true]);
    const health = await rpcCall(a, 'Health.ServiceNodes', { ServiceName: 'web', Token: T.n1Read }, structs.ServiceSpecificRequest, structs.IndexedCheckServiceNodes);
    assert.deepEqual([health.Nodes.length, health.ResultsFilteredByACLs], [2, true]);
  });
});

describe('catalog ACLs: disabled changes nothing; ?dc= forwards the token', () => {
  const agents: Agent[] = [];
  after(async () => {
    for (const x of agents.reverse()) await x.stop().catch(() => undefined);
  });

  test('with acl.enabled=false every request is allowed and nothing is flagged', async () => {
    const a = await server('o1', 'dc1', { acl: { ...aclConfig, enabled: false } });
    agents.push(a);
    assert.equal((await put(a, '/v1/catalog/register', webOn('n1', 'web-1'))).status, 200);
    assert.equal((await put(a, '/v1/catalog/register', webOn('n1', 'web-2'), 'whatever-secret')).status, 200);
    const nodes = await get<{ Node: string }[]>(a, '/v1/catalog/nodes');
    assert.ok(nodes.json.some((n) => n.Node === 'n1'));
    assert.equal(nodes.filtered, false);
    const svc = await get<unknown[]>(a, '/v1/catalog/service/web', tok('whatever-secret'));
    assert.deepEqual([svc.json.length, svc.filtered], [2, false]);
    assert.equal((await put(a, '/v1/catalog/deregister', { Node: 'n1' })).status, 200);
    await waitFor(() => a.services.get(StateTokens.Store).serviceNodes('consul').value.length === 1);
  });

  test('a request for another datacenter is checked there, with the token it carried', async () => {
    const d1 = await server('d1', 'dc1', {}, true);
    agents.push(d1);
    const e1 = await server('e1', 'dc2', { acl: aclConfig, retry_join_wan: [d1.services.get(GossipTokens.Wan).advertiseAddress], retry_interval_wan: '200ms' }, true);
    agents.push(e1);
    await waitFor(async () => (await get(d1, '/v1/catalog/nodes?dc=dc2', tok(T.mgmt))).status === 200, { timeoutMs: 15_000, message: 'dc1 could not reach dc2' });
    const refused = await put(d1, '/v1/catalog/register?dc=dc2', webOn('n1', 'web-1'), T.webWrite);
    assert.equal(refused.status, 403);
    assert.match(refused.text, /Permission denied/);
    assert.equal((await put(d1, '/v1/catalog/register?dc=dc2', webOn('n1', 'web-1'), T.n1Web)).status, 200);
    assert.ok(e1.services.get(StateTokens.Store).node('n1'));
    const nodes = await get<{ Node: string }[]>(d1, '/v1/catalog/nodes?dc=dc2', tok(T.n1Read));
    assert.deepEqual([nodes.json.map((n) => n.Node), nodes.filtered], [['n1'], true]);
    assert.deepEqual((await get<unknown[]>(d1, '/v1/catalog/nodes?dc=dc2')).json, []);
  });
});
