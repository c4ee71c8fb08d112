/**
 * Direct access to libuv TCP handles as Node wraps them (`process.binding('tcp_wrap')` and
 * `process.binding('stream_wrap')`), for the mesh gateway's data plane.
 *
 * Why: a `net.Socket` is a full stream (readable and writable state, event emitters, next-tick
 * scheduling, a fresh 64 KiB buffer per read). A TLS-passthrough proxy needs none of it: it moves
 * bytes from one descriptor to another. Driving the handles directly costs about half the CPU per
 * proxied connection and reads into fixed per-connection buffers (see bench/README.md, "Built-in
 * mesh gateway vs nginx").
 *
 * These bindings are Node internals (documented as deprecated since Node 10 but still provided,
 * `DEP0111`; `--pending-deprecation` prints a warning). They are probed once, every member used
 * is checked, and {@link loadTcpHandles} returns `undefined` when anything is missing — the
 * gateway then uses its `net.Socket` data plane, which behaves the same. Node 20 is what
 * meshfed supports and tests.
 */

/** `uv_connect_t` request; `oncomplete(status, handle)` when the connect finishes. */
export interface TcpConnectReq {
  oncomplete: (this: TcpConnectReq, status: number, handle: TcpHandle) => void;
}

/** `uv_write_t` request; `oncomplete(status)` only when the write did not finish at once. */
export interface TcpWriteReq {
  handle: TcpHandle | undefined;
  oncomplete: (this: TcpWriteReq, status: number) => void;
}

/** `uv_shutdown_t` request; `oncomplete(status)`, if set, when the write side is shut down. */
export interface TcpShutdownReq {
  handle: TcpHandle | undefined;
  oncomplete?: (this: TcpShutdownReq, status: number) => void;
}

/** Filled in by `getsockname`/`getpeername`. */
export interface SockAddr {
  address?: string;
  family?: string;
  port?: number;
}

/** A libuv TCP handle (listening or connected). Methods return 0 or a negative errno. */
export interface TcpHandle {
  /** Listening handles: a connection was accepted (`status < 0`: accept failed). */
  onconnection: ((this: TcpHandle, status: number, client: TcpHandle | undefined) => void) | undefined;
  /** Reading handles: data arrived in the user buffer, or end-of-stream/error (see {@link TcpHandleApi.lastRead}). */
  onread: ((this: TcpHandle) => void) | undefined;
  bind(address: string, port: number): number;
  bind6(address: string, port: number, flags: number): number;
  listen(backlog: number): number;
  connect(req: TcpConnectReq, address: string, port: number): number;
  connect6(req: TcpConnectReq, address: string, port: number): number;
  readStart(): number;
  readStop(): number;
  /** Reads go into `buffer` from now on (no allocation per read). */
  useUserBuffer(buffer: Uint8Array): void;
  writeBuffer(req: TcpWriteReq, data: Uint8Array): number;
  shutdown(req: TcpShutdownReq): number;
  setNoDelay(on: boolean): number;
  getsockname(out: SockAddr): number;
  getpeername(out: SockAddr): number;
  close(callback?: () => void): void;
}

/** What the gateway uses of the bindings. */
export interface TcpHandleApi {
  /** A handle for a connection (to call `connect` on). */
  newSocket(): TcpHandle;
  /** A handle for a listener. */
  newServer(): TcpHandle;
  newConnectReq(): TcpConnectReq;
  newWriteReq(): TcpWriteReq;
  newShutdownReq(): TcpShutdownReq;
  /** Inside `onread`: bytes read (> 0), or a negative errno ({@link UV_EOF} at end of stream). */
  lastRead(): number;
  /** After `writeBuffer`: whether the write is still in flight (its `oncomplete` will be called). */
  lastWriteAsync(): boolean;
}

/** libuv's end-of-stream code. */
export const UV_EOF = -4095;

interface TcpWrapBinding {
  TCP: new (type: number) => TcpHandle;
  TCPConnectWrap: new () => TcpConnectReq;
  constants: { SOCKET: number; SERVER: number };
}

interface StreamWrapBinding {
  WriteWrap: new () => TcpWriteReq;
  ShutdownWrap: new () => TcpShutdownReq;
  streamBaseState: Int32Array;
  kReadBytesOrError: number;
  kLastWriteWasAsync: number;
}

const HANDLE_METHODS = ['bind', 'bind6', 'listen', 'connect', 'connect6', 'readStart', 'readStop', 'useUserBuffer', 'writeBuffer', 'shutdown', 'setNoDelay', 'getsockname', 'getpeername', 'close'] as const;

let probed: { api: TcpHandleApi | undefined } | undefined;

function probe(): TcpHandleApi | undefined {
  const binding = (process as unknown as { binding?: (name: string) => unknown }).binding;
  if (typeof binding !== 'function') return undefined;
  let tcp: TcpWrapBinding;
  let stream: StreamWrapBinding;
  try {
    tcp = binding.call(process, 'tcp_wrap') as TcpWrapBinding;
    stream = binding.call(process, 'stream_wrap') as StreamWrapBinding;
  } catch {
    return undefined;
  }
  if (typeof tcp.TCP !== 'function' || typeof tcp.TCPConnectWrap !== 'function' || typeof tcp.constants?.SOCKET !== 'number' || typeof tcp.constants.SERVER !== 'number') return undefined;
  if (typeof stream.WriteWrap !== 'function' || typeof stream.ShutdownWrap !== 'function' || !(stream.streamBaseState instanceof Int32Array)) return undefined;
  if (typeof stream.kReadBytesOrError !== 'number' || typeof stream.kLastWriteWasAsync !== 'number') return undefined;
  const proto = tcp.TCP.prototype as unknown as Record<string, unknown>;
  if (HANDLE_METHODS.some((m) => typeof proto[m] !== 'function')) return undefined;
  const { TCP, TCPConnectWrap, constants } = tcp;
  const { WriteWrap, ShutdownWrap, streamBaseState: state, kReadBytesOrError, kLastWriteWasAsync } = stream;
  return {
    newSocket: () => new TCP(constants.SOCKET),
    newServer: () => new TCP(constants.SERVER),
    newConnectReq: () => new TCPConnectWrap(),
    newWriteReq: () => new WriteWrap(),
    newShutdownReq: () => new ShutdownWrap(),
    lastRead: () => state[kReadBytesOrError] ?? 0,
    lastWriteAsync: () => state[kLastWriteWasAsync] !== 0,
  };
}

/**
 * The handle API of this Node, or `undefined` when its bindings are not what the gateway expects.
 * Probed once per process (the bindings are process-wide and immutable; nothing else is cached).
 */
export function loadTcpHandles(): TcpHandleApi | undefined {
  probed ??= { api: probe() };
  return probed.api;
}
