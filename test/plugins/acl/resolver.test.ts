import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MeshfedError } from '../../../src/index.js';
import {
  AclErrorCode,
  AclResolver,
  aclHttpStatus,
  filterCheckServiceNodes,
  filterDatacenterCheckServiceNodes,
  isAclError,
  requireNodeRead,
  requireNodeWrite,
  requireOperatorRead,
  requireOperatorWrite,
  requireServiceRead,
  requireServiceWrite,
  tokenFromHttp,
  tokenFromRpc,
  type AclOptions,
  type Authorizer,
} from '../../../src/plugins/acl/index.js';
import type { HttpRequest } from '../../../src/plugins/http/index.js';

const MGMT = 'mgmt-5f0c2d1e-secret';
const REPL = 'repl-8a7b6c5d-secret';
const READER = 'reader-11aa22bb-secret';
const DEFAULT = 'default-33cc44dd-secret';

const base: AclOptions = {
  enabled: true,
  default_policy: 'deny',
  tokens: { initial_management: MGMT, replication: REPL },
  policies: [
    { name: 'replication', rules: { operator: 'write', node_prefix: { '': 'read' }, service_prefix: { '': 'read' } } },
    { name: 'web-reader', rules: { service: { web: 'read' }, node: { n1: 'write' } } },
  ],
  static_tokens: [
    { secret_id: REPL, description: 'replication', policies: ['replication'] },
    { secret_id: READER, description: 'web reader', policies: ['web-reader'] },
  ],
};

function notFound(fn: () => unknown): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof MeshfedError);
    assert.equal(err.code, AclErrorCode.NOT_FOUND);
    assert.equal(err.message, 'ACL not found');
    return true;
  });
}

function denied(fn: () => unknown, permission: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof MeshfedError);
    assert.equal(err.code, AclErrorCode.DENIED);
    assert.match(err.message, /^Permission denied: token lacks permission '/);
    assert.ok(err.message.includes(`'${permission}'`), err.message);
    return true;
  });
}

describe('AclResolver', () => {
  test('the management token allows everything', () => {
    const r = new AclResolver(base);
    const a = r.resolve(MGMT);
    assert.equal(a.isManagement, true);
    assert.ok(a.operatorWrite() && a.nodeWrite('x') && a.serviceWrite('y'));
  });

  test('a static token gets exactly its policies (the rest: default deny)', () => {
    const r = new AclResolver(base);
    const a = r.resolve(READER);
    assert.equal(a.isManagement, false);
    assert.equal(a.serviceRead('web'), true);
    assert.equal(a.serviceWrite('web'), false);
    assert.equal(a.serviceRead('db'), false);
    assert.equal(a.nodeWrite('n1'), true);
    assert.equal(a.nodeRead('n2'), false);
    assert.equal(a.operatorRead(), false);
    const repl = r.resolve(REPL);
    assert.ok(repl.operatorWrite() && repl.nodeRead('any') && repl.serviceRead('any'));
    assert.equal(repl.serviceWrite('any'), false);
  });

  test('default_policy allow vs deny for the anonymous token (no token, no acl.tokens.default)', () => {
    const deny = new AclResolver(base).resolve(undefined);
    assert.deepEqual([deny.operatorRead(), deny.nodeRead('n'), deny.serviceRead('s')], [false, false, false]);
    const allow = new AclResolver({ ...base, default_policy: 'allow' }).resolve('');
    assert.deepEqual([allow.operatorWrite(), allow.nodeWrite('n'), allow.serviceWrite('s')], [true, true, true]);
    assert.equal(allow.isManagement, false);
    // A static token's unmatched checks fall back to the default policy too.
    const reader = new AclResolver({ ...base, default_policy: 'allow' }).resolve(READER);
    assert.equal(reader.serviceWrite('db'), true);
    assert.equal(reader.serviceWrite('web'), false);
  });

  test('"anonymous" is the anonymous token, even when acl.tokens.default is set', () => {
    const r = new AclResolver({ ...base, tokens: { ...base.tokens, default: READER } });
    assert.equal(r.resolve('anonymous').serviceRead('web'), false);
    assert.equal(r.resolve('').serviceRead('web'), true);
  });

  test('acl.tokens.default is used for requests without a token', () => {
    const r = new AclResolver({ ...base, tokens: { ...base.tokens, default: READER } });
    assert.equal(r.resolve('').serviceRead('web'), true);
    assert.equal(r.resolve(undefined).serviceRead('web'), true);
    assert.equal(r.resolve(undefined).serviceRead('db'), false);
    // An explicit token still wins over the default.
    assert.equal(r.resolve(REPL).operatorWrite(), true);
  });

  test('an unknown acl.tokens.default makes tokenless requests "ACL not found"', () => {
    const r = new AclResolver({ ...base, tokens: { ...base.tokens, default: DEFAULT } });
    notFound(() => r.resolve(''));
    assert.equal(r.resolve(READER).serviceRead('web'), true);
  });

  test('an unknown secret is "ACL not found"; the replication token is only known if declared', () => {
    const r = new AclResolver(base);
    notFound(() => r.resolve('no-such-secret'));
    notFound(() => r.resolve(`${READER} `));
    const secondary = new AclResolver({ ...base, static_tokens: [], policies: [] });
    assert.equal(secondary.replicationToken(), REPL);
    notFound(() => secondary.resolve(REPL));
  });

  test('ACLs disabled: every secret, even unknown, allows everything', () => {
    const r = new AclResolver({ ...base, enabled: false });
    assert.equal(r.enabled, false);
    for (const s of [undefined, '', 'no-such-secret', READER]) {
      const a = r.resolve(s);
      assert.equal(a.isManagement, true);
      assert.ok(a.operatorWrite() && a.serviceWrite('web'));
    }
    assert.equal(new AclResolver({}).enabled, false);
  });

  test('replicationToken is acl.tokens.replication or ""', () => {
    assert.equal(new AclResolver(base).replicationToken(), REPL);
    assert.equal(new AclResolver({ enabled: true }).replicationToken(), '');
  });

  test('an invalid section is refused at construction with a ConfigError', () => {
    assert.throws(() => new AclResolver({ ...base, static_tokens: [{ secret_id: 'x', policies: ['nope'] }] }), (err: unknown) => {
      assert.ok(err instanceof MeshfedError);
      assert.equal(err.code, 'MESHFED_ERR_CONFIG_INVALID');
      assert.match(err.message, /acl\.static_tokens\[0\]\.policies\[0\]: unknown policy "nope"/);
      return true;
    });
  });
});

describe('require* helpers, errors and HTTP mapping', () => {
  const r = new AclResolver(base);
  test('each helper passes when granted and refuses with Consul text naming the permission', () => {
    const reader = r.resolve(READER);
    requireServiceRead(reader, 'web');
    requireNodeWrite(reader, 'n1');
    requireNodeRead(reader, 'n1');
    denied(() => requireOperatorRead(reader), 'operator:read');
    denied(() => requireOperatorWrite(reader), 'operator:write');
    denied(() => requireServiceWrite(reader, 'web'), 'service:write');
    denied(() => requireServiceRead(reader, 'db'), 'service:read');
    denied(() => requireNodeRead(reader, 'n2'), 'node:read');
    denied(() => requireNodeWrite(reader, 'n2'), 'node:write');
    requireOperatorWrite(r.resolve(REPL));
    requireOperatorRead(r.resolve(MGMT));
  });

  test('aclHttpStatus: 403 with the error text for ACL errors (local or forwarded), undefined otherwise', () => {
    let denial: unknown;
    try {
      requireOperatorRead(r.resolve(''));
    } catch (err) {
      denial = err;
    }
    assert.deepEqual(aclHttpStatus(denial), { status: 403, text: "Permission denied: token lacks permission 'operator:read'" });
    let missing: unknown;
    try {
      r.resolve('nope');
    } catch (err) {
      missing = err;
    }
    assert.deepEqual(aclHttpStatus(missing), { status: 403, text: 'ACL not found' });
    assert.deepEqual(aclHttpStatus(new Error('Permission denied')), { status: 403, text: 'Permission denied' });
    assert.equal(aclHttpStatus(new Error('boom')), undefined);
    assert.equal(aclHttpStatus(new MeshfedError('MESHFED_ERR_OTHER', 'nope')), undefined);
    assert.equal(isAclError('ACL not found'), true);
  });

  test('tokenFromHttp reads X-Consul-Token, then Authorization: Bearer, then ?token=; tokenFromRpc reads Token', () => {
    const req = (headers: Record<string, string>, query = ''): HttpRequest => ({
      method: 'GET',
      path: '/v1/x',
      query: new URLSearchParams(query),
      headers,
      body: Buffer.alloc(0),
      params: {},
      signal: new AbortController().signal,
    });
    assert.equal(tokenFromHttp(req({ 'x-consul-token': 'a' }, 'token=c')), 'a');
    assert.equal(tokenFromHttp(req({ authorization: 'Bearer b' }, 'token=c')), 'b');
    assert.equal(tokenFromHttp(req({}, 'token=c')), 'c');
    assert.equal(tokenFromHttp(req({})), '');
    assert.equal(tokenFromRpc({ Token: 'x' }), 'x');
    assert.equal(tokenFromRpc({}), '');
    assert.equal(tokenFromRpc({ Token: 42 }), '');
  });
});

describe('wanfed-reference §5.5 ACL matrix (FederationState.List / ListMeshGateways) at the authorizer level', () => {
  const gateways = [
    {
      Node: { Node: 'gw1', Address: '10.0.0.1' },
      Service: { Service: 'mesh-gateway', ID: 'mesh-gateway', Port: 8443 },
      Checks: [],
    },
  ];
  const policies: NonNullable<AclOptions['policies']> = [
    { name: 'nothing', rules: {} },
    { name: 'svc-read', rules: { service_prefix: { '': 'read' } } },
    { name: 'node-read', rules: { node_prefix: { '': 'read' } } },
    { name: 'op-read', rules: { operator: 'read' } },
  ];
  const tokens = {
    none: [] as string[],
    svc: ['svc-read'],
    node: ['node-read'],
    both: ['svc-read', 'node-read'],
    op: ['op-read'],
  };
  const r = new AclResolver({
    enabled: true,
    default_policy: 'deny',
    tokens: { initial_management: MGMT },
    policies,
    static_tokens: Object.entries(tokens).map(([k, p]) => ({ secret_id: `secret-${k}`, policies: p })),
  });
  const listAllowed = (a: Authorizer): boolean => {
    try {
      requireOperatorRead(a);
      return true;
    } catch (err) {
      assert.ok(isAclError(err));
      return false;
    }
  };
  const rows: { who: string; secret: string; list: boolean; gws: number; filtered: boolean }[] = [
    { who: 'no token', secret: '', list: false, gws: 0, filtered: true },
    { who: 'token without permissions', secret: 'secret-none', list: false, gws: 0, filtered: true },
    { who: 'service:read only', secret: 'secret-svc', list: false, gws: 0, filtered: true },
    { who: 'node:read only', secret: 'secret-node', list: false, gws: 0, filtered: true },
    { who: 'service:read + node:read', secret: 'secret-both', list: false, gws: 1, filtered: false },
    { who: 'operator:read', secret: 'secret-op', list: true, gws: 0, filtered: true },
    { who: 'management', secret: MGMT, list: true, gws: 1, filtered: false },
  ];
  for (const row of rows) {
    test(`${row.who}: List ${row.list ? 'allowed' : 'denied'}, ${row.gws} gateway(s)${row.filtered ? ', filtered' : ''}`, () => {
      const a = r.resolve(row.secret);
      assert.equal(listAllowed(a), row.list);
      const out = filterCheckServiceNodes(a, gateways);
      assert.equal(out.nodes.length, row.gws);
      assert.equal(out.filtered, row.filtered);
      if (row.gws === 1) assert.equal(out.nodes[0], gateways[0]);
      const byDc = filterDatacenterCheckServiceNodes(a, { dc1: gateways, dc2: [] });
      assert.deepEqual(Object.keys(byDc.nodes), row.gws === 1 ? ['dc1'] : []);
      assert.equal(byDc.filtered, row.filtered);
    });
  }

  test('an exact deny on the gateway node removes it even with prefix reads; entries without node/service are dropped', () => {
    const r2 = new AclResolver({
      enabled: true,
      default_policy: 'allow',
      policies: [{ name: 'p', rules: { node: { gw1: 'deny' }, node_prefix: { '': 'read' }, service_prefix: { '': 'read' } } }],
      static_tokens: [{ secret_id: 's', policies: ['p'] }],
    });
    const a = r2.resolve('s');
    const gw2 = { Node: { Node: 'gw2' }, Service: { Service: 'mesh-gateway' } };
    const out = filterCheckServiceNodes(a, [...gateways, gw2, { Node: null, Service: { Service: 'x' } }]);
    assert.deepEqual(out.nodes, [gw2]);
    assert.equal(out.filtered, true);
    assert.equal(filterCheckServiceNodes(a, []).filtered, false);
  });
});
