/**
 * Durable state backends. {@link EmbeddedBackend} keeps a {@link StateStore}'s commands in an
 * embedded SQLite database (`<dir>/state.db`, WAL, fsync on commit) with periodic snapshots:
 * one server per datacenter, every acknowledged write survives `kill -9`, and a restart restores
 * state and indexes. Commands arriving together are group-committed in one transaction.
 *
 * @example
 * ```ts
 * import { StateStore, MessageType } from 'meshfed/plugins/state/store';
 * import { EmbeddedBackend } from 'meshfed/plugins/state/backend';
 * const store = new StateStore();
 * const backend = EmbeddedBackend.open({ dir: '/var/lib/meshfed', store });
 * const { index } = await backend.apply({ Type: MessageType.Register, Body: { Node: 'web1', Address: '10.0.0.5' } });
 * store.nodes().value; // includes web1, CreateIndex === index; durable once apply resolved
 * backend.close();
 * ```
 */
export {
  BackendErrorCode,
  DEFAULT_SNAPSHOT_EVERY,
  EmbeddedBackend,
  type EmbeddedBackendOptions,
  type EmbeddedBackendStats,
} from './embedded.js';
export {
  DEFAULT_ETCD_SNAPSHOT_EVERY,
  EtcdBackend,
  EtcdBackendErrorCode,
  MAX_ENTRY_BYTES,
  SNAPSHOT_CHUNK_BYTES,
  type EtcdBackendOptions,
  type EtcdTlsOptions,
} from './etcd.js';
export { localBackend, type LocalBackendOptions } from './local.js';
export { StateBackendErrorCode, type ApplyResult, type BackendContext, type BackendSelf, type LeaderInfo, type StateBackend } from './types.js';
