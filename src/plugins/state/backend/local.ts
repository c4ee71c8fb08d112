/**
 * The single-server backends: the server is its datacenter's only voter, so it leads as soon as
 * its store is restored. {@link localBackend} wraps the durable {@link EmbeddedBackend} (a
 * `data_dir` is set) or, without a data directory, keeps state in memory only (development and
 * tests: everything is lost on restart, and the plugin says so at start).
 */
import { MeshfedError } from '../../../core/errors.js';
import type { Command } from '../store/index.js';
import { BackendErrorCode, EmbeddedBackend } from './embedded.js';
import type { ApplyResult, BackendContext, StateBackend } from './types.js';

/** Options of {@link localBackend}. */
export interface LocalBackendOptions extends BackendContext {
  /** Data directory for `<dir>/state.db`; absent = in memory only (not durable). */
  readonly dir?: string | undefined;
  /** Log entries between snapshots (embedded only). */
  readonly snapshotEvery?: number | undefined;
}

/** A durable (embedded SQLite) or in-memory single-server backend. */
export function localBackend(options: LocalBackendOptions): StateBackend {
  const { store, self, logger } = options;
  let embedded: EmbeddedBackend | undefined;
  let memoryIndex = 0;
  let leading = false;
  let closed = false;
  const closedError = (): MeshfedError => new MeshfedError(BackendErrorCode.CLOSED, 'state backend is closed', { plugin: 'state' });
  return {
    kind: options.dir !== undefined ? 'embedded' : 'memory',
    async start() {
      if (options.dir !== undefined) {
        embedded = EmbeddedBackend.open({ dir: options.dir, store, logger, ...(options.snapshotEvery !== undefined ? { snapshotEvery: options.snapshotEvery } : {}) });
      }
      leading = true;
      await self.onLeadership(true);
    },
    async apply(command: Command): Promise<ApplyResult> {
      if (closed) throw closedError();
      if (embedded) return embedded.apply(command);
      if (!leading) throw new MeshfedError(BackendErrorCode.CLOSED, 'state backend is not started', { plugin: 'state' });
      // The store validates before writing: a refused command consumes no index (as embedded).
      store.apply(memoryIndex + 1, command);
      memoryIndex++;
      return { index: memoryIndex };
    },
    barrier() {
      return closed ? Promise.reject(closedError()) : Promise.resolve();
    },
    isLeader: () => leading,
    leader: () => (leading ? { node: self.node, address: self.rpcAddress() } : undefined),
    peers: () => (leading ? [self.rpcAddress()] : []),
    lastContactMs: () => 0,
    status: () => ({
      durable: embedded !== undefined,
      ...(embedded ? { latest_index: embedded.latestIndex(), ...embedded.stats } : { latest_index: memoryIndex }),
    }),
    async close() {
      if (closed) return;
      closed = true;
      if (leading) {
        leading = false;
        await self.onLeadership(false);
      }
      embedded?.close();
    },
  };
}
