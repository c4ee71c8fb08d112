/**
 * Errors: one base class with a stable `code`, the plugin and hook that raised it when known,
 * and a `cause`. Messages say what was expected and how to fix it (STYLE.md §8).
 */

/** Stable error codes of the kernel. Plugins use their own `MESHFED_ERR_<PLUGIN>_…` prefixes. */
export const ErrorCode = Object.freeze({
  /** The configuration failed validation; `problems` lists every issue found. */
  CONFIG_INVALID: 'MESHFED_ERR_CONFIG_INVALID',
  /** A configuration file could not be read or parsed. */
  CONFIG_FILE: 'MESHFED_ERR_CONFIG_FILE',
  /** A plugin object does not satisfy the plugin contract (no name, duplicate name, …). */
  PLUGIN_INVALID: 'MESHFED_ERR_PLUGIN_INVALID',
  /** A plugin `requires` something that no plugin `provides`. */
  PLUGIN_MISSING_DEPENDENCY: 'MESHFED_ERR_PLUGIN_MISSING_DEPENDENCY',
  /** Plugins require each other in a cycle. */
  PLUGIN_DEPENDENCY_CYCLE: 'MESHFED_ERR_PLUGIN_DEPENDENCY_CYCLE',
  /** A plugin's validate/register/apply/start/stop step threw. */
  PLUGIN_FAILED: 'MESHFED_ERR_PLUGIN_FAILED',
  /** A plugin's start or stop step did not finish within its time bound. */
  PLUGIN_TIMEOUT: 'MESHFED_ERR_PLUGIN_TIMEOUT',
  /** A tap on a hook threw or rejected. */
  HOOK_TAP_FAILED: 'MESHFED_ERR_HOOK_TAP_FAILED',
  /** A tap tried to use a name other than its plugin's. */
  HOOK_TAP_NAME: 'MESHFED_ERR_HOOK_TAP_NAME',
  /** No tap on `onDial` could reach the target. */
  NO_DIALER: 'MESHFED_ERR_NO_DIALER',
  /** A service token was requested that no plugin bound. */
  SERVICE_NOT_BOUND: 'MESHFED_ERR_SERVICE_NOT_BOUND',
  /** The agent was used in a state that does not allow the call (start twice, …). */
  AGENT_STATE: 'MESHFED_ERR_AGENT_STATE',
  /** An operation was aborted through its AbortSignal or deadline. */
  ABORTED: 'MESHFED_ERR_ABORTED',
} as const);

export interface MeshfedErrorOptions {
  /** The underlying error. */
  readonly cause?: unknown;
  /** The plugin the error is attributed to. */
  readonly plugin?: string | undefined;
  /** The hook whose tap failed. */
  readonly hook?: string | undefined;
}

/** Base error of meshfed: always has a stable `code`; `plugin`/`hook` attribute it. */
export class MeshfedError extends Error {
  /** Stable, machine-readable code, e.g. `MESHFED_ERR_CONFIG_INVALID`. */
  readonly code: string;
  /** Name of the plugin this error is attributed to, if any. */
  readonly plugin: string | undefined;
  /** Name of the hook whose tap failed, if any. */
  readonly hook: string | undefined;

  constructor(code: string, message: string, options: MeshfedErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'MeshfedError';
    this.code = code;
    this.plugin = options.plugin;
    this.hook = options.hook;
  }
}

/** One problem found while validating configuration. */
export interface ConfigProblem {
  /** Dotted key path, e.g. `tls.cert_file`; empty for cross-key rules. */
  readonly key: string;
  /** What is wrong and how to fix it. */
  readonly message: string;
}

/** Configuration validation failed: `problems` lists every problem, the message shows them all. */
export class ConfigError extends MeshfedError {
  /** Every problem found, in key order. */
  readonly problems: readonly ConfigProblem[];

  constructor(problems: readonly ConfigProblem[], options: MeshfedErrorOptions = {}) {
    const lines = problems.map((p) => `  - ${p.key ? `${p.key}: ` : ''}${p.message}`);
    super(ErrorCode.CONFIG_INVALID, `invalid configuration:\n${lines.join('\n')}`, options);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/** Error message of any thrown value, without assuming it is an Error. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/** An `AbortError`-like MeshfedError for a signal that fired, keeping the signal's reason. */
export function abortError(signal: AbortSignal, what: string): MeshfedError {
  const reason: unknown = signal.reason;
  return new MeshfedError(ErrorCode.ABORTED, `${what} aborted: ${errorMessage(reason ?? 'aborted')}`, {
    cause: reason,
  });
}
