/**
 * The kernel services that call hooks. Plugins only tap; when a plugin needs a hook *called*
 * (the pool needs a connection, the listener has a connection to hand off) it asks one of these
 * services, which adds deadlines, abort handling and clear errors in one place.
 */
import { setMaxListeners } from 'node:events';
import { ErrorCode, MeshfedError, abortError } from './errors.js';
import type { KernelHooks } from './hooks.js';
import type { Logger } from './logger.js';
import type {
  Connection,
  DialTarget,
  GatewayCandidate,
  GatewayListContext,
  LeadershipContext,
  MembershipEvent,
  RpcAcceptInfo,
  XdsBuildContext,
  XdsResources,
} from './types.js';

/** Options of {@link Dialer.dial}. */
export interface DialOptions {
  /** Abort the dial. */
  readonly signal?: AbortSignal | undefined;
  /** Give up after this many milliseconds (default 10 000, spec `DefaultDialTimeout`). */
  readonly timeoutMs?: number | undefined;
}

/** Dials servers by asking the `onDial` taps in stage order. */
export interface Dialer {
  /**
   * A connection to `target` that already speaks the requested protocol. Rejects with
   * `MESHFED_ERR_NO_DIALER` when no tap can reach the target, `MESHFED_ERR_ABORTED` on abort or
   * timeout, or the tap's attributed error.
   */
  dial(target: DialTarget, options?: DialOptions): Promise<Connection>;
}

/** Hands accepted connections to the `onRpcAccept` taps registered for their key. */
export interface RpcAcceptDispatcher {
  /** Whether any tap handles `key` (type byte or ALPN id). */
  handles(key: number | string): boolean;
  /** Offer `conn`; `true` when a tap took ownership. The caller closes it otherwise. */
  dispatch(conn: Connection, info: RpcAcceptInfo): boolean;
}

/** Runs candidate gateway lists through `onGatewayList`. */
export interface GatewayListResolver {
  /** The candidates after every tap filtered/reordered them. */
  resolve(candidates: readonly GatewayCandidate[], ctx: GatewayListContext): Promise<readonly GatewayCandidate[]>;
}

/** Runs one proxy's xDS resource set through `onXdsBuild`. */
export interface XdsBuilder {
  /** The resources after every tap changed them. */
  build(base: XdsResources, ctx: XdsBuildContext): Promise<XdsResources>;
}

/** Publishes membership changes to `onMembership`. */
export interface MembershipEmitter {
  /** Deliver one event to every tap; a throwing tap is logged, the others still run. */
  emit(event: MembershipEvent): void;
}

/** Tracks whether this server leads its datacenter and fires the leadership hooks. */
export interface LeadershipController {
  /** Whether this agent is currently leader. */
  readonly isLeader: boolean;
  /** Become leader: fires `onLeadershipAcquired` with a fresh signal. No-op if already leader. */
  acquire(): Promise<void>;
  /** Stop being leader: aborts the leadership signal, then fires `onLeadershipLost`. */
  lose(): Promise<void>;
}

/** Default time bound of a dial (spec §1.4 `DefaultDialTimeout`). */
export const DEFAULT_DIAL_TIMEOUT_MS = 10_000;

function describeTarget(t: DialTarget): string {
  const proto = t.alpn !== undefined ? `alpn ${t.alpn}` : `rpc type ${t.rpcType}`;
  return `${t.node}.${t.datacenter}${t.address ? ` (${t.address})` : ''} with ${proto}`;
}

/** Build the kernel services over one agent's hooks. */
export function createKernelServices(opts: {
  hooks: KernelHooks;
  logger: Logger;
  localDatacenter: string;
  agentSignal: AbortSignal;
}): {
  dialer: Dialer;
  rpcAccept: RpcAcceptDispatcher;
  gatewayLists: GatewayListResolver;
  xds: XdsBuilder;
  membership: MembershipEmitter;
  leadership: LeadershipController;
} {
  const { hooks, logger, localDatacenter, agentSignal } = opts;

  const dialer: Dialer = {
    async dial(target, options = {}) {
      const what = `dial ${describeTarget(target)}`;
      const timeoutMs = options.timeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS;
      // A ref'd timer (unlike AbortSignal.timeout): a pending dial keeps the process alive until it ends.
      const timeout = new AbortController();
      const timer = setTimeout(() => timeout.abort(new MeshfedError(ErrorCode.ABORTED, `${what} timed out after ${timeoutMs} ms`)), timeoutMs);
      const signals = [agentSignal, timeout.signal];
      if (options.signal) signals.push(options.signal);
      const signal = AbortSignal.any(signals);
      try {
        if (signal.aborted) throw abortError(signal, what);
        let conn: Connection | undefined;
        try {
          conn = await hooks.onDial.promise(target, { signal, localDatacenter });
        } catch (err) {
          if (signal.aborted && !(err instanceof MeshfedError && err.code !== ErrorCode.HOOK_TAP_FAILED)) throw abortError(signal, what);
          throw err;
        }
        if (conn === undefined || conn === null) {
          throw new MeshfedError(
            ErrorCode.NO_DIALER,
            `no plugin could dial ${describeTarget(target)}: add a plugin that taps onDial for this target (the rpc plugin's TCP dialer, or wanfed for remote datacenters)`,
          );
        }
        if (signal.aborted) {
          conn.destroy();
          throw abortError(signal, what);
        }
        return conn;
      } finally {
        clearTimeout(timer);
      }
    },
  };

  const rpcAccept: RpcAcceptDispatcher = {
    handles(key) {
      const hook = hooks.onRpcAccept.get(key);
      return hook !== undefined && hook.isUsed();
    },
    dispatch(conn, info) {
      const hook = hooks.onRpcAccept.get(info.key);
      if (!hook) return false;
      return hook.call(conn, info) === true;
    },
  };

  const gatewayLists: GatewayListResolver = {
    async resolve(candidates, ctx: GatewayListContext) {
      return hooks.onGatewayList.promise(Object.freeze([...candidates]), ctx);
    },
  };

  const xds: XdsBuilder = {
    async build(base: XdsResources, ctx: XdsBuildContext) {
      return hooks.onXdsBuild.promise(base, ctx);
    },
  };

  const membership: MembershipEmitter = {
    emit(event: MembershipEvent) {
      try {
        hooks.onMembership.call(event);
      } catch (err) {
        logger.error('membership handler failed', { err, event: event.type, pool: event.pool });
      }
    },
  };

  let leaderCtl: AbortController | undefined;
  let leaderCtx: LeadershipContext | undefined;
  const leadership: LeadershipController = {
    get isLeader() {
      return leaderCtl !== undefined;
    },
    async acquire() {
      if (leaderCtl) return;
      leaderCtl = new AbortController();
      const signal = AbortSignal.any([leaderCtl.signal, agentSignal]);
      setMaxListeners(0, signal);
      leaderCtx = Object.freeze({ datacenter: localDatacenter, signal });
      logger.info('acquired leadership', { datacenter: localDatacenter });
      await hooks.onLeadershipAcquired.promise(leaderCtx);
    },
    async lose() {
      const ctl = leaderCtl;
      const ctx = leaderCtx;
      if (!ctl || !ctx) return;
      leaderCtl = undefined;
      leaderCtx = undefined;
      ctl.abort(new MeshfedError(ErrorCode.ABORTED, 'leadership lost'));
      logger.info('lost leadership', { datacenter: localDatacenter });
      await hooks.onLeadershipLost.promise(ctx);
    },
  };

  return { dialer, rpcAccept, gatewayLists, xds, membership, leadership };
}
