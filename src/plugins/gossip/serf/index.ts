/**
 * The serf message layer (serf 0.9.4, as inside Consul's LAN/WAN pools): message type bytes,
 * message bodies as msgpack schemas, type-byte framing, query filters, node-meta tags and the
 * Lamport clock (hashicorp-wire.md §6–§7 "Serf layer", §12); and {@link Serf}, the membership
 * layer itself (statuses, intents, user events, queries, reaping) on top of any `MemberlistApi`.
 * Serf messages ride in memberlist user messages and push-pull user state (`gossip/wire`).
 *
 * Every decoder is bounded and total: hostile bytes give a MeshfedError with a
 * `MESHFED_ERR_SERF_…` code ({@link SerfErrorCode}), never another exception.
 *
 * @example
 * ```ts
 * import { LamportClock, Serf, SerfMessageType, decodeSerfMessage, decodeTags, encodeSerfMessage, encodeTags }
 *   from 'meshfed/plugins/gossip/serf';
 * const clock = new LamportClock();
 * const leave = encodeSerfMessage(SerfMessageType.leave, { LTime: clock.increment(), Node: 'gw-1' });
 * const msg = decodeSerfMessage(leave);
 * if (msg.type === SerfMessageType.leave) clock.witness(msg.body.LTime);
 * const meta = encodeTags({ role: 'consul', dc: 'dc2' }); // 0xff + msgpack map, keys sorted
 * decodeTags(meta); // { dc: 'dc2', role: 'consul' }
 *
 * const serf = await Serf.create({ nodeName: 'gw-1.dc2', tags: { role: 'consul' }, logger, createMemberlist });
 * await serf.join(['10.0.0.1:8302']);
 * ```
 */
export { SerfErrorCode, isSerfError, serfError, type SerfErrorCodeValue } from './errors.js';
export {
  FilterType,
  MemberStatus,
  QueryFlag,
  SERF_MAX_MESSAGE_BYTES,
  SerfMessageType,
  TAGS_MAX_SIZE,
  TAG_MAGIC_BYTE,
  serfMessageTypeName,
  type FilterTypeValue,
  type SerfMessageTypeValue,
} from './message-type.js';
export {
  FilterNode,
  FilterTag,
  Join,
  KeyRequest,
  KeyResponse,
  LamportTimeSchema,
  Leave,
  Member,
  PushPull,
  Query,
  QueryResponse,
  RelayHeader,
  UdpAddr,
  UserEvent,
  UserEventEntry,
  UserEvents,
  type JoinInput,
  type KeyRequestInput,
  type KeyResponseInput,
  type LeaveInput,
  type MemberInput,
  type PushPullInput,
  type QueryInput,
  type QueryResponseInput,
  type RelayHeaderInput,
  type UserEventInput,
} from './messages.js';
export {
  SERF_MESSAGE_SCHEMAS,
  decodeSerfMessage,
  encodeRelayMessage,
  encodeSerfMessage,
  type SerfDecodeOptions,
  type SerfMessage,
  type SerfMessageBodies,
  type SerfMessageInputs,
  type SerfRelay,
  type SerfRelayInput,
} from './message-codec.js';
export { decodeFilter, encodeFilter, type QueryFilter } from './filter.js';
export { decodeTags, encodeTags, type SerfTags } from './tags.js';
export { LamportClock, toLamportTime, type LamportTime } from './lamport-clock.js';
export { Serf, SerfRuntimeErrorCode, type SerfQueryOptions, type SerfState } from './serf.js';
export {
  INTERNAL_QUERY_PREFIX,
  SERF_DEFAULTS,
  SERF_DELEGATE_VERSIONS,
  USER_EVENT_SANE_LIMIT,
  type SerfConfig,
  type SerfKeyring,
  type SerfMemberlistMeta,
  type SerfTunables,
} from './serf-config.js';
export { PING_VERSION, SerfQueryHandle, compileFilterExpr, coordinatePayload, type SerfNodeResponse, type SerfQueryResult } from './serf-query.js';
export { bytesToIp, ipToBytes } from './ip.js';
export type {
  SerfEvent, SerfMember, SerfMemberEvent, SerfMemberEventType, SerfMemberStatus, SerfQueryEvent, SerfUserEvent,
} from './types.js';
