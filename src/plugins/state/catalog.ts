/**
 * The catalog RPC endpoints (Consul v1 names and shapes): `Catalog.Register`,
 * `Catalog.Deregister`, `Catalog.ListNodes`, `Catalog.ListServices`, `Catalog.ServiceNodes`,
 * `Health.ServiceNodes` and `Internal.ServiceDump`. Routing (other datacenter, leader) and
 * blocking are {@link StateServer}'s; validation is the store's (a bad registration is refused
 * whole, with the offending field named).
 *
 * ACLs (Consul's rules; everything passes while `acl.enabled` is false or for a management token):
 * - `Catalog.Register` needs `node:write` on the node unless the node exists and the request
 *   leaves it as it is (same ID, name, address, datacenter, tagged addresses and meta, or
 *   `SkipNodeUpdate`); `service:write` on the registered service (and on the service it replaces
 *   under the same ID); `node:write` for each node check; `service:write` on the service of each
 *   service check. A refusal writes nothing.
 * - `Catalog.Deregister`: `node:write` on the node allows everything on it; otherwise a service
 *   needs `service:write` on it, a service check `service:write` on its service, and a node check
 *   or the whole node is refused. Deregistering a service or check that does not exist writes
 *   nothing and succeeds.
 * - Reads filter instead of refusing: nodes need `node:read`, services `service:read`, a service
 *   instance both (on its node and its service). `ResultsFilteredByACLs` says something was
 *   removed, reported (as Consul does) only to requests carrying a token other than `anonymous`.
 * - An unknown token is refused with `ACL not found`, reads included.
 */
import { allowAll, type Authorizer } from '../acl/authorizer.js';
import { ANONYMOUS_SECRET } from '../acl/config.js';
import { filterCheckServiceNodes, permissionDeniedError, requireNodeWrite, requireServiceWrite } from '../acl/resolver.js';
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
  type StateStore,
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
export function toStoreRegister(req: Infer<typeof RegisterRequest>): StoreRegisterRequest {
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

/** Resolves a request's token (`''` = none) to what it may do; throws `ACL not found` for an unknown one. */
export type CatalogAuthorizeFn = (token: string) => Authorizer;

function sameMap(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => Object.hasOwn(b, k) && a[k] === b[k]);
}

/** Whether registering `req` would rewrite the stored `node` (Consul's `ChangesNode`). */
function changesNode(node: NodeRecord, req: Infer<typeof RegisterRequest>): boolean {
  if (req.SkipNodeUpdate) return false;
  return (
    node.ID !== req.ID ||
    node.Node !== req.Node ||
    node.Address !== req.Address ||
    node.Datacenter !== req.Datacenter ||
    !sameMap(node.TaggedAddresses, req.TaggedAddresses) ||
    !sameMap(node.Meta, req.NodeMeta)
  );
}

/**
 * Throw `Permission denied` unless `authz` may make registration `req` (see the module's rules).
 * What the store would refuse anyway (no node name, a check of an unknown service) is left to it.
 */
function vetRegister(authz: Authorizer, store: StateStore, req: Infer<typeof RegisterRequest>): void {
  if (authz.isManagement || req.Node === '') return;
  const node = store.node(req.Node);
  if (node === undefined || changesNode(node, req)) requireNodeWrite(authz, req.Node);
  const svc = req.Service;
  const svcID = svc ? (svc.ID || svc.Service).toLowerCase() : '';
  if (svc && svc.Service !== '') {
    requireServiceWrite(authz, svc.Service);
    const replaced = store.nodeService(req.Node, svcID);
    if (replaced && replaced.Service !== svc.Service) requireServiceWrite(authz, replaced.Service);
  }
  for (const c of req.Check ? [req.Check, ...req.Checks] : req.Checks) {
    if (c.ServiceID === '') requireNodeWrite(authz, req.Node);
    else if (!svc || c.ServiceID.toLowerCase() !== svcID) {
      const other = store.nodeService(req.Node, c.ServiceID);
      if (other) requireServiceWrite(authz, other.Service);
    }
  }
}

/**
 * Throw `Permission denied` unless `authz` may make deregistration `req`; `false` when it names a
 * service or check that does not exist (nothing to delete, nothing to write).
 */
function vetDeregister(authz: Authorizer, store: StateStore, req: Infer<typeof DeregisterRequest>): boolean {
  if (authz.isManagement || req.Node === '' || authz.nodeWrite(req.Node)) return true;
  if (req.ServiceID !== '') {
    const svc = store.nodeService(req.Node, req.ServiceID);
    if (svc) requireServiceWrite(authz, svc.Service);
    return svc !== undefined;
  }
  if (req.CheckID !== '') {
    const check = store.nodeCheck(req.Node, req.CheckID);
    if (!check) return false;
    if (check.ServiceID !== '') {
      requireServiceWrite(authz, check.ServiceName);
      return true;
    }
  }
  throw permissionDeniedError('node:write', req.Node);
}

/**
 * Keep the rows `visible` accepts (everything for a management authorizer). The flag is Consul's
 * `ResultsFilteredByACLs`: set when something was removed and the request carried a token other
 * than `anonymous` (a caller without one does not learn that anything is hidden).
 */
function aclFiltered<T>(authz: Authorizer, token: string, rows: readonly T[], visible: (row: T) => boolean): { rows: T[]; ResultsFilteredByACLs: boolean } {
  if (authz.isManagement) return { rows: [...rows], ResultsFilteredByACLs: false };
  const kept = rows.filter(visible);
  return { rows: kept, ResultsFilteredByACLs: reportFiltered(token, kept.length !== rows.length) };
}

function reportFiltered(token: string, filtered: boolean): boolean {
  return filtered && token !== '' && token !== ANONYMOUS_SECRET;
}

/**
 * The catalog endpoints over `srv`, for `registry.registerAll(...)`. `authorize` resolves each
 * request's `Token` (the `acl` plugin's resolver; default: everything allowed).
 */
export function catalogEndpoints(srv: StateServer, datacenter: string, authorize: CatalogAuthorizeFn = () => allowAll) {
  const store = srv.store;
  const fill = withDatacenter(datacenter);
  const checkServiceNodesFor = (token: string, authz: Authorizer, rows: readonly StoreCheckServiceNode[]) => {
    const { nodes, filtered } = filterCheckServiceNodes(authz, checkServiceNodes(datacenter, rows));
    return { Nodes: nodes, ResultsFilteredByACLs: reportFiltered(token, filtered) };
  };
  return [
    srv.endpoint({
      method: 'Catalog.Register',
      request: RegisterRequest,
      response: t.struct({}),
      write: true,
      handle: async (req) => {
        vetRegister(authorize(req.Token), store, req);
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
        if (!vetDeregister(authorize(req.Token), store, req)) return {};
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
        const authz = authorize(req.Token);
        const { value, meta } = await srv.query(req, ctx, (ws) => store.nodes(ws));
        const filters = req.NodeMetaFilters;
        const { rows, ResultsFilteredByACLs } = aclFiltered(authz, req.Token, value.filter((n) => metaMatches(n.Meta, filters)), (n) => authz.nodeRead(n.Node));
        return { Nodes: rows.map(fill), ...meta, ResultsFilteredByACLs };
      },
    }),
    srv.endpoint({
      method: 'Catalog.ListServices',
      request: DCSpecificRequest,
      response: IndexedServices,
      write: false,
      handle: async (req, ctx) => {
        const authz = authorize(req.Token);
        const { value, meta } = await srv.query(req, ctx, (ws) => store.services(ws));
        const { rows, ResultsFilteredByACLs } = aclFiltered(authz, req.Token, Object.entries(value), ([name]) => authz.serviceRead(name));
        return { Services: Object.fromEntries(rows), ...meta, ResultsFilteredByACLs };
      },
    }),
    srv.endpoint({
      method: 'Catalog.ServiceNodes',
      request: ServiceSpecificRequest,
      response: IndexedServiceNodes,
      write: false,
      handle: async (req, ctx) => {
        if (req.ServiceName === '') throw new StateValidationError('ServiceName', 'Must provide service name');
        const authz = authorize(req.Token);
        const { value, meta } = await srv.query(req, ctx, (ws) => store.serviceNodes(req.ServiceName, ws));
        const matching = value.filter((r) => (!req.TagFilter || hasTags(r.ServiceTags, req.ServiceTags)) && metaMatches(r.NodeMeta, req.NodeMetaFilters));
        const { rows, ResultsFilteredByACLs } = aclFiltered(authz, req.Token, matching, (r) => authz.nodeRead(r.Node) && authz.serviceRead(r.ServiceName));
        return { ServiceNodes: rows.map((r) => (r.Datacenter ? r : { ...r, Datacenter: datacenter })), ...meta, ResultsFilteredByACLs };
      },
    }),
    srv.endpoint({
      method: 'Health.ServiceNodes',
      request: ServiceSpecificRequest,
      response: IndexedCheckServiceNodes,
      write: false,
      handle: async (req, ctx) => {
        if (req.ServiceName === '') throw new StateValidationError('ServiceName', 'Must provide service name');
        const authz = authorize(req.Token);
        const { value, meta } = await srv.query(req, ctx, (ws) => store.checkServiceNodes(req.ServiceName, {}, ws));
        const rows = value.filter((r) => (!req.TagFilter || hasTags(r.Service.Tags, req.ServiceTags)) && metaMatches(r.Node.Meta, req.NodeMetaFilters));
        return { ...meta, ...checkServiceNodesFor(req.Token, authz, rows) };
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
        const authz = authorize(req.Token);
        const { value, meta } = await srv.query(req, ctx, (ws) => store.serviceDumpByKind(req.ServiceKind as ServiceKind, ws));
        return { ...meta, ...checkServiceNodesFor(req.Token, authz, value) };
      },
    }),
  ];
}
