/**
 * The `FederationState` RPC service (wanfed-reference §5.5) and its three internal HTTP
 * endpoints (§5.6). Each call is routed first (StateServer: `Apply` always to the primary,
 * `Get` to `TargetDatacenter`, the lists to the request's datacenter; then to the leader unless
 * stale reads are allowed), then the feature flag is checked, then ACLs.
 */
import { MeshfedError } from '../../core/errors.js';
import type { HttpApi } from '../http/index.js';
import { GoTime, t, type Infer } from '../rpc/msgpack/index.js';
import { handled, parseQueryOptions, queryMetaHeaders, type StateServer } from '../state/index.js';
import { MessageType, type CheckServiceNode as StoreCheckServiceNode, type FederationState as StoreFederationState } from '../state/store/index.js';
import { DCSpecificRequest } from '../state/structs.js';
import { ErrFederationStatesNotSupported, type FederationFeature } from './feature.js';
import {
  DatacenterIndexedCheckServiceNodes,
  FederationStateQuery,
  FederationStateRequest,
  FederationStateResponse,
  IndexedFederationStates,
  fromWire,
  toJson,
  toWire,
  type WireFederationState,
} from './structs.js';

/** Most mesh gateways one federation state may carry. */
export const MAX_GATEWAYS_PER_STATE = 1024;

/** What the endpoints need to know about a caller's token (the `acl` plugin's authorizer fits). */
export interface FederationAuthorizer {
  operatorRead(): boolean;
  operatorWrite(): boolean;
  nodeRead(name: string): boolean;
  serviceRead(name: string): boolean;
}

/** Resolves a request's token (`''` = none); throws `ACL not found` for unknown tokens. */
export type AuthorizeFn = (token: string) => FederationAuthorizer;

/** Everyone may do everything (ACLs disabled). */
export const allowAllAuthorizer: FederationAuthorizer = Object.freeze({
  operatorRead: () => true,
  operatorWrite: () => true,
  nodeRead: () => true,
  serviceRead: () => true,
});

function denied(what: string): MeshfedError {
  return new MeshfedError('MESHFED_ERR_ACL_DENIED', `Permission denied: token lacks ${what}`, { plugin: 'federation' });
}

function invalid(message: string): MeshfedError {
  return new MeshfedError('MESHFED_ERR_STATE_INVALID', message, { plugin: 'federation' });
}

const DC_NAME = /^[A-Za-z0-9_-]{1,64}$/;

/** Options of {@link federationEndpoints}. */
export interface FederationEndpointsOptions {
  readonly server: StateServer;
  readonly primaryDatacenter: string;
  readonly feature: FederationFeature;
  readonly authorize: AuthorizeFn;
  /** Current time (UpdatedAt stamping). */
  readonly now?: () => Date;
}

/** Keep gateways whose node and service the caller may read (§5.5 ListMeshGateways). */
function filterGateways(authz: FederationAuthorizer, gws: readonly StoreCheckServiceNode[]): { kept: StoreCheckServiceNode[]; filtered: boolean } {
  const kept = gws.filter((g) => authz.nodeRead(g.Node.Node) && authz.serviceRead(g.Service.Service));
  return { kept, filtered: kept.length !== gws.length };
}

/** The four `FederationState.*` endpoints, for `registry.registerAll(...)`. */
export function federationEndpoints(o: FederationEndpointsOptions) {
  const srv = o.server;
  const store = srv.store;
  const now = o.now ?? (() => new Date());
  const requireFeature = (): void => {
    if (!o.feature.supported()) throw new MeshfedError('MESHFED_ERR_FEDERATION_UNSUPPORTED', ErrFederationStatesNotSupported, { plugin: 'federation' });
  };
  return [
    srv.endpoint({
      method: 'FederationState.Apply',
      request: FederationStateRequest,
      response: t.bool,
      write: true,
      // every write lands in the primary's store
      datacenterOf: () => o.primaryDatacenter,
      handle: async (req) => {
        requireFeature();
        const authz = o.authorize(req.Token);
        if (!authz.operatorWrite()) throw denied('operator:write');
        const st = req.State;
        if (!st || st.Datacenter === '') throw invalid('invalid request: missing federation state datacenter');
        if (!DC_NAME.test(st.Datacenter)) throw invalid(`invalid request: federation state datacenter ${JSON.stringify(st.Datacenter)} is not a datacenter name (letters, digits, _ and -)`);
        let state: WireFederationState = st;
        switch (req.Op) {
          case 'upsert':
            if (st.MeshGateways.length > MAX_GATEWAYS_PER_STATE) {
              throw invalid(`invalid request: ${st.MeshGateways.length} mesh gateways in the federation state of ${st.Datacenter} exceed the limit of ${MAX_GATEWAYS_PER_STATE}`);
            }
            if (st.UpdatedAt.isZero()) state = { ...st, UpdatedAt: GoTime.fromDate(now()) };
            break;
          case 'delete':
            break;
          default:
            throw invalid(`Invalid federation state operation: ${req.Op}`);
        }
        await srv.write({ Type: MessageType.FederationState, Body: { Datacenter: o.primaryDatacenter, Op: req.Op, State: fromWire(state) } });
        return req.Op === 'upsert';
      },
    }),
    srv.endpoint({
      method: 'FederationState.Get',
      request: FederationStateQuery,
      response: FederationStateResponse,
      write: false,
      datacenterOf: (req) => req.TargetDatacenter,
      handle: async (req, ctx) => {
        requireFeature();
        if (!o.authorize(req.Token).operatorRead()) throw denied('operator:read');
        const { value, meta } = await srv.query(req, ctx, (ws) => store.federationStateGet(req.Datacenter, ws));
        return { State: value ? toWire(value) : null, ...meta };
      },
    }),
    srv.endpoint({
      method: 'FederationState.List',
      request: DCSpecificRequest,
      response: IndexedFederationStates,
      write: false,
      handle: async (req, ctx) => {
        requireFeature();
        if (!o.authorize(req.Token).operatorRead()) throw denied('operator:read');
        const { value, meta } = await srv.query(req, ctx, (ws) => store.federationStateList(ws));
        return { States: value.map(toWire), ...meta };
      },
    }),
    srv.endpoint({
      method: 'FederationState.ListMeshGateways',
      request: DCSpecificRequest,
      response: DatacenterIndexedCheckServiceNodes,
      write: false,
      handle: async (req, ctx) => {
        requireFeature();
        const authz = o.authorize(req.Token);
        const { value, meta } = await srv.query(req, ctx, (ws) => store.federationStateList(ws));
        const out: Record<string, StoreCheckServiceNode[]> = {};
        let filtered = false;
        for (const s of value as readonly StoreFederationState[]) {
          if (s.MeshGateways.length === 0) continue;
          const r = filterGateways(authz, s.MeshGateways);
          filtered ||= r.filtered;
          if (r.kept.length > 0) out[s.Datacenter] = r.kept;
        }
        return { DatacenterNodes: out as Infer<typeof DatacenterIndexedCheckServiceNodes>['DatacenterNodes'], ...meta, ResultsFilteredByACLs: filtered };
      },
    }),
  ];
}

/** The internal HTTP endpoints of §5.6 (GET only). */
export function federationRoutes(api: HttpApi, srv: StateServer): void {
  api.route(
    'GET',
    '/v1/internal/federation-states',
    handled(async (req) => {
      const r = await srv.call<Infer<typeof IndexedFederationStates>>('FederationState.List', { ...parseQueryOptions(req), NodeMetaFilters: {} }, { signal: req.signal });
      return { json: r.States.map(toJson), headers: queryMetaHeaders(r) };
    }),
  );
  api.route(
    'GET',
    '/v1/internal/federation-states/mesh-gateways',
    handled(async (req) => {
      const r = await srv.call<Infer<typeof DatacenterIndexedCheckServiceNodes>>('FederationState.ListMeshGateways', { ...parseQueryOptions(req), NodeMetaFilters: {} }, { signal: req.signal });
      const body: Record<string, unknown[]> = {};
      for (const [dc, nodes] of Object.entries(r.DatacenterNodes)) body[dc] = nodes ?? [];
      return { json: body, headers: { ...queryMetaHeaders(r), ...(r.ResultsFilteredByACLs ? { 'X-Consul-Results-Filtered-By-ACLs': 'true' } : {}) } };
    }),
  );
  api.route(
    'GET',
    '/v1/internal/federation-state',
    handled(async () => ({ status: 400, text: 'Missing datacenter name' })),
  );
  api.route(
    'GET',
    '/v1/internal/federation-state/:dc',
    handled(async (req) => {
      const q = parseQueryOptions(req);
      const r = await srv.call<Infer<typeof FederationStateResponse>>(
        'FederationState.Get',
        { ...q, Datacenter: req.params['dc'] ?? '', TargetDatacenter: q.Datacenter },
        { signal: req.signal },
      );
      if (!r.State) return { status: 404, text: '', headers: queryMetaHeaders(r) };
      const { State, ...meta } = r;
      return { json: { State: toJson(State), ...meta }, headers: queryMetaHeaders(r) };
    }),
  );
}
