/**
 * Timing primitives of the federation loops: an abortable sleep on an injectable clock, a token
 * bucket (rounds per second with a burst), and the two backoff shapes the spec uses —
 * Consul's `retry.Waiter` for replication (2^(n-1) s capped, plus up to 10 % jitter) and
 * `retryLoopBackoff` for leader loops (2^n s until 256 s).
 */
import type { Clock } from '../../core/clock.js';
import { abortError } from '../../core/errors.js';

/** Wait `ms` on `clock`, or reject when `signal` aborts. */
export function sleep(ms: number, signal: AbortSignal, clock: Clock): Promise<void> {
  if (signal.aborted) return Promise.reject(abortError(signal, 'sleep'));
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      clock.clearTimeout(timer);
      reject(abortError(signal, 'sleep'));
    };
    const timer = clock.setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** A token bucket: `rate` tokens per second, at most `burst` saved up. */
export class TokenBucket {
  readonly #rate: number;
  readonly #burst: number;
  readonly #clock: Clock;
  #tokens: number;
  #at: number;

  /** Full at start. `rate` ≤ 0 or Infinity means unlimited. */
  constructor(rate: number, burst: number, clock: Clock) {
    this.#rate = rate;
    this.#burst = Math.max(1, burst);
    this.#clock = clock;
    this.#tokens = this.#burst;
    this.#at = clock.now();
  }

  /** Take one token, waiting for it if the bucket is empty. */
  async take(signal: AbortSignal): Promise<void> {
    if (!(this.#rate > 0) || this.#rate === Infinity) return;
    const now = this.#clock.now();
    this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#at) / 1000) * this.#rate);
    this.#at = now;
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      return;
    }
    const waitMs = Math.ceil(((1 - this.#tokens) / this.#rate) * 1000);
    await sleep(waitMs, signal, this.#clock);
    this.#tokens = 0;
    this.#at = this.#clock.now();
  }
}

/** Replication's waiter: failure n waits 2^(n-1) s (capped at `maxMs`) plus up to 10 % jitter. */
export function replicationBackoffMs(failures: number, maxMs: number, random: () => number): number {
  if (failures <= 0) return 0;
  const base = Math.min(maxMs, 1000 * 2 ** Math.min(30, failures - 1));
  return Math.round(base + random() * base * 0.1);
}

/** `retryLoopBackoff`: 2^n s after the n-th consecutive failure, at most 256 s. */
export function loopBackoffMs(failures: number): number {
  if (failures <= 0) return 0;
  return 1000 * Math.min(256, 2 ** Math.min(8, failures));
}
