/** Options of a yamux session, their defaults and validation. */
import type { Logger } from '../../core/logger.js';
import { silentLogger } from '../../core/logger.js';
import { INITIAL_STREAM_WINDOW, MAX_U32, YAMUX_DEFAULTS } from './constants.js';
import { YamuxErrorCode, yamuxError } from './errors.js';
import type { YamuxStream } from './stream.js';

/** Options of `YamuxSession.client()` / `YamuxSession.server()`. Every field is optional. */
export interface YamuxSessionOptions {
  /**
   * Inbound streams waiting for `accept()` before further SYNs are refused with RST (default 256).
   * It also caps this side's opened-but-unacknowledged streams: `open()` waits for a slot, as
   * hashicorp/yamux does (it assumes both ends use the same backlog).
   */
  readonly acceptBacklog?: number;
  /** Interval of keepalive pings in ms (default 30 000); `0` turns keepalive off. */
  readonly keepAliveIntervalMs?: number;
  /**
   * How long writes may stay blocked on the connection, and how long a ping waits for its reply,
   * in ms (default 10 000). A blocked connection past it closes the session.
   */
  readonly connectionWriteTimeoutMs?: number;
  /** Receive window granted per stream, bytes (default and minimum 262 144; at most 2³²−1). */
  readonly maxStreamWindowSize?: number;
  /**
   * How long an opened stream may wait for the peer's ACK, in ms (default 75 000; `0` = forever).
   * On expiry the whole session is closed, as newer hashicorp/yamux does: a peer that does not
   * acknowledge opens is stuck.
   */
  readonly streamOpenTimeoutMs?: number;
  /**
   * How long a stream we half-closed (FIN sent) waits for the peer's FIN before it is reset, in ms
   * (default 300 000; `0` = forever).
   */
  readonly streamCloseTimeoutMs?: number;
  /** Logger (a `component: 'yamux'` child is used). Default: silent. */
  readonly logger?: Logger;
  /**
   * Receive inbound streams through this callback instead of `accept()`. Streams are acknowledged
   * at once and the accept backlog does not apply. A callback that throws gets its stream reset.
   */
  readonly onStream?: (stream: YamuxStream) => void;
  /** `writableHighWaterMark` of every stream, bytes (default 256 KiB): `write()` returns false above it. */
  readonly streamWriteHighWaterMark?: number;
}

/** Options with defaults filled in. */
export interface ResolvedYamuxOptions {
  readonly acceptBacklog: number;
  readonly keepAliveIntervalMs: number;
  readonly connectionWriteTimeoutMs: number;
  readonly maxStreamWindowSize: number;
  readonly streamOpenTimeoutMs: number;
  readonly streamCloseTimeoutMs: number;
  readonly logger: Logger;
  readonly onStream: ((stream: YamuxStream) => void) | undefined;
  readonly streamWriteHighWaterMark: number;
}

const MAX_TIMER_MS = 2 ** 31 - 1;

function checkInt(problems: string[], name: string, value: number, min: number, max: number, hint: string): void {
  if (!Number.isInteger(value) || value < min || value > max) problems.push(`${name} must be an integer from ${min} to ${max}${hint}, got ${String(value)}`);
}

/** Fill in defaults and validate; throws `MESHFED_ERR_YAMUX_OPTIONS` listing every problem. */
export function resolveYamuxOptions(options: YamuxSessionOptions = {}): ResolvedYamuxOptions {
  const r: ResolvedYamuxOptions = {
    acceptBacklog: options.acceptBacklog ?? YAMUX_DEFAULTS.acceptBacklog,
    keepAliveIntervalMs: options.keepAliveIntervalMs ?? YAMUX_DEFAULTS.keepAliveIntervalMs,
    connectionWriteTimeoutMs: options.connectionWriteTimeoutMs ?? YAMUX_DEFAULTS.connectionWriteTimeoutMs,
    maxStreamWindowSize: options.maxStreamWindowSize ?? YAMUX_DEFAULTS.maxStreamWindowSize,
    streamOpenTimeoutMs: options.streamOpenTimeoutMs ?? YAMUX_DEFAULTS.streamOpenTimeoutMs,
    streamCloseTimeoutMs: options.streamCloseTimeoutMs ?? YAMUX_DEFAULTS.streamCloseTimeoutMs,
    logger: (options.logger ?? silentLogger()).child({ component: 'yamux' }),
    onStream: options.onStream,
    streamWriteHighWaterMark: options.streamWriteHighWaterMark ?? 256 * 1024,
  };
  const problems: string[] = [];
  checkInt(problems, 'acceptBacklog', r.acceptBacklog, 1, 1 << 20, '');
  checkInt(problems, 'keepAliveIntervalMs', r.keepAliveIntervalMs, 0, MAX_TIMER_MS, ' (0 turns keepalive off)');
  checkInt(problems, 'connectionWriteTimeoutMs', r.connectionWriteTimeoutMs, 1, MAX_TIMER_MS, '');
  checkInt(problems, 'maxStreamWindowSize', r.maxStreamWindowSize, INITIAL_STREAM_WINDOW, MAX_U32, ' (yamux needs at least the initial 256 KiB window)');
  checkInt(problems, 'streamOpenTimeoutMs', r.streamOpenTimeoutMs, 0, MAX_TIMER_MS, ' (0 = no timeout)');
  checkInt(problems, 'streamCloseTimeoutMs', r.streamCloseTimeoutMs, 0, MAX_TIMER_MS, ' (0 = no timeout)');
  checkInt(problems, 'streamWriteHighWaterMark', r.streamWriteHighWaterMark, 1, 1 << 30, '');
  if (r.onStream !== undefined && typeof r.onStream !== 'function') problems.push('onStream must be a function');
  if (problems.length > 0) throw yamuxError(YamuxErrorCode.OPTIONS, `invalid yamux session options: ${problems.join('; ')}`);
  return r;
}
