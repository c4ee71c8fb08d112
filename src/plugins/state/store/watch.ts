/**
 * Fine-grained watches: a read adds the keys it depends on to a {@link WatchSet}; a commit fires
 * exactly the keys it changed, so a write to one key never wakes watchers of unrelated keys.
 *
 * Key scheme: `<table>` (any change in the table, for list reads), `nodes/<node>`,
 * `services/name:<name>`, `services/kind:<kind>`, `services/node:<node>`, `checks/node:<node>`,
 * `federation-states/<dc>` (names lowercased).
 */

/** The watch keys a read depends on. */
export class WatchSet {
  readonly #keys = new Set<string>();

  /** Depend on `key`. */
  add(key: string): void {
    this.#keys.add(key);
  }

  /** The keys added so far. */
  keys(): readonly string[] {
    return [...this.#keys];
  }

  /** Number of keys. */
  get size(): number {
    return this.#keys.size;
  }
}

/** Registered callbacks by watch key. A callback fires at most once, then is unregistered everywhere. */
export class WatchRegistry {
  readonly #byKey = new Map<string, Set<Waiter>>();

  /** Call `onChange` once, when any key of `ws` fires; returns a cancel function. */
  watch(ws: WatchSet, onChange: () => void): () => void {
    const w: Waiter = { keys: ws.keys(), fn: onChange, done: false };
    for (const k of w.keys) {
      let set = this.#byKey.get(k);
      if (!set) this.#byKey.set(k, (set = new Set()));
      set.add(w);
    }
    return () => this.#remove(w);
  }

  /** Fire every waiter registered on any of `keys` (each once). */
  fire(keys: Iterable<string>): void {
    const hit = new Set<Waiter>();
    for (const k of keys) {
      const set = this.#byKey.get(k);
      if (set) for (const w of set) hit.add(w);
    }
    for (const w of hit) {
      this.#remove(w);
      w.fn();
    }
  }

  /** Fire every waiter (store reset/restore). */
  fireAll(): void {
    this.fire([...this.#byKey.keys()]);
  }

  /** True when no waiter is registered: firing would wake nobody. */
  get idle(): boolean {
    return this.#byKey.size === 0;
  }

  /** Number of waiters registered (for leak checks). */
  get waiters(): number {
    const all = new Set<Waiter>();
    for (const set of this.#byKey.values()) for (const w of set) all.add(w);
    return all.size;
  }

  #remove(w: Waiter): void {
    if (w.done) return;
    w.done = true;
    for (const k of w.keys) {
      const set = this.#byKey.get(k);
      set?.delete(w);
      if (set?.size === 0) this.#byKey.delete(k);
    }
  }
}

interface Waiter {
  readonly keys: readonly string[];
  readonly fn: () => void;
  done: boolean;
}
