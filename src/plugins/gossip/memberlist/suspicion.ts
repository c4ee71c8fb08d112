/**
 * Lifeguard pieces of memberlist: the local health score that stretches probe timeouts when
 * this node itself is slow ("awareness"), and the suspicion timer that shrinks from `max` toward
 * `min` as independent peers confirm a suspicion (memberlist `suspicion.go`, `awareness.go`).
 */
import type { Clock } from '../../../core/clock.js';

/** The local health score: 0 is healthy, up to `max - 1`; timeouts scale by score + 1. */
export class Awareness {
  readonly #max: number;
  #score = 0;

  /** @param max memberlist's `AwarenessMaxMultiplier` (default 8). */
  constructor(max: number) {
    this.#max = Math.max(1, max);
  }

  /** Current score. */
  get score(): number {
    return this.#score;
  }

  /** Add `delta` (clamped to `[0, max - 1]`). */
  applyDelta(delta: number): void {
    this.#score = Math.min(this.#max - 1, Math.max(0, this.#score + delta));
  }

  /** `timeoutMs × (score + 1)`. */
  scale(timeoutMs: number): number {
    return timeoutMs * (this.#score + 1);
  }
}

/** memberlist's `suspicionTimeout`: `mult × max(1, log10(max(1, n))) × interval`. */
export function suspicionTimeout(suspicionMult: number, n: number, intervalMs: number): number {
  const nodeScale = Math.max(1, Math.log10(Math.max(1, n)));
  return Math.floor((suspicionMult * Math.floor(nodeScale * 1000) * intervalMs) / 1000);
}

/** memberlist's `remainingSuspicionTime` for `n` of `k` confirmations after `elapsedMs`. */
export function remainingSuspicionTime(n: number, k: number, elapsedMs: number, minMs: number, maxMs: number): number {
  const frac = Math.log(n + 1) / Math.log(k + 1);
  const raw = maxMs - frac * (maxMs - minMs);
  const timeout = Math.max(minMs, Math.floor(raw));
  return timeout - elapsedMs;
}

/**
 * One suspicion: fires `onTimeout(confirmations)` after `max` (or `min` if no confirmations are
 * expected), sooner as distinct peers confirm it.
 */
export class Suspicion {
  readonly #clock: Clock;
  readonly #k: number;
  readonly #min: number;
  readonly #max: number;
  readonly #start: number;
  readonly #confirmations = new Set<string>();
  readonly #onTimeout: (confirmations: number) => void;
  #n = 0;
  #timer: unknown;
  #fired = false;

  constructor(clock: Clock, from: string, k: number, minMs: number, maxMs: number, onTimeout: (confirmations: number) => void) {
    this.#clock = clock;
    this.#k = k;
    this.#min = minMs;
    this.#max = maxMs;
    this.#onTimeout = onTimeout;
    this.#confirmations.add(from);
    this.#start = clock.now();
    this.#timer = clock.setTimeout(() => this.#fire(), k < 1 ? minMs : maxMs);
  }

  /** Confirmations so far (not counting the first suspector). */
  get confirmations(): number {
    return this.#n;
  }

  /** A new peer confirms: true if it counted (new and below `k`), so the suspect should be re-gossiped. */
  confirm(from: string): boolean {
    if (this.#fired || this.#n >= this.#k || this.#confirmations.has(from)) return false;
    this.#confirmations.add(from);
    this.#n++;
    const remaining = remainingSuspicionTime(this.#n, this.#k, this.#clock.now() - this.#start, this.#min, this.#max);
    this.#clock.clearTimeout(this.#timer);
    if (remaining > 0) this.#timer = this.#clock.setTimeout(() => this.#fire(), remaining);
    else queueMicrotask(() => this.#fire());
    return true;
  }

  /** Cancel without firing. */
  cancel(): void {
    this.#fired = true;
    this.#clock.clearTimeout(this.#timer);
  }

  #fire(): void {
    if (this.#fired) return;
    this.#fired = true;
    this.#onTimeout(this.#n);
  }
}
