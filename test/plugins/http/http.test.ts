import assert from 'node:assert/strict';
import { request } from 'node:http';
import { describe, test } from 'node:test';
import { createAgent, Tokens, type AgentPlugin } from '../../../src/index.js';
import { http, HttpTokens, MAX_BODY_BYTES } from '../../../src/plugins/http/index.js';
import { createMemoryLogger, waitFor } from '../../../src/testing/index.js';

const host = { hostname: 'h', privateIPv4: '127.0.0.1' };

function counts(): Map<string, number> {
  const m = new Map<string, number>();
  for (const r of process.getActiveResourcesInfo()) m.set(r, (m.get(r) ?? 0) + 1);
  return m;
}

describe('http plugin', () => {
  test('serves the agent endpoints and routes added by other plugins', async (t) => {
    const extra: AgentPlugin = {
      name: 'extra',
      requires: ['http-api'],
      apply: ({ services }) => {
        const api = services.get(HttpTokens.HttpApi);
        api.route('GET', '/v1/extra/:name', (req) => ({ json: { name: req.params['name'], q: req.query.get('q') } }));
        api.route('PUT', '/v1/extra/echo', (req) => ({ status: 201, text: req.body.toString() }));
        api.route('GET', '/v1/boom', () => {
          throw new Error('handler broke');
        });
      },
    };
    const logger = createMemoryLogger('error');
    const agent = await createAgent({ config: { server: true, ports: { http: 0 }, node_name: 'n1' }, host, logger, plugins: [http(), extra] });
    t.after(() => agent.stop());
    await agent.start();
    const addr = agent.services.get(HttpTokens.HttpApi).address;
    assert.ok(addr);
    const base = `http://${addr}`;
    assert.deepEqual(await (await fetch(`${base}/v1/extra/abc?q=1`)).json(), { name: 'abc', q: '1' });
    const put = await fetch(`${base}/v1/extra/echo`, { method: 'PUT', body: 'hi' });
    assert.equal(put.status, 201);
    assert.equal(await put.text(), 'hi\n');
    assert.equal((await fetch(`${base}/v1/extra/echo`, { method: 'DELETE' })).status, 405);
    assert.equal((await fetch(`${base}/nope`)).status, 404);
    const boom = await fetch(`${base}/v1/boom`);
    assert.equal(boom.status, 500);
    assert.equal(logger.entries.filter((e) => e.msg === 'HTTP handler failed').length, 1);
    const big = await fetch(`${base}/v1/extra/echo`, { method: 'PUT', body: Buffer.alloc(MAX_BODY_BYTES + 1) });
    assert.equal(big.status, 413);
    assert.equal(await (await fetch(`${base}/v1/status/leader`)).json(), '');
    await agent.services.get(Tokens.Leadership).acquire();
    assert.equal(await (await fetch(`${base}/v1/status/leader`)).json(), '127.0.0.1:8300');
    const st = (await (await fetch(`${base}/v1/meshfed/status`)).json()) as { state: string; plugins: { name: string }[] };
    assert.equal(st.state, 'running');
    assert.deepEqual(st.plugins.map((p) => p.name), ['http', 'extra']);
    // Garbage on the socket gets a 400 and the server keeps serving.
    const bad = await new Promise<string>((resolve, reject) => {
      const [h, p] = addr.split(':');
      const req = request({ host: h, port: Number(p), method: 'GET', path: '/v1/agent/self', headers: { 'content-length': 'abc' } });
      req.on('response', (res) => resolve(String(res.statusCode)));
      req.on('error', (e) => resolve(`error:${e.message}`));
      req.end();
      setTimeout(() => reject(new Error('no answer')), 5000).unref();
    });
    assert.ok(bad === '400' || bad.startsWith('error:'), bad);
    assert.equal((await fetch(`${base}/v1/agent/self`)).status, 200);
    await agent.stop();
  });

  test('stop leaves no listening sockets or timers behind', async (t) => {
    // Handles close asynchronously: wait for earlier tests' handles to drain before the baseline.
    const servers = (): number => counts().get('TCPServerWrap') ?? 0;
    await waitFor(() => servers() === 0, { message: 'servers of earlier tests did not close' });
    const timersBefore = counts().get('Timeout') ?? 0;
    const agent = await createAgent({ config: { ports: { http: 0 } }, host, logger: createMemoryLogger('silent'), plugins: [http()] });
    t.after(() => agent.stop());
    await agent.start();
    const addr = agent.services.get(HttpTokens.HttpApi).address;
    await (await fetch(`http://${addr}/v1/agent/self`)).text();
    assert.equal(servers(), 1, 'the listener should be active while running');
    await agent.stop();
    await waitFor(() => servers() === 0, { timeoutMs: 5000, message: 'the HTTP listener is still open after stop()' });
    assert.ok((counts().get('Timeout') ?? 0) <= timersBefore, `timers left: ${JSON.stringify([...counts()])}`);
  });

  test('a port in use fails start naming the plugin', async (t) => {
    const a = await createAgent({ config: { ports: { http: 0 } }, host, logger: createMemoryLogger('silent'), plugins: [http()] });
    t.after(() => a.stop());
    await a.start();
    const port = Number(a.services.get(HttpTokens.HttpApi).address?.split(':')[1]);
    const b = await createAgent({ config: { ports: { http: port } }, host, logger: createMemoryLogger('silent'), plugins: [http()] });
    await assert.rejects(b.start(), (err: Error & { plugin?: string }) => err.plugin === 'http' && /EADDRINUSE/.test(err.message));
    await a.stop();
  });
});
