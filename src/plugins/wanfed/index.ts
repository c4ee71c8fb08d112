/**
 * The `wanfed` plugin: WAN federation via mesh gateways (spec §1.5–§1.6, §2.3–§2.4, §3). Active
 * on servers with `connect.enable_mesh_gateway_wan_federation = true`:
 *
 * - **Dialing**: a tap on `onDial` (stage EARLY) sends every dial to a server of another
 *   datacenter — pooled RPC (`consul/rpc-multi`), gRPC (`consul/rpc-grpc`), WAN gossip — through
 *   a mesh gateway picked by the gateway locator (candidates through `onGatewayList`), as TLS with
 *   SNI `<node>.server.<dc>.<domain>` and exactly one ALPN id. Same-datacenter dials pass.
 * - **WAN gossip**: binds {@link GossipTokens.WanTransport}, so the WAN pool's packets and streams
 *   to other datacenters ride `consul/wan-gossip/packet` (length-prefixed frames over pooled
 *   connections) and `consul/wan-gossip/stream`; the RPC port's ALPN handlers ingest them.
 * - **gRPC**: with the router's gRPC resolver bound, a remote datacenter's endpoints become the
 *   gateways the locator would pick from (after `onGatewayList`), re-pushed whenever the locator's
 *   lists change; none known → calls fail with `Remote DC has no server currently reachable`. The
 *   `grpc` plugin's credentials then speak TLS + ALPN `consul/rpc-grpc` to them.
 * - **Bootstrap**: the primary never joins down; a secondary waits until the locator knows a
 *   primary gateway (from `primary_gateways` discovery or replicated federation states), then
 *   retry-joins `*.<primary>/192.0.2.2:8302` — the gateway routes SNI `server.<primary>.<domain>` to
 *   any primary server. `retry_join_wan` is refused by configuration validation.
 *
 * @example
 * ```ts
 * // a secondary datacenter's server: only the primary's gateway address is configured
 * const agent = await createAgent({
 *   config: {
 *     server: true, datacenter: 'dc2', primary_datacenter: 'dc1', node_name: 's2',
 *     connect: { enabled: true, enable_mesh_gateway_wan_federation: true },
 *     primary_gateways: ['198.51.100.7:8443'],
 *     tls: { ca_file: 'ca.pem', cert_file: 'dc2-server.pem', key_file: 'dc2-server-key.pem', verify_incoming: true, verify_outgoing: true },
 *   },
 *   plugins: [tls(), rpc(), http(), gossip(), router(), grpc(), state(), federation(), wanfed()],
 * });
 * ```
 */
import type { AgentPlugin } from '../../core/plugin.js';
import { Stage } from '../../core/hooks.js';
import { errorMessage } from '../../core/errors.js';
import { Alpn } from '../../core/protocol.js';
import { serviceToken, Tokens } from '../../core/tokens.js';
import type { Dialer } from '../../core/kernel-services.js';
import { FederationTokens } from '../federation/index.js';
import { GossipTokens } from '../gossip/index.js';
import { RouterTokens } from '../router/index.js';
import type { GossipTransport } from '../gossip/transport/index.js';
import { TlsTokens } from '../tls/index.js';
import { dialViaMeshGateway } from './dial.js';
import { servePacketStream } from './packet-stream.js';
import { WanfedTransport } from './transport.js';
import { sleep } from '../federation/loop.js';
import { systemClock } from '../../core/clock.js';

export { splitNodeName } from './node-name.js';
export { PacketConnPool, type PooledPacketConn } from './packet-pool.js';
export { encodePacketFrame, servePacketStream, GOSSIP_PACKET_MAX_BYTES, GOSSIP_PACKET_MAX_IDLE_MS, type PacketStreamOptions } from './packet-stream.js';
export { alpnOfTarget, dialViaMeshGateway, type GatewayDialOptions } from './dial.js';
export { WanfedTransport, type WanfedTransportOptions, type WanfedTransportStats } from './transport.js';

/** The synthetic join address of a secondary's WAN bootstrap (TEST-NET-1; the gateway ignores it). */
export const WAN_BOOTSTRAP_ADDRESS = '192.0.2.2:8302';

/** Tokens of the `wanfed` plugin. */
export const WanfedTokens = Object.freeze({
  /** The WAN pool's transport once the gossip plugin built it (servers with wanfed on). */
  Transport: serviceToken<{ transport?: WanfedTransport }>('wanfed.Transport'),
});

/** Whether WAN federation via mesh gateways applies to this agent. */
function active(config: { server: boolean; connect: { enable_mesh_gateway_wan_federation: boolean } }): boolean {
  return config.server && config.connect.enable_mesh_gateway_wan_federation;
}

/** The wanfed plugin. Requires `gossip`, `federation` (the gateway locator) and `rpc`. */
export function wanfed(): AgentPlugin {
  return {
    name: 'wanfed',
    requires: ['gossip', 'federation', 'rpc'],
    register({ container, config, logger }) {
      const holder: { transport?: WanfedTransport } = {};
      container.bind(WanfedTokens.Transport).toConstantValue(holder);
      if (!active(config)) return;
      container.bind(GossipTokens.WanTransport).toResolvedValue(
        (dialer: Dialer) => (inner: GossipTransport) => {
          const t = new WanfedTransport({ inner, datacenter: config.datacenter, dialer, logger: logger.child({ component: 'wanfed.transport' }) });
          holder.transport = t;
          return t;
        },
        [Tokens.Dialer],
      );
    },
    apply({ config, services, hooks, logger }) {
      if (!active(config)) return;
      const holder = services.get(WanfedTokens.Transport);
      const locator = services.get(FederationTokens.Locator);
      const tlsConf = services.get(TlsTokens.Configurator);
      hooks.onDial.tapPromise({ stage: Stage.EARLY }, async (target, ctx) => {
        if (target.datacenter === ctx.localDatacenter) return undefined;
        return dialViaMeshGateway(target, { tls: tlsConf, pickGateway: (dc, exclude) => locator.pickGateway(dc, exclude), signal: ctx.signal });
      });
      hooks.onRpcAccept.for(Alpn.WanGossipPacket).tap({}, (conn, info) => {
        const t = holder.transport;
        if (!t) {
          conn.destroy();
          return true;
        }
        void servePacketStream(conn, { ingest: (buf, from, ts) => t.ingestPacket(buf, from, ts), remoteAddress: info.remoteAddress, logger, signal: info.signal });
        return true;
      });
      hooks.onRpcAccept.for(Alpn.WanGossipStream).tap({}, (conn) => {
        const t = holder.transport;
        if (!t) conn.destroy();
        else t.ingestStream(conn);
        return true;
      });
      // gRPC to other DCs: the resolver pushes the gateways the locator would pick from (spec §11.3 "Dialer").
      const grpcResolver = services.tryGet(RouterTokens.GrpcResolver);
      grpcResolver?.setRemoteEndpoints((dc) => locator.candidateGateways(dc));
      const stopFollowingGateways = grpcResolver ? locator.onChange(() => grpcResolver.refreshAll()) : undefined;
      const isPrimary = config.datacenter === config.primary_datacenter;
      let bootstrap: Promise<void> | undefined;
      return {
        start() {
          if (isPrimary) return;
          const signal = services.get(Tokens.AgentSignal);
          // Join up once a primary gateway is known (discovery or replication), then keep retrying.
          bootstrap = (async () => {
            for (let delay = 100; (await locator.pickGateway(config.primary_datacenter)) === ''; delay = Math.min(delay * 2, 2000)) await sleep(delay, signal, systemClock);
            const wan = services.get(GossipTokens.Wan);
            logger.info('joining the WAN pool through the primary datacenter’s mesh gateways', { primary: config.primary_datacenter });
            await wan.retryJoin({
              addresses: [`*.${config.primary_datacenter}/${WAN_BOOTSTRAP_ADDRESS}`],
              intervalMs: config.retry_interval_wan,
              maxAttempts: (config as unknown as { retry_max_wan?: number }).retry_max_wan ?? 0,
              signal,
            });
          })().catch((err: unknown) => {
            if (!signal.aborted) logger.error('WAN bootstrap through mesh gateways failed', { err: errorMessage(err) });
          });
        },
        async stop() {
          stopFollowingGateways?.();
          await bootstrap;
        },
        status: () => ({ transport: holder.transport?.stats() ?? 'not running', locator_mode: locator.status().mode }),
      };
    },
  };
}
