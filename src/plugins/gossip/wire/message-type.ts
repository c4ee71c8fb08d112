/**
 * memberlist's protocol constants, spelled as on the wire (memberlist 0.2.2 `net.go`,
 * `state.go`, `security.go`; hashicorp-wire.md §7).
 */

/** The first byte of every memberlist message (Go's `messageType`, a uint8 iota). */
export const MessageType = Object.freeze({
  ping: 0,
  indirectPing: 1,
  ackResp: 2,
  suspect: 3,
  alive: 4,
  dead: 5,
  pushPull: 6,
  compound: 7,
  user: 8,
  compress: 9,
  encrypt: 10,
  nackResp: 11,
  hasCrc: 12,
  err: 13,
} as const);

/** A value of {@link MessageType}. */
export type MessageTypeValue = (typeof MessageType)[keyof typeof MessageType];

/** The name of a message type byte, for messages (`ping`, `type 200` when unknown). */
export function messageTypeName(type: number): string {
  for (const [name, value] of Object.entries(MessageType)) if (value === type) return name;
  return `type ${type}`;
}

/** `compress.Algo` values (Go's `compressionType`): only LZW exists. */
export const CompressionAlgo = Object.freeze({ lzw: 0 } as const);

/** `pushNodeState.State` values (Go's `NodeStateType`). */
export const NodeState = Object.freeze({ alive: 0, suspect: 1, dead: 2, left: 3 } as const);

/** A value of {@link NodeState}. */
export type NodeStateValue = (typeof NodeState)[keyof typeof NodeState];

/**
 * Encryption versions (Go's `encryptionVersion`): 0 = AES-GCM with PKCS7 padding (memberlist
 * protocol 1 only), 1 = AES-GCM without padding (protocol ≥ 2, what every current peer sends).
 */
export const EncryptionVersion = Object.freeze({ padded: 0, unpadded: 1 } as const);

/** A value of {@link EncryptionVersion}. */
export type EncryptionVersionValue = (typeof EncryptionVersion)[keyof typeof EncryptionVersion];

/** memberlist's limit on a push-pull (or encrypted stream) payload: 20 MiB (`maxPushStateBytes`). */
export const MAX_PUSH_STATE_BYTES = 20 * 1024 * 1024;

/** memberlist's limit on node metadata (`MetaMaxSize`). */
export const META_MAX_SIZE = 512;
