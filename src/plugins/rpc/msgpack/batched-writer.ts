/**
 * Coalesces the frames produced in one turn of the event loop into one `write()`: with many
 * calls in flight on a connection, one syscall carries them all (Go's bufio writer plays the
 * same role in net-rpc-msgpackrpc).
 */
import type { Duplex } from 'node:stream';
import { ByteWriter } from './byte-writer.js';

/** @internal Frames are encoded into `out`; `schedule()` writes them to the connection soon. */
export class BatchedWriter {
  readonly out = new ByteWriter();
  readonly #conn: Duplex;
  #scheduled = false;
  readonly #flush = (): void => {
    this.#scheduled = false;
    this.flush();
  };

  constructor(conn: Duplex) {
    this.#conn = conn;
  }

  /** Write what was encoded so far, after the current microtasks (which may add more). */
  schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    queueMicrotask(this.#flush);
  }

  /** Write what was encoded so far, now. Returns false when the connection wants a drain. */
  flush(): boolean {
    if (this.out.length === 0) return !this.#conn.writableNeedDrain;
    const bytes = this.out.take();
    const conn = this.#conn;
    if (conn.destroyed || conn.writableEnded) return false;
    return conn.write(bytes);
  }
}
