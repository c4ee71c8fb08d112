/**
 * `meshfed agent`: load configuration (files, then flags; `-dev` supplies development defaults),
 * boot an agent with the first-party plugins, report what started and where it listens, and
 * stop cleanly on SIGINT/SIGTERM.
 */
import { readdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { createAgent } from '../../core/agent.js';
import { loadConfigFiles, mergeConfig } from '../../core/config/load.js';
import type { RawConfig } from '../../core/config/schema.js';
import { ErrorCode, MeshfedError } from '../../core/errors.js';
import { createLogger, isLogLevel, type LogLevel } from '../../core/logger.js';
import type { AgentPlugin } from '../../core/plugin.js';
import { acl } from '../../plugins/acl/index.js';
import { federation } from '../../plugins/federation/index.js';
import { wanfed } from '../../plugins/wanfed/index.js';
import { xds } from '../../plugins/xds/index.js';
import { gossip } from '../../plugins/gossip/index.js';
import { grpc } from '../../plugins/grpc/index.js';
import { http } from '../../plugins/http/index.js';
import { router } from '../../plugins/router/index.js';
import { state } from '../../plugins/state/index.js';
import { rpc } from '../../plugins/rpc/index.js';
import { tls } from '../../plugins/tls/index.js';
import { formatFlags, parseFlags, UsageError, type FlagSpec } from '../flags.js';
import type { Command } from '../io.js';

const FLAGS: readonly FlagSpec[] = [
  { name: 'config-file', kind: 'list', usage: 'JSON configuration file; later files override earlier ones (objects merge, lists append).', metavar: 'FILE' },
  { name: 'config-dir', kind: 'list', usage: 'Directory whose *.json files are loaded in name order.', metavar: 'DIR' },
  { name: 'dev', kind: 'bool', usage: 'Development mode: a server in dc1 on 127.0.0.1 with an ephemeral in-memory CA and certificate. Not for production.' },
  { name: 'server', kind: 'bool', usage: 'Run as a server.' },
  { name: 'datacenter', kind: 'string', usage: 'Datacenter of this agent.', metavar: 'DC' },
  { name: 'primary-datacenter', kind: 'string', usage: 'The primary datacenter.', metavar: 'DC' },
  { name: 'node', kind: 'string', usage: 'Node name.', metavar: 'NAME' },
  { name: 'bind', kind: 'string', usage: 'Address to bind RPC and gossip to.', metavar: 'ADDR' },
  { name: 'advertise', kind: 'string', usage: 'Address to advertise.', metavar: 'ADDR' },
  { name: 'client', kind: 'string', usage: 'Address of the HTTP and gRPC listeners.', metavar: 'ADDR' },
  { name: 'data-dir', kind: 'string', usage: 'Directory for durable state.', metavar: 'DIR' },
  { name: 'domain', kind: 'string', usage: 'Domain of TLS server names.', metavar: 'DOMAIN' },
  { name: 'server-port', kind: 'int', usage: 'Server RPC port.', metavar: 'PORT' },
  { name: 'serf-lan-port', kind: 'int', usage: 'LAN gossip port.', metavar: 'PORT' },
  { name: 'serf-wan-port', kind: 'int', usage: 'WAN gossip port.', metavar: 'PORT' },
  { name: 'http-port', kind: 'int', usage: 'HTTP API port (-1 disables, 0 picks a free port).', metavar: 'PORT' },
  { name: 'grpc-port', kind: 'int', usage: 'gRPC (xDS) port, plaintext.', metavar: 'PORT' },
  { name: 'grpc-tls-port', kind: 'int', usage: 'gRPC (xDS) port over TLS (-1 off).', metavar: 'PORT' },
  { name: 'retry-join', kind: 'list', usage: 'LAN address to join.', metavar: 'ADDR' },
  { name: 'retry-join-wan', kind: 'list', usage: 'WAN address to join.', metavar: 'ADDR' },
  { name: 'encrypt', kind: 'string', usage: 'Base64 gossip encryption key (see `meshfed keygen`).', metavar: 'KEY' },
  { name: 'primary-gateway', kind: 'list', usage: 'Mesh gateway of the primary datacenter (host:port).', metavar: 'ADDR' },
  { name: 'log-level', kind: 'string', usage: 'trace, debug, info, warn, error or silent. debug also prints stack traces of fatal errors.', metavar: 'LEVEL', defaultText: 'info' },
  { name: 'log-json', kind: 'bool', usage: 'Write logs as JSON lines.' },
];

const HELP = `Usage: meshfed agent [options]

  Starts a meshfed agent and runs until interrupted (SIGINT or SIGTERM stop it cleanly).
  Configuration comes from -config-file/-config-dir (JSON, Consul key names), then flags.

Options:
${formatFlags(FLAGS)}
`;

/** Map flags onto configuration keys (Consul's flag → key mapping). */
export function flagsToConfig(values: ReadonlyMap<string, unknown>): RawConfig {
  const c: Record<string, unknown> = {};
  const ports: Record<string, unknown> = {};
  const set = (flag: string, apply: (v: unknown) => void): void => {
    const v = values.get(flag);
    if (v !== undefined) apply(v);
  };
  set('server', (v) => (c['server'] = v));
  set('datacenter', (v) => (c['datacenter'] = v));
  set('primary-datacenter', (v) => (c['primary_datacenter'] = v));
  set('node', (v) => (c['node_name'] = v));
  set('bind', (v) => (c['bind_addr'] = v));
  set('advertise', (v) => (c['advertise_addr'] = v));
  set('client', (v) => (c['client_addr'] = v));
  set('data-dir', (v) => (c['data_dir'] = v));
  set('domain', (v) => (c['domain'] = v));
  set('server-port', (v) => (ports['server'] = v));
  set('serf-lan-port', (v) => (ports['serf_lan'] = v));
  set('serf-wan-port', (v) => (ports['serf_wan'] = v));
  set('http-port', (v) => (ports['http'] = v));
  set('grpc-port', (v) => (ports['grpc'] = v));
  set('grpc-tls-port', (v) => (ports['grpc_tls'] = v));
  set('retry-join', (v) => (c['retry_join'] = v));
  set('retry-join-wan', (v) => (c['retry_join_wan'] = v));
  set('primary-gateway', (v) => (c['primary_gateways'] = v));
  set('encrypt', (v) => (c['encrypt'] = v));
  set('log-level', (v) => (c['log_level'] = v));
  if (Object.keys(ports).length > 0) c['ports'] = ports;
  return c;
}

/** Development defaults, under any file or flag. */
export const DEV_CONFIG: RawConfig = Object.freeze({
  server: true,
  bind_addr: '127.0.0.1',
  advertise_addr: '127.0.0.1',
  client_addr: '127.0.0.1',
  connect: { enabled: true },
});

/** The first-party plugins that exist so far, in boot order. */
export function firstPartyPlugins(opts: { dev: boolean }): AgentPlugin[] {
  return [tls({ dev: opts.dev }), rpc(), http(), gossip(), router(), grpc(), acl(), state(), federation(), xds(), wanfed()];
}

async function configDirFiles(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    throw new MeshfedError(ErrorCode.CONFIG_FILE, `config dir "${dir}": ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such directory' : String(err)}`, { cause: err });
  }
  return names.filter((n) => n.endsWith('.json')).sort().map((n) => join(dir, n));
}

/** `meshfed agent`. */
export const agentCommand: Command = {
  name: 'agent',
  synopsis: 'Run a meshfed agent (server or client)',
  async run(args, io) {
    const f = parseFlags(args, FLAGS);
    if (f.help) {
      io.stdout.write(HELP);
      return 0;
    }
    if (f.positionals.length > 0) throw new UsageError(`unexpected argument "${f.positionals[0]}": configuration goes in -config-file or flags`);
    const dev = f.values.get('dev') === true;
    const files: string[] = [];
    for (const d of (f.values.get('config-dir') as readonly string[] | undefined) ?? []) files.push(...(await configDirFiles(resolve(io.cwd, d))));
    for (const p of (f.values.get('config-file') as readonly string[] | undefined) ?? []) files.push(resolve(io.cwd, p));
    let raw: RawConfig = dev ? DEV_CONFIG : {};
    raw = mergeConfig(raw, await loadConfigFiles(files, io.shutdownSignal));
    raw = mergeConfig(raw, flagsToConfig(f.values));
    const levelText = (f.values.get('log-level') as string | undefined) ?? (typeof raw['log_level'] === 'string' ? raw['log_level'] : 'info');
    if (!isLogLevel(levelText)) throw new UsageError(`invalid -log-level "${levelText}": use trace, debug, info, warn, error or silent`);
    const level: LogLevel = levelText;
    const logger = createLogger({ level, format: f.values.get('log-json') === true ? 'json' : 'text', stream: io.stderr });

    const agent = await createAgent({ config: raw, plugins: firstPartyPlugins({ dev }), logger });
    await agent.start({ signal: io.shutdownSignal });
    const st = agent.status();
    const lines = [
      `==> meshfed agent running${dev ? ' (development mode: ephemeral TLS material, nothing is persisted)' : ''}`,
      `      Node name: ${st.node}`,
      `     Datacenter: ${st.datacenter} (primary: ${agent.config.primary_datacenter})`,
      `         Server: ${st.server}`,
      `        Plugins: ${st.plugins.map((p) => p.name).join(', ')}`,
    ];
    for (const p of st.plugins) {
      for (const [k, v] of Object.entries(p.status ?? {})) {
        const label = k === p.name ? k : `${p.name} ${k}`;
        lines.push(`${label.padStart(15)}: ${typeof v === 'string' ? v : JSON.stringify(v)}`);
      }
    }
    io.stdout.write(`${lines.join('\n')}\n`);

    if (!io.shutdownSignal.aborted) {
      await new Promise<void>((r) => io.shutdownSignal.addEventListener('abort', () => r(), { once: true }));
    }
    io.stdout.write('==> shutting down\n');
    await agent.stop();
    io.stdout.write('==> stopped\n');
    return 0;
  },
};
