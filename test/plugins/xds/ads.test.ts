import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { createAgent, type Agent, type AgentPlugin } from '../../../src/index.js';
import type { XdsResources } from '../../../src/core/types.js';
import { http, HttpTokens } from '../../../src/plugins/http/index.js';
import { rpc } from '../../../src/plugins/rpc/index.js';
import { state, StateTokens } from '../../../src/plugins/state/index.js';
import { MessageType, type RegisterRequest } from '../../../src/plugins/state/store/index.js';
import { tls } from '../../../src/plugins/tls/index.js';
import { TypeUrl, XdsCodec, xds, XdsTokens } from '../../../src/plugins/xds/index.js';
import { createMemoryLogger, waitFor, type MemoryLogger } from '../../../src/testing/index.js';
import { gatewayRegistration, serverRegistration, WANFED_META } from './fixtures.js';

const CDS = TypeUrl.Cluster;
const EDS = TypeUrl.ClusterLoadAssignment;
const LDS = TypeUrl.Listener;
const RDS = TypeUrl.RouteConfiguration;

interface Response {
  version_info: string;
  resources: { type_url: string; value: Buffer }[];
  type_url: string;
  nonce: string;
}

interface Request {
  node?: { id: string };
  type_url: string;
  version_info?: string;
  response_nonce?: string;
  resource_names?: string[];
  error_detail?: { code: number; message: string };
}

/** Narrow a value `waitFor` resolved with (it only resolves with truthy values). */
function present<T>(v: T | undefined): T {
  assert.ok(v !== undefined);
  return v;
}

/** A test plugin tapping onXdsBuild: two route configs for every proxy (used as a barrier), an extra cluster or a broken one on request (gateway meta). */
function testHooks(): AgentPlugin {
  return {
    name: 'xds-test-hooks',
    apply({ hooks }) {
      hooks.onXdsBuild.tap({}, (res: XdsResources, ctx) => {
        const clusters = [...res.clusters];
        if (ctx.proxy.meta['extra'] === '1') {
          clusters.push({ '@type': CDS, name: 'extra.hook.cluster', type: 'STATIC', connect_timeout: { seconds: 1 } });
        }
        if (ctx.proxy.meta['broken'] === '1') clusters.push({ '@type': CDS, name: 'broken', conect_timeout: { seconds: 1 } });
        return { ...res, clusters, routes: [...res.routes, { '@type': RDS, name: 'barrier-a' }, { '@type': RDS, name: 'barrier-b' }] };
      });
    },
  };
}

/** An ADS client over a real grpc-js channel, recording every response in order. */
class AdsClient {
  readonly responses: Response[] = [];
  status: grpc.StatusObject | undefined;
  readonly #client: grpc.Client;
  readonly #call: grpc.ClientDuplexStream<Request, Response>;
  #toggle = false;

  constructor(address: string, codec: XdsCodec) {
    const pkg = grpc.loadPackageDefinition(codec.packageDefinition) as unknown as {
      envoy: { service: { discovery: { v3: { AggregatedDiscoveryService: grpc.ServiceClientConstructor } } } };
    };
    const Ctor = pkg.envoy.service.discovery.v3.AggregatedDiscoveryService;
    this.#client = new Ctor(address, grpc.credentials.createInsecure());
    const method = (this.#client as unknown as Record<string, () => grpc.ClientDuplexStream<Request, Response>>)['StreamAggregatedResources'];
    this.#call = (method as () => grpc.ClientDuplexStream<Request, Response>).call(this.#client);
    this.#call.on('data', (r: Response) => this.responses.push(r));
    this.#call.on('status', (s: grpc.StatusObject) => (this.status = s));
    this.#call.on('error', () => {
      // reported through 'status'
    });
  }

  send(req: Request): void {
    this.#call.write(req);
  }

  /** The first response of `type` at or after position `from`. */
  async next(type: string, from = 0): Promise<Response> {
    return present(await waitFor(() => this.responses.slice(from).find((r) => r.type_url === type), { message: `no ${type} response` }));
  }

  last(type: string): Response | undefined {
    return this.responses.filter((r) => r.type_url === type).at(-1);
  }

  count(type: string): number {
    return this.responses.filter((r) => r.type_url === type).length;
  }

  /** ACK the last response of `type`. */
  ack(type: string, names?: string[]): void {
    const r = this.last(type);
    assert.ok(r, `a ${type} response to ack`);
    this.send({ type_url: type, version_info: r.version_info, response_nonce: r.nonce, ...(names ? { resource_names: names } : {}) });
  }

  /**
   * Ordering barrier: switch the RDS subscription between `barrier-a` and `barrier-b` (always a new
   * RDS response, since the selection changes) and wait for that response. Returns the responses
   * that arrived before it — the server handles a stream's requests in order and writes in order,
   * so anything it sent before handling the barrier is in there.
   */
  async barrier(): Promise<Response[]> {
    const mark = this.responses.length;
    this.#toggle = !this.#toggle;
    const last = this.last(RDS);
    this.send({ type_url: RDS, version_info: last?.version_info ?? '', response_nonce: last?.nonce ?? '', resource_names: [this.#toggle ? 'barrier-a' : 'barrier-b'] });
    const at = await waitFor(() => {
      const i = this.responses.slice(mark).findIndex((r) => r.type_url === RDS);
      return i >= 0 ? i + 1 : 0;
    }, { message: 'barrier response' });
    return this.responses.slice(mark, mark + at - 1);
  }

  /** Subscribe to CDS, EDS (all local names), LDS and RDS (barrier-a) as the node `id`. */
  subscribeAll(id: string, edsNames: string[]): void {
    this.send({ node: { id }, type_url: CDS });
    this.send({ type_url: EDS, resource_names: edsNames });
    this.send({ type_url: LDS });
    this.#toggle = true;
    this.send({ type_url: RDS, resource_names: ['barrier-a'] });
  }

  close(): void {
    this.#call.cancel();
    this.#client.close();
  }
}

describe('xds plugin: ADS server over grpc-js', () => {
  let agent: Agent;
  let codec: XdsCodec;
  let logger: MemoryLogger;
  let ads: string;
  const clients: AdsClient[] = [];
  let nextPort = 20000;

  const apply = async (req: RegisterRequest): Promise<void> => {
    await agent.services.get(StateTokens.Backend).apply({ Type: MessageType.Register, Body: req });
  };
  const deregister = async (node: string, serviceId?: string): Promise<void> => {
    await agent.services.get(StateTokens.Backend).apply({ Type: MessageType.Deregister, Body: { Node: node, ...(serviceId ? { ServiceID: serviceId } : {}) } });
  };
  const connect = (): AdsClient => {
    const c = new AdsClient(ads, codec);
    clients.push(c);
    return c;
  };
  const store = () => agent.services.get(StateTokens.Store);
  const decodeNames = (r: Response): string[] => r.resources.map((a) => {
    const o = codec.decode(a);
    return String(o['name'] ?? o['cluster_name']);
  });
  const logged = (msg: string) => logger.entries.filter((e) => e.msg === msg);

  before(async () => {
    codec = new XdsCodec();
    logger = createMemoryLogger('debug');
    agent = await createAgent({
      config: { node_name: 's1', datacenter: 'dc1', server: true, bind_addr: '127.0.0.1', ports: { server: 0, serf_lan: 0, serf_wan: 0, http: 0, grpc: 0 } },
      host: { hostname: 'h', privateIPv4: '127.0.0.1' },
      logger,
      plugins: [tls({ dev: true }), rpc(), http(), state(), xds({ codec }), testHooks()],
    });
    await agent.start();
    ads = agent.services.get(XdsTokens.Server).address ?? '';
    assert.match(ads, /^127\.0\.0\.1:\d+$/);
    // The server's own registration as service "consul" lands asynchronously: wait so it does not
    // race with the tests' ordering assertions.
    await waitFor(() => store().checkServiceNodes('consul').value.length === 1, { message: 'self registration' });
    await apply(gatewayRegistration({ node: 'gw1', datacenter: 'dc1', address: '127.0.0.1', port: 8443, id: 'gw1', meta: { ...WANFED_META } }));
  });

  after(async () => {
    for (const c of clients) c.close();
    await agent?.stop();
  });

  test('subscribing to CDS, EDS, LDS and RDS returns versions, nonces and the built resources', async () => {
    const c = connect();
    c.subscribeAll('gw1', ['server.dc1.consul', 's1.server.dc1.consul']);
    const cds = await c.next(CDS);
    const eds = await c.next(EDS);
    const lds = await c.next(LDS);
    const rds = await c.next(RDS);
    for (const r of [cds, eds, lds, rds]) {
      assert.match(r.version_info, /^[0-9a-f]{16}$/);
      assert.notEqual(r.nonce, '');
    }
    assert.equal(new Set([cds.nonce, eds.nonce, lds.nonce, rds.nonce]).size, 4, 'nonces are unique');
    assert.deepStrictEqual(decodeNames(cds), ['s1.server.dc1.consul', 'server.dc1.consul']);
    assert.deepStrictEqual(decodeNames(eds), ['s1.server.dc1.consul', 'server.dc1.consul']);
    assert.deepStrictEqual(decodeNames(rds), ['barrier-a'], 'RDS is filtered by resource names');
    const listener = codec.decode(lds.resources[0] as Response['resources'][number]);
    assert.equal(listener['name'], 'default:127.0.0.1:8443');
    const chains = listener['filter_chains'] as { filter_chain_match?: { server_names: string[] } }[];
    assert.deepStrictEqual(chains.map((ch) => ch.filter_chain_match?.server_names[0] ?? '*'), ['s1.server.dc1.consul', '*']);
    const localCla = codec.decode(eds.resources[1] as Response['resources'][number]);
    const rpcPort = store().checkServiceNodes('consul').value[0]?.Service.Port;
    assert.deepStrictEqual(localCla['endpoints'], [
      { lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: rpcPort } } }, health_status: 'UNKNOWN' }] },
    ]);
    // The HTTP view lists the proxy and its versions.
    const view = (await (await fetch(`http://${agent.services.get(HttpTokens.HttpApi).address}/v1/meshfed/xds`)).json()) as {
      address: string;
      proxies: { node_id: string; types: Record<string, { sent_version: string; sent_nonce: string }> }[];
    };
    assert.equal(view.address, ads);
    const p = view.proxies.find((x) => x.node_id === 'gw1');
    assert.equal(p?.types[CDS]?.sent_version, cds.version_info);
    assert.equal(p?.types[LDS]?.sent_nonce, lds.nonce);
    c.close();
  });

  test('an ACK records the version and triggers no resend', async () => {
    const c = connect();
    c.subscribeAll('gw1', ['server.dc1.consul']);
    await c.next(CDS);
    await c.next(EDS);
    await c.next(LDS);
    await c.next(RDS);
    const acksBefore = agent.services.get(XdsTokens.Server).stats().acks;
    c.ack(CDS);
    c.ack(EDS, ['server.dc1.consul']);
    c.ack(LDS);
    assert.deepStrictEqual(await c.barrier(), [], 'nothing was resent after the ACKs');
    assert.equal(agent.services.get(XdsTokens.Server).stats().acks, acksBefore + 4, 'three ACKs plus the barrier');
    const p = agent.services.get(XdsTokens.Server).proxies().find((x) => x.node_id === 'gw1');
    assert.equal(p?.types[CDS]?.acked_version, c.last(CDS)?.version_info);
    assert.equal(c.count(CDS), 1);
    c.close();
  });

  test('a NACK is logged once, nothing is resent until the resources change', async () => {
    const c = connect();
    c.subscribeAll('gw1', []);
    const cds = await c.next(CDS);
    await c.next(RDS);
    const nack: Request = { type_url: CDS, version_info: '', response_nonce: cds.nonce, error_detail: { code: 3, message: 'cluster rejected for the test' } };
    const before = logged('proxy rejected xDS update').length;
    c.send(nack);
    assert.deepStrictEqual(await c.barrier(), [], 'no resend after a NACK');
    c.send(nack); // Envoy repeating itself: still the same version, no new log line
    assert.deepStrictEqual(await c.barrier(), []);
    const lines = logged('proxy rejected xDS update').slice(before);
    assert.equal(lines.length, 1, 'logged once');
    assert.equal(lines[0]?.fields['node_id'], 'gw1');
    assert.equal(lines[0]?.fields['error'], 'cluster rejected for the test');
    assert.equal(lines[0]?.level, 'warn');
    const p = agent.services.get(XdsTokens.Server).proxies().find((x) => x.node_id === 'gw1' && x.types[CDS]?.nacked_version === cds.version_info);
    assert.equal(p?.types[CDS]?.last_error, 'cluster rejected for the test');
    // A change produces a new version, which is pushed despite the earlier NACK.
    const mark = c.responses.length;
    await apply(serverRegistration('s-nack', 'dc1', '127.0.0.1', nextPort++));
    const pushed = await c.next(CDS, mark);
    assert.notEqual(pushed.version_info, cds.version_info);
    assert.ok(decodeNames(pushed).includes('s-nack.server.dc1.consul'));
    c.close();
  });

  test('a request with a stale nonce is ignored', async () => {
    const c = connect();
    c.subscribeAll('gw1', []);
    const first = await c.next(CDS);
    await c.next(RDS);
    const mark = c.responses.length;
    await apply(serverRegistration('s-stale', 'dc1', '127.0.0.1', nextPort++));
    const second = await c.next(CDS, mark);
    assert.notEqual(second.nonce, first.nonce);
    // the same change also pushes endpoints and listeners: take them before the barrier
    await c.next(EDS, mark);
    await c.next(LDS, mark);
    const stats = () => agent.services.get(XdsTokens.Server).stats();
    const { stale_requests: staleBefore, nacks: nacksBefore } = stats();
    const logsBefore = logged('proxy rejected xDS update').length;
    // A NACK carrying the superseded nonce: must be ignored entirely.
    c.send({ type_url: CDS, response_nonce: first.nonce, error_detail: { code: 3, message: 'stale rejection' } });
    c.send({ type_url: CDS, response_nonce: 'not-a-nonce-we-sent' });
    assert.deepStrictEqual(await c.barrier(), []);
    assert.equal(stats().stale_requests, staleBefore + 2);
    assert.equal(stats().nacks, nacksBefore);
    assert.equal(logged('proxy rejected xDS update').length, logsBefore);
    const p = agent.services.get(XdsTokens.Server).proxies().find((x) => x.types[CDS]?.sent_nonce === second.nonce);
    assert.equal(p?.types[CDS]?.nacked_version, '');
    c.close();
  });

  test('store changes push new versions: a new server and a remote gateway', async () => {
    const c = connect();
    c.subscribeAll('gw1', ['server.dc1.consul']);
    const cds0 = await c.next(CDS);
    const lds0 = await c.next(LDS);
    await c.next(EDS);
    await c.next(RDS);
    let mark = c.responses.length;
    await apply(serverRegistration('s-new', 'dc1', '127.0.0.1', nextPort++));
    const cds1 = await c.next(CDS, mark);
    const lds1 = await c.next(LDS, mark);
    assert.notEqual(cds1.version_info, cds0.version_info);
    assert.notEqual(lds1.version_info, lds0.version_info);
    assert.ok(decodeNames(cds1).includes('s-new.server.dc1.consul'));
    const chains = (codec.decode(lds1.resources[0] as Response['resources'][number])['filter_chains'] as { filter_chain_match?: { server_names: string[] } }[]).map(
      (ch) => ch.filter_chain_match?.server_names[0],
    );
    assert.ok(chains.includes('s-new.server.dc1.consul'));
    mark = c.responses.length;
    await apply(gatewayRegistration({ node: 'dc2-gw', datacenter: 'dc2', address: '10.2.0.1', port: 8443, wan: '198.18.2.1:443', meta: { ...WANFED_META } }));
    const cds2 = await c.next(CDS, mark);
    assert.ok(decodeNames(cds2).includes('server.dc2.consul'));
    const lds2 = await c.next(LDS, mark);
    const chains2 = (codec.decode(lds2.resources[0] as Response['resources'][number])['filter_chains'] as { filter_chain_match?: { server_names: string[] } }[]).map(
      (ch) => ch.filter_chain_match?.server_names[0],
    );
    assert.equal(chains2[0], '*.server.dc2.consul');
    // EDS subscribed to server.dc1.consul only: subscribing to the new cluster's name (with an ACK) sends it.
    const eds = c.last(EDS);
    assert.ok(eds);
    mark = c.responses.length;
    c.send({ type_url: EDS, version_info: eds.version_info, response_nonce: eds.nonce, resource_names: ['server.dc1.consul', 'server.dc2.consul'] });
    const eds2 = await c.next(EDS, mark);
    assert.deepStrictEqual(decodeNames(eds2), ['server.dc1.consul', 'server.dc2.consul']);
    const remote = codec.decode(eds2.resources[1] as Response['resources'][number]);
    assert.deepStrictEqual(remote['endpoints'], [
      { lb_endpoints: [{ endpoint: { address: { socket_address: { address: '198.18.2.1', port_value: 443 } } }, health_status: 'HEALTHY' }] },
    ]);
    c.close();
  });

  test('an onXdsBuild tap can add a resource that reaches the proxy', async () => {
    await apply(gatewayRegistration({ node: 'gw-extra', datacenter: 'dc1', address: '127.0.0.1', port: 9443, id: 'gw-extra', meta: { ...WANFED_META, extra: '1' } }));
    const c = connect();
    c.subscribeAll('gw-extra', []);
    const cds = await c.next(CDS);
    const extra = cds.resources.map((a) => codec.decode(a)).find((o) => o['name'] === 'extra.hook.cluster');
    assert.deepStrictEqual(extra, { '@type': CDS, name: 'extra.hook.cluster', type: 'STATIC', connect_timeout: { seconds: 1 } });
    c.close();
  });

  test('a resource that does not encode is logged and not pushed; the stream stays up', async () => {
    await apply(gatewayRegistration({ node: 'gw-broken', datacenter: 'dc1', address: '127.0.0.1', port: 9444, id: 'gw-broken', meta: { broken: '1' } }));
    const before = logged('xDS resources do not encode; keeping the previous ones (this is a bug in the plugin that built them)').length;
    const c = connect();
    c.send({ node: { id: 'gw-broken' }, type_url: CDS });
    const line = present(await waitFor(() => logged('xDS resources do not encode; keeping the previous ones (this is a bug in the plugin that built them)')[before]));
    assert.equal(line.level, 'error');
    assert.match(String(line.fields['err']), /broken .*conect_timeout: no such field/);
    assert.equal(line.fields['node_id'], 'gw-broken');
    // The bad set was logged before anything could be sent from it: nothing was.
    assert.equal(c.responses.length, 0);
    assert.equal(c.status, undefined, 'stream still open');
    assert.ok(agent.services.get(XdsTokens.Server).proxies().some((p) => p.node_id === 'gw-broken'));
    c.close();
  });

  test('an unknown node id ends the stream with NOT_FOUND', async () => {
    const c = connect();
    c.send({ node: { id: 'no-such-gateway' }, type_url: CDS });
    const status = present(await waitFor(() => c.status, { message: 'stream status' }));
    assert.equal(status.code, grpc.status.NOT_FOUND);
    assert.match(status.details, /no mesh gateway with service ID "no-such-gateway" is registered in datacenter dc1/);
    assert.equal(c.responses.length, 0);
  });

  test('a first request without node.id ends the stream with INVALID_ARGUMENT', async () => {
    const c = connect();
    c.send({ type_url: CDS });
    const status = present(await waitFor(() => c.status, { message: 'stream status' }));
    assert.equal(status.code, grpc.status.INVALID_ARGUMENT);
  });

  test('a deregistered gateway loses its stream with NOT_FOUND', async () => {
    await apply(gatewayRegistration({ node: 'gw-gone', datacenter: 'dc1', address: '127.0.0.1', port: 9445, id: 'gw-gone' }));
    const c = connect();
    c.send({ node: { id: 'gw-gone' }, type_url: CDS });
    await c.next(CDS);
    await deregister('gw-gone', 'gw-gone');
    const status = present(await waitFor(() => c.status, { message: 'stream status' }));
    assert.equal(status.code, grpc.status.NOT_FOUND);
    assert.match(status.details, /deregistered/);
  });

  test('a client disconnect stops its watch loop (no leaked watchers)', async () => {
    const server = agent.services.get(XdsTokens.Server);
    await waitFor(() => server.stats().streams_active === 0, { message: 'earlier streams closed' });
    const baseline = store().watcherCount;
    const c = connect();
    c.subscribeAll('gw1', []);
    await c.next(CDS);
    await waitFor(() => store().watcherCount === baseline + 1, { message: 'the watch loop is blocked on the store' });
    assert.equal(server.stats().streams_active, 1);
    c.close();
    await waitFor(() => server.stats().streams_active === 0, { message: 'stream cleaned up' });
    await waitFor(() => store().watcherCount === baseline, { message: 'watcher released' });
    assert.deepStrictEqual(server.proxies(), []);
  });
});

describe('xds plugin: lifecycle', () => {
  const baseConfig = { node_name: 's1', datacenter: 'dc1', server: true, bind_addr: '127.0.0.1', ports: { server: 0, serf_lan: 0, serf_wan: 0, grpc: 0 } };
  const host = { hostname: 'h', privateIPv4: '127.0.0.1' };

  test('stopping the agent ends connected streams with UNAVAILABLE', async () => {
    const codec = new XdsCodec();
    const agent = await createAgent({ config: baseConfig, host, logger: createMemoryLogger('silent'), plugins: [tls({ dev: true }), rpc(), state(), xds({ codec })] });
    await agent.start();
    let c: AdsClient | undefined;
    try {
      await agent.services.get(StateTokens.Backend).apply({
        Type: MessageType.Register,
        Body: gatewayRegistration({ node: 'gw1', datacenter: 'dc1', address: '127.0.0.1', port: 8443, id: 'gw1', meta: { ...WANFED_META } }),
      });
      c = new AdsClient(agent.services.get(XdsTokens.Server).address ?? '', codec);
      c.send({ node: { id: 'gw1' }, type_url: CDS });
      await c.next(CDS);
    } finally {
      await agent.stop();
    }
    const status = present(await waitFor(() => c?.status, { message: 'stream status' }));
    assert.equal(status.code, grpc.status.UNAVAILABLE);
    assert.match(status.details, /shutting down/);
    assert.equal(agent.services.get(XdsTokens.Server).address, undefined);
    c.close();
  });

  test('ports.grpc = -1 disables the listener', async () => {
    const agent = await createAgent({
      config: { ...baseConfig, ports: { ...baseConfig.ports, grpc: -1 } },
      host,
      logger: createMemoryLogger('silent'),
      plugins: [tls({ dev: true }), rpc(), state(), xds()],
    });
    await agent.start();
    try {
      assert.equal(agent.services.get(XdsTokens.Server).address, undefined);
      assert.equal(agent.services.get(XdsTokens.Server).stats().streams_total, 0);
    } finally {
      await agent.stop();
    }
  });
});
