import assert from 'node:assert/strict';
import { test } from 'node:test';
import { redact } from '../../src/core/logger.js';
import { createMemoryLogger } from '../../src/testing/index.js';

test('secret-looking fields are redacted, through nested objects and arrays', () => {
  const out = redact({
    token: 't1',
    acl: { tokens: { replication: 'r1' }, static_tokens: [{ secret_id: 's1', description: 'kept' }, { SecretID: 's2' }] },
    list: [[{ replication_token: 'r2' }]],
    encrypt: 'k1',
    plain: 'visible',
    empty_token: '',
  });
  const text = JSON.stringify(out);
  for (const secret of ['t1', 'r1', 's1', 's2', 'r2', 'k1']) assert.ok(!text.includes(`"${secret}"`), `${secret} leaked: ${text}`);
  assert.match(text, /"description":"kept"/);
  assert.match(text, /"plain":"visible"/);
  assert.match(text, /"empty_token":""/);
});

test('a logger never writes a redacted value, and leaves objects without secrets untouched', () => {
  const log = createMemoryLogger('trace');
  const fields = { a: [1, 2, { b: 'c' }] };
  assert.equal(redact(fields), fields);
  log.info('config', { acl: { static_tokens: [{ secret_id: 'hunter2' }] } });
  assert.ok(!JSON.stringify(log.entries).includes('hunter2'));
});
