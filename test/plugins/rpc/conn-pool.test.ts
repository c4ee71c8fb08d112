import assert from 'node:assert/strict';
import type { Duplex } from 'node:stream';
import { describe, test } from 'node:test';
import type { Dialer } from '../../../src/index.js';
import { ConnPool, defineEndpoint, EndpointRegistry, RpcErrorCode, serveRpcConn, statusEndpoints, t } from '../../../src/plugins/rpc/index.js';
import { YamuxSession } from '../../../src/plugins/yamux/index.js';
import { createMemoryLogger, duplexPair, waitFor } from '../../../src/testing/index.js';

const Echo = t.struct({ Name: t.string, Data: t.bytes });
const echo = defineEndpoint({ method: 'Test.Echo', request: Echo, response: Echo, handler: async (req) => req });
const Never = t.struct({});
const logger = createMemoryLogger('silent');

/** An in-memory "network" of one server: every dial gets a fresh yamux server session. */
function memoryServer(registry: EndpointRegistry): { dialer: Dialer; dials: () => number; conns: Duplex[] } {
  let dials = 0;
  const conns: Duplex[] = [];
  const dialer: Dialer = {
    async dial() {
      dials++;
      const [client, server] = duplexPair();
      conns.push(server);
      const session = YamuxSession.server(server, { logger });
      void (async () => {
        for (;;) {
          const stream = await session.accept().catch(() => undefined);
          if (!stream) return;
          void serveRpcConn(stream, registry, { logger });
        }
      })();
      return client;
    },
  };
  return { dialer, dials: () => dials, conns };
}

function registry(): EndpointRegistry {
  return new EndpointRegistry().register(echo).registerAll(statusEndpoints({ leader: () => '10.0.0.1:8300', peers: () => ['10.0.0.1:8300'] }));
}

const target = { datacenter: 'dc1', node: 's1', address: '10.0.0.1:8300' };

describe('connection pool', () => {
  test('concurrent callers share one dial and one session; streams are reused', async () => {
    const srv = memoryServer(registry());
    const pool = new ConnPool({ dialer: srv.dialer, logger, maxIdleTimeMs: 0 });
    const replies = await Promise.all(Array.from({ length: 40 }, (_, i) => pool.callEndpoint(target, echo, { Name: `n${i}`, Data: Uint8Array.of(i, 0xff) })));
    assert.deepEqual(replies.map((r) => r.Name), Array.from({ length: 40 }, (_, i) => `n${i}`));
    assert.deepEqual([...replies[7]!.Data], [7, 0xff]);
    assert.equal(srv.dials(), 1);
    assert.equal(pool.sessions, 1);
    const opened = pool.stats.streamsOpened;
    for (let i = 0; i < 10; i++) await pool.ping(target);
    assert.equal(pool.stats.streamsOpened, opened, 'sequential calls reuse idle streams');
    assert.ok(pool.stats.streamsReused >= 10);
    await pool.close();
  });

  test('forget drops the sessions to a node (the router does this when a server leaves)', async () => {
    const srv = memoryServer(registry());
    const pool = new ConnPool({ dialer: srv.dialer, logger, maxIdleTimeMs: 0 });
    await pool.ping(target);
    await pool.ping({ ...target, node: 's2', address: '10.0.0.2:8300' });
    assert.equal(pool.sessions, 2);
    assert.equal(pool.forget('s1'), 1);
    assert.equal(pool.sessions, 1);
    assert.equal(pool.forget('s1'), 0);
    await pool.ping(target);
    assert.equal(srv.dials(), 3, 'the next call to s1 dials again');
    await pool.close();
  });

  test('a node name is mandatory; calls after close fail', async () => {
    const pool = new ConnPool({ dialer: memoryServer(registry()).dialer, logger });
    await assert.rejects(pool.ping({ datacenter: 'dc1', node: '' }), { code: RpcErrorCode.POOL, message: 'pool: ConnPool.acquire requires a node name' });
    await pool.close();
    await assert.rejects(pool.ping(target), { message: 'rpc error: shutdown' });
  });

  test('a broken session is dropped and the next call re-dials', async () => {
    const srv = memoryServer(registry());
    const pool = new ConnPool({ dialer: srv.dialer, logger, maxIdleTimeMs: 0 });
    await pool.ping(target);
    srv.conns[0]!.destroy();
    await waitFor(() => pool.sessions === 0);
    await pool.ping(target);
    assert.equal(srv.dials(), 2);
    await pool.close();
  });

  test('remote errors keep their text; the session stays pooled', async () => {
    const srv = memoryServer(registry());
    const pool = new ConnPool({ dialer: srv.dialer, logger, maxIdleTimeMs: 0 });
    await assert.rejects(pool.call(target, 'Nope.Method', {}, Never, Never), /rpc: can't find service Nope\.Method/);
    assert.equal(await pool.call(target, 'Status.Leader', {}, statusEndpoints({ leader: () => '', peers: () => [] })[1]!.request, t.string), '10.0.0.1:8300');
    assert.equal(srv.dials(), 1);
    await pool.close();
  });

  test('calls have a deadline; blocking queries get wait + hold', async () => {
    const hang = defineEndpoint({ method: 'Test.Hang', request: Never, response: Never, handler: (_req, ctx) => new Promise((resolve) => ctx.signal.addEventListener('abort', () => resolve({}))) });
    const srv = memoryServer(registry().register(hang));
    const pool = new ConnPool({ dialer: srv.dialer, logger, maxIdleTimeMs: 0, rpcClientTimeoutMs: 100, rpcHoldTimeoutMs: 50 });
    await assert.rejects(pool.callEndpoint(target, hang, {}), (err: Error & { code?: string }) => /TIMEOUT/.test(err.code ?? ''));
    const t1 = Date.now();
    await assert.rejects(pool.callEndpoint(target, hang, {}, { blockingWaitMs: 300 }), (err: Error & { code?: string }) => /TIMEOUT/.test(err.code ?? ''));
    const blocking = Date.now() - t1;
    assert.ok(blocking >= 350, `blocking deadline was ${blocking} ms, expected >= 350 (wait 300 + hold 50)`);
    const ctl = new AbortController();
    const p = pool.callEndpoint(target, hang, {}, { signal: ctl.signal });
    ctl.abort();
    await assert.rejects(p, { code: 'MESHFED_ERR_ABORTED' });
    await pool.close();
  });

  test('the reaper closes idle sessions', async () => {
    const srv = memoryServer(registry());
    const pool = new ConnPool({ dialer: srv.dialer, logger, maxIdleTimeMs: 30, reapIntervalMs: 10 });
    await pool.ping(target);
    assert.equal(pool.sessions, 1);
    await waitFor(() => pool.sessions === 0, { message: 'idle session not reaped' });
    assert.equal(pool.stats.reaped, 1);
    await pool.close();
  });
});
