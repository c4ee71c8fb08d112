/**
 * Interop with Go's net/rpc over HashiCorp's net-rpc-msgpackrpc + go-msgpack 0.5.5 (the Go
 * peer in test/interop/msgpackrpc-peer): byte-exact encodings, meshfed client ↔ Go server and
 * Go client ↔ meshfed server, with nested structs, non-UTF-8 bytes, times, errors and
 * concurrent calls on one connection.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { createConnection, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { MeshfedError } from '../../src/core/errors.js';
import {
  Empty,
  EndpointRegistry,
  GoTime,
  MsgpackStreamDecoder,
  RemoteRpcError,
  RequestHeader,
  ResponseHeader,
  RpcClient,
  decode,
  defineEndpoint,
  encode,
  serveRpcConn,
  statusEndpoints,
  t,
  type Infer,
  type InferInput,
} from '../../src/plugins/rpc/msgpack/index.js';
import { createMemoryLogger } from '../../src/testing/index.js';
import { buildGoPeer, startGoPeer, type GoPeer } from './go-peer.js';

const PEER = 'msgpackrpc-peer';

// The Go types of the peer (main.go), declared once.
const Inner = t.struct({ Name: t.string, Data: t.nullable(t.bytes), When: t.time, Tags: t.nullable(t.map(t.string)) });
const Echo = t.struct({
  Str: t.string,
  LongStr: t.string,
  Bin: t.bytes,
  LongBin: t.bytes,
  Int: t.int,
  Small: t.uint16,
  Big: t.int64,
  Uint64: t.uint64,
  Uint64Safe: t.uint64,
  Float: t.float64,
  Bool: t.bool,
  Time: t.time,
  OldTime: t.time,
  ZoneTime: t.time,
  ZeroTime: t.time,
  Dur: t.duration,
  NegDur: t.duration,
  NilSlice: t.nullable(t.list(t.string)),
  Empty: t.list(t.string),
  NilBytes: t.nullable(t.bytes),
  EmptyBytes: t.bytes,
  Map: t.map(t.int),
  NilMap: t.nullable(t.map(t.string)),
  Nested: Inner,
  NestedPtr: t.nullable(Inner),
  NilPtr: t.nullable(Inner),
  List: t.list(Inner),
});
const FailArgs = t.struct({ Message: t.string });
const SleepArgs = t.struct({ Ms: t.int, Tag: t.string });
const SleepReply = t.struct({ Tag: t.string });
const CheckReply = t.struct({ OK: t.bool, Diff: t.string });

const WHEN = GoTime.parse('2024-01-02T03:04:05.123456789Z');

/** The same value as the Go peer's fixture(). */
const FIXTURE: Infer<typeof Echo> = {
  Str: 'héllo, 世界',
  LongStr: 'x'.repeat(40),
  Bin: Uint8Array.of(0x00, 0xff, 0xfe, 0xc0, 0x80, 0xc3, 0x28),
  LongBin: Uint8Array.from({ length: 300 }, (_, i) => (i * 7) & 0xff),
  Int: -200,
  Small: 7946,
  Big: -(2 ** 40),
  Uint64: 2n ** 64n - 1n,
  Uint64Safe: 300,
  Float: 1.5,
  Bool: true,
  Time: WHEN,
  OldTime: GoTime.parse('1901-12-13T20:45:52.000000001Z'),
  ZoneTime: GoTime.parse('2024-06-01T12:00:00+02:00'),
  ZeroTime: GoTime.ZERO,
  Dur: 1_500_000_000,
  NegDur: -5_000_000_000,
  NilSlice: null,
  Empty: [],
  NilBytes: null,
  EmptyBytes: new Uint8Array(0),
  Map: { a: 1 },
  NilMap: null,
  Nested: { Name: 'in', Data: Uint8Array.of(0xff), When: WHEN, Tags: { k: 'v' } },
  NestedPtr: { Name: 'ptr', Data: Uint8Array.of(0xc3), When: GoTime.ZERO, Tags: null },
  NilPtr: null,
  List: [
    { Name: 'a', Data: null, When: GoTime.ZERO, Tags: null },
    { Name: 'b', Data: Uint8Array.of(0x80), When: GoTime.ZERO, Tags: null },
  ],
};

function hex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

async function connect(port: number): Promise<Socket> {
  const sock = createConnection(port, '127.0.0.1');
  await once(sock, 'connect');
  return sock;
}

/** Send raw request bytes; resolve with the first `n` response objects. */
async function rawExchange(port: number, request: Uint8Array, n: number): Promise<string[]> {
  const sock = await connect(port);
  const dec = new MsgpackStreamDecoder();
  const frames: string[] = [];
  const got = new Promise<void>((resolve, reject) => {
    sock.on('data', (c: Buffer) => {
      dec.push(c);
      for (let f = dec.next(); f; f = dec.next()) frames.push(hex(f));
      if (frames.length >= n) resolve();
    });
    sock.on('close', () => reject(new Error(`connection closed after ${frames.length} frames`)));
  });
  sock.write(request);
  await got;
  sock.destroy();
  return frames;
}

describe('interop with Go net/rpc + net-rpc-msgpackrpc + go-msgpack 0.5.5', () => {
  before(async () => {
    await buildGoPeer(PEER);
  });

  test('go-msgpack’s own encodings equal meshfed’s, byte for byte', async () => {
    const bin = await buildGoPeer(PEER);
    const { stdout } = await promisify(execFile)(bin, ['-mode', 'dump']);
    const go = new Map(stdout.trim().split('\n').map((l) => l.split(' ') as [string, string]));
    assert.equal(hex(encode(FIXTURE, Echo)), go.get('fixture'), 'the whole fixture struct');
    assert.equal(hex(encode({ ServiceMethod: 'Status.Ping', Seq: 0 }, RequestHeader)) + hex(encode({}, Empty)), go.get('request'));
    assert.equal(hex(encode({ ServiceMethod: 'Status.Ping', Seq: 0, Error: '' }, ResponseHeader)), go.get('response'));
    assert.equal(hex(encode({ ServiceMethod: 'Nope.Method', Seq: 7, Error: "rpc: can't find service Nope.Method" }, ResponseHeader)), go.get('error-response'));
    assert.equal(hex(encode(['127.0.0.1:8300', '127.0.0.2:8300'], t.list(t.string))), go.get('peers'));
    assert.equal(hex(encode({}, Empty)), go.get('empty'));
    assert.equal(hex(encode(WHEN, t.time)), go.get('time-nanos'));
    assert.equal(hex(encode(GoTime.ZERO, t.time)), go.get('time-zero'));
    assert.equal(hex(encode(new GoTime(GoTime.parse('2024-01-01T00:00:00Z').unixSeconds - 3630, 0, 3630), t.time)), go.get('time-zone-seconds'));
    const ints = [0, 127, 128, 255, 256, 65535, 65536, 4294967295, 4294967296, -1, -32, -33, -128, -129, -32768, -32769, -2147483648, -2147483649, -(2n ** 63n), 2n ** 63n - 1n];
    assert.equal(hex(encode(ints, t.list(t.int64))), go.get('ints'));
    assert.equal(hex(encode(2n ** 64n - 1n, t.uint64)), go.get('uint64-max'));
    assert.equal(hex(encode(['', 'a'.repeat(31), 'b'.repeat(32), 'c'.repeat(255), 'd'.repeat(256)], t.list(t.string))), go.get('strings'));
    assert.equal(hex(encode('e'.repeat(65536), t.string)).slice(0, 16), go.get('string-65536'));
    assert.equal(hex(encode(Uint8Array.of(0xff, 0xfe, 0x00, 0x80), t.bytes)), go.get('bytes-nonutf8'));
    assert.equal(hex(encode(3.25, t.float64)), go.get('float'));
    // And meshfed decodes go-msgpack's fixture to the same value.
    assert.deepEqual(decode(Buffer.from(go.get('fixture')!, 'hex'), Echo), FIXTURE);
  });

  describe('meshfed client → Go server', () => {
    let peer: GoPeer;
    let port: number;
    let client: RpcClient;
    before(async () => {
      peer = await startGoPeer(PEER, ['-mode', 'server', '-addr', '127.0.0.1:0']);
      port = Number((await peer.line(/^LISTENING .*:(\d+)$/))[1]);
      client = new RpcClient(await connect(port));
    });
    after(async () => {
      client?.close();
      await peer?.stop();
    });

    test('echo of nested structs with non-UTF-8 bytes, times (pre-1970, ns, zones), durations, nil vs empty', async () => {
      assert.deepEqual(await client.call('Test.Echo', FIXTURE, Echo, Echo), FIXTURE);
    });

    test('Go’s fixture decodes to meshfed’s; meshfed’s encoding decodes in Go to Go’s fixture', async () => {
      assert.deepEqual(await client.call('Test.Fixture', {}, Empty, Echo), FIXTURE);
      assert.deepEqual(await client.call('Test.Check', FIXTURE, Echo, CheckReply), { OK: true, Diff: '' });
      // The check can fail: a changed byte is noticed by Go.
      const changed: InferInput<typeof Echo> = { ...FIXTURE, Bin: Uint8Array.of(0x00, 0xff, 0xfe, 0xc0, 0x80, 0xc3, 0x29) };
      const res = await client.call('Test.Check', changed, Echo, CheckReply);
      assert.equal(res.OK, false);
      assert.match(res.Diff, /^Echo\.Bin/);
    });

    test('Status.Ping / Leader / Peers', async () => {
      assert.deepEqual(await client.call('Status.Ping', {}, Empty, Empty), {});
      assert.equal(await client.call('Status.Leader', {}, Empty, t.string), '127.0.0.1:8300');
      assert.deepEqual(await client.call('Status.Peers', {}, Empty, t.list(t.string)), ['127.0.0.1:8300', '127.0.0.2:8300']);
    });

    test('error replies carry Go’s texts exactly', async () => {
      await assert.rejects(client.call('Test.Fail', { Message: 'federation state not found' }, FailArgs, Empty), (err: unknown) => {
        assert.ok(err instanceof RemoteRpcError);
        assert.equal(err.message, 'federation state not found');
        return true;
      });
      await assert.rejects(client.call('Nope.Method', {}, Empty, Empty), { code: 'MESHFED_ERR_RPC_REMOTE', message: "rpc: can't find service Nope.Method" });
      await assert.rejects(client.call('Test.Nope', {}, Empty, Empty), { message: "rpc: can't find method Test.Nope" });
      await assert.rejects(client.call('NoDot', {}, Empty, Empty), { message: 'rpc: service/method request ill-formed: NoDot' });
      assert.deepEqual(await client.call('Status.Ping', {}, Empty, Empty), {});
    });

    test('64 concurrent calls on one connection, answered out of order', async () => {
      const order: string[] = [];
      const calls = Array.from({ length: 64 }, (_, i) =>
        client.call('Test.Sleep', { Ms: ((64 - i) % 8) * 5, Tag: `call-${i}` }, SleepArgs, SleepReply).then((r) => {
          order.push(r.Tag);
          return r.Tag;
        }),
      );
      const tags = await Promise.all(calls);
      assert.deepEqual(tags, Array.from({ length: 64 }, (_, i) => `call-${i}`));
      assert.notDeepEqual(order, tags, 'replies should have arrived out of call order');
    });

    test('what Go writes for an error reply: header with Error, body 80 — and meshfed writes the same bytes', async () => {
      const request = new Uint8Array([
        ...encode({ ServiceMethod: 'Nope.Method', Seq: 7 }, RequestHeader),
        ...encode({}, Empty),
        ...encode({ ServiceMethod: 'Test.Fail', Seq: 8 }, RequestHeader),
        ...encode({ Message: 'boom' }, FailArgs),
        ...encode({ ServiceMethod: 'Status.Peers', Seq: 9 }, RequestHeader),
        ...encode({}, Empty),
      ]);
      const fromGo = await rawExchange(port, request, 6);
      // Replies may be reordered (Go answers each call in its own goroutine): compare per Seq.
      const bySeq = (frames: string[]): Map<number, [string, string]> => {
        const m = new Map<number, [string, string]>();
        for (let i = 0; i < frames.length; i += 2) {
          const h = decode(Buffer.from(frames[i]!, 'hex'), ResponseHeader);
          m.set(Number(h.Seq), [frames[i]!, frames[i + 1]!]);
        }
        return m;
      };
      const go = bySeq(fromGo);
      assert.equal(go.get(7)![0], hex(encode({ Error: "rpc: can't find service Nope.Method", Seq: 7, ServiceMethod: 'Nope.Method' }, ResponseHeader)));
      assert.equal(go.get(7)![1], '80');
      assert.equal(go.get(8)![1], '80');
      assert.equal(go.get(9)![1], hex(encode(['127.0.0.1:8300', '127.0.0.2:8300'], t.list(t.string))));

      const server = await startMeshfedServer('127.0.0.1:8300');
      try {
        const mine = bySeq(await rawExchange(server.port, request, 6));
        assert.deepEqual(mine, go);
      } finally {
        await server.close();
      }
    });

    test('Consul framing: the 0x00 (RPCConsul) type byte first', async () => {
      const consulPeer = await startGoPeer(PEER, ['-mode', 'server', '-addr', '127.0.0.1:0', '-consul-byte']);
      try {
        const p = Number((await consulPeer.line(/^LISTENING .*:(\d+)$/))[1]);
        const sock = await connect(p);
        sock.write(Uint8Array.of(0x00));
        const c = new RpcClient(sock);
        assert.equal(await c.call('Status.Leader', {}, Empty, t.string), '127.0.0.1:8300');
        c.close();
      } finally {
        await consulPeer.stop();
      }
    });

    test('the Go server closing the connection fails outstanding calls', async () => {
      const p2 = await startGoPeer(PEER, ['-mode', 'server', '-addr', '127.0.0.1:0']);
      const p = Number((await p2.line(/^LISTENING .*:(\d+)$/))[1]);
      const c = new RpcClient(await connect(p));
      const rejected = assert.rejects(
        c.call('Test.Sleep', { Ms: 60_000, Tag: 'never' }, SleepArgs, SleepReply),
        (err: unknown) => err instanceof MeshfedError && err.code === 'MESHFED_ERR_RPC_CONN_CLOSED',
      );
      await p2.stop();
      await rejected;
    });
  });

  describe('Go client → meshfed server', () => {
    test('echo, fixture, error texts, Status, 64 concurrent calls', async () => {
      const server = await startMeshfedServer('10.0.0.1:8300');
      try {
        const checks = await runGoClient(server.port, []);
        assert.deepEqual(
          checks.map((c) => c.check),
          ['echo', 'fixture', 'handler-error', 'unknown-service', 'unknown-method', 'ill-formed', 'status-ping', 'status-leader', 'status-peers', 'concurrent'],
        );
        for (const c of checks) assert.ok(c.ok, `${c.check}: ${c.detail ?? ''}`);
        assert.equal(server.logger.entries.filter((e) => e.level === 'warn' || e.level === 'error').length, 0);
      } finally {
        await server.close();
      }
    });

    test('with Consul’s 0x00 type byte in front', async () => {
      const server = await startMeshfedServer('10.0.0.1:8300', true);
      try {
        const checks = await runGoClient(server.port, ['-consul-byte']);
        for (const c of checks) assert.ok(c.ok, `${c.check}: ${c.detail ?? ''}`);
      } finally {
        await server.close();
      }
    });
  });
});

interface Check {
  check: string;
  ok: boolean;
  detail?: string;
}

async function runGoClient(port: number, extra: string[]): Promise<Check[]> {
  const peer = await startGoPeer(PEER, ['-mode', 'client', '-addr', `127.0.0.1:${port}`, ...extra]);
  const exitCode = await new Promise<number | null>((resolve) => {
    if (peer.child.exitCode !== null) resolve(peer.child.exitCode);
    else peer.child.once('exit', (code) => resolve(code));
  });
  const checks = peer.lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Check);
  assert.ok(checks.length > 0, `Go client printed no checks (exit ${exitCode}): ${peer.lines.join('\n')}`);
  if (exitCode !== 0) assert.fail(`Go client failed: ${JSON.stringify(checks.filter((c) => !c.ok))}`);
  return checks;
}

/** A meshfed msgpack-RPC server on 127.0.0.1:0 with the Go peer's Test and Status services. */
async function startMeshfedServer(leader: string, consulByte = false) {
  const logger = createMemoryLogger('debug');
  const registry = new EndpointRegistry()
    .registerAll(statusEndpoints({ leader: () => leader, peers: () => [leader, leader.replace(/\.1:/, '.2:')] }))
    .register(defineEndpoint({ method: 'Test.Echo', request: Echo, response: Echo, handler: (req) => req }))
    .register(defineEndpoint({ method: 'Test.Fixture', request: Empty, response: Echo, handler: () => FIXTURE }))
    .register(
      defineEndpoint({
        method: 'Test.Fail',
        request: FailArgs,
        response: Empty,
        handler: ({ Message }) => {
          throw new MeshfedError('MESHFED_ERR_TEST', Message);
        },
      }),
    )
    .register(
      defineEndpoint({
        method: 'Test.Sleep',
        request: SleepArgs,
        response: SleepReply,
        // Simulated work of a given length, so replies come back out of order.
        handler: ({ Ms, Tag }, ctx) =>
          new Promise((resolve) => {
            const onAbort = (): void => clearTimeout(timer);
            const timer = setTimeout(() => {
              ctx.signal.removeEventListener('abort', onAbort);
              resolve({ Tag });
            }, Ms);
            ctx.signal.addEventListener('abort', onAbort, { once: true });
          }),
      }),
    );
  const sockets = new Set<Socket>();
  const server: Server = createServer({ allowHalfOpen: true }, (sock) => {
    sockets.add(sock);
    sock.once('close', () => sockets.delete(sock));
    if (!consulByte) {
      void serveRpcConn(sock, registry, { logger });
      return;
    }
    sock.once('readable', function readType() {
      const b = sock.read(1) as Buffer | null;
      if (b === null) {
        sock.once('readable', readType);
        return;
      }
      if (b[0] !== 0x00) sock.destroy();
      else void serveRpcConn(sock, registry, { logger });
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    logger,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}
