/**
 * The state store core: in-memory catalog (nodes, services, checks) and federation-state tables
 * with Raft-style indexes, written only through typed FSM commands (Consul message types 0, 1,
 * 30), read through typed queries, with fine-grained blocking queries and snapshot/restore.
 * Backend-agnostic: durable backends replay the same commands through {@link StateStore.apply}.
 *
 * @example
 * ```ts
 * import { MessageType, StateStore } from 'meshfed/plugins/state/store';
 * const store = new StateStore();
 * store.apply(5, { Type: MessageType.FederationState, Body: { Op: 'upsert', State: { Datacenter: 'dc2' } } });
 * const { index, value } = store.federationStateGet('DC2'); // index 5, PrimaryModifyIndex 5
 * // wait for the next change of dc2's record (or 300 s):
 * const next = await store.blockingQuery({ minQueryIndex: index }, (ws) => store.federationStateGet('dc2', ws));
 * ```
 */
export { StateStore, ZERO_TIME, type CheckServiceNodesOptions, type StateStoreOptions } from './store.js';
export { DEFAULT_QUERY_TIME_MS, JITTER_FRACTION, MAX_QUERY_TIME_MS, queryWaitMs, type BlockingQueryOptions } from './blocking.js';
export { StateErrorCode, StateValidationError } from './errors.js';
export { WatchSet } from './watch.js';
export { isValidAddress, MAX_META_KEY_LENGTH, MAX_META_PAIRS, MAX_META_VALUE_LENGTH } from './validate.js';
export * from './types.js';
