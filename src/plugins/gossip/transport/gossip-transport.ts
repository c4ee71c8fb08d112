/**
 * The gossip transport contract: what memberlist's `Transport` + `NodeAwareTransport` +
 * `IngestionAwareTransport` are in Go, as one TypeScript interface. Packets are best-effort
 * (UDP semantics); streams are reliable, ordered and half-closable (TCP semantics). The future
 * `gossip` plugin talks only to this interface, and the `wanfed` transport (wanfed-reference.md §3)
 * will wrap a {@link GossipTransport} and route by node name through mesh gateways.
 */
import type { Duplex } from 'node:stream';

/** Largest UDP payload over IPv4 (65 535 − 20 IP header − 8 UDP header). */
export const MAX_UDP_PACKET_SIZE = 65_507;

/** Default stream dial timeout: memberlist's `TCPTimeout` (hashicorp-wire.md §5). */
export const DEFAULT_DIAL_TIMEOUT_MS = 10_000;

/** Where a packet or stream goes: the node's name and its gossip address. */
export interface GossipAddress {
  /**
   * The destination node's name (`<node>.<dc>` in a WAN pool). Node-aware transports route by it
   * (wanfed picks a gateway from the datacenter part); plain transports use only `addr`.
   * May be empty when the caller does not know the name (a join by bare address).
   */
  readonly name: string;
  /** `host:port` of the node's gossip port (IPv6 hosts bracketed). */
  readonly addr: string;
}

/** One inbound packet, as handed to the {@link GossipTransport.onPacket} handler. */
export interface GossipPacket {
  /** The packet bytes (at least 1 byte). The handler owns this buffer. */
  readonly buf: Buffer;
  /**
   * `host:port` the packet came from. For UDP this is the sender's gossip port, because
   * transports send packets from the port they listen on (spec §5: UDP and TCP share one port).
   * For ingested packets it is whatever the ingesting code passed (wanfed: the gateway's address).
   */
  readonly from: string;
  /** When the packet was read, taken as close to the I/O as possible (used for RTT estimates). */
  readonly timestamp: Date;
}

/** Handler of inbound packets. It runs synchronously on the I/O path: do not block in it. */
export type PacketHandler = (packet: GossipPacket) => void;
/** Handler of inbound streams. It owns the stream: it must read, and eventually close, it. */
export type StreamHandler = (conn: Duplex) => void;

/** Options of {@link GossipTransport.dialAddress}. */
export interface DialOptions {
  /** Aborts the dial; a dial aborted before it completes rejects with `MESHFED_ERR_ABORTED`. */
  readonly signal?: AbortSignal;
  /** Give up after this long (default {@link DEFAULT_DIAL_TIMEOUT_MS}); rejects with `MESHFED_ERR_GOSSIP_DIAL_TIMEOUT`. */
  readonly timeoutMs?: number;
}

/** What a transport can do beyond the base contract, declared up front (checked before use). */
export interface TransportCapabilities {
  /**
   * The transport routes by {@link GossipAddress.name} (Go's `NodeAwareTransport` that is not the
   * shim): the caller must pass real node names, e.g. memberlist's `RequireNodeNames`. A plain
   * UDP/TCP transport sets this to `false` and ignores the name.
   */
  readonly nodeAware: boolean;
}

/**
 * A gossip transport: best-effort packets and reliable streams to other nodes, plus ingestion of
 * traffic that arrived on another listener (the RPC port's `consul/wan-gossip/*` ALPN handlers,
 * wanfed-reference.md §2.4) into the same handlers.
 *
 * Inbound traffic is delivered through one handler per kind ({@link onPacket}, {@link onStream})
 * rather than an async iterator: packets are best-effort, so queueing them behind a slow consumer
 * only adds latency that corrupts RTT-based probing; a synchronous handler delivers each packet
 * the moment it is read with no second buffer and no second drop policy, the same path serves
 * UDP and ingested packets, and a consumer that wants a queue can build one on top.
 */
export interface GossipTransport {
  /** What this transport can do beyond the base contract. */
  readonly capabilities: TransportCapabilities;

  /** Largest packet {@link writeToAddress} accepts and inbound delivery passes, in bytes. */
  readonly maxPacketSize: number;

  /**
   * The address to advertise to other nodes. `ip` (if not empty) wins; otherwise the bound
   * address, or — when bound to a wildcard address — a private IPv4 of this host. `port` (if not
   * 0) wins; otherwise the bound port. Throws `MESHFED_ERR_GOSSIP_ADDRESS` if `ip` is not an IP
   * address or no address can be chosen.
   */
  finalAdvertiseAddr(ip: string, port: number): { ip: string; port: number };

  /**
   * Send one packet, best-effort. Resolves with the time it was handed to the network (for RTT
   * estimates). Rejects with `MESHFED_ERR_GOSSIP_PACKET` if `bytes` is empty, larger than
   * {@link maxPacketSize}, or the send failed locally; a packet lost in transit is not an error.
   */
  writeToAddress(bytes: Uint8Array, to: GossipAddress): Promise<Date>;

  /**
   * Set the handler of inbound packets (UDP and {@link ingestPacket}). Only one handler may be set:
   * a second call throws `MESHFED_ERR_GOSSIP_HANDLER`. Returns a function that removes it.
   * Packets arriving while no handler is set are dropped (and logged at debug level).
   * A handler that throws is logged; the transport keeps running.
   */
  onPacket(handler: PacketHandler): () => void;

  /**
   * Open a stream to a node, for push-pull, the fallback TCP ping and large user messages.
   * Rejects with `MESHFED_ERR_ABORTED` if `signal` fires, `MESHFED_ERR_GOSSIP_DIAL_TIMEOUT` after
   * `timeoutMs`, `MESHFED_ERR_GOSSIP_DIAL` on a network error (message names the address) and
   * `MESHFED_ERR_GOSSIP_SHUTDOWN` after shutdown. The stream allows half-close.
   */
  dialAddress(to: GossipAddress, options?: DialOptions): Promise<Duplex>;

  /**
   * Set the handler of inbound streams (accepted and {@link ingestStream}). Only one handler may be
   * set (second call throws `MESHFED_ERR_GOSSIP_HANDLER`); returns a function that removes it.
   * Streams arriving while no handler is set are closed. If the handler throws, that stream is
   * destroyed and the error logged; the transport keeps running.
   */
  onStream(handler: StreamHandler): () => void;

  /**
   * Feed a packet that arrived elsewhere (e.g. framed on a `consul/wan-gossip/packet` connection)
   * into the packet handler, with the caller's `from` and `timestamp`. Throws
   * `MESHFED_ERR_GOSSIP_PACKET` for an empty packet (the caller should close the connection it
   * came from) and `MESHFED_ERR_GOSSIP_SHUTDOWN` after shutdown. The size limit is the caller's
   * (wanfed caps at 4 MiB); {@link maxPacketSize} does not apply.
   */
  ingestPacket(buf: Buffer, from: string, timestamp: Date): void;

  /**
   * Feed a stream that arrived elsewhere (e.g. a `consul/wan-gossip/stream` connection) into the
   * stream handler. After shutdown the stream is destroyed and `MESHFED_ERR_GOSSIP_SHUTDOWN` thrown.
   */
  ingestStream(conn: Duplex): void;

  /**
   * Optional hint for the prober: `true` when the TCP fallback ping to `name` should be skipped
   * (wanfed: the node is in another datacenter, so its probes already travel over TCP through a
   * gateway). Absent or `false` means "do TCP pings as usual".
   */
  disableTcpPingsForNode?(name: string): boolean;

  /**
   * Stop: close the listeners, abort pending dials, destroy every stream this transport dialed,
   * accepted or ingested, and free every socket and timer. Idempotent; later calls resolve when
   * the first one finishes.
   */
  shutdown(): Promise<void>;
}
