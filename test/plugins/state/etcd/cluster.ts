/**
 * Test harness of the etcd backend tests (exports only; does nothing when run): the etcd cluster
 * and cut-able proxy of `meshfed/testing`, plus backend/command builders.
 */
import { createLogger, type Logger } from '../../../../src/core/logger.js';
import { EtcdBackend, type EtcdBackendOptions } from '../../../../src/plugins/state/backend/etcd.js';
import { MessageType, StateStore, type Command } from '../../../../src/plugins/state/store/index.js';
import { waitFor } from '../../../../src/testing/index.js';

export { ETCD_BIN, EtcdCluster, freePort, TcpProxy, type EtcdClusterOptions } from '../../../../src/testing/etcd-cluster.js';

/** A logger for tests: silent unless `MESHFED_TEST_LOG` names a level. */
export function testLogger(): Logger {
  const level = (process.env.MESHFED_TEST_LOG ?? 'silent') as 'silent';
  return createLogger({ level });
}

/** A backend under test with its store and the leadership notifications it received. */
export interface TestBackend {
  readonly backend: EtcdBackend;
  readonly store: StateStore;
  readonly node: string;
  /** Every `onLeadership` value, in order. */
  readonly leadership: boolean[];
}

/** Create (not start) an EtcdBackend for `node` on `endpoints`, with test-friendly timeouts. */
export function makeBackend(endpoints: readonly string[], node: string, opts: Partial<EtcdBackendOptions> = {}): TestBackend {
  const store = new StateStore();
  const leadership: boolean[] = [];
  const backend = EtcdBackend.create({
    store,
    logger: testLogger().child({ node }),
    self: { node, datacenter: 'dc1', rpcAddress: () => `127.0.0.1:${8300 + Number(node.replace(/\D/g, '') || 0)}`, onLeadership: async (l) => void leadership.push(l) },
    endpoints: [...endpoints],
    leaseTtlSec: 2,
    requestTimeoutMs: 1500,
    dialTimeoutMs: 3000,
    ...opts,
  });
  return { backend, store, node, leadership };
}

/** A register command for `node` with a service and some metadata (a few hundred bytes). */
export function register(node: string, svc = 'web'): Command {
  return {
    Type: MessageType.Register,
    Body: { Node: node, Address: '10.0.0.1', NodeMeta: { rack: 'r1', role: 'test' }, Service: { Service: svc, Port: 8080, Tags: ['a', 'b'] } },
  };
}

/** Wait until exactly one of `backends` leads; return it. */
export async function waitLeader(backends: readonly TestBackend[], timeoutMs = 10_000): Promise<TestBackend> {
  const found = await waitFor(
    () => {
      const leaders = backends.filter((b) => b.backend.isLeader());
      return leaders.length === 1 ? leaders[0] : undefined;
    },
    { timeoutMs, message: 'exactly one leader' },
  );
  return found as TestBackend;
}
