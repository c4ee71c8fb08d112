/**
 * GrpcResolverBuilder with a remote-endpoints provider (wanfed): remote datacenters resolve to
 * mesh gateways instead of their servers, the local datacenter never does, an empty answer is
 * Consul's ErrDCNotAvailable, and answers are re-asked on refresh.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { ErrDCNotAvailable, GLOBAL_ADDRS_ATTRIBUTE, GrpcResolverBuilder } from '../../../src/plugins/router/index.js';
import { waitFor } from '../../../src/testing/index.js';
import { server, who, WhoClient, whoServer } from './helpers.js';

interface Result {
  ok: boolean;
  addrs: string[];
  details: string;
  attrs: Record<string, unknown>;
}

/** Drive the builder's registered resolver for `path` directly, recording every report. */
function drive(g: GrpcResolverBuilder, path: string): { results: Result[]; resolver: grpc.experimental.Resolver } {
  const results: Result[] = [];
  const resolver = grpc.experimental.createResolver(
    { scheme: g.scheme, path },
    (eps, attrs) => {
      results.push({
        ok: eps.ok,
        addrs: eps.ok ? eps.value.flatMap((e) => e.addresses.map((a) => ('host' in a ? `${a.host}:${a.port}` : ''))) : [],
        details: eps.ok ? '' : eps.error.details,
        attrs,
      });
      return true;
    },
    {},
  );
  resolver.updateResolution();
  return { results, resolver };
}

describe('GrpcResolverBuilder remote endpoints (gateways stand in for remote servers)', () => {
  test('a remote DC resolves to the provider’s gateways, the local DC to its servers; the provider is never asked about the local DC', async () => {
    const asked: string[] = [];
    const g = new GrpcResolverBuilder({
      datacenter: 'dc1',
      agentType: 'server',
      remoteEndpoints: (dc) => (asked.push(dc), ['10.0.0.9:8443', '10.0.0.8:8443', '10.0.0.9:8443']),
    });
    g.addServer('wan', server('s2.dc2', 'dc2', { port: 8300, ip: '10.2.0.1' }));
    g.addServer('lan', server('s1', 'dc1', { port: 8300, ip: '10.1.0.1' }));
    const remote = drive(g, 'server.dc2');
    const local = drive(g, 'server.dc1');
    await waitFor(() => remote.results.length >= 1 && local.results.length >= 1);
    assert.deepEqual(remote.results.at(-1)?.addrs, ['10.0.0.9:8443', '10.0.0.8:8443'], 'gateways, deduplicated, in the provider’s order');
    assert.deepEqual(remote.results.at(-1)?.attrs, { [GLOBAL_ADDRS_ATTRIBUTE]: ['dc2-10.0.0.9:8443', 'dc2-10.0.0.8:8443'] });
    assert.deepEqual(local.results.at(-1)?.addrs, ['10.1.0.1:8300']);
    assert.ok(!asked.includes('dc1'));
    assert.deepEqual(g.endpoints('dc2')?.map((e) => e.gateway), ['10.0.0.9:8443', '10.0.0.8:8443']);
    assert.deepEqual(g.addresses('dc2').map((a) => a.server.name), ['s2.dc2'], 'the server list is still known');
    remote.resolver.destroy();
    local.resolver.destroy();
    g.shutdown();
  });

  test('an empty answer reports UNAVAILABLE with "Remote DC has no server currently reachable"; refresh re-asks; undefined falls back to the servers', async () => {
    let answer: readonly string[] | undefined = [];
    const g = new GrpcResolverBuilder({ datacenter: 'dc2', agentType: 'server' });
    g.addServer('wan', server('s1.dc1', 'dc1', { port: 8300, ip: '10.1.0.1' }));
    g.setRemoteEndpoints(async (dc) => (dc === 'dc1' ? answer : undefined));
    const r = drive(g, 'server.dc1');
    await waitFor(() => r.results.length === 1);
    assert.deepEqual({ ok: r.results[0]?.ok, details: r.results[0]?.details }, { ok: false, details: ErrDCNotAvailable });
    answer = ['192.0.2.10:443'];
    g.refresh('dc1');
    await waitFor(() => r.results.length === 2);
    assert.deepEqual(r.results[1]?.addrs, ['192.0.2.10:443']);
    answer = undefined;
    g.refreshAll();
    await waitFor(() => r.results.length === 3);
    assert.deepEqual(r.results[2]?.addrs, ['10.1.0.1:8300'], 'undefined = dial the servers');
    r.resolver.destroy();
    g.shutdown();
  });

  test('a throwing or rejecting provider makes the DC unavailable (logged), never a direct dial', async () => {
    const g = new GrpcResolverBuilder({ datacenter: 'dc2', agentType: 'server' });
    g.addServer('wan', server('s1.dc1', 'dc1', { port: 8300, ip: '10.1.0.1' }));
    g.setRemoteEndpoints(() => Promise.reject(new Error('locator gone')));
    const r = drive(g, 'server.dc1');
    await waitFor(() => r.results.length === 1);
    assert.equal(r.results[0]?.ok, false);
    assert.equal(r.results[0]?.details, ErrDCNotAvailable);
    g.setRemoteEndpoints(() => {
      throw new Error('sync failure');
    });
    await waitFor(() => r.results.length === 2);
    assert.equal(r.results[1]?.details, ErrDCNotAvailable);
    r.resolver.destroy();
    g.shutdown();
  });

  test('a slow answer is not overtaken: the latest question wins, and nothing is reported before the first answer', async () => {
    const pending: Array<(v: readonly string[]) => void> = [];
    const g = new GrpcResolverBuilder({ datacenter: 'dc2', agentType: 'server', remoteEndpoints: () => new Promise((res) => pending.push(res)) });
    const r = drive(g, 'server.dc1');
    await waitFor(() => pending.length === 1);
    g.refresh('dc1');
    await waitFor(() => pending.length === 2);
    pending[1]?.(['192.0.2.2:443']);
    await waitFor(() => r.results.length === 1);
    pending[0]?.(['192.0.2.1:443']); // stale: ignored
    g.refresh('dc1');
    await waitFor(() => pending.length === 3);
    pending[2]?.(['192.0.2.3:443']);
    await waitFor(() => r.results.length === 2);
    assert.deepEqual(r.results.map((x) => x.addrs), [['192.0.2.2:443'], ['192.0.2.3:443']]);
    r.resolver.destroy();
    g.shutdown();
  });

  test('the rebalancer shuffles the gateway list', async () => {
    const gws = ['192.0.2.1:443', '192.0.2.2:443', '192.0.2.3:443'];
    let n = 0;
    const g = new GrpcResolverBuilder({ datacenter: 'dc2', agentType: 'server', remoteEndpoints: () => gws, random: () => (n++ % 3) / 3 });
    const r = drive(g, 'server.dc1');
    await waitFor(() => r.results.length === 1);
    g.newRebalancer('dc1')();
    await waitFor(() => r.results.length === 2);
    assert.deepEqual([...(r.results[1]?.addrs ?? [])].sort(), gws);
    assert.notDeepEqual(r.results[1]?.addrs, gws);
    r.resolver.destroy();
    g.shutdown();
  });
});

describe('GrpcResolverBuilder remote endpoints with a real channel', () => {
  let gatewayStandIn: { server: grpc.Server; port: number };
  before(async () => {
    gatewayStandIn = await whoServer('via-gateway');
  });
  after(() => gatewayStandIn.server.forceShutdown());

  test('calls to a remote DC go to the gateway address, not the server’s', async () => {
    const g = new GrpcResolverBuilder({ datacenter: 'dc2', agentType: 'server' });
    // the server's own address is unreachable (port 9 on TEST-NET): only the gateway answers
    g.addServer('wan', server('s1.dc1', 'dc1', { port: 9, ip: '192.0.2.1' }));
    g.setRemoteEndpoints(() => [`127.0.0.1:${gatewayStandIn.port}`]);
    const client = new WhoClient(g.target('dc1'), grpc.credentials.createInsecure());
    try {
      assert.equal(await who(client), 'via-gateway');
    } finally {
      client.close();
      g.shutdown();
    }
  });
});
