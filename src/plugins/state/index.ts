/**
 * The `state` plugin (servers only): the datacenter's catalog and federation states in a
 * {@link StateStore}, made durable and agreed on by a backend, served over RPC and HTTP.
 *
 * - **Backends**: `state.backend = "embedded"` (default): one server per datacenter, a durable
 *   SQLite file in `data_dir` (in memory only when no `data_dir` is set — the start log says so);
 *   `"etcd"`: the servers of a datacenter share an etcd cluster (`state.etcd.endpoints`), elect
 *   a leader with an etcd lease, and follow the command log through a watch. A plugin can bring
 *   its own backend with `state({ backend })`.
 * - **Leadership**: the backend decides; the plugin fires the kernel's `onLeadershipAcquired` /
 *   `onLeadershipLost` hooks and binds {@link Tokens.Consensus} so `Status.Leader`/`Status.Peers`
 *   and `/v1/status/*` report the real leader and peers.
 * - **Catalog**: `Catalog.Register/Deregister/ListNodes/ListServices/ServiceNodes`,
 *   `Health.ServiceNodes`, `Internal.ServiceDump`; HTTP `PUT /v1/catalog/register|deregister`,
 *   `GET /v1/catalog/nodes|services|service/<name>`, `GET /v1/health/service/<name>` with
 *   blocking `?index=&wait=`, `?stale`, `?consistent`, `?dc=` and the `X-Consul-*` headers.
 *   Writes on a follower are forwarded to the leader; `?dc=` to another datacenter through the
 *   router (when the `router` plugin is present).
 * - **ACLs**: with the `acl` plugin, the catalog endpoints check each request's token (see
 *   `catalog.ts` for the rules): writes are refused with `Permission denied` (HTTP 403), reads
 *   are filtered.
 * - Each server registers itself as service `consul` (port = its RPC port) with a passing
 *   `serfHealth` check: the leader writes its own registration straight through the backend
 *   (no ACL check, as Consul's leader does); another server sends it to the leader with
 *   `acl.tokens.agent` (else `acl.tokens.initial_management`).
 *
 * @example
 * ```ts
 * import { createAgent } from 'meshfed';
 * import { tls } from 'meshfed/plugins/tls';
 * import { rpc } from 'meshfed/plugins/rpc';
 * import { http, HttpTokens } from 'meshfed/plugins/http';
 * import { state, StateTokens } from 'meshfed/plugins/state';
 * const agent = await createAgent({
 *   config: { server: true, node_name: 's1', data_dir: '/var/lib/meshfed', bind_addr: '127.0.0.1', ports: { server: 0, http: 0 } },
 *   plugins: [tls({ dev: true }), rpc(), http(), state()],
 * });
 * await agent.start();
 * const api = `http://${agent.services.get(HttpTokens.HttpApi).address}`;
 * await fetch(`${api}/v1/catalog/register`, { method: 'PUT', body: JSON.stringify({ Node: 'web1', Address: '10.0.0.5', Service: { Service: 'web', Port: 80 } }) });
 * agent.services.get(StateTokens.Store).serviceNodes('web').value; // [{ Node: 'web1', ServicePort: 80, … }]
 * await agent.stop();
 * ```
 */
import { readFileSync } from 'node:fs';
import { errorMessage, MeshfedError } from '../../core/errors.js';
import type { AgentConfig } from '../../core/config/schema.js';
import type { AgentPlugin } from '../../core/plugin.js';
import { serviceToken, Tokens } from '../../core/tokens.js';
import { AclTokens, isAclError } from '../acl/index.js';
import { GossipTokens } from '../gossip/index.js';
import { HttpTokens } from '../http/index.js';
import { RouterTokens } from '../router/index.js';
import { RpcTokens } from '../rpc/index.js';
import { decode, encode } from '../rpc/msgpack/index.js';
import { EtcdBackend } from './backend/etcd.js';
import { localBackend } from './backend/local.js';
import type { BackendContext, StateBackend } from './backend/types.js';
import { catalogEndpoints, toStoreRegister } from './catalog.js';
import { catalogRoutes } from './http.js';
import { ServerReconciler } from './reconcile.js';
import { StateServer } from './server.js';
import { MessageType, StateStore } from './store/index.js';
import { RegisterRequest } from './structs.js';

export { StateStore } from './store/index.js';
export { localBackend, type LocalBackendOptions } from './backend/local.js';
export { EtcdBackend, EtcdBackendErrorCode, type EtcdBackendOptions, type EtcdTlsOptions } from './backend/etcd.js';
export { StateBackendErrorCode, type ApplyResult, type BackendContext, type BackendSelf, type LeaderInfo, type StateBackend } from './backend/types.js';
export { ErrNoLeader, StateServer, StateServerErrorCode, type StateCallContext, type StateEndpointSpec, type StateServerOptions } from './server.js';
export { catalogEndpoints } from './catalog.js';
export { BadRequestError, catalogRoutes, decodeJsonBody, errorResponse, handled, parseQueryOptions, queryMetaHeaders, tokenOf } from './http.js';
export * as structs from './structs.js';

/** Tokens of the `state` plugin's services (servers only). */
export const StateTokens = Object.freeze({
  /** The local state store (read it; write only through the backend or the endpoints). */
  Store: serviceToken<StateStore>('state.Store'),
  /** The backend (after `agent.start()`). */
  Backend: serviceToken<StateBackend>('state.Backend'),
  /** Routing and serving of state RPCs; define your own state endpoints with it (after start). */
  Server: serviceToken<StateServer>('state.Server'),
});

/** Options of {@link state}. */
export interface StatePluginOptions {
  /**
   * Bring your own backend instead of `state.backend` (called once per agent at start, after
   * the RPC listener is up).
   */
  readonly backend?: (ctx: BackendContext) => StateBackend;
  /** Register this server as service `consul` in its catalog (default true). */
  readonly registerSelf?: boolean;
  /**
   * The leader keeps the catalog's server registrations in line with the LAN pool (default true
   * when the `gossip` plugin runs): failed servers' `serfHealth` goes critical, departed servers
   * are deregistered. See `reconcile.ts`.
   */
  readonly reconcileServers?: boolean;
}

interface StateConfig {
  readonly backend: 'embedded' | 'etcd';
  readonly snapshot_every: number;
  readonly etcd: {
    readonly endpoints?: readonly string[];
    readonly prefix?: string;
    readonly lease_ttl: number;
    readonly dial_timeout: number;
    readonly request_timeout: number;
    readonly compact: boolean;
    readonly ca_file?: string;
    readonly cert_file?: string;
    readonly key_file?: string;
  };
}

function stateConfig(config: AgentConfig): StateConfig {
  return (config as unknown as { state: StateConfig }).state;
}

function readPem(file: string | undefined, what: string): Buffer | undefined {
  if (file === undefined) return undefined;
  try {
    return readFileSync(file);
  } catch (err) {
    throw new MeshfedError('MESHFED_ERR_CONFIG', `state.etcd.${what}: cannot read ${file}: ${errorMessage(err)}`);
  }
}

/** The state plugin. Requires `rpc`; uses `http` and `router` when present. No-op on clients. */
export function state(options: StatePluginOptions = {}): AgentPlugin {
  return {
    name: 'state',
    requires: ['rpc'],
    provides: ['state-store'],
    configSchema: {
      state: {
        kind: 'object',
        doc: 'Where servers keep the catalog and federation states.',
        fields: {
          backend: { kind: 'string', default: 'embedded', enum: ['embedded', 'etcd'], doc: '`embedded`: one server per datacenter, durable in `data_dir`; `etcd`: several servers sharing an etcd cluster.' },
          snapshot_every: { kind: 'int', default: 10_000, min: 1, doc: 'Log entries between snapshots (both backends).' },
          etcd: {
            kind: 'object',
            doc: 'The etcd cluster of `backend = "etcd"`.',
            fields: {
              endpoints: { kind: 'list', of: { kind: 'string', doc: 'An etcd client URL, e.g. `http://10.0.0.1:2379`.' }, doc: 'Client URLs of the etcd cluster (required for `etcd`).' },
              prefix: { kind: 'string', doc: 'Key prefix of this datacenter (default `/meshfed/<datacenter>/`).' },
              lease_ttl: { kind: 'duration', default: '5s', min: '2s', doc: "Leader lease TTL: a dead leader is replaced after about this long." },
              dial_timeout: { kind: 'duration', default: '5s', min: '1ms', doc: 'Time to connect to etcd.' },
              request_timeout: { kind: 'duration', default: '5s', min: '1ms', doc: 'A write not acknowledged by etcd within this fails (not acknowledged).' },
              compact: { kind: 'bool', default: true, doc: "Compact etcd's history up to each snapshot the leader writes (the whole keyspace; turn off when etcd's own auto-compaction is configured or other users of the cluster need older revisions)." },
              ca_file: { kind: 'string', doc: 'PEM CA of the etcd server certificates (https endpoints).' },
              cert_file: { kind: 'string', doc: 'PEM client certificate for etcd.' },
              key_file: { kind: 'string', doc: 'PEM client key for etcd.' },
            },
          },
        },
      },
    },
    validate({ config }) {
      const s = stateConfig(config);
      if (config.server && s.backend === 'etcd' && !options.backend && !(s.etcd.endpoints && s.etcd.endpoints.length > 0)) {
        throw new MeshfedError('MESHFED_ERR_CONFIG', 'state.backend = "etcd" needs state.etcd.endpoints (e.g. ["http://127.0.0.1:2379"])');
      }
      if ((s.etcd.cert_file === undefined) !== (s.etcd.key_file === undefined)) {
        throw new MeshfedError('MESHFED_ERR_CONFIG', 'state.etcd.cert_file and state.etcd.key_file go together');
      }
    },
    register({ container, config }) {
      if (!config.server) return;
      container.bind(StateTokens.Store).toConstantValue(new StateStore());
      const holder: { backend?: StateBackend; server?: StateServer } = {};
      container.bind(HOLDER).toConstantValue(holder);
      const need = <T>(v: T | undefined, what: string): T => {
        if (v !== undefined) return v;
        throw new MeshfedError('MESHFED_ERR_SERVICE_NOT_BOUND', `state: the ${what} exists once the agent has started`);
      };
      container.bind(StateTokens.Backend).toDynamicValue(() => need(holder.backend, 'backend')).inTransientScope();
      container.bind(StateTokens.Server).toDynamicValue(() => need(holder.server, 'state server')).inTransientScope();
      container.bind(Tokens.Consensus).toConstantValue({
        leader: () => holder.backend?.leader()?.address ?? '',
        peers: () => holder.backend?.peers() ?? [],
      });
    },
    apply({ config, services, hooks, logger, signal }) {
      if (!config.server) return;
      const s = stateConfig(config);
      const store = services.get(StateTokens.Store);
      const holder = services.get(HOLDER);
      const pool = services.get(RpcTokens.Pool);
      const registry = services.get(RpcTokens.Endpoints);
      const leadership = services.get(Tokens.Leadership);
      const listener = services.tryGet(RpcTokens.Listener);
      const rpcPort = (): number => Number(listener?.address?.split(':').pop() ?? config.ports.server);
      let wantLeader = false;
      let agentStarted = false;
      hooks.onStarted.tapPromise({}, async () => {
        agentStarted = true;
        if (wantLeader) await leadership.acquire();
      });
      const ctx: BackendContext = {
        store,
        logger,
        self: {
          node: config.node_name,
          datacenter: config.datacenter,
          rpcAddress: () => `${config.advertise_addr}:${rpcPort()}`,
          onLeadership: async (isLeader) => {
            wantLeader = isLeader;
            // Leader-only routines start once every plugin has started (see onStarted below).
            if (!isLeader) await leadership.lose();
            else if (agentStarted) await leadership.acquire();
          },
        },
      };
      const makeBackend = (): StateBackend => {
        if (options.backend) return options.backend(ctx);
        if (s.backend === 'etcd') {
          const e = s.etcd;
          const tlsOpts = { ca: readPem(e.ca_file, 'ca_file'), cert: readPem(e.cert_file, 'cert_file'), key: readPem(e.key_file, 'key_file') };
          return EtcdBackend.create({
            ...ctx,
            endpoints: [...(e.endpoints ?? [])],
            ...(e.prefix !== undefined ? { prefix: e.prefix } : {}),
            leaseTtlSec: Math.max(2, Math.round(e.lease_ttl / 1000)),
            dialTimeoutMs: e.dial_timeout,
            requestTimeoutMs: e.request_timeout,
            snapshotEvery: s.snapshot_every,
            compactHistory: e.compact,
            ...(tlsOpts.ca || tlsOpts.cert ? { tls: tlsOpts } : {}),
          });
        }
        return localBackend({ ...ctx, dir: config.data_dir, snapshotEvery: s.snapshot_every });
      };
      let selfRegistration: Promise<void> | undefined;
      const registerSelf = async (srv: StateServer): Promise<void> => {
        const wan = (config as unknown as { advertise_addr_wan?: string }).advertise_addr_wan ?? config.advertise_addr;
        const req = decode(
          encode(
            {
              Node: config.node_name,
              Address: config.advertise_addr,
              TaggedAddresses: { lan: config.advertise_addr, wan },
              Service: { ID: 'consul', Service: 'consul', Port: rpcPort() },
              Checks: [{ CheckID: 'serfHealth', Name: 'Serf Health Status', Status: 'passing', Output: 'Agent alive and reachable' }],
              Token: config.acl.tokens.agent || config.acl.tokens.initial_management || '',
            },
            RegisterRequest,
          ),
          RegisterRequest,
        );
        // Until it lands: the leader writes it through the backend (the server itself, no ACL
        // check); a follower forwards it to the leader, which may not be elected yet.
        let warnedAcl = false;
        for (let delay = 200; !signal.aborted; delay = Math.min(delay * 2, 5000)) {
          try {
            if (srv.backend.isLeader()) await srv.write({ Type: MessageType.Register, Body: toStoreRegister(req) });
            else await srv.call('Catalog.Register', req, { signal });
            logger.debug('registered this server as service "consul"');
            return;
          } catch (err) {
            if (signal.aborted) return;
            if (isAclError(err) && !warnedAcl) {
              warnedAcl = true;
              logger.warn('the leader refused to register this server as service "consul": give acl.tokens.agent node:write on this node and service:write on "consul"; retrying', { err: errorMessage(err) });
            }
            logger.debug('registering this server as service "consul" failed; retrying', { err: errorMessage(err), retry_ms: delay });
            await new Promise<void>((resolve) => {
              const timer = setTimeout(done, delay);
              function done(): void {
                clearTimeout(timer);
                signal.removeEventListener('abort', done);
                resolve();
              }
              signal.addEventListener('abort', done, { once: true });
            });
          }
        }
      };
      const backend = makeBackend();
      holder.backend = backend;
      const srv = new StateServer({ store, backend, datacenter: config.datacenter, pool, router: services.tryGet(RouterTokens.Router), logger });
      holder.server = srv;
      const acl = services.tryGet(AclTokens.Resolver);
      registry.registerAll(catalogEndpoints(srv, config.datacenter, acl ? (token) => acl.resolve(token) : undefined));
      const api = services.tryGet(HttpTokens.HttpApi);
      if (api) catalogRoutes(api, srv);
      if (options.reconcileServers !== false && services.has(GossipTokens.Lan)) {
        const reconciler = new ServerReconciler({
          datacenter: config.datacenter,
          selfNode: config.node_name,
          store,
          write: (command) => srv.write(command),
          // the pool exists once gossip has started (leadership comes after every plugin started)
          members: () => services.get(GossipTokens.Lan).members(),
          logger: logger.child({ component: 'state.reconcile' }),
        });
        hooks.onLeadershipAcquired.tapPromise({}, ({ signal: leaderSignal }) => {
          // in the background: the hook must not wait for catalog writes
          reconciler.lead(leaderSignal).catch((err: unknown) => logger.warn('catalog reconciliation failed', { err: errorMessage(err) }));
          return Promise.resolve();
        });
        hooks.onMembership.tap({}, (event) => reconciler.onMembership(event));
      }
      return {
        async start({ signal: startSignal }) {
          await backend.start(startSignal);
          if (backend.kind === 'memory') logger.warn('no data_dir set: state is kept in memory only and lost when this server stops (set data_dir to keep it; fine with -dev)');
          logger.info('state ready', { backend: backend.kind, index: store.latestIndex(), leader: backend.leader()?.node ?? '' });
          if (options.registerSelf !== false) selfRegistration = registerSelf(srv);
        },
        async stop() {
          await selfRegistration;
          await holder.backend?.close();
        },
        status() {
          const b = holder.backend;
          if (!b) return { backend: s.backend };
          return { backend: b.kind, leader: b.leader()?.node ?? '', is_leader: b.isLeader(), index: store.latestIndex(), last_contact_ms: b.lastContactMs(), ...b.status() };
        },
      };
    },
  };
}

/** Per-agent holder of what exists only after start. */
const HOLDER = serviceToken<{ backend?: StateBackend; server?: StateServer }>('state.Holder');
