/**
 * An in-memory memberlist for serf tests: implements `MemberlistApi`, calls serf's delegates the
 * way memberlist 0.2.2 does (notifyJoin/Leave/Update, push-pull on join with the merge veto,
 * user messages from getBroadcasts), but only moves when the test calls {@link FakeNetwork.tick}.
 * Memberlist-level membership (alive/dead) spreads instantly inside a joined cluster; serf
 * messages spread one gossip round per tick.
 */
import type { GossipAddress } from '../../../../src/plugins/gossip/transport/index.js';
import type { MemberlistApi, MemberlistDelegates, MemberlistNode } from '../../../../src/plugins/gossip/memberlist/types.js';
import { NodeState, type NodeStateValue } from '../../../../src/plugins/gossip/wire/index.js';
import type { SerfMemberlistMeta } from '../../../../src/plugins/gossip/serf/index.js';

const PORT = 7946;

/** One packet sent with sendToAddress, for assertions. */
export interface SentPacket {
  readonly from: string;
  readonly to: GossipAddress;
  readonly msg: Uint8Array;
}

/** The simulated network. */
export class FakeNetwork {
  readonly nodes = new Map<string, FakeMemberlist>();
  readonly sent: SentPacket[] = [];
  #pending: { to: FakeMemberlist; msg: Buffer }[] = [];
  #nextIp = 1;

  /** A `createMemberlist` factory for a node named `name`. */
  factory(name: string): (delegates: MemberlistDelegates, meta: SerfMemberlistMeta) => Promise<MemberlistApi> {
    return (delegates, meta) => {
      const ml = new FakeMemberlist(this, name, `10.0.0.${this.#nextIp++}`, delegates, meta);
      this.nodes.set(name, ml);
      ml.start();
      return Promise.resolve(ml);
    };
  }

  /** The node at `host:port`. */
  byAddr(addr: string): FakeMemberlist | undefined {
    for (const n of this.nodes.values()) if (`${n.addr}:${PORT}` === addr) return n;
    return undefined;
  }

  /** Queue a packet for delivery at the next tick. */
  post(from: FakeMemberlist, to: GossipAddress, msg: Uint8Array): void {
    this.sent.push({ from: from.name, to, msg: new Uint8Array(msg) });
    const dest = this.byAddr(to.addr);
    if (dest) this.#pending.push({ to: dest, msg: Buffer.from(msg) });
  }

  /** Deliver pending packets (including those sent while delivering, up to a bound). */
  flush(): void {
    for (let round = 0; round < 10 && this.#pending.length > 0; round++) {
      const batch = this.#pending;
      this.#pending = [];
      for (const p of batch) if (p.to.running) p.to.delegates.delegate?.notifyMsg(p.msg);
    }
  }

  /** One gossip round: flush packets, every node sends its broadcasts to every alive peer it knows, flush again. */
  tick(rounds = 1): void {
    for (let r = 0; r < rounds; r++) {
      this.flush();
      for (const n of [...this.nodes.values()]) {
        if (!n.running) continue;
        const msgs = n.delegates.delegate?.getBroadcasts(2, 1400) ?? [];
        for (const peer of n.alivePeers()) for (const m of msgs) peer.delegates.delegate?.notifyMsg(Buffer.from(m));
      }
      this.flush();
    }
  }

  /** Simulate a crash: the node stops; every peer that knew it sees it dead (no leave). */
  crash(name: string): void {
    const n = this.nodes.get(name);
    if (!n) throw new Error(`no node ${name}`);
    n.running = false;
    for (const p of this.nodes.values()) if (p !== n && p.running) p.markDown(name, NodeState.dead);
  }

  /** Bring a crashed node back up (its process still thinks everyone is alive), reachable for joins. */
  heal(name: string): void {
    const n = this.nodes.get(name);
    if (!n) throw new Error(`no node ${name}`);
    n.running = true;
  }
}

interface ViewEntry {
  node: MemberlistNode;
  up: boolean;
}

/** One fake memberlist instance. */
export class FakeMemberlist implements MemberlistApi {
  readonly protocolVersion = 2;
  readonly name: string;
  readonly addr: string;
  readonly delegates: MemberlistDelegates;
  readonly meta: SerfMemberlistMeta;
  running = true;
  incarnation = 1;
  joinCalls: string[][] = [];
  readonly #net: FakeNetwork;
  readonly view = new Map<string, ViewEntry>();

  constructor(net: FakeNetwork, name: string, addr: string, delegates: MemberlistDelegates, meta: SerfMemberlistMeta) {
    this.#net = net;
    this.name = name;
    this.addr = addr;
    this.delegates = delegates;
    this.meta = meta;
  }

  /** Add self (memberlist's setAlive). */
  start(): void {
    const self = this.#snapshot();
    this.view.set(this.name, { node: self, up: true });
    this.delegates.events?.notifyJoin(self);
  }

  #snapshot(state: NodeStateValue = NodeState.alive): MemberlistNode {
    const d = this.meta.delegateVersions;
    return {
      name: this.name,
      addr: this.addr,
      port: PORT,
      meta: this.delegates.delegate?.nodeMeta(512) ?? new Uint8Array(0),
      state,
      vsn: { pmin: 1, pmax: 5, pcur: 2, dmin: d.dmin, dmax: d.dmax, dcur: d.dcur },
      incarnation: this.incarnation,
    };
  }

  /** Peers (not self) this node believes are up and that are running. */
  alivePeers(): FakeMemberlist[] {
    const out: FakeMemberlist[] = [];
    for (const [name, e] of this.view) {
      if (name === this.name || !e.up) continue;
      const n = this.#net.nodes.get(name);
      if (n?.running) out.push(n);
    }
    return out;
  }

  /** Learn that `node` is alive (memberlist aliveNode). */
  learn(node: MemberlistNode): void {
    if (node.name === this.name) return;
    const cur = this.view.get(node.name);
    if (cur?.up) return;
    const veto = this.delegates.alive?.notifyAlive(node);
    if (veto !== undefined) return;
    this.view.set(node.name, { node, up: true });
    this.delegates.events?.notifyJoin(node);
  }

  /** Learn that `name` is dead or left. */
  markDown(name: string, state: NodeStateValue): void {
    const cur = this.view.get(name);
    if (!cur?.up) return;
    cur.up = false;
    cur.node = { ...cur.node, state };
    this.delegates.events?.notifyLeave(cur.node);
  }

  localNode(): MemberlistNode {
    return this.#snapshot();
  }

  members(): MemberlistNode[] {
    return [...this.view.values()].filter((e) => e.up).map((e) => e.node);
  }

  numMembers(): number {
    return this.members().length;
  }

  async join(addresses: readonly string[]): Promise<number> {
    this.joinCalls.push([...addresses]);
    let ok = 0;
    const errors: string[] = [];
    for (const a of addresses) {
      const addr = a.includes('/') ? a.slice(a.indexOf('/') + 1) : a;
      const peer = this.#net.byAddr(addr.includes(':') ? addr : `${addr}:${PORT}`);
      if (!peer || !peer.running || !this.running) {
        errors.push(`${a}: connection refused`);
        continue;
      }
      // memberlist push-pull: both sides veto through the merge delegate, then merge nodes, then user state.
      const mine = this.members();
      const theirs = peer.members();
      const vetoRemote = peer.delegates.merge?.notifyMerge(mine);
      if (vetoRemote !== undefined) {
        errors.push(`${a}: ${vetoRemote}`);
        continue;
      }
      const vetoLocal = this.delegates.merge?.notifyMerge(theirs);
      if (vetoLocal !== undefined) {
        errors.push(`${a}: ${vetoLocal}`);
        continue;
      }
      const myState = this.delegates.delegate?.localState(true) ?? new Uint8Array(0);
      // The remote merges our nodes and state, then answers with its own.
      const cluster = new Set<FakeMemberlist>([this, peer]);
      for (const n of [...mine, ...theirs]) {
        const m = this.#net.nodes.get(n.name);
        if (m?.running) cluster.add(m);
      }
      const everyone = [...cluster];
      const theirState = peer.delegates.delegate?.localState(true) ?? new Uint8Array(0);
      for (const x of everyone) for (const y of everyone) if (x !== y) x.learn(y.localNode());
      peer.delegates.delegate?.mergeRemoteState(Buffer.from(myState), true);
      this.delegates.delegate?.mergeRemoteState(Buffer.from(theirState), true);
      ok++;
    }
    await Promise.resolve();
    if (ok === 0) throw new Error(`failed to join: ${errors.join('; ')}`);
    return ok;
  }

  async leave(): Promise<void> {
    for (const p of this.#net.nodes.values()) if (p !== this && p.running) p.markDown(this.name, NodeState.left);
    const self = this.view.get(this.name);
    if (self) {
      self.up = false;
      self.node = { ...self.node, state: NodeState.left };
      this.delegates.events?.notifyLeave(self.node);
    }
    await Promise.resolve();
  }

  async updateNode(): Promise<void> {
    this.incarnation++;
    const self = this.#snapshot();
    this.view.set(this.name, { node: self, up: true });
    this.delegates.events?.notifyUpdate(self);
    for (const p of this.alivePeers()) {
      const e = p.view.get(this.name);
      if (e) {
        e.node = self;
        p.delegates.events?.notifyUpdate(self);
      }
    }
    await Promise.resolve();
  }

  sendToAddress(to: GossipAddress, msg: Uint8Array): Promise<void> {
    if (this.running) this.#net.post(this, to, msg);
    return Promise.resolve();
  }

  sendBestEffort(to: MemberlistNode, msg: Uint8Array): Promise<void> {
    return this.sendToAddress({ name: to.name, addr: `${to.addr}:${to.port}` }, msg);
  }

  sendReliable(to: MemberlistNode, msg: Uint8Array): Promise<void> {
    return this.sendBestEffort(to, msg);
  }

  healthScore(): number {
    return 0;
  }

  shutdown(): Promise<void> {
    this.running = false;
    return Promise.resolve();
  }
}
