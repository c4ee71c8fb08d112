/**
 * Cross-key checks of the `acl` configuration section that the schema cannot express: required
 * names and secrets, duplicates, references to unknown policies. Every problem names its key path
 * and says how to fix it; no message ever contains a secret (secrets are referred to by the path
 * where they are configured).
 */
import type { ConfigProblem } from '../../core/errors.js';
import { ACL_ACCESS_LEVELS, type AclDefaultPolicy, type AclRules } from './authorizer.js';

/** The secret Consul reserves for the anonymous token (a request may send it explicitly). */
export const ANONYMOUS_SECRET = 'anonymous';

/** A policy as the resolver takes it (the resolved `acl.policies[]` entry). */
export interface AclPolicyOptions {
  /** Unique name. */
  readonly name?: string | undefined;
  /** Its rules; absent means "no rules". */
  readonly rules?: AclRules | undefined;
}

/** A token as the resolver takes it (the resolved `acl.static_tokens[]` entry). */
export interface AclStaticTokenOptions {
  /** The secret a client presents. */
  readonly secret_id?: string | undefined;
  /** Free text for operators. */
  readonly description?: string | undefined;
  /** Names of the policies it grants. */
  readonly policies?: readonly string[] | undefined;
}

/** The `acl` section, as resolved from configuration (or written by hand in tests and embedders). */
export interface AclOptions {
  /** Enforce ACLs; `false` allows everything. */
  readonly enabled?: boolean | undefined;
  /** What unmatched checks answer (default `allow`, as Consul). */
  readonly default_policy?: AclDefaultPolicy | undefined;
  /** The special tokens of `acl.tokens`. */
  readonly tokens?: {
    readonly initial_management?: string | undefined;
    readonly agent?: string | undefined;
    readonly default?: string | undefined;
    readonly replication?: string | undefined;
  } | undefined;
  /** `acl.policies`. */
  readonly policies?: readonly AclPolicyOptions[] | undefined;
  /** `acl.static_tokens`. */
  readonly static_tokens?: readonly AclStaticTokenOptions[] | undefined;
}

const RULE_MAPS = ['node', 'node_prefix', 'service', 'service_prefix'] as const;

function levelProblem(key: string, value: unknown): ConfigProblem | undefined {
  if (typeof value === 'string' && (ACL_ACCESS_LEVELS as readonly string[]).includes(value)) return undefined;
  const shown = typeof value === 'string' ? `"${value}"` : typeof value;
  return { key, message: `${shown} is not one of "read", "write", "deny"` };
}

/**
 * Check an `acl` section; returns every problem found (empty when valid), in key order.
 *
 * Rules: every policy has a non-empty, unique `name` and valid access levels; every static token
 * has a non-empty `secret_id`, unique among static tokens and distinct from
 * `acl.tokens.initial_management` and from the reserved `anonymous`, and names only declared
 * policies. A secret in `acl.tokens.default` / `agent` / `replication` that is not declared here
 * is allowed (the replication token is usually only known to the primary datacenter); using an
 * undeclared one locally is refused at that time with `ACL not found`.
 *
 * @example
 * ```ts
 * validateAclConfig({ static_tokens: [{ secret_id: 's', policies: ['nope'] }] });
 * // [{ key: 'acl.static_tokens[0].policies[0]', message: 'unknown policy "nope": declare it in acl.policies …' }]
 * ```
 */
export function validateAclConfig(acl: AclOptions): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const dp: unknown = acl.default_policy;
  if (dp !== undefined && dp !== 'allow' && dp !== 'deny') {
    problems.push({ key: 'acl.default_policy', message: `${typeof dp === 'string' ? `"${dp}"` : typeof dp} is not one of "allow", "deny"` });
  }
  const names = new Map<string, number>();
  for (const [i, p] of (acl.policies ?? []).entries()) {
    const at = `acl.policies[${i}]`;
    if (typeof p.name !== 'string' || p.name.trim() === '') {
      problems.push({ key: `${at}.name`, message: 'required: give every policy a unique, non-empty name' });
    } else if (names.has(p.name)) {
      problems.push({ key: `${at}.name`, message: `duplicate policy name "${p.name}" (also acl.policies[${names.get(p.name)}]): rename one or merge their rules` });
    } else {
      names.set(p.name, i);
    }
    const rules = p.rules ?? {};
    if (rules.operator !== undefined) {
      const bad = levelProblem(`${at}.rules.operator`, rules.operator);
      if (bad) problems.push(bad);
    }
    for (const kind of RULE_MAPS) {
      for (const [name, level] of Object.entries(rules[kind] ?? {})) {
        const bad = levelProblem(`${at}.rules.${kind}.${name}`, level);
        if (bad) problems.push(bad);
      }
    }
  }
  const known = [...names.keys()];
  const mgmt = acl.tokens?.initial_management;
  const secrets = new Map<string, number>();
  for (const [i, t] of (acl.static_tokens ?? []).entries()) {
    const at = `acl.static_tokens[${i}]`;
    const secret = t.secret_id;
    if (typeof secret !== 'string' || secret === '') {
      problems.push({ key: `${at}.secret_id`, message: 'required: set the secret clients present (e.g. a UUID from `uuidgen`)' });
    } else if (secrets.has(secret)) {
      problems.push({ key: `${at}.secret_id`, message: `same secret as acl.static_tokens[${secrets.get(secret)}].secret_id: every token needs its own secret` });
    } else if (mgmt !== undefined && mgmt !== '' && secret === mgmt) {
      problems.push({ key: `${at}.secret_id`, message: 'same secret as acl.tokens.initial_management: the management token needs no static entry; give this token its own secret' });
    } else if (secret === ANONYMOUS_SECRET) {
      problems.push({ key: `${at}.secret_id`, message: `"${ANONYMOUS_SECRET}" is reserved for the anonymous token: choose another secret` });
    } else {
      secrets.set(secret, i);
    }
    for (const [k, name] of (t.policies ?? []).entries()) {
      if (!names.has(name)) {
        const hint = known.length > 0 ? `known: ${known.map((n) => `"${n}"`).join(', ')}` : 'none is declared';
        problems.push({ key: `${at}.policies[${k}]`, message: `unknown policy "${name}": declare it in acl.policies or fix the name (${hint})` });
      }
    }
  }
  if (mgmt === ANONYMOUS_SECRET) {
    problems.push({ key: 'acl.tokens.initial_management', message: `"${ANONYMOUS_SECRET}" is reserved for the anonymous token: choose another secret` });
  }
  return problems;
}
