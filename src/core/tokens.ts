/**
 * DI tokens: `Symbol.for('meshfed.X')` typed with the service interface they resolve to.
 * A plugin publishes its services' tokens from its `index.ts`; the kernel's are here.
 */
import type { AgentStatus } from './agent.js';
import type { AgentConfig } from './config/schema.js';
import type { Logger } from './logger.js';
import type { Dialer, GatewayListResolver, LeadershipController, MembershipEmitter, RpcAcceptDispatcher, XdsBuilder } from './kernel-services.js';

/** A DI token carrying the type of the service it resolves to. */
export type ServiceToken<T> = symbol & { readonly __service?: T };

/** Make a token `Symbol.for('meshfed.<name>')` for service type `T`. */
export function serviceToken<T>(name: string): ServiceToken<T> {
  return Symbol.for(`meshfed.${name}`);
}

/** Tokens of the services every agent has, bound by the kernel before any plugin registers. */
export const Tokens = Object.freeze({
  /** The validated agent configuration. */
  Config: serviceToken<AgentConfig>('Config'),
  /** The agent's root logger (components derive children). */
  Logger: serviceToken<Logger>('Logger'),
  /** Dials servers through `onDial`. */
  Dialer: serviceToken<Dialer>('Dialer'),
  /** Dispatches accepted RPC-port connections through `onRpcAccept`. */
  RpcAcceptDispatcher: serviceToken<RpcAcceptDispatcher>('RpcAcceptDispatcher'),
  /** Runs candidate gateway lists through `onGatewayList`. */
  GatewayListResolver: serviceToken<GatewayListResolver>('GatewayListResolver'),
  /** Runs a proxy's xDS resources through `onXdsBuild`. */
  XdsBuilder: serviceToken<XdsBuilder>('XdsBuilder'),
  /** Publishes membership events to `onMembership`. */
  MembershipEmitter: serviceToken<MembershipEmitter>('MembershipEmitter'),
  /** Tracks leadership and fires the leadership hooks. */
  Leadership: serviceToken<LeadershipController>('Leadership'),
  /** Aborted when the agent stops: long-lived work ties itself to it. */
  AgentSignal: serviceToken<AbortSignal>('AgentSignal'),
  /** The agent's status, for plugins that report it (HTTP API, CLI). */
  Status: serviceToken<StatusSource>('Status'),
  /**
   * Optional: who leads the datacenter and which servers share its state (bound by the `state`
   * plugin). `Status.Leader`/`Status.Peers` and `/v1/status/*` read it when bound; without it an
   * agent reports itself while it is leader.
   */
  Consensus: serviceToken<ConsensusStatus>('Consensus'),
});

/** The datacenter's consensus view, as `Status.Leader` / `Status.Peers` report it. */
export interface ConsensusStatus {
  /** The leader's RPC address (`host:port`), or `""` when there is none. */
  leader(): string;
  /** RPC addresses of the datacenter's servers sharing the state, sorted. */
  peers(): readonly string[];
}

/** Reads the agent's current status. */
export interface StatusSource {
  /** Same as `agent.status()`. */
  status(): AgentStatus;
}

/** Read-only access to an agent's services by token. */
export interface ServiceRegistry {
  /** The service bound to `token`; throws `MESHFED_ERR_SERVICE_NOT_BOUND` naming the token if none. */
  get<T>(token: ServiceToken<T>): T;
  /** The service bound to `token`, or `undefined`. */
  tryGet<T>(token: ServiceToken<T>): T | undefined;
  /** Whether a service is bound to `token`. */
  has(token: ServiceToken<unknown>): boolean;
}
