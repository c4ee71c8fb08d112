import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MeshfedError, type MembershipEvent, type Member } from '../../../src/index.js';
import { ErrDCNotAvailable, ErrNoDCPath, Router, RouterError, RouterErrorCode, type ServerMeta, type ServerTracker } from '../../../src/plugins/router/index.js';
import { createMemoryLogger, FakeClock } from '../../../src/testing/index.js';
import { clientMember, FakePinger, server, serverMember } from './helpers.js';

function makeRouter(opts: { serverName?: string } = {}): { r: Router; clock: FakeClock; pinger: FakePinger; logger: ReturnType<typeof createMemoryLogger> } {
  const clock = new FakeClock();
  const pinger = new FakePinger();
  const logger = createMemoryLogger();
  const r = new Router({ datacenter: 'dc1', serverName: opts.serverName, pinger, clock, random: () => 0.9999999, logger });
  return { r, clock, pinger, logger };
}

const ev = (type: MembershipEvent['type'], pool: MembershipEvent['pool'], ...members: Member[]): MembershipEvent => ({ type, pool, members });

class RecordingTracker implements ServerTracker {
  readonly log: string[] = [];
  readonly rebalances: string[] = [];
  newRebalancer(dc: string): () => void {
    return () => void this.rebalances.push(dc);
  }
  addServer(area: string, s: ServerMeta): void {
    this.log.push(`add ${area} ${s.name}`);
  }
  removeServer(area: string, s: ServerMeta): void {
    this.log.push(`remove ${area} ${s.name}`);
  }
}

describe('Router areas and membership', () => {
  test('the LAN area always has a manager for the local DC; seeding adds servers and skips clients', () => {
    const { r, logger } = makeRouter();
    r.addArea('lan', { numNodes: () => 2, members: [serverMember('s1', 'dc1'), clientMember('c1', 'dc1')] });
    assert.deepEqual(r.getDatacenters(), ['dc1']);
    assert.equal(r.findRoute('dc1')?.server.name, 's1');
    assert.ok(!logger.entries.some((e) => e.level === 'warn'), 'clients in the LAN are normal');
    r.addArea('wan', { numNodes: () => 2, members: [serverMember('s2.dc2', 'dc2'), clientMember('c9', 'dc2')] });
    assert.ok(logger.entries.some((e) => e.level === 'warn' && e.msg === 'Non-server in server-only area' && e.fields['member'] === 'c9'));
    assert.deepEqual(r.getDatacenters(), ['dc1', 'dc2']);
    assert.deepEqual(r.getRemoteDatacenters(), ['dc2']);
    assert.throws(() => r.addArea('lan', { numNodes: () => 0 }), (e: unknown) => e instanceof RouterError && e.code === RouterErrorCode.AREA_EXISTS);
    r.shutdown();
  });

  test('an empty LAN area still knows the local DC, but has no route to it', () => {
    const { r } = makeRouter();
    r.addArea('lan', { numNodes: () => 0 });
    assert.equal(r.hasDatacenter('dc1'), true);
    assert.equal(r.findRoute('dc1'), undefined);
    r.shutdown();
  });

  test('join adds, update refreshes (= add), fail keeps the server listed but cycles it, leave and reap remove', () => {
    const { r } = makeRouter();
    r.addArea('wan', { numNodes: () => 3 });
    r.handleMembership(ev('join', 'wan', serverMember('a.dc2', 'dc2'), serverMember('b.dc2', 'dc2'), clientMember('x', 'dc2')));
    assert.deepEqual(r.getDatacenters(), ['dc2']);
    assert.deepEqual(r.manager('wan', 'dc2')?.servers().map((s) => s.name), ['a.dc2', 'b.dc2']);

    r.handleMembership(ev('update', 'wan', serverMember('a.dc2', 'dc2', { port: 9300 }), serverMember('c.dc2', 'dc2')));
    assert.deepEqual(r.manager('wan', 'dc2')?.servers().map((s) => `${s.name}:${s.port}`), ['a.dc2:9300', 'b.dc2:8300', 'c.dc2:8300']);

    r.handleMembership(ev('fail', 'wan', serverMember('a.dc2', 'dc2', { status: 'failed' })));
    assert.deepEqual(r.manager('wan', 'dc2')?.servers().map((s) => s.name), ['b.dc2', 'c.dc2', 'a.dc2'], 'failed server stays listed, at the back');
    assert.equal(r.findRoute('dc2')?.server.name, 'b.dc2');

    r.handleMembership(ev('leave', 'wan', serverMember('b.dc2', 'dc2', { status: 'left' })));
    r.handleMembership(ev('reap', 'wan', serverMember('a.dc2', 'dc2', { status: 'left' })));
    assert.deepEqual(r.manager('wan', 'dc2')?.servers().map((s) => s.name), ['c.dc2']);
    r.shutdown();
  });

  test('a datacenter disappears when its last server leaves (and its manager stops)', () => {
    const { r, clock } = makeRouter();
    r.addArea('wan', { numNodes: () => 1 });
    r.handleMembership(ev('join', 'wan', serverMember('a.dc2', 'dc2')));
    const mgr = r.manager('wan', 'dc2');
    assert.equal(mgr?.running, true);
    assert.equal(clock.pending, 1);
    r.handleMembership(ev('leave', 'wan', serverMember('a.dc2', 'dc2')));
    assert.equal(r.hasDatacenter('dc2'), false);
    assert.deepEqual(r.getDatacenters(), []);
    assert.equal(mgr?.running, false);
    assert.equal(clock.pending, 0);
    r.shutdown();
  });

  test('events for an area that was not added, and servers with bad tags, are ignored', () => {
    const { r, logger } = makeRouter();
    r.addArea('lan', { numNodes: () => 0 });
    r.handleMembership(ev('join', 'wan', serverMember('a.dc2', 'dc2')));
    r.handleMembership(ev('join', 'lan', serverMember('bad', 'dc1', { tags: { port: 'x' } })));
    assert.deepEqual(r.getDatacenters(), ['dc1']);
    assert.equal(r.findRoute('dc1'), undefined);
    assert.ok(logger.entries.some((e) => e.msg === 'ignoring server with invalid tags'));
    assert.throws(() => r.addServer('wan', server('a.dc2', 'dc2')), (e: unknown) => e instanceof MeshfedError && e.code === RouterErrorCode.AREA_UNKNOWN);
    r.shutdown();
  });

  test('LAN and WAN managers for the local DC are both indexed; checkServers walks them in order', () => {
    const { r } = makeRouter();
    r.addArea('lan', { numNodes: () => 1, members: [serverMember('s1', 'dc1')] });
    r.addArea('wan', { numNodes: () => 1, members: [serverMember('s1.dc1', 'dc1')] });
    assert.equal(r.managers('dc1').length, 2);
    const seen: string[] = [];
    r.checkServers('dc1', (s) => (seen.push(s.name), true));
    assert.deepEqual(seen, ['s1', 's1.dc1']);
    const first: string[] = [];
    r.checkServers('dc1', (s) => (first.push(s.name), false));
    assert.deepEqual(first, ['s1']);
    r.shutdown();
  });
});

describe('Router routes', () => {
  test('findRoute skips offline managers and falls back to another area', async () => {
    const { r, pinger } = makeRouter();
    r.addArea('lan', { numNodes: () => 1, members: [serverMember('s1', 'dc1')] });
    const wanPinger = new FakePinger();
    wanPinger.healthy.add('s1.dc1');
    r.addArea('wan', { numNodes: () => 1, members: [serverMember('s1.dc1', 'dc1')], pinger: wanPinger });
    assert.equal(r.findRoute('dc1')?.server.name, 's1');
    await r.manager('lan', 'dc1')?.rebalanceServers();
    assert.deepEqual(pinger.pinged, ['s1']);
    assert.equal(r.manager('lan', 'dc1')?.isOffline, true);
    assert.equal(r.findRoute('dc1')?.server.name, 's1.dc1');
    await r.manager('wan', 'dc1')?.rebalanceServers();
    assert.equal(r.findRoute('dc1')?.manager, r.manager('wan', 'dc1'));
    // Both offline: the DC is known but not available.
    wanPinger.healthy.clear();
    await r.manager('wan', 'dc1')?.rebalanceServers();
    assert.equal(r.findRoute('dc1'), undefined);
    assert.throws(() => r.routeOrThrow('dc1'), (e: unknown) => e instanceof RouterError && e.code === RouterErrorCode.DC_NOT_AVAILABLE && e.message === ErrDCNotAvailable && e.datacenter === 'dc1');
    r.shutdown();
  });

  test('routeOrThrow: exact Consul texts', () => {
    const { r } = makeRouter();
    r.addArea('lan', { numNodes: () => 0 });
    assert.equal(ErrDCNotAvailable, 'Remote DC has no server currently reachable');
    assert.equal(ErrNoDCPath, 'No path to datacenter');
    assert.throws(() => r.routeOrThrow('dc9'), (e: unknown) => e instanceof MeshfedError && e.code === RouterErrorCode.NO_DC_PATH && e.message === 'No path to datacenter');
    assert.throws(() => r.routeOrThrow('dc1'), (e: unknown) => e instanceof MeshfedError && e.message === 'Remote DC has no server currently reachable');
    r.handleMembership(ev('join', 'lan', serverMember('s1', 'dc1')));
    assert.equal(r.routeOrThrow('dc1').server.addr, '127.0.0.1:8300');
    r.shutdown();
  });

  test('forwardDC reports a failed call to the manager so the next call goes elsewhere', async () => {
    const { r } = makeRouter();
    r.addArea('wan', { numNodes: () => 2, members: [serverMember('a.dc2', 'dc2'), serverMember('b.dc2', 'dc2')] });
    await assert.rejects(r.forwardDC('dc2', async () => Promise.reject(new Error('boom'))), /boom/);
    assert.equal(await r.forwardDC('dc2', async (s) => s.name), 'b.dc2');
    await assert.rejects(r.forwardDC('dc3', async () => 1), (e: unknown) => e instanceof RouterError && e.message === ErrNoDCPath);
    r.shutdown();
  });

  test('areas with useTls force it on their servers', () => {
    const { r } = makeRouter();
    r.addArea('wan', { numNodes: () => 1, useTls: true, members: [serverMember('a.dc2', 'dc2')] });
    assert.equal(r.findRoute('dc2')?.server.useTls, true);
    r.shutdown();
  });
});

describe('Router trackers', () => {
  test('trackers get a replay of current servers, then every add/remove; unregister stops that', () => {
    const { r } = makeRouter();
    r.addArea('lan', { numNodes: () => 1, members: [serverMember('s1', 'dc1')] });
    r.addArea('wan', { numNodes: () => 1, members: [serverMember('s1.dc1', 'dc1'), serverMember('a.dc2', 'dc2')] });
    const t = new RecordingTracker();
    const unregister = r.registerTracker(t);
    assert.deepEqual(t.log, ['add lan s1', 'add wan s1.dc1', 'add wan a.dc2']);
    r.handleMembership(ev('join', 'wan', serverMember('b.dc2', 'dc2')));
    r.handleMembership(ev('update', 'wan', serverMember('b.dc2', 'dc2')));
    r.handleMembership(ev('fail', 'wan', serverMember('a.dc2', 'dc2')));
    r.handleMembership(ev('leave', 'wan', serverMember('a.dc2', 'dc2')));
    assert.deepEqual(t.log.slice(3), ['add wan b.dc2', 'add wan b.dc2', 'remove wan a.dc2']);
    unregister();
    r.handleMembership(ev('join', 'wan', serverMember('c.dc2', 'dc2')));
    assert.equal(t.log.length, 6);
    r.shutdown();
  });

  test("each manager's rebalance tick calls the trackers' rebalancer for its DC", async () => {
    const { r, clock, pinger } = makeRouter();
    const t = new RecordingTracker();
    r.registerTracker(t);
    r.addArea('wan', { numNodes: () => 1, members: [serverMember('a.dc2', 'dc2')] });
    pinger.healthy.add('a.dc2');
    await clock.advanceAsync(120_000);
    assert.deepEqual(t.rebalances, ['dc2']);
    r.shutdown();
    assert.equal(clock.pending, 0);
  });

  test('shutdown stops every manager and ignores later events', () => {
    const { r, clock } = makeRouter();
    r.addArea('lan', { numNodes: () => 1, members: [serverMember('s1', 'dc1')] });
    r.addArea('wan', { numNodes: () => 1, members: [serverMember('a.dc2', 'dc2')] });
    assert.equal(clock.pending, 2);
    r.shutdown();
    assert.equal(clock.pending, 0);
    r.handleMembership(ev('join', 'wan', serverMember('b.dc3', 'dc3')));
    assert.equal(r.hasDatacenter('dc3'), false);
    assert.deepEqual(r.summary(), { lan: { dc1: { servers: 1, offline: false } }, wan: { dc2: { servers: 1, offline: false } } });
  });
});
