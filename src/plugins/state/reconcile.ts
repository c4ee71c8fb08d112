/**
 * The leader's reconciliation of server members into the catalog (Consul's `leader.go`
 * `reconcileMember` / `reconcileReaped`, for servers): the LAN pool decides, the catalog follows.
 *
 * For every LAN member that is a server of this datacenter (serf tags `role=consul`, `dc=<local>`):
 * - `alive` (or `leaving`): the node exists with the member's address, with service `consul`
 *   (port = its `port` tag) and check `serfHealth` passing;
 * - `failed`: its `serfHealth` check is critical (`Agent not live or unreachable`); the
 *   registration stays, so health queries stop returning it;
 * - `left`, or reaped: the node is deregistered.
 * On gaining leadership the leader also deregisters every catalog node that carries service
 * `consul` but is no longer a LAN member. The leader never deregisters itself. Writes happen only
 * when the catalog differs, so reconciling again is cheap and writes nothing.
 *
 * Client agents are not reconciled (meshfed client agents keep no catalog registration of their
 * own yet), and neither are nodes without service `consul`: gateways and other registrations are
 * managed by whoever registered them.
 */
import type { Logger } from '../../core/logger.js';
import type { Member, MembershipEvent } from '../../core/types.js';
import { errorMessage } from '../../core/errors.js';
import { MessageType, type Command, type StateStore } from './store/index.js';

/** Service and check a server carries. */
export const CONSUL_SERVICE = 'consul';
export const SERF_CHECK_ID = 'serfHealth';
const SERF_CHECK_NAME = 'Serf Health Status';
const ALIVE_OUTPUT = 'Agent alive and reachable';
const FAILED_OUTPUT = 'Agent not live or unreachable';

/** What the reconciler needs. */
export interface ServerReconcilerOptions {
  /** The local datacenter. */
  readonly datacenter: string;
  /** This server's node name (never deregistered by itself). */
  readonly selfNode: string;
  /** The local store (reads). */
  readonly store: Pick<StateStore, 'node' | 'nodeService' | 'nodeCheck' | 'serviceNodes'>;
  /** Apply a command as the leader (through the backend). */
  readonly write: (command: Command) => Promise<unknown>;
  /** The LAN pool's current members. */
  readonly members: () => readonly Member[];
  readonly logger: Logger;
}

/** Whether `m` is a server of `dc`. */
function isLocalServer(m: Member, dc: string): boolean {
  return m.tags['role'] === 'consul' && (m.tags['dc'] ?? '').toLowerCase() === dc.toLowerCase();
}

/** Leader-only: keeps the catalog's server registrations in line with the LAN pool. */
export class ServerReconciler {
  readonly #o: ServerReconcilerOptions;
  /** Members waiting to be reconciled (latest state wins), and whether a drain is running. */
  readonly #pending = new Map<string, { member: Member; reaped: boolean }>();
  #draining: Promise<void> | undefined;
  #signal: AbortSignal | undefined;

  constructor(options: ServerReconcilerOptions) {
    this.#o = options;
  }

  /**
   * Leadership gained: reconcile every server member, then deregister catalog servers that are no
   * longer members; membership events are handled until `signal` aborts (leadership lost).
   */
  async lead(signal: AbortSignal): Promise<void> {
    this.#signal = signal;
    const members = this.#o.members();
    for (const m of members) if (isLocalServer(m, this.#o.datacenter)) this.#pending.set(m.name.toLowerCase(), { member: m, reaped: false });
    await this.#drain();
    if (signal.aborted) return;
    const known = new Set(members.filter((m) => m.status !== 'left').map((m) => m.name.toLowerCase()));
    for (const sn of this.#o.store.serviceNodes(CONSUL_SERVICE).value) {
      const node = sn.Node;
      if (known.has(node.toLowerCase()) || node.toLowerCase() === this.#o.selfNode.toLowerCase()) continue;
      await this.#try(`deregister ${node} (no longer a member)`, { Type: MessageType.Deregister, Body: { Node: node } });
      if (signal.aborted) return;
    }
  }

  /** A LAN membership event; acted on only while leading. */
  onMembership(event: MembershipEvent): void {
    const signal = this.#signal;
    if (event.pool !== 'lan' || !signal || signal.aborted) return;
    let added = false;
    for (const m of event.members) {
      if (!isLocalServer(m, this.#o.datacenter)) continue;
      this.#pending.set(m.name.toLowerCase(), { member: m, reaped: event.type === 'reap' });
      added = true;
    }
    if (added) void this.#drain();
  }

  /** Reconcile pending members one at a time (one drain at a time). */
  #drain(): Promise<void> {
    if (this.#draining) return this.#draining;
    const run = async (): Promise<void> => {
      while (this.#pending.size > 0 && this.#signal && !this.#signal.aborted) {
        const [key, next] = this.#pending.entries().next().value as [string, { member: Member; reaped: boolean }];
        this.#pending.delete(key);
        const cmd = this.#commandFor(next.member, next.reaped);
        if (cmd) await this.#try(`reconcile server ${next.member.name} (${next.reaped ? 'reaped' : next.member.status})`, cmd);
      }
    };
    // Cleared once settled (not inside run: a run that never awaits would clear it before it is
    // set); members queued after the loop's last check but before this point start a new drain.
    const p = run().finally(() => {
      this.#draining = undefined;
      if (this.#pending.size > 0 && this.#signal && !this.#signal.aborted) void this.#drain();
    });
    this.#draining = p;
    return p;
  }

  async #try(what: string, cmd: Command): Promise<void> {
    try {
      await this.#o.write(cmd);
      this.#o.logger.debug('catalog reconciled', { what });
    } catch (err) {
      // The next leadership or membership change reconciles again.
      if (!this.#signal?.aborted) this.#o.logger.warn('catalog reconciliation failed', { what, err: errorMessage(err) });
    }
  }

  /** The write that brings the catalog in line with `m`, or `undefined` when it already is. */
  #commandFor(m: Member, reaped: boolean): Command | undefined {
    const s = this.#o.store;
    const node = s.node(m.name);
    if (reaped || m.status === 'left') {
      if (!node || m.name.toLowerCase() === this.#o.selfNode.toLowerCase()) return undefined;
      return { Type: MessageType.Deregister, Body: { Node: node.Node } };
    }
    const failed = m.status === 'failed';
    const status = failed ? 'critical' : 'passing';
    const output = failed ? FAILED_OUTPUT : ALIVE_OUTPUT;
    const port = Number(m.tags['port'] ?? '0');
    const check = node ? s.nodeCheck(node.Node, SERF_CHECK_ID) : undefined;
    const service = node ? s.nodeService(node.Node, CONSUL_SERVICE) : undefined;
    const checkOk = check?.Status === status;
    if (failed) {
      // Only the check changes; a failed server unknown to the catalog is not added.
      if (!node || checkOk) return undefined;
      return { Type: MessageType.Register, Body: { Node: node.Node, Address: node.Address, SkipNodeUpdate: true, Checks: [{ CheckID: SERF_CHECK_ID, Name: SERF_CHECK_NAME, Status: status, Output: output }] } };
    }
    const serviceOk = service !== undefined && (!(port > 0) || service.Port === port);
    if (node && node.Address === m.address && checkOk && serviceOk) return undefined;
    return {
      Type: MessageType.Register,
      Body: {
        Node: node?.Node ?? m.name,
        Address: m.address,
        // keep what the server registered about itself (e.g. its WAN address)
        TaggedAddresses: node && node.Address === m.address ? { ...node.TaggedAddresses } : { lan: m.address },
        ...(node && node.Address === m.address ? { NodeMeta: { ...node.Meta } } : {}),
        Service: { ID: CONSUL_SERVICE, Service: CONSUL_SERVICE, Port: port > 0 ? port : (service?.Port ?? 0) },
        Checks: [{ CheckID: SERF_CHECK_ID, Name: SERF_CHECK_NAME, Status: status, Output: output }],
      },
    };
  }
}
