/**
 * Loader of the mesh gateway's optional native engine (`relay.c` and `fastpath.h`, a Node-API
 * addon built by `scripts/build-native.sh` next to this module as `relay.node`), the `native` data
 * plane. Linux only (epoll).
 *
 * The engine runs a thread of its own with an edge-triggered epoll loop and owns the sockets: it
 * accepts, reads each client's first bytes, runs the hello and connect deadlines, connects and
 * relays. It parses the ClientHello itself and routes the server names that the routes pushed with
 * {@link NativeRelay.setRoutes} send to a cluster of IP endpoints — endpoint choice, failover and
 * relaying included — without JavaScript hearing of the connection (its counters come from
 * {@link NativeRelay.engineStats}). Everything else is handed to JavaScript with the bytes read so
 * far (proxy.ts decides: ClientHello verdicts, refusals, DNS, logs), as are connections the engine
 * cannot finish itself. Events reach JavaScript on Node's loop, batched, in order. When the addon
 * is missing (no C compiler when meshfed was built) or fails to load, the gateway uses its
 * `handles` plane, which behaves the same.
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
  /** Accepting failed (`a` = errno, e.g. EMFILE; id 0): nothing was accepted, the listener goes on (it retries when a connection closes). */
  ACCEPT_ERROR: 5,
  /**
   * A connection the engine routed itself found no endpoint that accepted it (`a` = the last errno,
   * `b` = the cluster's stats slot, `data` = the client's bytes so far, its ClientHello first); the
   * first event of that connection. The client is still open: refuse it (destroy()).
   */
  FAST_FAILED: 6,
  /** Not listening, and the engine's own connections (or all connections) are gone: check whether draining is done. */
  IDLE: 7,
  /** A client whose bytes JavaScript has (DATA), and which is not connected, ended its stream; the end is kept for its upstream if it gets one. */
  CLIENT_EOF: 8,
} as const;

/** The engine's one callback into JavaScript. */
export type RelayEventFn = (kind: number, id: number, a: number, b: number, data: Buffer | undefined) => void;

/**
 * One engine (one per proxy, a thread while it listens or holds connections): it accepts on its
 * listener, routes what its fast routes cover, hands the rest to JavaScript, connects where it is
 * told, and relays. Ids are never reused for another connection (they carry a generation).
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
   * Replace the routes the engine may take by itself (`encodeFastRoutes`; connections already
   * routed keep their endpoints). Throws when the table does not decode.
   */
  setRoutes(routes: Buffer): void;
  /**
   * Connect the client `id` (its hello complete) to `host:port` (an IP address), from
   * `sourceAddress` if given: 0 (the outcome comes as a relayed pair or {@link RelayEvent.CONNECT_FAILED}),
   * a negative errno when the attempt could not start (no event then), or UV_ECANCELED when the
   * connection has closed meanwhile (its {@link RelayEvent.CLIENT_END} is on the way).
   */
  connect(id: number, host: string, port: number, timeoutMs: number, sourceAddress: string | undefined): number;
  /** A client's hello is complete: no more {@link RelayEvent.DATA} for it and no hello deadline (later bytes are kept for its upstream). */
  pause(id: number): void;
  /** Close a connection now (no event for it follows, even one already queued); its byte counts. */
  destroy(id: number): [number, number] | undefined;
  /** Bytes forwarded so far: [client → upstream (the hello included), upstream → client]. */
  bytes(id: number): [number, number] | undefined;
  /** Whether the connection is relaying (connected to its upstream). */
  connected(id: number): boolean;
  /** `address:port` of the client. */
  peer(id: number): string | undefined;
  /** Open connections JavaScript has not heard of: still peeking, or routed by the engine. */
  readonly unreported: number;
  /**
   * Close the connections JavaScript has not heard of (no events): how many of them were still
   * peeking (routed ones are counted as done in {@link engineStats}).
   */
  destroyUnreported(): number;
  /**
   * Counters of the connections JavaScript never heard of: `[open, done, spliced, bytesUp,
   * bytesDown]`, then five per cluster stats slot (`connections, active, connectFailures, bytesUp,
   * bytesDown`); byte counts include open connections.
   */
  engineStats(): number[];
}

/**
 * The addon's class: `new Relay(onevent, helloTimeoutMs, maxPeekBytes, maxHelloBytes, random,
 * sourceAddress)` — `maxPeekBytes` caps what is kept before an upstream exists, `maxHelloBytes` is
 * the ClientHello limit of its own parser, `random` picks a random first endpoint instead of round
 * robin, `sourceAddress` binds its own upstream connections.
 */
export type NativeRelayClass = new (onevent: RelayEventFn, helloTimeoutMs: number, maxPeekBytes: number, maxHelloBytes: number, random: boolean, sourceAddress: string | undefined) => NativeRelay;

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
