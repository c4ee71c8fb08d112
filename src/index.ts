/**
 * meshfed's public API: the kernel (agent, plugin contract, hooks, config, errors, logging) and
 * the first-party plugin factories.
 */
export { createAgent, orderPlugins } from './core/agent.js';
export type { Agent, AgentState, AgentStatus, CreateAgentOptions, PluginStatus } from './core/agent.js';
export type { AgentPlugin, ApplyContext, LifecycleContext, PluginContextBase, PluginRuntime, RegisterContext, ValidateContext } from './core/plugin.js';
export { Stage, type AgentHookTaps, type AsyncTaps, type KeyedTaps, type SyncTaps, type TapSpec } from './core/hooks.js';
export type * from './core/types.js';
export { Tokens, serviceToken, type ServiceRegistry, type ServiceToken, type StatusSource } from './core/tokens.js';
export type {
  DialOptions,
  Dialer,
  GatewayListResolver,
  LeadershipController,
  MembershipEmitter,
  RpcAcceptDispatcher,
  XdsBuilder,
} from './core/kernel-services.js';
export { DEFAULT_DIAL_TIMEOUT_MS } from './core/kernel-services.js';
export { ConfigError, ErrorCode, MeshfedError, type ConfigProblem } from './core/errors.js';
export { createLogger, silentLogger, type LogEntry, type LogFields, type LogLevel, type Logger } from './core/logger.js';
export { CORE_SCHEMA, type AgentConfig, type ConfigSchema, type RawConfig, type SchemaNode } from './core/config/schema.js';
export { resolveConfig, WanfedConfigErrors, DATACENTER_NAME, type HostFacts } from './core/config/validate.js';
export { loadConfigFiles, mergeConfig, readConfigFile } from './core/config/load.js';
export { parseDuration, formatDuration } from './core/config/duration.js';
export * from './core/protocol.js';
export { MESHFED_VERSION } from './core/version.js';
export { joinHostPort, parseHostPort } from './core/address.js';
export { systemClock, type Clock } from './core/clock.js';
