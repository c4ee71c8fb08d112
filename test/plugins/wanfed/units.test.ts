import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { PassThrough } from 'node:stream';
import { encodePacketFrame, PacketConnPool, servePacketStream, splitNodeName } from '../../../src/plugins/wanfed/index.js';
import { createMemoryLogger, duplexPair, FakeClock } from '../../../src/testing/index.js';

describe('splitNodeName (TestSplitNodeName)', () => {
  test('exactly two parts, or an error naming the name', () => {
    for (const bad of ['', 'foo', 'foo.bar.baz']) assert.throws(() => splitNodeName(bad), new RegExp(`node name does not encode a datacenter: ${bad.replace(/\./g, '\\.')}$`));
    assert.deepEqual(splitNodeName('foo.bar'), ['foo', 'bar']);
    assert.deepEqual(splitNodeName('.bar'), ['', 'bar']);
    assert.deepEqual(splitNodeName('*.dc1'), ['*', 'dc1']);
  });
});

describe('packet connection pool', () => {
  test('LIFO reuse per node, failed connections closed, idle ones reaped after the max time, closed pool refuses', async () => {
    const clock = new FakeClock();
    const pool = new PacketConnPool(120_000, clock);
    let dials = 0;
    const dial = async () => {
      dials++;
      return new PassThrough();
    };
    const a = await pool.acquireOrDial('s1.dc2', dial);
    const b = await pool.acquireOrDial('s1.dc2', dial);
    assert.equal(dials, 2);
    pool.returnOrClose(a);
    pool.returnOrClose(b);
    assert.equal(pool.idle, 2);
    const again = await pool.acquireOrDial('s1.dc2', dial);
    assert.equal(again.conn, b.conn, 'not last-in-first-out');
    again.failed = true;
    pool.returnOrClose(again);
    assert.equal(b.conn.destroyed, true);
    assert.equal(pool.idle, 1);
    clock.advance(119_000);
    assert.equal(pool.idle, 1);
    clock.advance(2_000);
    assert.equal(pool.idle, 0);
    assert.equal(a.conn.destroyed, true);
    pool.close();
    await assert.rejects(pool.acquireOrDial('s1.dc2', dial), /wanfed: connection pool is closed/);
    assert.throws(() => new PacketConnPool(0), /needs a max time configured/);
  });
});

test('an idle pooled connection that errors (gateway reset) is dropped, not an uncaught error', async () => {
  const pool = new PacketConnPool(120_000, new FakeClock());
  const pc = await pool.acquireOrDial('s1.dc2', async () => new PassThrough());
  pool.returnOrClose(pc);
  pc.conn.emit('error', new Error('read ECONNRESET'));
  assert.equal(pc.conn.destroyed, true);
  assert.equal(pc.failed, true);
  let dials = 0;
  const next = await pool.acquireOrDial('s1.dc2', async () => {
    dials++;
    return new PassThrough();
  });
  assert.equal(dials, 1, 'the dead connection was reused');
  assert.notEqual(next.conn, pc.conn);
  pool.close();
});

describe('gossip packet stream (server side of consul/wan-gossip/packet)', () => {
  const serve = (opts: { maxIdleMs?: number } = {}) => {
    const [client, server] = duplexPair();
    const got: Buffer[] = [];
    const logger = createMemoryLogger('warn');
    const done = servePacketStream(server, { ingest: (b) => got.push(b), remoteAddress: '127.0.0.9:443', logger, ...opts });
    return { client, server, got, done, logger };
  };

  test('many packets per connection, split anywhere', async () => {
    const { client, got, done } = serve();
    const frames = Buffer.concat([encodePacketFrame(Buffer.from('hello')), encodePacketFrame(Buffer.alloc(70_000, 7)), encodePacketFrame(Buffer.from('x'))]);
    for (let i = 0; i < frames.length; i += 333) client.write(frames.subarray(i, i + 333));
    const deadline = Date.now() + 5000;
    while (got.length < 3 && Date.now() < deadline) await new Promise((r) => setImmediate(r));
    assert.deepEqual(got.map((b) => b.length), [5, 70_000, 1]);
    assert.equal(got[0]?.toString(), 'hello');
    client.end();
    await done;
  });

  for (const [name, bytes, reason] of [
    ['a zero-length frame', Buffer.from([0, 0, 0, 0]), /packet too short \(0 bytes\)/],
    ['a frame over 4 MiB', Buffer.from([0, 0x40, 0, 1]), /gossip packet size 4194305 exceeds threshold of 4194304/],
    ['a connection that ends inside a frame', Buffer.from([0, 0, 0, 9, 1, 2]), /ended inside a frame/],
  ] as const) {
    test(`${name} closes that connection only, logged once with the reason`, async () => {
      const { client, server, done, logger, got } = serve();
      client.write(encodePacketFrame(Buffer.from('ok')));
      client.write(bytes);
      if (name.includes('ends')) client.end();
      await done;
      assert.equal(server.destroyed, true);
      assert.equal(got.length, 1);
      const lines = logger.entries.filter((e) => e.msg === 'closing gossip packet connection');
      assert.equal(lines.length, 1);
      assert.match(String(lines[0]?.fields?.['reason']), reason);
    });
  }

  test('an idle connection is closed after the idle time', async () => {
    const { server, done } = serve({ maxIdleMs: 50 });
    const keepAlive = setInterval(() => undefined, 1000); // the idle timer is unref'd, as in an agent
    await done;
    clearInterval(keepAlive);
    assert.equal(server.destroyed, true);
  });
});
