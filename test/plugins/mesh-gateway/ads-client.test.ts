import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { after, before, describe, test } from 'node:test';
import { AdsClient, loadAdsProtos, type AdsProtos } from '../../../src/plugins/mesh-gateway/ads-client.js';
import { SniProxy } from '../../../src/plugins/mesh-gateway/proxy.js';
import { CLUSTER_TYPE_URL, ENDPOINT_TYPE_URL, LISTENER_TYPE_URL, type MeshGatewayResources, type XdsResource } from '../../../src/plugins/mesh-gateway/routing.js';
import { waitFor } from '../../../src/testing/wait.js';
import { edsCluster, listener, loadAssignment, wanfedResources } from './helpers.js';

interface Req {
  node?: { id?: string };
  type_url?: string;
  version_info?: string;
  response_nonce?: string;
  error_detail?: { message?: string };
}

/** A tiny ADS server: records requests, lets the test push responses on the open stream. */
class FakeAds {
  readonly requests: Req[] = [];
  readonly server = new grpc.Server();
  stream: grpc.ServerDuplexStream<Req, unknown> | undefined;
  port = 0;
  #nonce = 0;
  constructor(private readonly protos: AdsProtos) {
    this.server.addService(protos.service, {
      StreamAggregatedResources: (call: grpc.ServerDuplexStream<Req, unknown>) => {
        this.stream = call;
        call.on('data', (r: Req) => this.requests.push(r));
        call.on('error', () => undefined);
        call.on('end', () => call.end());
      },
      DeltaAggregatedResources: (call: grpc.ServerDuplexStream<unknown, unknown>) => call.end(),
    });
  }
  async start(): Promise<void> {
    this.port = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
    );
  }
  /** Encode plain resources as Any and send them; returns the nonce. */
  send(typeUrl: string, version: string, resources: readonly XdsResource[], raw?: Buffer): string {
    const name = typeUrl.slice(typeUrl.lastIndexOf('/') + 1);
    const type = this.protos.root.lookupType(name);
    const any: Array<{ type_url: string; value: Uint8Array }> = resources.map((r) => ({ type_url: typeUrl, value: type.encode(type.fromObject(r)).finish() }));
    if (raw) any.push({ type_url: typeUrl, value: raw });
    const nonce = `n${++this.#nonce}`;
    assert.ok(this.stream, 'a client stream is open');
    this.stream.write({ version_info: version, resources: any, type_url: typeUrl, nonce });
    return nonce;
  }
  reply(nonce: string): Req | undefined {
    return this.requests.find((r) => r.response_nonce === nonce);
  }
  /** Wait for the request answering `nonce`. */
  async replied(nonce: string): Promise<Req> {
    return waitFor(() => this.reply(nonce), { message: `reply to ${nonce}` }) as Promise<Req>;
  }
}

function sendAll(ads: FakeAds, version: string, r: MeshGatewayResources): void {
  ads.send(CLUSTER_TYPE_URL, version, r.clusters);
  ads.send(ENDPOINT_TYPE_URL, version, r.endpoints);
  ads.send(LISTENER_TYPE_URL, version, r.listeners);
}

describe('AdsClient', () => {
  let protos: AdsProtos;
  before(() => {
    protos = loadAdsProtos();
  });

  test('subscribes, decodes resources into the plain shape, feeds the proxy and ACKs', async () => {
    const ads = new FakeAds(protos);
    await ads.start();
    const proxy = new SniProxy();
    const client = new AdsClient({ servers: [`127.0.0.1:${ads.port}`], nodeId: 'mesh-gateway-1', protos, apply: (r) => proxy.update(r) });
    after(() => {
      client.close();
      ads.server.forceShutdown();
    });
    client.start();
    await waitFor(() => ads.requests.length >= 3, { message: 'three initial requests' });
    assert.deepEqual(ads.requests.slice(0, 3).map((r) => r.type_url).sort(), [CLUSTER_TYPE_URL, ENDPOINT_TYPE_URL, LISTENER_TYPE_URL].sort());
    assert.ok(ads.requests.every((r) => r.node?.id === 'mesh-gateway-1'));
    const res = wanfedResources({ node1: 8300, dc2: 8443, dc1: 8301 });
    sendAll(ads, 'v1', res);
    await waitFor(() => ads.requests.filter((r) => r.response_nonce).length === 3, { message: 'three ACKs' });
    for (const r of ads.requests.slice(3)) {
      assert.equal(r.version_info, 'v1');
      assert.equal(r.error_detail, undefined, 'ACK, not NACK');
    }
    const cur = client.current();
    assert.equal(cur.listeners.length, 1);
    const l = cur.listeners[0] as { '@type': string; filter_chains: Array<{ filters: Array<{ typed_config: Record<string, unknown> }> }> };
    assert.equal(l['@type'], LISTENER_TYPE_URL);
    assert.deepEqual(l.filter_chains[0]?.filters[0]?.typed_config, {
      '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy',
      stat_prefix: 'mesh_gateway',
      cluster: 'server.dc2.consul',
    });
    assert.deepEqual(cur.clusters[0], { ...edsCluster('server.dc2.consul') });
    assert.equal(proxy.table.exact.get('node1.server.dc1.consul')?.cluster, 'node1.server.dc1.consul');
    assert.deepEqual(proxy.table.clusters.get('server.dc2.consul')?.endpoints, [{ host: '127.0.0.1', port: 8443 }]);
  });

  test('NACKs undecodable resources and resources the proxy rejects, keeping the previous set', async () => {
    const ads = new FakeAds(protos);
    await ads.start();
    const proxy = new SniProxy();
    const nacks: string[] = [];
    const client = new AdsClient({ servers: [`127.0.0.1:${ads.port}`], nodeId: 'gw', protos, apply: (r) => proxy.update(r) });
    client.on('nack', (n) => nacks.push(n.message));
    after(() => {
      client.close();
      ads.server.forceShutdown();
    });
    client.start();
    await waitFor(() => ads.requests.length >= 3);
    const good = ads.send(LISTENER_TYPE_URL, 'v1', [listener([{ filters: [{ name: 'envoy.filters.network.tcp_proxy', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', stat_prefix: 's', cluster: 'c' } }] }])]);
    await waitFor(() => ads.reply(good));
    const garbage = ads.send(CLUSTER_TYPE_URL, 'v2', [], Buffer.from([0xbf, 0x3e]));
    const bad = await ads.replied(garbage);
    assert.match(bad.error_detail?.message ?? '', /cannot decode/);
    assert.equal(bad.version_info, '', 'NACK carries the last accepted version (none yet for clusters)');
    const rejected = ads.send(LISTENER_TYPE_URL, 'v3', [{ name: 'empty', address: { socket_address: { address: '127.0.0.1', port_value: 1 } } }]);
    const nack = await ads.replied(rejected);
    assert.match(nack.error_detail?.message ?? '', /no filter chains/);
    assert.equal(nack.version_info, 'v1');
    assert.equal(client.versions().get(LISTENER_TYPE_URL), 'v1');
    assert.equal(proxy.table.catchAll?.cluster, 'c', 'the proxy keeps the accepted table');
    assert.equal(nacks.length, 2);
    const fixed = ads.send(CLUSTER_TYPE_URL, 'v4', [edsCluster('c')]);
    const ack = await ads.replied(fixed);
    assert.equal(ack.error_detail, undefined);
    assert.equal(ack.version_info, 'v4');
    ads.send(ENDPOINT_TYPE_URL, 'v5', [loadAssignment('c', [{ port: 9 }])]);
    await waitFor(() => proxy.table.clusters.get('c')?.endpoints.length === 1);
  });

  test('fails over to the next server when the stream dies, resending the accepted versions', async () => {
    const a = new FakeAds(protos);
    const b = new FakeAds(protos);
    await Promise.all([a.start(), b.start()]);
    const seen: MeshGatewayResources[] = [];
    const client = new AdsClient({ servers: [`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`], nodeId: 'gw', protos, initialBackoffMs: 20, maxBackoffMs: 100 });
    client.on('resources', (r) => seen.push(r));
    after(() => {
      client.close();
      a.server.forceShutdown();
      b.server.forceShutdown();
    });
    client.start();
    await waitFor(() => a.requests.length >= 3);
    const n = a.send(CLUSTER_TYPE_URL, 'a1', [edsCluster('from-a')]);
    await waitFor(() => a.reply(n));
    a.server.forceShutdown();
    await waitFor(() => b.requests.length >= 3, { message: 'client moved to the second server' });
    const resub = b.requests.find((r) => r.type_url === CLUSTER_TYPE_URL);
    assert.equal(resub?.version_info, 'a1');
    assert.equal(client.server, `127.0.0.1:${b.port}`);
    b.send(CLUSTER_TYPE_URL, 'b1', [edsCluster('from-b')]);
    await waitFor(() => client.current().clusters[0]?.['name'] === 'from-b');
    assert.deepEqual(seen.map((s) => s.clusters.map((c) => c['name'])), [['from-a'], ['from-b']]);
  });
});
