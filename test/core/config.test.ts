import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ConfigError, ErrorCode, loadConfigFiles, mergeConfig, parseDuration, resolveConfig, WanfedConfigErrors, type RawConfig } from '../../src/index.js';

const host = { hostname: 'h1', privateIPv4: '10.1.2.3' };
const tlsFiles = { ca_file: 'ca.pem', cert_file: 'c.pem', key_file: 'k.pem' };
/** A valid secondary-datacenter server with WAN federation (spec (a): the accepted config). */
const secondary: RawConfig = {
  datacenter: 'dc2',
  primary_datacenter: 'dc1',
  node_name: 's2',
  server: true,
  connect: { enabled: true, enable_mesh_gateway_wan_federation: true },
  primary_gateways: ['foo.local', 'bar.local'],
  tls: tlsFiles,
};

function problems(raw: RawConfig): string[] {
  try {
    resolveConfig(raw, { host });
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    assert.equal(err.code, ErrorCode.CONFIG_INVALID);
    return err.problems.map((p) => `${p.key}|${p.message}`);
  }
  return [];
}

describe('config defaults', () => {
  test('an empty config resolves to Consul-like defaults', () => {
    const c = resolveConfig({}, { host });
    assert.equal(c.datacenter, 'dc1');
    assert.equal(c.primary_datacenter, 'dc1');
    assert.equal(c.node_name, 'h1');
    assert.equal(c.server, false);
    assert.deepEqual(c.ports, { server: 8300, serf_lan: 8301, serf_wan: 8302, http: 8500, grpc: 8502, grpc_tls: -1 });
    assert.equal(c.domain, 'consul');
    assert.equal(c.advertise_addr, '10.1.2.3');
    assert.equal(c.primary_gateways_interval, 30_000);
    assert.deepEqual(c.primary_gateways, []);
    assert.equal(c.acl.default_policy, 'allow');
    assert.equal(c.tls.verify_incoming, false);
    assert.equal(Object.isFrozen(c), true);
  });

  test('the accepted secondary config of the spec resolves', () => {
    const c = resolveConfig(secondary, { host });
    assert.deepEqual(c.primary_gateways, ['foo.local', 'bar.local']);
    assert.equal(c.connect.enable_mesh_gateway_wan_federation, true);
  });

  test('advertise_addr follows a specific bind_addr', () => {
    assert.equal(resolveConfig({ bind_addr: '127.0.0.5' }, { host }).advertise_addr, '127.0.0.5');
  });
});

describe('config validation table', () => {
  const wanfedBase = { ...secondary, primary_gateways: [] };
  const cases: { name: string; raw: RawConfig; expect: string[] }[] = [
    { name: '1: wanfed without connect', raw: { ...wanfedBase, connect: { enable_mesh_gateway_wan_federation: true } }, expect: [WanfedConfigErrors.requiresConnect] },
    { name: '2: wanfed on a client', raw: { ...wanfedBase, server: false }, expect: [WanfedConfigErrors.requiresServer] },
    { name: "3: wanfed with '/' in node_name", raw: { ...wanfedBase, node_name: 'rack/s1' }, expect: [WanfedConfigErrors.nodeNameSlash] },
    { name: '4: wanfed with retry_join_wan', raw: { ...wanfedBase, retry_join_wan: ['1.2.3.4'] }, expect: [WanfedConfigErrors.retryJoinWan] },
    { name: '5: primary_gateways on a client', raw: { datacenter: 'dc2', primary_datacenter: 'dc1', primary_gateways: ['a:1'] }, expect: [WanfedConfigErrors.primaryGatewaysRequireServer] },
    { name: '6: primary_gateways in the primary', raw: { server: true, primary_gateways: ['a:1'] }, expect: [WanfedConfigErrors.primaryGatewaysInPrimary] },
    { name: "wanfed with '.' in node_name", raw: { ...wanfedBase, node_name: 's1.rack' }, expect: ["requires that 'node_name' not contain '.' characters"] },
    { name: 'wanfed without TLS files', raw: { ...wanfedBase, tls: {} }, expect: ['WAN federation via mesh gateways dials every remote datacenter with mutual TLS'] },
    { name: 'uppercase datacenter', raw: { datacenter: 'DC1' }, expect: ['"DC1" is not a valid datacenter name', 'e.g. "dc1"'] },
    { name: 'datacenter with a dot', raw: { datacenter: 'dc.1' }, expect: ['"dc.1" is not a valid datacenter name'] },
    { name: 'bad primary_datacenter', raw: { primary_datacenter: 'Prim ary' }, expect: ['"Prim ary" is not a valid datacenter name'] },
    { name: 'unknown top-level key with suggestion', raw: { datacentre: 'dc1' }, expect: ['unknown configuration key "datacentre"', 'did you mean "datacenter"'] },
    { name: 'unknown nested key', raw: { tls: { cert_fil: 'x' } }, expect: ['unknown configuration key "tls.cert_fil"', 'did you mean "cert_file"'] },
    { name: 'wrong type', raw: { server: 'yes' }, expect: ['server|expected true or false, got a string'] },
    { name: 'port out of range', raw: { ports: { http: 70000 } }, expect: ['ports.http|70000 is out of range'] },
    { name: 'bad duration', raw: { primary_gateways_interval: '5 seconds' }, expect: ['"5 seconds" is not a duration'] },
    { name: 'duration below minimum', raw: { primary_gateways_interval: '10ms' }, expect: ['below the minimum of 1s'] },
    { name: 'bad enum', raw: { acl: { default_policy: 'maybe' } }, expect: ['"maybe" is not one of "allow", "deny"'] },
    { name: 'cert without key', raw: { tls: { cert_file: 'c.pem' } }, expect: ['tls.cert_file and tls.key_file must be set together'] },
    { name: 'verify without CA', raw: { tls: { verify_outgoing: true } }, expect: ['set tls.ca_file'] },
    { name: 'list expected', raw: { retry_join: 'a' }, expect: ['retry_join|expected a list'] },
    { name: 'empty node name', raw: { node_name: ' ' }, expect: ['must not be empty'] },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const got = problems(c.raw);
      assert.ok(got.length > 0, 'expected a validation error');
      for (const e of c.expect) assert.ok(got.some((p) => p.includes(e)), `no problem contains ${JSON.stringify(e)}; got:\n${got.join('\n')}`);
    });
  }

  test('the six wanfed texts are exact and each says how to fix', () => {
    const all = [
      ...problems({ ...wanfedBase, connect: { enable_mesh_gateway_wan_federation: true }, server: false, node_name: 'a/b', retry_join_wan: ['x'] }),
      ...problems({ datacenter: 'dc1', primary_gateways: ['a:1'] }),
    ];
    for (const text of Object.values(WanfedConfigErrors)) {
      const p = all.find((x) => x.includes(text));
      assert.ok(p, `missing ${text}`);
      assert.match(p, /\(fix: /);
    }
  });

  test('all problems are reported at once', () => {
    const got = problems({ datacenter: 'X', server: 1, nope: true });
    // datacenter, primary_datacenter (defaults to datacenter), server, nope.
    assert.deepEqual(got.map((p) => p.split('|')[0]).sort(), ['datacenter', 'nope', 'primary_datacenter', 'server']);
  });
});

describe('config files', () => {
  let dir = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'meshfed-config-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('files merge in order: scalars override, objects merge, lists append', async () => {
    await writeFile(join(dir, 'a.json'), JSON.stringify({ datacenter: 'dc1', ports: { http: 1 }, retry_join: ['a'] }));
    await writeFile(join(dir, 'b.json'), JSON.stringify({ datacenter: 'dc2', ports: { grpc: 2 }, retry_join: ['b'] }));
    const raw = await loadConfigFiles([join(dir, 'a.json'), join(dir, 'b.json')]);
    assert.deepEqual(raw, { datacenter: 'dc2', ports: { http: 1, grpc: 2 }, retry_join: ['a', 'b'] });
    assert.deepEqual(mergeConfig({ a: { b: 1 } }, { a: 2 }), { a: 2 });
  });

  test('a missing file names the file', async () => {
    const f = join(dir, 'missing.json');
    await assert.rejects(loadConfigFiles([f]), (err: Error & { code: string }) => err.code === ErrorCode.CONFIG_FILE && err.message.includes(f) && /no such file/.test(err.message));
  });

  test('invalid JSON names the file and the position', async () => {
    const f = join(dir, 'bad.json');
    await writeFile(f, '{\n  "datacenter": "dc1",\n  oops\n}');
    await assert.rejects(loadConfigFiles([f]), (err: Error) => err.message.includes(f) && /invalid JSON at line 3/.test(err.message));
  });

  test('a non-object top level is refused', async () => {
    const f = join(dir, 'arr.json');
    await writeFile(f, '[1]');
    await assert.rejects(loadConfigFiles([f]), /top level must be a JSON object/);
  });
});

test('plugin sections are validated like core keys (limits of the rpc plugin)', async () => {
  const { rpc } = await import('../../src/plugins/rpc/index.js');
  const schema = rpc().configSchema ?? {};
  const c = resolveConfig({ limits: { rpc_handshake_timeout: '2s' } }, { host, pluginSchema: schema });
  assert.deepEqual(c['limits'], { rpc_max_conns_per_client: 100, rpc_handshake_timeout: 2000, rpc_client_timeout: 60_000 });
  assert.deepEqual(c['performance'], { rpc_hold_timeout: 7000 });
  assert.throws(() => resolveConfig({ limits: { rpc_client_timeout: '2h' } }, { host, pluginSchema: schema }), /above the maximum of 1h/);
  assert.throws(() => resolveConfig({ limits: { rpc_max_conns: 1 } }, { host, pluginSchema: schema }), /unknown configuration key "limits\.rpc_max_conns"/);
});

test('durations parse like Go', () => {
  assert.equal(parseDuration('30s'), 30_000);
  assert.equal(parseDuration('1h30m'), 5_400_000);
  assert.equal(parseDuration('250ms'), 250);
  assert.equal(parseDuration('1.5s'), 1500);
  assert.equal(parseDuration('0'), 0);
  assert.equal(parseDuration('10'), undefined);
  assert.equal(parseDuration('s'), undefined);
  assert.equal(parseDuration('5m x'), undefined);
});
