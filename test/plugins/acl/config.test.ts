import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError, createAgent, resolveConfig, type RawConfig } from '../../../src/index.js';
import { acl, validateAclConfig, type AclOptions } from '../../../src/plugins/acl/index.js';
import { silentLogger } from '../../../src/index.js';

const host = { hostname: 'h', privateIPv4: '127.0.0.1' };

/** Problems of resolveConfig (schema level) as `key|message`. */
function schemaProblems(raw: RawConfig): string[] {
  try {
    resolveConfig(raw, { host });
    return [];
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.problems.map((p) => `${p.key}|${p.message}`);
  }
}

const crossProblems = (a: AclOptions): string[] => validateAclConfig(a).map((p) => `${p.key}|${p.message}`);

function has(got: string[], key: string, text: string): void {
  assert.ok(got.some((p) => p.startsWith(`${key}|`) && p.includes(text)), `no problem at ${key} containing ${JSON.stringify(text)}; got:\n${got.join('\n')}`);
}

describe('acl configuration: schema', () => {
  test('a full section resolves, with [] defaults for policies and static_tokens', () => {
    const c = resolveConfig(
      {
        acl: {
          enabled: true,
          default_policy: 'deny',
          tokens: { initial_management: 'm', replication: 'r', default: 'd' },
          policies: [{ name: 'p', rules: { operator: 'write', node_prefix: { '': 'read' }, service: { web: 'deny' } } }],
          static_tokens: [{ secret_id: 'r', description: 'repl', policies: ['p'] }],
        },
      },
      { host },
    );
    assert.equal(c.acl.policies[0]?.name, 'p');
    assert.equal(c.acl.policies[0]?.rules.operator, 'write');
    assert.deepEqual(c.acl.policies[0]?.rules.node_prefix, { '': 'read' });
    assert.deepEqual(c.acl.policies[0]?.rules.service_prefix, {});
    assert.deepEqual(c.acl.static_tokens[0]?.policies, ['p']);
    const d = resolveConfig({}, { host });
    assert.deepEqual([d.acl.policies, d.acl.static_tokens], [[], []]);
  });

  test('bad access levels are named by their path', () => {
    const got = schemaProblems({
      acl: { policies: [{ name: 'p', rules: { operator: 'admin', node: { n1: 'rw' }, service_prefix: { web: 'all' } } }] },
    });
    has(got, 'acl.policies[0].rules.operator', '"admin" is not one of "read", "write", "deny"');
    has(got, 'acl.policies[0].rules.node.n1', '"rw" is not one of "read", "write", "deny"');
    has(got, 'acl.policies[0].rules.service_prefix.web', '"all" is not one of');
  });

  test('unknown keys and wrong types inside policies and tokens are named', () => {
    const got = schemaProblems({ acl: { policies: [{ name: 'p', rulez: {} }], static_tokens: [{ secret: 'x', policies: 'p' }] } });
    has(got, 'acl.policies[0].rulez', 'unknown configuration key "acl.policies[0].rulez"');
    has(got, 'acl.static_tokens[0].secret', 'unknown configuration key');
    has(got, 'acl.static_tokens[0].policies', 'expected a list');
  });
});

describe('acl configuration: cross-key rules (validateAclConfig)', () => {
  const p = (name?: string): NonNullable<AclOptions['policies']>[number] => ({ name, rules: {} });

  test('a valid section has no problems', () => {
    assert.deepEqual(
      crossProblems({ tokens: { initial_management: 'm', default: 'not-declared' }, policies: [p('a'), p('b')], static_tokens: [{ secret_id: 's', policies: ['a', 'b'] }] }),
      [],
    );
  });

  test('policy names: required and unique', () => {
    const got = crossProblems({ policies: [p('a'), p(''), p(undefined), p('a')] });
    has(got, 'acl.policies[1].name', 'required');
    has(got, 'acl.policies[2].name', 'required');
    has(got, 'acl.policies[3].name', 'duplicate policy name "a" (also acl.policies[0])');
    assert.equal(got.length, 3);
  });

  test('unknown policy referenced by a token lists the known ones', () => {
    const got = crossProblems({ policies: [p('ops')], static_tokens: [{ secret_id: 's', policies: ['ops', 'opz'] }] });
    assert.deepEqual(got, ['acl.static_tokens[0].policies[1]|unknown policy "opz": declare it in acl.policies or fix the name (known: "ops")']);
  });

  test('secrets: required, unique, distinct from initial_management and from "anonymous" — never echoed', () => {
    const dup = 'dup-secret-0a1b2c';
    const mgmt = 'mgmt-secret-3d4e5f';
    const got = crossProblems({
      tokens: { initial_management: mgmt },
      static_tokens: [
        { secret_id: dup, policies: [] },
        { secret_id: '', policies: [] },
        { policies: [] },
        { secret_id: dup, policies: [] },
        { secret_id: mgmt, policies: [] },
        { secret_id: 'anonymous', policies: [] },
      ],
    });
    has(got, 'acl.static_tokens[1].secret_id', 'required');
    has(got, 'acl.static_tokens[2].secret_id', 'required');
    has(got, 'acl.static_tokens[3].secret_id', 'same secret as acl.static_tokens[0].secret_id');
    has(got, 'acl.static_tokens[4].secret_id', 'same secret as acl.tokens.initial_management');
    has(got, 'acl.static_tokens[5].secret_id', 'reserved for the anonymous token');
    assert.equal(got.length, 5);
    for (const line of got) assert.ok(!line.includes(dup) && !line.includes(mgmt), line);
  });

  test('levels and default_policy are checked for sections built by hand', () => {
    const got = crossProblems({ default_policy: 'maybe' as 'allow', policies: [{ name: 'x', rules: { operator: 'admin' as 'read', service: { web: 'rw' as 'read' } } }] });
    has(got, 'acl.default_policy', '"maybe" is not one of "allow", "deny"');
    has(got, 'acl.policies[0].rules.operator', '"admin" is not one of');
    has(got, 'acl.policies[0].rules.service.web', '"rw" is not one of');
  });

  test('createAgent with acl() refuses an invalid section with MESHFED_ERR_CONFIG_INVALID naming each path', async () => {
    await assert.rejects(
      createAgent({
        config: { acl: { enabled: true, policies: [{ name: 'a' }, { name: 'a' }], static_tokens: [{ secret_id: 's', policies: ['b'] }] } },
        host,
        logger: silentLogger(),
        plugins: [acl()],
      }),
      (err: Error & { code?: string }) => {
        assert.equal(err.code, 'MESHFED_ERR_CONFIG_INVALID');
        assert.match(err.message, /plugin "acl" failed to validate/);
        assert.match(err.message, /acl\.policies\[1\]\.name: duplicate policy name "a"/);
        assert.match(err.message, /acl\.static_tokens\[0\]\.policies\[0\]: unknown policy "b"/);
        return true;
      },
    );
  });
});
