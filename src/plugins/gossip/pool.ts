/**
 * One gossip pool (LAN or WAN): a transport, a memberlist node and the serf layer on top, plus
 * retry-join. Membership events leave through one callback; nothing else reads the pool.
 */
import type { Logger } from '../../core/logger.js';
import { errorMessage, MeshfedError } from '../../core/errors.js';
import type { MembershipPool } from '../../core/types.js';
import { systemClock, type Clock } from '../../core/clock.js';
import { Memberlist, type MemberlistTimings } from './memberlist/index.js';
import { Serf, type SerfConfig } from './serf/index.js';
import type { SerfEvent, SerfMember } from './serf/types.js';
import type { GossipTransport } from './transport/index.js';
import type { Keyring } from './wire/index.js';

/** Error codes of the gossip plugin. */
export const GossipErrorCode = Object.freeze({
  JOIN: 'MESHFED_ERR_GOSSIP_JOIN',
  NOT_RUNNING: 'MESHFED_ERR_GOSSIP_NOT_RUNNING',
} as const);

/** Options of a {@link GossipPool}. */
export interface GossipPoolOptions {
  /** `lan` or `wan`. */
  readonly pool: MembershipPool;
  /** Member name (`node` on LAN, `node.dc` on WAN). */
  readonly name: string;
  /** A listening transport (the pool owns it). */
  readonly transport: GossipTransport;
  /** Address and port to advertise (defaults: the transport's). */
  readonly advertiseAddr?: string;
  readonly advertisePort?: number;
  /** memberlist timings (LAN_TIMINGS / WAN_TIMINGS with overrides). */
  readonly timings: MemberlistTimings;
  /** Serf tags. */
  readonly tags: Readonly<Record<string, string>>;
  /** Encryption keys, if any. */
  readonly keyring?: Keyring | undefined;
  readonly verifyIncoming?: boolean;
  readonly verifyOutgoing?: boolean;
  /** Failed members are reaped after this long (Consul `reconnect_timeout`). */
  readonly reconnectTimeoutMs: number;
  /** Refuse sends without node names (WAN through gateways). */
  readonly requireNodeNames?: boolean;
  /** Merge veto (Consul: WAN rejects non-servers, LAN rejects other datacenters). */
  readonly merge?: (members: SerfMember[]) => string | undefined;
  /** Every serf event (membership, user events, queries). */
  readonly onEvent: (event: SerfEvent) => void;
  /** Extra serf settings (tests shorten timers). */
  readonly serf?: Partial<Omit<SerfConfig, 'nodeName' | 'tags' | 'createMemberlist' | 'logger' | 'onEvent' | 'merge' | 'keyring'>>;
  readonly logger: Logger;
  readonly clock?: Clock;
}

/** Options of {@link GossipPool.retryJoin}. */
export interface RetryJoinOptions {
  /** Addresses (`[name/]host[:port]`). */
  readonly addresses: readonly string[];
  /** Wait between attempts. */
  readonly intervalMs: number;
  /** Give up after this many attempts (0 = never). */
  readonly maxAttempts: number;
  /** Stops the loop. */
  readonly signal: AbortSignal;
}

/** One running pool. */
export class GossipPool {
  readonly pool: MembershipPool;
  readonly #serf: Serf;
  readonly #memberlist: Memberlist;
  readonly #logger: Logger;
  readonly #clock: Clock;
  #joined = false;

  private constructor(pool: MembershipPool, serf: Serf, memberlist: Memberlist, logger: Logger, clock: Clock) {
    this.pool = pool;
    this.#serf = serf;
    this.#memberlist = memberlist;
    this.#logger = logger;
    this.#clock = clock;
  }

  /** Start the pool: memberlist announces itself, serf starts its timers. Nothing is joined yet. */
  static async create(o: GossipPoolOptions): Promise<GossipPool> {
    let memberlist: Memberlist | undefined;
    const logger = o.logger.child({ pool: o.pool });
    const serf = await Serf.create({
      ...o.serf,
      nodeName: o.name,
      tags: o.tags,
      logger,
      ...(o.clock ? { clock: o.clock } : {}),
      reconnectTimeoutMs: o.reconnectTimeoutMs,
      gossipIntervalMs: o.timings.gossipIntervalMs,
      ...(o.keyring ? { keyring: o.keyring } : {}),
      ...(o.merge ? { merge: o.merge } : {}),
      onEvent: o.onEvent,
      createMemberlist: async (delegates, meta) => {
        memberlist = await Memberlist.create({
          ...o.timings,
          name: o.name,
          transport: o.transport,
          ...(o.advertiseAddr ? { advertiseAddr: o.advertiseAddr } : {}),
          ...(o.advertisePort ? { advertisePort: o.advertisePort } : {}),
          ...(o.keyring ? { keyring: o.keyring } : {}),
          gossipVerifyIncoming: o.verifyIncoming ?? true,
          gossipVerifyOutgoing: o.verifyOutgoing ?? true,
          requireNodeNames: o.requireNodeNames ?? false,
          delegateProtocolMin: meta.delegateVersions.dmin,
          delegateProtocolMax: meta.delegateVersions.dmax,
          delegateProtocolVersion: meta.delegateVersions.dcur,
          delegates,
          logger,
          ...(o.clock ? { clock: o.clock } : {}),
        });
        return memberlist;
      },
    });
    if (!memberlist) throw new MeshfedError(GossipErrorCode.NOT_RUNNING, 'gossip: serf did not create its memberlist');
    return new GossipPool(o.pool, serf, memberlist, logger, o.clock ?? systemClock);
  }

  /** The serf layer (for user events and queries). */
  get serf(): Serf {
    return this.#serf;
  }

  /** The gossip address other nodes use, `ip:port`. */
  get advertiseAddress(): string {
    return this.#memberlist.advertiseAddress;
  }

  /** Whether at least one join succeeded. */
  get joined(): boolean {
    return this.#joined;
  }

  /** Members, left and failed ones included until reaped. */
  members(): SerfMember[] {
    return this.#serf.members();
  }

  /** Join through the given addresses now; rejects naming every failure when none answered. */
  async join(addresses: readonly string[]): Promise<number> {
    try {
      const n = await this.#serf.join(addresses, true);
      this.#joined = true;
      return n;
    } catch (err) {
      throw new MeshfedError(GossipErrorCode.JOIN, `gossip (${this.pool}): join failed: ${errorMessage(err)}`, { cause: err });
    }
  }

  /**
   * Join in the background until it works, `maxAttempts` is reached, or `signal` aborts
   * (Consul's `retry_join`). Resolves with the number of nodes contacted, or 0 when it gave up.
   */
  async retryJoin(o: RetryJoinOptions): Promise<number> {
    for (let attempt = 1; !o.signal.aborted; attempt++) {
      try {
        const n = await this.join(o.addresses);
        this.#logger.info(`Join ${this.pool} completed. Synced with ${n} initial agents`);
        return n;
      } catch (err) {
        if (o.maxAttempts > 0 && attempt >= o.maxAttempts) {
          this.#logger.error(`Join ${this.pool} failed after ${attempt} attempts, giving up: ${errorMessage(err)}`);
          return 0;
        }
        this.#logger.warn(`Join ${this.pool} failed, will retry in ${o.intervalMs} ms (attempt ${attempt}): ${errorMessage(err)}`);
      }
      await new Promise<void>((resolve) => {
        // One listener per wait, removed again: a join retried for hours must not pile them up.
        const onAbort = (): void => {
          this.#clock.clearTimeout(t);
          resolve();
        };
        const t = this.#clock.setTimeout(() => {
          o.signal.removeEventListener('abort', onAbort);
          resolve();
        }, o.intervalMs);
        o.signal.addEventListener('abort', onAbort, { once: true });
      });
    }
    return 0;
  }

  /** Leave gracefully: members end `left` at every other node. */
  async leave(): Promise<void> {
    await this.#serf.leave();
  }

  /** Stop (no leave). */
  async shutdown(): Promise<void> {
    await this.#serf.shutdown();
  }

  /** Counts for status pages. */
  stats(): { members: number; alive: number; failed: number; left: number; address: string; health_score: number } {
    const ms = this.members();
    return {
      members: ms.length,
      alive: ms.filter((m) => m.status === 'alive').length,
      failed: ms.filter((m) => m.status === 'failed').length,
      left: ms.filter((m) => m.status === 'left').length,
      address: this.advertiseAddress,
      health_score: this.#memberlist.healthScore(),
    };
  }
}
