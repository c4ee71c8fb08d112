/**
 * Federation-state anti-entropy (wanfed-reference §7): the leader of every datacenter keeps
 * its own datacenter's record in the primary equal to the mesh gateways in its catalog. A
 * blocking query over the local federation-state record and the `mesh-gateway` service dump
 * wakes on either; if the snapshot differs from the stored record (`IsSame`: gateways pairwise
 * in order, ignoring UpdatedAt and raft indexes) the primary writes it directly and a secondary
 * sends `FederationState.Apply` to the primary with the replication token. Syncs are debounced
 * (`interval`, default 5 s, 0 = none) from the last completed one. The primary also prunes the
 * records of datacenters that left the WAN pool (`pruneIntervalMs`, default 1 h).
 */
import type { Clock } from '../../core/clock.js';
import { systemClock } from '../../core/clock.js';
import { errorMessage } from '../../core/errors.js';
import { GoTime } from '../rpc/msgpack/index.js';
import { MessageType, type CheckServiceNode, type FederationState } from '../state/store/index.js';
import type { FederationRoutineOptions } from './feature.js';
import { loopBackoffMs, sleep, TokenBucket } from './loop.js';
import { toWire } from './structs.js';

/** Default debounce of anti-entropy syncs. */
export const DEFAULT_ANTI_ENTROPY_INTERVAL_MS = 5_000;
/** Default interval of pruning in the primary. */
export const DEFAULT_PRUNE_INTERVAL_MS = 3_600_000;

const stripIndexes = (x: unknown): unknown => {
  if (Array.isArray(x)) return x.map(stripIndexes);
  if (x && typeof x === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(x).sort()) if (k !== 'CreateIndex' && k !== 'ModifyIndex') out[k] = stripIndexes((x as Record<string, unknown>)[k]);
    return out;
  }
  return x;
};

/** Consul's `FederationState.IsSame`: same datacenter and gateways pairwise equal (no sorting), raft indexes and UpdatedAt ignored. */
export function isSameFederationState(prev: Pick<FederationState, 'Datacenter' | 'MeshGateways'>, curr: Pick<FederationState, 'Datacenter' | 'MeshGateways'>): boolean {
  if (prev.Datacenter !== curr.Datacenter || prev.MeshGateways.length !== curr.MeshGateways.length) return false;
  return JSON.stringify(stripIndexes(prev.MeshGateways)) === JSON.stringify(stripIndexes(curr.MeshGateways));
}

/** Options of {@link FederationAntiEntropy}. */
export interface AntiEntropyOptions extends FederationRoutineOptions {
  /** Debounce between syncs (default 5 s; 0 = none). */
  readonly intervalMs?: number;
  /** Whether a datacenter is still known (router), for pruning. */
  readonly hasDatacenter?: (dc: string) => boolean;
  readonly pruneIntervalMs?: number;
  readonly clock?: Clock;
}

/** Anti-entropy details of one blocking round (exposed for tests, like Consul's). */
export interface AntiEntropyDetails {
  readonly index: number;
  readonly prev: FederationState | undefined;
  readonly curr: { Datacenter: string; MeshGateways: CheckServiceNode[] };
}

/** The anti-entropy (and, in the primary, pruning) routine of a leader. */
export class FederationAntiEntropy {
  readonly #o: AntiEntropyOptions;
  readonly #clock: Clock;
  #syncs = 0;
  #skips = 0;
  #lastError: string | undefined;
  #lastSync: string | undefined;

  /** An anti-entropy routine (start with {@link run}). */
  constructor(options: AntiEntropyOptions) {
    this.#o = options;
    this.#clock = options.clock ?? systemClock;
  }

  /** Counters for status output. */
  status(): Record<string, unknown> {
    return { syncs: this.#syncs, skipped: this.#skips, last_sync: this.#lastSync, last_error: this.#lastError };
  }

  /** Blocking read of our stored record and our mesh gateways (wakes on either). */
  async details(minIndex: number, signal: AbortSignal): Promise<AntiEntropyDetails> {
    const { server, datacenter } = this.#o;
    const store = server.store;
    let prev: FederationState | undefined;
    let gws: CheckServiceNode[] = [];
    const r = await server.query({ MinQueryIndex: minIndex, RequireConsistent: true }, { signal }, (ws) => {
      const a = store.federationStateGet(datacenter, ws);
      const b = store.serviceDumpByKind('mesh-gateway', ws);
      prev = a.value;
      gws = b.value;
      return { index: Math.max(a.index, b.index), value: undefined };
    });
    return { index: r.meta.Index, prev, curr: { Datacenter: datacenter, MeshGateways: gws } };
  }

  /** Write our record: directly in the primary, `FederationState.Apply` to it from a secondary. */
  async update(curr: { Datacenter: string; MeshGateways: CheckServiceNode[] }, signal: AbortSignal): Promise<void> {
    const o = this.#o;
    const updatedAt = new Date(this.#clock.now()).toISOString();
    if (o.datacenter === o.primaryDatacenter) {
      await o.server.write({ Type: MessageType.FederationState, Body: { Datacenter: o.datacenter, Op: 'upsert', State: { ...curr, UpdatedAt: updatedAt } } });
    } else {
      const wire = toWire({ ...curr, UpdatedAt: updatedAt, PrimaryModifyIndex: 0, CreateIndex: 0, ModifyIndex: 0 });
      await o.server.call('FederationState.Apply', { Datacenter: o.primaryDatacenter, Op: 'upsert', State: { ...wire, UpdatedAt: GoTime.parse(updatedAt) }, Token: o.token() }, { signal });
    }
  }

  /** Sync until `signal` aborts. */
  async run(signal: AbortSignal): Promise<void> {
    const o = this.#o;
    const interval = o.intervalMs ?? DEFAULT_ANTI_ENTROPY_INTERVAL_MS;
    const bucket = new TokenBucket(0.2, 5, this.#clock);
    let index = 0;
    let failures = 0;
    let lastDone = -Infinity;
    try {
      for (;;) {
        // debounce: at most one sync per interval, measured from the last completed one
        const wait = lastDone + interval - this.#clock.now();
        if (wait > 0) await sleep(wait, signal, this.#clock);
        try {
          if (!o.feature.supported()) {
            await sleep(Math.max(interval, 1000), signal, this.#clock);
            continue;
          }
          const d = await this.details(index, signal);
          if (d.prev && isSameFederationState(d.prev, d.curr)) {
            this.#skips++;
            o.logger.trace('federation state anti-entropy sync skipped; already up-to-date');
          } else {
            await this.update(d.curr, signal);
            this.#syncs++;
            this.#lastSync = new Date(this.#clock.now()).toISOString();
            o.logger.info('federation state anti-entropy synced', { gateways: d.curr.MeshGateways.length });
            lastDone = this.#clock.now();
          }
          index = d.index;
          failures = 0;
          this.#lastError = undefined;
        } catch (err) {
          if (signal.aborted) return;
          failures++;
          this.#lastError = errorMessage(err);
          o.logger.warn('federation state anti-entropy sync failed; will retry', { err: this.#lastError, failures });
          await bucket.take(signal);
          await sleep(loopBackoffMs(failures), signal, this.#clock);
        }
      }
    } catch (err) {
      if (!signal.aborted) throw err;
    }
  }

  /**
   * Delete the records of datacenters the router no longer knows (primary only).
   * @returns the datacenters pruned
   */
  async prune(): Promise<string[]> {
    const o = this.#o;
    const pruned: string[] = [];
    if (!o.hasDatacenter) return pruned;
    for (const s of o.server.store.federationStateList().value) {
      if (s.Datacenter.toLowerCase() === o.datacenter.toLowerCase() || o.hasDatacenter(s.Datacenter)) continue;
      o.logger.info('pruning stale federation state', { datacenter: s.Datacenter });
      try {
        await o.server.write({ Type: MessageType.FederationState, Body: { Datacenter: o.datacenter, Op: 'delete', State: { Datacenter: s.Datacenter } } });
      } catch (err) {
        o.logger.error(`Failed to delete federation state ${s.Datacenter}: ${errorMessage(err)}`);
        break;
      }
      pruned.push(s.Datacenter);
    }
    return pruned;
  }

  /** Prune every `pruneIntervalMs` until `signal` aborts (primary leader only). */
  async runPruning(signal: AbortSignal): Promise<void> {
    try {
      for (;;) {
        await sleep(this.#o.pruneIntervalMs ?? DEFAULT_PRUNE_INTERVAL_MS, signal, this.#clock);
        await this.prune();
      }
    } catch (err) {
      if (!signal.aborted) throw err;
    }
  }
}
