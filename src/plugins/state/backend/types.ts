/**
 * The contract between the `state` plugin and a durable backend. A backend owns how commands
 * become durable and agreed on (one SQLite file, or an etcd cluster shared by the servers of a
 * datacenter) and who may write (the leader); the {@link StateStore} FSM it feeds is the same
 * everywhere. The plugin reads the store directly and writes only through {@link StateBackend.apply}.
 */
import type { Command, StateStore } from '../store/index.js';
import type { Logger } from '../../../core/logger.js';

/** Error codes shared by every backend (each backend may add its own). */
export const StateBackendErrorCode = Object.freeze({
  /**
   * This server is not its datacenter's leader, so it may not write: forward the command to
   * {@link StateBackend.leader} (the catalog endpoints do this).
   */
  NOT_LEADER: 'MESHFED_ERR_STATE_NOT_LEADER',
  /** The consensus store cannot be reached: the write was not acknowledged (it may or may not land). */
  UNAVAILABLE: 'MESHFED_ERR_STATE_UNAVAILABLE',
} as const);

/** The result of an acknowledged write. */
export interface ApplyResult {
  /** The raft-style index the command was applied at; visible in the local store from now on. */
  readonly index: number;
}

/** Who leads the datacenter, as far as this server knows. */
export interface LeaderInfo {
  /** The leader's node name. */
  readonly node: string;
  /** The leader's advertised RPC address, `host:port`. */
  readonly address: string;
}

/** What this server tells the backend about itself, and how it learns about leadership. */
export interface BackendSelf {
  /** Node name of this server (unique in the datacenter). */
  readonly node: string;
  /** This server's datacenter. */
  readonly datacenter: string;
  /** This server's advertised RPC address (`host:port`); read after the RPC listener started. */
  rpcAddress(): string;
  /**
   * Called when this server becomes leader (`true`) or stops being leader (`false`); the plugin
   * fires the kernel's leadership hooks from here. Awaited: a backend does not accept writes as
   * leader before `onLeadership(true)` resolved.
   */
  onLeadership(isLeader: boolean): Promise<void>;
}

/** Options every backend factory receives. */
export interface BackendContext {
  /** A fresh store that only the backend writes. */
  readonly store: StateStore;
  readonly self: BackendSelf;
  readonly logger: Logger;
}

/** A durable, agreed-on home for the FSM commands of one datacenter. */
export interface StateBackend {
  /** `"embedded"`, `"etcd"`, …: shown in status output. */
  readonly kind: string;
  /**
   * Bring the local store up to date (restore, catch up) and take part in leader election.
   * Resolves once reads are served from a current store; the agent signal aborts it.
   */
  start(signal: AbortSignal): Promise<void>;
  /**
   * Make `command` durable and agreed on, then apply it to the local store. Resolves only when
   * it is durable AND visible locally. Rejects with the store's validation error (nothing
   * written), `MESHFED_ERR_STATE_NOT_LEADER` on a follower, or a backend error (not acknowledged).
   */
  apply(command: Command): Promise<ApplyResult>;
  /**
   * Resolve once every write acknowledged anywhere before this call is visible in the local
   * store (for `?consistent` reads). Embedded: immediately. Rejects when the consensus store is
   * unreachable.
   */
  barrier(signal?: AbortSignal): Promise<void>;
  /** Whether this server currently leads its datacenter. */
  isLeader(): boolean;
  /** The datacenter's leader, when known. */
  leader(): LeaderInfo | undefined;
  /** RPC addresses (`host:port`) of the datacenter's servers sharing this backend, sorted. */
  peers(): readonly string[];
  /**
   * Milliseconds since this server last knew its store was current (0 for the leader of an
   * embedded store; for etcd, since the last successful contact). `X-Consul-LastContact`.
   */
  lastContactMs(): number;
  /** Backend-specific status for `/v1/meshfed/status` (no secrets). */
  status(): Record<string, unknown>;
  /** Stop: give up leadership (firing `onLeadership(false)`), flush, release resources. Idempotent. */
  close(): Promise<void>;
}
