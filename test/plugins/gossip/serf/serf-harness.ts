/** A cluster of Serf instances on the fake memberlist, driven by a FakeClock and explicit gossip ticks. */
import { FakeClock } from '../../../../src/testing/fake-clock.js';
import { createMemoryLogger, type MemoryLogger } from '../../../../src/testing/memory-logger.js';
import { Serf, type SerfConfig, type SerfEvent, type SerfMemberEventType } from '../../../../src/plugins/gossip/serf/index.js';
import { FakeNetwork, type FakeMemberlist } from './fake-memberlist.js';

/** One node of a test cluster. */
export interface TestNode {
  readonly name: string;
  readonly serf: Serf;
  readonly ml: FakeMemberlist;
  readonly events: SerfEvent[];
  readonly logger: MemoryLogger;
}

/** A test cluster. */
export interface TestCluster {
  readonly net: FakeNetwork;
  readonly clock: FakeClock;
  readonly nodes: TestNode[];
}

/** Create one Serf on `net`. */
export async function makeNode(
  net: FakeNetwork, clock: FakeClock, name: string, tags: Record<string, string> = {}, extra: Partial<SerfConfig> = {},
): Promise<TestNode> {
  const events: SerfEvent[] = [];
  const logger = createMemoryLogger('debug');
  const serf = await Serf.create({
    nodeName: name,
    tags,
    logger,
    clock,
    createMemberlist: net.factory(name),
    random: () => 0,
    ...extra,
    onEvent: (e) => {
      events.push(e);
      extra.onEvent?.(e);
    },
  });
  const ml = net.nodes.get(name);
  if (!ml) throw new Error('factory not called');
  return { name, serf, ml, events, logger };
}

/** `n` nodes named a, b, c…, all joined to the first, and gossip settled. */
export async function makeCluster(n: number, tags: (name: string) => Record<string, string> = () => ({}), extra: Partial<SerfConfig> = {}): Promise<TestCluster> {
  const net = new FakeNetwork();
  const clock = new FakeClock(1_000_000);
  const nodes: TestNode[] = [];
  for (let i = 0; i < n; i++) {
    const name = String.fromCharCode(97 + i);
    nodes.push(await makeNode(net, clock, name, tags(name), extra));
  }
  const first = nodes[0] as TestNode;
  for (const node of nodes.slice(1)) await node.serf.join([`${first.ml.addr}:7946`]);
  net.tick(8);
  return { net, clock, nodes };
}

/** Drive gossip and time until `p` settles. */
export async function drive<T>(c: Pick<TestCluster, 'net' | 'clock'>, p: Promise<T>, stepMs = 100, maxSteps = 500): Promise<T> {
  let done = false;
  const watched = p.finally(() => {
    done = true;
  });
  for (let i = 0; i < maxSteps && !done; i++) {
    c.net.tick();
    await c.clock.advanceAsync(stepMs);
  }
  return watched;
}

/** The status `viewer` has for `name` (undefined when not a member). */
export function statusOf(viewer: TestNode, name: string): string | undefined {
  return viewer.serf.members().find((m) => m.name === name)?.status;
}

/** Names in the member events of `type` `node` received, in order. */
export function memberEvents(node: TestNode, type: SerfMemberEventType): string[] {
  return node.events.flatMap((e) => (e.kind === 'member' && e.type === type ? e.members.map((m) => m.name) : []));
}

/** User events received by `node` as `name=payload`. */
export function userEvents(node: TestNode): string[] {
  return node.events.flatMap((e) => (e.kind === 'user' ? [`${e.name}=${e.payload.toString()}`] : []));
}

/** Log lines at `level` whose message includes `text`. */
export function logLines(node: TestNode, level: string, text: string): number {
  return node.logger.entries.filter((e) => e.level === level && e.msg.includes(text)).length;
}

/** Stop every node. */
export async function stopAll(c: TestCluster): Promise<void> {
  for (const n of c.nodes) await n.serf.shutdown();
}
