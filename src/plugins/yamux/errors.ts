/**
 * Error codes of the yamux multiplexer (`MESHFED_ERR_YAMUX_…`). Every error it raises is a
 * {@link MeshfedError} with one of these codes, attributed to the `yamux` plugin.
 */
import { MeshfedError } from '../../core/errors.js';

/** Stable error codes of the yamux multiplexer. */
export const YamuxErrorCode = Object.freeze({
  /** Session options are invalid (negative backlog, window below 256 KiB, …). */
  OPTIONS: 'MESHFED_ERR_YAMUX_OPTIONS',
  /** The peer broke the protocol (bad version or type, window overflow, unknown stream, duplicate SYN …). */
  PROTOCOL: 'MESHFED_ERR_YAMUX_PROTOCOL',
  /** The peer sent a go away with the protocol-error or internal-error code (or an unknown code). */
  REMOTE_GOAWAY_ERROR: 'MESHFED_ERR_YAMUX_REMOTE_GOAWAY_ERROR',
  /** `open()` after the peer sent a normal go away: it accepts no new streams. */
  REMOTE_GOAWAY: 'MESHFED_ERR_YAMUX_REMOTE_GOAWAY',
  /** The session is closed (locally, by the peer, or because of an error: see `cause`). */
  SESSION_CLOSED: 'MESHFED_ERR_YAMUX_SESSION_CLOSED',
  /** The underlying connection failed or ended while streams were open. */
  CONNECTION: 'MESHFED_ERR_YAMUX_CONNECTION',
  /** The peer reset the stream (RST), or refused to open it (accept backlog full, going away). */
  STREAM_RESET: 'MESHFED_ERR_YAMUX_STREAM_RESET',
  /** An opened stream was not acknowledged within `streamOpenTimeoutMs`; the session is closed. */
  OPEN_TIMEOUT: 'MESHFED_ERR_YAMUX_OPEN_TIMEOUT',
  /** Writes stayed blocked longer than `connectionWriteTimeoutMs`; the session is closed. */
  WRITE_TIMEOUT: 'MESHFED_ERR_YAMUX_WRITE_TIMEOUT',
  /** A ping got no reply within `connectionWriteTimeoutMs`. */
  PING_TIMEOUT: 'MESHFED_ERR_YAMUX_PING_TIMEOUT',
  /** A keepalive ping got no reply; the session is closed. */
  KEEPALIVE_TIMEOUT: 'MESHFED_ERR_YAMUX_KEEPALIVE_TIMEOUT',
  /** Every stream id of this side was used; open a new session. */
  STREAMS_EXHAUSTED: 'MESHFED_ERR_YAMUX_STREAMS_EXHAUSTED',
  /** `accept()` on a session created with an `onStream` callback (streams go to the callback). */
  ACCEPT_WITH_CALLBACK: 'MESHFED_ERR_YAMUX_ACCEPT_WITH_CALLBACK',
} as const);

/** A value of {@link YamuxErrorCode}. */
export type YamuxErrorCodeValue = (typeof YamuxErrorCode)[keyof typeof YamuxErrorCode];

/** A {@link MeshfedError} with a yamux code, attributed to the `yamux` plugin. */
export function yamuxError(code: YamuxErrorCodeValue, message: string, cause?: unknown): MeshfedError {
  return new MeshfedError(code, message, { cause, plugin: 'yamux' });
}

/** Whether `err` is a MeshfedError carrying the given yamux code. */
export function isYamuxError(err: unknown, code?: YamuxErrorCodeValue): err is MeshfedError {
  return err instanceof MeshfedError && (code === undefined ? err.code.startsWith('MESHFED_ERR_YAMUX_') : err.code === code);
}
