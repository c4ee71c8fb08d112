import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RateLimitedLog } from '../../../../src/plugins/gossip/transport/index.js';
import { createMemoryLogger } from '../../../../src/testing/index.js';

test('RateLimitedLog logs a kind once per interval and reports how many were suppressed', () => {
  const logger = createMemoryLogger();
  let now = 1000;
  const log = new RateLimitedLog(logger, { intervalMs: 100, now: () => now });
  for (let i = 0; i < 5; i++) log.warn('empty', 'empty packet', { from: `h:${i}` });
  log.warn('big', 'big packet');
  assert.deepEqual(
    logger.entries.map((e) => [e.msg, e.fields]),
    [
      ['empty packet', { from: 'h:0' }],
      ['big packet', {}],
    ],
  );
  now += 100;
  log.warn('empty', 'empty packet', { from: 'h:9' });
  assert.deepEqual(logger.entries[2]?.fields, { from: 'h:9', suppressed: 4 });
  log.warn('empty', 'empty packet');
  assert.equal(logger.entries.length, 3);
});
