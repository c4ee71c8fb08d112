/**
 * Consul's TestNewDialer_IntegrationWithTLSEnabledHandler_viaMeshGateway with real meshfed
 * gateways: two datacenters federated through their built-in mesh gateways; a gRPC call from a
 * server of one datacenter to the other reaches a server there only through the gateways, as TLS
 * with ALPN `consul/rpc-grpc` (asserted on the destination's RPC port: from a gateway, never type
 * byte 8); with no gateway known the call fails with Consul's ErrDCNotAvailable text.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as grpcJs from '@grpc/grpc-js';
import { Stage, type AgentPlugin } from '../../../src/index.js';
import { Alpn } from '../../../src/core/protocol.js';
import { FederationTokens } from '../../../src/plugins/federation/index.js';
import { GrpcTokens } from '../../../src/plugins/grpc/index.js';
import { loadAdsProtos } from '../../../src/plugins/mesh-gateway/index.js';
import { ErrDCNotAvailable, RouterTokens } from '../../../src/plugins/router/index.js';
import { generateCa } from '../../../src/plugins/tls/index.js';
import { createMemoryLogger, waitFor } from '../../../src/testing/index.js';
import { startWanfedDatacenter, stopWanfedDatacenters, writeServerTls, type WanfedDatacenter } from '../../../src/testing/wanfed-datacenter.js';
import { whoPlugin, type AcceptRecord } from '../grpc/helpers.js';
import { who, WhoClient } from '../router/helpers.js';

const DCS = [
  { dc: 'dc1', node: 'bob', serverIp: '127.0.0.61', gatewayIp: '127.0.0.71' },
  { dc: 'dc2', node: 'betty', serverIp: '127.0.0.62', gatewayIp: '127.0.0.72' },
] as const;
const GATEWAY_IPS = new Set<string>(DCS.map((d) => d.gatewayIp));

/** Drops every gateway candidate for `dc` while `blocked.on` is set (an operator filter on `onGatewayList`). */
function gatewayBlocker(blocked: { on: boolean }, dc: string): AgentPlugin {
  return {
    name: 'gateway-blocker',
    apply: ({ hooks }) => void hooks.onGatewayList.tap({ stage: Stage.LATE }, (list, ctx) => (blocked.on && ctx.targetDatacenter === dc ? [] : list)),
  };
}

describe('gRPC through mesh gateways (TestNewDialer_IntegrationWithTLSEnabledHandler_viaMeshGateway)', () => {
  let dir: string;
  const dcs: WanfedDatacenter[] = [];
  const accepted: AcceptRecord[][] = [[], []];
  const blocked = { on: false };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'meshfed-wanfed-grpc-'));
    const ca = await generateCa({ domain: 'consul', days: 2 });
    const protos = loadAdsProtos();
    for (const [i, d] of DCS.entries()) {
      dcs.push(
        await startWanfedDatacenter({
          dc: d.dc,
          node: d.node,
          tls: await writeServerTls(dir, ca, d.dc, d.node),
          serverIp: d.serverIp,
          gatewayIp: d.gatewayIp,
          // upstream connections leave from the gateway's address: servers can tell gateway traffic apart
          gatewaySourceAddress: true,
          ...(i > 0 ? { primaryGateways: [(dcs[0] as WanfedDatacenter).gateway.address] } : {}),
          extraPlugins: [whoPlugin(accepted[i]), ...(i > 0 ? [gatewayBlocker(blocked, 'dc1')] : [])],
          logger: createMemoryLogger('silent'),
          protos,
        }),
      );
    }
  });

  after(async () => {
    await stopWanfedDatacenters(dcs);
    rmSync(dir, { recursive: true, force: true });
  });

  const server = (i: number) => (dcs[i] as WanfedDatacenter).server;
  const grpcStatus = (i: number): Record<string, unknown> => server(i).status().plugins.find((p) => p.name === 'grpc')?.status ?? {};

  test('a dc2 server’s gRPC call reaches dc1’s server through the gateways with ALPN consul/rpc-grpc, never type byte 8', async () => {
    const channels = server(1).services.get(GrpcTokens.Channels);
    assert.equal(channels.path('dc1'), 'mesh-gateway');
    assert.equal(channels.path('dc2'), 'rpc-port');
    await waitFor(async () => (await server(1).services.get(FederationTokens.Locator).candidateGateways('dc1')).length > 0, { timeoutMs: 30_000, message: 'dc2 knows no gateway for dc1' });
    const client = channels.client(WhoClient, 'dc1');
    assert.equal(await waitFor(() => who(client), { timeoutMs: 30_000, message: 'gRPC dc2 → dc1' }), 'bob');
    const grpcConns = accepted[0] ?? [];
    assert.ok(grpcConns.length >= 1, 'dc1 accepted no gRPC connection');
    assert.deepEqual(
      grpcConns.filter((c) => c.key !== Alpn.RpcGRPC || !c.tls || !GATEWAY_IPS.has(c.from)),
      [],
      'dc1 accepted gRPC connections that were not native TLS + ALPN consul/rpc-grpc from a gateway',
    );
    assert.equal(grpcStatus(0)['accepted_type_byte'], 0);
    assert.ok((grpcStatus(0)['accepted_alpn'] as number) >= 1);
    // the endpoints dc2's resolver pushed for dc1 are gateways, not dc1's server
    const endpoints = server(1).services.get(RouterTokens.GrpcResolver).endpoints('dc1') ?? [];
    assert.ok(endpoints.length > 0 && endpoints.every((e) => e.gateway !== undefined && e.server === undefined), JSON.stringify(endpoints));
  });

  test('the primary reaches the secondary the same way (dc1 → dc1’s gateway → dc2’s gateway → dc2)', async () => {
    await waitFor(async () => (await server(0).services.get(FederationTokens.Locator).candidateGateways('dc2')).length > 0, { timeoutMs: 30_000, message: 'dc1 knows no gateway' });
    const client = server(0).services.get(GrpcTokens.Channels).client(WhoClient, 'dc2');
    assert.equal(await waitFor(() => who(client), { timeoutMs: 30_000, message: 'gRPC dc1 → dc2' }), 'betty');
    const grpcConns = accepted[1] ?? [];
    assert.ok(grpcConns.length >= 1);
    assert.deepEqual(grpcConns.filter((c) => c.key !== Alpn.RpcGRPC || !GATEWAY_IPS.has(c.from)), []);
  });

  test('with no gateway known for dc1 the call fails at once with "Remote DC has no server currently reachable", and recovers when one is known again', async () => {
    const builder = server(1).services.get(RouterTokens.GrpcResolver);
    blocked.on = true;
    builder.refreshAll(); // an onGatewayList filter changed: re-resolve (the locator's own changes do this by themselves)
    await waitFor(() => builder.endpoints('dc1')?.length === 0, { message: 'the resolver still has gateways for dc1' });
    const acceptedBefore = (accepted[0] ?? []).length;
    const client = server(1).services.get(GrpcTokens.Channels).client(WhoClient, 'dc1');
    await assert.rejects(who(client), (e: grpcJs.ServiceError) => {
      assert.equal(e.code, grpcJs.status.UNAVAILABLE);
      assert.equal(e.details, ErrDCNotAvailable);
      return true;
    });
    assert.equal((accepted[0] ?? []).length, acceptedBefore, 'nothing reached dc1');
    blocked.on = false;
    builder.refreshAll();
    assert.equal(await waitFor(() => who(client).catch(() => ''), { timeoutMs: 30_000, message: 'no recovery after the gateways came back' }), 'bob');
  });
});
