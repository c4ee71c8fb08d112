/**
 * The default dialer (spec §1.4), tapped on `onDial` at `Stage.FALLBACK`: TCP to the target's
 * address, then — when outgoing TLS applies — byte `0x03` and a TLS handshake with
 * `server.<dc>.<domain>`, then the type byte (inside TLS if TLS was used). Targets given by ALPN
 * are dialed with the matching type byte; targets without an address are left to other dialers.
 */
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { parseHostPort } from '../../core/address.js';
import { MeshfedError, abortError, errorMessage } from '../../core/errors.js';
import { Alpn, RpcType } from '../../core/protocol.js';
import type { DialTarget } from '../../core/types.js';
import type { TlsConfigurator } from '../tls/index.js';
import { RpcErrorCode } from './errors.js';

const ALPN_TO_TYPE: ReadonlyMap<string, number> = new Map<string, number>([
  [Alpn.RpcConsul, RpcType.Consul],
  [Alpn.RpcMultiplexV2, RpcType.MultiplexV2],
  [Alpn.RpcSnapshot, RpcType.Snapshot],
  [Alpn.RpcGRPC, RpcType.GRPC],
]);

/** Split `host:port` / `[v6]:port`. */
export function splitHostPort(address: string): { host: string; port: number } {
  const hp = parseHostPort(address);
  if (!hp) throw new MeshfedError(RpcErrorCode.DIAL, `"${address}" is not host:port (expected e.g. 10.0.0.1:8300 or [::1]:8300)`);
  return hp;
}

/** Options of {@link dialTcp}. */
export interface TcpDialOptions {
  /** TLS configurator; outgoing TLS is used when it exists and `useTls` is true. */
  readonly tls?: TlsConfigurator | undefined;
  /** Whether outgoing TLS applies (`tls.verify_outgoing`). */
  readonly useTls: boolean;
  readonly signal: AbortSignal;
}

/**
 * Open a TCP connection (keepalive and no-delay on unless `tuning` turns them off), rejecting
 * with `MESHFED_ERR_RPC_DIAL` naming the address, or an abort error when `signal` fires first.
 */
export function tcpConnect(host: string, port: number, signal: AbortSignal, tuning: { noDelay?: boolean; keepAlive?: boolean } = {}): Promise<Socket> {
  return new Promise<Socket>((resolve, reject) => {
    if (signal.aborted) {
      reject(abortError(signal, `dial ${host}:${port}`));
      return;
    }
    const s = connect({ host, port, noDelay: tuning.noDelay ?? true, keepAlive: tuning.keepAlive ?? true });
    const onAbort = (): void => {
      s.destroy();
      reject(abortError(signal, `dial ${host}:${port}`));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    s.once('connect', () => {
      signal.removeEventListener('abort', onAbort);
      s.removeListener('error', onError);
      resolve(s);
    });
    const onError = (err: Error): void => {
      signal.removeEventListener('abort', onAbort);
      reject(new MeshfedError(RpcErrorCode.DIAL, `dial ${host}:${port}: ${errorMessage(err)}`, { cause: err }));
    };
    s.once('error', onError);
  });
}

function tlsHandshake(socket: Socket, tls: TlsConfigurator, datacenter: string, signal: AbortSignal): Promise<TLSSocket> {
  return new Promise<TLSSocket>((resolve, reject) => {
    const t = tlsConnect({ socket, ...tls.outgoingOptions(datacenter) });
    const fail = (err: Error): void => {
      signal.removeEventListener('abort', onAbort);
      // Destroy the TLS socket (which closes the TCP one): never the TCP socket first.
      t.destroy();
      reject(err);
    };
    const onAbort = (): void => fail(abortError(signal, 'TLS handshake'));
    signal.addEventListener('abort', onAbort, { once: true });
    t.once('secureConnect', () => {
      signal.removeEventListener('abort', onAbort);
      t.removeListener('error', onError);
      resolve(t);
    });
    const onError = (err: Error): void => fail(new MeshfedError(RpcErrorCode.DIAL, `TLS handshake with server.${datacenter}: ${errorMessage(err)}`, { cause: err }));
    t.once('error', onError);
  });
}

/**
 * Dial `target` the plain way. Resolves `undefined` when this dialer cannot serve the target (no
 * address, or an ALPN id without a type byte).
 */
export async function dialTcp(target: DialTarget, options: TcpDialOptions): Promise<Duplex | undefined> {
  if (!target.address) return undefined;
  const type = target.rpcType ?? (target.alpn !== undefined ? ALPN_TO_TYPE.get(target.alpn) : undefined);
  if (type === undefined) return undefined;
  const { host, port } = splitHostPort(target.address);
  const socket = await tcpConnect(host, port, options.signal);
  return upgradeOutgoing(socket, type, { ...options, datacenter: target.datacenter });
}

/** Options of {@link upgradeOutgoing}. */
export interface OutgoingUpgradeOptions extends TcpDialOptions {
  /** Datacenter of the server (the TLS name is `server.<dc>.<domain>`). */
  readonly datacenter: string;
}

/**
 * Make a connected TCP socket speak RPC type `type` the plain way (spec §1.4, after the TCP
 * connect): with outgoing TLS, byte `0x03`, a TLS handshake (`outgoingOptions(dc)`) and the type
 * byte inside TLS; otherwise the type byte in clear. Resolves the stream to use (the TLS socket,
 * or `socket`); on a failed handshake the connection is destroyed and the error names the DC.
 */
export async function upgradeOutgoing(socket: Socket, type: number, options: OutgoingUpgradeOptions): Promise<Socket> {
  if (!options.useTls || !options.tls) {
    await writeFlushed(socket, Buffer.of(type));
    return socket;
  }
  socket.write(Buffer.of(RpcType.TLS));
  const t = await tlsHandshake(socket, options.tls, options.datacenter, options.signal);
  await writeFlushed(t, Buffer.of(type));
  return t;
}

/**
 * Write and wait until the write completed. A caller may hand the socket's native handle to
 * another consumer next (an HTTP/2 session, for gRPC): Node 20 aborts (`is_write_in_progress()`)
 * when a write queued through JavaScript completes after that.
 */
function writeFlushed(socket: Socket, bytes: Buffer): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    socket.write(bytes, (err) => {
      if (!err) {
        resolve();
        return;
      }
      socket.destroy();
      reject(new MeshfedError(RpcErrorCode.DIAL, `writing the RPC type byte: ${errorMessage(err)}`, { cause: err }));
    });
  });
}
