/**
 * Timeouts, with small values through the options: stream open (no ACK), stream close (no FIN),
 * connection write (peer not reading), ping, and the bounded linger of close().
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Flag, FrameType, YamuxErrorCode, isYamuxError, type YamuxSession } from '../../../src/plugins/yamux/index.js';
import type { MeshfedError } from '../../../src/core/errors.js';
import { waitFor } from '../../../src/testing/index.js';
import { activeTimers, rawPair } from './helpers.js';

async function ended(session: YamuxSession): Promise<MeshfedError | undefined> {
  await waitFor(() => session.isClosed, { message: 'session closed' });
  return session.error;
}

test('stream open timeout: no ACK in time closes the session (as newer hashicorp/yamux does)', async () => {
  const before = activeTimers();
  const { session, peer } = rawPair('client', { streamOpenTimeoutMs: 50 });
  const errors: MeshfedError[] = [];
  session.on('error', (e) => errors.push(e));
  const s = await session.open();
  const streamErr = new Promise((resolve) => s.once('error', resolve));
  await peer.waitFrame((f) => (f.flags & Flag.SYN) !== 0, 'SYN');
  const err = await ended(session);
  assert.ok(isYamuxError(err, YamuxErrorCode.OPEN_TIMEOUT), String(err));
  assert.match(err.message, /stream 1 was not acknowledged .* within 50 ms/);
  assert.deepEqual(errors, [err]);
  assert.ok(isYamuxError(await streamErr, YamuxErrorCode.SESSION_CLOSED));
  await session.closed;
  await waitFor(() => activeTimers() <= before, { message: 'no timers left' });
});

test('an ACK in time cancels the open timeout', async () => {
  const { session, peer } = rawPair('client', { streamOpenTimeoutMs: 100 });
  try {
    const s = await session.open();
    peer.send(FrameType.WindowUpdate, Flag.ACK, 1, 0);
    s.write('x');
    await peer.waitFrame((f) => f.type === FrameType.Data);
    const t0 = Date.now();
    await waitFor(() => Date.now() - t0 > 300, { intervalMs: 20 });
    assert.equal(session.isClosed, false);
  } finally {
    await session.close();
  }
});

test('stream close timeout: after our FIN, no FIN from the peer resets the stream; the session lives', async () => {
  const { session, peer } = rawPair('client', { streamCloseTimeoutMs: 50 });
  try {
    const s = await session.open();
    peer.send(FrameType.WindowUpdate, Flag.ACK, 1, 0);
    s.on('data', () => undefined);
    s.end('bye');
    await peer.waitFrame((f) => (f.flags & Flag.FIN) !== 0, 'FIN');
    const rst = await peer.waitFrame((f) => (f.flags & Flag.RST) !== 0, 'RST after the close timeout');
    assert.deepEqual(rst, { version: 0, type: FrameType.WindowUpdate, flags: Flag.RST, streamId: 1, length: 0 });
    await waitFor(() => s.destroyed && session.numStreams === 0);
    assert.equal(session.isClosed, false);
    assert.ok((await Promise.all([session.ping(), reply(peer)]))[0] >= 0);
  } finally {
    await session.close();
  }
});

/** Answer the next ping SYN from the session. */
async function reply(peer: ReturnType<typeof rawPair>['peer']): Promise<void> {
  const f = await peer.waitFrame((x) => x.type === FrameType.Ping && x.flags === Flag.SYN);
  peer.send(FrameType.Ping, Flag.ACK, 0, f.length);
}

test('connection write timeout: a peer that stops reading ends the session', async () => {
  const { session, peer } = rawPair('client', { connectionWriteTimeoutMs: 80 });
  peer.conn.pause();
  const errors: MeshfedError[] = [];
  session.on('error', (e) => errors.push(e));
  // Three streams may each send their initial 256 KiB window without any ACK: 768 KiB backs up.
  const streams = await Promise.all([session.open(), session.open(), session.open()]);
  for (const s of streams) {
    s.on('error', () => undefined);
    s.write(Buffer.alloc(256 * 1024));
  }
  const err = await ended(session);
  assert.ok(isYamuxError(err, YamuxErrorCode.WRITE_TIMEOUT), String(err));
  assert.match(err.message, /blocked for more than 80 ms/);
  assert.equal(errors.length, 1);
  peer.conn.destroy();
});

test('ping timeout rejects that ping only', async () => {
  const { session } = rawPair('client', { connectionWriteTimeoutMs: 40 });
  try {
    let outcome: unknown;
    session.ping().then(
      () => (outcome = 'resolved'),
      (e: unknown) => (outcome = e),
    );
    await waitFor(() => outcome !== undefined, { intervalMs: 10 }); // polling keeps the loop alive
    assert.ok(isYamuxError(outcome, YamuxErrorCode.PING_TIMEOUT), String(outcome));
    assert.equal(session.isClosed, false);
    const ac = new AbortController();
    const q = session.ping({ signal: ac.signal });
    ac.abort();
    await assert.rejects(q, /aborted/);
  } finally {
    await session.close();
  }
});

test('close() against a peer that never closes its side destroys the connection after the write timeout', async () => {
  const { session, peer } = rawPair('server', { connectionWriteTimeoutMs: 50 });
  peer.conn.removeAllListeners('end'); // this peer ignores our FIN
  const t0 = Date.now();
  const closing = session.close();
  await waitFor(() => session.conn.destroyed, { message: 'our end of the connection destroyed' });
  await closing;
  assert.ok(Date.now() - t0 >= 45);
  const ga = peer.frames.find((f) => f.type === FrameType.GoAway);
  assert.equal(ga?.length, 0, 'a normal go away was sent first');
});
