/** msgpack-RPC client and server over in-memory pairs and real sockets. */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createConnection, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { after, describe, test } from 'node:test';
import { MeshfedError } from '../../../../src/core/errors.js';
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
  type EndpointDefinition,
  type RpcContext,
  type ServeRpcConnOptions,
} from '../../../../src/plugins/rpc/msgpack/index.js';
import { createMemoryLogger, duplexPair, waitFor } from '../../../../src/testing/index.js';
import { hex, wire } from './wire-notation.js';

const Inner = t.struct({ Name: t.string, Data: t.bytes, When: t.time });
const EchoArgs = t.struct({
  Str: t.string,
  Bin: t.bytes,
  Big: t.uint64,
  Dur: t.duration,
  Nested: Inner,
  List: t.list(Inner),
  Map: t.map(t.int),
  Ptr: t.nullable(Inner),
});

/** A promise with its resolve/reject exposed. */
function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void; reject: (e: unknown) => void } {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** A server on one end of an in-memory pair; the other end is left raw. */
function setupRaw(defs: EndpointDefinition[], options: Partial<ServeRpcConnOptions> = {}) {
  const logger = createMemoryLogger('debug');
  const registry = new EndpointRegistry().registerAll(defs);
  const [clientEnd, serverEnd] = duplexPair();
  const served = serveRpcConn(serverEnd, registry, { logger, ...options });
  return { logger, registry, clientEnd, serverEnd, served };
}

/** A server and an RpcClient over an in-memory pair. */
function setup(defs: EndpointDefinition[], options: Partial<ServeRpcConnOptions> = {}) {
  const raw = setupRaw(defs, options);
  return { ...raw, client: new RpcClient(raw.clientEnd) };
}

/** Speak raw bytes to a server end: write, and collect complete response objects. */
function rawPeer(conn: Duplex) {
  const dec = new MsgpackStreamDecoder();
  const frames: Uint8Array[] = [];
  conn.on('data', (c: Buffer) => {
    dec.push(c);
    for (let f = dec.next(); f; f = dec.next()) frames.push(Uint8Array.from(f));
  });
  return { frames, write: (b: Uint8Array) => conn.write(b) };
}

const status = statusEndpoints({ leader: () => '10.0.0.1:8300', peers: async () => ['10.0.0.1:8300', '10.0.0.2:8300'] });

describe('msgpack-RPC over an in-memory connection', () => {
  test('Status.Ping, Status.Leader, Status.Peers', async () => {
    const { client } = setup(status);
    assert.deepEqual(await client.call('Status.Ping', {}, Empty, Empty), {});
    assert.equal(await client.call('Status.Leader', {}, Empty, t.string), '10.0.0.1:8300');
    assert.deepEqual(await client.call('Status.Peers', {}, Empty, t.list(t.string)), ['10.0.0.1:8300', '10.0.0.2:8300']);
    client.close();
  });

  test('nested structs, non-UTF-8 bytes, big uint64, times and durations survive a round trip', async () => {
    const seen: unknown[] = [];
    const echo = defineEndpoint({
      method: 'Test.Echo',
      request: EchoArgs,
      response: EchoArgs,
      handler: async (req) => {
        seen.push(req);
        return req;
      },
    });
    const { client } = setup([echo]);
    const when = GoTime.parse('1960-02-29T12:34:56.000000789Z');
    const args = {
      Str: 'héllo',
      Bin: Uint8Array.of(0xff, 0xfe, 0xc0, 0x80),
      Big: 2n ** 64n - 1n,
      Dur: -1_500_000_000,
      Nested: { Name: 'n', Data: Uint8Array.of(0xc3, 0x28), When: when },
      List: [{ Name: 'a', Data: new Uint8Array(200_000).fill(0xfe), When: GoTime.ZERO }],
      Map: { x: -1 },
      Ptr: null,
    };
    const reply = await client.callEndpoint(echo, args);
    assert.deepEqual(reply, args);
    assert.deepEqual(seen[0], args);
    client.close();
  });

  test('64 calls in flight at once on one connection; replies out of order are matched by Seq', async () => {
    const gates = Array.from({ length: 64 }, () => deferred());
    let running = 0;
    let maxRunning = 0;
    const slow = defineEndpoint({
      method: 'Test.Slow',
      request: t.struct({ I: t.int }),
      response: t.struct({ I: t.int }),
      handler: async ({ I }) => {
        running++;
        maxRunning = Math.max(maxRunning, running);
        await gates[I]!.promise;
        running--;
        return { I };
      },
    });
    const { client } = setup([slow]);
    const calls = gates.map((_, i) => client.callEndpoint(slow, { I: i }));
    await waitFor(() => running === 64, { message: 'all 64 handlers running concurrently' });
    assert.equal(client.pendingCalls, 64);
    // Release in reverse order: replies arrive last-first.
    for (let i = 63; i >= 0; i--) gates[i]!.resolve();
    const replies = await Promise.all(calls);
    assert.deepEqual(
      replies.map((r) => r.I),
      gates.map((_, i) => i),
    );
    assert.equal(maxRunning, 64);
    assert.equal(client.pendingCalls, 0);
    client.close();
  });

  test('a handler’s MeshfedError becomes the Error text; the client gets it exactly', async () => {
    const get = defineEndpoint({
      method: 'FederationState.Get',
      request: Empty,
      response: Empty,
      handler: () => {
        throw new MeshfedError('MESHFED_ERR_STATE_NOT_FOUND', 'federation state not found');
      },
    });
    const { client, logger } = setup([get]);
    await assert.rejects(client.callEndpoint(get, {}), (err: unknown) => {
      assert.ok(err instanceof RemoteRpcError);
      assert.equal(err.code, 'MESHFED_ERR_RPC_REMOTE');
      assert.equal(err.message, 'federation state not found');
      assert.equal(err.method, 'FederationState.Get');
      return true;
    });
    assert.equal(logger.entries.filter((e) => e.level === 'warn').length, 0, 'expected errors are not logged');
    // The connection keeps working.
    await assert.rejects(client.callEndpoint(get, {}), { message: 'federation state not found' });
    client.close();
  });

  test('a plain Error’s message is returned too, and logged as a handler bug', async () => {
    const bug = defineEndpoint({ method: 'Test.Bug', request: Empty, response: Empty, handler: async () => Promise.reject(new TypeError('x is not a function')) });
    const { client, logger } = setup([bug]);
    await assert.rejects(client.callEndpoint(bug, {}), { code: 'MESHFED_ERR_RPC_REMOTE', message: 'x is not a function' });
    assert.equal(logger.entries.filter((e) => e.level === 'warn' && e.fields['method'] === 'Test.Bug').length, 1);
    client.close();
  });

  test('error replies on the wire: Go’s header with Error set, then an empty struct 80', async () => {
    const { clientEnd } = setupRaw(status);
    const peer = rawPeer(clientEnd);
    peer.write(wire('82 a3"Seq" 05 ad"ServiceMethod" ab"Nope.Method"  80'));
    peer.write(wire('82 a3"Seq" 06 ad"ServiceMethod" ab"Status.Nope"  80'));
    peer.write(wire('82 a3"Seq" 07 ad"ServiceMethod" a4"NoDo"  80'));
    peer.write(wire('82 a3"Seq" 08 ad"ServiceMethod" ab"Status.Ping" 80'));
    await waitFor(() => peer.frames.length === 8);
    assert.deepEqual(peer.frames.map(hex), [
      hex(wire(`83 a5"Error" da0023 "rpc: can't find service Nope.Method" a3"Seq" 05 ad"ServiceMethod" ab"Nope.Method"`)),
      '80',
      hex(wire(`83 a5"Error" da0022 "rpc: can't find method Status.Nope" a3"Seq" 06 ad"ServiceMethod" ab"Status.Nope"`)),
      '80',
      hex(wire(`83 a5"Error" da002c "rpc: service/method request ill-formed: NoDo" a3"Seq" 07 ad"ServiceMethod" a4"NoDo"`)),
      '80',
      hex(wire('83 a5"Error" a0 a3"Seq" 08 ad"ServiceMethod" ab"Status.Ping"')),
      '80',
    ]);
    clientEnd.destroy();
  });

  test('unknown service / method / ill-formed name: Go’s exact texts, and the connection stays up', async () => {
    const { client } = setup(status);
    await assert.rejects(client.call('Nope.Method', {}, Empty, Empty), { code: 'MESHFED_ERR_RPC_REMOTE', message: "rpc: can't find service Nope.Method" });
    await assert.rejects(client.call('Status.Nope', {}, Empty, Empty), { message: "rpc: can't find method Status.Nope" });
    await assert.rejects(client.call('NoDot', {}, Empty, Empty), { message: 'rpc: service/method request ill-formed: NoDot' });
    assert.deepEqual(await client.call('Status.Ping', {}, Empty, Empty), {});
    client.close();
  });

  test('a body that does not fit the request type gets an error reply; the connection stays up', async () => {
    const typed = defineEndpoint({ method: 'Test.Typed', request: t.struct({ Port: t.uint16 }), response: Empty, handler: () => ({}) });
    const { client } = setup([typed, ...status]);
    await assert.rejects(client.call('Test.Typed', { Port: 'x' }, t.struct({ Port: t.string }), Empty), {
      code: 'MESHFED_ERR_RPC_REMOTE',
      message: /^msgpack: expected uint16, got string\/bytes \(at Port/,
    });
    assert.deepEqual(await client.call('Status.Ping', {}, Empty, Empty), {});
    client.close();
  });

  test('a reply that does not fit the response type fails that call only', async () => {
    const { client } = setup(status);
    await assert.rejects(client.call('Status.Leader', {}, Empty, t.int), { code: 'MESHFED_ERR_MSGPACK_DECODE' });
    assert.equal(await client.call('Status.Leader', {}, Empty, t.string), '10.0.0.1:8300');
    client.close();
  });

  test('a handler result that does not fit its response type: error reply, logged', async () => {
    const bad = defineEndpoint({ method: 'Test.Bad', request: Empty, response: t.struct({ N: t.uint8 }), handler: () => ({ N: 1000 }) });
    const { client, logger } = setup([bad]);
    await assert.rejects(client.callEndpoint(bad, {}), { code: 'MESHFED_ERR_RPC_REMOTE', message: /^rpc: server cannot encode response: .*1000 is not an integer in \[0, 255\]/ });
    assert.equal(logger.entries.filter((e) => e.level === 'error').length, 1);
    client.close();
  });

  test('args that do not fit the request type: rejected locally, nothing sent', async () => {
    const seen: string[] = [];
    const ping = defineEndpoint({
      method: 'Status.Ping',
      request: Empty,
      response: Empty,
      handler: (_req, ctx) => {
        seen.push(ctx.method);
        return {};
      },
    });
    const { client } = setup([ping]);
    await assert.rejects(client.call('Status.Ping', { N: 'x' } as never, t.struct({ N: t.int }), Empty), { code: 'MESHFED_ERR_MSGPACK_ENCODE' });
    assert.deepEqual(await client.call('Status.Ping', {}, Empty, Empty), {});
    assert.deepEqual(seen, ['Status.Ping']);
    client.close();
  });

  test('connection loss rejects every outstanding call; later calls fail at once; handlers are aborted', async () => {
    const started: RpcContext[] = [];
    const hang = defineEndpoint({
      method: 'Test.Hang',
      request: Empty,
      response: Empty,
      handler: (_req, ctx) => {
        started.push(ctx);
        return new Promise<Record<string, never>>(() => undefined);
      },
    });
    const { client, serverEnd, served } = setup([hang]);
    const calls = Array.from({ length: 5 }, () => client.callEndpoint(hang, {}));
    await waitFor(() => started.length === 5);
    serverEnd.destroy();
    for (const c of calls) await assert.rejects(c, { code: 'MESHFED_ERR_RPC_CONN_CLOSED' });
    await served;
    assert.ok(started.every((ctx) => ctx.signal.aborted));
    assert.equal(client.isClosed, true);
    await client.whenClosed();
    await assert.rejects(client.callEndpoint(hang, {}), { code: 'MESHFED_ERR_RPC_CONN_CLOSED' });
  });

  test('close() rejects outstanding calls with Go’s “connection is shut down”', async () => {
    const hang = defineEndpoint({ method: 'Test.Hang', request: Empty, response: Empty, handler: () => new Promise<Record<string, never>>(() => undefined) });
    const { client, served } = setup([hang]);
    const call = client.callEndpoint(hang, {});
    client.close();
    client.close();
    await assert.rejects(call, { code: 'MESHFED_ERR_RPC_CONN_CLOSED', message: 'rpc Test.Hang: connection is shut down' });
    await served;
  });

  test('timeout: the call rejects; a late reply is dropped and the connection keeps working', async () => {
    const gate = deferred();
    const slow = defineEndpoint({
      method: 'Test.Slow',
      request: Empty,
      response: t.string,
      handler: async () => {
        await gate.promise;
        return 'late';
      },
    });
    const { client } = setup([slow, ...status]);
    await assert.rejects(client.callEndpoint(slow, {}, { timeoutMs: 30 }), { code: 'MESHFED_ERR_RPC_TIMEOUT', message: /Test\.Slow timed out after 30 ms/ });
    gate.resolve();
    assert.equal(await client.call('Status.Leader', {}, Empty, t.string), '10.0.0.1:8300');
    assert.equal(client.pendingCalls, 0);
    client.close();
  });

  test('abort signal rejects the call with MESHFED_ERR_ABORTED', async () => {
    const hang = defineEndpoint({ method: 'Test.Hang', request: Empty, response: Empty, handler: () => new Promise<Record<string, never>>(() => undefined) });
    const { client } = setup([hang]);
    const ac = new AbortController();
    const call = client.callEndpoint(hang, {}, { signal: ac.signal });
    ac.abort(new Error('caller gave up'));
    await assert.rejects(call, { code: 'MESHFED_ERR_ABORTED', message: /caller gave up/ });
    await assert.rejects(client.callEndpoint(hang, {}, { signal: ac.signal }), { code: 'MESHFED_ERR_ABORTED' });
    client.close();
  });

  test('a malformed request stream closes that connection and logs once', async () => {
    const { clientEnd, served, logger } = setupRaw(status);
    clientEnd.write(wire('82 a3"Seq" 00 ad"ServiceMethod" ab"Status.Ping" 80'));
    clientEnd.write(wire('c1 c1 c1'));
    clientEnd.write(wire('c1'));
    await served;
    const warns = logger.entries.filter((e) => e.level === 'warn');
    assert.equal(warns.length, 1);
    assert.match(String(warns[0]!.fields['error']), /invalid descriptor byte 0xc1/);
  });

  test('a header that is not an rpc.Request closes the connection', async () => {
    const { clientEnd, served, logger } = setupRaw(status);
    clientEnd.write(wire('81 a3"Seq" ff'));
    await served;
    assert.match(String(logger.entries.find((e) => e.level === 'warn')?.fields['error']), /^rpc: server cannot decode request: msgpack: -1 overflows Go uint64/);
  });

  test('half-close: requests sent before the client’s FIN are still answered, then the server closes', async () => {
    const gate = deferred();
    const slow = defineEndpoint({
      method: 'Test.Slow',
      request: Empty,
      response: t.string,
      handler: async () => {
        await gate.promise;
        return 'done';
      },
    });
    const { clientEnd, served } = setupRaw([slow]);
    const peer = rawPeer(clientEnd);
    peer.write(new Uint8Array([...encode({ ServiceMethod: 'Test.Slow', Seq: 1 }, RequestHeader), ...encode({}, Empty)]));
    clientEnd.end();
    await new Promise((r) => setImmediate(r));
    gate.resolve();
    await served;
    await waitFor(() => peer.frames.length === 2);
    assert.deepEqual(decode(peer.frames[0]!, ResponseHeader), { Error: '', Seq: 1, ServiceMethod: 'Test.Slow' });
    assert.equal(decode(peer.frames[1]!, t.string), 'done');
  });

  test('maxInFlight bounds concurrent handlers per connection; the rest wait, none are lost', async () => {
    let running = 0;
    let maxRunning = 0;
    const work = defineEndpoint({
      method: 'Test.Work',
      request: t.int,
      response: t.int,
      handler: async (n) => {
        running++;
        maxRunning = Math.max(maxRunning, running);
        await new Promise((r) => setImmediate(r));
        running--;
        return n * 2;
      },
    });
    const { client } = setup([work], { maxInFlight: 4 });
    const replies = await Promise.all(Array.from({ length: 50 }, (_, i) => client.callEndpoint(work, i)));
    assert.deepEqual(replies, Array.from({ length: 50 }, (_, i) => i * 2));
    assert.equal(maxRunning, 4);
    client.close();
  });

  test('the server’s signal closes the connection and fails outstanding calls', async () => {
    const ac = new AbortController();
    const hang = defineEndpoint({ method: 'Test.Hang', request: Empty, response: Empty, handler: () => new Promise<Record<string, never>>(() => undefined) });
    const { client, served } = setup([hang], { signal: ac.signal });
    const call = client.callEndpoint(hang, {});
    await waitFor(() => client.pendingCalls === 1);
    ac.abort();
    await assert.rejects(call, { code: 'MESHFED_ERR_RPC_CONN_CLOSED' });
    await served;
  });

  test('a server that answers garbage: the client closes and fails its calls', async () => {
    const [clientEnd, serverEnd] = duplexPair();
    const logger = createMemoryLogger();
    const client = new RpcClient(clientEnd, { logger });
    const call = client.call('Status.Ping', {}, Empty, Empty);
    serverEnd.write(wire('c1'));
    await assert.rejects(call, { code: 'MESHFED_ERR_RPC_CONN_CLOSED', message: /invalid reply stream/ });
    assert.equal(client.closeReason?.code, 'MESHFED_ERR_RPC_PROTOCOL');
    assert.equal(logger.entries.filter((e) => e.level === 'warn').length, 1);
  });

  test('the client sends Seq 0, 1, 2 … with Go’s header layout', async () => {
    const [clientEnd, serverEnd] = duplexPair();
    const peer = rawPeer(serverEnd);
    const client = new RpcClient(clientEnd);
    void client.call('Status.Ping', {}, Empty, Empty).catch(() => undefined);
    void client.call('Status.Ping', {}, Empty, Empty).catch(() => undefined);
    await waitFor(() => peer.frames.length === 4);
    assert.equal(hex(peer.frames[0]!), hex(wire('82 a3"Seq" 00 ad"ServiceMethod" ab"Status.Ping"')));
    assert.equal(hex(peer.frames[1]!), '80');
    assert.equal(hex(peer.frames[2]!), hex(wire('82 a3"Seq" 01 ad"ServiceMethod" ab"Status.Ping"')));
    client.close();
  });
});

describe('EndpointRegistry and defineEndpoint', () => {
  test('register, get, methods, duplicates refused', () => {
    const reg = new EndpointRegistry().registerAll(status);
    assert.deepEqual(reg.methods(), ['Status.Leader', 'Status.Peers', 'Status.Ping']);
    assert.equal(reg.get('Status.Ping')?.method, 'Status.Ping');
    assert.equal(reg.get('Status.Nope'), undefined);
    assert.throws(() => reg.register(status[0]!), { code: 'MESHFED_ERR_RPC_ENDPOINT', message: /Status\.Ping is already registered/ });
  });

  test('resolve gives Go’s texts', () => {
    const reg = new EndpointRegistry().registerAll(status);
    assert.equal(reg.resolve('Status.Ping').endpoint?.method, 'Status.Ping');
    assert.equal(reg.resolve('Catalog.Register').error, "rpc: can't find service Catalog.Register");
    assert.equal(reg.resolve('Status.Nope').error, "rpc: can't find method Status.Nope");
    assert.equal(reg.resolve('Ping').error, 'rpc: service/method request ill-formed: Ping');
  });

  test('definitions are checked when defined', () => {
    assert.throws(() => defineEndpoint({ method: 'Ping', request: Empty, response: Empty, handler: () => ({}) }), { code: 'MESHFED_ERR_RPC_ENDPOINT' });
    assert.throws(() => defineEndpoint({ method: 'A.B', request: {} as typeof Empty, response: Empty, handler: () => ({}) }), { code: 'MESHFED_ERR_RPC_ENDPOINT' });
  });
});

describe('msgpack-RPC over TCP (127.0.0.1, port 0)', () => {
  const servers: Server[] = [];
  const sockets: Socket[] = [];
  after(async () => {
    for (const s of sockets) s.destroy();
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  });

  test('many concurrent calls on one socket, large payloads, then a clean close', async () => {
    const logger = createMemoryLogger('warn');
    const registry = new EndpointRegistry().registerAll(status).register(
      defineEndpoint({ method: 'Test.Echo', request: t.bytes, response: t.bytes, handler: (b) => b }),
    );
    const done: Promise<void>[] = [];
    const server = createServer({ allowHalfOpen: true }, (sock) => {
      sockets.push(sock);
      done.push(serveRpcConn(sock, registry, { logger }));
    });
    servers.push(server);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const sock = createConnection((server.address() as AddressInfo).port, '127.0.0.1');
    sockets.push(sock);
    await once(sock, 'connect');
    const client = new RpcClient(sock);
    const payload = new Uint8Array(1 << 20).map((_, i) => (i * 31) & 0xff);
    const results = await Promise.all([
      ...Array.from({ length: 500 }, () => client.call('Status.Ping', {}, Empty, Empty)),
      client.call('Test.Echo', payload, t.bytes, t.bytes),
    ]);
    assert.equal(results.length, 501);
    assert.deepEqual(results[500], payload);
    client.close();
    await waitFor(() => done.length === 1);
    await done[0];
    assert.equal(logger.entries.length, 0);
  });
});
