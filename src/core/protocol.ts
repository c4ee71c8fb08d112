/**
 * Protocol constants shared by every plugin, spelled exactly as on the wire
 * (shared/spec/wanfed-reference.md §1.1–§1.3). Only constants and pure name helpers live here.
 */

/** First byte on the server RPC port (spec §1.1). */
export const RpcType = Object.freeze({
  /** Single net/rpc msgpack stream. */
  Consul: 0,
  /** Raft hand-off (unused by meshfed: etcd replaces Raft). */
  Raft: 1,
  /** Legacy muxado: no longer supported, always refused. */
  Multiplex: 2,
  /** Upgrade to TLS, then an inner type byte. */
  TLS: 3,
  /** yamux session; each stream is a msgpack-RPC connection. */
  MultiplexV2: 4,
  /** Snapshot save/restore stream. */
  Snapshot: 5,
  /** Enterprise network-area gossip (refused). */
  Gossip: 6,
  /** TLS without client-certificate verification (auto-encrypt only). */
  TLSInsecure: 7,
  /** Internal gRPC server. */
  GRPC: 8,
  /** Raft forwarding (newest Consul; unused here). */
  RaftForwarding: 9,
} as const);

/** A value of {@link RpcType}. */
export type RpcTypeByte = (typeof RpcType)[keyof typeof RpcType];

/** Highest assigned type byte: a first byte above it is a native TLS ClientHello (spec §2.2). */
export const RPC_MAX_TYPE_VALUE = 9;

/** ALPN protocol ids (spec §1.2). Note the slash in the WAN gossip ones. */
export const Alpn = Object.freeze({
  RpcConsul: 'consul/rpc-single',
  RpcRaft: 'consul/raft',
  RpcMultiplexV2: 'consul/rpc-multi',
  RpcSnapshot: 'consul/rpc-snapshot',
  RpcGossip: 'consul/rpc-gossip',
  RpcGRPC: 'consul/rpc-grpc',
  RpcRaftForwarding: 'consul/raft-forwarding',
  WanGossipPacket: 'consul/wan-gossip/packet',
  WanGossipStream: 'consul/wan-gossip/stream',
} as const);

/** A value of {@link Alpn}. */
export type AlpnId = (typeof Alpn)[keyof typeof Alpn];

/** The ALPN ids a server advertises on its RPC port, in Consul's order (`RPCNextProtos`). */
export const RPC_NEXT_PROTOS: readonly string[] = Object.freeze([
  Alpn.RpcConsul,
  Alpn.RpcRaft,
  Alpn.RpcMultiplexV2,
  Alpn.RpcSnapshot,
  Alpn.RpcGossip,
  Alpn.RpcGRPC,
  Alpn.RpcRaftForwarding,
  Alpn.WanGossipPacket,
  Alpn.WanGossipStream,
]);

const TYPE_TO_ALPN: ReadonlyMap<number, string> = new Map<number, string>([
  [RpcType.Consul, Alpn.RpcConsul],
  [RpcType.Raft, Alpn.RpcRaft],
  [RpcType.MultiplexV2, Alpn.RpcMultiplexV2],
  [RpcType.Snapshot, Alpn.RpcSnapshot],
  [RpcType.Gossip, Alpn.RpcGossip],
  [RpcType.GRPC, Alpn.RpcGRPC],
  [RpcType.RaftForwarding, Alpn.RpcRaftForwarding],
]);

/**
 * `RPCType.ALPNString()`: the ALPN id that carries an RPC type through a mesh gateway, or `''`
 * when that type cannot be routed through a gateway (2, 3, 7 and unknown values).
 */
export function alpnForRpcType(type: number): string {
  return TYPE_TO_ALPN.get(type) ?? '';
}

/** Strip one trailing dot: `consul.` → `consul` (TLS names never carry it). */
export function trimDomain(domain: string): string {
  return domain.endsWith('.') ? domain.slice(0, -1) : domain;
}

/**
 * `ServerSNI(dc, node)` (spec §1.3): `server.<dc>.<domain>` for node `''` or `'*'`, otherwise
 * `<node>.server.<dc>.<domain>`.
 */
export function serverSni(datacenter: string, node: string, domain: string): string {
  const d = trimDomain(domain);
  if (node === '' || node === '*') return `server.${datacenter}.${d}`;
  return `${node}.server.${datacenter}.${d}`;
}
