/**
 * A transmit-limited broadcast queue (memberlist's `TransmitLimitedQueue`): every broadcast is
 * piggy-backed on outgoing gossip until it was sent `retransmitMult × ceil(log10(n + 1))` times;
 * fewer-sent and then larger broadcasts go first, and a newer broadcast about the same subject
 * (a node name, a serf event) replaces the older one still queued.
 */

/** One queued message. */
export interface Broadcast {
  /** The bytes to send (a whole message, including its type byte). */
  readonly message: Uint8Array;
  /**
   * Subject of a broadcast that supersedes older ones with the same subject (memberlist:
   * the node name of alive/suspect/dead; serf: none). Undefined never invalidates anything.
   */
  readonly name?: string;
  /** Called once when the broadcast leaves the queue: sent enough times, replaced, or pruned. */
  readonly finished?: () => void;
}

interface Entry {
  readonly b: Broadcast;
  readonly id: number;
  transmits: number;
}

/** Go `retransmitLimit`: how many times a broadcast is sent in a pool of `numNodes`. */
export function retransmitLimit(retransmitMult: number, numNodes: number): number {
  const nodeScale = Math.ceil(Math.log10(numNodes + 1));
  return retransmitMult * nodeScale;
}

/** The queue. Not thread-safe by design: JavaScript has one. */
export class TransmitLimitedQueue {
  readonly #numNodes: () => number;
  readonly #retransmitMult: number;
  #entries: Entry[] = [];
  #nextId = 0;

  /**
   * @param numNodes the current pool size (read at every send, as memberlist does)
   * @param retransmitMult memberlist's `RetransmitMult` (LAN 4, WAN 4)
   */
  constructor(numNodes: () => number, retransmitMult: number) {
    this.#numNodes = numNodes;
    this.#retransmitMult = retransmitMult;
  }

  /** Queued broadcasts. */
  get length(): number {
    return this.#entries.length;
  }

  /** Queue a broadcast; a queued one with the same `name` is finished and dropped. */
  queue(b: Broadcast): void {
    if (b.name !== undefined) {
      const keep: Entry[] = [];
      for (const e of this.#entries) {
        if (e.b.name === b.name) e.b.finished?.();
        else keep.push(e);
      }
      this.#entries = keep;
    }
    this.#entries.push({ b, id: this.#nextId++, transmits: 0 });
  }

  /**
   * Take broadcasts whose lengths, each plus `overhead`, fit in `limit` bytes: fewest transmits
   * first, then largest, then newest. Each returned broadcast counts one transmit; those that
   * reached the limit leave the queue (and are finished).
   */
  getBroadcasts(overhead: number, limit: number): Uint8Array[] {
    if (this.#entries.length === 0) return [];
    const maxTransmits = retransmitLimit(this.#retransmitMult, this.#numNodes());
    const sorted = [...this.#entries].sort(
      (a, b) => a.transmits - b.transmits || b.b.message.length - a.b.message.length || b.id - a.id,
    );
    const out: Uint8Array[] = [];
    let used = 0;
    const done = new Set<Entry>();
    for (const e of sorted) {
      const need = overhead + e.b.message.length;
      if (used + need > limit) continue;
      used += need;
      out.push(e.b.message);
      e.transmits++;
      if (e.transmits >= maxTransmits) done.add(e);
      if (limit - used <= overhead) break;
    }
    if (done.size > 0) {
      this.#entries = this.#entries.filter((e) => !done.has(e));
      for (const e of done) e.b.finished?.();
    }
    return out;
  }

  /** Keep at most `maxRetain` broadcasts: the most-transmitted (oldest) go first. */
  prune(maxRetain: number): void {
    if (this.#entries.length <= maxRetain) return;
    const sorted = [...this.#entries].sort((a, b) => b.transmits - a.transmits || a.id - b.id);
    const drop = new Set(sorted.slice(0, this.#entries.length - maxRetain));
    this.#entries = this.#entries.filter((e) => !drop.has(e));
    for (const e of drop) e.b.finished?.();
  }

  /** Drop everything (finishing each). */
  reset(): void {
    const all = this.#entries;
    this.#entries = [];
    for (const e of all) e.b.finished?.();
  }
}
