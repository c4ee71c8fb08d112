/**
 * An in-memory {@link GossipTransport}: packets and streams between transports of one
 * {@link MemoryGossipNetwork}, delivered in-process (streams are in-memory Duplex pairs). The network
 * is a per-test object — never module-global — so several clusters can run in one process. It can
 * lose packets and partition nodes, for testing failure detection without sockets.
 */
import { isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import { MeshfedError } from '../core/errors.js';
import { duplexPair } from './memory-duplex.js';
import {
  GossipTransportErrorCode,
  TransportCore,
  joinHostPort,
  splitHostPort,
  type DialOptions,
  type GossipAddress,
  type GossipTransport,
  type TransportCapabilities,
  type TransportCoreOptions,
} from '../plugins/gossip/transport/index.js';

/**
 * Two connected in-memory streams `[dialer end, listener end]`; `remoteAddress` of each is the other's
 * address (a {@link duplexPair}: backpressure, half-close, a graceful close leaves the peer readable).
 */
export function memoryStreamPair(from: string, to: string): [Duplex, Duplex] {
  return duplexPair({ addresses: [from, to] });
}

/** Options of {@link MemoryGossipNetwork.createTransport}. */
export interface MemoryTransportOptions extends TransportCoreOptions {
  /** `host:port` of the new transport (default: the next free `10.x.y.z:7946`). */
  readonly addr?: string;
  /** Declare the transport node-aware (default false); names are then required on sends and dials. */
  readonly nodeAware?: boolean;
  /** Implementation of the optional `disableTcpPingsForNode` hint (absent by default). */
  readonly disableTcpPingsForNode?: (name: string) => boolean;
}

/** A packet on the in-memory network, as seen by a packet filter. */
export interface MemoryPacket {
  readonly from: string;
  readonly to: string;
  readonly buf: Buffer;
}

interface Inbound {
  receive(buf: Buffer, from: string): void;
  accept(conn: Duplex): void;
  isShutdown(): boolean;
}

interface Attachment {
  send(from: string, to: string, bytes: Uint8Array): void;
  dial(from: string, to: string, signal: AbortSignal): Promise<Duplex>;
  detach(addr: string): void;
}

/** A {@link GossipTransport} on a {@link MemoryGossipNetwork}. Create it with `network.createTransport()`. */
export class MemoryTransport extends TransportCore implements GossipTransport {
  /** Whether names route traffic (set by the `nodeAware` option). */
  readonly capabilities: TransportCapabilities;
  /** This transport's `host:port` on the memory network. */
  readonly addr: string;
  /** See {@link GossipTransport.disableTcpPingsForNode}; present only if given in the options. */
  readonly disableTcpPingsForNode?: (name: string) => boolean;
  readonly #net: Attachment;

  /** @internal use {@link MemoryGossipNetwork.createTransport}. */
  constructor(addr: string, options: MemoryTransportOptions, net: Attachment, register: (inbound: Inbound) => void) {
    super(options);
    this.addr = addr;
    this.#net = net;
    this.capabilities = Object.freeze({ nodeAware: options.nodeAware ?? false });
    if (options.disableTcpPingsForNode) this.disableTcpPingsForNode = options.disableTcpPingsForNode;
    register({
      receive: (buf, from) => this.receivePacket(buf, from, new Date()),
      accept: (conn) => this.deliverStream(conn),
      isShutdown: () => this.isShutdown,
    });
  }

  /** See {@link GossipTransport.finalAdvertiseAddr}: the memory address unless overridden. */
  finalAdvertiseAddr(ip: string, port: number): { ip: string; port: number } {
    const own = splitHostPort(this.addr);
    if (ip && isIP(ip) === 0) throw new MeshfedError(GossipTransportErrorCode.ADDRESS, `advertise address "${ip}" is not an IP address`);
    return { ip: ip || own.host, port: port > 0 ? port : own.port };
  }

  /** See {@link GossipTransport.writeToAddress}; the packet is copied and delivered asynchronously. */
  async writeToAddress(bytes: Uint8Array, to: GossipAddress): Promise<Date> {
    this.checkOutgoing(bytes, to);
    this.#requireName(to);
    splitHostPort(to.addr);
    const sent = new Date();
    this.#net.send(this.addr, to.addr, bytes);
    return sent;
  }

  /** See {@link GossipTransport.dialAddress}; a partitioned peer behaves like a black hole (times out). */
  async dialAddress(to: GossipAddress, options: DialOptions = {}): Promise<Duplex> {
    this.#requireName(to);
    splitHostPort(to.addr);
    return this.dialWithDeadline(to, options, (signal) => this.#net.dial(this.addr, to.addr, signal));
  }

  /** See {@link GossipTransport.shutdown}. */
  async shutdown(): Promise<void> {
    if (this.beginShutdown()) this.#net.detach(this.addr);
  }

  #requireName(to: GossipAddress): void {
    if (this.capabilities.nodeAware && !to.name) {
      throw new MeshfedError(GossipTransportErrorCode.ADDRESS, `node-aware memory transport needs a node name to reach ${to.addr}`);
    }
  }
}

/**
 * A per-test in-memory network for {@link MemoryTransport}s.
 *
 * @example
 * const net = new MemoryGossipNetwork();
 * const a = net.createTransport(), b = net.createTransport();
 * b.onPacket((p) => assert.equal(p.from, a.addr));
 * await a.writeToAddress(Buffer.from([0]), { name: 'b', addr: b.addr });
 * net.partition([a.addr], [b.addr]); // packets dropped, dials time out
 */
export class MemoryGossipNetwork {
  readonly #nodes = new Map<string, Inbound>();
  readonly #cuts = new Set<string>();
  #next = 1;
  #loss = 0;
  #random: () => number = Math.random;
  #filter: ((p: MemoryPacket) => boolean) | undefined;
  #sent = 0;
  #lost = 0;

  /** Create a transport on this network, at `options.addr` or the next free address. */
  createTransport(options: MemoryTransportOptions = {}): MemoryTransport {
    let addr = options.addr;
    if (addr === undefined) {
      do {
        const n = this.#next++;
        addr = joinHostPort(`10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`, 7946);
      } while (this.#nodes.has(addr));
    }
    splitHostPort(addr);
    if (this.#nodes.has(addr)) {
      throw new MeshfedError(GossipTransportErrorCode.BIND, `memory gossip address ${addr} is already in use; pick another or shut the other transport down`);
    }
    const at = addr;
    return new MemoryTransport(at, options, this.#attachment(), (inbound) => this.#nodes.set(at, inbound));
  }

  /** Drop packets and black-hole dials between every address of `a` and every address of `b`, both ways. */
  partition(a: readonly string[], b: readonly string[]): void {
    for (const x of a) {
      for (const y of b) {
        this.#cuts.add(`${x}|${y}`);
        this.#cuts.add(`${y}|${x}`);
      }
    }
  }

  /** Remove every partition. */
  heal(): void {
    this.#cuts.clear();
  }

  /** Lose each packet with probability `fraction` (0 disables), using `random` (inject a seeded one for determinism). */
  setPacketLoss(fraction: number, random: () => number = Math.random): void {
    this.#loss = fraction;
    this.#random = random;
  }

  /** Drop packets for which `filter` returns false (`undefined` removes the filter). */
  setPacketFilter(filter: ((p: MemoryPacket) => boolean) | undefined): void {
    this.#filter = filter;
  }

  /** Packets sent and packets lost (partition, loss, filter or no such address) so far. */
  get stats(): { readonly packetsSent: number; readonly packetsLost: number } {
    return { packetsSent: this.#sent, packetsLost: this.#lost };
  }

  #attachment(): Attachment {
    return {
      send: (from, to, bytes) => this.#send(from, to, bytes),
      dial: (from, to, signal) => this.#dial(from, to, signal),
      detach: (addr) => this.#nodes.delete(addr),
    };
  }

  #send(from: string, to: string, bytes: Uint8Array): void {
    this.#sent++;
    const buf = Buffer.from(bytes); // a copy: the sender may reuse its buffer
    const target = this.#nodes.get(to);
    if (
      !target ||
      this.#cuts.has(`${from}|${to}`) ||
      (this.#loss > 0 && this.#random() < this.#loss) ||
      (this.#filter !== undefined && !this.#filter({ from, to, buf }))
    ) {
      this.#lost++;
      return;
    }
    // Asynchronous like a real network: the sender never runs the receiver's handler.
    setImmediate(() => target.receive(buf, from));
  }

  async #dial(from: string, to: string, signal: AbortSignal): Promise<Duplex> {
    // One macrotask of "connect latency", so callers can abort a dial in flight.
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (signal.aborted) throw new Error('aborted');
    if (this.#cuts.has(`${from}|${to}`)) {
      // A partition is a black hole: the dial hangs until aborted or timed out.
      await new Promise<never>((_, reject) => signal.addEventListener('abort', () => reject(new Error('aborted')), { once: true }));
    }
    const target = this.#nodes.get(to);
    if (!target || target.isShutdown()) {
      throw Object.assign(new Error(`connect ECONNREFUSED ${to} (memory)`), { code: 'ECONNREFUSED' });
    }
    const [client, server] = memoryStreamPair(from, to);
    target.accept(server);
    return client;
  }
}
