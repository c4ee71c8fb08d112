/**
 * Structured logging, injected per component (`logger.child({ component: 'wanfed' })`).
 * Library code never writes to the console; it logs through a {@link Logger} it was given.
 * The interface is a subset of pino's, so a pino instance can be passed where a Logger is wanted.
 */

/** Log levels, lowest first. `silent` logs nothing. */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'silent'] as const;
/** One of {@link LOG_LEVELS}. */
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Structured fields attached to a log line. */
export type LogFields = Readonly<Record<string, unknown>>;

/** A structured logger. Field values named like secrets (`token`, `*_token`, `key_pem`) are redacted. */
export interface Logger {
  /** The lowest level this logger emits. */
  readonly level: LogLevel;
  /** Detailed protocol tracing. */
  trace(msg: string, fields?: LogFields): void;
  /** Diagnostics for developers and operators chasing a problem. */
  debug(msg: string, fields?: LogFields): void;
  /** Normal operation worth noting: started, listening, joined. */
  info(msg: string, fields?: LogFields): void;
  /** Something is wrong but service continues (a bad packet dropped, a retry). */
  warn(msg: string, fields?: LogFields): void;
  /** Something failed that an operator must look at. */
  error(msg: string, fields?: LogFields): void;
  /** A logger that adds `bindings` to every line (e.g. `{ component: 'rpc' }`). */
  child(bindings: LogFields): Logger;
  /** Whether a line at `level` would be written. */
  isLevelEnabled(level: LogLevel): boolean;
}

/** One emitted log entry, as handed to a {@link LogSink}. */
export interface LogEntry {
  readonly time: Date;
  readonly level: Exclude<LogLevel, 'silent'>;
  readonly msg: string;
  readonly fields: LogFields;
}

/** Where log entries go. */
export type LogSink = (entry: LogEntry) => void;

/** Options of {@link createLogger}. */
export interface CreateLoggerOptions {
  /** Lowest level written (default `info`). */
  readonly level?: LogLevel;
  /** `text` (human, Consul-like) or `json` (one object per line). Default `text`. */
  readonly format?: 'text' | 'json';
  /** Stream to write lines to (default `process.stderr`). */
  readonly stream?: { write(chunk: string): unknown };
  /** A custom sink instead of a stream (tests, adapters). Overrides `format` and `stream`. */
  readonly sink?: LogSink;
  /** Fields added to every line. */
  readonly bindings?: LogFields;
}

const SECRET_KEY = /(^|_)(token|secret|password|key_pem|secret_?id)$|^(tokens|secretid|encrypt)$/i;

function levelIndex(level: LogLevel): number {
  return LOG_LEVELS.indexOf(level);
}

/** Redact inside plain objects and arrays (other values are returned as they are). */
function redactValue(v: unknown): unknown {
  if (Array.isArray(v)) {
    const mapped = v.map(redactValue);
    return mapped.some((x, i) => x !== v[i]) ? mapped : v;
  }
  if (v && typeof v === 'object' && !(v instanceof Error) && Object.getPrototypeOf(v) === Object.prototype) return redact(v as LogFields);
  return v;
}

/** Replace values of secret-looking keys (recursively, through objects and arrays) so tokens never reach a log. */
export function redact(fields: LogFields): LogFields {
  let out: Record<string, unknown> | undefined;
  for (const [k, v] of Object.entries(fields)) {
    const nv = SECRET_KEY.test(k) && v !== undefined && v !== null && v !== '' ? '[redacted]' : redactValue(v);
    if (nv !== v) {
      out ??= { ...fields };
      out[k] = nv;
    }
  }
  return out ?? fields;
}

function formatValue(v: unknown): string {
  if (v instanceof Error) return JSON.stringify(v.message);
  if (typeof v === 'string') return /[\s="]/.test(v) || v === '' ? JSON.stringify(v) : v;
  if (typeof v === 'bigint') return v.toString();
  return JSON.stringify(v) ?? String(v);
}

/** Render an entry the way the CLI prints it: `time [LEVEL] component: msg k=v …`. */
export function formatText(entry: LogEntry): string {
  const { component, ...rest } = entry.fields;
  const pad = entry.level.toUpperCase().padEnd(5);
  const kv = Object.entries(rest)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${formatValue(v)}`)
    .join(' ');
  const comp = typeof component === 'string' ? `${component}: ` : '';
  return `${entry.time.toISOString()} [${pad}] ${comp}${entry.msg}${kv ? ` ${kv}` : ''}\n`;
}

function formatJson(entry: LogEntry): string {
  const fields: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(entry.fields)) fields[k] = v instanceof Error ? { message: v.message, code: (v as { code?: unknown }).code } : v;
  return `${JSON.stringify({ time: entry.time.toISOString(), level: entry.level, msg: entry.msg, ...fields })}\n`;
}

class SinkLogger implements Logger {
  readonly level: LogLevel;
  readonly #sink: LogSink;
  readonly #bindings: LogFields;
  readonly #min: number;

  constructor(level: LogLevel, sink: LogSink, bindings: LogFields) {
    this.level = level;
    this.#sink = sink;
    this.#bindings = bindings;
    this.#min = levelIndex(level);
  }

  #log(level: Exclude<LogLevel, 'silent'>, msg: string, fields?: LogFields): void {
    if (levelIndex(level) < this.#min) return;
    const merged = fields ? { ...this.#bindings, ...fields } : this.#bindings;
    this.#sink({ time: new Date(), level, msg, fields: redact(merged) });
  }

  trace(msg: string, fields?: LogFields): void { this.#log('trace', msg, fields); }
  debug(msg: string, fields?: LogFields): void { this.#log('debug', msg, fields); }
  info(msg: string, fields?: LogFields): void { this.#log('info', msg, fields); }
  warn(msg: string, fields?: LogFields): void { this.#log('warn', msg, fields); }
  error(msg: string, fields?: LogFields): void { this.#log('error', msg, fields); }
  child(bindings: LogFields): Logger {
    return new SinkLogger(this.level, this.#sink, { ...this.#bindings, ...bindings });
  }
  isLevelEnabled(level: LogLevel): boolean {
    return level !== 'silent' && levelIndex(level) >= this.#min;
  }
}

/** Create a structured logger writing text or JSON lines to a stream (stderr by default). */
export function createLogger(options: CreateLoggerOptions = {}): Logger {
  const level = options.level ?? 'info';
  let sink = options.sink;
  if (!sink) {
    const stream = options.stream ?? process.stderr;
    const fmt = options.format === 'json' ? formatJson : formatText;
    sink = (entry) => { stream.write(fmt(entry)); };
  }
  return new SinkLogger(level, sink, options.bindings ?? {});
}

/** A logger that writes nothing. */
export function silentLogger(): Logger {
  return createLogger({ level: 'silent', sink: () => undefined });
}

/** Whether a string names a log level. */
export function isLogLevel(s: string): s is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(s);
}

/**
 * The logger used when the caller gives none: quiet (`warn`) under Node's test runner, `info`
 * otherwise; `MESHFED_LOG_LEVEL` overrides both.
 */
export function defaultLogger(): Logger {
  const env = process.env['MESHFED_LOG_LEVEL'];
  if (env && isLogLevel(env)) return createLogger({ level: env });
  return createLogger({ level: process.env['NODE_TEST_CONTEXT'] ? 'warn' : 'info' });
}
