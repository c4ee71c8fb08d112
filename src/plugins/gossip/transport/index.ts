/**
 * The gossip transport layer: the {@link GossipTransport} contract, the UDP+TCP
 * {@link NetTransport}, and the shared base for other transports (in-memory, wanfed).
 */
export { joinHostPort, splitHostPort } from './address.js';
export { GossipTransportErrorCode } from './errors.js';
export {
  DEFAULT_DIAL_TIMEOUT_MS,
  MAX_UDP_PACKET_SIZE,
  type DialOptions,
  type GossipAddress,
  type GossipPacket,
  type GossipTransport,
  type PacketHandler,
  type StreamHandler,
  type TransportCapabilities,
} from './gossip-transport.js';
export { createNetTransport, DEFAULT_UDP_RECV_BUFFER_SIZE, NetTransport, type NetTransportOptions } from './net-transport.js';
export { RateLimitedLog, type RateLimitedLogOptions } from './rate-limited-log.js';
export { TransportCore, type TransportCoreOptions, type TransportStats } from './transport-core.js';
