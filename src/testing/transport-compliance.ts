/**
 * The shared compliance suite of {@link GossipTransport}: every transport (UDP/TCP, in-memory,
 * wanfed, third-party) runs it, so the gossip layer can rely on one behaviour (STYLE.md §13).
 *
 * @example
 * runTransportCompliance('my transport', async () => {
 *   const a = await myTransport(), b = await myTransport();
 *   return { a, b, addrA: a.addr, addrB: b.addr, cleanup: async () => { await a.shutdown(); await b.shutdown(); } };
 * });
 */
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import type { Duplex } from 'node:stream';
import { describe, test, type TestContext } from 'node:test';
import { ErrorCode } from '../core/errors.js';
import { GossipTransportErrorCode, type GossipPacket, type GossipTransport } from '../plugins/gossip/transport/index.js';
import { memoryStreamPair } from './memory-transport.js';
import { waitFor } from './wait.js';

/** Two fresh transports that can reach each other, as made by a compliance factory. */
export interface TransportPair {
  /** First transport. */
  readonly a: GossipTransport;
  /** Second transport. */
  readonly b: GossipTransport;
  /** `a`'s address: what `b` sees as `from` of `a`'s packets, and where `b` dials `a`. */
  readonly addrA: string;
  /** `b`'s address. */
  readonly addrB: string;
  /**
   * Optional: an address where a dial neither succeeds nor fails (a black hole), to test the
   * dial timeout and aborting a dial in flight. Tests that need it are skipped without it.
   */
  readonly unreachableAddr?: string;
  /** Free everything the factory made (the suite may already have shut `a` and `b` down). */
  cleanup(): Promise<void>;
}

/** Makes a fresh {@link TransportPair} for each test. */
export type TransportPairFactory = () => Promise<TransportPair>;

/** Resource kinds that a shut-down transport must not leave behind. */
const IO_RESOURCES = new Set(['TCPServerWrap', 'TCPSocketWrap', 'TCPWRAP', 'UDPWrap', 'Timeout', 'Immediate']);

function ioResourceCount(): number {
  return process.getActiveResourcesInfo().filter((r) => IO_RESOURCES.has(r)).length;
}

/** Read until end-of-stream *without* destroying the stream (a `for await` loop would), so it can still write. */
function readAll(s: Duplex): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.once('end', () => resolve(Buffer.concat(chunks)));
    s.once('error', reject);
    s.once('close', () => {
      if (!s.readableEnded) reject(new Error('stream closed before end-of-stream'));
    });
  });
}

function collectPackets(t: GossipTransport): GossipPacket[] {
  const got: GossipPacket[] = [];
  t.onPacket((p) => got.push(p));
  return got;
}

function echo(t: GossipTransport): Duplex[] {
  const accepted: Duplex[] = [];
  t.onStream((conn) => {
    accepted.push(conn);
    conn.on('error', () => conn.destroy());
    conn.pipe(conn);
  });
  return accepted;
}

function hasCode(code: string): (err: unknown) => boolean {
  return (err) => {
    assert.ok(err instanceof Error, `expected an Error, got ${String(err)}`);
    assert.equal((err as { code?: unknown }).code, code, `expected code ${code}, got ${String((err as { code?: unknown }).code)}: ${err.message}`);
    return true;
  };
}

/**
 * Register a `describe(name)` block of node:test tests that check `factory`'s transports against
 * the {@link GossipTransport} contract. Each test gets a fresh pair and cleans it up.
 */
export function runTransportCompliance(name: string, factory: TransportPairFactory): void {
  const withPair = (fn: (p: TransportPair, t: TestContext) => Promise<void>) => async (t: TestContext): Promise<void> => {
    const pair = await factory();
    try {
      await fn(pair, t);
    } finally {
      await pair.cleanup();
    }
  };

  describe(`GossipTransport compliance: ${name}`, () => {
    test('a packet arrives with the sender address as `from`, and a timestamp', withPair(async ({ a, b, addrA, addrB }) => {
      const got = collectPackets(b);
      const before = Date.now();
      const sent = await a.writeToAddress(Uint8Array.from([0, 1, 2, 3]), { name: 'b', addr: addrB });
      assert.ok(sent instanceof Date && sent.getTime() >= before - 1);
      await waitFor(() => got.length === 1, { message: 'packet from a to b' });
      const p = got[0] as GossipPacket;
      assert.equal(p.from, addrA);
      assert.deepEqual([...p.buf], [0, 1, 2, 3]);
      assert.ok(Buffer.isBuffer(p.buf));
      assert.ok(p.timestamp instanceof Date && p.timestamp.getTime() >= before - 1);
      // and back: b's packets come from addrB
      const gotA = collectPackets(a);
      await b.writeToAddress(Buffer.from('x'), { name: 'a', addr: addrA });
      await waitFor(() => gotA.length === 1, { message: 'packet from b to a' });
      assert.equal(gotA[0]?.from, addrB);
    }));

    test('many packets all arrive, intact', withPair(async ({ a, b, addrB }) => {
      const got = collectPackets(b);
      const n = 100;
      for (let i = 0; i < n; i++) {
        const buf = Buffer.alloc(1000, i);
        buf.writeUInt16BE(i, 0);
        await a.writeToAddress(buf, { name: 'b', addr: addrB });
      }
      await waitFor(() => got.length === n, { message: `${n} packets (got ${got.length})` });
      const seen = new Set(got.map((p) => p.buf.readUInt16BE(0)));
      assert.equal(seen.size, n);
      for (const p of got) assert.equal(p.buf.length, 1000);
    }));

    test('a packet of exactly maxPacketSize arrives; larger or empty ones are refused at send', withPair(async ({ a, b, addrB }) => {
      assert.ok(a.maxPacketSize >= 1400, 'maxPacketSize must fit at least memberlist UDPBufferSize (1400)');
      const got = collectPackets(b);
      const big = Buffer.alloc(a.maxPacketSize);
      for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 255;
      await a.writeToAddress(big, { name: 'b', addr: addrB });
      await waitFor(() => got.length === 1, { message: 'max-size packet' });
      assert.ok(got[0]?.buf.equals(big));
      await assert.rejects(a.writeToAddress(Buffer.alloc(a.maxPacketSize + 1), { name: 'b', addr: addrB }), hasCode(GossipTransportErrorCode.PACKET));
      await assert.rejects(a.writeToAddress(Buffer.alloc(0), { name: 'b', addr: addrB }), hasCode(GossipTransportErrorCode.PACKET));
    }));

    test('a stream carries data both ways and supports half-close', withPair(async ({ a, b, addrB }) => {
      const request = Buffer.alloc(256 * 1024, 7); // more than any buffer: exercises backpressure
      b.onStream((conn) => {
        void (async () => {
          const got = await readAll(conn); // a's end() must arrive while b can still write
          conn.end(Buffer.from(`got ${got.length}`));
        })();
      });
      const conn = await a.dialAddress({ name: 'b', addr: addrB }, { signal: AbortSignal.timeout(5000), timeoutMs: 5000 });
      conn.end(request);
      assert.equal((await readAll(conn)).toString(), `got ${request.length}`);
    }));

    test('concurrent streams stay separate', withPair(async ({ a, b, addrB }) => {
      echo(b);
      const results = await Promise.all(
        Array.from({ length: 20 }, async (_, i) => {
          const conn = await a.dialAddress({ name: 'b', addr: addrB }, { timeoutMs: 5000 });
          const payload = Buffer.alloc(10_000 + i, i);
          conn.end(payload);
          return (await readAll(conn)).equals(payload);
        }),
      );
      assert.deepEqual(results, results.map(() => true));
    }));

    test('dialing an address nobody listens on fails fast with a clear error', withPair(async ({ a, b, addrB }) => {
      await b.shutdown();
      const started = Date.now();
      await assert.rejects(a.dialAddress({ name: 'b', addr: addrB }, { timeoutMs: 5000 }), (err: unknown) => {
        hasCode(GossipTransportErrorCode.DIAL)(err);
        assert.match((err as Error).message, new RegExp(addrB.replace(/[.[\]]/g, '\\$&')));
        return true;
      });
      assert.ok(Date.now() - started < 5000, 'must fail before the timeout');
    }));

    test('a dial is aborted by its signal, and leaves no stream open on either side', withPair(async ({ a, b, addrB }) => {
      const accepted = echo(b);
      await assert.rejects(a.dialAddress({ name: 'b', addr: addrB }, { signal: AbortSignal.abort() }), hasCode(ErrorCode.ABORTED));
      const ac = new AbortController();
      const dial = a.dialAddress({ name: 'b', addr: addrB }, { signal: ac.signal });
      ac.abort(new Error('test aborts'));
      await assert.rejects(dial, (err: unknown) => {
        hasCode(ErrorCode.ABORTED)(err);
        assert.match((err as Error).message, /test aborts/);
        return true;
      });
      // If b accepted the connection before the abort, it must see it close.
      await waitFor(() => accepted.every((c) => c.destroyed || c.readableEnded), { message: 'aborted stream closed on the accepting side' });
      // and the transport still dials normally afterwards
      const conn = await a.dialAddress({ name: 'b', addr: addrB }, { timeoutMs: 5000 });
      conn.end('ok');
      assert.equal((await readAll(conn)).toString(), 'ok');
    }));

    test('a dial to a black hole times out, or is aborted in flight', withPair(async ({ a, unreachableAddr }, t) => {
      if (unreachableAddr === undefined) {
        t.skip('the factory gives no unreachableAddr');
        return;
      }
      await assert.rejects(a.dialAddress({ name: 'x', addr: unreachableAddr }, { timeoutMs: 50 }), hasCode(GossipTransportErrorCode.DIAL_TIMEOUT));
      const ac = new AbortController();
      const dial = a.dialAddress({ name: 'x', addr: unreachableAddr }, { signal: ac.signal, timeoutMs: 10_000 });
      setImmediate(() => ac.abort());
      await assert.rejects(dial, hasCode(ErrorCode.ABORTED));
    }));

    test('ingestPacket reaches the packet handler with the given from and timestamp', withPair(async ({ a }) => {
      const got = collectPackets(a);
      const ts = new Date(2020, 1, 2);
      a.ingestPacket(Buffer.from([9, 8]), '192.0.2.9:8443', ts);
      await waitFor(() => got.length === 1, { message: 'ingested packet' });
      assert.equal(got[0]?.from, '192.0.2.9:8443');
      assert.equal(got[0]?.timestamp, ts);
      assert.deepEqual([...(got[0]?.buf ?? [])], [9, 8]);
      assert.throws(() => a.ingestPacket(Buffer.alloc(0), '192.0.2.9:8443', ts), hasCode(GossipTransportErrorCode.PACKET));
    }));

    test('ingestStream reaches the stream handler', withPair(async ({ a }) => {
      echo(a);
      const [outside, inside] = memoryStreamPair('192.0.2.9:8443', 'ingested');
      a.ingestStream(inside);
      outside.end('via the rpc port');
      assert.equal((await readAll(outside)).toString(), 'via the rpc port');
    }));

    test('a throwing handler does not stop delivery; one handler per kind', withPair(async ({ a, b, addrB }) => {
      let calls = 0;
      b.onPacket(() => {
        calls++;
        throw new Error('handler bug');
      });
      assert.throws(() => b.onPacket(() => undefined), hasCode(GossipTransportErrorCode.HANDLER));
      await a.writeToAddress(Buffer.from('1'), { name: 'b', addr: addrB });
      await waitFor(() => calls === 1);
      await a.writeToAddress(Buffer.from('2'), { name: 'b', addr: addrB });
      await waitFor(() => calls === 2, { message: 'second packet after a throwing handler' });

      let streamCalls = 0;
      const off = b.onStream(() => {
        streamCalls++;
        throw new Error('stream handler bug');
      });
      const bad = await a.dialAddress({ name: 'b', addr: addrB }, { timeoutMs: 5000 });
      bad.on('error', () => undefined);
      bad.resume();
      await waitFor(() => streamCalls === 1 && (bad.readableEnded || bad.destroyed), { message: 'stream of a throwing handler is closed' });
      off();
      echo(b);
      const good = await a.dialAddress({ name: 'b', addr: addrB }, { timeoutMs: 5000 });
      good.end('still serving');
      assert.equal((await readAll(good)).toString(), 'still serving');
    }));

    test('shutdown stops delivery, refuses further use and frees every resource', async () => {
      const baseline = ioResourceCount();
      const pair = await factory();
      const { a, b, addrA, addrB } = pair;
      try {
        const gotA = collectPackets(a);
        const gotB = collectPackets(b);
        echo(b);
        const open = await a.dialAddress({ name: 'b', addr: addrB }, { timeoutMs: 5000 });
        open.on('error', () => undefined);
        open.resume();
        await b.shutdown();
        await b.shutdown(); // idempotent
        await waitFor(() => open.readableEnded || open.destroyed, { message: 'streams of a shut-down transport are closed' });
        await a.writeToAddress(Buffer.from('lost'), { name: 'b', addr: addrB }).catch(() => undefined);
        await a.writeToAddress(Buffer.from('marker'), { name: 'a', addr: addrA }); // sent after, to a itself
        await waitFor(() => gotA.length === 1, { message: 'marker packet' });
        assert.equal(gotB.length, 0, 'a shut-down transport delivered a packet');
        assert.throws(() => b.ingestPacket(Buffer.from('x'), addrA, new Date()), hasCode(GossipTransportErrorCode.SHUTDOWN));
        const [x, y] = memoryStreamPair('x', 'y');
        assert.throws(() => b.ingestStream(y), hasCode(GossipTransportErrorCode.SHUTDOWN));
        x.destroy();
        await assert.rejects(b.writeToAddress(Buffer.from('x'), { name: 'a', addr: addrA }), hasCode(GossipTransportErrorCode.SHUTDOWN));
        await assert.rejects(b.dialAddress({ name: 'a', addr: addrA }), hasCode(GossipTransportErrorCode.SHUTDOWN));
        await a.shutdown();
      } finally {
        await pair.cleanup();
      }
      await waitFor(() => ioResourceCount() <= baseline, {
        message: `resources left after shutdown: ${process.getActiveResourcesInfo().join(', ')} (baseline ${baseline})`,
      });
    });
  });
}
