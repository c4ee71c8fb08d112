/** LamportClock: serf `lamport.go` semantics, with uint64 wrap-around. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { LamportClock, toLamportTime } from '../../../../src/plugins/gossip/serf/index.js';

describe('LamportClock', () => {
  test('starts at 0; increment returns the new time', () => {
    const c = new LamportClock();
    assert.equal(c.time(), 0n);
    assert.equal(c.increment(), 1n);
    assert.equal(c.increment(), 2n);
    assert.equal(c.time(), 2n);
  });

  test('witness of an older time does nothing', () => {
    const c = new LamportClock(10);
    c.witness(3);
    assert.equal(c.time(), 10n);
    c.witness(9n);
    assert.equal(c.time(), 10n);
  });

  test('witness of the current or a newer time moves to that time + 1', () => {
    const c = new LamportClock(10);
    c.witness(10);
    assert.equal(c.time(), 11n);
    c.witness(41n);
    assert.equal(c.time(), 42n);
    assert.equal(c.increment(), 43n);
  });

  test('times beyond 2^53 stay exact; uint64 arithmetic wraps like Go', () => {
    const c = new LamportClock();
    c.witness(2n ** 60n);
    assert.equal(c.time(), 2n ** 60n + 1n);
    c.witness(2n ** 64n - 1n);
    assert.equal(c.time(), 0n, 'Go: other+1 overflows to 0');
    const d = new LamportClock(2n ** 64n - 1n);
    assert.equal(d.increment(), 0n);
  });

  test('two clocks are independent (no shared state)', () => {
    const a = new LamportClock();
    const b = new LamportClock();
    a.increment();
    assert.equal(b.time(), 0n);
  });

  test('toLamportTime refuses non-integer and negative numbers', () => {
    assert.equal(toLamportTime(5), 5n);
    assert.throws(() => toLamportTime(-1), RangeError);
    assert.throws(() => toLamportTime(1.5), RangeError);
  });
});
