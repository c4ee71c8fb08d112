/**
 * Blocking queries (Consul `blockingquery.Query`): run a read with a watch set; return at once if
 * its index is past `minQueryIndex`, else wait for a change to something the read touched (or
 * the wait to end, or the store to be restored), then re-run.
 */
import type { Clock } from '../../../core/clock.js';
import { abortError } from '../../../core/errors.js';
import { WatchSet } from './watch.js';
import type { QueryResult } from './types.js';

/** Default wait of a blocking query (Consul `default_query_time`). */
export const DEFAULT_QUERY_TIME_MS = 300_000;
/** Longest wait of a blocking query (Consul `max_query_time`). */
export const MAX_QUERY_TIME_MS = 600_000;
/** The jitter added to the wait is at most wait / this. */
export const JITTER_FRACTION = 16;

/** Options of one blocking query. */
export interface BlockingQueryOptions {
  /** Return as soon as the result index is above this; 0/absent = plain read, no blocking. */
  readonly minQueryIndex?: number;
  /** Longest wait in ms; 0/absent = the default (300 s), capped at the maximum (600 s); jitter is added. */
  readonly maxQueryTimeMs?: number;
  /** Aborts the wait; the query then rejects with a `MESHFED_ERR_ABORTED` error. */
  readonly signal?: AbortSignal;
}

/** What a blocking query needs from the store. */
export interface BlockingSource {
  /** Call `onChange` once when any key of `ws` changes; returns a cancel function. */
  watch(ws: WatchSet, onChange: () => void): () => void;
  /** Changes whenever the whole store is replaced (restore). */
  readonly generation: number;
}

/** Limits of blocking queries. */
export interface BlockingLimits {
  /** Timer source. */
  readonly clock: Clock;
  /** Random in [0, 1) for the jitter. */
  readonly random: () => number;
  /** Default wait (ms). */
  readonly defaultQueryTimeMs: number;
  /** Cap on the wait (ms). */
  readonly maxQueryTimeMs: number;
}

/** The wait of a query: requested (or default), capped, plus jitter up to wait / 16. */
export function queryWaitMs(requested: number | undefined, limits: Omit<BlockingLimits, 'clock'>): number {
  let wait = requested !== undefined && requested > 0 ? requested : limits.defaultQueryTimeMs;
  wait = Math.min(wait, limits.maxQueryTimeMs);
  return wait + Math.floor(limits.random() * (wait / JITTER_FRACTION));
}

/**
 * Run `read` as a blocking query against `src`.
 * @returns the last result, its index raised to at least 1
 */
export async function blockingQuery<T>(
  src: BlockingSource,
  limits: BlockingLimits,
  opts: BlockingQueryOptions,
  read: (ws: WatchSet) => QueryResult<T>,
): Promise<QueryResult<T>> {
  const { signal } = opts;
  if (signal?.aborted) throw abortError(signal, 'blocking query');
  const minIndex = opts.minQueryIndex ?? 0;
  const once = (ws: WatchSet): QueryResult<T> => {
    const r = read(ws);
    return { index: Math.max(1, r.index), value: r.value };
  };
  if (minIndex <= 0) return once(new WatchSet());

  let timedOut = false;
  let wake: (() => void) | undefined;
  const timer = limits.clock.setTimeout(() => {
    timedOut = true;
    wake?.();
  }, queryWaitMs(opts.maxQueryTimeMs, limits));
  const onAbort = (): void => wake?.();
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    let abandoned = false;
    for (;;) {
      const gen = src.generation;
      const ws = new WatchSet();
      const r = once(ws);
      if (r.index > minIndex || timedOut || abandoned) return r;
      await new Promise<void>((resolve) => {
        const cancel = src.watch(ws, resolve);
        wake = () => {
          cancel();
          resolve();
        };
      });
      wake = undefined;
      if (signal?.aborted) throw abortError(signal, 'blocking query');
      if (src.generation !== gen) abandoned = true;
    }
  } finally {
    limits.clock.clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
  }
}
