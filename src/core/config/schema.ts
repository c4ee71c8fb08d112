/**
 * Configuration schema: a small declarative description of every key, its type and default,
 * shared by the validator, the defaults and the README's configuration reference. Plugins add
 * their own top-level sections through `AgentPlugin.configSchema`.
 */

/** Describes one configuration value. */
export type SchemaNode =
  | { readonly kind: 'string'; readonly default?: string; readonly enum?: readonly string[]; readonly doc: string }
  | { readonly kind: 'bool'; readonly default?: boolean; readonly doc: string }
  | { readonly kind: 'int'; readonly default?: number; readonly min?: number; readonly max?: number; readonly doc: string }
  /** A Go duration string (`"30s"`); the resolved value is milliseconds. */
  | { readonly kind: 'duration'; readonly default?: string; readonly min?: string; readonly max?: string; readonly doc: string }
  | { readonly kind: 'list'; readonly of: SchemaNode; readonly doc: string }
  | { readonly kind: 'object'; readonly fields: Readonly<Record<string, SchemaNode>>; readonly doc: string }
  /** Arbitrary keys, each value described by `of` (maps such as `node_meta`). */
  | { readonly kind: 'map'; readonly of: SchemaNode; readonly doc: string };

/** Top-level keys and their schema. */
export type ConfigSchema = Readonly<Record<string, SchemaNode>>;

const port = (def: number, doc: string): SchemaNode => ({ kind: 'int', default: def, min: -1, max: 65535, doc });

/** ACL access levels of a policy rule. */
const ACCESS_LEVELS = ['read', 'write', 'deny'] as const;
const accessLevel: SchemaNode = { kind: 'string', enum: ACCESS_LEVELS, doc: '`read`, `write` or `deny`.' };

/** The kernel's own keys, named as Consul names them. */
export const CORE_SCHEMA: ConfigSchema = Object.freeze({
  datacenter: { kind: 'string', default: 'dc1', doc: 'Datacenter of this agent: lowercase letters, digits, `_` and `-`.' },
  primary_datacenter: { kind: 'string', doc: 'The primary datacenter (holds the canonical federation states). Defaults to `datacenter`.' },
  node_name: { kind: 'string', doc: "This node's name, unique in the datacenter. Defaults to the host name." },
  server: { kind: 'bool', default: false, doc: 'Run as a server (state store, RPC, leader routines).' },
  bind_addr: { kind: 'string', default: '0.0.0.0', doc: 'Address to bind the RPC and gossip listeners to.' },
  advertise_addr: { kind: 'string', doc: 'Address advertised to other nodes. Defaults to `bind_addr`, or the first private IPv4 if that is `0.0.0.0`.' },
  client_addr: { kind: 'string', default: '127.0.0.1', doc: 'Address the HTTP and gRPC (xDS) listeners bind to.' },
  ports: {
    kind: 'object',
    doc: 'Listener ports. `-1` disables a listener, `0` picks a free port (tests).',
    fields: {
      server: port(8300, 'Server RPC port (type-byte sniffing and native TLS with ALPN).'),
      serf_lan: port(8301, 'LAN gossip port (UDP and TCP).'),
      serf_wan: port(8302, 'WAN gossip port (UDP and TCP), servers only.'),
      http: port(8500, 'HTTP API port.'),
      grpc: port(8502, 'gRPC port (xDS/ADS for gateways), plaintext.'),
      grpc_tls: port(-1, 'gRPC port over TLS (the same xDS/ADS service; needs the tls plugin with a certificate; client certificates only with `tls.verify_incoming`). `-1` (default) disables it.'),
    },
  },
  domain: { kind: 'string', default: 'consul', doc: 'Domain of TLS server names (`<node>.server.<dc>.<domain>`); a trailing `.` is ignored.' },
  data_dir: { kind: 'string', doc: 'Directory for durable state. Required for servers unless `-dev`.' },
  log_level: { kind: 'string', default: 'info', enum: ['trace', 'debug', 'info', 'warn', 'error', 'silent'], doc: 'Lowest log level written.' },
  tls: {
    kind: 'object',
    doc: 'TLS for internal RPC (and everything that rides on it through gateways).',
    fields: {
      ca_file: { kind: 'string', doc: 'PEM file of the CA that signs every agent certificate.' },
      cert_file: { kind: 'string', doc: "PEM file of this agent's certificate." },
      key_file: { kind: 'string', doc: "PEM file of this agent's private key." },
      verify_incoming: { kind: 'bool', default: false, doc: 'Require and verify client certificates on incoming RPC.' },
      verify_outgoing: { kind: 'bool', default: false, doc: 'Use TLS and verify the server certificate on outgoing RPC.' },
      verify_server_hostname: { kind: 'bool', default: false, doc: 'Also check that outgoing servers present `server.<dc>.<domain>`.' },
    },
  },
  connect: {
    kind: 'object',
    doc: 'Service mesh settings.',
    fields: {
      enabled: { kind: 'bool', default: false, doc: 'Enable the service mesh (required for WAN federation via mesh gateways).' },
      enable_mesh_gateway_wan_federation: {
        kind: 'bool',
        default: false,
        doc: 'Federate datacenters through mesh gateways (servers only; needs TLS with CA, cert and key).',
      },
    },
  },
  primary_gateways: {
    kind: 'list',
    of: { kind: 'string', doc: '`host:port` of a primary mesh gateway.' },
    doc: "Mesh gateways of the primary datacenter, used by a secondary's servers to bootstrap WAN federation.",
  },
  primary_gateways_interval: { kind: 'duration', default: '30s', min: '1s', doc: 'Retry interval of primary gateway discovery.' },
  retry_join: { kind: 'list', of: { kind: 'string', doc: 'Address to join.' }, doc: 'LAN addresses to join at start, retried.' },
  retry_join_wan: { kind: 'list', of: { kind: 'string', doc: 'Address to join.' }, doc: 'WAN addresses to join at start, retried (not with WAN federation via mesh gateways).' },
  retry_interval: { kind: 'duration', default: '30s', doc: 'Interval between LAN join attempts.' },
  retry_interval_wan: { kind: 'duration', default: '30s', doc: 'Interval between WAN join attempts.' },
  acl: {
    kind: 'object',
    doc: 'Access control.',
    fields: {
      enabled: { kind: 'bool', default: false, doc: 'Enforce ACLs.' },
      default_policy: { kind: 'string', default: 'allow', enum: ['allow', 'deny'], doc: 'Policy when no rule matches.' },
      tokens: {
        kind: 'object',
        doc: 'Tokens this agent uses. Never logged.',
        fields: {
          initial_management: { kind: 'string', doc: 'Bootstrap management token.' },
          agent: { kind: 'string', doc: "Token for the agent's own requests." },
          default: { kind: 'string', doc: 'Token for requests that carry none.' },
          replication: { kind: 'string', doc: "Token a secondary's leader uses for replication and anti-entropy." },
        },
      },
      policies: {
        kind: 'list',
        doc: 'ACL policies declared in configuration (used by the `acl` plugin; names unique).',
        of: {
          kind: 'object',
          doc: 'One policy: a unique `name` and its `rules`.',
          fields: {
            name: { kind: 'string', doc: 'Unique policy name, referenced by `acl.static_tokens[].policies`.' },
            rules: {
              kind: 'object',
              doc: 'Access levels (`read`, `write` or `deny`); exact `node`/`service` rules beat the longest matching `*_prefix` rule.',
              fields: {
                operator: { kind: 'string', enum: ACCESS_LEVELS, doc: 'Access to operator resources (federation states).' },
                node: { kind: 'map', of: accessLevel, doc: 'Exact node name → access level.' },
                node_prefix: { kind: 'map', of: accessLevel, doc: 'Node name prefix → access level (`""` matches every node).' },
                service: { kind: 'map', of: accessLevel, doc: 'Exact service name → access level.' },
                service_prefix: { kind: 'map', of: accessLevel, doc: 'Service name prefix → access level (`""` matches every service).' },
              },
            },
          },
        },
      },
      static_tokens: {
        kind: 'list',
        doc: 'ACL tokens declared in configuration. Secrets are never logged.',
        of: {
          kind: 'object',
          doc: 'One token: its secret and the policies it grants.',
          fields: {
            secret_id: { kind: 'string', doc: 'The secret a client presents (unique, not empty).' },
            description: { kind: 'string', doc: 'Free text for operators; never a secret.' },
            policies: { kind: 'list', of: { kind: 'string', doc: 'A policy name from `acl.policies`.' }, doc: 'Names of the policies this token grants.' },
          },
        },
      },
    },
  },
});

/** The resolved configuration: every core key present (defaults filled), durations in ms. */
export interface AgentConfig {
  readonly datacenter: string;
  readonly primary_datacenter: string;
  readonly node_name: string;
  readonly server: boolean;
  readonly bind_addr: string;
  readonly advertise_addr: string;
  readonly client_addr: string;
  readonly ports: { readonly server: number; readonly serf_lan: number; readonly serf_wan: number; readonly http: number; readonly grpc: number; readonly grpc_tls: number };
  readonly domain: string;
  readonly data_dir?: string | undefined;
  readonly log_level: string;
  readonly tls: {
    readonly ca_file?: string | undefined;
    readonly cert_file?: string | undefined;
    readonly key_file?: string | undefined;
    readonly verify_incoming: boolean;
    readonly verify_outgoing: boolean;
    readonly verify_server_hostname: boolean;
  };
  readonly connect: { readonly enabled: boolean; readonly enable_mesh_gateway_wan_federation: boolean };
  readonly primary_gateways: readonly string[];
  /** Milliseconds. */
  readonly primary_gateways_interval: number;
  readonly retry_join: readonly string[];
  readonly retry_join_wan: readonly string[];
  /** Milliseconds. */
  readonly retry_interval: number;
  /** Milliseconds. */
  readonly retry_interval_wan: number;
  readonly acl: {
    readonly enabled: boolean;
    readonly default_policy: 'allow' | 'deny';
    readonly tokens: { readonly initial_management?: string; readonly agent?: string; readonly default?: string; readonly replication?: string };
    /** Policies declared in configuration (`[]` by default). */
    readonly policies: readonly AclPolicyConfig[];
    /** Tokens declared in configuration (`[]` by default). */
    readonly static_tokens: readonly AclStaticTokenConfig[];
  };
  /** Sections owned by plugins (`configSchema`), resolved the same way. */
  readonly [section: string]: unknown;
}

/** An ACL access level: `write` implies `read`; `deny` refuses both. */
export type AclAccessLevel = (typeof ACCESS_LEVELS)[number];

/** One entry of `acl.policies` (fields absent from the file stay absent). */
export interface AclPolicyConfig {
  readonly name?: string;
  readonly rules: {
    readonly operator?: AclAccessLevel;
    readonly node: Readonly<Record<string, AclAccessLevel>>;
    readonly node_prefix: Readonly<Record<string, AclAccessLevel>>;
    readonly service: Readonly<Record<string, AclAccessLevel>>;
    readonly service_prefix: Readonly<Record<string, AclAccessLevel>>;
  };
}

/** One entry of `acl.static_tokens`. */
export interface AclStaticTokenConfig {
  readonly secret_id?: string;
  readonly description?: string;
  readonly policies: readonly string[];
}

/** Raw configuration as read from JSON files and flags, before validation. */
export type RawConfig = Readonly<Record<string, unknown>>;
