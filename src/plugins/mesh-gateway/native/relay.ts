/**
 * Loader of the mesh gateway's optional native engine (`relay.c`, a Node-API addon built by
 * `scripts/build-native.sh` next to this module as `relay.node`), the `native` data plane.
 *
 * The engine owns the sockets on Node's own event loop: it accepts, reads each client's first
 * bytes and hands them to JavaScript, runs the hello and connect deadlines, connects where it is
 * told and relays without calling JavaScript until the pair has closed. Everything that decides
 * stays in TypeScript (proxy.ts): the ClientHello, routing, endpoint choice and failover,
 * refusals, counters, draining. When the addon is missing (no C compiler when meshfed was built)
 * or fails to load, the gateway uses its `handles` plane, which behaves the same.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** Event kinds passed to {@link RelayEventFn}. */
export const RelayEvent = {
  /** Bytes from a client that is not connected yet (`data`); the first event of a connection. */
  DATA: 1,
  /** The client ended (`a` = UV_EOF), failed (`a` = errno) or missed the hello deadline (`b` = 1) before it was connected; the connection is closed. */
  CLIENT_END: 2,
  /** One connect attempt failed (`a` = errno; UV_ETIMEDOUT for the connect deadline); call connect() again or destroy(). */
  CONNECT_FAILED: 3,
  /** A relayed pair closed by itself (`a` = bytes client → upstream, `b` = bytes upstream → client). */
  CLOSED: 4,
  /** Accepting failed (`a` = errno, e.g. EMFILE; id 0): nothing was accepted, the listener goes on. */
  ACCEPT_ERROR: 5,
} as const;

/** The engine's one callback into JavaScript. */
export type RelayEventFn = (kind: number, id: number, a: number, b: number, data: Buffer | undefined) => void;

/**
 * One engine (one per proxy): it accepts on its listener, reads each client until JavaScript has
 * routed it, connects where it is told, and relays. Ids are reused once a connection is closed.
 * Methods taking an id ignore unknown or closed ids.
 */
export interface NativeRelay {
  /** Bind and listen on an IP address: 0, or a negative errno. */
  listen(host: string, port: number, backlog: number): number;
  /** The bound `[address, port, family]` while listening. */
  address(): [string, number, string] | undefined;
  /** Stop listening (open connections are not touched). */
  unlisten(): void;
  /**
   * Connect the client `id` (its hello complete) to `host:port` (an IP address), from
   * `sourceAddress` if given: 0 (the outcome comes as a relayed pair or {@link RelayEvent.CONNECT_FAILED}),
   * or a negative errno when the attempt could not start (no event then).
   */
  connect(id: number, host: string, port: number, timeoutMs: number, sourceAddress: string | undefined): number;
  /** A client's hello is complete: no more {@link RelayEvent.DATA} for it and no hello deadline (later bytes are kept for its upstream). */
  pause(id: number): void;
  /** Close a connection now (no event); its byte counts. */
  destroy(id: number): [number, number] | undefined;
  /** Bytes forwarded so far: [client → upstream (the hello included), upstream → client]. */
  bytes(id: number): [number, number] | undefined;
  /** Whether the connection is relaying (connected to its upstream). */
  connected(id: number): boolean;
  /** `address:port` of the client. */
  peer(id: number): string | undefined;
  /** Connections accepted that JavaScript has not heard of yet. */
  readonly unreported: number;
  /** Close the connections JavaScript has not heard of (no events); how many. */
  destroyUnreported(): number;
}

/** The addon's class: `new Relay(onevent, helloTimeoutMs, maxPeekBytes)`. */
export type NativeRelayClass = new (onevent: RelayEventFn, helloTimeoutMs: number, maxPeekBytes: number) => NativeRelay;

/** Where the addon is expected (next to this module once built). */
export const NATIVE_RELAY_PATH = fileURLToPath(new URL('./relay.node', import.meta.url));

let loaded: { relay: NativeRelayClass | undefined; why: string } | undefined;

/**
 * The addon's class, or `undefined` with the reason (`why`) when it is not built or does not load.
 * Loaded once per process (Node loads an addon once anyway; nothing else is cached).
 */
export function loadNativeRelay(): { relay: NativeRelayClass | undefined; why: string } {
  if (loaded) return loaded;
  if (!existsSync(NATIVE_RELAY_PATH)) {
    loaded = { relay: undefined, why: `${NATIVE_RELAY_PATH} is not built (scripts/build-native.sh needs a C compiler and Node's headers)` };
    return loaded;
  }
  try {
    const mod = createRequire(import.meta.url)(NATIVE_RELAY_PATH) as { Relay?: unknown };
    if (typeof mod.Relay !== 'function') loaded = { relay: undefined, why: `${NATIVE_RELAY_PATH} does not export Relay` };
    else loaded = { relay: mod.Relay as NativeRelayClass, why: '' };
  } catch (err) {
    loaded = { relay: undefined, why: `${NATIVE_RELAY_PATH} did not load: ${err instanceof Error ? err.message : String(err)}` };
  }
  return loaded;
}
