/**
 * The session against a hand-driven peer: exact frames on the wire, flow-control limits, ping,
 * go away, and every kind of bad input (which must close the session with one clear error).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  Flag,
  FrameType,
  GoAwayCode,
  HEADER_SIZE,
  YamuxErrorCode,
  decodeFrameHeader,
  encodeFrameHeader,
  isYamuxError,
  type YamuxSession,
  type YamuxStream,
} from '../../../src/plugins/yamux/index.js';
import type { MeshfedError } from '../../../src/core/errors.js';
import { createMemoryLogger, waitFor } from '../../../src/testing/index.js';
import { pattern, rawPair, readAll, type RawPeer } from './helpers.js';

const KiB = 1024;

/** Collect the session's 'error' events. */
function errorsOf(session: YamuxSession): MeshfedError[] {
  const errors: MeshfedError[] = [];
  session.on('error', (e) => errors.push(e));
  return errors;
}

/** Open stream `id` from the raw peer (as client), accept it, and wait for the session's ACK. */
async function rawOpen(peer: RawPeer, session: YamuxSession, id: number): Promise<YamuxStream> {
  peer.send(FrameType.WindowUpdate, Flag.SYN, id, 0);
  const s = await session.accept();
  s.on('error', () => undefined);
  await peer.waitFrame((f) => f.streamId === id && (f.flags & Flag.ACK) !== 0, `ACK for ${id}`);
  return s;
}

/** The session's end, polled (in-memory pairs hold no ref'd handle to keep the loop alive). */
async function ended(session: YamuxSession): Promise<MeshfedError | undefined> {
  await waitFor(() => session.isClosed, { message: 'session closed' });
  return session.error;
}

test('frame headers encode and decode big-endian, 12 bytes', () => {
  const h = encodeFrameHeader(FrameType.WindowUpdate, Flag.SYN | Flag.ACK, 0x01020304, 0xfffffffe);
  assert.equal(h.toString('hex'), '0001000301020304fffffffe');
  assert.deepEqual(decodeFrameHeader(h), { version: 0, type: 1, flags: 3, streamId: 0x01020304, length: 0xfffffffe });
  assert.throws(() => decodeFrameHeader(h.subarray(0, 11)), RangeError);
  assert.throws(() => encodeFrameHeader(0, 0, 2 ** 32, 0), RangeError);
});

describe('wire behaviour', () => {
  test('open sends a window update with SYN and delta 0; data never exceeds the peer window', async () => {
    const { session, peer } = rawPair('client');
    try {
      const s = await session.open();
      const syn = await peer.waitFrame((f) => f.type === FrameType.WindowUpdate);
      assert.deepEqual(syn, { version: 0, type: FrameType.WindowUpdate, flags: Flag.SYN, streamId: 1, length: 0 });
      s.write(Buffer.alloc(1024 * KiB, 3));
      await waitFor(() => peer.dataBytes(1) === 256 * KiB, { message: 'first window sent' });
      await new Promise((r) => setImmediate(r));
      assert.equal(peer.dataBytes(1), 256 * KiB, 'nothing beyond the initial window');
      assert.equal(s.sendWindow, 0);
      for (const f of peer.frames.filter((x) => x.type === FrameType.Data)) assert.equal(f.flags, 0);
      peer.send(FrameType.WindowUpdate, Flag.ACK, 1, 100_000);
      await waitFor(() => peer.dataBytes(1) === 256 * KiB + 100_000, { message: 'exactly the granted window more' });
      await new Promise((r) => setImmediate(r));
      assert.equal(peer.dataBytes(1), 256 * KiB + 100_000);
    } finally {
      await session.close();
    }
  });

  test('accept sends ACK; window updates follow consumption (>= half the window), not arrival', async () => {
    const { session, peer } = rawPair('server');
    try {
      peer.send(FrameType.WindowUpdate, Flag.SYN, 1, 0);
      const s = await session.accept();
      const ack = await peer.waitFrame((f) => f.streamId === 1);
      assert.deepEqual(ack, { version: 0, type: FrameType.WindowUpdate, flags: Flag.ACK, streamId: 1, length: 0 });
      s.pause();
      const data = pattern(256 * KiB);
      for (let off = 0; off < data.length; off += 64 * KiB) peer.send(FrameType.Data, 0, 1, 64 * KiB, data.subarray(off, off + 64 * KiB));
      await waitFor(() => s.readableLength === 256 * KiB);
      await new Promise((r) => setImmediate(r));
      assert.equal(peer.frames.filter((f) => f.type === FrameType.WindowUpdate && f.streamId === 1).length, 1, 'no update while unread');
      const first = s.read(100 * KiB) as Buffer;
      assert.equal(first.length, 100 * KiB);
      await new Promise((r) => setImmediate(r));
      assert.equal(peer.frames.filter((f) => f.type === FrameType.WindowUpdate && f.streamId === 1).length, 1, 'below half: no update yet');
      s.read(60 * KiB);
      const upd = await peer.waitFrame((f) => f.type === FrameType.WindowUpdate && f.streamId === 1 && f.flags === 0, 'window update');
      assert.equal(upd.length, 160 * KiB);
      // a data frame can carry FIN
      peer.send(FrameType.Data, Flag.FIN, 1, 5, Buffer.from('tail!'));
      const rest = await readAll(s);
      assert.equal(rest.length, 96 * KiB + 5);
      assert.equal(rest.subarray(-5).toString(), 'tail!');
    } finally {
      await session.close();
    }
  });

  test('end() sends FIN as a window update; a header split across chunks still parses', async () => {
    const { session, peer } = rawPair('server');
    try {
      const s = await rawOpen(peer, session, 1);
      const frame = Buffer.concat([encodeFrameHeader(FrameType.Data, 0, 1, 3), Buffer.from('abc')]);
      for (const byte of frame) peer.sendBytes(Buffer.from([byte]));
      let got = '';
      s.on('data', (d: Buffer) => (got += d.toString()));
      await waitFor(() => got === 'abc', { message: `got ${got}` });
      s.end();
      const fin = await peer.waitFrame((f) => (f.flags & Flag.FIN) !== 0, 'FIN');
      assert.deepEqual(fin, { version: 0, type: FrameType.WindowUpdate, flags: Flag.FIN, streamId: 1, length: 0 });
      peer.send(FrameType.WindowUpdate, Flag.FIN, 1, 0);
      await waitFor(() => session.numStreams === 0, { message: 'released after both FINs' });
    } finally {
      await session.close();
    }
  });

  test('ping requests are answered with the same opaque value; ping() matches replies', async () => {
    const { session, peer } = rawPair('server');
    try {
      peer.send(FrameType.Ping, Flag.SYN, 0, 0x1234_5678);
      const pong = await peer.waitFrame((f) => f.type === FrameType.Ping);
      assert.deepEqual(pong, { version: 0, type: FrameType.Ping, flags: Flag.ACK, streamId: 0, length: 0x1234_5678 });
      const rtt = session.ping();
      const req = await peer.waitFrame((f) => f.type === FrameType.Ping && f.flags === Flag.SYN);
      peer.send(FrameType.Ping, Flag.ACK, 0, req.length + 1); // unknown id: ignored
      peer.send(FrameType.Ping, Flag.ACK, 0, req.length);
      assert.ok((await rtt) >= 0);
    } finally {
      await session.close();
    }
  });

  test('keepalive pings every interval; an unanswered one closes the session', async () => {
    const { session, peer } = rawPair('client', { keepAliveIntervalMs: 30, connectionWriteTimeoutMs: 250 });
    const errors = errorsOf(session);
    const first = await peer.waitFrame((f) => f.type === FrameType.Ping && f.flags === Flag.SYN, 'keepalive ping');
    peer.send(FrameType.Ping, Flag.ACK, 0, first.length);
    await peer.waitFrame((f) => f.type === FrameType.Ping && f.flags === Flag.SYN && f.length !== first.length, 'second keepalive');
    const err = await ended(session);
    assert.ok(isYamuxError(err, YamuxErrorCode.KEEPALIVE_TIMEOUT), String(err));
    assert.equal(errors.length, 1);
  });

  test('a local go away refuses later SYNs with RST; a remote one stops open()', async () => {
    const { session, peer } = rawPair('server');
    try {
      session.goAway();
      const ga = await peer.waitFrame((f) => f.type === FrameType.GoAway);
      assert.deepEqual(ga, { version: 0, type: FrameType.GoAway, flags: 0, streamId: 0, length: GoAwayCode.Normal });
      peer.send(FrameType.WindowUpdate, Flag.SYN, 1, 0);
      const rst = await peer.waitFrame((f) => f.streamId === 1);
      assert.deepEqual(rst, { version: 0, type: FrameType.WindowUpdate, flags: Flag.RST, streamId: 1, length: 0 });
      assert.equal(session.numStreams, 0);
      peer.send(FrameType.GoAway, 0, 0, GoAwayCode.Normal);
      await waitFor(() => session.remoteGoAway);
      await assert.rejects(session.open(), (e) => isYamuxError(e, YamuxErrorCode.REMOTE_GOAWAY));
      assert.equal(session.isClosed, false);
    } finally {
      await session.close();
    }
  });

  test('late frames for a stream this side reset are tolerated', async () => {
    const logger = createMemoryLogger();
    const { session, peer } = rawPair('server', { logger });
    const errors = errorsOf(session);
    try {
      const s = await rawOpen(peer, session, 1);
      s.destroy();
      await peer.waitFrame((f) => f.streamId === 1 && (f.flags & Flag.RST) !== 0, 'RST');
      peer.send(FrameType.Data, 0, 1, 1000, Buffer.alloc(1000));
      peer.send(FrameType.WindowUpdate, 0, 1, 5000);
      peer.send(FrameType.WindowUpdate, Flag.FIN, 1, 0);
      peer.send(FrameType.Data, 0, 1, 0);
      peer.send(FrameType.Ping, Flag.SYN, 0, 77);
      await peer.waitFrame((f) => f.type === FrameType.Ping && f.length === 77);
      assert.equal(session.isClosed, false);
      assert.deepEqual(errors, []);
    } finally {
      await session.close();
    }
  });

  test('the peer going away with an error code ends the session with REMOTE_GOAWAY_ERROR', async () => {
    const { session, peer } = rawPair('client');
    const errors = errorsOf(session);
    peer.send(FrameType.GoAway, 0, 0, GoAwayCode.ProtocolError);
    const err = await ended(session);
    assert.ok(isYamuxError(err, YamuxErrorCode.REMOTE_GOAWAY_ERROR));
    assert.match(String(err?.message), /protocol error/);
    assert.equal(errors.length, 1);
  });
});

interface BadCase {
  readonly name: string;
  /** Session side under test. */
  readonly side: 'client' | 'server';
  /** Drive the peer (may open streams first). */
  send(peer: RawPeer, session: YamuxSession): Promise<void> | void;
  readonly message: RegExp;
}

const BAD: BadCase[] = [
  { name: 'wrong version', side: 'server', send: (p) => p.sendBytes(Buffer.from('010100010000000100000000', 'hex')), message: /version 1, expected 0/ },
  { name: 'unknown frame type', side: 'server', send: (p) => p.send(7, 0, 0, 0), message: /unknown frame type 7/ },
  {
    name: 'data beyond the receive window',
    side: 'server',
    send: async (p, session) => {
      await rawOpen(p, session, 1);
      p.send(FrameType.Data, 0, 1, 200 * KiB, Buffer.alloc(200 * KiB));
      p.send(FrameType.Data, 0, 1, 100 * KiB, Buffer.alloc(100 * KiB));
    },
    message: /102400 bytes on stream 1 exceeds its receive window of 57344/,
  },
  {
    name: 'oversize length on an open stream (never allocated)',
    side: 'server',
    send: async (p, session) => {
      await rawOpen(p, session, 1);
      p.send(FrameType.Data, 0, 1, 0xffffffff);
    },
    message: /4294967295 bytes on stream 1 exceeds its receive window/,
  },
  {
    name: 'oversize length on a closed stream',
    side: 'server',
    send: async (p, session) => {
      (await rawOpen(p, session, 1)).destroy();
      await p.waitFrame((f) => (f.flags & Flag.RST) !== 0, 'RST');
      p.send(FrameType.Data, 0, 1, 0x7fffffff);
    },
    message: /2147483647 bytes for closed stream 1 exceeds any window/,
  },
  { name: 'data for a stream never opened (peer id)', side: 'server', send: (p) => p.send(FrameType.Data, 0, 5, 3, Buffer.from('abc')), message: /data frame for stream 5, which was never opened/ },
  { name: 'window update for a stream never opened (our id)', side: 'client', send: (p) => p.send(FrameType.WindowUpdate, 0, 9, 10), message: /window update frame for stream 9, which was never opened/ },
  {
    name: 'duplicate SYN',
    side: 'server',
    send: async (p, session) => {
      await rawOpen(p, session, 1);
      p.send(FrameType.WindowUpdate, Flag.SYN, 1, 0);
    },
    message: /duplicate SYN for stream 1/,
  },
  { name: 'SYN with this side’s parity', side: 'server', send: (p) => p.send(FrameType.WindowUpdate, Flag.SYN, 2, 0), message: /SYN for stream 2, an id of this side/ },
  { name: 'stream frame on id 0', side: 'client', send: (p) => p.send(FrameType.Data, 0, 0, 0), message: /data frame on stream id 0/ },
  {
    name: 'send window overflow',
    side: 'server',
    send: async (p, session) => {
      await rawOpen(p, session, 1);
      p.send(FrameType.WindowUpdate, 0, 1, 0xffffffff);
    },
    message: /overflows its send window/,
  },
  {
    name: 'second FIN',
    side: 'server',
    send: async (p, session) => {
      await rawOpen(p, session, 1);
      p.send(FrameType.WindowUpdate, Flag.FIN, 1, 0);
      p.send(FrameType.Data, Flag.FIN, 1, 0);
    },
    message: /second FIN on stream 1/,
  },
];

describe('bad input closes the session with one clear error', () => {
  for (const c of BAD) {
    test(c.name, async () => {
      const logger = createMemoryLogger();
      const { session, peer } = rawPair(c.side, { logger });
      const errors = errorsOf(session);
      const streamErrors: Error[] = [];
      session.on('close', () => undefined);
      const track = (s: YamuxStream): void => {
        s.on('error', (e) => streamErrors.push(e));
      };
      const opened = c.side === 'client' ? await session.open() : undefined;
      if (opened) track(opened);
      await c.send(peer, session);
      const err = await ended(session);
      assert.ok(isYamuxError(err, YamuxErrorCode.PROTOCOL), `${String(err)}`);
      assert.match(err.message, c.message);
      assert.match(err.message, /sent go away \(protocol error\)/);
      assert.equal(errors.length, 1, 'one error event');
      assert.equal(errors[0], err);
      assert.equal(logger.entries.filter((e) => e.level === 'warn' && /protocol error/.test(e.msg)).length, 1, 'logged once');
      const ga = await peer.waitFrame((f) => f.type === FrameType.GoAway, 'go away');
      assert.equal(ga.length, GoAwayCode.ProtocolError);
      assert.equal(session.numStreams, 0);
      if (opened) {
        await waitFor(() => opened.destroyed);
        assert.ok(streamErrors.every((e) => isYamuxError(e, YamuxErrorCode.SESSION_CLOSED)));
      }
      peer.conn.end();
    });
  }

  test('random bytes: every seed ends the session with a protocol-level error, never a crash', async () => {
    for (let seed = 1; seed <= 25; seed++) {
      const { session, peer } = rawPair(seed % 2 ? 'server' : 'client');
      const errors = errorsOf(session);
      peer.sendBytes(pattern(4096, seed * 7919));
      const err = await ended(session);
      assert.ok(
        isYamuxError(err, YamuxErrorCode.PROTOCOL) || isYamuxError(err, YamuxErrorCode.REMOTE_GOAWAY_ERROR),
        `seed ${seed}: ${String(err)}`,
      );
      assert.equal(errors.length, 1);
      peer.conn.end();
    }
  });

  test('a header without its payload is not an error until the bytes come', async () => {
    const { session, peer } = rawPair('server');
    try {
      const s = await rawOpen(peer, session, 1);
      peer.sendBytes(encodeFrameHeader(FrameType.Data, 0, 1, 10).subarray(0, HEADER_SIZE - 1));
      await new Promise((r) => setImmediate(r));
      assert.equal(session.isClosed, false);
      peer.sendBytes(Buffer.concat([Buffer.from([10]), Buffer.from('0123')]));
      peer.sendBytes(Buffer.from('456789'));
      s.on('data', () => undefined);
      await waitFor(() => s.receiveWindow === 256 * KiB - 10);
      assert.equal(session.isClosed, false);
    } finally {
      await session.close();
    }
  });
});
