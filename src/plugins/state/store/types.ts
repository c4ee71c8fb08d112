/**
 * Record, command and snapshot types of the state store. Field names are Consul's (PascalCase)
 * because these records go on the wire unchanged (RPC msgpack, HTTP JSON).
 */

/** Raft-style indexes every stored record carries. */
export interface RaftIndex {
  /** Index of the write that created the record. */
  readonly CreateIndex: number;
  /** Index of the last write that changed the record. */
  readonly ModifyIndex: number;
}

/** A catalog node. */
export interface NodeRecord extends RaftIndex {
  /** Optional node UUID. */
  readonly ID: string;
  /** Node name (unique, case-insensitive). */
  readonly Node: string;
  /** Node address: an IP or a DNS name. */
  readonly Address: string;
  /** Datacenter of the node. */
  readonly Datacenter: string;
  /** Extra addresses, e.g. `lan`, `wan`. */
  readonly TaggedAddresses: Readonly<Record<string, string>>;
  /** Node metadata (≤ 64 keys, values ≤ 512 characters). */
  readonly Meta: Readonly<Record<string, string>>;
}

/** Service kinds as Consul names them; `''` is a typical service. */
export type ServiceKind = '' | 'connect-proxy' | 'mesh-gateway' | 'terminating-gateway' | 'ingress-gateway';

/** Every accepted {@link ServiceKind}. */
export const SERVICE_KINDS: readonly ServiceKind[] = Object.freeze(['', 'connect-proxy', 'mesh-gateway', 'terminating-gateway', 'ingress-gateway']);

/** A service address with port, as in `TaggedAddresses.lan` / `.wan`. */
export interface ServiceAddress {
  /** IP or DNS name. */
  readonly Address: string;
  /** Port, 0–65535. */
  readonly Port: number;
}

/** A service instance registered on a node (Consul `NodeService`). */
export interface NodeService extends RaftIndex {
  /** Instance ID, unique per node (defaults to the service name). */
  readonly ID: string;
  /** Service name. */
  readonly Service: string;
  /** Service kind. */
  readonly Kind: ServiceKind;
  /** Tags. */
  readonly Tags: readonly string[];
  /** Service address; `''` means the node's address. */
  readonly Address: string;
  /** Tagged addresses such as `lan` / `wan`. */
  readonly TaggedAddresses: Readonly<Record<string, ServiceAddress>>;
  /** Port, 0–65535 (non-zero for mesh gateways). */
  readonly Port: number;
  /** Service metadata. */
  readonly Meta: Readonly<Record<string, string>>;
}

/** A row of the services table: the node name plus the service. */
export interface ServiceEntry {
  /** Name of the node the service is registered on. */
  readonly Node: string;
  /** The service. */
  readonly Service: NodeService;
}

/** Health check states. */
export type HealthStatus = 'passing' | 'warning' | 'critical';

/** Every accepted {@link HealthStatus}. */
export const HEALTH_STATUSES: readonly HealthStatus[] = Object.freeze(['passing', 'warning', 'critical']);

/** A health check (Consul `HealthCheck`). */
export interface HealthCheck extends RaftIndex {
  /** Node the check belongs to. */
  readonly Node: string;
  /** Check ID, unique per node. */
  readonly CheckID: string;
  /** Human name. */
  readonly Name: string;
  /** Status. */
  readonly Status: HealthStatus;
  /** Free-form notes. */
  readonly Notes: string;
  /** Output of the last run. */
  readonly Output: string;
  /** Service instance the check belongs to; `''` for node-level checks. */
  readonly ServiceID: string;
  /** Name of that service (filled by the store). */
  readonly ServiceName: string;
}

/** Consul's flat `ServiceNode` (catalog service listing). Indexes are the service's. */
export interface ServiceNode extends RaftIndex {
  /** Node ID. */
  readonly ID: string;
  /** Node name. */
  readonly Node: string;
  /** Node address. */
  readonly Address: string;
  /** Node datacenter. */
  readonly Datacenter: string;
  /** Node tagged addresses. */
  readonly TaggedAddresses: Readonly<Record<string, string>>;
  /** Node metadata. */
  readonly NodeMeta: Readonly<Record<string, string>>;
  /** Service kind. */
  readonly ServiceKind: ServiceKind;
  /** Service instance ID. */
  readonly ServiceID: string;
  /** Service name. */
  readonly ServiceName: string;
  /** Service tags. */
  readonly ServiceTags: readonly string[];
  /** Service address. */
  readonly ServiceAddress: string;
  /** Service tagged addresses. */
  readonly ServiceTaggedAddresses: Readonly<Record<string, ServiceAddress>>;
  /** Service port. */
  readonly ServicePort: number;
  /** Service metadata. */
  readonly ServiceMeta: Readonly<Record<string, string>>;
}

/** Node + service + the node's and service's checks (Consul `CheckServiceNode`). */
export interface CheckServiceNode {
  /** The node. */
  readonly Node: NodeRecord;
  /** The service instance. */
  readonly Service: NodeService;
  /** Node-level checks and checks of this service instance. */
  readonly Checks: readonly HealthCheck[];
}

/** A datacenter's federation state (spec §5.1). */
export interface FederationState extends RaftIndex {
  /** Datacenter name; the table key, case-insensitive. */
  readonly Datacenter: string;
  /** All mesh-gateway instances of that datacenter. */
  readonly MeshGateways: readonly CheckServiceNode[];
  /** RFC 3339 time of the last update. */
  readonly UpdatedAt: string;
  /** ModifyIndex of the record in the primary datacenter. */
  readonly PrimaryModifyIndex: number;
}

/** Raft message types, numbered as Consul's. */
export const MessageType = Object.freeze({
  /** Catalog register. */
  Register: 0,
  /** Catalog deregister. */
  Deregister: 1,
  /** Federation state upsert/delete. */
  FederationState: 30,
} as const);

/** Input shape of a service in a {@link RegisterRequest}; indexes are assigned by the store. */
export interface ServiceInput {
  /** Instance ID; defaults to `Service`. */
  ID?: string;
  /** Service name (required). */
  Service: string;
  /** Kind; defaults to `''`. */
  Kind?: ServiceKind;
  /** Tags. */
  Tags?: string[];
  /** Address; `''` = node address. */
  Address?: string;
  /** Tagged addresses. */
  TaggedAddresses?: Record<string, ServiceAddress>;
  /** Port. */
  Port?: number;
  /** Metadata. */
  Meta?: Record<string, string>;
}

/** Input shape of a check in a {@link RegisterRequest}. */
export interface CheckInput {
  /** Node; defaults to the request's node and must match it. */
  Node?: string;
  /** Check ID; defaults to `Name`. */
  CheckID?: string;
  /** Name. */
  Name?: string;
  /** Status; defaults to `critical`. */
  Status?: string;
  /** Notes. */
  Notes?: string;
  /** Output. */
  Output?: string;
  /** Service instance ID on the same node, or `''`. */
  ServiceID?: string;
}

/** Consul `RegisterRequest` (message type 0). */
export interface RegisterRequest {
  /** Datacenter of the node. */
  Datacenter?: string;
  /** Node ID. */
  ID?: string;
  /** Node name (required). */
  Node: string;
  /** Node address (required). */
  Address: string;
  /** Node tagged addresses. */
  TaggedAddresses?: Record<string, string>;
  /** Node metadata. */
  NodeMeta?: Record<string, string>;
  /** Optional service. */
  Service?: ServiceInput;
  /** Optional single check (legacy field). */
  Check?: CheckInput;
  /** Optional checks. */
  Checks?: CheckInput[];
  /** Leave an existing node untouched. */
  SkipNodeUpdate?: boolean;
}

/** Consul `DeregisterRequest` (message type 1): the node, or one service, or one check. */
export interface DeregisterRequest {
  /** Datacenter (informational). */
  Datacenter?: string;
  /** Node name (required). */
  Node: string;
  /** Service instance to remove (with its checks). */
  ServiceID?: string;
  /** Check to remove. */
  CheckID?: string;
}

/** Federation state operations. */
export type FederationStateOp = 'upsert' | 'delete';

/** Input shape of a federation state; indexes are assigned by the store. */
export interface FederationStateInput {
  /** Datacenter (required). */
  Datacenter: string;
  /** Mesh gateways of that datacenter. */
  MeshGateways?: CheckServiceNode[];
  /** RFC 3339 time; defaults to Go's zero time. */
  UpdatedAt?: string;
  /** Primary's ModifyIndex; 0 → stamped with the write's index (spec §5.3). */
  PrimaryModifyIndex?: number;
}

/** Consul `FederationStateRequest` (message type 30). */
export interface FederationStateRequest {
  /** Routing datacenter (informational here). */
  Datacenter?: string;
  /** Operation. */
  Op: FederationStateOp;
  /** The state (upsert) or the record to delete (only `Datacenter` is read). */
  State: FederationStateInput;
}

/** A typed FSM command, applied through `StateStore.apply(index, command)`. */
export type Command =
  | { readonly Type: typeof MessageType.Register; readonly Body: RegisterRequest }
  | { readonly Type: typeof MessageType.Deregister; readonly Body: DeregisterRequest }
  | { readonly Type: typeof MessageType.FederationState; readonly Body: FederationStateRequest };

/** Names of the store's tables. */
export type TableName = 'nodes' | 'services' | 'checks' | 'federation-states';

/** Every {@link TableName}. */
export const TABLE_NAMES: readonly TableName[] = Object.freeze(['nodes', 'services', 'checks', 'federation-states']);

/** Result of every read: the index to block on (≥ 1) and the value. */
export interface QueryResult<T> {
  /** Max index of the tables read, never below 1. */
  readonly index: number;
  /** What was read. */
  readonly value: T;
}

/** One table in a {@link StoreSnapshot}. */
export interface TableSnapshot<T> {
  /** Max index of the table. */
  readonly Index: number;
  /** Every record, in key order. */
  readonly Records: readonly T[];
}

/** The whole store as plain JSON-able data. */
export interface StoreSnapshot {
  /** Format version. */
  readonly Version: 1;
  /** Latest index of the store when taken. */
  readonly LatestIndex: number;
  /** Every table. */
  readonly Tables: {
    readonly nodes: TableSnapshot<NodeRecord>;
    readonly services: TableSnapshot<ServiceEntry>;
    readonly checks: TableSnapshot<HealthCheck>;
    readonly 'federation-states': TableSnapshot<FederationState>;
  };
}
