/**
 * Time for components with timers: they take a {@link Clock} instead of the globals, so tests can
 * drive them with `FakeClock` (`meshfed/testing`) and production passes {@link systemClock}.
 */

/** The time source and timer API components take instead of the globals. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Run `fn` after `ms`; returns a handle for {@link Clock.clearTimeout}. Timers never keep the process alive. */
  setTimeout(fn: () => void, ms: number): unknown;
  /** Cancel a timer. */
  clearTimeout(handle: unknown): void;
}

/** The real clock (timers are unref'd). */
export const systemClock: Clock = Object.freeze({
  now: () => Date.now(),
  setTimeout: (fn: () => void, ms: number) => setTimeout(fn, ms).unref(),
  clearTimeout: (h: unknown) => clearTimeout(h as NodeJS.Timeout),
});
