import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Member } from '../../../src/index.js';
import { inspectServer, parseServer, serverParseError } from '../../../src/plugins/router/index.js';
import { clientMember, serverMember } from './helpers.js';

describe('parseServer (metadata.IsConsulServer)', () => {
  test('a Consul WAN server member: names, ports, versions, TLS and feature flags', () => {
    const m = serverMember('s1.dc2', 'dc2', {
      ip: '10.0.0.5',
      port: 8300,
      id: 'a1b2c3',
      tags: { use_tls: '1', ft_fs: '1', ft_si: '1', wan_join_port: '8302', grpc_port: '8502', expect: '3' },
    });
    const s = parseServer(m);
    assert.ok(s);
    assert.equal(s.name, 's1.dc2');
    assert.equal(s.shortName, 's1');
    assert.equal(s.id, 'a1b2c3');
    assert.equal(s.datacenter, 'dc2');
    assert.equal(s.port, 8300);
    assert.equal(s.addr, '10.0.0.5:8300');
    assert.equal(s.wanJoinPort, 8302);
    assert.equal(s.grpcPort, 8502);
    assert.equal(s.build, '1.8.0:12345678');
    assert.equal(s.version, 2);
    assert.equal(s.versionMin, 2);
    assert.equal(s.versionMax, 3);
    assert.equal(s.raftVersion, 3);
    assert.equal(s.expect, 3);
    assert.equal(s.useTls, true);
    assert.deepEqual(s.featureFlags, { fs: 1, si: 1 });
    assert.equal(s.status, 'alive');
    assert.equal(s.readReplica, false);
    assert.equal(serverParseError(m), undefined);
  });

  test('LAN name has no DC suffix; only a trailing ".<dc>" is removed', () => {
    assert.equal(parseServer(serverMember('s1', 'dc1'))?.shortName, 's1');
    assert.equal(parseServer(serverMember('s1.dc1.x', 'dc1'))?.shortName, 's1.dc1.x');
    assert.equal(parseServer(serverMember('s1.dc2', 'dc1'))?.shortName, 's1.dc2');
  });

  test('defaults: use_tls other than "1" is false, no wan_join_port, raft_vsn 1, no flags', () => {
    const m: Member = { name: 'n', address: '127.0.0.1', port: 8301, status: 'failed', tags: { role: 'consul', dc: 'dc1', port: '8300', use_tls: 'true' } };
    const s = parseServer(m);
    assert.ok(s);
    assert.equal(s.useTls, false);
    assert.equal(s.wanJoinPort, undefined);
    assert.equal(s.raftVersion, 1);
    assert.equal(s.version, 0);
    assert.deepEqual(s.featureFlags, {});
    assert.equal(s.status, 'failed');
    assert.equal(s.id, '');
  });

  test('IPv6 member addresses are bracketed', () => {
    assert.equal(parseServer(serverMember('s1', 'dc1', { ip: '::1', port: 8300 }))?.addr, '[::1]:8300');
  });

  test('non-servers are not servers, and that is not an error', () => {
    const c = clientMember('c1', 'dc1');
    assert.equal(parseServer(c), undefined);
    assert.equal(serverParseError(c), undefined);
    const r = inspectServer(c);
    assert.equal(r.ok, false);
    assert.equal(!r.ok && r.notServer, true);
  });

  test('malformed numeric tags reject the server with a reason', () => {
    for (const [tags, key] of [
      [{ port: 'abc' }, 'port'],
      [{ port: '' }, 'port'],
      [{ port: '70000' }, 'port'],
      [{ vsn: 'x' }, 'vsn'],
      [{ vsn_max: '1.5' }, 'vsn_max'],
      [{ wan_join_port: 'nope' }, 'wan_join_port'],
      [{ ft_fs: 'yes' }, 'ft_fs'],
    ] as const) {
      const m = serverMember('bad', 'dc1', { tags });
      assert.equal(parseServer(m), undefined, key);
      const why = serverParseError(m);
      assert.ok(why?.includes(`"${key}"`), `${key}: ${why}`);
    }
    const noPort: Member = { name: 'np', address: '127.0.0.1', port: 1, status: 'alive', tags: { role: 'consul', dc: 'dc1' } };
    assert.match(serverParseError(noPort) ?? '', /port/);
    const noDc: Member = { name: 'nd', address: '127.0.0.1', port: 1, status: 'alive', tags: { role: 'consul', port: '8300' } };
    assert.match(serverParseError(noDc) ?? '', /"dc"/);
  });

  test('Go Atoi syntax: a leading + is accepted', () => {
    assert.equal(parseServer(serverMember('s', 'dc1', { tags: { port: '+8300' } }))?.port, 8300);
  });
});
