/**
 * Serf's Lamport clock (serf 0.9.4 `lamport.go`): a `uint64` counter, here a bigint so that
 * every value a peer can send is exact. Arithmetic wraps modulo 2^64 like Go's.
 */

/** A Lamport time (Go `LamportTime`, `uint64`). */
export type LamportTime = bigint;

const MOD = 1n << 64n;
const MASK = MOD - 1n;

/** A Lamport time from a decoded `LTime` (number or bigint) or a plain number; masked to uint64. */
export function toLamportTime(v: number | bigint): LamportTime {
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`a Lamport time is a non-negative safe integer or a bigint, got ${v}`);
    return BigInt(v);
  }
  return v & MASK;
}

/**
 * A Lamport clock. Each serf pool keeps three (members, user events, queries). No global state:
 * one instance per clock per agent.
 */
export class LamportClock {
  #counter: bigint;

  /** Start at `initial` (default 0; serf restores clocks from its snapshot this way). */
  constructor(initial: number | bigint = 0n) {
    this.#counter = toLamportTime(initial);
  }

  /** The current value. */
  time(): LamportTime {
    return this.#counter;
  }

  /** Advance by one and return the new value (the time of a local event). */
  increment(): LamportTime {
    this.#counter = (this.#counter + 1n) & MASK;
    return this.#counter;
  }

  /**
   * Record a time seen from another node: if `v` is not older than the local clock, move the
   * local clock to `v + 1` (so witnessing the current value also advances it, as in serf).
   */
  witness(v: number | bigint): void {
    const other = toLamportTime(v);
    if (other < this.#counter) return;
    this.#counter = (other + 1n) & MASK;
  }
}
