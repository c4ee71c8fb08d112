/**
 * msgpack schemas of the catalog RPCs, field for field Consul's `structs` types (embedded Go
 * structs such as `QueryOptions`, `QueryMeta` and `RaftIndex` are inlined, as go-msgpack writes
 * them). Fields meshfed does not model (Weights, Proxy, Connect, …) are left out: a Go peer's
 * extra fields are skipped on decode and absent ones decode as zero values.
 */
import { t, type Infer } from '../rpc/msgpack/index.js';

/** `structs.QueryOptions` (inlined into every read request). */
export const QueryOptionsFields = {
  Token: t.string,
  MinQueryIndex: t.uint,
  /** Nanoseconds. */
  MaxQueryTime: t.duration,
  AllowStale: t.bool,
  RequireConsistent: t.bool,
  UseCache: t.bool,
  MaxStaleDuration: t.duration,
  MaxAge: t.duration,
  MustRevalidate: t.bool,
  StaleIfError: t.duration,
  Filter: t.string,
} as const;

/** `structs.QueryMeta` (inlined into every read response). */
export const QueryMetaFields = {
  Index: t.uint,
  /** Nanoseconds since the serving server last had contact with the leader / consensus. */
  LastContact: t.duration,
  KnownLeader: t.bool,
  ConsistencyLevel: t.string,
  NotModified: t.bool,
  Backend: t.int,
  ResultsFilteredByACLs: t.bool,
} as const;

/** `structs.WriteRequest` (inlined into every write request). */
export const WriteRequestFields = { Token: t.string } as const;

const RaftIndexFields = { CreateIndex: t.uint, ModifyIndex: t.uint } as const;

/** `structs.ServiceAddress`. */
export const ServiceAddress = t.struct({ Address: t.string, Port: t.int });

/** `structs.Node`. */
export const Node = t.struct({
  ID: t.string,
  Node: t.string,
  Address: t.string,
  Datacenter: t.string,
  TaggedAddresses: t.map(t.string),
  Meta: t.map(t.string),
  ...RaftIndexFields,
});

/** `structs.NodeService`. */
export const NodeService = t.struct({
  Kind: t.string,
  ID: t.string,
  Service: t.string,
  Tags: t.list(t.string),
  Address: t.string,
  TaggedAddresses: t.map(ServiceAddress),
  Meta: t.map(t.string),
  Port: t.int,
  ...RaftIndexFields,
});

/** `structs.HealthCheck`. */
export const HealthCheck = t.struct({
  Node: t.string,
  CheckID: t.string,
  Name: t.string,
  Status: t.string,
  Notes: t.string,
  Output: t.string,
  ServiceID: t.string,
  ServiceName: t.string,
  ...RaftIndexFields,
});

/** `structs.ServiceNode` (one row of `/v1/catalog/service/<name>`). */
export const ServiceNode = t.struct({
  ID: t.string,
  Node: t.string,
  Address: t.string,
  Datacenter: t.string,
  TaggedAddresses: t.map(t.string),
  NodeMeta: t.map(t.string),
  ServiceKind: t.string,
  ServiceID: t.string,
  ServiceName: t.string,
  ServiceTags: t.list(t.string),
  ServiceAddress: t.string,
  ServiceTaggedAddresses: t.map(ServiceAddress),
  ServicePort: t.int,
  ServiceMeta: t.map(t.string),
  ...RaftIndexFields,
});

/** `structs.CheckServiceNode`. */
export const CheckServiceNode = t.struct({ Node: t.nullable(Node), Service: t.nullable(NodeService), Checks: t.list(HealthCheck) });

/** `structs.RegisterRequest`. */
export const RegisterRequest = t.struct({
  Datacenter: t.string,
  ID: t.string,
  Node: t.string,
  Address: t.string,
  TaggedAddresses: t.map(t.string),
  NodeMeta: t.map(t.string),
  Service: t.nullable(NodeService),
  Check: t.nullable(HealthCheck),
  Checks: t.list(HealthCheck),
  SkipNodeUpdate: t.bool,
  ...WriteRequestFields,
});

/** `structs.DeregisterRequest`. */
export const DeregisterRequest = t.struct({ Datacenter: t.string, Node: t.string, ServiceID: t.string, CheckID: t.string, ...WriteRequestFields });

/** `structs.DCSpecificRequest`. */
export const DCSpecificRequest = t.struct({ Datacenter: t.string, NodeMetaFilters: t.map(t.string), ...QueryOptionsFields });

/** `structs.ServiceSpecificRequest`. */
export const ServiceSpecificRequest = t.struct({
  Datacenter: t.string,
  NodeMetaFilters: t.map(t.string),
  ServiceName: t.string,
  ServiceTags: t.list(t.string),
  TagFilter: t.bool,
  ...QueryOptionsFields,
});

/** `structs.ServiceDumpRequest`. */
export const ServiceDumpRequest = t.struct({ Datacenter: t.string, ServiceKind: t.string, UseServiceKind: t.bool, ...QueryOptionsFields });

/** `structs.IndexedNodes`. */
export const IndexedNodes = t.struct({ Nodes: t.list(Node), ...QueryMetaFields });
/** `structs.IndexedServices`. */
export const IndexedServices = t.struct({ Services: t.map(t.list(t.string)), ...QueryMetaFields });
/** `structs.IndexedServiceNodes`. */
export const IndexedServiceNodes = t.struct({ ServiceNodes: t.list(ServiceNode), ...QueryMetaFields });
/** `structs.IndexedCheckServiceNodes` (`Health.ServiceNodes`, `Internal.ServiceDump`). */
export const IndexedCheckServiceNodes = t.struct({ Nodes: t.list(CheckServiceNode), ...QueryMetaFields });

/** A decoded read request: what every read has in common. */
export type QueryOptions = Pick<Infer<typeof DCSpecificRequest>, keyof typeof QueryOptionsFields | 'Datacenter'>;
/** The `QueryMeta` part of a read response. */
export type QueryMeta = { -readonly [K in keyof typeof QueryMetaFields]: Infer<(typeof QueryMetaFields)[K]> };
