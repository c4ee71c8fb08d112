/**
 * The `xds` plugin (servers only): an Envoy ADS server for mesh gateways that expose servers
 * (WAN federation via mesh gateways, spec §9).
 *
 * - Listens (plaintext gRPC) on `client_addr:ports.grpc` and, with TLS, on `client_addr:ports.grpc_tls`
 *   (`0` = a free port, `-1` = disabled, the default for `grpc_tls`): the agent's certificate from
 *   the `tls` plugin, client certificates required only with `tls.verify_incoming`.
 * - With the `acl` plugin and `acl.enabled`, the stream's `x-consul-token` metadata must grant
 *   `service:write` on the gateway's service name (Consul's rule for mesh gateways): an unknown
 *   token ends the stream with `UNAUTHENTICATED` (`ACL not found`), a missing permission with
 *   `PERMISSION_DENIED`. Checked when the first request names the proxy, on every later request and
 *   before every push (the service name follows the catalog); tokens come from configuration and do
 *   not change while the agent runs, so no timer re-checks them.
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
import { HttpTokens } from '../http/index.js';
import { StateTokens } from '../state/index.js';
import { ConfigError, errorMessage } from '../../core/errors.js';
import { ACL_NOT_FOUND, AclTokens, isAclError } from '../acl/index.js';
import { TlsTokens } from '../tls/index.js';
import { AdsServer, adsServerCredentials, EMPTY_XDS_STATS, XdsStreamError, type XdsProxySource, type XdsProxyStatus, type XdsStats } from './ads-server.js';
import type { XdsCodec } from './codec.js';
import { buildResources } from './resources.js';
import { readMeshGatewaySnapshot, type MeshGatewaySnapshot } from './snapshot.js';
import * as grpc from '@grpc/grpc-js';

export { AdsServer, adsServerCredentials, EMPTY_XDS_STATS, XdsStreamError, type AdsServerOptions, type AdsTlsMaterial, type XdsProxySource, type XdsProxyStatus, type XdsStats, type XdsTypeStatus } from './ads-server.js';
export { ADS_PROTO_FILE, ADS_SERVICE_NAME, RESOURCE_PROTO_FILES, XdsCodec, XdsEncodeError, protoIncludeDirs, type EncodedAny } from './codec.js';
export * from './resources.js';
export * from './snapshot.js';

/** What {@link XdsTokens.Server} exposes. */
export interface XdsServerService {
  /** `host:port` of the plaintext ADS listener once started (`undefined` before, or when disabled). */
  readonly address: string | undefined;
  /** `host:port` of the TLS ADS listener (`ports.grpc_tls`) once started (`undefined` before, or when disabled). */
  readonly tlsAddress: string | undefined;
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
        get tlsAddress() {
          return holder.server?.tlsAddress;
        },
        proxies: () => holder.server?.proxies() ?? [],
        stats: () => holder.server?.stats() ?? EMPTY_XDS_STATS,
      });
    },
    apply({ config, services, logger }) {
      if (!config.server) return;
      const store = services.get(StateTokens.Store);
      const builder = services.get(Tokens.XdsBuilder);
      const holder = services.get(HOLDER);
      const view = services.get(XdsTokens.Server);
      const snapshotOptions = (proxyId: string) => ({ datacenter: config.datacenter, domain: config.domain, proxyId, connectTimeoutMs: options.connectTimeoutMs });
      const acls = services.tryGet(AclTokens.Resolver);
      /** Service name of each open stream's proxy, as its latest snapshot has it (ACL checks). */
      const serviceNames = new WeakMap<XdsProxyInfo, { name: string }>();

      const source: XdsProxySource = {
        open(nodeId, signal, push, fail) {
          const first = readMeshGatewaySnapshot(store, snapshotOptions(nodeId));
          if (!first.value) {
            throw new XdsStreamError(first.lookup.error === 'ambiguous' ? grpc.status.FAILED_PRECONDITION : grpc.status.NOT_FOUND, first.lookup.message ?? `unknown proxy ${nodeId}`);
          }
          const snap = first.value;
          const proxy: XdsProxyInfo = Object.freeze({ id: snap.proxy.id, kind: 'mesh-gateway', datacenter: config.datacenter, meta: Object.freeze({ ...snap.proxy.meta }) });
          serviceNames.set(proxy, { name: snap.proxy.service });
          void follow(nodeId, proxy, signal, push, fail);
          return proxy;
        },
        authorize(proxy, token) {
          if (!acls?.enabled) return;
          let authz;
          try {
            authz = acls.resolve(token);
          } catch (err) {
            if (isAclError(err)) throw new XdsStreamError(grpc.status.UNAUTHENTICATED, `unauthenticated: ${ACL_NOT_FOUND}`);
            throw err;
          }
          const service = serviceNames.get(proxy)?.name ?? proxy.id;
          if (!authz.serviceWrite(service)) throw new XdsStreamError(grpc.status.PERMISSION_DENIED, `permission denied: token lacks permission 'service:write' on ${JSON.stringify(service)}`);
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
          const names = serviceNames.get(proxy);
          if (names && snapshot) names.name = snapshot.proxy.service;
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
      if (api) api.route('GET', '/v1/meshfed/xds', () => ({ json: { address: view.address ?? null, tls_address: view.tlsAddress ?? null, proxies: view.proxies(), stats: view.stats() } }));

      return {
        async start() {
          if (config.ports.grpc < 0 && config.ports.grpc_tls < 0) {
            logger.info('xDS server disabled (ports.grpc = -1, ports.grpc_tls = -1)');
            return;
          }
          const server = new AdsServer({ source, codec: options.codec, logger });
          try {
            if (config.ports.grpc >= 0) {
              const address = await server.listen(config.client_addr, config.ports.grpc);
              logger.info('xDS (ADS) server listening (plaintext gRPC)', { address, acls: acls?.enabled === true });
            }
            if (config.ports.grpc_tls >= 0) {
              const conf = services.tryGet(TlsTokens.Configurator);
              if (!conf?.mutualTlsCapable()) {
                throw new ConfigError(
                  [{ key: 'ports.grpc_tls', message: 'serving ADS over TLS needs the tls plugin with a certificate: set tls.ca_file, tls.cert_file and tls.key_file (or run -dev), or set ports.grpc_tls to -1' }],
                  { plugin: 'xds' },
                );
              }
              const requireClientCert = conf.verifyIncoming;
              const incoming = conf.incomingOptions({ requireClientCert });
              const credentials = adsServerCredentials({
                ca: incoming.ca as string | Buffer,
                cert: incoming.cert as string | Buffer,
                key: incoming.key as string | Buffer,
                requireClientCert,
                ...(incoming.SNICallback ? { SNICallback: incoming.SNICallback } : {}),
              });
              const address = await server.listenTls(config.client_addr, config.ports.grpc_tls, credentials);
              logger.info('xDS (ADS) server listening (gRPC over TLS)', { address, client_certificates: requireClientCert ? 'required' : 'not requested', acls: acls?.enabled === true });
            }
          } catch (err) {
            await server.close();
            throw err;
          }
          holder.server = server;
        },
        async stop() {
          const server = holder.server;
          holder.server = undefined;
          await server?.close();
        },
        status() {
          const st = view.stats();
          return {
            listening: view.address ?? 'disabled',
            listening_tls: view.tlsAddress ?? 'disabled',
            proxies: st.streams_active,
            responses: st.responses,
            nacks: st.nacks,
            acl_refusals: st.permission_denied + st.unauthenticated,
          };
        },
      };
    },
  };
}

/** Per-agent holder of the server (exists after start). */
const HOLDER = serviceToken<{ server?: AdsServer }>('xds.Holder');
