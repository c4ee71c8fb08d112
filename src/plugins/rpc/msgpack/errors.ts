/**
 * Error codes of the msgpack codec (`MESHFED_ERR_MSGPACK_…`) and of msgpack-RPC calls
 * (`MESHFED_ERR_RPC_…`). Every error raised here is a {@link MeshfedError} attributed to the
 * `rpc` plugin, with a message that says what was expected and, for decode errors, where.
 */
import { MeshfedError } from '../../../core/errors.js';

/** Stable error codes of the msgpack codec. */
export const MsgpackErrorCode = Object.freeze({
  /** The bytes are not valid msgpack, or a value does not fit the schema it is decoded with. */
  DECODE: 'MESHFED_ERR_MSGPACK_DECODE',
  /** The input ended inside a value (or a length claims more bytes than the input holds). */
  TRUNCATED: 'MESHFED_ERR_MSGPACK_TRUNCATED',
  /** A decoder limit was hit: nesting depth, collection length or object size. */
  LIMIT: 'MESHFED_ERR_MSGPACK_LIMIT',
  /** A value given to `encode` does not fit its schema (wrong type, out of range). */
  ENCODE: 'MESHFED_ERR_MSGPACK_ENCODE',
  /** A schema definition is invalid (duplicate field, bad name). */
  SCHEMA: 'MESHFED_ERR_MSGPACK_SCHEMA',
  /** A GoTime was built or parsed from invalid input, or cannot be marshalled as Go would. */
  TIME: 'MESHFED_ERR_MSGPACK_TIME',
} as const);

/** A value of {@link MsgpackErrorCode}. */
export type MsgpackErrorCodeValue = (typeof MsgpackErrorCode)[keyof typeof MsgpackErrorCode];

/** Stable error codes of msgpack-RPC calls and serving. */
export const MsgpackRpcErrorCode = Object.freeze({
  /**
   * The server answered with an error: the message is the server's `Error` text, exactly
   * (e.g. `rpc: can't find service Foo.Bar`, or whatever a handler returned).
   */
  REMOTE: 'MESHFED_ERR_RPC_REMOTE',
  /** The connection closed or failed (or the client was closed) before the reply arrived. */
  CONN_CLOSED: 'MESHFED_ERR_RPC_CONN_CLOSED',
  /** The call did not complete before its deadline (same code as the rpc plugin's timeouts). */
  TIMEOUT: 'MESHFED_ERR_RPC_TIMEOUT',
  /** The peer sent bytes that are not a msgpack-RPC stream; the connection is closed. */
  PROTOCOL: 'MESHFED_ERR_RPC_PROTOCOL',
  /** An endpoint definition is invalid or registered twice. */
  ENDPOINT: 'MESHFED_ERR_RPC_ENDPOINT',
} as const);

/** A value of {@link MsgpackRpcErrorCode}. */
export type MsgpackRpcErrorCodeValue = (typeof MsgpackRpcErrorCode)[keyof typeof MsgpackRpcErrorCode];

/** A codec {@link MeshfedError}, attributed to the `rpc` plugin. */
export function msgpackError(code: MsgpackErrorCodeValue, message: string, cause?: unknown): MeshfedError {
  return new MeshfedError(code, message, { cause, plugin: 'rpc' });
}

/** An RPC {@link MeshfedError}, attributed to the `rpc` plugin. */
export function rpcError(code: MsgpackRpcErrorCodeValue, message: string, cause?: unknown): MeshfedError {
  return new MeshfedError(code, message, { cause, plugin: 'rpc' });
}

/**
 * The error a server returned in its response header. `message` is the server's text, exactly,
 * so callers can compare it with Go's (`err.message === "rpc: can't find method X.Y"`).
 */
export class RemoteRpcError extends MeshfedError {
  /** The `Service.Method` that was called. */
  readonly method: string;

  constructor(message: string, method: string) {
    super(MsgpackRpcErrorCode.REMOTE, message, { plugin: 'rpc' });
    this.name = 'RemoteRpcError';
    this.method = method;
  }
}

/**
 * A codec error located in a value: `path` is the field path (`State.MeshGateways[0].Node`),
 * prepended as the error travels up through containers.
 * @internal
 */
export class LocatedMsgpackError extends MeshfedError {
  /** Path segments, outermost first. */
  readonly segments: string[];
  readonly detail: string;
  readonly offset: number | undefined;

  constructor(code: MsgpackErrorCodeValue, detail: string, offset: number | undefined, cause?: unknown) {
    super(code, detail, { cause, plugin: 'rpc' });
    this.name = 'MeshfedError';
    this.detail = detail;
    this.offset = offset;
    this.segments = [];
    this.#refresh();
  }

  /** Prepend a path segment (`Field` or `[3]` or `["key"]`) and rebuild the message. */
  within(segment: string): this {
    this.segments.unshift(segment);
    this.#refresh();
    return this;
  }

  #refresh(): void {
    let path = '';
    for (const s of this.segments) path += s.startsWith('[') ? s : path ? `.${s}` : s;
    const where = [path ? `at ${path}` : '', this.offset !== undefined ? `byte ${this.offset}` : ''].filter(Boolean).join(', ');
    this.message = where ? `${this.detail} (${where})` : this.detail;
  }
}
