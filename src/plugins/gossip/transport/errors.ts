/** Error codes of the gossip transport layer (`MESHFED_ERR_GOSSIP_…`). */
export const GossipTransportErrorCode = Object.freeze({
  /** The UDP/TCP listeners could not be bound (port taken, bad address, no retries left). */
  BIND: 'MESHFED_ERR_GOSSIP_BIND',
  /** A stream dial failed (refused, unreachable, reset). */
  DIAL: 'MESHFED_ERR_GOSSIP_DIAL',
  /** A stream dial did not complete within its timeout. */
  DIAL_TIMEOUT: 'MESHFED_ERR_GOSSIP_DIAL_TIMEOUT',
  /** A packet was refused: empty, larger than the transport's maximum, or the send failed. */
  PACKET: 'MESHFED_ERR_GOSSIP_PACKET',
  /** An address is not `host:port`, or no advertise address can be chosen. */
  ADDRESS: 'MESHFED_ERR_GOSSIP_ADDRESS',
  /** The transport was used after `shutdown()`. */
  SHUTDOWN: 'MESHFED_ERR_GOSSIP_SHUTDOWN',
  /** A second packet or stream handler was registered while one is already set. */
  HANDLER: 'MESHFED_ERR_GOSSIP_HANDLER',
} as const);

/** One of {@link GossipTransportErrorCode}. */
export type GossipTransportErrorCode = (typeof GossipTransportErrorCode)[keyof typeof GossipTransportErrorCode];
