/**
 * Turn raw configuration (merged JSON files and flags) into a resolved {@link AgentConfig}:
 * type checks against the schema, unknown keys named (with a suggestion), defaults filled,
 * then the cross-key rules of shared/spec/wanfed-reference.md §8 with Consul's exact texts.
 */
import { hostname, networkInterfaces } from 'node:os';
import { ConfigError, type ConfigProblem } from '../errors.js';
import { parseDuration } from './duration.js';
import { CORE_SCHEMA, type AgentConfig, type ConfigSchema, type RawConfig, type SchemaNode } from './schema.js';

/** The six WAN-federation validation errors, exactly as Consul words them (spec §8). */
export const WanfedConfigErrors = Object.freeze({
  requiresConnect: "'connect.enable_mesh_gateway_wan_federation=true' requires 'connect.enabled=true'",
  requiresServer: "'connect.enable_mesh_gateway_wan_federation = true' requires 'server = true'",
  nodeNameSlash: "'connect.enable_mesh_gateway_wan_federation = true' requires that 'node_name' not contain '/' characters",
  retryJoinWan: "'retry_join_wan' is incompatible with 'connect.enable_mesh_gateway_wan_federation = true'",
  primaryGatewaysRequireServer: "'primary_gateways' requires 'server = true'",
  primaryGatewaysInPrimary: "'primary_gateways' should only be configured in a secondary datacenter",
});

/** Datacenter names: lowercase letters, digits, `_` and `-`. */
export const DATACENTER_NAME = /^[a-z0-9_-]+$/;

/** Facts about the host the defaults depend on (injectable for tests). */
export interface HostFacts {
  readonly hostname: string;
  /** First private (non-loopback) IPv4 address, if any. */
  readonly privateIPv4?: string | undefined;
}

/** Read the host facts from the OS. */
export function currentHostFacts(): HostFacts {
  let privateIPv4: string | undefined;
  for (const list of Object.values(networkInterfaces())) {
    for (const ni of list ?? []) {
      if (ni.family === 'IPv4' && !ni.internal) {
        privateIPv4 = ni.address;
        break;
      }
    }
    if (privateIPv4) break;
  }
  return { hostname: hostname(), privateIPv4 };
}

function levenshtein(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0] as number;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j] as number;
      row[j] = Math.min((row[j] as number) + 1, (row[j - 1] as number) + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length] as number;
}

function suggest(key: string, known: readonly string[]): string {
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const d = levenshtein(key, k);
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(key.length / 3)) ? ` (did you mean "${best}"?)` : '';
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  return `a ${typeof v}`;
}

function join(path: string, key: string): string {
  return path ? `${path}.${key}` : key;
}

/** Resolve one node; pushes problems and returns the normalized value (or the default). */
function resolveNode(node: SchemaNode, value: unknown, path: string, problems: ConfigProblem[]): unknown {
  switch (node.kind) {
    case 'string': {
      if (value === undefined) return node.default;
      if (typeof value !== 'string') {
        problems.push({ key: path, message: `expected a string, got ${typeName(value)}` });
        return node.default;
      }
      if (node.enum && !node.enum.includes(value)) {
        problems.push({ key: path, message: `"${value}" is not one of ${node.enum.map((e) => `"${e}"`).join(', ')}` });
        return node.default;
      }
      return value;
    }
    case 'bool': {
      if (value === undefined) return node.default;
      if (typeof value !== 'boolean') {
        problems.push({ key: path, message: `expected true or false, got ${typeName(value)}` });
        return node.default;
      }
      return value;
    }
    case 'int': {
      if (value === undefined) return node.default;
      if (typeof value !== 'number' || !Number.isInteger(value)) {
        problems.push({ key: path, message: `expected an integer, got ${typeName(value)}` });
        return node.default;
      }
      if ((node.min !== undefined && value < node.min) || (node.max !== undefined && value > node.max)) {
        problems.push({ key: path, message: `${value} is out of range [${node.min ?? '-inf'}, ${node.max ?? 'inf'}]` });
        return node.default;
      }
      return value;
    }
    case 'duration': {
      const text = value === undefined ? node.default : value;
      if (text === undefined) return undefined;
      if (typeof text !== 'string') {
        problems.push({ key: path, message: `expected a duration string such as "30s" or "1m30s", got ${typeName(text)}` });
        return node.default === undefined ? undefined : parseDuration(node.default);
      }
      const ms = parseDuration(text);
      if (ms === undefined) {
        problems.push({ key: path, message: `"${text}" is not a duration: use a number with a unit, such as "500ms", "30s" or "1h"` });
        return node.default === undefined ? undefined : parseDuration(node.default);
      }
      const min = node.min === undefined ? undefined : parseDuration(node.min);
      if (min !== undefined && ms < min) problems.push({ key: path, message: `"${text}" is below the minimum of ${node.min}` });
      const max = node.max === undefined ? undefined : parseDuration(node.max);
      if (max !== undefined && ms > max) problems.push({ key: path, message: `"${text}" is above the maximum of ${node.max}` });
      return ms;
    }
    case 'list': {
      if (value === undefined) return Object.freeze([]);
      if (!Array.isArray(value)) {
        problems.push({ key: path, message: `expected a list, got ${typeName(value)}` });
        return Object.freeze([]);
      }
      return Object.freeze(value.map((v, i) => resolveNode(node.of, v, `${path}[${i}]`, problems)));
    }
    case 'map': {
      if (value === undefined) return Object.freeze({});
      if (typeof value !== 'object' || value === null || Array.isArray(value)) {
        problems.push({ key: path, message: `expected an object, got ${typeName(value)}` });
        return Object.freeze({});
      }
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) out[k] = resolveNode(node.of, v, join(path, k), problems);
      return Object.freeze(out);
    }
    case 'object':
      return resolveObject(node.fields, value, path, problems);
  }
}

function resolveObject(fields: Readonly<Record<string, SchemaNode>>, value: unknown, path: string, problems: ConfigProblem[]): unknown {
  const obj = value === undefined ? {} : value;
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) {
    problems.push({ key: path, message: `expected an object, got ${typeName(obj)}` });
    return resolveObject(fields, undefined, path, problems);
  }
  const known = Object.keys(fields);
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(obj).sort()) {
    if (!Object.hasOwn(fields, key)) {
      problems.push({ key: join(path, key), message: `unknown configuration key "${join(path, key)}"${suggest(key, known)}: remove it or fix its spelling` });
    }
  }
  for (const [key, node] of Object.entries(fields)) {
    const v = resolveNode(node, (obj as Record<string, unknown>)[key], join(path, key), problems);
    if (v !== undefined) out[key] = v;
  }
  return Object.freeze(out);
}

/** Options of {@link resolveConfig}. */
export interface ResolveConfigOptions {
  /** Schema sections contributed by plugins (merged with the core schema). */
  readonly pluginSchema?: ConfigSchema;
  /** Host facts for defaults (tests inject them). */
  readonly host?: HostFacts;
}

/**
 * Validate `raw` and fill in defaults. Throws a {@link ConfigError} listing every problem, each
 * with the key and how to fix it.
 */
export function resolveConfig(raw: RawConfig, options: ResolveConfigOptions = {}): AgentConfig {
  const problems: ConfigProblem[] = [];
  const schema: Record<string, SchemaNode> = { ...CORE_SCHEMA };
  for (const [k, v] of Object.entries(options.pluginSchema ?? {})) {
    if (Object.hasOwn(CORE_SCHEMA, k)) problems.push({ key: k, message: `a plugin declares the core key "${k}" in its configSchema: plugins may only add new top-level keys` });
    else schema[k] = v;
  }
  const resolved = resolveObject(schema, raw, '', problems) as Record<string, unknown>;
  const host = options.host ?? currentHostFacts();
  const out: Record<string, unknown> = { ...resolved };
  out['primary_datacenter'] ??= out['datacenter'];
  out['node_name'] ??= host.hostname;
  if (out['advertise_addr'] === undefined) {
    const bind = out['bind_addr'] as string;
    out['advertise_addr'] = bind === '0.0.0.0' || bind === '::' ? (host.privateIPv4 ?? '127.0.0.1') : bind;
  }
  const cfg = Object.freeze(out) as AgentConfig;
  checkRules(cfg, problems);
  if (problems.length > 0) throw new ConfigError(problems);
  return cfg;
}

/** Cross-key rules. Each message says what to change. */
function checkRules(c: AgentConfig, problems: ConfigProblem[]): void {
  for (const key of ['datacenter', 'primary_datacenter'] as const) {
    const v = c[key];
    if (typeof v === 'string' && !DATACENTER_NAME.test(v)) {
      problems.push({
        key,
        message: `"${v}" is not a valid datacenter name: use only lowercase letters, digits, "_" and "-"${/[A-Z]/.test(v) ? ` (e.g. "${v.toLowerCase()}")` : ''}`,
      });
    }
  }
  if (typeof c.node_name === 'string' && c.node_name.trim() === '') {
    problems.push({ key: 'node_name', message: 'must not be empty: set node_name or -node' });
  }
  const wanfed = c.connect?.enable_mesh_gateway_wan_federation === true;
  if (wanfed) {
    if (!c.connect.enabled) problems.push({ key: 'connect.enabled', message: `${WanfedConfigErrors.requiresConnect} (fix: set "connect": {"enabled": true})` });
    if (!c.server) problems.push({ key: 'server', message: `${WanfedConfigErrors.requiresServer} (fix: set "server": true, or turn WAN federation off on client agents)` });
    if (typeof c.node_name === 'string' && c.node_name.includes('/')) {
      problems.push({ key: 'node_name', message: `${WanfedConfigErrors.nodeNameSlash} (fix: rename the node, e.g. "${c.node_name.replaceAll('/', '-')}")` });
    }
    if (typeof c.node_name === 'string' && c.node_name.includes('.')) {
      problems.push({
        key: 'node_name',
        message: `'connect.enable_mesh_gateway_wan_federation = true' requires that 'node_name' not contain '.' characters (WAN member names are "<node>.<dc>"; fix: rename the node, e.g. "${c.node_name.replaceAll('.', '-')}")`,
      });
    }
    if (c.retry_join_wan.length > 0) {
      problems.push({ key: 'retry_join_wan', message: `${WanfedConfigErrors.retryJoinWan} (fix: remove retry_join_wan; secondaries find the primary through primary_gateways)` });
    }
  }
  if (c.primary_gateways.length > 0) {
    if (!c.server) problems.push({ key: 'primary_gateways', message: `${WanfedConfigErrors.primaryGatewaysRequireServer} (fix: set "server": true or remove primary_gateways)` });
    if (c.primary_datacenter === c.datacenter) {
      problems.push({
        key: 'primary_gateways',
        message: `${WanfedConfigErrors.primaryGatewaysInPrimary} (fix: remove primary_gateways here, or set primary_datacenter to the primary's name)`,
      });
    }
  }
  const t = c.tls;
  if (t) {
    if ((t.cert_file === undefined) !== (t.key_file === undefined)) {
      problems.push({ key: t.cert_file === undefined ? 'tls.cert_file' : 'tls.key_file', message: 'tls.cert_file and tls.key_file must be set together' });
    }
    if ((t.verify_incoming || t.verify_outgoing) && t.ca_file === undefined) {
      problems.push({ key: 'tls.ca_file', message: 'verify_incoming/verify_outgoing need a CA: set tls.ca_file (create one with `meshfed tls ca create`)' });
    }
    if (t.verify_incoming && t.cert_file === undefined) {
      problems.push({ key: 'tls.cert_file', message: 'verify_incoming needs this agent to present a certificate: set tls.cert_file and tls.key_file' });
    }
    if (t.verify_server_hostname && !t.verify_outgoing) {
      problems.push({ key: 'tls.verify_server_hostname', message: 'verify_server_hostname only applies with verify_outgoing: set tls.verify_outgoing = true as well' });
    }
  }
  if (wanfed && (t?.ca_file === undefined || t?.cert_file === undefined)) {
    problems.push({
      key: 'tls',
      message: 'WAN federation via mesh gateways dials every remote datacenter with mutual TLS: set tls.ca_file, tls.cert_file and tls.key_file (server certs from `meshfed tls cert create -server -node <node_name>`)',
    });
  }
}
