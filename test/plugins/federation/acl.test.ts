import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createAgent, type Agent } from '../../../src/index.js';
import { acl } from '../../../src/plugins/acl/index.js';
import { federation, federationStructs } from '../../../src/plugins/federation/index.js';
import { http, HttpTokens } from '../../../src/plugins/http/index.js';
import { router } from '../../../src/plugins/router/index.js';
import { GoTime, rpc, RpcTokens, t, type AnySchema, type Infer } from '../../../src/plugins/rpc/index.js';
import { state, StateTokens, structs } from '../../../src/plugins/state/index.js';
import { MessageType } from '../../../src/plugins/state/store/index.js';
import { tls } from '../../../src/plugins/tls/index.js';
import { createMemoryLogger, waitFor } from '../../../src/testing/index.js';

const host = { hostname: 'h', privateIPv4: '127.0.0.1' };
const ROOT = 'root-secret-0001';
const tokens = {
  none: '',
  noPerms: 'noperm-secret-0002',
  svcRead: 'svcread-secret-0003',
  nodeRead: 'noderead-secret-0004',
  svcNodeRead: 'svcnode-secret-0005',
  opRead: 'opread-secret-0006',
  opWrite: 'opwrite-secret-0007',
  svcWrite: 'svcwrite-secret-0008',
  mgmt: ROOT,
};

describe('federation endpoints enforce ACLs (the §5.5 matrix)', () => {
  let a: Agent;
  const logger = createMemoryLogger('trace');
  before(async () => {
    a = await createAgent({
      config: {
        node_name: 'p1',
        datacenter: 'dc1',
        server: true,
        bind_addr: '127.0.0.1',
        ports: { server: 0, serf_lan: -1, serf_wan: -1, http: 0 },
        acl: {
          enabled: true,
          default_policy: 'deny',
          tokens: { initial_management: ROOT },
          policies: [
            { name: 'none', rules: {} },
            { name: 'svc-read', rules: { service_prefix: { '': 'read' } } },
            { name: 'node-read', rules: { node_prefix: { '': 'read' } } },
            { name: 'op-read', rules: { operator: 'read' } },
            { name: 'op-write', rules: { operator: 'write' } },
            { name: 'svc-write', rules: { service_prefix: { '': 'write' } } },
          ],
          static_tokens: [
            { secret_id: tokens.noPerms, policies: ['none'] },
            { secret_id: tokens.svcRead, policies: ['svc-read'] },
            { secret_id: tokens.nodeRead, policies: ['node-read'] },
            { secret_id: tokens.svcNodeRead, policies: ['svc-read', 'node-read'] },
            { secret_id: tokens.opRead, policies: ['op-read'] },
            { secret_id: tokens.opWrite, policies: ['op-write'] },
            { secret_id: tokens.svcWrite, policies: ['svc-write'] },
          ],
        },
      },
      host,
      logger,
      plugins: [tls({ dev: true }), rpc(), http(), router(), acl(), state(), federation({ antiEntropy: false })],
    });
    await a.start();
    const srv = a.services.get(StateTokens.Server);
    const gw = {
      Node: { ID: '', Node: 'gw1', Address: '10.0.0.1', Datacenter: 'dc1', TaggedAddresses: {}, Meta: {}, CreateIndex: 0, ModifyIndex: 0 },
      Service: { ID: 'mgw', Service: 'mesh-gateway', Kind: 'mesh-gateway' as const, Tags: [], Address: '', TaggedAddresses: {}, Port: 8443, Meta: {}, CreateIndex: 0, ModifyIndex: 0 },
      Checks: [],
    };
    await srv.write({ Type: MessageType.FederationState, Body: { Op: 'upsert', State: { Datacenter: 'dc1', MeshGateways: [gw] } } });
    await srv.write({ Type: MessageType.FederationState, Body: { Op: 'upsert', State: { Datacenter: 'dc2', MeshGateways: [{ ...gw, Node: { ...gw.Node, Node: 'gw2' } }] } } });
  });
  after(async () => {
    await a.stop();
  });

  const call = <S extends AnySchema>(method: string, args: unknown, response: S, request: AnySchema = structs.DCSpecificRequest): Promise<Infer<S>> =>
    a.services.get(RpcTokens.Pool).call({ datacenter: 'dc1', node: 'p1', address: `127.0.0.1:${a.services.get(RpcTokens.Listener).address?.split(':').pop()}` }, method, args, request, response);

  const matrix: [keyof typeof tokens, boolean, number, boolean][] = [
    // token, List allowed, gateways listed (of 2), ResultsFilteredByACLs
    ['none', false, 0, true],
    ['noPerms', false, 0, true],
    ['svcRead', false, 0, true],
    ['nodeRead', false, 0, true],
    ['svcNodeRead', false, 2, false],
    ['opRead', true, 0, true],
    ['mgmt', true, 2, false],
  ];
  for (const [name, listOk, gwCount, filtered] of matrix) {
    test(`token ${name}: List ${listOk ? 'allowed' : 'denied'}, ${gwCount} gateways listed${filtered ? ', filtered' : ''}`, async () => {
      const list = call('FederationState.List', { Token: tokens[name] }, federationStructs.IndexedFederationStates);
      if (listOk) assert.equal((await list).States.length, 2);
      else await assert.rejects(list, /Permission denied/);
      const gws = await call('FederationState.ListMeshGateways', { Token: tokens[name] }, federationStructs.DatacenterIndexedCheckServiceNodes);
      assert.equal(Object.values(gws.DatacenterNodes).flat().length, gwCount);
      assert.equal(gws.ResultsFilteredByACLs, filtered);
    });
  }

  test('Apply needs operator:write; Get needs operator:read (service:write is not enough)', async () => {
    const st = { Datacenter: 'dc3', MeshGateways: [], UpdatedAt: GoTime.ZERO, PrimaryModifyIndex: 0, CreateIndex: 0, ModifyIndex: 0 };
    await assert.rejects(call('FederationState.Apply', { Op: 'upsert', State: st, Token: tokens.opRead }, t.bool, federationStructs.FederationStateRequest), /Permission denied/);
    assert.equal(await call('FederationState.Apply', { Op: 'upsert', State: st, Token: tokens.opWrite }, t.bool, federationStructs.FederationStateRequest), true);
    await assert.rejects(call('FederationState.Get', { Datacenter: 'dc3', Token: tokens.svcWrite }, federationStructs.FederationStateResponse, federationStructs.FederationStateQuery), /Permission denied/);
    const got = await call('FederationState.Get', { Datacenter: 'dc3', Token: tokens.opRead }, federationStructs.FederationStateResponse, federationStructs.FederationStateQuery);
    assert.equal(got.State?.Datacenter, 'dc3');
    await assert.rejects(call('FederationState.List', { Token: 'no-such-token' }, federationStructs.IndexedFederationStates), /ACL not found/);
  });

  test('HTTP: 403 with Consul’s text, tokens from X-Consul-Token and ?token=; no token reaches a log', async () => {
    const base = `http://${a.services.get(HttpTokens.HttpApi).address}`;
    const denied = await fetch(`${base}/v1/internal/federation-states`);
    assert.equal(denied.status, 403);
    assert.match(await denied.text(), /Permission denied/);
    const ok = await fetch(`${base}/v1/internal/federation-states`, { headers: { 'X-Consul-Token': tokens.opRead } });
    assert.equal(ok.status, 200);
    const viaQuery = await fetch(`${base}/v1/internal/federation-state/dc1?token=${tokens.opRead}`);
    assert.equal(viaQuery.status, 200);
    const unknown = await fetch(`${base}/v1/internal/federation-states`, { headers: { 'X-Consul-Token': 'nope-nope' } });
    assert.equal(unknown.status, 403);
    assert.match(await unknown.text(), /ACL not found/);
    await waitFor(() => logger.entries.length > 0);
    const logged = JSON.stringify(logger.entries);
    for (const secret of Object.values(tokens).filter(Boolean)) assert.ok(!logged.includes(secret), `a token reached the log`);
  });
});
