/**
 * The `acl` plugin: Consul-style ACLs, minimal but real. Tokens and policies are declared in
 * configuration (`acl.policies`, `acl.static_tokens`, `acl.tokens.*`); the plugin binds an
 * {@link AclResolver} that endpoints use to turn a request's secret into an {@link Authorizer}
 * and to refuse with Consul's texts (`Permission denied`, `ACL not found` → HTTP 403).
 *
 * Endpoints that enforce ACLs should import from this module (or from `./resolver.js` and
 * `./authorizer.js`, which depend on nothing but the kernel).
 */
import type { AgentPlugin } from '../../core/plugin.js';
import { ConfigError } from '../../core/errors.js';
import { serviceToken } from '../../core/tokens.js';
import type { HttpRequest, HttpResponse } from '../http/index.js';
import { tokenOf } from '../state/http.js';
import { validateAclConfig } from './config.js';
import { AclResolver, isAclError } from './resolver.js';

export {
  ACL_ACCESS_LEVELS,
  allowAll,
  compilePolicies,
  denyAll,
  strongerLevel,
  type AclAccessLevel,
  type AclDefaultPolicy,
  type AclRules,
  type Authorizer,
} from './authorizer.js';
export { ANONYMOUS_SECRET, validateAclConfig, type AclOptions, type AclPolicyOptions, type AclStaticTokenOptions } from './config.js';
export {
  ACL_NOT_FOUND,
  AclErrorCode,
  AclResolver,
  PERMISSION_DENIED,
  aclNotFoundError,
  filterCheckServiceNodes,
  filterDatacenterCheckServiceNodes,
  isAclError,
  permissionDeniedError,
  requireNodeRead,
  requireNodeWrite,
  requireOperatorRead,
  requireOperatorWrite,
  requireServiceRead,
  requireServiceWrite,
  type AclFilterableEntry,
  type AclResolverOptions,
} from './resolver.js';

/** Tokens of the `acl` plugin's services. */
export const AclTokens = Object.freeze({
  /** This agent's resolver (always bound by `acl()`; allows everything while `acl.enabled` is false). */
  Resolver: serviceToken<AclResolver>('acl.Resolver'),
});

/**
 * The HTTP answer to an ACL refusal: 403 with Consul's body text (`Permission denied…` or
 * `ACL not found`); `undefined` for any other error.
 *
 * @example
 * ```ts
 * catch (err) { return aclHttpStatus(err) ?? { status: 500, text: errorMessage(err) }; }
 * ```
 */
export function aclHttpStatus(err: unknown): HttpResponse | undefined {
  if (!isAclError(err)) return undefined;
  return { status: 403, text: err instanceof Error ? err.message : String(err) };
}

/**
 * The secret an HTTP request carries: `X-Consul-Token`, else `Authorization: Bearer …`, else
 * `?token=`; `''` when none (the state plugin's `tokenOf`).
 */
export function tokenFromHttp(req: HttpRequest): string {
  return tokenOf(req);
}

/** The secret an RPC request carries in its `Token` field (`''` when absent or not a string). */
export function tokenFromRpc(req: { readonly Token?: unknown }): string {
  return typeof req.Token === 'string' ? req.Token : '';
}

/**
 * The ACL plugin. Validates the `acl` section (unknown policy names, duplicate names or secrets,
 * bad access levels: a `ConfigError` naming each key path) and binds {@link AclTokens.Resolver}.
 * It takes no options: everything comes from configuration.
 *
 * @example
 * ```ts
 * import { createAgent } from 'meshfed';
 * import { acl, AclTokens, requireOperatorRead } from 'meshfed/plugins/acl';
 * const agent = await createAgent({
 *   config: {
 *     acl: {
 *       enabled: true,
 *       default_policy: 'deny',
 *       tokens: { initial_management: 'root-secret' },
 *       policies: [{ name: 'ops', rules: { operator: 'read', service_prefix: { '': 'read' } } }],
 *       static_tokens: [{ secret_id: 'ops-secret', description: 'ops team', policies: ['ops'] }],
 *     },
 *   },
 *   plugins: [acl()],
 * });
 * const resolver = agent.services.get(AclTokens.Resolver);
 * requireOperatorRead(resolver.resolve('ops-secret')); // passes
 * requireOperatorRead(resolver.resolve(''));           // throws "Permission denied: token lacks permission 'operator:read'"
 * ```
 */
export function acl(): AgentPlugin {
  return {
    name: 'acl',
    provides: ['acl'],
    validate({ config }) {
      const problems = validateAclConfig(config.acl);
      if (problems.length > 0) throw new ConfigError(problems, { plugin: 'acl' });
    },
    register({ container, config, logger }) {
      const resolver = AclResolver.fromConfig(config);
      container.bind(AclTokens.Resolver).toConstantValue(resolver);
      if (!resolver.enabled) {
        logger.debug('ACLs disabled: every request is allowed');
        return;
      }
      logger.info('ACLs enabled', { default_policy: resolver.defaultPolicy, policies: resolver.policyCount, static_tokens: resolver.tokenCount });
      try {
        resolver.resolve('');
      } catch {
        logger.warn('acl.tokens.default is neither acl.tokens.initial_management nor a secret of acl.static_tokens: requests without a token will be refused with "ACL not found"');
      }
    },
    apply({ services }) {
      const resolver = services.get(AclTokens.Resolver);
      return {
        status: () => ({ enabled: resolver.enabled, default_policy: resolver.defaultPolicy, policies: resolver.policyCount, static_tokens: resolver.tokenCount }),
      };
    },
  };
}
