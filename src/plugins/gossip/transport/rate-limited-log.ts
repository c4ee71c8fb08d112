/**
 * Warnings about bad network input, rate-limited per kind: a peer (or an attacker) sending the
 * same bad packet a thousand times a second must not flood the log (STYLE.md §8: log it once).
 */
import type { LogFields, Logger } from '../../../core/logger.js';

/** Options of {@link RateLimitedLog}. */
export interface RateLimitedLogOptions {
  /** Log a given kind at most once per this many ms (default 60 000). */
  readonly intervalMs?: number;
  /** Milliseconds clock, injectable for tests (default `Date.now`). */
  readonly now?: () => number;
}

/**
 * Logs a warning the first time a `kind` is seen, then at most once per interval, adding how many
 * identical warnings were `suppressed` in between. Uses no timers, so it never keeps a process alive.
 */
export class RateLimitedLog {
  readonly #logger: Logger;
  readonly #intervalMs: number;
  readonly #now: () => number;
  readonly #seen = new Map<string, { last: number; suppressed: number }>();

  constructor(logger: Logger, options: RateLimitedLogOptions = {}) {
    this.#logger = logger;
    this.#intervalMs = options.intervalMs ?? 60_000;
    this.#now = options.now ?? Date.now;
  }

  /** Warn `msg` unless a warning of the same `kind` was logged less than an interval ago. */
  warn(kind: string, msg: string, fields: LogFields = {}): void {
    const now = this.#now();
    const seen = this.#seen.get(kind);
    if (seen && now - seen.last < this.#intervalMs) {
      seen.suppressed++;
      return;
    }
    const suppressed = seen?.suppressed ?? 0;
    this.#seen.set(kind, { last: now, suppressed: 0 });
    this.#logger.warn(msg, suppressed > 0 ? { ...fields, suppressed } : fields);
  }
}
