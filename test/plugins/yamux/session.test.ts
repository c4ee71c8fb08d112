/**
 * YamuxSession/YamuxStream between two meshfed sessions, over an in-memory pair and over real
 * TCP on 127.0.0.1: open/accept, data both ways, many streams, multi-MiB transfers, half-close,
 * reset, go away, ping, backlog, close.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { describe, test } from 'node:test';
import { MeshfedError } from '../../../src/core/errors.js';
import { ErrorCode } from '../../../src/index.js';
import { GoAwayCode, YamuxErrorCode, YamuxSession, YamuxStream, isYamuxError } from '../../../src/plugins/yamux/index.js';
import { createMemoryLogger, duplexPair, waitFor } from '../../../src/testing/index.js';
import { activeTimers, pattern, readAll, sessionPair, writeAllAndEnd, type Transport } from './helpers.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

for (const transport of ['memory', 'tcp'] as Transport[]) {
  describe(`yamux over ${transport}`, () => {
    test('open/accept and data both ways; ids odd for the client, even for the server', async () => {
      const p = await sessionPair(transport);
      try {
        const [c, s] = await Promise.all([p.client.open(), p.server.accept()]);
        assert.equal(c.id, 1);
        assert.equal(s.id, 1);
        assert.ok(c instanceof YamuxStream);
        c.write('ping from client');
        assert.equal(String(await once(s, 'data').then(([d]) => d as Buffer)), 'ping from client');
        s.write('pong from server');
        assert.equal(String(await once(c, 'data').then(([d]) => d as Buffer)), 'pong from server');
        const [s2, c2] = await Promise.all([p.server.open(), p.client.accept()]);
        assert.equal(s2.id, 2);
        assert.equal(c2.id, 2);
        s2.end('server-opened');
        assert.equal(String(await readAll(c2)), 'server-opened');
        if (transport === 'tcp') assert.equal(c.remoteAddress, '127.0.0.1');
        assert.equal(p.client.numStreams, 2);
      } finally {
        await p.close();
      }
    });

    test('64 concurrent streams echo 256 KiB each with checksums intact', async () => {
      const p = await sessionPair(transport, {}, { onStream: (s) => s.pipe(s) });
      try {
        const results = await Promise.all(
          Array.from({ length: 64 }, async (_, i) => {
            const data = pattern(256 * 1024 + i, i + 1);
            const s = await p.client.open();
            const echoed = readAll(s);
            await writeAllAndEnd(s, data);
            return sha(await echoed) === sha(data);
          }),
        );
        assert.deepEqual(results, Array(64).fill(true));
        await waitFor(() => p.client.numStreams === 0 && p.server.numStreams === 0, { message: 'streams released' });
      } finally {
        await p.close();
      }
    });

    test('a 16 MiB transfer each way through 256 KiB windows arrives intact', async () => {
      const p = await sessionPair(transport);
      try {
        const up = pattern(16 * 1024 * 1024, 7);
        const down = pattern(16 * 1024 * 1024, 9);
        const [c, s] = await Promise.all([p.client.open(), p.server.accept()]);
        const [gotUp, gotDown] = await Promise.all([readAll(s), readAll(c), writeAllAndEnd(c, up), writeAllAndEnd(s, down)]);
        assert.equal(sha(gotUp), sha(up));
        assert.equal(sha(gotDown), sha(down));
      } finally {
        await p.close();
      }
    });

    test('FIN is a half-close: after end() the stream still reads until the peer ends', async () => {
      const p = await sessionPair(transport);
      try {
        const [c, s] = await Promise.all([p.client.open(), p.server.accept()]);
        c.end('request');
        assert.equal(String(await readAll(s)), 'request'); // server saw our FIN as 'end'
        assert.equal(p.server.numStreams, 1, 'half-closed stream stays open');
        const reply = readAll(c);
        s.write('reply part 1, ');
        s.end('part 2');
        assert.equal(String(await reply), 'reply part 1, part 2');
        await waitFor(() => c.destroyed && s.destroyed, { message: 'both ends closed' });
        assert.equal(p.client.numStreams, 0);
        assert.equal(p.server.numStreams, 0);
      } finally {
        await p.close();
      }
    });

    test('destroy() sends RST: the peer stream fails with STREAM_RESET, both sides release it', async () => {
      const p = await sessionPair(transport);
      try {
        const [c, s] = await Promise.all([p.client.open(), p.server.accept()]);
        c.write('x');
        await once(s, 'data');
        const failed = once(s, 'error') as Promise<[Error]>;
        c.destroy();
        const [err] = await failed;
        assert.ok(isYamuxError(err, YamuxErrorCode.STREAM_RESET), String(err));
        assert.match(err.message, /reset by the peer/);
        await waitFor(() => p.client.numStreams === 0 && p.server.numStreams === 0);
        // writes on the reset stream fail instead of hanging
        const werr = await new Promise<Error | null | undefined>((resolve) => s.write('y', resolve));
        assert.ok(werr);
        // the session is fine
        assert.ok((await p.client.ping()) >= 0);
      } finally {
        await p.close();
      }
    });

    test('go away: the peer can no longer open, existing streams keep working', async () => {
      const p = await sessionPair(transport);
      try {
        const [c, s] = await Promise.all([p.client.open(), p.server.accept()]);
        const seen = once(p.client, 'goaway');
        p.server.goAway();
        assert.deepEqual(await seen, [GoAwayCode.Normal]);
        assert.equal(p.client.remoteGoAway, true);
        await assert.rejects(p.client.open(), (e) => isYamuxError(e, YamuxErrorCode.REMOTE_GOAWAY));
        c.end('still works');
        assert.equal(String(await readAll(s)), 'still works');
        // the side that went away can still open streams towards the other
        const [s2, c2] = await Promise.all([p.server.open(), p.client.accept()]);
        s2.end('hi');
        assert.equal(String(await readAll(c2)), 'hi');
      } finally {
        await p.close();
      }
    });

    test('ping() measures a round trip', async () => {
      const p = await sessionPair(transport);
      try {
        const rtts = await Promise.all([p.client.ping(), p.server.ping(), p.client.ping()]);
        for (const rtt of rtts) assert.ok(rtt >= 0 && rtt < 5000, String(rtt));
      } finally {
        await p.close();
      }
    });

    test('close() destroys every stream, fails pending waits and leaves no timers', async () => {
      const before = activeTimers();
      const p = await sessionPair(transport, { keepAliveIntervalMs: 1000 }, { keepAliveIntervalMs: 1000 });
      const [c, s] = await Promise.all([p.client.open(), p.server.accept()]);
      c.end(); // arms the close timeout
      const pendingAccept = assert.rejects(p.client.accept(), (e) => isYamuxError(e, YamuxErrorCode.SESSION_CLOSED));
      const serverStreamError = new Promise((resolve) => s.once('error', resolve));
      await p.client.close();
      await pendingAccept;
      await waitFor(() => c.destroyed && s.destroyed, { message: 'streams destroyed' });
      // the far side lost its open stream with the connection: that one is an error
      assert.ok(isYamuxError(await serverStreamError, YamuxErrorCode.CONNECTION));
      assert.equal(c.destroyed, true);
      await p.server.closed;
      assert.equal(p.client.isClosed, true);
      assert.equal(p.server.isClosed, true);
      assert.equal(p.client.error, undefined, 'a local close is not an error');
      await assert.rejects(p.client.open(), (e) => isYamuxError(e, YamuxErrorCode.SESSION_CLOSED));
      await p.close();
      await waitFor(() => activeTimers() <= before, { message: `timers left: ${process.getActiveResourcesInfo().join(',')}` });
    });
  });
}

test('a reader that does not read stalls the writer at the window instead of buffering', async () => {
  const p = await sessionPair('memory');
  try {
    const [c, s] = await Promise.all([p.client.open(), p.server.accept()]);
    s.pause();
    const chunk = Buffer.alloc(64 * 1024, 1);
    let written = 0;
    let blocked = false;
    for (let i = 0; i < 64 && !blocked; i++) {
      blocked = !c.write(chunk);
      written += chunk.length;
    }
    await waitFor(() => c.sendWindow === 0 && s.readableLength === 256 * 1024, { message: 'sender window exhausted, receiver holds one window' });
    assert.equal(s.receiveWindow, 0);
    // Nothing more moves while the reader does not read; the sender's buffer stays bounded.
    await new Promise((r) => setImmediate(r));
    assert.equal(s.readableLength, 256 * 1024);
    assert.ok(c.writableLength <= c.writableHighWaterMark + chunk.length, `sender buffered ${c.writableLength}`);
    assert.equal(c.writableNeedDrain || blocked, true, 'write() returned false');
    // Reading resumes the flow: everything arrives.
    const total = written;
    c.end();
    const got = await readAll(s);
    assert.equal(got.length, total);
  } finally {
    await p.close();
  }
});

test('a larger maxStreamWindowSize is advertised in the SYN/ACK and used', async () => {
  const big = 1024 * 1024;
  const p = await sessionPair('memory', { maxStreamWindowSize: big }, { maxStreamWindowSize: big });
  try {
    const [c, s] = await Promise.all([p.client.open(), p.server.accept()]);
    await waitFor(() => c.sendWindow === big && s.sendWindow === big, { message: `windows ${c.sendWindow} ${s.sendWindow}` });
    s.pause();
    c.write(Buffer.alloc(900 * 1024));
    await waitFor(() => s.readableLength === 900 * 1024);
    s.resume();
  } finally {
    await p.close();
  }
});

test('accept backlog overflow: excess SYNs are refused with RST', async () => {
  const p = await sessionPair('memory', {}, { acceptBacklog: 2 });
  try {
    const streams = [await p.client.open(), await p.client.open(), await p.client.open()];
    const errors = streams.map((s) => new Promise<unknown>((resolve) => s.once('error', resolve)));
    const err = await errors[2];
    assert.ok(isYamuxError(err, YamuxErrorCode.STREAM_RESET));
    assert.match((err as Error).message, /refused/);
    assert.equal(p.server.numStreams, 2);
    const a = await p.server.accept();
    const b = await p.server.accept();
    assert.deepEqual([a.id, b.id], [1, 3]);
    // the accepted ones work
    streams[0]?.end('first');
    assert.equal(String(await readAll(a)), 'first');
  } finally {
    await p.close();
  }
});

test('open() waits while acceptBacklog opens are unacknowledged, and honours its signal', async () => {
  const p = await sessionPair('memory', { acceptBacklog: 1 }, { acceptBacklog: 4 });
  try {
    const [a1] = await Promise.all([p.client.open()]);
    // a1 is acknowledged only when the server accepts it
    const ac = new AbortController();
    const waiting = p.client.open({ signal: ac.signal });
    ac.abort(new Error('give up'));
    await assert.rejects(waiting, (e) => e instanceof MeshfedError && e.code === ErrorCode.ABORTED);
    const second = p.client.open();
    const s1 = await p.server.accept();
    assert.equal(s1.id, a1.id);
    const a2 = await second; // the ACK freed the slot
    assert.equal(a2.id, 3);
  } finally {
    await p.close();
  }
});

test('accept() honours its AbortSignal; accept() with onStream is refused', async () => {
  const p = await sessionPair('memory', {}, { onStream: () => undefined });
  try {
    const ac = new AbortController();
    const pending = p.client.accept({ signal: ac.signal });
    ac.abort();
    await assert.rejects(pending, (e) => e instanceof MeshfedError && e.code === ErrorCode.ABORTED);
    await assert.rejects(p.server.accept(), (e) => isYamuxError(e, YamuxErrorCode.ACCEPT_WITH_CALLBACK));
  } finally {
    await p.close();
  }
});

test('an onStream callback that throws gets its stream reset, the session keeps serving', async () => {
  const logger = createMemoryLogger();
  let calls = 0;
  const p = await sessionPair(
    'memory',
    {},
    {
      logger,
      onStream: (s) => {
        if (++calls === 1) throw new Error('handler bug');
        s.end('ok');
      },
    },
  );
  try {
    const first = await p.client.open();
    const err = await new Promise((resolve) => first.once('error', resolve));
    assert.ok(isYamuxError(err, YamuxErrorCode.STREAM_RESET));
    const second = await p.client.open();
    assert.equal(String(await readAll(second)), 'ok');
    assert.ok(logger.entries.some((e) => /onStream callback threw/.test(e.msg)));
  } finally {
    await p.close();
  }
});

test('the peer closing the connection ends the session; open streams fail with CONNECTION', async () => {
  const [a, b] = duplexPair();
  const client = YamuxSession.client(a, { keepAliveIntervalMs: 0 });
  const server = YamuxSession.server(b, { keepAliveIntervalMs: 0 });
  const c = await client.open();
  const s = await server.accept();
  s.on('error', () => undefined);
  const failed = new Promise((resolve) => c.once('error', resolve));
  b.destroy();
  assert.ok(isYamuxError(await failed, YamuxErrorCode.CONNECTION));
  assert.equal(await client.closed, undefined, 'an EOF is not a session error');
  assert.equal(client.isClosed, true);
  await server.closed;
});

test('invalid options are refused with every problem listed', () => {
  const [a] = duplexPair();
  assert.throws(
    () => YamuxSession.client(a, { acceptBacklog: 0, maxStreamWindowSize: 1024, keepAliveIntervalMs: -1 }),
    (e) => isYamuxError(e, YamuxErrorCode.OPTIONS) && /acceptBacklog/.test(e.message) && /maxStreamWindowSize/.test(e.message) && /keepAliveIntervalMs/.test(e.message),
  );
  a.destroy();
});
