/**
 * Hostile and broken input reaching a running Serf: truncated, mistyped and absurd messages,
 * bad push-pull states, bad tags, bad ping payloads, throwing handlers, queue floods. Each is
 * dropped and logged once (rate-limited), nothing throws out of a delegate, and the node keeps
 * working afterwards.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { NodeState } from '../../../../src/plugins/gossip/wire/index.js';
import { SerfMessageType, encodeRelayMessage, encodeSerfMessage } from '../../../../src/plugins/gossip/serf/index.js';
import { logLines, makeCluster, stopAll, userEvents, type TestNode } from './serf-harness.js';
import { unhex } from './helpers.js';

const at = (nodes: TestNode[], i: number): TestNode => nodes[i] as TestNode;

describe('serf robustness', () => {
  test('malformed gossip is dropped, logged once per kind, and the node still works', async () => {
    const c = await makeCluster(2);
    const [a, b] = [at(c.nodes, 0), at(c.nodes, 1)];
    const bad: [string, Uint8Array][] = [
      ['truncated leave', unhex('00 83 a5 4c54')],
      ['leave with a string LTime', unhex('00 83 a5 4c54696d65 a3 666f6f a4 4e6f6465 a1 61 a5 5072756e65 c2')],
      ['user event with an absurd map length', unhex('03 df ffffffff')],
      ['user event with an absurd string length', unhex('03 81 a4 4e616d65 db 7fffffff 61')],
      ['query with an absurd array', unhex('04 81 a7 46696c74657273 dd ffffffff')],
      ['query response that is not a map', unhex('05 93 01 02 03')],
      ['join with a nested bomb', Buffer.concat([Buffer.of(1), Buffer.alloc(5000, 0x91)])],
      ['relay with a 3-byte IP', encodeRelayMessage({ DestAddr: { IP: Uint8Array.of(1, 2, 3), Port: 1 }, DestName: 'x' }, Uint8Array.of(5, 0x80))],
      ['relay header only', unhex('09 82 a8 44657374416464 72')],
    ];
    for (const [what, bytes] of bad) {
      for (let i = 0; i < 3; i++) {
        assert.doesNotThrow(() => a.ml.delegates.delegate?.notifyMsg(Buffer.from(bytes)), what);
      }
    }
    const warns = a.logger.entries.filter((e) => e.level === 'warn');
    assert.ok(warns.length >= 5 && warns.length <= bad.length, `one warning per kind, got ${warns.length}: ${warns.map((w) => w.msg).join(' | ')}`);
    assert.equal(a.logger.entries.filter((e) => e.level === 'error').length, 0);
    // Unknown types only at debug.
    a.ml.delegates.delegate?.notifyMsg(Buffer.of(0x2a, 0x80));
    a.ml.delegates.delegate?.notifyMsg(Buffer.alloc(0));
    assert.ok(a.logger.entries.some((e) => e.level === 'debug' && e.msg.includes('unknown type')));
    assert.equal(a.logger.entries.filter((e) => e.level === 'warn').length, warns.length);
    // Still working.
    await b.serf.userEvent('after', Buffer.from('ok'), false);
    c.net.tick(5);
    assert.deepEqual(userEvents(a), ['after=ok']);
    await stopAll(c);
  });

  test('bad push-pull states, tags, ping payloads and filters are survived', async () => {
    const c = await makeCluster(2);
    const a = at(c.nodes, 0);
    const d = a.ml.delegates;
    for (const state of [Buffer.alloc(0), Buffer.of(3, 0x80), unhex('02 de ffff'), unhex('02 81 a5 4c54696d65 a1 78')]) {
      assert.doesNotThrow(() => d.delegate?.mergeRemoteState(Buffer.from(state), true));
    }
    assert.ok(logLines(a, 'warn', 'remote state') >= 2);
    const node = (name: string, meta: Uint8Array): Parameters<typeof a.ml.learn>[0] => ({
      name, addr: '10.8.8.8', port: 7946, meta, state: NodeState.alive, vsn: { pmin: 1, pmax: 5, pcur: 2, dmin: 2, dmax: 5, dcur: 5 }, incarnation: 1,
    });
    a.ml.learn(node('badtags', unhex('ff 82 a1')));
    a.ml.learn(node('oldrole', Buffer.from('web')));
    assert.deepEqual(a.serf.members().find((m) => m.name === 'badtags')?.tags, {});
    assert.deepEqual(a.serf.members().find((m) => m.name === 'oldrole')?.tags, { role: 'web' });
    assert.equal(logLines(a, 'warn', 'failed to decode tags of badtags'), 1);
    const peer = node('p', Buffer.alloc(0));
    for (const payload of [Buffer.alloc(0), Buffer.of(9, 1, 2), Buffer.of(1, 0xc1), Buffer.of(1, 0x80)]) {
      assert.doesNotThrow(() => d.ping?.notifyPingComplete(peer, 1, payload));
    }
    assert.ok(a.logger.entries.some((e) => e.level === 'debug' && e.msg.includes('ping payload')));
    // A query with an unknown filter type is not processed (but still rebroadcast).
    const q = encodeSerfMessage(SerfMessageType.query, {
      LTime: 80, ID: 1, Addr: Uint8Array.of(10, 0, 0, 2), Port: 7946, SourceNode: 'b', Filters: [Uint8Array.of(7, 0x90)], Timeout: 1e9, Name: 'f',
    });
    d.delegate?.notifyMsg(Buffer.from(q));
    assert.equal(a.events.filter((e) => e.kind === 'query').length, 0);
    assert.equal(logLines(a, 'warn', 'filter'), 1);
    assert.equal(a.serf.stats().query_queue, '1');
    // Conflicts name both addresses.
    d.conflict?.notifyConflict(node('x', Buffer.alloc(0)), { ...node('x', Buffer.alloc(0)), addr: '10.7.7.7' });
    assert.ok(a.logger.entries.some((e) => e.level === 'warn' && e.msg.includes('10.8.8.8:7946') && e.msg.includes('10.7.7.7:7946')));
    await stopAll(c);
  });

  test('a throwing onEvent is logged and does not break delivery', async () => {
    let calls = 0;
    const c = await makeCluster(2, undefined, {
      onEvent: () => {
        calls++;
        throw new Error('handler bug');
      },
    });
    const [a, b] = [at(c.nodes, 0), at(c.nodes, 1)];
    await b.serf.userEvent('x', Buffer.alloc(0), true);
    c.net.tick(5);
    assert.deepEqual(userEvents(a), ['x=']);
    assert.ok(calls > 0);
    assert.ok(a.logger.entries.some((e) => e.level === 'error' && e.msg.includes('onEvent handler threw')));
    await stopAll(c);
  });

  test('broadcast queues and the intent buffer stay bounded under a flood', async () => {
    const c = await makeCluster(2, undefined, { maxQueueDepth: 8 });
    const a = at(c.nodes, 0);
    for (let i = 0; i < 50; i++) {
      a.ml.delegates.delegate?.notifyMsg(Buffer.from(encodeSerfMessage(SerfMessageType.userEvent, { LTime: 100 + i, Name: `e${i}` })));
      a.ml.delegates.delegate?.notifyMsg(Buffer.from(encodeSerfMessage(SerfMessageType.leave, { LTime: 100 + i, Node: `ghost${i}` })));
    }
    assert.ok(Number(a.serf.stats().event_queue) <= 8);
    assert.ok(Number(a.serf.stats().intent_queue) <= 8);
    assert.equal(logLines(a, 'warn', 'event queue depth exceeds'), 1);
    assert.equal(logLines(a, 'warn', 'intent buffer is full'), 1);
    await stopAll(c);
  });

  test('query responses for unknown or finished queries are ignored with one warning', async () => {
    const c = await makeCluster(1);
    const a = at(c.nodes, 0);
    for (let i = 0; i < 5; i++) {
      a.ml.delegates.delegate?.notifyMsg(Buffer.from(encodeSerfMessage(SerfMessageType.queryResponse, { LTime: 999, ID: 1, From: 'z' })));
    }
    assert.equal(logLines(a, 'warn', 'non-running query'), 1);
    await stopAll(c);
  });
});
