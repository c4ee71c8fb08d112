/**
 * Authorizers: the answer to "may this token do X?" for the three resources meshfed protects
 * (`operator`, `node`, `service`). A token's policies are compiled once into an {@link Authorizer};
 * checks are then map lookups.
 *
 * Rule semantics (Consul's):
 * - `write` implies `read`; `deny` refuses both.
 * - For a node or service name, an exact rule (`node "x"`) beats every prefix rule; otherwise the
 *   longest matching prefix (`node_prefix`) decides; `""` is a prefix of every name.
 * - Several policies of one token naming the same exact name (or the same prefix) merge with
 *   `deny` over `write` over `read`.
 * - A rule that matches decides, even when it grants less than asked (`read` refuses a write);
 *   only when no rule matches does the token fall back to `acl.default_policy`.
 */
import type { AclAccessLevel } from '../../core/config/schema.js';

export type { AclAccessLevel } from '../../core/config/schema.js';

/** The access levels a rule may grant, in the order the schema lists them. */
export const ACL_ACCESS_LEVELS: readonly AclAccessLevel[] = Object.freeze(['read', 'write', 'deny']);

/** What a token may do. Every check is synchronous and side-effect free. */
export interface Authorizer {
  /** Read operator resources (e.g. `FederationState.Get` / `List`). */
  operatorRead(): boolean;
  /** Write operator resources (e.g. `FederationState.Apply`). */
  operatorWrite(): boolean;
  /** Read the catalog entry of node `name`. */
  nodeRead(name: string): boolean;
  /** Register or deregister node `name`. */
  nodeWrite(name: string): boolean;
  /** Read service `name`. */
  serviceRead(name: string): boolean;
  /** Register or deregister instances of service `name`. */
  serviceWrite(name: string): boolean;
  /** Whether every check passes unconditionally (management token, or ACLs disabled): callers may skip filtering. */
  readonly isManagement: boolean;
}

/** The rules of one policy (the resolved `acl.policies[].rules` shape; every map optional). */
export interface AclRules {
  /** Access to operator resources. */
  readonly operator?: AclAccessLevel | undefined;
  /** Exact node name → level. */
  readonly node?: Readonly<Record<string, AclAccessLevel>> | undefined;
  /** Node name prefix → level. */
  readonly node_prefix?: Readonly<Record<string, AclAccessLevel>> | undefined;
  /** Exact service name → level. */
  readonly service?: Readonly<Record<string, AclAccessLevel>> | undefined;
  /** Service name prefix → level. */
  readonly service_prefix?: Readonly<Record<string, AclAccessLevel>> | undefined;
}

/** `acl.default_policy`: what an unmatched check answers. */
export type AclDefaultPolicy = 'allow' | 'deny';

const everything: Authorizer = {
  operatorRead: () => true,
  operatorWrite: () => true,
  nodeRead: () => true,
  nodeWrite: () => true,
  serviceRead: () => true,
  serviceWrite: () => true,
  isManagement: true,
};

/**
 * Allows everything (`isManagement` is true): the management token's authorizer, and what every
 * request gets while `acl.enabled` is false.
 *
 * @example
 * ```ts
 * allowAll.operatorWrite(); // true
 * ```
 */
export const allowAll: Authorizer = Object.freeze(everything);

/**
 * Refuses everything.
 *
 * @example
 * ```ts
 * denyAll.serviceRead('web'); // false
 * ```
 */
export const denyAll: Authorizer = Object.freeze({
  operatorRead: () => false,
  operatorWrite: () => false,
  nodeRead: () => false,
  nodeWrite: () => false,
  serviceRead: () => false,
  serviceWrite: () => false,
  isManagement: false,
});

const RANK: Readonly<Record<AclAccessLevel, number>> = Object.freeze({ read: 1, write: 2, deny: 3 });

/** Merge two levels given for the same rule: `deny` > `write` > `read`. */
export function strongerLevel(a: AclAccessLevel | undefined, b: AclAccessLevel): AclAccessLevel {
  return a === undefined || RANK[b] > RANK[a] ? b : a;
}

/** Whether `level` grants `want`; `undefined` (no rule matched) falls back to `fallback`. */
function grants(level: AclAccessLevel | undefined, want: 'read' | 'write', fallback: boolean): boolean {
  if (level === undefined) return fallback;
  if (level === 'deny') return false;
  return want === 'read' || level === 'write';
}

/** Exact and prefix rules of one resource kind (node or service), merged over policies. */
class NameRules {
  readonly #exact = new Map<string, AclAccessLevel>();
  /** Longest prefix first. */
  #prefixes: [string, AclAccessLevel][] = [];

  add(exact: Readonly<Record<string, AclAccessLevel>> | undefined, prefix: Readonly<Record<string, AclAccessLevel>> | undefined): void {
    for (const [name, level] of Object.entries(exact ?? {})) this.#exact.set(name, strongerLevel(this.#exact.get(name), level));
    const merged = new Map(this.#prefixes);
    for (const [p, level] of Object.entries(prefix ?? {})) merged.set(p, strongerLevel(merged.get(p), level));
    this.#prefixes = [...merged].sort((a, b) => b[0].length - a[0].length);
  }

  /** The level that applies to `name`, or `undefined` when no rule matches. */
  level(name: string): AclAccessLevel | undefined {
    const exact = this.#exact.get(name);
    if (exact !== undefined) return exact;
    for (const [p, level] of this.#prefixes) if (name.startsWith(p)) return level;
    return undefined;
  }
}

class PolicyAuthorizer implements Authorizer {
  readonly isManagement = false;
  readonly #operator: AclAccessLevel | undefined;
  readonly #nodes = new NameRules();
  readonly #services = new NameRules();
  readonly #fallback: boolean;

  constructor(rules: readonly AclRules[], defaultPolicy: AclDefaultPolicy) {
    let operator: AclAccessLevel | undefined;
    for (const r of rules) {
      if (r.operator !== undefined) operator = strongerLevel(operator, r.operator);
      this.#nodes.add(r.node, r.node_prefix);
      this.#services.add(r.service, r.service_prefix);
    }
    this.#operator = operator;
    this.#fallback = defaultPolicy === 'allow';
    Object.freeze(this);
  }

  operatorRead(): boolean { return grants(this.#operator, 'read', this.#fallback); }
  operatorWrite(): boolean { return grants(this.#operator, 'write', this.#fallback); }
  nodeRead(name: string): boolean { return grants(this.#nodes.level(name), 'read', this.#fallback); }
  nodeWrite(name: string): boolean { return grants(this.#nodes.level(name), 'write', this.#fallback); }
  serviceRead(name: string): boolean { return grants(this.#services.level(name), 'read', this.#fallback); }
  serviceWrite(name: string): boolean { return grants(this.#services.level(name), 'write', this.#fallback); }
}

/**
 * Compile the rules of a token's policies into an {@link Authorizer}; checks no rule answers fall
 * back to `defaultPolicy`. With no rules at all this is the anonymous token's authorizer.
 *
 * @example
 * ```ts
 * const authz = compilePolicies([{ service_prefix: { '': 'read' }, service: { db: 'deny' } }], 'deny');
 * authz.serviceRead('web'); // true  (prefix "")
 * authz.serviceRead('db');  // false (exact deny beats the prefix)
 * authz.serviceWrite('web'); // false (read does not imply write)
 * authz.operatorRead();     // false (no operator rule: default_policy deny)
 * ```
 */
export function compilePolicies(rules: readonly AclRules[], defaultPolicy: AclDefaultPolicy): Authorizer {
  return new PolicyAuthorizer(rules, defaultPolicy);
}
