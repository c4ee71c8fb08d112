/**
 * meshfed yamux against HashiCorp's Go yamux (Debian's golang-github-hashicorp-yamux-dev), over
 * real TCP on 127.0.0.1, both directions: meshfed client ↔ Go server and Go client ↔ meshfed
 * server. The Go peer is test/interop/yamux-peer/main.go; the stream ops it speaks are described
 * there and in test/plugins/yamux/peer-ops.ts. Many concurrent streams, multi-MiB checksummed
 * payloads, FIN half-close, RST both ways, go away, ping, backlog refusal.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { YamuxErrorCode, YamuxSession, isYamuxError, type YamuxStream } from '../../src/plugins/yamux/index.js';
import { waitFor } from '../../src/testing/index.js';
import { pattern, readAll, writeAllAndEnd } from '../plugins/yamux/helpers.js';
import { echo, readExactly, serveOps, type OpsRecord } from '../plugins/yamux/peer-ops.js';
import { buildGoPeer, startGoPeer, type GoPeer } from './go-peer.js';

const MiB = 1024 * 1024;
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

async function dial(addr: string): Promise<Socket> {
  const [host, port] = addr.split(':') as [string, string];
  const s = connect(Number(port), host);
  await once(s, 'connect');
  return s;
}

/** A meshfed client session to `addr` that echoes streams the Go side opens to it. */
async function clientSession(addr: string): Promise<YamuxSession> {
  const session = YamuxSession.client(await dial(addr), {
    keepAliveIntervalMs: 0,
    onStream: (s) => {
      s.on('error', () => undefined);
      echo(s);
    },
  });
  return session;
}

function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

before(async () => {
  await buildGoPeer('yamux-peer');
});

describe('meshfed client ↔ Go yamux server', { timeout: 120_000 }, () => {
  let go: GoPeer;
  let addr: string;
  const sessions: YamuxSession[] = [];

  before(async () => {
    go = await startGoPeer('yamux-peer', ['server']);
    addr = (await go.line(/^LISTEN (\S+)/))[1] as string;
  });
  after(async () => {
    await Promise.all(sessions.map((s) => s.close()));
    await go.stop();
  });

  test('64 concurrent streams: 32 echo and 32 sha256 sinks of 1–2 MiB each', async () => {
    const session = await clientSession(addr);
    sessions.push(session);
    const results = await Promise.all(
      Array.from({ length: 64 }, async (_, i) => {
        const data = pattern(MiB + i * 16 * 1024 + i, i + 100);
        const s = await session.open();
        if (i % 2 === 0) {
          s.write('E');
          const back = readAll(s);
          await writeAllAndEnd(s, data);
          return sha(await back) === sha(data) ? 'ok' : `echo ${i} differs`;
        }
        s.write(Buffer.concat([Buffer.from('S'), u64(data.length)]));
        const reply = readAll(s);
        await writeAllAndEnd(s, data);
        const r = await reply;
        const ok = r.length === 40 && Number(r.readBigUInt64BE(0)) === data.length && r.subarray(8).toString('hex') === sha(data);
        return ok ? 'ok' : `sink ${i} replied ${r.toString('hex')}`;
      }),
    );
    assert.deepEqual(results, Array(64).fill('ok'));
    await waitFor(() => session.numStreams === 0, { message: `streams left: ${session.numStreams}` });
  });

  test('Go half-closes first; meshfed reads the data and EOF, then ends its side cleanly', async () => {
    const session = await clientSession(addr);
    sessions.push(session);
    const s = await session.open();
    s.write('F');
    assert.equal(String(await readAll(s)), 'fin-first');
    assert.equal(s.writable, true, 'still writable after the peer FIN');
    assert.equal(session.numStreams, 1);
    s.end();
    await waitFor(() => session.numStreams === 0 && s.destroyed, { message: 'stream released after both FINs' });
    await go.line(new RegExp(`^FIN-SENT ${s.id}$`));
  });

  test('meshfed half-closes first and still reads the whole reply (a 4 MiB echo after our FIN)', async () => {
    const session = await clientSession(addr);
    sessions.push(session);
    const s = await session.open();
    const data = pattern(4 * MiB, 5);
    const back = readAll(s);
    s.write('E');
    await writeAllAndEnd(s, data); // FIN goes out long before the echo is complete
    assert.equal(sha(await back), sha(data));
  });

  test('meshfed RST reaches Go as "connection reset"', async () => {
    const session = await clientSession(addr);
    sessions.push(session);
    const s = await session.open();
    s.write('W');
    // Go's Read reports a reset at once, even before buffered data: let it start reading first.
    await go.line(new RegExp(`^W-READY ${s.id}$`));
    s.write(Buffer.alloc(100_000));
    s.destroy();
    await go.line(new RegExp(`^STREAMERR ${s.id} connection reset$`));
  });

  test('Go opens a stream to meshfed (server → client), sends 2 MiB, gets its echo', async () => {
    const session = await clientSession(addr);
    sessions.push(session);
    const s = await session.open();
    s.write(Buffer.concat([Buffer.from('P'), u64(2 * MiB)]));
    const reply = await readAll(s);
    assert.equal(reply.toString(), 'push ok');
  });

  test('ping both ways', async () => {
    const session = await clientSession(addr);
    sessions.push(session);
    const rtt = await session.ping();
    assert.ok(rtt >= 0 && rtt < 5000);
    const s = await session.open();
    s.end('X');
    assert.equal(String(await readAll(s)), 'pong');
  });

  test('Go go away: meshfed open() is refused with REMOTE_GOAWAY, existing streams finish', async () => {
    const session = await clientSession(addr);
    sessions.push(session);
    const s = await session.open();
    s.write('G');
    assert.equal(String(await readExactly(s, 2)), 'ok');
    assert.equal(session.remoteGoAway, true, 'the go away frame came before "ok"');
    await assert.rejects(session.open(), (e) => isYamuxError(e, YamuxErrorCode.REMOTE_GOAWAY));
    s.end();
    await waitFor(() => session.numStreams === 0);
    assert.equal(session.isClosed, false);
  });

  test('Go refuses streams beyond its accept backlog with RST', async () => {
    const full = await startGoPeer('yamux-peer', ['server', '-noaccept', '-backlog', '2']);
    try {
      const fullAddr = (await full.line(/^LISTEN (\S+)/))[1] as string;
      const session = await clientSession(fullAddr);
      sessions.push(session);
      const streams: YamuxStream[] = [await session.open(), await session.open(), await session.open()];
      const outcomes = streams.map((s) => new Promise<unknown>((resolve) => s.once('error', resolve)));
      const err = await outcomes[2];
      assert.ok(isYamuxError(err, YamuxErrorCode.STREAM_RESET));
      assert.match(String((err as Error).message), /refused by the peer/);
      assert.equal(session.numStreams, 2);
      for (const s of streams) {
        s.on('error', () => undefined);
        s.destroy();
      }
    } finally {
      await full.stop();
    }
  });
});

describe('Go yamux client ↔ meshfed server', { timeout: 120_000 }, () => {
  test('the Go interop script passes: 64 streams, FIN, RST, server-opened stream, ping, go away, backlog', async () => {
    const record: OpsRecord = { afterFin: [], errors: [] };
    const sessions: YamuxSession[] = [];
    const server = createServer((conn) => {
      conn.on('error', () => undefined);
      const session = YamuxSession.server(conn, {
        keepAliveIntervalMs: 0,
        onStream: (s) => {
          serveOps(s, session, record).catch((err: Error) => record.errors.push(err));
        },
      });
      sessions.push(session);
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as { port: number };
    const go = await startGoPeer('yamux-peer', ['client', '-addr', `127.0.0.1:${port}`, '-streams', '64', '-size', String(MiB)]);
    try {
      const [, outcome] = await go.line(/^(DONE|FAIL .*)$/, 100_000);
      assert.equal(outcome, 'DONE', go.lines.join(' | '));
      for (const step of ['concurrent 64 streams', 'fin', 'rst connection reset', 'push', 'ping', 'goaway', 'backlog']) {
        assert.ok(
          go.lines.some((l) => l.startsWith(`OK ${step}`)),
          `step ${step}: ${go.lines.join(' | ')}`,
        );
      }
      assert.deepEqual(record.afterFin, ['after-fin'], 'meshfed read the data the Go client sent after our FIN');
      const unexpected = record.errors.filter((e) => !isYamuxError(e, YamuxErrorCode.STREAM_RESET) && !isYamuxError(e, YamuxErrorCode.CONNECTION));
      assert.deepEqual(unexpected.map(String), []);
      for (const s of sessions) assert.equal(s.error, undefined);
    } finally {
      await go.stop();
      await Promise.all(sessions.map((s) => s.close()));
      server.close();
    }
  });
});
