/**
 * Dialing another datacenter's server through a mesh gateway (spec §1.5–§1.6): pick a gateway
 * with the locator, open TCP to it, and do a TLS handshake whose SNI names the destination
 * (`<node>.server.<dc>.<domain>`, or `server.<dc>.<domain>` for `*`) and whose ALPN — exactly one
 * id — names the protocol. No type byte is ever written on this path.
 */
import type { TLSSocket } from 'node:tls';
import { MeshfedError } from '../../core/errors.js';
import { alpnForRpcType, Alpn } from '../../core/protocol.js';
import type { DialTarget } from '../../core/types.js';
import { ErrDCNotAvailable, RouterError, RouterErrorCode } from '../router/index.js';
import { splitHostPort, tcpConnect } from '../rpc/index.js';
import type { TlsConfigurator } from '../tls/index.js';

/** Gateway picks per dial: a refused TCP connect to one gateway tries another. */
export const GATEWAY_DIAL_ATTEMPTS = 4;

/** What the gateway dial needs. */
export interface GatewayDialOptions {
  /** Mutual-TLS material (CA + this server's certificate). */
  readonly tls: TlsConfigurator;
  /** The gateway locator's pick for a datacenter (`''` = none). */
  readonly pickGateway: (datacenter: string, exclude?: ReadonlySet<string>) => Promise<string>;
  readonly signal: AbortSignal;
  /** Handshake deadline (the TCP dial is bounded by `signal`); default 10 s. */
  readonly timeoutMs?: number;
}

/** The ALPN id a dial target travels under, or throw Consul's error for unroutable RPC types. */
export function alpnOfTarget(target: DialTarget): string {
  if (target.alpn !== undefined) return target.alpn;
  const alpn = alpnForRpcType(target.rpcType);
  if (!alpn) throw new MeshfedError('MESHFED_ERR_WANFED_DIAL', `rpc type ${target.rpcType} cannot be routed through a mesh gateway`, { plugin: 'wanfed' });
  return alpn;
}

/**
 * Dial `target` (a server of another datacenter) through a mesh gateway.
 * @throws {RouterError} `Remote DC has no server currently reachable` when no gateway is known;
 *   dial and TLS errors otherwise (nothing is left open)
 */
export async function dialViaMeshGateway(target: DialTarget, o: GatewayDialOptions): Promise<TLSSocket> {
  const alpn = alpnOfTarget(target);
  // gRPC manages its own socket options
  const tuned = alpn !== Alpn.RpcGRPC;
  // A gateway that is registered but down (its check not yet critical) refuses the TCP connect:
  // pick again, avoiding the ones that failed, a few times before giving up.
  const failed = new Set<string>();
  let socket: Awaited<ReturnType<typeof tcpConnect>> | undefined;
  let lastError: unknown;
  for (let attempt = 0; attempt < GATEWAY_DIAL_ATTEMPTS && !socket; attempt++) {
    const gateway = await o.pickGateway(target.datacenter, failed);
    if (!gateway) break;
    if (failed.has(gateway)) break; // only failed ones are left
    const { host, port } = splitHostPort(gateway);
    try {
      socket = await tcpConnect(host, port, o.signal, { noDelay: tuned, keepAlive: tuned });
    } catch (err) {
      if (o.signal.aborted) throw err;
      failed.add(gateway);
      lastError = err;
    }
  }
  if (!socket) {
    if (lastError instanceof Error) throw lastError;
    throw new RouterError(RouterErrorCode.DC_NOT_AVAILABLE, ErrDCNotAvailable, { datacenter: target.datacenter });
  }
  return o.tls.wrapAlpnClient(socket, { datacenter: target.datacenter, node: target.node || '*', alpn, signal: o.signal, ...(o.timeoutMs !== undefined ? { timeoutMs: o.timeoutMs } : {}) });
}
