/**
 * Serf user events and queries on the fake memberlist: delivery once despite repeated gossip,
 * the event ring, size limits, Go-exact encoding; queries with acks and responses, node and tag
 * filters, relays, internal `_serf_*` queries (ping, conflict, key management).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  FilterType, KeyResponse, Member, MemberStatus, QueryFlag, SerfMessageType, coordinatePayload, decodeSerfMessage, encodeFilter,
  encodeRelayMessage, encodeSerfMessage, type SerfQueryEvent,
} from '../../../../src/plugins/gossip/serf/index.js';
import { decode } from '../../../../src/plugins/rpc/msgpack/index.js';
import { Keyring } from '../../../../src/plugins/gossip/wire/keyring.js';
import { prng } from '../../../../src/testing/prng.js';
import { drive, logLines, makeCluster, stopAll, userEvents, type TestCluster, type TestNode } from './serf-harness.js';

const at = (nodes: TestNode[], i: number): TestNode => nodes[i] as TestNode;

function queries(n: TestNode): SerfQueryEvent[] {
  return n.events.filter((e): e is SerfQueryEvent => e.kind === 'query');
}

/** Answer every non-internal query with `<node>:<payload>`. */
function autoRespond(c: TestCluster): void {
  for (const n of c.nodes) {
    const prev = n.events.push.bind(n.events);
    n.events.push = (...items) => {
      for (const e of items) if (e.kind === 'query') void e.respond(Buffer.from(`${n.name}:${e.payload.toString()}`));
      return prev(...items);
    };
  }
}

describe('serf user events', () => {
  test('delivered exactly once on every node despite repeated gossip; encoded as Go serf does', async () => {
    const c = await makeCluster(3);
    const a = at(c.nodes, 0);
    await a.serf.userEvent('deploy', Buffer.from('v1'), false);
    const out = a.ml.delegates.delegate?.getBroadcasts(2, 1400) ?? [];
    const ev = out.find((m) => m[0] === SerfMessageType.userEvent);
    assert.ok(ev);
    const ltime = Number((decodeSerfMessage(ev).body as { LTime: number }).LTime);
    // 03 84 a2"CC" c2 a5"LTime" <n> a4"Name" a6"deploy" a7"Payload" a2"v1"
    const expected = `0384a24343c2a54c54696d65${ltime.toString(16).padStart(2, '0')}a44e616d65a66465706c6f79a75061796c6f6164a27631`;
    assert.equal(Buffer.from(ev).toString('hex'), expected);
    c.net.tick(10);
    for (const n of c.nodes) assert.deepEqual(userEvents(n), ['deploy=v1'], n.name);
    // The same bytes again (a late rebroadcast) are ignored: the event ring dedupes.
    for (const n of c.nodes) n.ml.delegates.delegate?.notifyMsg(Buffer.from(ev));
    c.net.tick(5);
    for (const n of c.nodes) assert.deepEqual(userEvents(n), ['deploy=v1'], n.name);
    // Same LTime, other payload: a different event.
    at(c.nodes, 1).ml.delegates.delegate?.notifyMsg(Buffer.from(encodeSerfMessage(SerfMessageType.userEvent, { LTime: ltime, Name: 'deploy', Payload: Buffer.from('v9') })));
    c.net.tick(5);
    for (const n of c.nodes) assert.deepEqual(userEvents(n), ['deploy=v1', 'deploy=v9'], n.name);
    const user = a.events.find((e) => e.kind === 'user');
    assert.ok(user?.kind === 'user' && user.coalesce === false && typeof user.ltime === 'bigint');
    await stopAll(c);
  });

  test('size limit and events older than the ring are dropped', async () => {
    const c = await makeCluster(2);
    const [a, b] = [at(c.nodes, 0), at(c.nodes, 1)];
    await assert.rejects(a.serf.userEvent('big', Buffer.alloc(600), false), /user event exceeds configured limit of 512 bytes before encoding/);
    await assert.rejects(a.serf.userEvent('big', Buffer.alloc(500), false), /encoded user event exceeds configured limit of 512 bytes after encoding/);
    const ev = (ltime: number, name: string): Buffer => Buffer.from(encodeSerfMessage(SerfMessageType.userEvent, { LTime: ltime, Name: name }));
    b.ml.delegates.delegate?.notifyMsg(ev(2000, 'new'));
    b.ml.delegates.delegate?.notifyMsg(ev(10, 'ancient'));
    assert.deepEqual(userEvents(b), ['new=']);
    assert.equal(logLines(b, 'warn', 'old user event'), 1);
    await stopAll(c);
  });
});

describe('serf queries', () => {
  test('responses and acks reach the asker; the query event has the source and a deadline', async () => {
    const c = await makeCluster(3);
    autoRespond(c);
    const a = at(c.nodes, 0);
    const h = await a.serf.query('who', Buffer.from('q1'), { requestAck: true, timeoutMs: 5_000 });
    const result = await drive(c, h.done);
    assert.deepEqual([...result.acks].sort(), ['a', 'b', 'c']);
    assert.deepEqual(result.responses.map((r) => r.payload.toString()).sort(), ['a:q1', 'b:q1', 'c:q1']);
    for (const n of c.nodes) {
      const q = queries(n);
      assert.equal(q.length, 1, `${n.name} got the query once`);
      assert.equal(q[0]?.sourceNode, 'a');
      assert.equal(q[0]?.name, 'who');
      await assert.rejects(q[0]?.respond(Buffer.from('again')) ?? Promise.resolve(), /response already sent/);
    }
    assert.equal(h.finished, true);
    await stopAll(c);
  });

  test('node and tag filters decide who answers; the response is refused past the deadline', async () => {
    const c = await makeCluster(3, (n) => ({ role: n === 'c' ? 'web' : 'db' }));
    autoRespond(c);
    const a = at(c.nodes, 0);
    const byNode = await a.serf.query('n', Buffer.alloc(0), { filterNodes: ['b'], timeoutMs: 2_000, requestAck: true });
    const r1 = await drive(c, byNode.done);
    assert.deepEqual(r1.responses.map((r) => r.from), ['b']);
    assert.deepEqual(r1.acks, ['b']);
    const byTag = await a.serf.query('t', Buffer.alloc(0), { filterTags: { role: '^w.b$' }, timeoutMs: 2_000 });
    const r2 = await drive(c, byTag.done);
    assert.deepEqual(r2.responses.map((r) => r.from), ['c']);
    // Go-style inline flags work; catastrophic patterns are refused (not answered).
    const ci = await a.serf.query('ci', Buffer.alloc(0), { filterTags: { role: '(?i)^WEB$' }, timeoutMs: 2_000 });
    assert.deepEqual((await drive(c, ci.done)).responses.map((r) => r.from), ['c']);
    const evil = await a.serf.query('evil', Buffer.alloc(0), { filterTags: { role: '^(a+)+$' }, timeoutMs: 2_000 });
    assert.deepEqual((await drive(c, evil.done)).responses, []);
    // A query event answered too late.
    const late = await a.serf.query('late', Buffer.alloc(0), { timeoutMs: 1_000 });
    c.net.tick(3);
    const q = queries(at(c.nodes, 1)).find((e) => e.name === 'late');
    assert.ok(q);
    await c.clock.advanceAsync(2_000);
    assert.equal(late.finished, true);
    await stopAll(c);
  });

  test('relay factor: responses are also relayed (type 9) through other members and counted once', async () => {
    const rand = prng(7);
    const c = await makeCluster(4, undefined, { random: () => rand() / 2 ** 32 });
    autoRespond(c);
    const a = at(c.nodes, 0);
    const h = await a.serf.query('r', Buffer.from('x'), { relayFactor: 1, timeoutMs: 3_000 });
    const result = await drive(c, h.done);
    assert.deepEqual(result.responses.map((r) => r.from).sort(), ['a', 'b', 'c', 'd']);
    const relays = c.net.sent.filter((p) => p.msg[0] === SerfMessageType.relay);
    assert.ok(relays.length >= 3, `relays sent: ${relays.length}`);
    for (const r of relays) {
      const m = decodeSerfMessage(r.msg);
      assert.equal(m.type, SerfMessageType.relay);
      if (m.type === SerfMessageType.relay) {
        assert.equal(m.body.header.DestName, 'a');
        assert.deepEqual([...m.body.header.DestAddr.IP], a.ml.addr.split('.').map(Number));
        assert.equal(m.body.message[0], SerfMessageType.queryResponse);
      }
    }
    // Forwarded relays arrive at a as plain responses (from a relay node's sendToAddress to a).
    assert.ok(c.net.sent.some((p) => p.to.name === 'a' && p.from !== 'a' && p.msg[0] === SerfMessageType.queryResponse));
    await stopAll(c);
  });

  test('a received relay (type 9) is forwarded, inner message byte for byte, to DestAddr', async () => {
    const c = await makeCluster(2);
    const b = at(c.nodes, 1);
    const inner = encodeSerfMessage(SerfMessageType.queryResponse, { LTime: 5, ID: 6, From: 'z', Payload: Buffer.from('hi') });
    const relay = encodeRelayMessage({ DestAddr: { IP: Uint8Array.of(10, 0, 0, 1), Port: 7946 }, DestName: 'a' }, inner);
    b.ml.delegates.delegate?.notifyMsg(Buffer.from(relay));
    const fwd = c.net.sent.filter((p) => p.from === 'b');
    assert.equal(fwd.length, 1);
    assert.deepEqual(fwd[0]?.to, { name: 'a', addr: '10.0.0.1:7946' });
    assert.equal(Buffer.from(fwd[0]?.msg ?? []).toString('hex'), Buffer.from(inner).toString('hex'));
    await stopAll(c);
  });

  test('the query handle streams responses as they arrive and ends at the deadline', async () => {
    const c = await makeCluster(3);
    autoRespond(c);
    const h = await at(c.nodes, 0).serf.query('stream', Buffer.from('s'), { timeoutMs: 1_000 });
    const seen: string[] = [];
    const reading = (async () => {
      for await (const r of h) seen.push(r.from);
    })();
    await drive(c, reading);
    assert.deepEqual(seen.sort(), ['a', 'b', 'c']);
    assert.ok(h.deadline > 0 && h.finished);
    await stopAll(c);
  });

  test('noBroadcast queries are answered but not re-gossiped', async () => {
    const c = await makeCluster(2);
    const b = at(c.nodes, 1);
    const q = encodeSerfMessage(SerfMessageType.query, {
      LTime: 40, ID: 7, Addr: Uint8Array.of(10, 0, 0, 1), Port: 7946, SourceNode: 'a', Flags: QueryFlag.noBroadcast | QueryFlag.ack,
      Timeout: 1e9, Name: 'quiet',
    });
    b.ml.delegates.delegate?.notifyMsg(Buffer.from(q));
    assert.equal(b.serf.stats().query_queue, '0');
    assert.equal(queries(b).length, 1);
    const ack = c.net.sent.find((p) => p.from === 'b' && p.msg[0] === SerfMessageType.queryResponse);
    assert.ok(ack);
    const m = decodeSerfMessage(ack.msg);
    assert.ok(m.type === SerfMessageType.queryResponse && m.body.Flags === QueryFlag.ack && m.body.From === 'b' && m.body.ID === 7);
    assert.equal(ack.to.addr, '10.0.0.1:7946');
    assert.equal(ack.to.name, 'a');
    await stopAll(c);
  });

  test('_serf_ping is acked by everyone and never delivered to onEvent', async () => {
    const c = await makeCluster(3);
    const a = at(c.nodes, 0);
    const h = await a.serf.query('_serf_ping', Buffer.alloc(0), { requestAck: true, timeoutMs: 2_000 });
    const r = await drive(c, h.done);
    assert.deepEqual([...r.acks].sort(), ['a', 'b', 'c']);
    assert.deepEqual(r.responses, []);
    for (const n of c.nodes) assert.equal(queries(n).length, 0);
    await stopAll(c);
  });

  test('_serf_conflict: others answer with their Member record for the name; the named node does not', async () => {
    const c = await makeCluster(3, (n) => ({ role: n }));
    const a = at(c.nodes, 0);
    const h = await a.serf.query('_serf_conflict', Buffer.from('c'), { timeoutMs: 2_000 });
    const r = await drive(c, h.done);
    assert.deepEqual(r.responses.map((x) => x.from).sort(), ['a', 'b']);
    const cNode = at(c.nodes, 2);
    for (const resp of r.responses) {
      assert.equal(resp.payload[0], SerfMessageType.conflictResponse);
      const m = decode(resp.payload.subarray(1), Member);
      assert.equal(m.Name, 'c');
      assert.deepEqual([...m.Addr], cNode.ml.addr.split('.').map(Number));
      assert.equal(m.Port, 7946);
      assert.equal(m.Status, MemberStatus.alive);
      assert.deepEqual(m.Tags, { role: 'c' });
      assert.deepEqual([m.DelegateMin, m.DelegateMax, m.DelegateCur], [2, 5, 5]);
    }
    // Unknown name: a nil Member (06 c0).
    const h2 = await a.serf.query('_serf_conflict', Buffer.from('nobody'), { timeoutMs: 2_000 });
    const r2 = await drive(c, h2.done);
    assert.deepEqual(r2.responses.map((x) => Buffer.from(x.payload).toString('hex')), ['06c0', '06c0', '06c0']);
    await stopAll(c);
  });

  test('key queries: "not supported" without a keyring; applied and reported with one', async () => {
    const k1 = Buffer.alloc(16, 1);
    const k2 = Buffer.alloc(16, 2);
    const keyring = new Keyring(k1);
    const c = await makeCluster(2);
    const a = at(c.nodes, 0);
    const h = await a.serf.query('_serf_list-keys', Buffer.alloc(0), { timeoutMs: 2_000 });
    const r = await drive(c, h.done);
    assert.equal(r.responses.length, 2);
    for (const resp of r.responses) {
      assert.equal(resp.payload[0], SerfMessageType.keyResponse);
      const kr = decode(resp.payload.subarray(1), KeyResponse);
      assert.deepEqual(kr, { Result: false, Message: 'key management is not supported by this node', Keys: [], PrimaryKey: '' });
    }
    await stopAll(c);

    const k = await makeCluster(2, undefined, { keyring });
    const ka = at(k.nodes, 0);
    const install = await ka.serf.query('_serf_install-key', encodeSerfMessage(SerfMessageType.keyRequest, { Key: k2 }), { timeoutMs: 2_000 });
    const ri = await drive(k, install.done);
    assert.equal(ri.responses.length, 2);
    for (const resp of ri.responses) assert.equal(decode(resp.payload.subarray(1), KeyResponse).Result, true);
    assert.equal(keyring.keys.length, 2);
    const removePrimary = await ka.serf.query('_serf_remove-key', encodeSerfMessage(SerfMessageType.keyRequest, { Key: k1 }), { timeoutMs: 2_000 });
    const rr = await drive(k, removePrimary.done);
    for (const resp of rr.responses) {
      const kr = decode(resp.payload.subarray(1), KeyResponse);
      assert.equal(kr.Result, false);
      assert.match(kr.Message, /primary key/);
    }
    const list = await ka.serf.query('_serf_list-keys', Buffer.alloc(0), { timeoutMs: 2_000 });
    const rl = await drive(k, list.done);
    for (const resp of rl.responses) {
      const kr = decode(resp.payload.subarray(1), KeyResponse);
      assert.equal(kr.Result, true);
      assert.equal(kr.PrimaryKey, k1.toString('base64'));
      assert.deepEqual(kr.Keys, [k1.toString('base64'), k2.toString('base64')]);
    }
    await stopAll(k);
  });

  test('query size limit and the ping ack payload (PingVersion 1 + 130-byte coordinate as Go sends it)', async () => {
    const c = await makeCluster(1);
    const a = at(c.nodes, 0);
    await assert.rejects(a.serf.query('big', Buffer.alloc(2000)), /query exceeds limit of 1024 bytes/);
    const p = coordinatePayload();
    const f64 = (v: number): string => {
      const b = Buffer.alloc(8);
      b.writeDoubleBE(v);
      return `cb${b.toString('hex')}`;
    };
    const expected = `01 84 aa${Buffer.from('Adjustment').toString('hex')}${f64(0)} a5${Buffer.from('Error').toString('hex')}${f64(1.5)}`
      + ` a6${Buffer.from('Height').toString('hex')}${f64(1e-5)} a3${Buffer.from('Vec').toString('hex')}98${f64(0).repeat(8)}`;
    assert.equal(Buffer.from(p).toString('hex'), expected.replace(/\s/g, ''));
    assert.equal(p.length, 130);
    assert.deepEqual(a.ml.delegates.ping?.ackPayload(), p);
    await stopAll(c);
  });

  test('filter bytes built by the caller: tag filter on a missing tag matches the empty string', async () => {
    const c = await makeCluster(2, (n): Record<string, string> => (n === 'a' ? { role: 'x' } : {}));
    autoRespond(c);
    const b = at(c.nodes, 1);
    const q = encodeSerfMessage(SerfMessageType.query, {
      LTime: 60, ID: 9, Addr: Uint8Array.of(10, 0, 0, 1), Port: 7946, SourceNode: 'a',
      Filters: [encodeFilter({ type: FilterType.tag, tag: 'role', expr: '^$' })], Timeout: 1e9, Name: 'empty',
    });
    b.ml.delegates.delegate?.notifyMsg(Buffer.from(q));
    assert.equal(queries(b).length, 1);
    await stopAll(c);
  });
});
