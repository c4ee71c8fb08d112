import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { MESHFED_VERSION } from '../../src/index.js';
import { freePort, waitFor } from '../../src/testing/index.js';

const CLI = resolve(fileURLToPath(import.meta.url), '../../../src/cli/meshfed.js');

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function start(args: readonly string[], cwd?: string): { child: ChildProcess; out: { stdout: string; stderr: string }; done: Promise<Run> } {
  const child = spawn(process.execPath, [CLI, ...args], { cwd, env: { ...process.env, NODE_TEST_CONTEXT: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
  const out = { stdout: '', stderr: '' };
  child.stdout?.on('data', (d: Buffer) => (out.stdout += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out.stderr += d.toString()));
  const done = new Promise<Run>((res) => child.on('close', (code, signal) => res({ code, signal, ...out })));
  return { child, out, done };
}

async function run(args: readonly string[], cwd?: string): Promise<Run> {
  return start(args, cwd).done;
}

/** A new directory under `parent` with a CA and a server certificate for n1 made by the CLI, and agent.json: a server n1 using them, plus `extra`. */
async function certifiedAgentDir(parent: string, extra: { ports: Record<string, number>; tls?: Record<string, unknown>; [key: string]: unknown }): Promise<{ cwd: string; cfg: string }> {
  const cwd = await mkdtemp(join(parent, 'agent-'));
  assert.equal((await run(['tls', 'ca', 'create'], cwd)).code, 0);
  assert.equal((await run(['tls', 'cert', 'create', '-server', '-node', 'n1'], cwd)).code, 0);
  const cfg = join(cwd, 'agent.json');
  const files = { ca_file: 'consul-agent-ca.pem', cert_file: 'dc1-server-consul-0.pem', key_file: 'dc1-server-consul-0-key.pem' };
  await writeFile(cfg, JSON.stringify({ node_name: 'n1', server: true, bind_addr: '127.0.0.1', ...extra, tls: { ...files, ...extra.tls } }));
  return { cwd, cfg };
}

describe('meshfed CLI', () => {
  let dir = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'meshfed-cli-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('--help lists the commands; every command has --help', async () => {
    const r = await run(['--help']);
    assert.equal(r.code, 0);
    for (const c of ['agent', 'gateway', 'keygen', 'members', 'tls', 'version']) assert.match(r.stdout, new RegExp(`^\\s+${c}\\s`, 'm'));
    for (const args of [['agent', '--help'], ['tls', '--help'], ['tls', 'ca', 'create', '--help'], ['tls', 'cert', 'create', '-h'], ['version', '--help'], ['members', '-h'], ['keygen', '-h']]) {
      const h = await run(args);
      assert.equal(h.code, 0, `${args.join(' ')}: ${h.stderr}`);
      assert.match(h.stdout, /^Usage: meshfed /);
    }
    const a = await run(['agent', '-help']);
    assert.match(a.stdout, /-config-file FILE/);
  });

  test('version prints the package version', async () => {
    const r = await run(['version']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, new RegExp(`meshfed v${MESHFED_VERSION.replaceAll('.', '\\.')}`));
  });

  test('unknown commands and flags fail with one clear line and no stack trace', async () => {
    const r = await run(['frobnicate']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /unknown command "frobnicate"/);
    const f = await run(['agent', '-dev', '-nope']);
    assert.equal(f.code, 1);
    assert.match(f.stderr, /flag provided but not defined: -nope/);
    assert.doesNotMatch(f.stderr, /\n\s+at /);
  });

  test('gateway flag errors are Consul’s and exit 1 before anything opens', async () => {
    const e = await run(['gateway', '-expose-servers', '-address', '127.0.0.1:8443']);
    assert.equal(e.code, 1);
    assert.match(e.stderr, /'-expose-servers' requires '-register'/);
    const a = await run(['gateway', '-register']);
    assert.equal(a.code, 1);
    assert.match(a.stderr, /-address is required/);
    const b = await run(['gateway', '-register', '-address', 'nohost']);
    assert.equal(b.code, 1);
    assert.match(b.stderr, /-address: "nohost" is not host:port/);
    const c = await run(['gateway', '-register', '-address', '127.0.0.1:8443', '-server', 'x']);
    assert.equal(c.code, 1);
    assert.match(c.stderr, /-server: "x" is not host:port/);
    assert.doesNotMatch(`${e.stderr}${a.stderr}${b.stderr}${c.stderr}`, /\n\s+at /);
  });

  test('gateway TLS flag errors: CA without an https:// server, half a client key pair, unreadable files', async () => {
    const base = ['gateway', '-address', '127.0.0.1:8443'];
    const a = await run([...base, '-server', '127.0.0.1:8502', '-ca-file', 'ca.pem']);
    assert.equal(a.code, 1);
    assert.match(a.stderr, /-ca-file applies to https:\/\/ ADS servers only/);
    const b = await run([...base, '-server', 'https://127.0.0.1:8503', '-client-cert', 'c.pem']);
    assert.equal(b.code, 1);
    assert.match(b.stderr, /-client-cert and -client-key go together/);
    const c = await run([...base, '-server', 'https://127.0.0.1:8503', '-ca-file', join(dir, 'missing.pem')]);
    assert.equal(c.code, 1);
    assert.match(c.stderr, /-ca-file: cannot read .*missing\.pem/);
    const d = await run([...base, '-server', 'https://nohost']);
    assert.equal(d.code, 1);
    assert.match(d.stderr, /-server: "nohost" is not host:port/);
    const h = await run(['gateway', '--help']);
    assert.match(h.stdout, /-ca-file/);
    assert.match(h.stdout, /-tls-server-name/);
    assert.match(h.stdout, /https:\/\/HOST:PORT/);
  });

  test('invalid configuration: names the key, exits 1, no stack trace; debug shows the stack', async () => {
    const cfg = join(dir, 'bad.json');
    await writeFile(cfg, JSON.stringify({ datacenter: 'dc2', server: true, connect: { enable_mesh_gateway_wan_federation: true }, tls: { cert_fil: 'x' } }));
    const r = await run(['agent', '-config-file', cfg, '-http-port', '-1']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /'connect\.enable_mesh_gateway_wan_federation=true' requires 'connect\.enabled=true'/);
    assert.match(r.stderr, /unknown configuration key "tls\.cert_fil" \(did you mean "cert_file"\?\)/);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
    const d = await run(['agent', '-config-file', cfg, '-log-level', 'debug']);
    assert.equal(d.code, 1);
    assert.match(d.stderr, /\n\s+at /);
  });

  test('a missing config file and a missing cert file are named', async () => {
    const r = await run(['agent', '-config-file', join(dir, 'nope.json')]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /config file ".*nope\.json": no such file/);
    const cfg = join(dir, 'tls.json');
    await writeFile(cfg, JSON.stringify({ tls: { ca_file: join(dir, 'missing-ca.pem') } }));
    const t = await run(['agent', '-config-file', cfg, '-http-port', '-1']);
    assert.equal(t.code, 1);
    assert.match(t.stderr, /missing-ca\.pem/);
    assert.match(t.stderr, /plugin "tls"/);
  });

  test('agent -dev starts, reports where it listens, serves HTTP, and stops cleanly on SIGINT and SIGTERM', async () => {
    for (const sig of ['SIGINT', 'SIGTERM'] as const) {
      const p = start(['agent', '-dev', '-node', 'dev1', '-http-port', '0', '-server-port', '0', '-serf-lan-port', '0', '-serf-wan-port', '0', '-grpc-port', '0']);
      const addr = await waitFor(() => /http listening: http:\/\/(\S+)/.exec(p.out.stdout)?.[1], { timeoutMs: 30_000, message: `agent did not report its HTTP address; stderr: ${p.out.stderr}` });
      assert.match(p.out.stdout, /Node name: dev1/);
      assert.match(p.out.stdout, /tls: mutual TLS; ephemeral dev CA/);
      assert.match(p.out.stdout, /rpc listening: 127\.0\.0\.1:\d+/);
      const self = (await (await fetch(`http://${addr}/v1/agent/self`)).json()) as { Config: { NodeName: string; Server: boolean } };
      assert.equal(self.Config.NodeName, 'dev1');
      assert.equal(self.Config.Server, true);
      const missing = await fetch(`http://${addr}/v1/nope`);
      assert.equal(missing.status, 404);
      p.child.kill(sig);
      const r = await p.done;
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /==> stopped/);
    }
  });

  test('members lists the LAN and WAN pools (text, detailed, json); keygen prints a 32-byte key', async () => {
    const p = start(['agent', '-dev', '-node', 'm1', '-http-port', '0', '-server-port', '0', '-serf-lan-port', '0', '-serf-wan-port', '0', '-grpc-port', '0']);
    try {
      const addr = (await waitFor(() => /http listening: http:\/\/(\S+)/.exec(p.out.stdout)?.[1], { timeoutMs: 30_000, message: `agent did not start; stderr: ${p.out.stderr}` })) as string;
      const lan = await run(['members', '-http-addr', addr]);
      assert.equal(lan.code, 0, lan.stderr);
      assert.match(lan.stdout, /^Node\s+Address\s+Status\s+Type\s+Build\s+Protocol\s+DC\s+Segment$/m);
      assert.match(lan.stdout, /^m1\s+127\.0\.0\.1:\d+\s+alive\s+server\s+0\.1\.0\s+2\s+dc1\s+<default>$/m);
      const wan = await run(['members', '-http-addr', addr, '-wan', '-detailed']);
      assert.equal(wan.code, 0, wan.stderr);
      assert.match(wan.stdout, /^m1\.dc1\s+127\.0\.0\.1:\d+\s+alive\s+.*role=consul/m);
      const json = await run(['members', '-http-addr', addr, '-format', 'json']);
      const parsed = JSON.parse(json.stdout) as { Name: string; Status: number; DelegateCur: number }[];
      assert.deepEqual(parsed.map((m) => [m.Name, m.Status, m.DelegateCur]), [['m1', 1, 5]]);
      const none = await run(['members', '-http-addr', addr, '-status', 'failed']);
      assert.equal(none.stdout.trim().split('\n').length, 1, 'only the header');
      const bad = await run(['members', '-format', 'yaml']);
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /invalid -format "yaml"/);
    } finally {
      p.child.kill('SIGINT');
      await p.done;
    }
    const down = await run(['members', '-http-addr', '127.0.0.1:1']);
    assert.equal(down.code, 1);
    assert.match(down.stderr, /cannot reach the agent at http:\/\/127\.0\.0\.1:1/);
    const k = await run(['keygen']);
    assert.equal(k.code, 0);
    assert.equal(Buffer.from(k.stdout.trim(), 'base64').length, 32);
  });

  test('tls ca create and tls cert create write files named as Consul does', async () => {
    const cwd = await mkdtemp(join(dir, 'tls-'));
    const ca = await run(['tls', 'ca', 'create'], cwd);
    assert.equal(ca.code, 0, ca.stderr);
    assert.match(ca.stdout, /consul-agent-ca\.pem/);
    const s = await run(['tls', 'cert', 'create', '-server', '-dc', 'dc2', '-node', 's1'], cwd);
    assert.equal(s.code, 0, s.stderr);
    assert.match(s.stdout, /dc2-server-consul-0\.pem/);
    const c = await run(['tls', 'cert', 'create', '-client', '-node', 'x'], cwd);
    assert.equal(c.code, 1);
    assert.match(c.stderr, /-node requires -server/);
    const none = await run(['tls', 'cert', 'create'], cwd);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /exactly one of -server, -client or -cli/);
    const again = await run(['tls', 'ca', 'create'], cwd);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /consul-agent-ca\.pem/);
  });

  test('an agent configured with generated certificate files boots with mutual TLS', async () => {
    const { cwd, cfg } = await certifiedAgentDir(dir, { data_dir: 'data', ports: { http: 0, server: 0, grpc: 0 }, tls: { verify_incoming: true, verify_outgoing: true } });
    const p = start(['agent', '-config-file', cfg], cwd);
    await waitFor(() => p.out.stdout.includes('http listening'), { timeoutMs: 30_000, message: `agent did not start; stderr: ${p.out.stderr}` });
    assert.match(p.out.stdout, /tls: mutual TLS; /);
    p.child.kill('SIGINT');
    assert.equal((await p.done).code, 0);
  });

  test('meshfed gateway over TLS ADS (-server https://, -ca-file, -tls-server-name) with an ACL token; a read-only token is refused and logged', async () => {
    const { cwd, cfg } = await certifiedAgentDir(dir, {
      ports: { http: 0, server: 0, grpc: -1, grpc_tls: 0, serf_lan: 0, serf_wan: 0 },
      acl: {
        enabled: true,
        default_policy: 'deny',
        policies: [
          { name: 'gw', rules: { service: { 'mesh-gateway': 'write' }, node_prefix: { '': 'write' } } },
          { name: 'ro', rules: { service_prefix: { '': 'read' } } },
        ],
        static_tokens: [
          { secret_id: 'gw-secret', policies: ['gw'] },
          { secret_id: 'ro-secret', policies: ['ro'] },
        ],
      },
    });
    const agent = start(['agent', '-dev', '-config-file', cfg], cwd);
    try {
      await waitFor(() => /xds listening_tls: \S+:\d+/.test(agent.out.stdout), { timeoutMs: 30_000, message: `agent did not start; stderr: ${agent.out.stderr}` });
      const ads = /xds listening_tls: (\S+)/.exec(agent.out.stdout)?.[1] ?? '';
      const httpAddr = (/http listening: http:\/\/(\S+)/.exec(agent.out.stdout)?.[1] ?? '').trim();
      const tlsFlags = ['-server', `https://${ads}`, '-ca-file', 'consul-agent-ca.pem', '-tls-server-name', 'server.dc1.consul', '-http-addr', httpAddr];

      const gw = start(['gateway', '-register', '-expose-servers', '-node', 'gw-node', '-address', `127.0.0.1:${await freePort()}`, ...tlsFlags, '-token', 'gw-secret'], cwd);
      await waitFor(() => gw.out.stdout.includes('==> mesh gateway mesh-gateway listening'), { timeoutMs: 20_000, message: 'gateway did not start' });
      assert.doesNotMatch(gw.out.stderr, /no routes from the servers yet|refused/);
      const xdsStatus = async () => (await (await fetch(`http://${httpAddr}/v1/meshfed/xds`)).json()) as { proxies: { proxy_id: string }[]; stats: { permission_denied: number } };
      assert.ok((await xdsStatus()).proxies.some((p) => p.proxy_id === 'mesh-gateway'));

      // Same service ID, not registering, with a read-only token: refused, logged, retried.
      const ro = start(['gateway', '-address', `127.0.0.1:${await freePort()}`, ...tlsFlags, '-token', 'ro-secret'], cwd);
      await waitFor(() => (ro.out.stderr.match(/refused this gateway's ACL token \(PERMISSION_DENIED\)/g) ?? []).length >= 2, { timeoutMs: 20_000, message: 'no refusals logged' });
      assert.match(ro.out.stderr, /permission denied: token lacks permission 'service:write' on \\?"mesh-gateway\\?"/);
      assert.doesNotMatch(ro.out.stderr, /ro-secret/);
      ro.child.kill('SIGKILL');
      await ro.done;
      assert.ok((await xdsStatus()).stats.permission_denied >= 2);

      gw.child.kill('SIGINT');
      assert.equal((await gw.done).code, 0);
    } finally {
      agent.child.kill('SIGINT');
      await agent.done;
    }
  });
});
