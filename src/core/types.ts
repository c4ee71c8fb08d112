/**
 * Value types that cross plugin boundaries through hooks. Kept protocol-neutral: a connection
 * is a Node `Duplex`, a gateway an address string, an xDS resource a plain object.
 */
import type { Duplex } from 'node:stream';

/** A bidirectional byte stream: a `net.Socket`, a `tls.TLSSocket`, a yamux stream, an in-memory pipe. */
export type Connection = Duplex;

/**
 * What a caller wants to reach through `onDial`. Exactly one of `alpn` / `rpcType` says which
 * protocol the returned connection must already speak.
 */
export type DialTarget = DialTargetBase & ({ readonly alpn: string; readonly rpcType?: undefined } | { readonly rpcType: number; readonly alpn?: undefined });

/** Fields common to every {@link DialTarget}. */
export interface DialTargetBase {
  /** Datacenter of the destination server. */
  readonly datacenter: string;
  /** Node name of the destination server (`'*'` = any server of the datacenter). */
  readonly node: string;
  /** `host:port` of the destination when known (same-DC dials); gateway dials ignore it. */
  readonly address?: string | undefined;
}

/** Per-dial context handed to `onDial` taps. */
export interface DialContext {
  /** Aborts the dial (caller gave up, deadline passed, agent stopping). Taps must honour it. */
  readonly signal: AbortSignal;
  /** The local datacenter of the dialing agent. */
  readonly localDatacenter: string;
}

/** Key of `onRpcAccept`: an RPC type byte (0–9) or an ALPN id (`consul/rpc-multi`, …). */
export type RpcAcceptKey = number | string;

/** What the RPC listener knows about an accepted connection when it dispatches it. */
export interface RpcAcceptInfo {
  /** The key it was dispatched under. */
  readonly key: RpcAcceptKey;
  /** Remote `ip:port`, for logs and per-client limits. */
  readonly remoteAddress: string;
  /** Whether the bytes travel inside TLS (type byte 3 or native TLS). */
  readonly tls: boolean;
  /** ALPN protocol negotiated on native TLS, if any. */
  readonly alpn?: string | undefined;
  /** Aborted when the agent stops: long-running handlers must close the connection then. */
  readonly signal: AbortSignal;
}

/** One candidate mesh gateway for a datacenter. */
export interface GatewayCandidate {
  /** `host:port` to dial. */
  readonly address: string;
  /** Datacenter the gateway belongs to. */
  readonly datacenter: string;
  /** Where the locator learned it: local catalog, replicated federation state, or `primary_gateways`. */
  readonly source: 'local' | 'federation-state' | 'fallback' | 'other';
}

/** Context of an `onGatewayList` call. */
export interface GatewayListContext {
  /** Datacenter the caller wants to reach. */
  readonly targetDatacenter: string;
  /** Which list the locator is building: the local gateways or the primary's. */
  readonly list: 'local' | 'primary';
}

/** One Envoy v3 resource as a plain object; `@type` is the full type URL. */
export interface XdsResource {
  readonly '@type': string;
  readonly name: string;
  readonly [field: string]: unknown;
}

/** The resource set of one proxy, by Envoy v3 resource kind. */
export interface XdsResources {
  readonly listeners: readonly XdsResource[];
  readonly clusters: readonly XdsResource[];
  readonly endpoints: readonly XdsResource[];
  readonly routes: readonly XdsResource[];
}

/** The proxy an xDS build is for. */
export interface XdsProxyInfo {
  /** Proxy (service instance) id. */
  readonly id: string;
  /** Service kind, e.g. `mesh-gateway`. */
  readonly kind: string;
  /** Datacenter of the proxy. */
  readonly datacenter: string;
  /** Service meta of the proxy's registration. */
  readonly meta: Readonly<Record<string, string>>;
}

/** Context of an `onXdsBuild` call. */
export interface XdsBuildContext {
  /** The proxy whose resources are being built. */
  readonly proxy: XdsProxyInfo;
  /** The proxy-config snapshot the base resources were built from (plugin-defined shape). */
  readonly snapshot: unknown;
}

/** Gossip pool a membership event came from. */
export type MembershipPool = 'lan' | 'wan';

/** A gossip member as seen by the serf layer. */
export interface Member {
  /** Member name (`node` in the LAN pool, `node.dc` in the WAN pool). */
  readonly name: string;
  /** Gossip address `ip`. */
  readonly address: string;
  /** Gossip port. */
  readonly port: number;
  /** Serf tags (`role`, `dc`, `port`, …). */
  readonly tags: Readonly<Record<string, string>>;
  /** Serf member status. */
  readonly status: 'alive' | 'leaving' | 'left' | 'failed';
}

/** A membership change: join, leave, fail, update (tags changed) or reap (forgotten). */
export interface MembershipEvent {
  readonly type: 'join' | 'leave' | 'fail' | 'update' | 'reap';
  readonly pool: MembershipPool;
  readonly members: readonly Member[];
}

/** Context of leadership hooks. */
export interface LeadershipContext {
  /** Datacenter this agent leads. */
  readonly datacenter: string;
  /** Aborted when leadership is lost or the agent stops: leader routines stop on it. */
  readonly signal: AbortSignal;
}

/** Context of lifecycle hooks. */
export interface LifecycleHookContext {
  /** Aborted if the step runs past its time bound. */
  readonly signal: AbortSignal;
}
