/**
 * The WAN gossip transport under WAN federation via mesh gateways (spec §3.2). It wraps the WAN
 * pool's normal UDP/TCP transport: traffic to members of this datacenter is unchanged; packets to
 * another datacenter travel as length-prefixed frames over pooled TLS connections with ALPN
 * `consul/wan-gossip/packet`, and streams (push-pull, TCP pings, user messages) over one TLS
 * connection each with ALPN `consul/wan-gossip/stream`, both dialed through the kernel's
 * `onDial` (which the wanfed plugin routes through a mesh gateway). Inbound traffic from other
 * datacenters arrives on the RPC port and is handed to {@link ingestPacket}/{@link ingestStream}.
 */
import type { Duplex } from 'node:stream';
import type { Clock } from '../../core/clock.js';
import { systemClock } from '../../core/clock.js';
import { errorMessage, MeshfedError } from '../../core/errors.js';
import type { Dialer } from '../../core/kernel-services.js';
import type { Logger } from '../../core/logger.js';
import { Alpn } from '../../core/protocol.js';
import type { DialOptions, GossipAddress, GossipTransport, PacketHandler, StreamHandler, TransportCapabilities } from '../gossip/transport/index.js';
import { splitNodeName } from './node-name.js';
import { PacketConnPool } from './packet-pool.js';
import { encodePacketFrame, GOSSIP_PACKET_MAX_BYTES, GOSSIP_PACKET_MAX_IDLE_MS } from './packet-stream.js';

/** Options of {@link WanfedTransport}. */
export interface WanfedTransportOptions {
  /** The WAN pool's default transport (same-DC traffic and ingestion). */
  readonly inner: GossipTransport;
  /** This server's datacenter. */
  readonly datacenter: string;
  /** The kernel dialer (`onDial`): cross-DC targets go through a mesh gateway. */
  readonly dialer: Dialer;
  readonly logger: Logger;
  /** Idle time of pooled packet connections (default 2 min). */
  readonly maxIdleMs?: number;
  readonly clock?: Clock;
}

/** Counters for status output. */
export interface WanfedTransportStats {
  readonly packetsSent: number;
  readonly packetErrors: number;
  readonly streamsDialed: number;
  readonly idlePacketConns: number;
}

/** A {@link GossipTransport} that reaches other datacenters through mesh gateways. */
export class WanfedTransport implements GossipTransport {
  readonly #o: WanfedTransportOptions;
  readonly #pool: PacketConnPool;
  #sent = 0;
  #errors = 0;
  #streams = 0;

  /** Wrap `options.inner`. */
  constructor(options: WanfedTransportOptions) {
    this.#o = options;
    this.#pool = new PacketConnPool(options.maxIdleMs ?? GOSSIP_PACKET_MAX_IDLE_MS, options.clock ?? systemClock);
  }

  get capabilities(): TransportCapabilities {
    return { ...this.#o.inner.capabilities, nodeAware: true };
  }

  get maxPacketSize(): number {
    return this.#o.inner.maxPacketSize;
  }

  /** Counters. */
  stats(): WanfedTransportStats {
    return { packetsSent: this.#sent, packetErrors: this.#errors, streamsDialed: this.#streams, idlePacketConns: this.#pool.idle };
  }

  finalAdvertiseAddr(ip: string, port: number): { ip: string; port: number } {
    return this.#o.inner.finalAdvertiseAddr(ip, port);
  }

  #remoteDc(name: string): [node: string, dc: string] | undefined {
    const [node, dc] = splitNodeName(name);
    return dc === this.#o.datacenter ? undefined : [node, dc];
  }

  async writeToAddress(bytes: Uint8Array, to: GossipAddress): Promise<Date> {
    const remote = this.#remoteDc(to.name);
    if (!remote) return this.#o.inner.writeToAddress(bytes, to);
    if (bytes.length > GOSSIP_PACKET_MAX_BYTES) {
      throw new MeshfedError('MESHFED_ERR_WANFED_PACKET', `gossip packet size ${bytes.length} exceeds threshold of ${GOSSIP_PACKET_MAX_BYTES}`, { plugin: 'wanfed' });
    }
    const [node, dc] = remote;
    const pc = await this.#pool.acquireOrDial(to.name, () => this.#o.dialer.dial({ datacenter: dc, node, alpn: Alpn.WanGossipPacket }));
    try {
      await writeAll(pc.conn, encodePacketFrame(bytes));
      this.#sent++;
    } catch (err) {
      pc.failed = true;
      this.#errors++;
      throw new MeshfedError('MESHFED_ERR_WANFED_PACKET', `sending a gossip packet to ${to.name} through a mesh gateway failed: ${errorMessage(err)}`, { plugin: 'wanfed', cause: err });
    } finally {
      this.#pool.returnOrClose(pc);
    }
    return new Date();
  }

  onPacket(handler: PacketHandler): () => void {
    return this.#o.inner.onPacket(handler);
  }

  async dialAddress(to: GossipAddress, options?: DialOptions): Promise<Duplex> {
    const remote = this.#remoteDc(to.name);
    if (!remote) return this.#o.inner.dialAddress(to, options);
    const [node, dc] = remote;
    // the timeout argument is ignored on this path (the gateway dial has its own deadline), as in Consul
    const conn = await this.#o.dialer.dial({ datacenter: dc, node, alpn: Alpn.WanGossipStream }, options?.signal ? { signal: options.signal } : {});
    this.#streams++;
    return conn;
  }

  onStream(handler: StreamHandler): () => void {
    return this.#o.inner.onStream(handler);
  }

  ingestPacket(buf: Buffer, from: string, timestamp: Date): void {
    this.#o.inner.ingestPacket(buf, from, timestamp);
  }

  ingestStream(conn: Duplex): void {
    this.#o.inner.ingestStream(conn);
  }

  /** Cross-DC probes already travel over TCP through the gateway: no extra TCP fallback ping. */
  disableTcpPingsForNode(name: string): boolean {
    try {
      return this.#remoteDc(name) !== undefined;
    } catch {
      return false;
    }
  }

  async shutdown(): Promise<void> {
    this.#pool.close();
    await this.#o.inner.shutdown();
  }
}

function writeAll(conn: Duplex, buf: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    if (conn.destroyed || !conn.writable) {
      reject(new Error('connection closed'));
      return;
    }
    conn.write(buf, (err) => (err ? reject(err) : resolve()));
  });
}
