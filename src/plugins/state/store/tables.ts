/**
 * In-memory tables: rows by primary key (lowercased where the key is case-insensitive), secondary
 * indexes, and the table's max index. Backend-agnostic: a durable backend replays the same FSM.
 */
import type { FederationState, HealthCheck, NodeRecord, ServiceEntry, TableName } from './types.js';

/** Lowercase, for case-insensitive keys (node names, service IDs, datacenters). */
export const lower = (s: string): string => s.toLowerCase();

/** Extracts the secondary-index value of a row (`undefined`: the row is not in that index). */
export type IndexFn<T> = (row: T) => string | undefined;

interface Secondary<T> {
  readonly name: string;
  readonly fn: IndexFn<T>;
  readonly map: Map<string, Set<string>>;
}

/** One table: rows by key, secondary indexes and the max index of any write to it. */
export class Table<T> {
  /** Table name. */
  readonly name: TableName;
  #rows = new Map<string, T>();
  #index = 0;
  readonly #key: (row: T) => string;
  readonly #secondary: Secondary<T>[] = [];

  /**
   * @param name table name
   * @param key primary key of a row (already lowercased where case-insensitive)
   * @param indexes secondary indexes by name
   */
  constructor(name: TableName, key: (row: T) => string, indexes: Record<string, IndexFn<T>> = {}) {
    this.name = name;
    this.#key = key;
    for (const [n, fn] of Object.entries(indexes)) this.#secondary.push({ name: n, fn, map: new Map() });
  }

  /** Primary key of `row`. */
  keyOf(row: T): string {
    return this.#key(row);
  }

  /** Max index of any write to this table (0 when never written). */
  get index(): number {
    return this.#index;
  }

  /** Raise the table index to `idx` (never lowers it). */
  bump(idx: number): void {
    if (idx > this.#index) this.#index = idx;
  }

  /** Number of rows. */
  get size(): number {
    return this.#rows.size;
  }

  /** Row by primary key. */
  get(key: string): T | undefined {
    return this.#rows.get(key);
  }

  /**
   * Insert or replace the row under its key; returns the previous row. `key` may be passed when
   * the caller already computed it; it must equal the table's key of `row`.
   */
  put(row: T, key: string = this.#key(row)): T | undefined {
    const old = this.#rows.get(key);
    this.#rows.set(key, row);
    for (const { fn, map } of this.#secondary) {
      const v = fn(row);
      if (old !== undefined) {
        const ov = fn(old);
        if (ov === v) continue; // same index entry: nothing to move
        if (ov !== undefined) unindex(map, ov, key);
      }
      if (v !== undefined) {
        let set = map.get(v);
        if (!set) map.set(v, (set = new Set()));
        set.add(key);
      }
    }
    return old;
  }

  /** Delete by key; returns the removed row. */
  delete(key: string): T | undefined {
    const old = this.#rows.get(key);
    if (old === undefined) return undefined;
    for (const { fn, map } of this.#secondary) {
      const v = fn(old);
      if (v !== undefined) unindex(map, v, key);
    }
    this.#rows.delete(key);
    return old;
  }

  /** Every row, in primary-key order. */
  all(): T[] {
    return [...this.#rows.keys()].sort().map((k) => this.#rows.get(k) as T);
  }

  /** Rows whose secondary index `index` contains `value`, in primary-key order. */
  by(index: string, value: string): T[] {
    const sec = this.#secondary.find((s) => s.name === index);
    if (!sec) throw new Error(`table ${this.name} has no index ${index}`);
    const keys = sec.map.get(value);
    if (!keys) return [];
    return [...keys].sort().map((k) => this.#rows.get(k) as T);
  }

  /** Drop every row and set the table index (restore). */
  reset(rows: readonly T[], index: number): void {
    this.#rows = new Map();
    for (const { map } of this.#secondary) map.clear();
    for (const r of rows) this.put(r);
    this.#index = index;
  }
}

function unindex(map: Map<string, Set<string>>, value: string, key: string): void {
  const set = map.get(value);
  if (set === undefined) return;
  set.delete(key);
  if (set.size === 0) map.delete(value);
}

/** Key of a service row: node + service ID, both case-insensitive. */
export const serviceKey = (node: string, id: string): string => `${lower(node)}/${lower(id)}`;
/** Key of a check row: node + check ID, both case-insensitive. */
export const checkKey = (node: string, id: string): string => `${lower(node)}/${lower(id)}`;

/** The four tables of the store. */
export interface Tables {
  /** Catalog nodes, by lowercase name. */
  readonly nodes: Table<NodeRecord>;
  /** Service instances, by node/ID; indexes `name`, `kind`, `node`. */
  readonly services: Table<ServiceEntry>;
  /** Checks, by node/CheckID; indexes `node`, `service` (node/serviceID). */
  readonly checks: Table<HealthCheck>;
  /** Federation states, by lowercase datacenter. */
  readonly 'federation-states': Table<FederationState>;
}

/** Fresh empty tables. */
export function createTables(): Tables {
  return {
    nodes: new Table<NodeRecord>('nodes', (n) => lower(n.Node)),
    services: new Table<ServiceEntry>('services', (s) => serviceKey(s.Node, s.Service.ID), {
      name: (s) => lower(s.Service.Service),
      kind: (s) => s.Service.Kind,
      node: (s) => lower(s.Node),
    }),
    checks: new Table<HealthCheck>('checks', (c) => checkKey(c.Node, c.CheckID), {
      node: (c) => lower(c.Node),
      service: (c) => (c.ServiceID === '' ? undefined : serviceKey(c.Node, c.ServiceID)),
    }),
    'federation-states': new Table<FederationState>('federation-states', (f) => lower(f.Datacenter)),
  };
}
