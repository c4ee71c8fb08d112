/**
 * Shared fixtures of the xds tests (an inert module: no tests here). Registrations in Consul's
 * catalog shape, and federation-state gateway entries with explicit indexes.
 */
import { MessageType, StateStore, type CheckServiceNode, type RegisterRequest } from '../../../src/plugins/state/store/index.js';

/** Meta of a gateway that exposes servers. */
export const WANFED_META = Object.freeze({ 'consul-wan-federation': '1' });

/** Options of {@link gatewayRegistration}. */
export interface GatewayOptions {
  readonly node: string;
  readonly datacenter: string;
  /** Service (LAN) address. */
  readonly address: string;
  readonly port: number;
  /** WAN `host:port`, e.g. `198.18.1.1:443` or `gw.example.com:443`. */
  readonly wan?: string;
  readonly id?: string;
  readonly meta?: Record<string, string>;
  readonly status?: 'passing' | 'warning' | 'critical';
}

function splitHostPort(hp: string): { Address: string; Port: number } {
  const i = hp.lastIndexOf(':');
  return { Address: hp.slice(0, i), Port: Number(hp.slice(i + 1)) };
}

/** Catalog registration of a mesh gateway with a TCP check. */
export function gatewayRegistration(o: GatewayOptions): RegisterRequest {
  const id = o.id ?? 'mesh-gateway';
  const tagged: Record<string, { Address: string; Port: number }> = { lan: { Address: o.address, Port: o.port } };
  if (o.wan !== undefined) tagged['wan'] = splitHostPort(o.wan);
  return {
    Datacenter: o.datacenter,
    Node: o.node,
    Address: o.address,
    Service: { Kind: 'mesh-gateway', ID: id, Service: 'mesh-gateway', Address: o.address, Port: o.port, TaggedAddresses: tagged, Meta: { ...(o.meta ?? {}) } },
    Checks: [{ CheckID: `${id}-listening`, Name: 'mesh-gateway listening', Status: o.status ?? 'passing', ServiceID: id }],
  };
}

/** Catalog registration of a server as service `consul` (port = its RPC port). */
export function serverRegistration(node: string, datacenter: string, address: string, port = 8300): RegisterRequest {
  return {
    Datacenter: datacenter,
    Node: node,
    Address: address,
    Service: { ID: 'consul', Service: 'consul', Port: port },
    Checks: [{ CheckID: 'serfHealth', Name: 'Serf Health Status', Status: 'passing' }],
  };
}

/** A federation-state gateway entry (as replicated), with the service's ModifyIndex set to `modifyIndex`. */
export function fedGateway(node: string, datacenter: string, wan: string, modifyIndex: number, meta: Record<string, string> = { ...WANFED_META }): CheckServiceNode {
  const w = splitHostPort(wan);
  const lanHost = `10.${datacenter.replace(/\D/g, '') || '9'}.0.${modifyIndex % 250}`;
  return {
    Node: { ID: '', Node: node, Address: lanHost, Datacenter: datacenter, TaggedAddresses: {}, Meta: {}, CreateIndex: modifyIndex, ModifyIndex: modifyIndex },
    Service: {
      ID: 'mesh-gateway',
      Service: 'mesh-gateway',
      Kind: 'mesh-gateway',
      Tags: [],
      Address: lanHost,
      TaggedAddresses: { lan: { Address: lanHost, Port: 8443 }, wan: w },
      Port: 8443,
      Meta: meta,
      CreateIndex: modifyIndex,
      ModifyIndex: modifyIndex,
    },
    Checks: [],
  };
}

/** A state store written at increasing indexes. */
export class StoreFixture {
  readonly store = new StateStore();
  #index = 0;

  /** The index the next write gets. */
  get nextIndex(): number {
    return this.#index + 1;
  }

  /** Register; returns the write's index. */
  register(req: RegisterRequest): number {
    this.store.apply(++this.#index, { Type: MessageType.Register, Body: req });
    return this.#index;
  }

  /** Upsert a federation state; returns the write's index. */
  federationState(datacenter: string, gateways: CheckServiceNode[]): number {
    this.store.apply(++this.#index, { Type: MessageType.FederationState, Body: { Op: 'upsert', State: { Datacenter: datacenter, MeshGateways: gateways } } });
    return this.#index;
  }

  /** Skip indexes (so later writes have larger ModifyIndexes). */
  skipTo(index: number): void {
    if (index > this.#index) this.#index = index;
  }
}
