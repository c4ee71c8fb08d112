import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createAgent, ErrorCode, MeshfedError, Stage, Tokens, serviceToken, type AgentPlugin, type Connection } from '../../src/index.js';
import { createMemoryLogger, duplexPair } from '../../src/testing/index.js';

const host = { hostname: 'test-node', privateIPv4: '127.0.0.1' };
const quiet = () => createMemoryLogger('silent');

function recorder(events: string[], name: string, extra: Partial<AgentPlugin> = {}): AgentPlugin {
  return {
    name,
    ...extra,
    apply: () => ({
      start: () => {
        events.push(`start:${name}`);
      },
      stop: () => {
        events.push(`stop:${name}`);
      },
    }),
  };
}

describe('agent boot', () => {
  test('starts plugins in dependency order and stops them in reverse', async () => {
    const events: string[] = [];
    const agent = await createAgent({
      config: {},
      host,
      logger: quiet(),
      plugins: [recorder(events, 'c', { requires: ['b'] }), recorder(events, 'a'), recorder(events, 'b', { requires: ['cap-a'] }), { name: 'provider', provides: ['cap-a'] }],
    });
    await agent.start();
    assert.equal(agent.status().state, 'running');
    await agent.stop();
    // Listed order, except that a plugin's requirements boot before it.
    assert.deepEqual(events, ['start:b', 'start:c', 'start:a', 'stop:a', 'stop:c', 'stop:b']);
    assert.equal(agent.status().state, 'stopped');
    await agent.stop(); // idempotent
  });

  test('a missing requires fails before any plugin does anything, naming both plugins', async () => {
    const events: string[] = [];
    const watcher: AgentPlugin = {
      name: 'watcher',
      validate: () => void events.push('validate'),
      register: () => void events.push('register'),
      apply: () => void events.push('apply'),
    };
    await assert.rejects(
      createAgent({ config: {}, host, logger: quiet(), plugins: [watcher, recorder(events, 'wanfed', { requires: ['gateway-locator'] })] }),
      (err: MeshfedError) => {
        assert.equal(err.code, ErrorCode.PLUGIN_MISSING_DEPENDENCY);
        assert.match(err.message, /plugin "wanfed" requires "gateway-locator"/);
        assert.equal(err.plugin, 'wanfed');
        return true;
      },
    );
    assert.deepEqual(events, []);
  });

  test('invalid config fails before plugins validate', async () => {
    let validated = false;
    await assert.rejects(
      createAgent({ config: { datacenter: 'DC 1' }, host, logger: quiet(), plugins: [{ name: 'p', validate: () => void (validated = true) }] }),
      { code: ErrorCode.CONFIG_INVALID },
    );
    assert.equal(validated, false);
  });

  test('duplicate names, nameless plugins and dependency cycles are refused', async () => {
    await assert.rejects(createAgent({ config: {}, host, logger: quiet(), plugins: [{ name: 'x' }, { name: 'x' }] }), /listed twice/);
    await assert.rejects(createAgent({ config: {}, host, logger: quiet(), plugins: [{} as AgentPlugin] }), /has no name/);
    await assert.rejects(
      createAgent({ config: {}, host, logger: quiet(), plugins: [{ name: 'x', requires: ['y'] }, { name: 'y', requires: ['x'] }] }),
      { code: ErrorCode.PLUGIN_DEPENDENCY_CYCLE },
    );
  });

  test('a plugin validate error names the plugin', async () => {
    await assert.rejects(
      createAgent({ config: {}, host, logger: quiet(), plugins: [{ name: 'picky', validate: () => { throw new Error('option "x" must be positive'); } }] }),
      (err: MeshfedError) => err.plugin === 'picky' && /plugin "picky" failed to validate: option "x" must be positive/.test(err.message),
    );
  });

  test('a failing start stops the plugins that started, in reverse, and names the plugin', async () => {
    const events: string[] = [];
    const bad: AgentPlugin = { name: 'bad', apply: () => ({ start: () => { throw new Error('port in use'); } }) };
    const agent = await createAgent({ config: {}, host, logger: quiet(), plugins: [recorder(events, 'a'), recorder(events, 'b'), bad, recorder(events, 'c')] });
    await assert.rejects(agent.start(), (err: MeshfedError) => err.plugin === 'bad' && /plugin "bad" failed to start: port in use/.test(err.message));
    assert.deepEqual(events, ['start:a', 'start:b', 'stop:b', 'stop:a']);
    assert.equal(agent.status().state, 'failed');
  });

  test('start and stop are bounded by timeouts that name the plugin and abort its signal', async () => {
    let sawAbort = false;
    const slow: AgentPlugin = {
      name: 'slow',
      apply: () => ({
        start: ({ signal }) =>
          new Promise<void>((resolve) => {
            signal.addEventListener('abort', () => {
              sawAbort = true;
              resolve();
            });
          }),
      }),
    };
    const agent = await createAgent({ config: {}, host, logger: quiet(), plugins: [slow], startTimeoutMs: 50 });
    await assert.rejects(agent.start(), (err: MeshfedError) => err.code === ErrorCode.PLUGIN_TIMEOUT && err.plugin === 'slow');
    assert.equal(sawAbort, true);
  });

  test('a throwing tap surfaces as an error naming plugin and hook', async () => {
    const thrower: AgentPlugin = {
      name: 'thrower',
      apply: ({ hooks }) => {
        hooks.onDial.tapPromise({}, async () => {
          throw new Error('boom');
        });
        hooks.onStarting.tap({}, () => undefined);
      },
    };
    const agent = await createAgent({ config: {}, host, logger: quiet(), plugins: [thrower] });
    await agent.start();
    await assert.rejects(agent.services.get(Tokens.Dialer).dial({ datacenter: 'dc2', node: 's1', rpcType: 4 }), (err: MeshfedError) => {
      assert.equal(err.code, ErrorCode.HOOK_TAP_FAILED);
      assert.equal(err.plugin, 'thrower');
      assert.equal(err.hook, 'onDial');
      assert.match(err.message, /plugin "thrower" failed in hook onDial: boom/);
      return true;
    });
    await agent.stop();
  });

  test('an async function given to tap() (not tapPromise) fails start instead of running unawaited', async () => {
    let ran = false;
    const p: AgentPlugin = {
      name: 'forgetful',
      apply: ({ hooks }) =>
        // Type-checks (an async function is a () => void), which is why the kernel checks it.
        // eslint-disable-next-line @typescript-eslint/no-misused-promises -- the mistake under test
        hooks.onStarted.tap({}, async () => {
          ran = true;
          await Promise.resolve();
        }),
    };
    const agent = await createAgent({ config: {}, host, logger: quiet(), plugins: [p] });
    await assert.rejects(agent.start(), (err: MeshfedError) => err.plugin === 'forgetful' && err.hook === 'onStarted' && /use tapPromise\(\)/.test(err.message));
    assert.equal(ran, true);
    await agent.stop().catch(() => undefined);
  });

  test('a synchronous throwing tap in a lifecycle hook fails start naming plugin and hook', async () => {
    const p: AgentPlugin = { name: 'early', apply: ({ hooks }) => hooks.onStarting.tap({}, () => { throw new Error('not ready'); }) };
    const agent = await createAgent({ config: {}, host, logger: quiet(), plugins: [p] });
    await assert.rejects(agent.start(), (err: MeshfedError) => err.plugin === 'early' && err.hook === 'onStarting');
  });

  test('a plugin may only tap under its own name', async () => {
    const p: AgentPlugin = { name: 'honest', apply: ({ hooks }) => hooks.onDial.tap('someone-else', () => undefined) };
    await assert.rejects(createAgent({ config: {}, host, logger: quiet(), plugins: [p] }), { code: ErrorCode.HOOK_TAP_NAME });
  });

  test('onDial asks taps in stage order; the fallback answers when nobody else does', async () => {
    const calls: string[] = [];
    const fallback: AgentPlugin = {
      name: 'fallback-dialer',
      apply: ({ hooks }) =>
        hooks.onDial.tapPromise({ stage: Stage.FALLBACK }, async (t) => {
          calls.push(`fallback:${t.datacenter}`);
          return duplexPair()[0];
        }),
    };
    const remote: AgentPlugin = {
      name: 'remote-dialer',
      apply: ({ hooks, config }) =>
        hooks.onDial.tapPromise({}, async (t) => {
          calls.push(`remote:${t.datacenter}`);
          return t.datacenter === config.datacenter ? undefined : duplexPair()[0];
        }),
    };
    const agent = await createAgent({ config: { datacenter: 'dc1' }, host, logger: quiet(), plugins: [fallback, remote] });
    await agent.start();
    const dialer = agent.services.get(Tokens.Dialer);
    const a: Connection = await dialer.dial({ datacenter: 'dc1', node: 's1', rpcType: 4 });
    const b: Connection = await dialer.dial({ datacenter: 'dc2', node: 's2', alpn: 'consul/rpc-multi' });
    a.destroy();
    b.destroy();
    assert.deepEqual(calls, ['remote:dc1', 'fallback:dc1', 'remote:dc2']);
    await agent.stop();
  });

  test('a dial nobody can serve fails with a clear error; an aborted dial rejects', async () => {
    const hang: AgentPlugin = {
      name: 'hang',
      apply: ({ hooks }) =>
        hooks.onDial.tapPromise({}, (t, ctx) =>
          t.node === 'hang'
            ? new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(new Error('dial cancelled'))))
            : Promise.resolve(undefined),
        ),
    };
    const agent = await createAgent({ config: {}, host, logger: quiet(), plugins: [hang] });
    await agent.start();
    const dialer = agent.services.get(Tokens.Dialer);
    await assert.rejects(dialer.dial({ datacenter: 'dc9', node: 'x', rpcType: 4 }), { code: ErrorCode.NO_DIALER });
    await assert.rejects(dialer.dial({ datacenter: 'dc9', node: 'hang', rpcType: 4 }, { timeoutMs: 30 }), { code: ErrorCode.ABORTED });
    await agent.stop();
  });

  test('two agents with the same plugin objects do not share state', async () => {
    const Counter = serviceToken<{ n: number }>('test.Counter');
    const counter: AgentPlugin = {
      name: 'counter',
      register: ({ container }) => void container.bind(Counter).toConstantValue({ n: 0 }),
      apply: ({ hooks, services }) => {
        const c = services.get(Counter);
        hooks.onMembership.tap({}, () => void c.n++);
      },
    };
    const plugins = [counter];
    const a = await createAgent({ config: { datacenter: 'dc1' }, host, logger: quiet(), plugins });
    const b = await createAgent({ config: { datacenter: 'dc2' }, host, logger: quiet(), plugins });
    await a.start();
    await b.start();
    const ev = { type: 'join', pool: 'lan', members: [] } as const;
    a.services.get(Tokens.MembershipEmitter).emit(ev);
    a.services.get(Tokens.MembershipEmitter).emit(ev);
    b.services.get(Tokens.MembershipEmitter).emit(ev);
    assert.equal(a.services.get(Counter).n, 2);
    assert.equal(b.services.get(Counter).n, 1);
    assert.notEqual(a.services.get(Counter), b.services.get(Counter));
    assert.equal(a.config.datacenter, 'dc1');
    assert.equal(b.config.datacenter, 'dc2');
    await b.stop();
    assert.equal(a.status().state, 'running');
    await a.stop();
  });

  test('leadership hooks fire with a signal that aborts on loss and on stop', async () => {
    const seen: string[] = [];
    let signal: AbortSignal | undefined;
    const leader: AgentPlugin = {
      name: 'leader-routines',
      apply: ({ hooks }) => {
        hooks.onLeadershipAcquired.tap({}, (ctx) => {
          signal = ctx.signal;
          seen.push(`acquired:${ctx.datacenter}`);
        });
        hooks.onLeadershipLost.tap({}, (ctx) => void seen.push(`lost:${ctx.signal.aborted}`));
      },
    };
    const agent = await createAgent({ config: { server: true }, host, logger: quiet(), plugins: [leader] });
    await agent.start();
    const l = agent.services.get(Tokens.Leadership);
    await l.acquire();
    assert.equal(agent.status().leader, true);
    await l.lose();
    assert.equal(signal?.aborted, true);
    await l.acquire();
    await agent.stop();
    assert.deepEqual(seen, ['acquired:dc1', 'lost:true', 'acquired:dc1', 'lost:true']);
  });

  test('onRpcAccept dispatches by type byte and by ALPN id', async () => {
    const got: string[] = [];
    const acceptor: AgentPlugin = {
      name: 'acceptor',
      apply: ({ hooks }) => {
        hooks.onRpcAccept.for(4).tap({}, (_c, info) => (got.push(`byte:${info.key}`), true));
        hooks.onRpcAccept.for('consul/rpc-multi').tap({}, (_c, info) => (got.push(`alpn:${info.key}`), true));
      },
    };
    const agent = await createAgent({ config: {}, host, logger: quiet(), plugins: [acceptor] });
    const d = agent.services.get(Tokens.RpcAcceptDispatcher);
    const [conn] = duplexPair();
    const base = { remoteAddress: '127.0.0.1:1', tls: false, signal: new AbortController().signal };
    assert.equal(d.dispatch(conn, { ...base, key: 4 }), true);
    assert.equal(d.dispatch(conn, { ...base, key: 'consul/rpc-multi', tls: true }), true);
    assert.equal(d.dispatch(conn, { ...base, key: 2 }), false);
    assert.equal(d.handles(4), true);
    assert.equal(d.handles(7), false);
    assert.deepEqual(got, ['byte:4', 'alpn:consul/rpc-multi']);
    conn.destroy();
    await agent.stop();
  });

  test('waterfalls: onGatewayList and onXdsBuild see each tap’s output', async () => {
    const p: AgentPlugin = {
      name: 'shaper',
      apply: ({ hooks }) => {
        hooks.onGatewayList.tap({}, (gws) => gws.filter((g) => g.address !== '10.0.0.1:443'));
        hooks.onGatewayList.tap({ stage: Stage.LATE }, (gws) => [...gws].reverse());
        hooks.onXdsBuild.tap({}, (r) => ({ ...r, clusters: [...r.clusters, { '@type': 'type.googleapis.com/envoy.config.cluster.v3.Cluster', name: 'extra' }] }));
      },
    };
    const agent = await createAgent({ config: {}, host, logger: quiet(), plugins: [p] });
    const gws = await agent.services.get(Tokens.GatewayListResolver).resolve(
      ['10.0.0.1:443', '10.0.0.2:443', '10.0.0.3:443'].map((address) => ({ address, datacenter: 'dc2', source: 'local' as const })),
      { targetDatacenter: 'dc2', list: 'local' },
    );
    assert.deepEqual(gws.map((g) => g.address), ['10.0.0.3:443', '10.0.0.2:443']);
    const res = await agent.services.get(Tokens.XdsBuilder).build(
      { listeners: [], clusters: [], endpoints: [], routes: [] },
      { proxy: { id: 'gw', kind: 'mesh-gateway', datacenter: 'dc1', meta: {} }, snapshot: {} },
    );
    assert.deepEqual(res.clusters.map((c) => c.name), ['extra']);
    await agent.stop();
  });

  test('services: unknown tokens give a clear error; hooks object is frozen', async () => {
    const agent = await createAgent({ config: {}, host, logger: quiet(), plugins: [] });
    assert.throws(() => agent.services.get(serviceToken('nope')), { code: ErrorCode.SERVICE_NOT_BOUND });
    assert.equal(agent.services.tryGet(serviceToken('nope')), undefined);
    assert.equal(Object.isFrozen(agent.hooks), true);
    assert.throws(() => {
      (agent.hooks as unknown as Record<string, unknown>)['onDial'] = null;
    }, TypeError);
    assert.throws(() => agent.hooks.onDial.tap({}, () => undefined), { code: ErrorCode.HOOK_TAP_NAME });
    await agent.stop();
    await assert.rejects(agent.start(), { code: ErrorCode.AGENT_STATE });
  });

  test('stop leaves the agent signal aborted so long-lived work ends', async () => {
    const agent = await createAgent({ config: {}, host, logger: quiet(), plugins: [] });
    await agent.start();
    const signal = agent.services.get(Tokens.AgentSignal);
    assert.equal(signal.aborted, false);
    await agent.stop();
    assert.equal(signal.aborted, true);
    assert.ok(signal.reason instanceof MeshfedError);
  });
});
