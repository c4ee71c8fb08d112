/**
 * `http` plugin: the HTTP API on `client_addr:ports.http`. It serves the agent's own endpoints
 * (`/v1/agent/self`, `/v1/status/leader`, `/v1/status/peers`, `/v1/meshfed/status`) and lets
 * other plugins add routes through the {@link HttpApi} service.
 */
import type { AgentPlugin } from '../../core/plugin.js';
import { Tokens, serviceToken } from '../../core/tokens.js';
import { MESHFED_VERSION } from '../../core/version.js';
import { RpcTokens } from '../rpc/index.js';
import { HttpApiServer, type HttpApi } from './http-api.js';

export { HttpApiServer, MAX_BODY_BYTES, type HttpApi, type HttpHandler, type HttpRequest, type HttpResponse } from './http-api.js';

/** Tokens of the `http` plugin's services. */
export const HttpTokens = Object.freeze({
  /** The route table; add endpoints in your plugin's `apply`. */
  HttpApi: serviceToken<HttpApi>('http.HttpApi'),
});

/** Options of {@link http}. */
export interface HttpPluginOptions {
  /** Serve `/v1/meshfed/status` (default true). */
  readonly statusEndpoint?: boolean;
}

/**
 * The HTTP API plugin.
 *
 * @example
 * ```ts
 * import { createAgent } from 'meshfed';
 * import { http, HttpTokens } from 'meshfed/plugins/http';
 * const agent = await createAgent({ config: { ports: { http: 0 } }, plugins: [http()] });
 * await agent.start();
 * const address = agent.services.get(HttpTokens.HttpApi).address; // "127.0.0.1:<port>"
 * const self = await (await fetch(`http://${address}/v1/agent/self`)).json();
 * await agent.stop();
 * ```
 */
export function http(options: HttpPluginOptions = {}): AgentPlugin {
  return {
    name: 'http',
    provides: ['http-api'],
    register({ container, logger }) {
      container.bind(HttpTokens.HttpApi).toConstantValue(new HttpApiServer(logger));
    },
    apply({ config, services, logger }) {
      const api = services.get(HttpTokens.HttpApi) as HttpApiServer;
      const status = services.get(Tokens.Status);
      api.route('GET', '/v1/agent/self', () => ({
        json: {
          Config: {
            Datacenter: config.datacenter,
            PrimaryDatacenter: config.primary_datacenter,
            NodeName: config.node_name,
            Server: config.server,
            Domain: config.domain,
            Version: MESHFED_VERSION,
          },
          Member: { Name: config.node_name, Addr: config.advertise_addr, Port: config.ports.serf_lan },
          Meta: { status: status.status().state },
        },
      }));
      // Without a consensus view (no state plugin) an agent reports itself while it leads; the
      // RPC listener's bound port is used when known (port 0 in tests).
      const selfRpc = (): string => `${config.advertise_addr}:${services.tryGet(RpcTokens.Listener)?.address?.split(':').pop() ?? config.ports.server}`;
      const consensus = () => services.tryGet(Tokens.Consensus);
      api.route('GET', '/v1/status/leader', () => ({ json: consensus()?.leader() ?? (status.status().leader ? selfRpc() : '') }));
      api.route('GET', '/v1/status/peers', () => ({ json: consensus()?.peers() ?? (status.status().leader ? [selfRpc()] : []) }));
      if (options.statusEndpoint !== false) api.route('GET', '/v1/meshfed/status', () => ({ json: status.status() }));
      return {
        async start({ signal }) {
          if (config.ports.http < 0) {
            logger.info('HTTP API disabled (ports.http = -1)');
            return;
          }
          const addr = await api.listen(config.client_addr, config.ports.http, signal);
          logger.info('HTTP API listening', { address: addr });
        },
        async stop() {
          await api.close();
        },
        status() {
          return api.address ? { listening: `http://${api.address}` } : { listening: 'disabled' };
        },
      };
    },
  };
}
