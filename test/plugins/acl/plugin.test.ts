import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createAgent, MeshfedError, type Agent } from '../../../src/index.js';
import { acl, AclTokens, requireOperatorRead, requireOperatorWrite, requireServiceWrite } from '../../../src/plugins/acl/index.js';
import { createMemoryLogger, type MemoryLogger } from '../../../src/testing/index.js';

const host = { hostname: 'h', privateIPv4: '127.0.0.1' };

const SECRETS = {
  management: 'mgmt-9f8e7d6c-5b4a-3210-secret',
  replication: 'repl-0123abcd-4567-ef89-secret',
  reader: 'reader-aa11bb22-cc33-dd44-secret',
  // Configured as acl.tokens.default but not declared: tokenless requests are refused.
  undeclaredDefault: 'default-77ee66ff-secret',
  agent: 'agent-55dd44cc-secret',
};

const aclSection = (overrides: Record<string, unknown> = {}) => ({
  enabled: true,
  default_policy: 'deny',
  tokens: { initial_management: SECRETS.management, replication: SECRETS.replication, agent: SECRETS.agent, default: SECRETS.undeclaredDefault },
  policies: [
    { name: 'replication', rules: { operator: 'write', node_prefix: { '': 'read' }, service_prefix: { '': 'read' } } },
    { name: 'web-reader', rules: { service: { web: 'read' } } },
  ],
  static_tokens: [
    { secret_id: SECRETS.replication, description: 'replication', policies: ['replication'] },
    { secret_id: SECRETS.reader, description: 'web reader', policies: ['web-reader'] },
  ],
  ...overrides,
});

async function agentWith(logger: MemoryLogger, section: Record<string, unknown>): Promise<Agent> {
  return createAgent({ config: { node_name: 'a1', acl: section, ports: { http: -1 } }, host, logger, plugins: [acl()] });
}

describe('acl plugin', () => {
  test('binds the resolver; status reports counts; enforcement follows the configuration', async () => {
    const agent = await agentWith(createMemoryLogger('silent'), aclSection());
    await agent.start();
    try {
      const r = agent.services.get(AclTokens.Resolver);
      assert.equal(r.enabled, true);
      assert.equal(r.replicationToken(), SECRETS.replication);
      requireOperatorWrite(r.resolve(SECRETS.replication));
      assert.throws(() => requireServiceWrite(r.resolve(SECRETS.reader), 'web'), /^MeshfedError: Permission denied/);
      const st = agent.status().plugins.find((p) => p.name === 'acl');
      assert.deepEqual(st?.status, { enabled: true, default_policy: 'deny', policies: 2, static_tokens: 2 });
    } finally {
      await agent.stop();
    }
  });

  test('with acl.enabled=false the resolver allows everything', async () => {
    const agent = await agentWith(createMemoryLogger('silent'), { enabled: false });
    const r = agent.services.get(AclTokens.Resolver);
    assert.equal(r.enabled, false);
    requireOperatorWrite(r.resolve('whatever'));
    requireOperatorRead(r.resolve(undefined));
  });

  test('two agents in one process keep separate resolvers', async () => {
    const a = await agentWith(createMemoryLogger('silent'), aclSection({ default_policy: 'allow', tokens: {} }));
    const b = await agentWith(createMemoryLogger('silent'), aclSection({ tokens: {} }));
    assert.equal(a.services.get(AclTokens.Resolver).resolve('').operatorRead(), true);
    assert.equal(b.services.get(AclTokens.Resolver).resolve('').operatorRead(), false);
  });

  test('tokens are never logged nor put in an error message', async () => {
    const logger = createMemoryLogger('trace');
    const agent = await agentWith(logger, aclSection());
    await agent.start();
    const messages: string[] = [];
    try {
      const r = agent.services.get(AclTokens.Resolver);
      const attempts = [...Object.values(SECRETS), `${SECRETS.reader}x`, 'bogus-secret-1234', '', undefined];
      for (const s of attempts) {
        try {
          const authz = r.resolve(s);
          requireOperatorWrite(authz);
          requireServiceWrite(authz, 'web');
        } catch (err) {
          assert.ok(err instanceof MeshfedError, String(err));
          assert.ok(['MESHFED_ERR_ACL_NOT_FOUND', 'MESHFED_ERR_ACL_DENIED'].includes(err.code), err.code);
          messages.push(err.message, String(err.stack));
        }
      }
      // Also a refused configuration whose problems concern secrets.
      await assert.rejects(
        agentWith(logger, aclSection({ static_tokens: [{ secret_id: SECRETS.management, policies: ['nope'] }, { secret_id: SECRETS.management, policies: [] }] })),
        (err: Error) => {
          messages.push(err.message, String(err.stack));
          return true;
        },
      );
    } finally {
      await agent.stop();
    }
    // The test is only meaningful if something was logged and refused.
    assert.ok(logger.entries.some((e) => e.msg === 'ACLs enabled'), 'the plugin logged nothing');
    assert.ok(logger.entries.some((e) => e.level === 'warn' && e.msg.includes('acl.tokens.default')), 'no warning about the undeclared default token');
    assert.ok(messages.some((m) => m.startsWith('ACL not found')));
    assert.ok(messages.some((m) => m.startsWith('Permission denied')));
    assert.ok(messages.some((m) => m.includes('same secret as')));
    const logged = logger.entries.map((e) => `${e.msg} ${JSON.stringify(e.fields)}`);
    for (const secret of Object.values(SECRETS)) {
      for (const line of logged) assert.ok(!line.includes(secret), `a log line contains a secret: ${line}`);
      for (const m of messages) assert.ok(!m.includes(secret), `an error message contains a secret: ${m}`);
    }
  });
});
