/**
 * The pool of gossip-packet connections through mesh gateways (spec §3.4): idle connections
 * per full node name, reused last-in-first-out, closed when unused for `maxIdleMs` (2 min); a
 * connection whose write failed is closed instead of returned.
 */
import type { Duplex } from 'node:stream';
import type { Clock } from '../../core/clock.js';
import { systemClock } from '../../core/clock.js';
import { MeshfedError } from '../../core/errors.js';

/** One pooled connection. */
export interface PooledPacketConn {
  readonly key: string;
  readonly conn: Duplex;
  lastUsed: number;
  failed: boolean;
}

/** Idle packet connections by node name. */
export class PacketConnPool {
  readonly #idle = new Map<string, PooledPacketConn[]>();
  readonly #maxIdleMs: number;
  readonly #clock: Clock;
  #closed = false;
  #reaper: unknown;

  /** A pool closing connections idle for `maxIdleMs` (checked every second). */
  constructor(maxIdleMs: number, clock: Clock = systemClock) {
    if (!(maxIdleMs > 0)) throw new MeshfedError('MESHFED_ERR_WANFED_POOL', 'wanfed: conn pool needs a max time configured', { plugin: 'wanfed' });
    this.#maxIdleMs = maxIdleMs;
    this.#clock = clock;
    const tick = (): void => {
      this.reap();
      if (!this.#closed) this.#reaper = this.#clock.setTimeout(tick, 1000);
    };
    this.#reaper = this.#clock.setTimeout(tick, 1000);
  }

  /** Number of idle connections (all keys). */
  get idle(): number {
    let n = 0;
    for (const list of this.#idle.values()) n += list.length;
    return n;
  }

  /** The most recently returned idle connection for `key`, else a new one from `dial`. */
  async acquireOrDial(key: string, dial: () => Promise<Duplex>): Promise<PooledPacketConn> {
    if (this.#closed) throw new MeshfedError('MESHFED_ERR_WANFED_POOL', 'wanfed: connection pool is closed', { plugin: 'wanfed' });
    const list = this.#idle.get(key);
    let pc: PooledPacketConn | undefined;
    while (list && list.length > 0 && !pc) {
      const candidate = list.pop() as PooledPacketConn;
      if (!candidate.conn.destroyed && candidate.conn.writable) pc = candidate;
    }
    if (list && list.length === 0) this.#idle.delete(key);
    if (!pc) {
      const conn = await dial();
      const fresh: PooledPacketConn = { key, conn, lastUsed: 0, failed: false };
      // An idle connection the gateway resets must not become an uncaught 'error': mark it failed
      // (it is closed instead of reused, and the reaper drops it from the idle list).
      conn.on('error', () => {
        fresh.failed = true;
        conn.destroy();
      });
      pc = fresh;
    }
    pc.lastUsed = this.#clock.now();
    pc.failed = false;
    return pc;
  }

  /** Put `pc` back for reuse, or close it if it failed, died, or the pool is closed. */
  returnOrClose(pc: PooledPacketConn): void {
    if (pc.failed || this.#closed || pc.conn.destroyed || !pc.conn.writable) {
      pc.conn.destroy();
      return;
    }
    let list = this.#idle.get(pc.key);
    if (!list) this.#idle.set(pc.key, (list = []));
    list.push(pc);
  }

  /** Close idle connections unused for the maximum idle time. */
  reap(): void {
    const now = this.#clock.now();
    for (const [key, list] of this.#idle) {
      const keep = list.filter((pc) => {
        if (now - pc.lastUsed < this.#maxIdleMs && !pc.conn.destroyed) return true;
        pc.conn.destroy();
        return false;
      });
      if (keep.length === 0) this.#idle.delete(key);
      else this.#idle.set(key, keep);
    }
  }

  /** Close every idle connection and refuse new acquisitions. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#clock.clearTimeout(this.#reaper);
    for (const list of this.#idle.values()) for (const pc of list) pc.conn.destroy();
    this.#idle.clear();
  }
}
