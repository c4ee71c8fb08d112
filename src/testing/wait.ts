/** Polling helpers for tests: wait for a condition with a deadline, never a fixed sleep. */

/** Poll `cond` until it returns a truthy value or `timeoutMs` passes (then throw `message`). */
export async function waitFor<T>(cond: () => T | Promise<T>, options: { timeoutMs?: number; intervalMs?: number; message?: string } = {}): Promise<T> {
  const deadline = Date.now() + (options.timeoutMs ?? 10_000);
  const interval = options.intervalMs ?? 10;
  let last: unknown;
  for (;;) {
    try {
      const v = await cond();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      const why = last instanceof Error ? `: last error ${last.message}` : '';
      throw new Error(`${options.message ?? 'condition not met'} within ${options.timeoutMs ?? 10_000} ms${why}`);
    }
    await new Promise((r) => setTimeout(r, interval));
  }
}
