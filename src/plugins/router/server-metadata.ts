/**
 * Server metadata from serf tags (spec §3.5): the TypeScript counterpart of Consul's
 * `metadata.IsConsulServer`. Only members tagged `role=consul` are servers; their RPC address is
 * the member's gossip IP with the `port` tag.
 */
import { joinHostPort } from '../../core/address.js';
import type { Member } from '../../core/types.js';

/** A Consul/meshfed server as described by its serf tags. */
export interface ServerMeta {
  /** Serf member name (`node` in the LAN pool, `node.dc` in the WAN pool). */
  readonly name: string;
  /** The node name: `name` without a trailing `.<datacenter>`. */
  readonly shortName: string;
  /** Server (node) ID, tag `id`. */
  readonly id: string;
  /** Datacenter, tag `dc`. */
  readonly datacenter: string;
  /** Network segment, tag `segment` (empty = default). */
  readonly segment: string;
  /** RPC port, tag `port`. */
  readonly port: number;
  /** The member's IP address. */
  readonly ip: string;
  /** `host:port` of the RPC port (IPv6 bracketed). */
  readonly addr: string;
  /** WAN join port, tag `wan_join_port` (LAN pool only). */
  readonly wanJoinPort: number | undefined;
  /** Build version text, tag `build` (e.g. `1.8.0:abcdef`). */
  readonly build: string;
  /** Consul protocol version, tag `vsn` (0 when absent). */
  readonly version: number;
  /** Minimum supported protocol version, tag `vsn_min`. */
  readonly versionMin: number | undefined;
  /** Maximum supported protocol version, tag `vsn_max`. */
  readonly versionMax: number | undefined;
  /** Raft protocol version, tag `raft_vsn` (1 when absent, like Consul). */
  readonly raftVersion: number;
  /** Tag `expect` (bootstrap expect), 0 when absent. */
  readonly expect: number;
  /** Tag `read_replica` or legacy `nonvoter` is set. */
  readonly readReplica: boolean;
  /** Whether the server requires TLS on its RPC port (tag `use_tls` = `1`; the router may force it per area). */
  readonly useTls: boolean;
  /** gRPC port, tag `grpc_port`. */
  readonly grpcPort: number | undefined;
  /** gRPC TLS port, tag `grpc_tls_port`. */
  readonly grpcTlsPort: number | undefined;
  /** Feature flags: every tag `ft_<name>` as `name` → integer (e.g. `fs` → 1 for federation states). */
  readonly featureFlags: Readonly<Record<string, number>>;
  /** Serf member status. */
  readonly status: Member['status'];
  /** All tags, for fields not parsed here. */
  readonly tags: Readonly<Record<string, string>>;
}

/** Result of {@link inspectServer}. */
export type ServerParseResult =
  | { readonly ok: true; readonly server: ServerMeta }
  | {
      readonly ok: false;
      /** `true` when the member is simply not a server (`role` ≠ `consul`): not an error. */
      readonly notServer: boolean;
      /** Why the member is not a usable server. */
      readonly reason: string;
    };

// Go's strconv.Atoi: optional sign, decimal digits only.
const INT = /^[+-]?\d+$/;

function parseInt10(v: string): number | undefined {
  if (!INT.test(v)) return undefined;
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : undefined;
}

/**
 * Parse a member's tags. Like Consul, a member whose `role` is not `consul` is not a server, and a
 * server with a malformed numeric tag (`port`, `vsn`, `vsn_min`, `vsn_max`, `raft_vsn`, `expect`,
 * `wan_join_port`, `grpc_port`, `grpc_tls_port`, `ft_*`) is rejected with the reason. Unlike Consul,
 * an absent `vsn` or `build` is tolerated (0 / empty): meshfed's own tags always carry them, and a
 * missing version must not make a server unroutable.
 */
export function inspectServer(member: Member): ServerParseResult {
  const tags = member.tags;
  if (tags['role'] !== 'consul') return { ok: false, notServer: true, reason: `member "${member.name}" is not a server (role=${JSON.stringify(tags['role'] ?? '')})` };
  const bad = (what: string): ServerParseResult => ({ ok: false, notServer: false, reason: `server "${member.name}": ${what}` });
  const datacenter = tags['dc'] ?? '';
  if (datacenter === '') return bad('tag "dc" is missing');
  const portText = tags['port'];
  if (portText === undefined) return bad('tag "port" (RPC port) is missing');
  const port = parseInt10(portText);
  if (port === undefined || port < 0 || port > 65535) return bad(`tag "port" must be an RPC port number, got ${JSON.stringify(portText)}`);

  const ints: Record<string, number | undefined> = {};
  for (const key of ['wan_join_port', 'vsn', 'vsn_min', 'vsn_max', 'raft_vsn', 'expect', 'grpc_port', 'grpc_tls_port']) {
    const text = tags[key];
    if (text === undefined) continue;
    const n = parseInt10(text);
    if (n === undefined) return bad(`tag "${key}" must be an integer, got ${JSON.stringify(text)}`);
    ints[key] = n;
  }
  const featureFlags: Record<string, number> = {};
  for (const [key, text] of Object.entries(tags)) {
    if (!key.startsWith('ft_')) continue;
    const n = parseInt10(text);
    if (n === undefined) return bad(`feature flag tag "${key}" must be an integer, got ${JSON.stringify(text)}`);
    featureFlags[key.slice(3)] = n;
  }
  const suffix = `.${datacenter}`;
  const shortName = member.name.endsWith(suffix) ? member.name.slice(0, -suffix.length) : member.name;
  const server: ServerMeta = {
    name: member.name,
    shortName,
    id: tags['id'] ?? '',
    datacenter,
    segment: tags['segment'] ?? '',
    port,
    ip: member.address,
    addr: joinHostPort(member.address, port),
    wanJoinPort: ints['wan_join_port'],
    build: tags['build'] ?? '',
    version: ints['vsn'] ?? 0,
    versionMin: ints['vsn_min'],
    versionMax: ints['vsn_max'],
    raftVersion: ints['raft_vsn'] ?? 1,
    expect: ints['expect'] ?? 0,
    readReplica: tags['read_replica'] !== undefined || tags['nonvoter'] !== undefined,
    useTls: tags['use_tls'] === '1',
    grpcPort: ints['grpc_port'],
    grpcTlsPort: ints['grpc_tls_port'],
    featureFlags: Object.freeze(featureFlags),
    status: member.status,
    tags,
  };
  return { ok: true, server: Object.freeze(server) };
}

/**
 * The server a member describes (Consul's `metadata.IsConsulServer`), or `undefined` when it is
 * not a server or its tags are malformed ({@link serverParseError} says why).
 */
export function parseServer(member: Member): ServerMeta | undefined {
  const r = inspectServer(member);
  return r.ok ? r.server : undefined;
}

/**
 * Why a member tagged `role=consul` cannot be used as a server (malformed tags), or `undefined`
 * when it parses or is simply not a server.
 */
export function serverParseError(member: Member): string | undefined {
  const r = inspectServer(member);
  return r.ok || r.notServer ? undefined : r.reason;
}

/** `name (datacenter) addr`, for logs. */
export function describeServer(s: ServerMeta): string {
  return `${s.name} (Addr: ${s.addr}) (DC: ${s.datacenter})`;
}
