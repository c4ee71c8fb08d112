/**
 * Token resolution and enforcement helpers. {@link AclResolver} turns the secret a request carries
 * (HTTP `X-Consul-Token`, an RPC request's `Token`) into an {@link Authorizer}; the `require*`
 * helpers refuse with Consul's texts (`Permission denied`, `ACL not found`), and
 * {@link filterCheckServiceNodes} removes what a token may not see.
 *
 * Secrets are kept only as SHA-256 digests and never appear in an error message or a log line.
 */
import { createHash } from 'node:crypto';
import type { AgentConfig } from '../../core/config/schema.js';
import { ConfigError, MeshfedError } from '../../core/errors.js';
import { allowAll, compilePolicies, type AclDefaultPolicy, type AclRules, type Authorizer } from './authorizer.js';
import { ANONYMOUS_SECRET, validateAclConfig, type AclOptions } from './config.js';

/** Error codes of the `acl` plugin. */
export const AclErrorCode = Object.freeze({
  /** The request carried a secret no token has (message `ACL not found`). */
  NOT_FOUND: 'MESHFED_ERR_ACL_NOT_FOUND',
  /** The token lacks a permission (message starts with `Permission denied`). */
  DENIED: 'MESHFED_ERR_ACL_DENIED',
} as const);

/** Consul's text for an unknown token (clients match on it). */
export const ACL_NOT_FOUND = 'ACL not found';
/** Consul's text for a refused permission (clients match on this prefix). */
export const PERMISSION_DENIED = 'Permission denied';

/** Digest under which a secret is looked up (secrets themselves are not kept). */
function digest(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/** An `ACL not found` error. Never carries the secret. */
export function aclNotFoundError(): MeshfedError {
  return new MeshfedError(AclErrorCode.NOT_FOUND, ACL_NOT_FOUND, { plugin: 'acl' });
}

/**
 * A `Permission denied` error naming the missing permission (never the token).
 *
 * @example
 * ```ts
 * permissionDeniedError('operator:write').message; // "Permission denied: token lacks permission 'operator:write'"
 * ```
 */
export function permissionDeniedError(permission: string, resource?: string): MeshfedError {
  const on = resource === undefined ? '' : ` on ${JSON.stringify(resource)}`;
  return new MeshfedError(AclErrorCode.DENIED, `${PERMISSION_DENIED}: token lacks permission '${permission}'${on}`, { plugin: 'acl' });
}

/** Whether `err` is an ACL refusal (`Permission denied` or `ACL not found`), local or a forwarded server's text. */
export function isAclError(err: unknown): boolean {
  if (err instanceof MeshfedError && (err.code === AclErrorCode.DENIED || err.code === AclErrorCode.NOT_FOUND)) return true;
  const msg = err instanceof Error ? err.message : typeof err === 'string' ? err : '';
  return msg.startsWith(PERMISSION_DENIED) || msg.startsWith(ACL_NOT_FOUND);
}

/** Throws `Permission denied` unless `authz` grants `operator:read`. */
export function requireOperatorRead(authz: Authorizer): void {
  if (!authz.operatorRead()) throw permissionDeniedError('operator:read');
}
/** Throws `Permission denied` unless `authz` grants `operator:write`. */
export function requireOperatorWrite(authz: Authorizer): void {
  if (!authz.operatorWrite()) throw permissionDeniedError('operator:write');
}
/** Throws `Permission denied` unless `authz` grants `node:read` on `name`. */
export function requireNodeRead(authz: Authorizer, name: string): void {
  if (!authz.nodeRead(name)) throw permissionDeniedError('node:read', name);
}
/** Throws `Permission denied` unless `authz` grants `node:write` on `name`. */
export function requireNodeWrite(authz: Authorizer, name: string): void {
  if (!authz.nodeWrite(name)) throw permissionDeniedError('node:write', name);
}
/** Throws `Permission denied` unless `authz` grants `service:read` on `name`. */
export function requireServiceRead(authz: Authorizer, name: string): void {
  if (!authz.serviceRead(name)) throw permissionDeniedError('service:read', name);
}
/** Throws `Permission denied` unless `authz` grants `service:write` on `name`. */
export function requireServiceWrite(authz: Authorizer, name: string): void {
  if (!authz.serviceWrite(name)) throw permissionDeniedError('service:write', name);
}

/** The part of a `CheckServiceNode` the ACL filter looks at. */
export interface AclFilterableEntry {
  readonly Node: { readonly Node: string } | null;
  readonly Service: { readonly Service: string } | null;
}

/**
 * Keep the entries whose node AND service `authz` may read (Consul's filter of
 * `Health.ServiceNodes` / `FederationState.ListMeshGateways`). An entry without a node or service
 * is kept only for a management authorizer. `filtered` says whether anything was removed (the
 * reply's `ResultsFilteredByACLs`). The input is not modified.
 *
 * @example
 * ```ts
 * const { nodes, filtered } = filterCheckServiceNodes(authz, reply.Nodes);
 * reply = { ...reply, Nodes: nodes, ResultsFilteredByACLs: filtered };
 * ```
 */
export function filterCheckServiceNodes<T extends AclFilterableEntry>(authz: Authorizer, nodes: readonly T[]): { nodes: T[]; filtered: boolean } {
  if (authz.isManagement) return { nodes: [...nodes], filtered: false };
  const kept = nodes.filter((n) => n.Node !== null && n.Service !== null && authz.nodeRead(n.Node.Node) && authz.serviceRead(n.Service.Service));
  return { nodes: kept, filtered: kept.length !== nodes.length };
}

/**
 * {@link filterCheckServiceNodes} over a map datacenter → entries (`ListMeshGateways`' reply);
 * datacenters left without entries are dropped.
 */
export function filterDatacenterCheckServiceNodes<T extends AclFilterableEntry>(
  authz: Authorizer,
  byDc: Readonly<Record<string, readonly T[]>>,
): { nodes: Record<string, T[]>; filtered: boolean } {
  const out: Record<string, T[]> = {};
  let filtered = false;
  for (const [dc, list] of Object.entries(byDc)) {
    const r = filterCheckServiceNodes(authz, list);
    filtered ||= r.filtered;
    if (r.nodes.length > 0) out[dc] = r.nodes;
  }
  return { nodes: out, filtered };
}

/** Options of {@link AclResolver}: the `acl` configuration section. */
export type AclResolverOptions = AclOptions;

/**
 * Resolves secrets to authorizers, from the tokens and policies declared in configuration.
 * Immutable after construction; one per agent.
 *
 * Resolution (ACLs enabled): an empty or absent secret uses `acl.tokens.default` when set, else
 * the anonymous token (no policies: `default_policy` decides every check); `anonymous` is the
 * anonymous token too; `acl.tokens.initial_management` is a management token (everything
 * allowed); a `static_tokens` secret gets its policies; anything else throws `ACL not found`.
 * With ACLs disabled every secret (even unknown) resolves to {@link allowAll}.
 *
 * @example
 * ```ts
 * const r = new AclResolver({ enabled: true, default_policy: 'deny', tokens: { initial_management: 'root' } });
 * r.resolve('root').isManagement; // true
 * r.resolve('').operatorRead();   // false (anonymous, default deny)
 * r.resolve('nope');              // throws MeshfedError MESHFED_ERR_ACL_NOT_FOUND "ACL not found"
 * ```
 */
export class AclResolver {
  /** Whether ACLs are enforced (`acl.enabled`). */
  readonly enabled: boolean;
  /** `acl.default_policy`. */
  readonly defaultPolicy: AclDefaultPolicy;
  /** Number of declared policies (for status output). */
  readonly policyCount: number;
  /** Number of declared static tokens (for status output). */
  readonly tokenCount: number;
  readonly #byDigest: ReadonlyMap<string, Authorizer>;
  readonly #anonymous: Authorizer;
  readonly #defaultDigest: string | undefined;
  readonly #replication: string;

  /** @throws {ConfigError} listing every problem of {@link validateAclConfig} */
  constructor(options: AclResolverOptions) {
    const problems = validateAclConfig(options);
    if (problems.length > 0) throw new ConfigError(problems, { plugin: 'acl' });
    this.enabled = options.enabled === true;
    this.defaultPolicy = options.default_policy ?? 'allow';
    const rules = new Map<string, AclRules>();
    for (const p of options.policies ?? []) rules.set(p.name as string, p.rules ?? {});
    const byDigest = new Map<string, Authorizer>();
    for (const t of options.static_tokens ?? []) {
      const own = (t.policies ?? []).map((n) => rules.get(n) as AclRules);
      byDigest.set(digest(t.secret_id as string), compilePolicies(own, this.defaultPolicy));
    }
    const mgmt = options.tokens?.initial_management;
    if (mgmt) byDigest.set(digest(mgmt), allowAll);
    this.#byDigest = byDigest;
    this.#anonymous = compilePolicies([], this.defaultPolicy);
    const def = options.tokens?.default;
    this.#defaultDigest = def ? digest(def) : undefined;
    this.#replication = options.tokens?.replication ?? '';
    this.policyCount = rules.size;
    this.tokenCount = options.static_tokens?.length ?? 0;
    Object.freeze(this);
  }

  /** A resolver for an agent's validated configuration (`config.acl`). */
  static fromConfig(config: Pick<AgentConfig, 'acl'>): AclResolver {
    return new AclResolver(config.acl);
  }

  /**
   * The authorizer of `secret` (see the class description for the order).
   * @throws {MeshfedError} `MESHFED_ERR_ACL_NOT_FOUND` (`ACL not found`) for an unknown non-empty
   *   secret, or when the request has none and `acl.tokens.default` is unknown
   */
  resolve(secret: string | undefined): Authorizer {
    if (!this.enabled) return allowAll;
    let key: string;
    if (secret === undefined || secret === '') {
      if (this.#defaultDigest === undefined) return this.#anonymous;
      key = this.#defaultDigest;
    } else if (secret === ANONYMOUS_SECRET) {
      return this.#anonymous;
    } else {
      key = digest(secret);
    }
    const authz = this.#byDigest.get(key);
    if (authz === undefined) throw aclNotFoundError();
    return authz;
  }

  /** The token to send when this agent calls the primary datacenter (`acl.tokens.replication`, or `''`). */
  replicationToken(): string {
    return this.#replication;
  }
}
