/**
 * memberlist, wire-compatible with HashiCorp memberlist 0.2.2 (hashicorp-wire.md §5–§7): SWIM
 * probing with indirect probes and a TCP fallback, Lifeguard awareness and suspicion, gossip,
 * push-pull, compression, CRC, AES-GCM encryption and user messages, over any
 * {@link GossipTransport}. The serf layer and the `gossip` plugin build on it.
 *
 * @example
 * ```ts
 * import { Memberlist, LAN_TIMINGS } from 'meshfed/plugins/gossip/memberlist';
 * import { createNetTransport } from 'meshfed/plugins/gossip/transport';
 * const a = await Memberlist.create({ name: 'a', transport: await createNetTransport({ bindAddr: '127.0.0.1' }), ...LAN_TIMINGS });
 * const b = await Memberlist.create({ name: 'b', transport: await createNetTransport({ bindAddr: '127.0.0.1' }) });
 * await b.join([`a/${a.advertiseAddress}`]);
 * // soon: a.members() and b.members() both list a and b as alive
 * await b.leave(5_000); await b.shutdown(); await a.shutdown();
 * ```
 */
export { Memberlist, MemberlistErrorCode, gridDelay, pushPullScale } from './memberlist.js';
export {
  LAN_TIMINGS,
  LOCAL_TIMINGS,
  WAN_TIMINGS,
  PROTOCOL_VERSION_DEFAULT,
  PROTOCOL_VERSION_MAX,
  PROTOCOL_VERSION_MIN,
  type MemberlistConfig,
  type MemberlistTimings,
} from './config.js';
export { TransmitLimitedQueue, retransmitLimit, type Broadcast } from './broadcast-queue.js';
export { Awareness, Suspicion, remainingSuspicionTime, suspicionTimeout } from './suspicion.js';
export { ipFromBytes, ipToBytes } from './ip.js';
export { readStreamMessage, decodeStreamMessage, type StreamMessage, type ReadStreamOptions } from './stream-reader.js';
export {
  nodeAddress,
  type MemberlistAliveDelegate,
  type MemberlistApi,
  type MemberlistConflictDelegate,
  type MemberlistDelegate,
  type MemberlistDelegates,
  type MemberlistEventDelegate,
  type MemberlistMergeDelegate,
  type MemberlistNode,
  type MemberlistPingDelegate,
} from './types.js';
