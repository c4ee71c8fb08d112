/**
 * msgpack schemas of the `FederationState` RPCs (wanfed-reference §5.1), field for field
 * Consul's: `FederationStateRequest`, `FederationStateQuery`, `FederationStateResponse`,
 * `IndexedFederationStates`, `DatacenterIndexedCheckServiceNodes`. Times travel as Go
 * `time.Time`; the store keeps RFC 3339 text, converted at the edge.
 */
import { GoTime, t, type Infer } from '../rpc/msgpack/index.js';
import { ZERO_TIME, type FederationState as StoreFederationState, type CheckServiceNode as StoreCheckServiceNode } from '../state/store/index.js';
import { CheckServiceNode, QueryMetaFields, QueryOptionsFields, WriteRequestFields } from '../state/structs.js';

/** `structs.FederationState`. */
export const FederationState = t.struct({
  Datacenter: t.string,
  MeshGateways: t.list(CheckServiceNode),
  UpdatedAt: t.time,
  PrimaryModifyIndex: t.uint,
  CreateIndex: t.uint,
  ModifyIndex: t.uint,
});

/** `structs.FederationStateRequest` (`FederationState.Apply`). */
export const FederationStateRequest = t.struct({ Datacenter: t.string, Op: t.string, State: t.nullable(FederationState), ...WriteRequestFields });

/** `structs.FederationStateQuery` (`FederationState.Get`): `Datacenter` names the record, `TargetDatacenter` where to ask. */
export const FederationStateQuery = t.struct({ Datacenter: t.string, TargetDatacenter: t.string, ...QueryOptionsFields });

/** `structs.FederationStateResponse`. */
export const FederationStateResponse = t.struct({ State: t.nullable(FederationState), ...QueryMetaFields });

/** `structs.IndexedFederationStates`. */
export const IndexedFederationStates = t.struct({ States: t.list(FederationState), ...QueryMetaFields });

/** `structs.DatacenterIndexedCheckServiceNodes` (`FederationState.ListMeshGateways`). */
export const DatacenterIndexedCheckServiceNodes = t.struct({ DatacenterNodes: t.map(t.list(CheckServiceNode)), ...QueryMetaFields });

/** A federation state as it travels over RPC. */
export type WireFederationState = Infer<typeof FederationState>;

/** A stored federation state → its wire form (RFC 3339 text → Go time). */
export function toWire(s: StoreFederationState): WireFederationState {
  return {
    Datacenter: s.Datacenter,
    MeshGateways: s.MeshGateways as WireFederationState['MeshGateways'],
    UpdatedAt: s.UpdatedAt === ZERO_TIME || s.UpdatedAt === '' ? GoTime.ZERO : GoTime.parse(s.UpdatedAt),
    PrimaryModifyIndex: s.PrimaryModifyIndex,
    CreateIndex: s.CreateIndex,
    ModifyIndex: s.ModifyIndex,
  };
}

/** A wire federation state → the store's input shape (Go time → RFC 3339 text; indexes dropped). */
export function fromWire(s: WireFederationState): { Datacenter: string; MeshGateways: StoreCheckServiceNode[]; UpdatedAt: string; PrimaryModifyIndex: number } {
  return {
    Datacenter: s.Datacenter,
    MeshGateways: s.MeshGateways as unknown as StoreCheckServiceNode[],
    UpdatedAt: s.UpdatedAt.isZero() ? ZERO_TIME : s.UpdatedAt.toString(),
    PrimaryModifyIndex: s.PrimaryModifyIndex,
  };
}

/** The federation-state JSON of Consul's HTTP API (UpdatedAt as RFC 3339; `MeshGateways` omitted when empty, as Go's `omitempty`). */
export function toJson(s: WireFederationState | StoreFederationState): Record<string, unknown> {
  const updated = typeof s.UpdatedAt === 'string' ? s.UpdatedAt : s.UpdatedAt.toString();
  return {
    Datacenter: s.Datacenter,
    ...(s.MeshGateways.length > 0 ? { MeshGateways: s.MeshGateways } : {}),
    UpdatedAt: updated,
    PrimaryModifyIndex: s.PrimaryModifyIndex,
    CreateIndex: s.CreateIndex,
    ModifyIndex: s.ModifyIndex,
  };
}
