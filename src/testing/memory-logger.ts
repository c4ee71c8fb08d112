/** A logger that records entries, for asserting "logged once" in tests. */
import { createLogger, type LogEntry, type LogFields, type Logger, type LogLevel } from '../core/logger.js';

/** A {@link Logger} plus the entries it (and its children) recorded. */
export interface MemoryLogger extends Logger {
  /** Everything logged so far, oldest first, children included. */
  readonly entries: readonly LogEntry[];
}

function wrap(inner: Logger, entries: LogEntry[]): MemoryLogger {
  return {
    entries,
    level: inner.level,
    trace: (m: string, f?: LogFields) => inner.trace(m, f),
    debug: (m: string, f?: LogFields) => inner.debug(m, f),
    info: (m: string, f?: LogFields) => inner.info(m, f),
    warn: (m: string, f?: LogFields) => inner.warn(m, f),
    error: (m: string, f?: LogFields) => inner.error(m, f),
    child: (b: LogFields) => wrap(inner.child(b), entries),
    isLevelEnabled: (l: LogLevel) => inner.isLevelEnabled(l),
  };
}

/** Create a recording logger (default level `trace`; `silent` records nothing). */
export function createMemoryLogger(level: LogLevel = 'trace'): MemoryLogger {
  const entries: LogEntry[] = [];
  return wrap(createLogger({ level, sink: (e) => entries.push(e) }), entries);
}
