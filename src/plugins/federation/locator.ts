/**
 * The gateway locator (spec §4): which mesh gateway a server dials to reach another datacenter.
 * It follows the local federation-state table with blocking queries, keeps this datacenter's
 * gateways (LAN addresses) and the primary's (WAN addresses), merges in the `primary_gateways`
 * fallback list, and decides — from the health of federation-state replication — whether a
 * secondary reaches the primary through its own gateways or straight through the primary's.
 * Every candidate list passes through the kernel's `onGatewayList` hook before the random pick.
 */
import { joinHostPort } from '../../core/address.js';
import { systemClock, type Clock } from '../../core/clock.js';
import type { GatewayListResolver } from '../../core/kernel-services.js';
import type { Logger } from '../../core/logger.js';
import type { GatewayCandidate, GatewayListContext } from '../../core/types.js';
import type { CheckServiceNode, FederationState, StateStore } from '../state/store/index.js';
import { loopBackoffMs, sleep, TokenBucket } from './loop.js';

/** Service meta key a mesh gateway sets when it routes server traffic (spec §0, §4.4). */
export const WAN_FEDERATION_META_KEY = 'consul-wan-federation';

/**
 * Consecutive replication failures after which a secondary stops dialing the primary through its
 * local gateways (spec §4.2 `localFederationStateReplicatorFailuresBeforeDialingDirectly`).
 */
export const FAILURES_BEFORE_DIALING_DIRECTLY = 3;

/** Refresh-loop rate limit, runs per second (spec §7.4 `loopRateLimit`). */
export const LOOP_RATE_LIMIT_PER_SEC = 0.2;

/** Refresh-loop burst (spec §7.4 `retryBucketSize`). */
export const RETRY_BUCKET_SIZE = 5;

/** Log line when a secondary decides to reach the primary through its own gateways (spec §4.2). */
export const LOG_DIAL_PRIMARY_VIA_LOCAL = 'will dial the primary datacenter using our local mesh gateways if possible';

/** Log line when a secondary decides to reach the primary through the primary's gateways (spec §4.2). */
export const LOG_DIAL_PRIMARY_DIRECTLY = 'will dial the primary datacenter through its mesh gateways';

/** What the locator reads from the state store: the federation-state table, with blocking. */
export type FederationStateSource = Pick<StateStore, 'federationStateList' | 'blockingQuery'>;

/** Options of a {@link GatewayLocator}. */
export interface GatewayLocatorOptions {
  /** This server's datacenter. */
  readonly datacenter: string;
  /** The primary datacenter (`primary_datacenter`). */
  readonly primaryDatacenter: string;
  /** The local state store; only the federation-state table is read (no RPC, no token). */
  readonly store: FederationStateSource;
  /** Logger; the locator logs under `component: gateway_locator`. */
  readonly logger: Logger;
  /** Time source for replication timestamps and the refresh loop's timers (default: system clock). */
  readonly clock?: Clock;
  /** Uniform random in [0, 1) used for the gateway pick (default `Math.random`). */
  readonly random?: () => number;
  /** Runs candidate lists through the kernel's `onGatewayList` hook (default: lists unchanged). */
  readonly gatewayLists?: GatewayListResolver;
  /**
   * Whether the local state is usable: true when this server is the leader or the leader has
   * contacted it at least once. While false, refreshes are skipped (not counted as failures).
   */
  readonly isLocalStateReady: () => boolean;
  /** Called whenever the federation-state table is non-empty (sets the sticky feature flag). */
  readonly onFederationStatesSeen?: () => void;
}

/** One address in {@link GatewayLocatorStatus}, with where it came from. */
export interface GatewayLocatorStatusEntry<S extends GatewayCandidate['source']> {
  /** `host:port`. */
  readonly address: string;
  /** Where the locator learned the address. */
  readonly source: S;
}

/**
 * How a server reaches the primary datacenter right now: it is the primary (`primary`), through
 * its own datacenter's gateways when it has any (`local-gateways`), or straight through the
 * primary's gateways (`primary-gateways`).
 */
export type PrimaryDialMode = 'primary' | 'local-gateways' | 'primary-gateways';

/** Operator view of the locator (JSON-able). */
export interface GatewayLocatorStatus {
  /** This server's datacenter. */
  readonly datacenter: string;
  /** The primary datacenter. */
  readonly primary_datacenter: string;
  /** The dialing decision of {@link GatewayLocator.dialPrimaryThroughLocalGateway}, as a mode. */
  readonly mode: PrimaryDialMode;
  /** Whether the federation-state table was read at least once (until then no gateway is picked). */
  readonly populated: boolean;
  /** This datacenter's gateways (LAN addresses), sorted. */
  readonly local: readonly GatewayLocatorStatusEntry<'local'>[];
  /**
   * The primary's gateways known to this server, sorted: from replicated federation state, plus
   * (in a secondary) the `primary_gateways` fallback list.
   */
  readonly primary: readonly GatewayLocatorStatusEntry<'federation-state' | 'fallback'>[];
  /** The `primary_gateways` fallback list, sorted. */
  readonly fallback: readonly string[];
  /** Federation-state replication health, which drives `mode` in a secondary. */
  readonly replication: {
    /** Whether replication results decide the mode (leaders of a secondary). */
    readonly use_signal: boolean;
    /** RFC 3339 time of the last success, or null. */
    readonly last_success: string | null;
    /** RFC 3339 time of the last failure, or null. */
    readonly last_failure: string | null;
    /** Successes since the last failure. */
    readonly consecutive_successes: number;
    /** Failures since the last success. */
    readonly consecutive_failures: number;
  };
}

/**
 * The `host:port` to dial for one gateway instance (spec §4.4 `BestAddress`). With `wan`: the
 * service's `wan` tagged address, else the service address, else the node's `wan` tagged
 * address, else the node address. Without: the service address, else the node address. The port
 * is the chosen service tagged address's port when set, else the service port. IPv6 hosts are
 * bracketed.
 */
export function bestAddress(csn: CheckServiceNode, wan: boolean): string {
  const svc = csn.Service;
  let host = svc.Address;
  let port = svc.Port;
  const svcWan = wan ? svc.TaggedAddresses?.['wan'] : undefined;
  if (svcWan && svcWan.Address !== '') {
    host = svcWan.Address;
    if (svcWan.Port !== 0) port = svcWan.Port;
  }
  if (host === '') {
    const nodeWan = wan ? csn.Node.TaggedAddresses?.['wan'] : undefined;
    host = nodeWan !== undefined && nodeWan !== '' ? nodeWan : csn.Node.Address;
  }
  return joinHostPort(host, port);
}

/**
 * Whether a gateway instance may carry server traffic: it exposes servers (meta
 * `consul-wan-federation = "1"`) and none of its checks is critical (spec §4.4 `retainGateways`).
 */
export function isUsableFederationGateway(csn: CheckServiceNode): boolean {
  if (csn.Service.Meta?.[WAN_FEDERATION_META_KEY] !== '1') return false;
  return !(csn.Checks ?? []).some((c) => c.Status === 'critical');
}

const byString = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/**
 * Tracks the mesh gateways of this datacenter and of the primary, and picks the gateway to dial
 * for a datacenter (spec §4). One per server; servers only, and only with WAN federation via
 * mesh gateways.
 *
 * @example
 * ```ts
 * const locator = new GatewayLocator({ datacenter: 'dc2', primaryDatacenter: 'dc1', store, logger,
 *   isLocalStateReady: () => true });
 * void locator.run(signal);                        // follow the federation-state table
 * const gw = await locator.pickGateway('dc1');     // '' when no gateway is known yet
 * ```
 */
export class GatewayLocator {
  readonly #datacenter: string;
  readonly #primaryDatacenter: string;
  readonly #isPrimary: boolean;
  readonly #store: FederationStateSource;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #gatewayLists: GatewayListResolver | undefined;
  readonly #isLocalStateReady: () => boolean;
  readonly #onFederationStatesSeen: (() => void) | undefined;

  #populated = false;
  readonly #changeListeners = new Set<() => void>();
  #primaryGateways: string[] = [];
  #localGateways: string[] = [];
  #fallback: string[] = [];

  #primaryReadyResolve: (() => void) | undefined;
  /** Resolves once, the first time the primary's gateway list from federation state is non-empty (never from the fallback list). */
  readonly primaryGatewaysReady: Promise<void>;

  #useReplicationSignal = false;
  #lastSuccess: number | undefined;
  #lastFailure: number | undefined;
  #successes = 0;
  #failures = 0;

  /** A locator with empty lists; logs the initial dialing mode and records one replication success (spec §4.1). */
  constructor(options: GatewayLocatorOptions) {
    this.#datacenter = options.datacenter;
    this.#primaryDatacenter = options.primaryDatacenter;
    this.#isPrimary = options.datacenter === options.primaryDatacenter;
    this.#store = options.store;
    this.#log = options.logger.child({ component: 'gateway_locator' });
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? Math.random;
    this.#gatewayLists = options.gatewayLists;
    this.#isLocalStateReady = options.isLocalStateReady;
    this.#onFederationStatesSeen = options.onFederationStatesSeen;
    this.primaryGatewaysReady = new Promise<void>((resolve) => {
      this.#primaryReadyResolve = resolve;
    });
    // Without the replication signal the decision is "through local gateways".
    this.#logDialingMode(this.dialPrimaryThroughLocalGateway());
    this.setLastFederationStateReplicationError(undefined, false);
  }

  /** Whether the federation-state table has been read at least once; until then nothing is picked. */
  get populated(): boolean {
    return this.#populated;
  }

  // ---- replication signal (spec §4.2) --------------------------------------------------------

  /**
   * Record the outcome of a federation-state replication round (`undefined` = success). A
   * success from replication (`fromReplication`) turns the replication signal on. Logs when the
   * dialing decision flips (secondaries only).
   */
  setLastFederationStateReplicationError(err: Error | undefined, fromReplication: boolean): void {
    const before = this.dialPrimaryThroughLocalGateway();
    const now = this.#clock.now();
    if (err === undefined) {
      this.#lastSuccess = now;
      this.#successes++;
      this.#failures = 0;
      if (fromReplication) this.#useReplicationSignal = true;
    } else {
      this.#lastFailure = now;
      this.#failures++;
      this.#successes = 0;
    }
    this.#logIfFlipped(before);
  }

  /**
   * Whether replication results decide how the primary is dialed: on for a secondary's leader,
   * off for followers (which then always prefer their local gateways). Logs a decision flip.
   */
  setUseReplicationSignal(on: boolean): void {
    const before = this.dialPrimaryThroughLocalGateway();
    this.#useReplicationSignal = on;
    this.#logIfFlipped(before);
  }

  /**
   * Whether a secondary should reach the primary through its own datacenter's gateways (true) or
   * straight through the primary's (false). Always false in the primary (spec §4.2).
   */
  dialPrimaryThroughLocalGateway(): boolean {
    if (this.#isPrimary) return false;
    if (!this.#useReplicationSignal) return true;
    const ok = this.#lastSuccess;
    const bad = this.#lastFailure;
    if (ok === undefined && bad === undefined) return false;
    if (ok !== undefined && (bad === undefined || ok > bad)) return true;
    // Equal times (a coarse clock) fall through: the counters still tell, as a success resets them.
    return this.#failures < FAILURES_BEFORE_DIALING_DIRECTLY;
  }

  #logIfFlipped(before: boolean): void {
    const after = this.dialPrimaryThroughLocalGateway();
    if (after === before) return;
    this.#logDialingMode(after);
    // the primary's candidate list switches between the local and the primary's gateways
    this.#emitChange();
  }

  // ---- change notification -------------------------------------------------------------------

  /**
   * Call `listener` (synchronously, after the change) whenever the candidates of
   * {@link listGateways} may have changed: new gateway lists from federation state, the first
   * read of the table, a new fallback list, or a flip of the primary dialing mode. Returns the
   * unsubscribe function. A throwing listener is logged and does not affect the others.
   */
  onChange(listener: () => void): () => void {
    const wrapped = (): void => listener();
    this.#changeListeners.add(wrapped);
    return () => void this.#changeListeners.delete(wrapped);
  }

  #emitChange(): void {
    for (const l of [...this.#changeListeners]) {
      try {
        l();
      } catch (err) {
        this.#log.error('gateway locator change listener failed', { err });
      }
    }
  }

  #logDialingMode(viaLocal: boolean): void {
    if (this.#isPrimary) return; // meaningless in the primary
    this.#log.info(viaLocal ? LOG_DIAL_PRIMARY_VIA_LOCAL : LOG_DIAL_PRIMARY_DIRECTLY);
  }

  // ---- fallback list (spec §4.5) -------------------------------------------------------------

  /** Replace the `primary_gateways` fallback list (sorted); logs when it changed. */
  refreshPrimaryGatewayFallbackAddresses(addrs: readonly string[]): void {
    const sorted = [...addrs].sort(byString);
    if (sameList(sorted, this.#fallback)) return;
    this.#fallback = sorted;
    this.#log.info('updated fallback list of primary mesh gateways', { mesh_gateways: sorted });
    this.#emitChange();
  }

  /** A copy of the fallback list, sorted. */
  primaryGatewayFallbackAddresses(): string[] {
    return [...this.#fallback];
  }

  // ---- lists and picking (spec §4.3) ---------------------------------------------------------

  /** The candidates for the local (`primary = false`) or primary list, before `onGatewayList`. */
  #candidates(primary: boolean): { list: GatewayListContext['list']; candidates: GatewayCandidate[] } {
    if (!this.#populated) return { list: primary ? 'primary' : 'local', candidates: [] };
    const local = (): GatewayCandidate[] => this.#localGateways.map((address) => ({ address, datacenter: this.#datacenter, source: 'local' }));
    if (!primary) return { list: 'local', candidates: local() };
    const fromState = (): GatewayCandidate[] =>
      this.#primaryGateways.map((address) => ({ address, datacenter: this.#primaryDatacenter, source: 'federation-state' }));
    if (this.#isPrimary) return { list: 'primary', candidates: fromState() };
    if (this.#localGateways.length > 0 && this.dialPrimaryThroughLocalGateway()) return { list: 'local', candidates: local() };
    const fallback = this.#fallback.map((address): GatewayCandidate => ({ address, datacenter: this.#primaryDatacenter, source: 'fallback' }));
    // Both inputs are sorted; a stable sort of the concatenation is their merge (duplicates kept).
    return { list: 'primary', candidates: [...fromState(), ...fallback].sort((a, b) => byString(a.address, b.address)) };
  }

  /**
   * The addresses `pickGateway` would choose from, before `onGatewayList` (spec §4.3): `primary`
   * selects the list for the primary datacenter, otherwise the local gateways. Empty until
   * {@link populated}.
   */
  listGateways(primary: boolean): string[] {
    return this.#candidates(primary).candidates.map((c) => c.address);
  }

  /**
   * A gateway (`host:port`) to dial to reach datacenter `dc`, picked uniformly at random from the
   * candidate list after the `onGatewayList` taps filtered/reordered it; `''` when there is none.
   * `exclude` (a dialer retrying after refused connects) removes those addresses unless nothing
   * else is left.
   */
  async pickGateway(dc: string, exclude?: ReadonlySet<string>): Promise<string> {
    if (!this.#populated) return '';
    let resolved = await this.#resolvedCandidates(dc);
    // a dialer retrying after a refused connect asks for another gateway; if none is left, any will do
    if (exclude && exclude.size > 0) {
      const rest = resolved.filter((c) => !exclude.has(c.address));
      if (rest.length > 0) resolved = rest;
    }
    if (resolved.length === 0) return '';
    const i = Math.min(resolved.length - 1, Math.max(0, Math.floor(this.#random() * resolved.length)));
    const chosen = resolved[i] as GatewayCandidate;
    this.#log.trace('picking gateway for transit', { gateway: chosen.address, source: this.#datacenter, dest: dc, learned_from: chosen.source });
    return chosen.address;
  }

  /**
   * The gateways {@link pickGateway} picks from for datacenter `dc` (after the `onGatewayList`
   * taps), in the order the taps left them; empty until {@link populated} or when none is known.
   * The gRPC resolver uses it as the endpoints of a remote datacenter.
   */
  async candidateGateways(dc: string): Promise<string[]> {
    if (!this.#populated) return [];
    return (await this.#resolvedCandidates(dc)).map((c) => c.address);
  }

  async #resolvedCandidates(dc: string): Promise<readonly GatewayCandidate[]> {
    const { list, candidates } = this.#candidates(dc === this.#primaryDatacenter);
    return this.#gatewayLists ? this.#gatewayLists.resolve(candidates, { targetDatacenter: dc, list }) : candidates;
  }

  // ---- refresh (spec §4.4) -------------------------------------------------------------------

  /**
   * One refresh: a blocking query over the local federation-state table (returns when its index
   * passes `lastIndex`, the query wait ends, or `signal` aborts), then the lists are rebuilt.
   * Returns the table index to pass next time. While the local state is not ready it returns
   * `lastIndex` at once without error.
   * @throws {MeshfedError} `MESHFED_ERR_ABORTED` when `signal` aborts during the query
   */
  async runOnce(lastIndex: number, signal: AbortSignal): Promise<number> {
    if (!this.#isLocalStateReady()) return lastIndex;
    const { index, value } = await this.#store.blockingQuery({ minQueryIndex: lastIndex, signal }, (ws) => this.#store.federationStateList(ws));
    this.#updateFromState(value);
    return index;
  }

  /**
   * Refresh until `signal` aborts: at most 0.2 runs/s with a burst of 5, and after a failure a
   * back-off of 2, 4, 8, … up to 256 s, reset by a success (spec §7.4). Never rejects.
   */
  async run(signal: AbortSignal): Promise<void> {
    const bucket = new TokenBucket(LOOP_RATE_LIMIT_PER_SEC, RETRY_BUCKET_SIZE, this.#clock);
    let lastIndex = 0;
    let failures = 0;
    while (!signal.aborted) {
      try {
        await bucket.take(signal);
        lastIndex = await this.runOnce(lastIndex, signal);
        failures = 0;
      } catch (err) {
        if (signal.aborted) return;
        failures++;
        const backoffMs = loopBackoffMs(failures);
        this.#log.error('failed to refresh mesh gateway locations from federation states, will retry', { err, retry_in_ms: backoffMs });
        try {
          await sleep(backoffMs, signal, this.#clock);
        } catch {
          return; // aborted
        }
      }
    }
  }

  #updateFromState(states: readonly FederationState[]): void {
    if (states.length > 0) this.#onFederationStatesSeen?.();
    const here = this.#datacenter.toLowerCase();
    const primaryDc = this.#primaryDatacenter.toLowerCase();
    let local: CheckServiceNode[] = [];
    let primary: CheckServiceNode[] = [];
    for (const state of states) {
      const dc = state.Datacenter.toLowerCase();
      if (dc !== here && dc !== primaryDc) continue;
      const kept = state.MeshGateways.filter(isUsableFederationGateway);
      // Not exclusive: in the primary the same record is both lists.
      if (dc === here) local = kept;
      if (dc === primaryDc) primary = kept;
    }
    const primaryAddrs = primary.map((g) => bestAddress(g, true)).sort(byString);
    const localAddrs = local.map((g) => bestAddress(g, false)).sort(byString);

    const first = !this.#populated;
    this.#populated = true;
    let changed = false;
    let primaryReady = false;
    if (!sameList(primaryAddrs, this.#primaryGateways)) {
      this.#primaryGateways = primaryAddrs;
      primaryReady = primaryAddrs.length > 0;
      changed = true;
    }
    if (!sameList(localAddrs, this.#localGateways)) {
      this.#localGateways = localAddrs;
      changed = true;
    }
    if (changed) this.#log.info('new cached locations of mesh gateways', { primary: primaryAddrs, local: localAddrs });
    if (changed || first) this.#emitChange();
    if (primaryReady && this.#primaryReadyResolve) {
      this.#primaryReadyResolve();
      this.#primaryReadyResolve = undefined;
    }
  }

  // ---- status --------------------------------------------------------------------------------

  /** How the primary would be dialed now, for operators (see {@link PrimaryDialMode}). */
  get mode(): PrimaryDialMode {
    if (this.#isPrimary) return 'primary';
    return this.dialPrimaryThroughLocalGateway() ? 'local-gateways' : 'primary-gateways';
  }

  /** A JSON-able snapshot for operators: dialing mode, every known address and where it came from, replication health. */
  status(): GatewayLocatorStatus {
    const iso = (t: number | undefined): string | null => (t === undefined ? null : new Date(t).toISOString());
    const primary: GatewayLocatorStatusEntry<'federation-state' | 'fallback'>[] = this.#primaryGateways.map((address) => ({ address, source: 'federation-state' }));
    if (!this.#isPrimary) for (const address of this.#fallback) primary.push({ address, source: 'fallback' });
    primary.sort((a, b) => byString(a.address, b.address));
    return {
      datacenter: this.#datacenter,
      primary_datacenter: this.#primaryDatacenter,
      mode: this.mode,
      populated: this.#populated,
      local: this.#localGateways.map((address) => ({ address, source: 'local' as const })),
      primary,
      fallback: [...this.#fallback],
      replication: {
        use_signal: this.#useReplicationSignal,
        last_success: iso(this.#lastSuccess),
        last_failure: iso(this.#lastFailure),
        consecutive_successes: this.#successes,
        consecutive_failures: this.#failures,
      },
    };
  }
}
