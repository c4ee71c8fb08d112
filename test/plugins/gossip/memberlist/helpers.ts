import { Memberlist, type MemberlistConfig, type MemberlistDelegates, type MemberlistNode } from '../../../../src/plugins/gossip/memberlist/index.js';
import { createNetTransport } from '../../../../src/plugins/gossip/transport/index.js';
import { createMemoryLogger, type MemoryLogger } from '../../../../src/testing/index.js';
import type { GossipTransport } from '../../../../src/plugins/gossip/transport/index.js';

/** Fast timings for loopback tests (failure detection in ~1 s). */
export const FAST = Object.freeze({
  tcpTimeoutMs: 2_000,
  indirectChecks: 2,
  retransmitMult: 3,
  suspicionMult: 3,
  suspicionMaxTimeoutMult: 3,
  pushPullIntervalMs: 2_000,
  probeIntervalMs: 200,
  probeTimeoutMs: 100,
  gossipIntervalMs: 50,
  gossipNodes: 3,
  gossipToTheDeadTimeMs: 5_000,
});

export interface TestNode {
  readonly m: Memberlist;
  readonly logger: MemoryLogger;
  readonly joins: string[];
  readonly leaves: MemberlistNode[];
  readonly updates: MemberlistNode[];
  readonly msgs: Buffer[];
}

export interface StartOptions extends Partial<Omit<MemberlistConfig, 'name' | 'transport'>> {
  readonly transport?: GossipTransport;
  readonly delegates?: MemberlistDelegates;
}

/** One node on a real loopback UDP+TCP transport, recording its events. */
export async function startNode(name: string, options: StartOptions = {}): Promise<TestNode> {
  const logger = createMemoryLogger('debug');
  const transport = options.transport ?? (await createNetTransport({ bindAddr: '127.0.0.1', bindPort: 0, logger }));
  const joins: string[] = [];
  const leaves: MemberlistNode[] = [];
  const updates: MemberlistNode[] = [];
  const msgs: Buffer[] = [];
  const given = options.delegates ?? {};
  const m = await Memberlist.create({
    ...FAST,
    ...options,
    name,
    transport,
    logger,
    delegates: {
      ...given,
      events: given.events ?? {
        notifyJoin: (n) => joins.push(n.name),
        notifyLeave: (n) => leaves.push(n),
        notifyUpdate: (n) => updates.push(n),
      },
      delegate: given.delegate ?? {
        nodeMeta: () => new Uint8Array(0),
        notifyMsg: (b) => msgs.push(b),
        getBroadcasts: () => [],
        localState: () => new Uint8Array(0),
        mergeRemoteState: () => undefined,
      },
    },
  });
  return { m, logger, joins, leaves, updates, msgs };
}

/** Whether every node sees exactly `names` as its live members. */
export function allSee(nodes: readonly TestNode[], names: readonly string[]): boolean {
  const want = [...names].sort().join(',');
  return nodes.every((n) => n.m.members().map((x) => x.name).sort().join(',') === want);
}

export async function shutdownAll(nodes: readonly TestNode[]): Promise<void> {
  await Promise.all(nodes.map((n) => n.m.shutdown()));
}
