/**
 * Feature gating of federation states (wanfed-reference §5.4): the endpoints and the
 * replicator work only once every server that matters advertises the `ft_fs=1` serf tag — in a
 * secondary, every alive or failed server of the primary (at least one seen) and then every one
 * of the local datacenter; in the primary, every local one. Once true it stays true (sticky), and
 * it is also set when federation-state records exist locally, so a restarted secondary that
 * cannot reach the primary still serves and replicates.
 *
 * Fed only by `onMembership` events (plugins never read gossip pools). This server counts as a
 * local server with the feature, so a datacenter of one server without gossip supports it.
 */
import type { Logger } from '../../core/logger.js';
import type { Member, MembershipEvent } from '../../core/types.js';
import type { StateServer } from '../state/index.js';

/** Consul's text when the feature is off. */
export const ErrFederationStatesNotSupported = 'Federation states are currently disabled until all servers in the datacenter support the feature';

interface ServerInfo {
  readonly datacenter: string;
  readonly status: Member['status'];
  readonly ftfs: boolean;
}

/** Options of {@link FederationFeature}. */
export interface FederationFeatureOptions {
  readonly datacenter: string;
  readonly primaryDatacenter: string;
  /** This server's node name (counted as a local server with the feature). */
  readonly node: string;
}

/** The sticky "datacenter supports federation states" flag. */
export class FederationFeature {
  readonly #o: FederationFeatureOptions;
  /** `pool:name` → server. */
  readonly #servers = new Map<string, ServerInfo>();
  #sticky = false;
  #waiters: (() => void)[] = [];

  /** A flag for this server's datacenter. */
  constructor(options: FederationFeatureOptions) {
    this.#o = options;
  }

  /** Track a membership change (tap `onMembership` with it). */
  observe(event: MembershipEvent): void {
    for (const m of event.members) {
      const key = `${event.pool}:${m.name}`;
      if (event.type === 'reap' || m.tags['role'] !== 'consul') {
        this.#servers.delete(key);
        continue;
      }
      this.#servers.set(key, { datacenter: m.tags['dc'] ?? '', status: m.status, ftfs: m.tags['ft_fs'] === '1' });
    }
    if (this.#waiters.length > 0 && this.supported()) this.#wake();
  }

  /**
   * Resolves once the datacenter supports federation states (at once if it does), or when
   * `signal` aborts — so a routine waiting for the feature starts the moment the last server's
   * tag arrives instead of after a blind backoff.
   */
  whenSupported(signal: AbortSignal): Promise<void> {
    if (this.supported() || signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        signal.removeEventListener('abort', done);
        this.#waiters = this.#waiters.filter((w) => w !== done);
        resolve();
      };
      this.#waiters.push(done);
      signal.addEventListener('abort', done, { once: true });
    });
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  /** Set the flag for good (federation-state records exist locally). */
  markSupported(): void {
    this.#sticky = true;
    this.#wake();
  }

  /** Whether federation states are supported; sticky once true. */
  supported(): boolean {
    if (this.#sticky) return true;
    const { datacenter, primaryDatacenter } = this.#o;
    if (datacenter !== primaryDatacenter && !this.#allHave('wan', primaryDatacenter, false)) return false;
    if (!this.#allHave('lan', datacenter, true)) return false;
    this.#sticky = true;
    return true;
  }

  /** Every alive/failed server of `dc` in `pool` has the tag, and at least one is seen (or self counts). */
  #allHave(pool: 'lan' | 'wan', dc: string, selfCounts: boolean): boolean {
    let seen = selfCounts;
    for (const [key, s] of this.#servers) {
      if (!key.startsWith(`${pool}:`) || s.datacenter !== dc) continue;
      if (s.status !== 'alive' && s.status !== 'failed') continue;
      if (pool === 'lan' && key === `lan:${this.#o.node}`) continue;
      if (!s.ftfs) return false;
      seen = true;
    }
    return seen;
  }
}

/** What every federation leader routine (anti-entropy, replication) works with. */
export interface FederationRoutineOptions {
  /** This server's datacenter. */
  readonly datacenter: string;
  /** The primary datacenter. */
  readonly primaryDatacenter: string;
  /** Routed state RPCs and the local store. */
  readonly server: StateServer;
  /** The sticky feature flag. */
  readonly feature: FederationFeature;
  /** The replication token (`acl.tokens.replication`), read per use. */
  readonly token: () => string;
  readonly logger: Logger;
}
