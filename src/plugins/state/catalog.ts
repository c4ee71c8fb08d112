/**
 * The catalog RPC endpoints (Consul v1 names and shapes): `Catalog.Register`,
 * `Catalog.Deregister`, `Catalog.ListNodes`, `Catalog.ListServices`, `Catalog.ServiceNodes`,
 * `Health.ServiceNodes` and `Internal.ServiceDump`. Routing (other datacenter, leader) and
 * blocking are {@link StateServer}'s; validation is the store's (a bad registration is refused
 * whole, with the offending field named).
 */
import type { Infer } from '../rpc/msgpack/index.js';
import { t } from '../rpc/msgpack/index.js';
import type { StateServer } from './server.js';
import {
  MessageType,
  SERVICE_KINDS,
  StateValidationError,
  type CheckInput,
  type CheckServiceNode as StoreCheckServiceNode,
  type DeregisterRequest as StoreDeregisterRequest,
  type NodeRecord,
  type RegisterRequest as StoreRegisterRequest,
  type ServiceKind,
} from './store/index.js';
import type {
  CheckServiceNode} from './structs.js';
import {
  DCSpecificRequest,
  DeregisterRequest,
  IndexedCheckServiceNodes,
  IndexedNodes,
  IndexedServiceNodes,
  IndexedServices,
  RegisterRequest,
  ServiceDumpRequest,
  ServiceSpecificRequest,
} from './structs.js';

type CheckIn = Infer<typeof RegisterRequest>['Checks'][number];

/** A register request as decoded from msgpack → the store's command body (absent → undefined). */
function toStoreRegister(req: Infer<typeof RegisterRequest>): StoreRegisterRequest {
  const check = (c: CheckIn): CheckInput => ({ Node: c.Node, CheckID: c.CheckID, Name: c.Name, Status: c.Status, Notes: c.Notes, Output: c.Output, ServiceID: c.ServiceID });
  const s = req.Service;
  return {
    Datacenter: req.Datacenter,
    ID: req.ID,
    Node: req.Node,
    Address: req.Address,
    TaggedAddresses: req.TaggedAddresses,
    NodeMeta: req.NodeMeta,
    ...(s ? { Service: { ID: s.ID, Service: s.Service, Kind: s.Kind as ServiceKind, Tags: s.Tags, Address: s.Address, TaggedAddresses: s.TaggedAddresses, Port: s.Port, Meta: s.Meta } } : {}),
    ...(req.Check ? { Check: check(req.Check) } : {}),
    Checks: req.Checks.map(check),
    SkipNodeUpdate: req.SkipNodeUpdate,
  };
}

/** Nodes as returned by the catalog: the datacenter filled in, as Consul's reads do. */
function withDatacenter(dc: string) {
  return (n: NodeRecord): NodeRecord => (n.Datacenter ? n : { ...n, Datacenter: dc });
}

function checkServiceNodes(dc: string, rows: readonly StoreCheckServiceNode[]): Infer<typeof CheckServiceNode>[] {
  const fill = withDatacenter(dc);
  return rows.map((r) => ({ Node: fill(r.Node), Service: r.Service, Checks: [...r.Checks] }) as Infer<typeof CheckServiceNode>);
}

/** Keep rows that carry every tag in `tags` (Consul's `ServiceTags` + `TagFilter`), case-insensitively. */
function hasTags(rowTags: readonly string[], tags: readonly string[]): boolean {
  const have = new Set(rowTags.map((x) => x.toLowerCase()));
  return tags.every((x) => have.has(x.toLowerCase()));
}

/** Whether a node's meta has every pair of `filters`. */
function metaMatches(meta: Readonly<Record<string, string>>, filters: Readonly<Record<string, string>>): boolean {
  return Object.entries(filters).every(([k, v]) => meta[k] === v);
}

/** The catalog endpoints over `srv`, for `registry.registerAll(...)`. */
export function catalogEndpoints(srv: StateServer, datacenter: string) {
  const store = srv.store;
  const fill = withDatacenter(datacenter);
  return [
    srv.endpoint({
      method: 'Catalog.Register',
      request: RegisterRequest,
      response: t.struct({}),
      write: true,
      handle: async (req) => {
        await srv.write({ Type: MessageType.Register, Body: toStoreRegister(req) });
        return {};
      },
    }),
    srv.endpoint({
      method: 'Catalog.Deregister',
      request: DeregisterRequest,
      response: t.struct({}),
      write: true,
      handle: async (req) => {
        const body: StoreDeregisterRequest = { Datacenter: req.Datacenter, Node: req.Node, ServiceID: req.ServiceID, CheckID: req.CheckID };
        await srv.write({ Type: MessageType.Deregister, Body: body });
        return {};
      },
    }),
    srv.endpoint({
      method: 'Catalog.ListNodes',
      request: DCSpecificRequest,
      response: IndexedNodes,
      write: false,
      handle: async (req, ctx) => {
        const { value, meta } = await srv.query(req, ctx, (ws) => store.nodes(ws));
        const filters = req.NodeMetaFilters;
        return { Nodes: value.filter((n) => metaMatches(n.Meta, filters)).map(fill), ...meta };
      },
    }),
    srv.endpoint({
      method: 'Catalog.ListServices',
      request: DCSpecificRequest,
      response: IndexedServices,
      write: false,
      handle: async (req, ctx) => {
        const { value, meta } = await srv.query(req, ctx, (ws) => store.services(ws));
        return { Services: value, ...meta };
      },
    }),
    srv.endpoint({
      method: 'Catalog.ServiceNodes',
      request: ServiceSpecificRequest,
      response: IndexedServiceNodes,
      write: false,
      handle: async (req, ctx) => {
        if (req.ServiceName === '') throw new StateValidationError('ServiceName', 'Must provide service name');
        const { value, meta } = await srv.query(req, ctx, (ws) => store.serviceNodes(req.ServiceName, ws));
        const rows = value
          .filter((r) => !req.TagFilter || hasTags(r.ServiceTags, req.ServiceTags))
          .filter((r) => metaMatches(r.NodeMeta, req.NodeMetaFilters))
          .map((r) => (r.Datacenter ? r : { ...r, Datacenter: datacenter }));
        return { ServiceNodes: rows, ...meta };
      },
    }),
    srv.endpoint({
      method: 'Health.ServiceNodes',
      request: ServiceSpecificRequest,
      response: IndexedCheckServiceNodes,
      write: false,
      handle: async (req, ctx) => {
        if (req.ServiceName === '') throw new StateValidationError('ServiceName', 'Must provide service name');
        const { value, meta } = await srv.query(req, ctx, (ws) => store.checkServiceNodes(req.ServiceName, {}, ws));
        const rows = value.filter((r) => (!req.TagFilter || hasTags(r.Service.Tags, req.ServiceTags)) && metaMatches(r.Node.Meta, req.NodeMetaFilters));
        return { Nodes: checkServiceNodes(datacenter, rows), ...meta };
      },
    }),
    srv.endpoint({
      method: 'Internal.ServiceDump',
      request: ServiceDumpRequest,
      response: IndexedCheckServiceNodes,
      write: false,
      handle: async (req, ctx) => {
        if (!req.UseServiceKind) throw new StateValidationError('UseServiceKind', 'meshfed serves service dumps by kind only: set UseServiceKind and ServiceKind');
        if (!(SERVICE_KINDS as readonly string[]).includes(req.ServiceKind)) throw new StateValidationError('ServiceKind', `unknown service kind ${JSON.stringify(req.ServiceKind)}`);
        const { value, meta } = await srv.query(req, ctx, (ws) => store.serviceDumpByKind(req.ServiceKind as ServiceKind, ws));
        return { Nodes: checkServiceNodes(datacenter, value), ...meta };
      },
    }),
  ];
}
