/**
 * The plugin contract. A plugin is a plain, stateless object made by a factory
 * (`wanfed(options) => AgentPlugin`); all per-agent state is created in `register`/`apply`, so
 * the same plugin object can serve several agents in one process.
 */
import type { Container } from 'inversify';
import type { AgentConfig, ConfigSchema } from './config/schema.js';
import type { AgentHookTaps } from './hooks.js';
import type { Logger } from './logger.js';
import type { ServiceRegistry } from './tokens.js';

/** What every plugin step receives. */
export interface PluginContextBase {
  /** The validated configuration. */
  readonly config: AgentConfig;
  /** A logger bound to `{ component: <plugin name> }`. */
  readonly logger: Logger;
}

/** Context of {@link AgentPlugin.validate}. No side effects are allowed yet. */
export type ValidateContext = PluginContextBase;

/** Context of {@link AgentPlugin.register}: bind services on this agent's container. */
export interface RegisterContext extends PluginContextBase {
  /**
   * This agent's inversify container. Bind with `toConstantValue` or `toResolvedValue(factory,
   * [deps])` + `inSingletonScope()`; decorators are never needed.
   */
  readonly container: Container;
}

/** Context of {@link AgentPlugin.apply}: tap hooks, resolve services. */
export interface ApplyContext extends PluginContextBase {
  /** Tap-only hooks; every tap carries this plugin's name. */
  readonly hooks: AgentHookTaps;
  /** This agent's services (kernel services and those bound by plugins). */
  readonly services: ServiceRegistry;
  /** Aborted when the agent stops. */
  readonly signal: AbortSignal;
}

/** Context of start/stop. */
export interface LifecycleContext {
  /** Aborted when the step exceeds its time bound (or the agent is being torn down). */
  readonly signal: AbortSignal;
}

/** The per-agent part of a plugin, returned by `apply`. */
export interface PluginRuntime {
  /** Open sockets, start timers. Runs in boot order; bounded by the agent's start timeout. */
  start?(ctx: LifecycleContext): Promise<void> | void;
  /** Close everything `start` opened. Runs in reverse boot order; bounded by the stop timeout. */
  stop?(ctx: LifecycleContext): Promise<void> | void;
  /** A JSON-able summary for `agent.status()` (listening addresses, counters). */
  status?(): Readonly<Record<string, unknown>>;
}

/** A meshfed plugin. */
export interface AgentPlugin {
  /** Unique name; also the name of its taps and the prefix of its log lines. Kebab-case. */
  readonly name: string;
  /** Capabilities this plugin offers (its own name is always implied). */
  readonly provides?: readonly string[];
  /** Capabilities or plugin names that must be present; boot fails naming both otherwise. */
  readonly requires?: readonly string[];
  /** Top-level configuration keys this plugin owns (validated with the rest of the config). */
  readonly configSchema?: ConfigSchema;
  /** Check options and configuration. Throw to refuse; runs before any side effect. */
  validate?(ctx: ValidateContext): void | Promise<void>;
  /** Bind this plugin's services on the agent's container. */
  register?(ctx: RegisterContext): void;
  /** Tap hooks and return the per-agent runtime (start/stop/status), if any. */
  apply?(ctx: ApplyContext): PluginRuntime | void;
}
