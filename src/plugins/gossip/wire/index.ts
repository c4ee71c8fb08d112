/**
 * The memberlist wire layer (memberlist 0.2.2 as used by serf 0.9.4 and Consul): message types
 * and bodies, compound / hasCrc / compress wrappers, Go-exact LZW, and AES-GCM packet and stream
 * encryption with a keyring (hashicorp-wire.md §7–§8). No SWIM logic, no sockets: the `gossip`
 * plugin builds on this.
 *
 * Every decoder is bounded and total: hostile bytes give a MeshfedError with a
 * `MESHFED_ERR_GOSSIP_…` code ({@link GossipWireErrorCode}), never a crash.
 *
 * @example
 * ```ts
 * import { MessageType, encodeMessage, addCrc, compressMessage, encryptPacket, decryptPacket,
 *   unpackPacket, Keyring } from 'meshfed/plugins/gossip/wire';
 * const keyring = new Keyring(Buffer.alloc(32, 7));
 * const ping = encodeMessage(MessageType.ping, { SeqNo: 3, Node: 'serf-b' });
 * const packet = encryptPacket(keyring, addCrc(compressMessage(ping, { onlyIfSmaller: true })));
 * const { messages } = unpackPacket(decryptPacket(keyring, packet));
 * // messages[0] = { type: 0, body: { SeqNo: 3, Node: 'serf-b', SourceAddr: …, … } }
 * ```
 */
export { GossipWireErrorCode, gossipWireError, isGossipWireError, type GossipWireErrorCodeValue } from './errors.js';
export {
  CompressionAlgo,
  EncryptionVersion,
  MAX_PUSH_STATE_BYTES,
  META_MAX_SIZE,
  MessageType,
  NodeState,
  messageTypeName,
  type EncryptionVersionValue,
  type MessageTypeValue,
  type NodeStateValue,
} from './message-type.js';
export {
  AckResp,
  Alive,
  Compress,
  Dead,
  ErrResp,
  IndirectPing,
  NackResp,
  Ping,
  PushNodeState,
  PushPullHeader,
  Suspect,
  UserMsgHeader,
  decodeVsn,
  encodeVsn,
  type AliveInput,
  type PingInput,
  type ProtocolVersions,
  type PushNodeStateInput,
} from './messages.js';
export {
  MAX_COMPOUND_PARTS,
  SAFE_COMPOUND_PARTS,
  MESSAGE_SCHEMAS,
  addCrc,
  compressMessage,
  decodeCompound,
  decodeMessage,
  decodePushPull,
  decompressMessage,
  encodeCompound,
  encodeMessage,
  encodePushPull,
  unpackPacket,
  verifyCrc,
  type CompoundParts,
  type CompressOptions,
  type MessageBodies,
  type MessageInputs,
  type PushPull,
  type PushPullInput,
  type UnpackOptions,
  type UnpackedPacket,
  type WireDecodeOptions,
  type WireMessage,
} from './message-codec.js';
export { DEFAULT_MAX_DECOMPRESSED_BYTES, lzwCompress, lzwDecompress, type LzwDecompressOptions } from './lzw.js';
export { Keyring } from './keyring.js';
export {
  decryptPacket,
  decryptPayload,
  decryptStream,
  encryptPacket,
  encryptStream,
  encryptedLength,
  encryptedStreamFrameLength,
  type EncryptOptions,
} from './encryption.js';
