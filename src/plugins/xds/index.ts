/**
 * The `xds` plugin (servers only): an Envoy ADS server for mesh gateways that expose servers
 * (WAN federation via mesh gateways, spec §9).
 *
 * - Listens (plaintext gRPC) on `client_addr:ports.grpc` (`0` = a free port, `-1` = disabled).
 * - An Envoy connects with its node id = the gateway's **service ID** (`<node>/<service-id>` when
 *   the same ID is registered on several nodes); an unknown id ends the stream with `NOT_FOUND`.
 * - Per connected gateway a watch loop runs a blocking query over everything its snapshot reads
 *   (mesh-gateway catalog dump, servers, federation states), rebuilds the snapshot
 *   ({@link readMeshGatewaySnapshot}) and the resources ({@link buildResources}), runs them through
 *   the kernel's `onXdsBuild` hook, and pushes what changed. The loop ends with the stream.
 * - Service {@link XdsTokens.Server}; `GET /v1/meshfed/xds` lists connected proxies and their
 *   versions when the `http` plugin is present.
 *
 * @module
 */
import type { AgentPlugin } from '../../core/plugin.js';
import { serviceToken, Tokens } from '../../core/tokens.js';
import type { XdsProxyInfo, XdsResources } from '../../core/types.js';
import { errorMessage } from '../../core/errors.js';
import { HttpTokens } from '../http/index.js';
import { StateTokens } from '../state/index.js';
import { AdsServer, XdsStreamError, type XdsProxySource, type XdsProxyStatus, type XdsStats } from './ads-server.js';
import type { XdsCodec } from './codec.js';
import { buildResources } from './resources.js';
import { readMeshGatewaySnapshot, type MeshGatewaySnapshot } from './snapshot.js';
import * as grpc from '@grpc/grpc-js';

export { AdsServer, XdsStreamError, type AdsServerOptions, type XdsProxySource, type XdsProxyStatus, type XdsStats, type XdsTypeStatus } from './ads-server.js';
export { ADS_PROTO_FILE, ADS_SERVICE_NAME, RESOURCE_PROTO_FILES, XdsCodec, XdsEncodeError, protoIncludeDirs, type EncodedAny } from './codec.js';
export * from './resources.js';
export * from './snapshot.js';

/** What {@link XdsTokens.Server} exposes. */
export interface XdsServerService {
  /** `host:port` of the ADS listener once started (`undefined` before, or when disabled). */
  readonly address: string | undefined;
  /** The connected proxies with their per-type versions and nonces. */
  proxies(): XdsProxyStatus[];
  /** Counters since start. */
  stats(): XdsStats;
}

/** Tokens of the `xds` plugin's services (servers only). */
export const XdsTokens = Object.freeze({
  /** The ADS server (status, connected proxies). */
  Server: serviceToken<XdsServerService>('xds.Server'),
});

/** Options of {@link xds}. */
export interface XdsPluginOptions {
  /**
   * A codec to use instead of loading the Envoy protos again (about two seconds per agent);
   * agents in one process (tests) may share one.
   */
  readonly codec?: XdsCodec;
  /** Connect timeout of gateway clusters in ms (default 5000). */
  readonly connectTimeoutMs?: number;
}

/**
 * The xDS plugin. Requires `state`; no-op on client agents.
 *
 * @example
 * ```ts
 * import { createAgent } from 'meshfed';
 * import { tls } from 'meshfed/plugins/tls';
 * import { rpc } from 'meshfed/plugins/rpc';
 * import { state } from 'meshfed/plugins/state';
 * import { xds, XdsTokens } from 'meshfed/plugins/xds';
 * const agent = await createAgent({
 *   config: { server: true, node_name: 's1', bind_addr: '127.0.0.1', ports: { server: 0, grpc: 0 } },
 *   plugins: [tls({ dev: true }), rpc(), state(), xds()],
 * });
 * await agent.start();
 * // Point Envoy's ADS cluster at this address; its node id is the gateway's service ID.
 * const adsAddress = agent.services.get(XdsTokens.Server).address; // "127.0.0.1:<port>"
 * await agent.stop();
 * ```
 */
export function xds(options: XdsPluginOptions = {}): AgentPlugin {
  return {
    name: 'xds',
    requires: ['state'],
    register({ container, config }) {
      if (!config.server) return;
      const holder: { server?: AdsServer } = {};
      container.bind(HOLDER).toConstantValue(holder);
      container.bind(XdsTokens.Server).toConstantValue({
        get address() {
          return holder.server?.address;
        },
        proxies: () => holder.server?.proxies() ?? [],
        stats: () =>
          holder.server?.stats() ?? { streams_total: 0, streams_active: 0, responses: 0, acks: 0, nacks: 0, stale_requests: 0, encode_errors: 0, not_found: 0 },
      });
    },
    apply({ config, services, logger }) {
      if (!config.server) return;
      const store = services.get(StateTokens.Store);
      const builder = services.get(Tokens.XdsBuilder);
      const holder = services.get(HOLDER);
      const view = services.get(XdsTokens.Server);
      const snapshotOptions = (proxyId: string) => ({ datacenter: config.datacenter, domain: config.domain, proxyId, connectTimeoutMs: options.connectTimeoutMs });

      const source: XdsProxySource = {
        open(nodeId, signal, push, fail) {
          const first = readMeshGatewaySnapshot(store, snapshotOptions(nodeId));
          if (!first.value) {
            throw new XdsStreamError(first.lookup.error === 'ambiguous' ? grpc.status.FAILED_PRECONDITION : grpc.status.NOT_FOUND, first.lookup.message ?? `unknown proxy ${nodeId}`);
          }
          const snap = first.value;
          const proxy: XdsProxyInfo = Object.freeze({ id: snap.proxy.id, kind: 'mesh-gateway', datacenter: config.datacenter, meta: Object.freeze({ ...snap.proxy.meta }) });
          void follow(nodeId, proxy, signal, push, fail);
          return proxy;
        },
      };

      async function follow(
        nodeId: string,
        proxy: XdsProxyInfo,
        signal: AbortSignal,
        push: (r: XdsResources) => void,
        fail: (e: XdsStreamError) => void,
      ): Promise<void> {
        let index = 0;
        while (!signal.aborted) {
          let snapshot: MeshGatewaySnapshot | undefined;
          try {
            const r = await store.blockingQuery({ minQueryIndex: index, signal }, (ws) => readMeshGatewaySnapshot(store, snapshotOptions(nodeId), ws));
            index = r.index;
            snapshot = r.value;
          } catch (err) {
            if (signal.aborted) return;
            logger.error('xDS watch failed', { node_id: nodeId, err: errorMessage(err) });
            fail(new XdsStreamError(grpc.status.INTERNAL, `watch failed: ${errorMessage(err)}`));
            return;
          }
          if (!snapshot) {
            fail(new XdsStreamError(grpc.status.NOT_FOUND, `mesh gateway "${nodeId}" was deregistered from datacenter ${config.datacenter}`));
            return;
          }
          try {
            const built = await builder.build(buildResources(snapshot), { proxy, snapshot });
            if (signal.aborted) return;
            push(built);
          } catch (err) {
            // A failing onXdsBuild tap: keep the last pushed resources, try again on the next change.
            logger.error('building xDS resources failed; keeping the previous ones', { node_id: nodeId, err: errorMessage(err) });
          }
        }
      }

      const api = services.tryGet(HttpTokens.HttpApi);
      if (api) api.route('GET', '/v1/meshfed/xds', () => ({ json: { address: view.address ?? null, proxies: view.proxies(), stats: view.stats() } }));

      return {
        async start() {
          if (config.ports.grpc < 0) {
            logger.info('xDS server disabled (ports.grpc = -1)');
            return;
          }
          const server = new AdsServer({ source, codec: options.codec, logger });
          const address = await server.listen(config.client_addr, config.ports.grpc);
          holder.server = server;
          logger.info('xDS (ADS) server listening (plaintext gRPC)', { address });
        },
        async stop() {
          const server = holder.server;
          holder.server = undefined;
          await server?.close();
        },
        status() {
          const st = view.stats();
          return { listening: view.address ?? 'disabled', proxies: st.streams_active, responses: st.responses, nacks: st.nacks };
        },
      };
    },
  };
}

/** Per-agent holder of the server (exists after start). */
const HOLDER = serviceToken<{ server?: AdsServer }>('xds.Holder');
