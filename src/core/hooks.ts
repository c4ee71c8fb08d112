/**
 * The kernel's typed hooks (tapable). One frozen object per agent; plugins receive a tap-only
 * view bound to their own name, and only the kernel services call the hooks (kernel-services.ts).
 * A kernel interceptor wraps every tap so a throwing tap surfaces as a MeshfedError naming the
 * plugin and the hook.
 */
import {
  AsyncSeriesBailHook,
  AsyncSeriesHook,
  AsyncSeriesWaterfallHook,
  HookMap,
  SyncBailHook,
  SyncHook,
} from 'tapable';
import { ErrorCode, MeshfedError, errorMessage } from './errors.js';
import type {
  Connection,
  DialContext,
  DialTarget,
  GatewayCandidate,
  GatewayListContext,
  LeadershipContext,
  LifecycleHookContext,
  MembershipEvent,
  RpcAcceptInfo,
  RpcAcceptKey,
  XdsBuildContext,
  XdsResources,
} from './types.js';

/**
 * Named tap stages (lower runs first). Use these instead of bare numbers: a default dialer taps
 * at `FALLBACK` so that specialised dialers (wanfed) at `DEFAULT` are asked first.
 */
export const Stage = Object.freeze({
  /** Runs before everything else: tracing, policy checks. */
  FIRST: -1000,
  /** Before ordinary taps. */
  EARLY: -100,
  /** Ordinary taps. */
  DEFAULT: 0,
  /** After ordinary taps. */
  LATE: 100,
  /** Last resort: the generic implementation that handles whatever nobody else did. */
  FALLBACK: 1000,
} as const);

/** How a tap is registered: a name (must be the plugin's own) or options. */
export type TapSpec =
  | string
  | {
      /** Tap name; for plugin views it defaults to, and must equal, the plugin's name. */
      readonly name?: string;
      /** Order among taps, see {@link Stage}. */
      readonly stage?: number;
      /** Run before the tap with this name. */
      readonly before?: string;
    };

/** Tap-only view of a synchronous hook. */
export interface SyncTaps<A extends unknown[], R> {
  /** Register a synchronous handler. */
  tap(spec: TapSpec, fn: (...args: A) => R): void;
}

/** Tap-only view of an asynchronous hook: handlers may be synchronous or return a promise. */
export interface AsyncTaps<A extends unknown[], R> extends SyncTaps<A, R> {
  /** Register a handler returning a promise. */
  tapPromise(spec: TapSpec, fn: (...args: A) => Promise<R>): void;
}

/** Tap-only view of a keyed hook family (`onRpcAccept.for(4)`, `onRpcAccept.for('consul/rpc-multi')`). */
export interface KeyedTaps<K, T> {
  /** The hook for one key. */
  for(key: K): T;
}

/**
 * The hooks a plugin can tap. Every plugin gets its own view whose taps carry its name, so
 * errors and ordering (`before`) name plugins.
 */
export interface AgentHookTaps {
  /**
   * **Bail, async.** Called by the RPC connection pool, the gossip transport and the gRPC dialer
   * whenever they need a connection to a server. The first tap that can reach the target returns
   * a connection that already speaks the requested protocol (type byte written, or TLS with the
   * requested ALPN negotiated); a tap that cannot returns `undefined` to pass. Taps must honour
   * `ctx.signal`. The default TCP(+TLS) dialer taps at `Stage.FALLBACK`; wanfed taps earlier for
   * remote datacenters.
   */
  readonly onDial: AsyncTaps<[target: DialTarget, ctx: DialContext], Connection | undefined>;
  /**
   * **Bail, sync, keyed** by RPC type byte (number) or ALPN id (string). Called by the RPC listener
   * after sniffing the first byte or completing native TLS. A tap that takes ownership of the
   * connection returns `true`; `undefined` passes. If no tap takes it the listener logs once and
   * closes the connection.
   */
  readonly onRpcAccept: KeyedTaps<RpcAcceptKey, SyncTaps<[conn: Connection, info: RpcAcceptInfo], true | undefined>>;
  /**
   * **Waterfall, async.** Called by the gateway locator with the candidate gateways for a
   * datacenter; each tap may filter or reorder and returns the new list (never mutate the input;
   * return `undefined` to keep it).
   */
  readonly onGatewayList: AsyncTaps<
    [gateways: readonly GatewayCandidate[], ctx: GatewayListContext],
    readonly GatewayCandidate[] | undefined
  >;
  /**
   * **Waterfall, async.** Called by the xDS server with one proxy's Envoy v3 resources; each tap
   * returns a new resource set (add, change or drop resources) or `undefined` to keep it.
   */
  readonly onXdsBuild: AsyncTaps<[resources: XdsResources, ctx: XdsBuildContext], XdsResources | undefined>;
  /** **Series, async.** Before any plugin starts. A throwing tap aborts the start. */
  readonly onStarting: AsyncTaps<[ctx: LifecycleHookContext], void>;
  /** **Series, async.** After every plugin started. */
  readonly onStarted: AsyncTaps<[ctx: LifecycleHookContext], void>;
  /** **Series, async.** Before plugins are stopped (in reverse order). Errors are logged, not fatal. */
  readonly onStopping: AsyncTaps<[ctx: LifecycleHookContext], void>;
  /**
   * **Sync.** Called by the gossip layer for every membership change in the LAN or WAN pool
   * (join, leave, fail, update, reap). Handlers must not block; start async work themselves.
   */
  readonly onMembership: SyncTaps<[event: MembershipEvent], void>;
  /**
   * **Series, async.** Called when this server becomes its datacenter's leader. Start leader-only
   * routines here and stop them when `ctx.signal` aborts.
   */
  readonly onLeadershipAcquired: AsyncTaps<[ctx: LeadershipContext], void>;
  /** **Series, async.** Called when this server stops being leader (after `ctx.signal` aborted). */
  readonly onLeadershipLost: AsyncTaps<[ctx: LeadershipContext], void>;
}

/** The callable hooks. Only the kernel holds this object. */
export interface KernelHooks {
  readonly onDial: AsyncSeriesBailHook<[DialTarget, DialContext], Connection | undefined>;
  readonly onRpcAccept: HookMap<SyncBailHook<[Connection, RpcAcceptInfo], true | undefined>>;
  readonly onGatewayList: AsyncSeriesWaterfallHook<[readonly GatewayCandidate[], GatewayListContext]>;
  readonly onXdsBuild: AsyncSeriesWaterfallHook<[XdsResources, XdsBuildContext]>;
  readonly onStarting: AsyncSeriesHook<[LifecycleHookContext]>;
  readonly onStarted: AsyncSeriesHook<[LifecycleHookContext]>;
  readonly onStopping: AsyncSeriesHook<[LifecycleHookContext]>;
  readonly onMembership: SyncHook<[MembershipEvent]>;
  readonly onLeadershipAcquired: AsyncSeriesHook<[LeadershipContext]>;
  readonly onLeadershipLost: AsyncSeriesHook<[LeadershipContext]>;
}

interface AnyTap {
  name: string;
  type: 'sync' | 'async' | 'promise';
  fn: Function;
  stage?: number;
  before?: string;
}

interface Interceptable {
  intercept(interceptor: { register?: (tap: never) => unknown }): void;
  tap(options: unknown, fn: never): void;
  tapPromise?: (options: unknown, fn: never) => void;
}

function tapFailure(err: unknown, plugin: string, hook: string): MeshfedError {
  if (err instanceof MeshfedError && err.code === ErrorCode.HOOK_TAP_FAILED) return err;
  return new MeshfedError(ErrorCode.HOOK_TAP_FAILED, `plugin "${plugin}" failed in hook ${hook}: ${errorMessage(err)}`, {
    cause: err,
    plugin,
    hook,
  });
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function';
}

/** Kernel interceptor: wrap each tap so its failures name the plugin and the hook. */
function wrapTap(tap: AnyTap, hook: string): AnyTap {
  const fn = tap.fn as (...args: unknown[]) => unknown;
  const plugin = tap.name;
  switch (tap.type) {
    case 'sync':
      return {
        ...tap,
        fn: (...args: unknown[]) => {
          let r: unknown;
          try {
            r = fn(...args);
          } catch (err) {
            throw tapFailure(err, plugin, hook);
          }
          if (isThenable(r)) {
            // An async function given to tap(): nobody would await it (and its errors would be
            // lost). Refuse loudly instead.
            Promise.resolve(r).catch(() => undefined);
            throw tapFailure(new TypeError('tap() handler returned a promise: use tapPromise() for async handlers'), plugin, hook);
          }
          return r;
        },
      };
    case 'promise':
      return {
        ...tap,
        fn: (...args: unknown[]) => {
          let p: unknown;
          try {
            p = fn(...args);
          } catch (err) {
            return Promise.reject(tapFailure(err, plugin, hook));
          }
          if (!isThenable(p)) {
            return Promise.reject(tapFailure(new TypeError('tapPromise handler did not return a promise'), plugin, hook));
          }
          return Promise.resolve(p).catch((err: unknown) => {
            throw tapFailure(err, plugin, hook);
          });
        },
      };
    case 'async':
      return {
        ...tap,
        fn: (...args: unknown[]) => {
          const cb = args[args.length - 1] as (err?: unknown, res?: unknown) => void;
          const rest = args.slice(0, -1);
          try {
            fn(...rest, (err?: unknown, res?: unknown) => (err ? cb(tapFailure(err, plugin, hook)) : cb(null, res)));
          } catch (err) {
            cb(tapFailure(err, plugin, hook));
          }
        },
      };
  }
}

function attribute<H>(hook: H, name: string): H {
  (hook as unknown as Interceptable).intercept({ register: ((tap: AnyTap) => wrapTap(tap, name)) });
  return hook;
}

/** Create a fresh, frozen set of kernel hooks (one per agent: hooks never cross agents). */
export function createKernelHooks(): KernelHooks {
  const onRpcAccept = new HookMap<SyncBailHook<[Connection, RpcAcceptInfo], true | undefined>>(
    () => new SyncBailHook<[Connection, RpcAcceptInfo], true | undefined>(['conn', 'info']),
    'onRpcAccept',
  );
  onRpcAccept.intercept({
    factory: (key: RpcAcceptKey, hook) => attribute(hook, `onRpcAccept[${String(key)}]`),
  });
  return Object.freeze({
    onDial: attribute(new AsyncSeriesBailHook<[DialTarget, DialContext], Connection | undefined>(['target', 'ctx'], 'onDial'), 'onDial'),
    onRpcAccept,
    onGatewayList: attribute(
      new AsyncSeriesWaterfallHook<[readonly GatewayCandidate[], GatewayListContext]>(['gateways', 'ctx'], 'onGatewayList'),
      'onGatewayList',
    ),
    onXdsBuild: attribute(new AsyncSeriesWaterfallHook<[XdsResources, XdsBuildContext]>(['resources', 'ctx'], 'onXdsBuild'), 'onXdsBuild'),
    onStarting: attribute(new AsyncSeriesHook<[LifecycleHookContext]>(['ctx'], 'onStarting'), 'onStarting'),
    onStarted: attribute(new AsyncSeriesHook<[LifecycleHookContext]>(['ctx'], 'onStarted'), 'onStarted'),
    onStopping: attribute(new AsyncSeriesHook<[LifecycleHookContext]>(['ctx'], 'onStopping'), 'onStopping'),
    onMembership: attribute(new SyncHook<[MembershipEvent]>(['event'], 'onMembership'), 'onMembership'),
    onLeadershipAcquired: attribute(new AsyncSeriesHook<[LeadershipContext]>(['ctx'], 'onLeadershipAcquired'), 'onLeadershipAcquired'),
    onLeadershipLost: attribute(new AsyncSeriesHook<[LeadershipContext]>(['ctx'], 'onLeadershipLost'), 'onLeadershipLost'),
  });
}

function resolveSpec(spec: TapSpec, owner: string | undefined, hook: string): { name: string; stage?: number; before?: string } {
  const opts = typeof spec === 'string' ? { name: spec } : spec;
  const name = opts.name ?? owner;
  if (!name) {
    throw new MeshfedError(ErrorCode.HOOK_TAP_NAME, `a tap on ${hook} needs a name: pass tap('my-plugin', fn) or { name }`, { hook });
  }
  if (owner !== undefined && name !== owner) {
    throw new MeshfedError(
      ErrorCode.HOOK_TAP_NAME,
      `plugin "${owner}" tapped ${hook} as "${name}": a plugin taps under its own name, so omit the name or use "${owner}"`,
      { plugin: owner, hook },
    );
  }
  const out: { name: string; stage?: number; before?: string } = { name };
  if (opts.stage !== undefined) out.stage = opts.stage;
  if (opts.before !== undefined) out.before = opts.before;
  return out;
}

function asyncView(hook: Interceptable, owner: string | undefined, name: string): AsyncTaps<never[], unknown> {
  return Object.freeze({
    tap: (spec: TapSpec, fn: (...a: never[]) => unknown) => hook.tap(resolveSpec(spec, owner, name), fn as never),
    tapPromise: (spec: TapSpec, fn: (...a: never[]) => Promise<unknown>) => {
      if (!hook.tapPromise) throw new MeshfedError(ErrorCode.HOOK_TAP_NAME, `${name} is synchronous: use tap()`, { hook: name });
      hook.tapPromise(resolveSpec(spec, owner, name), fn as never);
    },
  });
}

function syncView(hook: Interceptable, owner: string | undefined, name: string): SyncTaps<never[], unknown> {
  return Object.freeze({
    tap: (spec: TapSpec, fn: (...a: never[]) => unknown) => hook.tap(resolveSpec(spec, owner, name), fn as never),
  });
}

/**
 * A tap-only view of `hooks`. With `owner`, every tap carries that name (plugin views); without,
 * callers must name their taps (the agent's public `hooks`).
 */
export function tapOnlyView(hooks: KernelHooks, owner?: string): AgentHookTaps {
  const h = hooks as unknown as Record<string, Interceptable>;
  const av = (k: keyof KernelHooks) => asyncView(h[k] as Interceptable, owner, k);
  return Object.freeze({
    onDial: av('onDial'),
    onRpcAccept: Object.freeze({
      for: (key: RpcAcceptKey) => syncView(hooks.onRpcAccept.for(key) as unknown as Interceptable, owner, `onRpcAccept[${String(key)}]`),
    }),
    onGatewayList: av('onGatewayList'),
    onXdsBuild: av('onXdsBuild'),
    onStarting: av('onStarting'),
    onStarted: av('onStarted'),
    onStopping: av('onStopping'),
    onMembership: syncView(h['onMembership'] as Interceptable, owner, 'onMembership'),
    onLeadershipAcquired: av('onLeadershipAcquired'),
    onLeadershipLost: av('onLeadershipLost'),
  });
}
