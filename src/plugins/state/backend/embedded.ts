/**
 * The embedded durable backend: one SQLite file per server (`<dir>/state.db`, WAL,
 * `synchronous=FULL`) holding a command log and one snapshot, in front of an in-memory
 * {@link StateStore}.
 *
 * Design (the invariant is *acknowledged ⇔ durable ⇔ visible*):
 * - `apply()` only queues the command. Commands queued in the same event-loop turn, or while a
 *   commit blocks the loop, are flushed together by one `setImmediate` callback: a group commit.
 *   One exception saves that event-loop hop for writers that wait for their acknowledgement and
 *   then write again (a sequential writer, or many in lockstep): a command queued after a flush's
 *   acknowledgements and before the microtask queue next runs empty (so before any I/O callback
 *   or timer could run) is flushed by a microtask queued behind it instead, so every writer woken
 *   by the same flush still joins the same batch; commands from I/O callbacks and timers keep
 *   waiting for `setImmediate` and group. Such back-to-back flushes stop after
 *   {@link MAX_BACK_TO_BACK_MS} since the loop last polled I/O, or when a snapshot is due: the
 *   next flush waits for `setImmediate` again, so a write loop cannot starve the event loop.
 * - The flush runs in ONE synchronous turn: inside a single SQLite transaction, each command gets
 *   index `latest + 1` and is applied to the store (the store validates fully before writing, so
 *   a rejected command writes nothing, consumes no index and is not logged); each accepted
 *   command's row is inserted; then the transaction commits (fsync). Only after the commit
 *   returns are the promises resolved. Because better-sqlite3 is synchronous, no other JS (reader,
 *   timer, promise continuation) runs between the in-memory writes and the commit, so nothing
 *   uncommitted is ever observable asynchronously.
 * - Memory == disk: the logged row is `JSON.stringify(command)` and replay applies its
 *   `JSON.parse`. The store is given the caller's command object itself only when it is plain
 *   JSON data that this round trip reproduces exactly ({@link isJsonFaithful}: plain objects and
 *   arrays, strings, booleans, null, finite non-negative-zero numbers, no `undefined`, no
 *   `toJSON`, no non-enumerable own properties); anything else is applied as the parsed copy of
 *   the logged JSON, as replay will see it. (The store never keeps references into a command.)
 * - If the insert or the commit fails (disk full, I/O error), SQLite rolls the transaction back
 *   and the store is rebuilt from the database (snapshot + log: the durable truth), so the batch
 *   is neither durable nor visible; every command of the batch rejects with
 *   `MESHFED_ERR_STATE_BACKEND_WRITE`. If even that rebuild fails the backend turns failed and
 *   rejects every later call. This costs O(state) only on a failed commit, never on the hot path.
 * - Every `snapshotEvery` entries the store's snapshot is written and the log truncated up to it,
 *   in one transaction; a failed snapshot is logged and retried later (the log still holds all).
 *   The snapshot runs in its own `setImmediate` callback after the batch that crossed the
 *   threshold was acknowledged, so it does not delay those acknowledgements; a crash before it
 *   runs loses nothing (every acknowledged entry is in the log).
 */
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import { MeshfedError } from '../../../core/errors.js';
import type { Logger } from '../../../core/logger.js';
import type { Command, StateStore, StoreSnapshot } from '../store/index.js';
import { isJsonFaithful } from './json.js';

export { isJsonFaithful } from './json.js';

const require = createRequire(import.meta.url);
const Database = require('better-sqlite3') as typeof BetterSqlite3;

/** Error codes of the embedded backend. */
export const BackendErrorCode = Object.freeze({
  /** The database could not be opened or its schema created. */
  OPEN: 'MESHFED_ERR_STATE_BACKEND_OPEN',
  /** A snapshot or log entry on disk is unreadable or does not apply; the backend refuses to start. */
  CORRUPT: 'MESHFED_ERR_STATE_BACKEND_CORRUPT',
  /** Writing a batch failed (disk full, I/O error); the batch is neither durable nor visible. */
  WRITE: 'MESHFED_ERR_STATE_BACKEND_WRITE',
  /** The backend is closed, or failed and must be reopened. */
  CLOSED: 'MESHFED_ERR_STATE_BACKEND_CLOSED',
} as const);

/** Default number of log entries between snapshots. */
export const DEFAULT_SNAPSHOT_EVERY = 10_000;

/** Options of {@link EmbeddedBackend.open}. */
export interface EmbeddedBackendOptions {
  /** Data directory (created if missing); the database is `<dir>/state.db`. */
  readonly dir: string;
  /** A fresh (never written) store; it is restored from disk and then only written by the backend. */
  readonly store: StateStore;
  /** Logger for recovery, snapshots and failures (default: none). */
  readonly logger?: Logger;
  /** Log entries between snapshots (default {@link DEFAULT_SNAPSHOT_EVERY}); a positive integer. */
  readonly snapshotEvery?: number;
  /**
   * Cap on the database size in pages (`PRAGMA max_page_count`, per connection); writes beyond
   * it fail like a full disk. Default: SQLite's (no practical cap).
   */
  readonly maxPageCount?: number;
}

/** Counters of an {@link EmbeddedBackend}, for metrics and tests. */
export interface EmbeddedBackendStats {
  /** Committed write transactions holding log entries (one per group commit). */
  readonly transactions: number;
  /** Log entries committed since open. */
  readonly entries: number;
  /** Largest number of entries committed in one transaction. */
  readonly maxBatch: number;
  /** Snapshots written since open. */
  readonly snapshots: number;
  /** Batches whose commit failed and were rejected. */
  readonly failedBatches: number;
  /** Index of the latest snapshot on disk (0: none). */
  readonly snapshotIndex: number;
  /** Log entries replayed on open (after the snapshot). */
  readonly replayed: number;
}

interface Pending {
  readonly command: Command;
  readonly resolve: (r: { index: number }) => void;
  readonly reject: (err: unknown) => void;
  /** Set by the flush: the index it was applied at (0: rejected with `error`). */
  index: number;
  error: unknown;
}

/** A settled promise, to queue microtasks without `queueMicrotask`'s per-call async resource. */
const RESOLVED = Promise.resolve();
/** How long back-to-back (microtask) flushes may keep the event loop from polling I/O, ms. */
const MAX_BACK_TO_BACK_MS = 1;


interface SnapshotRow {
  idx: number;
  data: string;
}

interface LogRow {
  idx: number;
  command: string;
}

const plugin = { plugin: 'state' } as const;

const emptyTable = { Index: 0, Records: [] };
const EMPTY_SNAPSHOT: StoreSnapshot = {
  Version: 1,
  LatestIndex: 0,
  Tables: { nodes: emptyTable, services: emptyTable, checks: emptyTable, 'federation-states': emptyTable },
};

/** A durable, group-committing SQLite backend for a {@link StateStore}. */
export class EmbeddedBackend {
  readonly #db: BetterSqlite3.Database;
  readonly #store: StateStore;
  readonly #logger: Logger | undefined;
  readonly #snapshotEvery: number;
  readonly #insert: BetterSqlite3.Statement<[number, string]>;
  readonly #writeSnapshot: BetterSqlite3.Statement<[number, string]>;
  readonly #truncate: BetterSqlite3.Statement<[number]>;
  readonly #clearLog: BetterSqlite3.Statement<[]>;
  readonly #maxLogged: BetterSqlite3.Statement<[], number | null>;
  /** The batch transaction, built once: applies and logs `batch` after index `start`, returns the last index used. */
  readonly #commitBatch: BetterSqlite3.Transaction<(batch: readonly Pending[], start: number) => number>;
  #snapshotScheduled = false;
  #queue: Pending[] = [];
  #scheduled = false;
  /** Open from a flush's acknowledgements until the microtask queue next runs empty. */
  #ackWindow = false;
  /** `performance.now()` when the latest `setImmediate` flush started (the loop had just polled). */
  #turnStart = 0;
  readonly #flushFromLoop = (): void => {
    this.#turnStart = performance.now();
    this.#flush();
  };
  readonly #flushBackToBack = (): void => this.#flush();
  readonly #closeAckWindow = (): void => {
    this.#ackWindow = false;
  };
  // a tick queued from a microtask runs once the microtask queue is empty
  readonly #armAckWindowClose = (): void => process.nextTick(this.#closeAckWindow);
  #last = 0;
  #snapshotIndex = 0;
  #closed = false;
  #failed: MeshfedError | undefined;
  #stats = { transactions: 0, entries: 0, maxBatch: 0, snapshots: 0, failedBatches: 0, replayed: 0 };

  private constructor(db: BetterSqlite3.Database, store: StateStore, logger: Logger | undefined, snapshotEvery: number) {
    this.#db = db;
    this.#store = store;
    this.#logger = logger;
    this.#snapshotEvery = snapshotEvery;
    this.#insert = db.prepare('INSERT INTO log (idx, command) VALUES (?, ?)');
    this.#writeSnapshot = db.prepare('INSERT OR REPLACE INTO snapshot (id, idx, data) VALUES (1, ?, ?)');
    this.#truncate = db.prepare('DELETE FROM log WHERE idx <= ?');
    // without WHERE, SQLite drops the table's pages wholesale instead of deleting row by row
    // (10 000 entries: ~3 ms and ~200 WAL pages instead of ~25 ms of CPU and ~1 900 pages)
    this.#clearLog = db.prepare('DELETE FROM log');
    this.#maxLogged = db.prepare<[], number | null>('SELECT max(idx) FROM log').pluck();
    this.#commitBatch = db.transaction((batch: readonly Pending[], start: number) => this.#applyBatch(batch, start));
  }

  /**
   * Open (creating) `<dir>/state.db`, restore the latest snapshot into `store` and re-apply the
   * log entries after it, in order.
   * @throws {MeshfedError} `MESHFED_ERR_STATE_BACKEND_OPEN` when the database cannot be opened or
   *   `store` was already written; `MESHFED_ERR_STATE_BACKEND_CORRUPT` naming the index of the
   *   first unreadable, missing or inapplicable entry (it refuses to start rather than skip it)
   */
  static open(options: EmbeddedBackendOptions): EmbeddedBackend {
    const every = options.snapshotEvery ?? DEFAULT_SNAPSHOT_EVERY;
    if (!Number.isSafeInteger(every) || every < 1) {
      throw new MeshfedError(BackendErrorCode.OPEN, `bad snapshotEvery ${String(every)}: expected a positive integer`, plugin);
    }
    if (options.store.latestIndex() !== 0) {
      throw new MeshfedError(BackendErrorCode.OPEN, `the store given to EmbeddedBackend.open was already written (latest index ${options.store.latestIndex()}): pass a fresh StateStore`, plugin);
    }
    const file = join(options.dir, 'state.db');
    let db: BetterSqlite3.Database;
    try {
      mkdirSync(options.dir, { recursive: true });
      db = new Database(file);
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      if (options.maxPageCount !== undefined) db.pragma(`max_page_count = ${Math.floor(options.maxPageCount)}`);
      db.exec(`CREATE TABLE IF NOT EXISTS log (idx INTEGER PRIMARY KEY, command TEXT NOT NULL);
               CREATE TABLE IF NOT EXISTS snapshot (id INTEGER PRIMARY KEY CHECK (id = 1), idx INTEGER NOT NULL, data TEXT NOT NULL);`);
    } catch (err) {
      throw new MeshfedError(BackendErrorCode.OPEN, `cannot open state database ${file}: ${(err as Error).message}`, { ...plugin, cause: err });
    }
    const backend = new EmbeddedBackend(db, options.store, options.logger, every);
    try {
      backend.#recover();
    } catch (err) {
      db.close();
      throw err;
    }
    options.logger?.info('state backend opened', { file, index: backend.#last, snapshotIndex: backend.#snapshotIndex, replayed: backend.#stats.replayed });
    return backend;
  }

  /** Load the snapshot and replay the log into the store (the store is replaced wholesale). */
  #recover(): void {
    const corrupt = (what: string, cause?: unknown): MeshfedError =>
      new MeshfedError(BackendErrorCode.CORRUPT, `state database is corrupt: ${what}; refusing to start (restore the data directory from a backup or another server)`, { ...plugin, cause });
    const snap = this.#db.prepare<[], SnapshotRow>('SELECT idx, data FROM snapshot WHERE id = 1').get();
    let last = 0;
    this.#store.restore(EMPTY_SNAPSHOT);
    if (snap !== undefined) {
      try {
        this.#store.restore(JSON.parse(snap.data) as StoreSnapshot);
      } catch (err) {
        throw corrupt(`snapshot at index ${snap.idx} does not restore: ${(err as Error).message}`, err);
      }
      last = snap.idx;
    }
    this.#snapshotIndex = last;
    let replayed = 0;
    for (const row of this.#db.prepare<[number], LogRow>('SELECT idx, command FROM log WHERE idx > ? ORDER BY idx').iterate(last)) {
      if (row.idx !== last + 1) throw corrupt(`log entry at index ${last + 1} is missing (next entry is ${row.idx})`);
      let command: Command;
      try {
        command = JSON.parse(row.command) as Command;
      } catch (err) {
        throw corrupt(`log entry at index ${row.idx} is not valid JSON`, err);
      }
      try {
        this.#store.apply(row.idx, command);
      } catch (err) {
        throw corrupt(`log entry at index ${row.idx} does not apply: ${(err as Error).message}`, err);
      }
      last = row.idx;
      replayed++;
    }
    this.#last = last;
    this.#stats.replayed = replayed;
  }

  /** Index of the latest durable entry (0 when none). */
  latestIndex(): number {
    return this.#last;
  }

  /** Counters: transactions, entries, largest batch, snapshots, failures. */
  get stats(): EmbeddedBackendStats {
    return { ...this.#stats, snapshotIndex: this.#snapshotIndex };
  }

  /**
   * Apply `command` durably: it gets the next index, is validated by the store, logged, and the
   * promise resolves only after the transaction holding it has committed (fsync); it is visible
   * in the store exactly then. Commands arriving in the same tick share one transaction.
   * @returns the index the command was applied at
   * @throws (rejects) {StateValidationError}/{MeshfedError} from the store when invalid (nothing
   *   logged, no index used); `MESHFED_ERR_STATE_BACKEND_WRITE` when the batch could not be
   *   written (not applied); `MESHFED_ERR_STATE_BACKEND_CLOSED` after {@link close} or a failure
   */
  apply(command: Command): Promise<{ index: number }> {
    const unusable = this.#unusable();
    if (unusable) return Promise.reject(unusable);
    return new Promise((resolve, reject) => {
      this.#queue.push({ command, resolve, reject, index: 0, error: undefined });
      if (!this.#scheduled) {
        this.#scheduled = true;
        // queued behind the writers woken by the same flush (they run first and join the batch);
        // a due snapshot (a setImmediate) runs before the next batch, as without this shortcut
        if (this.#ackWindow && !this.#snapshotScheduled && performance.now() - this.#turnStart < MAX_BACK_TO_BACK_MS) void RESOLVED.then(this.#flushBackToBack);
        else setImmediate(this.#flushFromLoop);
      }
    });
  }

  #unusable(): MeshfedError | undefined {
    if (this.#failed) return this.#failed;
    if (this.#closed) return new MeshfedError(BackendErrorCode.CLOSED, 'state backend is closed: open it again to write', plugin);
    return undefined;
  }

  /** Write every queued command in one transaction, then settle their promises. */
  #flush(): void {
    this.#scheduled = false;
    const batch = this.#queue;
    this.#queue = [];
    if (batch.length === 0) return;
    const unusable = this.#unusable();
    if (unusable) {
      for (const p of batch) p.reject(unusable);
      return;
    }
    const start = this.#last;
    let next: number;
    try {
      next = this.#commitBatch(batch, start);
    } catch (err) {
      this.#writeFailed(batch, start, err);
      return;
    }
    this.#last = next;
    const accepted = next - start;
    if (accepted > 0) {
      this.#stats.transactions++;
      this.#stats.entries += accepted;
      if (accepted > this.#stats.maxBatch) this.#stats.maxBatch = accepted;
    }
    for (const p of batch) if (p.index !== 0) p.resolve({ index: p.index });
    for (const p of batch) if (p.index === 0) p.reject(p.error);
    this.#openAckWindow();
    if (this.#last - this.#snapshotIndex >= this.#snapshotEvery && !this.#snapshotScheduled) {
      // after the acknowledgements above (their continuations run first); the log holds every entry
      this.#snapshotScheduled = true;
      setImmediate(() => {
        this.#snapshotScheduled = false;
        if (this.#last - this.#snapshotIndex >= this.#snapshotEvery) this.snapshotNow();
      });
    }
  }

  /** Open the window in which writes of the writers just woken flush back to back (if not open yet). */
  #openAckWindow(): void {
    if (this.#ackWindow) return; // its close is armed: at the end of this same microtask run
    this.#ackWindow = true;
    void RESOLVED.then(this.#armAckWindowClose);
  }

  /**
   * Body of the batch transaction: apply each command to the store at the next index and log it;
   * a command the store rejects gets no index and no row. Sets each `Pending`'s index (0 and
   * `error` when rejected). Returns the last index used.
   */
  #applyBatch(batch: readonly Pending[], start: number): number {
    let next = start;
    for (const p of batch) {
      const index = next + 1;
      p.index = 0;
      let json: string | undefined;
      try {
        // throws on BigInt/cycles (rejected below); undefined when the command is not an object
        json = JSON.stringify(p.command);
        // give the store exactly what replay will see: the command itself when the JSON round
        // trip reproduces it, else the parsed copy of the logged JSON; `undefined` (the store
        // rejects it) when there is nothing to log
        let command: unknown;
        if (json !== undefined) command = isJsonFaithful(p.command) ? p.command : JSON.parse(json);
        this.#store.apply(index, command as Command);
      } catch (err) {
        // the store validates before writing; if it threw after writing (a watcher threw),
        // the command is in memory and must be logged like any other
        if (json === undefined || this.#store.latestIndex() < index) {
          p.error = err;
          continue;
        }
        this.#logger?.warn('state store threw after applying a command; logged anyway', { index, error: (err as Error).message });
      }
      this.#insert.run(index, json); // a string: an undefined json was rejected above
      next = index;
      p.index = index;
    }
    return next;
  }

  /** A batch did not commit: undo its in-memory writes by rebuilding from disk, reject it. */
  #writeFailed(batch: readonly Pending[], start: number, cause: unknown): void {
    this.#stats.failedBatches++;
    const err = new MeshfedError(
      BackendErrorCode.WRITE,
      `state write failed, ${batch.length} command(s) after index ${start} not applied: ${(cause as Error).message} (check free disk space and the data directory)`,
      { ...plugin, cause },
    );
    this.#logger?.error('state batch write failed', { error: (cause as Error).message, commands: batch.length, index: start });
    try {
      this.#recover();
      if (this.#last !== start) throw new Error(`database index ${this.#last} after rollback, expected ${start}`);
    } catch (recoverErr) {
      this.#failed = new MeshfedError(BackendErrorCode.CLOSED, `state backend failed and must be reopened: rebuilding the store after a failed write failed: ${(recoverErr as Error).message}`, { ...plugin, cause: recoverErr });
      this.#logger?.error('state backend failed', { error: (recoverErr as Error).message });
    }
    for (const p of batch) p.reject(err);
  }

  /**
   * Write the store's snapshot at the latest index and truncate the log up to it, in one
   * transaction. Runs automatically every `snapshotEvery` entries; a failure is logged and
   * returns `false` (the log still holds every entry).
   * @returns whether a snapshot was written
   */
  snapshotNow(): boolean {
    if (this.#unusable()) return false;
    const index = this.#last;
    try {
      const data = JSON.stringify(this.#store.snapshot());
      this.#db.transaction(() => {
        this.#writeSnapshot.run(index, data);
        // every logged entry is at or below the latest index, so this clears the whole log
        const max = this.#maxLogged.get() ?? 0;
        if (max <= index) this.#clearLog.run();
        else this.#truncate.run(index);
      })();
    } catch (err) {
      this.#logger?.warn('state snapshot failed; will retry', { error: (err as Error).message, index });
      return false;
    }
    this.#snapshotIndex = index;
    this.#stats.snapshots++;
    this.#logger?.debug('state snapshot written', { index });
    return true;
  }

  /**
   * Flush queued commands, then close the database. Later `apply` calls reject with
   * `MESHFED_ERR_STATE_BACKEND_CLOSED`. Idempotent.
   */
  close(): void {
    if (this.#closed) return;
    this.#flush();
    this.#closed = true;
    this.#db.close();
  }
}
