import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { test } from 'node:test';
import { GossipPool } from '../../../src/plugins/gossip/index.js';
import { LOCAL_TIMINGS } from '../../../src/plugins/gossip/memberlist/index.js';
import { createNetTransport } from '../../../src/plugins/gossip/transport/index.js';
import { createMemoryLogger } from '../../../src/testing/index.js';

test('retryJoin gives up after retry_max attempts, logs each failure, and leaves no abort listeners behind', async () => {
  const logger = createMemoryLogger('warn');
  const pool = await GossipPool.create({
    pool: 'lan',
    name: 'lonely',
    transport: await createNetTransport({ bindAddr: '127.0.0.1', logger }),
    timings: { ...LOCAL_TIMINGS, tcpTimeoutMs: 200 },
    tags: {},
    reconnectTimeoutMs: 60_000,
    onEvent: () => undefined,
    logger,
  });
  try {
    const ac = new AbortController();
    // Port 1 on loopback refuses at once.
    const n = await pool.retryJoin({ addresses: ['127.0.0.1:1'], intervalMs: 5, maxAttempts: 15, signal: ac.signal });
    assert.equal(n, 0);
    assert.equal(pool.joined, false);
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0, 'every wait removed its listener');
    assert.equal(logger.entries.filter((e) => /Join lan failed, will retry/.test(e.msg)).length, 14);
    assert.ok(logger.entries.some((e) => /Join lan failed after 15 attempts, giving up/.test(e.msg)));
  } finally {
    await pool.shutdown();
  }
});
