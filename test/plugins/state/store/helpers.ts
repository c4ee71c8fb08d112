/** Shared builders for the state store tests. */
import { MessageType, StateStore, type Command, type FederationStateInput, type RegisterRequest, type StateStoreOptions } from '../../../../src/plugins/state/store/index.js';
import { FakeClock } from '../../../../src/testing/index.js';

/** A store on a FakeClock with zero jitter. */
export function newStore(extra: StateStoreOptions = {}): { store: StateStore; clock: FakeClock } {
  const clock = new FakeClock();
  return { store: new StateStore({ clock, random: () => 0, ...extra }), clock };
}

/** A register command. */
export const reg = (body: RegisterRequest): Command => ({ Type: MessageType.Register, Body: body });

/** A deregister command. */
export const dereg = (node: string, extra: { ServiceID?: string; CheckID?: string } = {}): Command => ({ Type: MessageType.Deregister, Body: { Node: node, ...extra } });

/** A federation-state upsert command. */
export const fsUpsert = (state: FederationStateInput): Command => ({ Type: MessageType.FederationState, Body: { Op: 'upsert', State: state } });

/** A federation-state delete command. */
export const fsDelete = (dc: string): Command => ({ Type: MessageType.FederationState, Body: { Op: 'delete', State: { Datacenter: dc } } });

/** A mesh gateway registration on `node`. */
export function gateway(node: string, status: 'passing' | 'critical' = 'passing'): RegisterRequest {
  return {
    Datacenter: 'dc1',
    Node: node,
    Address: '10.0.0.1',
    Service: {
      ID: 'mgw',
      Service: 'mesh-gateway',
      Kind: 'mesh-gateway',
      Port: 8443,
      TaggedAddresses: { lan: { Address: '10.0.0.1', Port: 8443 }, wan: { Address: '198.51.100.1', Port: 443 } },
      Meta: { consul_wan_federation: '1' },
    },
    Checks: [{ CheckID: 'mgw-alive', Name: 'alive', Status: status, ServiceID: 'mgw' }],
  };
}

/** Let pending promise continuations and immediates run (not a timed sleep). */
export const tick = (): Promise<void> => new Promise((r) => setImmediate(r));
