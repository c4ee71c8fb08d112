import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { allowAll, compilePolicies, denyAll, strongerLevel, type AclRules, type Authorizer } from '../../../src/plugins/acl/index.js';

type Check = 'nodeRead' | 'nodeWrite' | 'serviceRead' | 'serviceWrite';

describe('acl authorizer: rule precedence', () => {
  // Each row: the token's policies, the default policy, a check on a name, the expected answer.
  const rows: { name: string; rules: AclRules[]; def: 'allow' | 'deny'; check: Check; on: string; want: boolean }[] = [
    { name: 'no rules, default deny', rules: [], def: 'deny', check: 'serviceRead', on: 'web', want: false },
    { name: 'no rules, default allow', rules: [], def: 'allow', check: 'serviceWrite', on: 'web', want: true },
    { name: 'exact read grants read', rules: [{ service: { web: 'read' } }], def: 'deny', check: 'serviceRead', on: 'web', want: true },
    { name: 'exact read refuses write even with default allow', rules: [{ service: { web: 'read' } }], def: 'allow', check: 'serviceWrite', on: 'web', want: false },
    { name: 'write implies read', rules: [{ node: { n1: 'write' } }], def: 'deny', check: 'nodeRead', on: 'n1', want: true },
    { name: 'write grants write', rules: [{ node: { n1: 'write' } }], def: 'deny', check: 'nodeWrite', on: 'n1', want: true },
    { name: 'exact rule does not match a longer name', rules: [{ service: { web: 'write' } }], def: 'deny', check: 'serviceRead', on: 'web2', want: false },
    { name: 'unmatched name falls back to default allow', rules: [{ service: { web: 'deny' } }], def: 'allow', check: 'serviceRead', on: 'db', want: true },
    { name: 'deny refuses read with default allow', rules: [{ service: { web: 'deny' } }], def: 'allow', check: 'serviceRead', on: 'web', want: false },
    { name: 'empty prefix matches everything', rules: [{ node_prefix: { '': 'read' } }], def: 'deny', check: 'nodeRead', on: 'anything', want: true },
    { name: 'prefix matches names that start with it', rules: [{ service_prefix: { 'web-': 'read' } }], def: 'deny', check: 'serviceRead', on: 'web-1', want: true },
    { name: 'prefix does not match other names', rules: [{ service_prefix: { 'web-': 'read' } }], def: 'deny', check: 'serviceRead', on: 'db', want: false },
    { name: 'longest prefix wins (longer deny)', rules: [{ service_prefix: { '': 'write', 'web-': 'deny' } }], def: 'allow', check: 'serviceRead', on: 'web-1', want: false },
    { name: 'longest prefix wins (longer read over shorter deny)', rules: [{ service_prefix: { '': 'deny', 'web-': 'read' } }], def: 'deny', check: 'serviceRead', on: 'web-1', want: true },
    { name: 'longest prefix wins across policies', rules: [{ node_prefix: { 'n': 'deny' } }, { node_prefix: { 'n1': 'write' } }], def: 'deny', check: 'nodeWrite', on: 'n10', want: true },
    { name: 'exact beats a longer matching prefix', rules: [{ service: { web: 'deny' }, service_prefix: { 'web': 'write' } }], def: 'allow', check: 'serviceRead', on: 'web', want: false },
    { name: 'exact read beats prefix write (write refused)', rules: [{ service: { web: 'read' } }, { service_prefix: { '': 'write' } }], def: 'deny', check: 'serviceWrite', on: 'web', want: false },
    { name: 'exact write beats prefix deny', rules: [{ node: { gw1: 'write' }, node_prefix: { '': 'deny' } }], def: 'deny', check: 'nodeRead', on: 'gw1', want: true },
    { name: 'same exact rule in two policies: deny beats write', rules: [{ service: { web: 'write' } }, { service: { web: 'deny' } }], def: 'allow', check: 'serviceRead', on: 'web', want: false },
    { name: 'same exact rule in two policies: write beats read', rules: [{ service: { web: 'read' } }, { service: { web: 'write' } }], def: 'deny', check: 'serviceWrite', on: 'web', want: true },
    { name: 'same prefix in two policies: deny beats read', rules: [{ node_prefix: { '': 'read' } }, { node_prefix: { '': 'deny' } }], def: 'allow', check: 'nodeRead', on: 'n1', want: false },
    { name: 'node rules do not grant services', rules: [{ node_prefix: { '': 'write' } }], def: 'deny', check: 'serviceRead', on: 'n1', want: false },
    { name: 'service rules do not grant nodes', rules: [{ service_prefix: { '': 'write' } }], def: 'deny', check: 'nodeRead', on: 'web', want: false },
  ];
  for (const r of rows) {
    test(`${r.name}: ${r.check}(${JSON.stringify(r.on)}) = ${r.want}`, () => {
      const authz = compilePolicies(r.rules, r.def);
      assert.equal(authz[r.check](r.on), r.want);
      assert.equal(authz.isManagement, false);
    });
  }
});

describe('acl authorizer: operator', () => {
  const op = (rules: AclRules[], def: 'allow' | 'deny'): [boolean, boolean] => {
    const a = compilePolicies(rules, def);
    return [a.operatorRead(), a.operatorWrite()];
  };
  test('read, write, deny and merge order', () => {
    assert.deepEqual(op([{ operator: 'read' }], 'allow'), [true, false]);
    assert.deepEqual(op([{ operator: 'write' }], 'deny'), [true, true]);
    assert.deepEqual(op([{ operator: 'deny' }], 'allow'), [false, false]);
    assert.deepEqual(op([{ operator: 'write' }, { operator: 'deny' }], 'allow'), [false, false]);
    assert.deepEqual(op([{ operator: 'read' }, { operator: 'write' }], 'deny'), [true, true]);
  });
  test('no operator rule: default_policy decides', () => {
    assert.deepEqual(op([{ service_prefix: { '': 'write' } }], 'deny'), [false, false]);
    assert.deepEqual(op([{ service_prefix: { '': 'write' } }], 'allow'), [true, true]);
  });
});

describe('acl authorizer: allowAll / denyAll / strongerLevel', () => {
  const every = (a: Authorizer): boolean[] => [a.operatorRead(), a.operatorWrite(), a.nodeRead('n'), a.nodeWrite('n'), a.serviceRead('s'), a.serviceWrite('s')];
  test('allowAll allows everything and is management; denyAll refuses everything', () => {
    assert.deepEqual(every(allowAll), [true, true, true, true, true, true]);
    assert.equal(allowAll.isManagement, true);
    assert.deepEqual(every(denyAll), [false, false, false, false, false, false]);
    assert.equal(denyAll.isManagement, false);
    assert.ok(Object.isFrozen(allowAll) && Object.isFrozen(denyAll));
  });
  test('strongerLevel: deny > write > read, regardless of order', () => {
    assert.equal(strongerLevel(undefined, 'read'), 'read');
    assert.equal(strongerLevel('read', 'write'), 'write');
    assert.equal(strongerLevel('write', 'read'), 'write');
    assert.equal(strongerLevel('deny', 'write'), 'deny');
    assert.equal(strongerLevel('write', 'deny'), 'deny');
  });
  test('compiling the same rules for two authorizers shares no state', () => {
    const rules: AclRules = { service: { web: 'read' } };
    const a = compilePolicies([rules], 'deny');
    const b = compilePolicies([rules, { service: { web: 'deny' } }], 'deny');
    assert.equal(a.serviceRead('web'), true);
    assert.equal(b.serviceRead('web'), false);
    assert.deepEqual(rules, { service: { web: 'read' } });
  });
});
