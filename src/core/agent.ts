/**
 * `createAgent({ config, plugins })`: the thin agent. Boot = validate config and every plugin
 * (no side effects) → order by dependencies → register DI bindings → apply taps → start in order.
 * Stop runs in reverse. Every step is bounded and every failure names its plugin.
 */
import 'reflect-metadata';
import { setMaxListeners } from 'node:events';
import { Container } from 'inversify';
import type { AgentConfig, RawConfig, SchemaNode } from './config/schema.js';
import { resolveConfig, type HostFacts } from './config/validate.js';
import { ErrorCode, MeshfedError, errorMessage } from './errors.js';
import { createKernelHooks, tapOnlyView, type AgentHookTaps, type KernelHooks } from './hooks.js';
import { createKernelServices } from './kernel-services.js';
import { defaultLogger, type Logger } from './logger.js';
import type { AgentPlugin, PluginRuntime } from './plugin.js';
import { Tokens, type ServiceRegistry, type ServiceToken } from './tokens.js';

/** Options of {@link createAgent}. */
export interface CreateAgentOptions {
  /** Raw configuration (Consul key names); validated at creation. */
  readonly config: RawConfig;
  /** Plugins, in preferred boot order (dependencies may reorder them). */
  readonly plugins: readonly AgentPlugin[];
  /** Root logger (default: quiet under the test runner, `info` otherwise). */
  readonly logger?: Logger;
  /** Time bound of each plugin's start, ms (default 30 000). */
  readonly startTimeoutMs?: number;
  /** Time bound of each plugin's stop, ms (default 30 000). */
  readonly stopTimeoutMs?: number;
  /** Host facts used for defaults (tests). */
  readonly host?: HostFacts;
}

/** Lifecycle state of an agent. */
export type AgentState = 'created' | 'starting' | 'running' | 'stopping' | 'stopped' | 'failed';

/** Per-plugin entry of {@link AgentStatus}. */
export interface PluginStatus {
  readonly name: string;
  readonly state: 'pending' | 'started' | 'stopped' | 'failed';
  readonly status?: Readonly<Record<string, unknown>>;
}

/** What `agent.status()` returns. */
export interface AgentStatus {
  readonly state: AgentState;
  readonly node: string;
  readonly datacenter: string;
  readonly server: boolean;
  readonly leader: boolean;
  readonly plugins: readonly PluginStatus[];
}

/** A running (or runnable) meshfed agent. */
export interface Agent {
  /** The validated configuration. */
  readonly config: AgentConfig;
  /** Tap-only hooks for application code (taps must be named). */
  readonly hooks: AgentHookTaps;
  /** Typed access to this agent's services. */
  readonly services: ServiceRegistry;
  /** Start every plugin in boot order. Rejects (after stopping what started) if one fails. */
  start(options?: { signal?: AbortSignal }): Promise<void>;
  /** Stop every started plugin in reverse order. Idempotent. */
  stop(): Promise<void>;
  /** A snapshot of the agent's and plugins' state. */
  status(): AgentStatus;
}

const DEFAULT_STEP_TIMEOUT_MS = 30_000;

function pluginError(plugin: string, step: string, err: unknown): MeshfedError {
  // Errors the kernel already attributed (tap failures, timeouts) name their plugin first.
  if (err instanceof MeshfedError && err.plugin !== undefined && err.message.startsWith(`plugin "${err.plugin}"`)) return err;
  const code = err instanceof MeshfedError ? err.code : ErrorCode.PLUGIN_FAILED;
  return new MeshfedError(code, `plugin "${plugin}" failed to ${step}: ${errorMessage(err)}`, { cause: err, plugin, hook: err instanceof MeshfedError ? err.hook : undefined });
}

/** Check the plugin list and return it in boot order (stable topological order). */
export function orderPlugins(plugins: readonly AgentPlugin[]): AgentPlugin[] {
  const providers = new Map<string, AgentPlugin>();
  const names = new Set<string>();
  for (const [i, p] of plugins.entries()) {
    if (!p || typeof p !== 'object' || typeof p.name !== 'string' || p.name === '') {
      throw new MeshfedError(ErrorCode.PLUGIN_INVALID, `plugin #${i} has no name: a plugin is an object with a non-empty "name" (did you pass the factory instead of calling it?)`);
    }
    if (names.has(p.name)) {
      throw new MeshfedError(ErrorCode.PLUGIN_INVALID, `plugin "${p.name}" is listed twice: pass each plugin once`, { plugin: p.name });
    }
    names.add(p.name);
    for (const cap of [p.name, ...(p.provides ?? [])]) {
      const other = providers.get(cap);
      if (other && other !== p) {
        throw new MeshfedError(ErrorCode.PLUGIN_INVALID, `plugins "${other.name}" and "${p.name}" both provide "${cap}": keep only one of them`, { plugin: p.name });
      }
      providers.set(cap, p);
    }
  }
  for (const p of plugins) {
    for (const req of p.requires ?? []) {
      if (!providers.has(req)) {
        throw new MeshfedError(
          ErrorCode.PLUGIN_MISSING_DEPENDENCY,
          `plugin "${p.name}" requires "${req}", which no plugin provides: add the "${req}" plugin to the plugin list (before "${p.name}")`,
          { plugin: p.name },
        );
      }
    }
  }
  const order: AgentPlugin[] = [];
  const state = new Map<AgentPlugin, 'visiting' | 'done'>();
  const visit = (p: AgentPlugin, path: string[]): void => {
    const s = state.get(p);
    if (s === 'done') return;
    if (s === 'visiting') {
      throw new MeshfedError(ErrorCode.PLUGIN_DEPENDENCY_CYCLE, `plugins require each other in a cycle: ${[...path, p.name].join(' -> ')}`, { plugin: p.name });
    }
    state.set(p, 'visiting');
    for (const req of p.requires ?? []) visit(providers.get(req) as AgentPlugin, [...path, p.name]);
    state.set(p, 'done');
    order.push(p);
  };
  for (const p of plugins) visit(p, []);
  return order;
}

async function bounded<T>(what: string, plugin: string, timeoutMs: number, outer: AbortSignal | undefined, fn: (signal: AbortSignal) => Promise<T> | T): Promise<T> {
  const ctl = new AbortController();
  const onOuter = (): void => ctl.abort(outer?.reason);
  outer?.addEventListener('abort', onOuter, { once: true });
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const err = new MeshfedError(ErrorCode.PLUGIN_TIMEOUT, `plugin "${plugin}" did not finish ${what} within ${timeoutMs} ms: check what it waits for, or raise the ${what} timeout`, { plugin });
      ctl.abort(err);
      reject(err);
    }, timeoutMs);
  });
  try {
    return await Promise.race([Promise.resolve().then(() => fn(ctl.signal)), timeout]);
  } finally {
    clearTimeout(timer);
    outer?.removeEventListener('abort', onOuter);
  }
}

interface Booted {
  readonly plugin: AgentPlugin;
  runtime: PluginRuntime | undefined;
  state: PluginStatus['state'];
}

class AgentImpl implements Agent {
  readonly config: AgentConfig;
  readonly hooks: AgentHookTaps;
  readonly services: ServiceRegistry;
  readonly #kernelHooks: KernelHooks;
  readonly #booted: Booted[];
  readonly #logger: Logger;
  readonly #lifetime = new AbortController();
  readonly #startTimeoutMs: number;
  readonly #stopTimeoutMs: number;
  readonly #leadership: { isLeader: boolean; lose(): Promise<void> };
  #state: AgentState = 'created';
  #stopping: Promise<void> | undefined;

  constructor(config: AgentConfig, ordered: AgentPlugin[], logger: Logger, options: CreateAgentOptions) {
    this.config = config;
    this.#logger = logger;
    this.#startTimeoutMs = options.startTimeoutMs ?? DEFAULT_STEP_TIMEOUT_MS;
    this.#stopTimeoutMs = options.stopTimeoutMs ?? DEFAULT_STEP_TIMEOUT_MS;
    // Every connection and stream ties itself to the agent's lifetime signal: no listener cap.
    setMaxListeners(0, this.#lifetime.signal);
    this.#kernelHooks = createKernelHooks();
    this.hooks = tapOnlyView(this.#kernelHooks);

    const container = new Container({ defaultScope: 'Singleton' });
    const k = createKernelServices({
      hooks: this.#kernelHooks,
      logger: logger.child({ component: 'kernel' }),
      localDatacenter: config.datacenter,
      agentSignal: this.#lifetime.signal,
    });
    this.#leadership = k.leadership;
    container.bind(Tokens.Config).toConstantValue(config);
    container.bind(Tokens.Logger).toConstantValue(logger);
    container.bind(Tokens.Dialer).toConstantValue(k.dialer);
    container.bind(Tokens.RpcAcceptDispatcher).toConstantValue(k.rpcAccept);
    container.bind(Tokens.GatewayListResolver).toConstantValue(k.gatewayLists);
    container.bind(Tokens.XdsBuilder).toConstantValue(k.xds);
    container.bind(Tokens.MembershipEmitter).toConstantValue(k.membership);
    container.bind(Tokens.Leadership).toConstantValue(k.leadership);
    container.bind(Tokens.AgentSignal).toConstantValue(this.#lifetime.signal);
    container.bind(Tokens.Status).toConstantValue({ status: () => this.status() });

    this.services = Object.freeze({
      get<T>(token: ServiceToken<T>): T {
        if (!container.isBound(token)) {
          throw new MeshfedError(ErrorCode.SERVICE_NOT_BOUND, `no service is bound to ${token.description ?? String(token)}: add the plugin that provides it`);
        }
        return container.get<T>(token);
      },
      tryGet<T>(token: ServiceToken<T>): T | undefined {
        return container.isBound(token) ? container.get<T>(token) : undefined;
      },
      has(token: ServiceToken<unknown>): boolean {
        return container.isBound(token);
      },
    });

    // Register all, then apply all: a plugin's taps may resolve services any plugin bound.
    for (const plugin of ordered) {
      const plog = logger.child({ component: plugin.name });
      try {
        plugin.register?.({ config, logger: plog, container });
      } catch (err) {
        throw pluginError(plugin.name, 'register its services', err);
      }
    }
    this.#booted = ordered.map((plugin) => {
      const plog = logger.child({ component: plugin.name });
      let runtime: PluginRuntime | undefined;
      try {
        runtime = plugin.apply?.({
          config,
          logger: plog,
          hooks: tapOnlyView(this.#kernelHooks, plugin.name),
          services: this.services,
          signal: this.#lifetime.signal,
        }) ?? undefined;
      } catch (err) {
        throw pluginError(plugin.name, 'apply its taps', err);
      }
      return { plugin, runtime, state: 'pending' as const };
    });
  }

  async start(options: { signal?: AbortSignal } = {}): Promise<void> {
    if (this.#state !== 'created') {
      throw new MeshfedError(ErrorCode.AGENT_STATE, `agent cannot start from state "${this.#state}": create a new agent instead`);
    }
    this.#state = 'starting';
    try {
      await bounded('start', 'kernel', this.#startTimeoutMs, options.signal, (signal) => this.#kernelHooks.onStarting.promise({ signal }));
      for (const b of this.#booted) {
        const start = b.runtime?.start?.bind(b.runtime);
        if (start) await bounded('start', b.plugin.name, this.#startTimeoutMs, options.signal, (signal) => start({ signal })).catch((err: unknown) => {
          b.state = 'failed';
          throw pluginError(b.plugin.name, 'start', err);
        });
        b.state = 'started';
      }
      await bounded('start', 'kernel', this.#startTimeoutMs, options.signal, (signal) => this.#kernelHooks.onStarted.promise({ signal }));
    } catch (err) {
      this.#logger.error('agent failed to start', { err: errorMessage(err), plugin: err instanceof MeshfedError ? err.plugin : undefined });
      await this.#teardown();
      this.#state = 'failed';
      throw err;
    }
    this.#state = 'running';
    this.#logger.info('agent started', { node: this.config.node_name, datacenter: this.config.datacenter, plugins: this.#booted.map((b) => b.plugin.name).join(',') });
  }

  async stop(): Promise<void> {
    if (this.#state === 'created') {
      this.#lifetime.abort(new MeshfedError(ErrorCode.ABORTED, 'agent stopped'));
      this.#state = 'stopped';
      return;
    }
    if (this.#state === 'stopped' || this.#state === 'failed') return;
    this.#stopping ??= (async () => {
      this.#state = 'stopping';
      await this.#teardown();
      this.#state = 'stopped';
      this.#logger.info('agent stopped');
    })();
    return this.#stopping;
  }

  /** Stop started plugins in reverse order; errors are logged so every plugin gets its stop. */
  async #teardown(): Promise<void> {
    const errors: unknown[] = [];
    try {
      await bounded('stop', 'kernel', this.#stopTimeoutMs, undefined, (signal) => this.#kernelHooks.onStopping.promise({ signal }));
    } catch (err) {
      errors.push(err);
    }
    if (this.#leadership.isLeader) await this.#leadership.lose().catch((err: unknown) => errors.push(err));
    this.#lifetime.abort(new MeshfedError(ErrorCode.ABORTED, 'agent stopped'));
    for (const b of [...this.#booted].reverse()) {
      if (b.state !== 'started') continue;
      const stop = b.runtime?.stop?.bind(b.runtime);
      try {
        if (stop) await bounded('stop', b.plugin.name, this.#stopTimeoutMs, undefined, (signal) => stop({ signal }));
        b.state = 'stopped';
      } catch (err) {
        b.state = 'failed';
        errors.push(pluginError(b.plugin.name, 'stop', err));
      }
    }
    for (const err of errors) this.#logger.error('error while stopping', { err: errorMessage(err) });
  }

  status(): AgentStatus {
    return {
      state: this.#state,
      node: this.config.node_name,
      datacenter: this.config.datacenter,
      server: this.config.server,
      leader: this.#leadership.isLeader,
      plugins: this.#booted.map((b) => {
        const s = b.runtime?.status?.();
        return s === undefined ? { name: b.plugin.name, state: b.state } : { name: b.plugin.name, state: b.state, status: s };
      }),
    };
  }
}

/**
 * Create an agent. Validates the configuration and every plugin, orders plugins by their
 * `requires`, binds services and applies taps; nothing is opened until `start()`.
 *
 * @example
 * ```ts
 * const agent = await createAgent({ config: { datacenter: 'dc1', server: true }, plugins: [tls()] });
 * await agent.start();
 * // …
 * await agent.stop();
 * ```
 */
export async function createAgent(options: CreateAgentOptions): Promise<Agent> {
  const logger = options.logger ?? defaultLogger();
  const ordered = orderPlugins(options.plugins);
  const pluginSchema: Record<string, SchemaNode> = {};
  for (const p of ordered) {
    for (const [k, v] of Object.entries(p.configSchema ?? {})) {
      if (pluginSchema[k]) throw new MeshfedError(ErrorCode.PLUGIN_INVALID, `plugin "${p.name}" declares config key "${k}", which another plugin already owns`, { plugin: p.name });
      pluginSchema[k] = v;
    }
  }
  const resolveOpts = options.host ? { pluginSchema, host: options.host } : { pluginSchema };
  const config = resolveConfig(options.config, resolveOpts);
  for (const p of ordered) {
    try {
      await p.validate?.({ config, logger: logger.child({ component: p.name }) });
    } catch (err) {
      throw pluginError(p.name, 'validate', err);
    }
  }
  return new AgentImpl(config, ordered, logger, options);
}
