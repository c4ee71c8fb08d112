/**
 * The default gossip transport: UDP packets and TCP streams on one `host:port`, as memberlist's
 * NetTransport (hashicorp-wire.md §5: gossip uses UDP *and* TCP on the same port, so the `from`
 * of a packet is the sender's gossip address and the port that accepts streams).
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { connect, createServer, isIP, type AddressInfo, type Server, type Socket } from 'node:net';
import { networkInterfaces } from 'node:os';
import type { Duplex } from 'node:stream';
import { MeshfedError, errorMessage } from '../../../core/errors.js';
import { joinHostPort, splitHostPort } from './address.js';
import { GossipTransportErrorCode } from './errors.js';
import type { DialOptions, GossipAddress, GossipTransport, TransportCapabilities } from './gossip-transport.js';
import { TransportCore, type TransportCoreOptions } from './transport-core.js';

/** The UDP receive buffer we ask for first (memberlist's 2 MiB), halved until the OS accepts it. */
export const DEFAULT_UDP_RECV_BUFFER_SIZE = 2 * 1024 * 1024;

/** Options of {@link createNetTransport}. */
export interface NetTransportOptions extends TransportCoreOptions {
  /** IP address to bind UDP and TCP to (default `0.0.0.0`). Tests use `127.0.0.1`. */
  readonly bindAddr?: string;
  /** Port for both UDP and TCP; 0 lets the TCP listener pick one that UDP then binds too (default 0). */
  readonly bindPort?: number;
  /** UDP receive buffer size to request (default {@link DEFAULT_UDP_RECV_BUFFER_SIZE}). */
  readonly udpRecvBufferSize?: number;
  /** With port 0: how many port picks to try when UDP finds the TCP-picked port taken (default 10). */
  readonly bindAttempts?: number;
}

const WILDCARDS = new Set(['0.0.0.0', '::', '']);

function isPrivateIPv4(ip: string): boolean {
  const [a = 0, b = 0] = ip.split('.').map(Number);
  return a === 10 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168) || (a === 100 && b >= 64 && b <= 127);
}

function listenTcp(server: Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    server.listen({ host, port, exclusive: true }, () => {
      server.removeListener('error', onError);
      resolve();
    });
  });
}

function bindUdp(socket: UdpSocket, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    socket.once('error', onError);
    socket.bind({ address: host, port, exclusive: true }, () => {
      socket.removeListener('error', onError);
      resolve();
    });
  });
}

const closeServer = (server: Server): Promise<void> => new Promise((resolve) => (server.listening ? server.close(() => resolve()) : resolve()));
const closeUdp = (socket: UdpSocket): Promise<void> =>
  new Promise((resolve) => {
    try {
      socket.close(() => resolve());
    } catch {
      resolve(); // not bound / already closed
    }
  });

/**
 * UDP + TCP gossip transport on one port. Create it with {@link createNetTransport}.
 *
 * @example
 * const t = await createNetTransport({ bindAddr: '127.0.0.1', bindPort: 0, logger });
 * t.onPacket((p) => console.log(p.from, p.buf.length));
 * await t.writeToAddress(Buffer.from([0]), { name: 'peer', addr: '127.0.0.1:8302' });
 * await t.shutdown();
 */
export class NetTransport extends TransportCore implements GossipTransport {
  /** A plain transport: names are not used for routing. */
  readonly capabilities: TransportCapabilities = Object.freeze({ nodeAware: false });
  /** The address UDP and TCP are bound to. */
  readonly bindAddr: string;
  /** The port UDP and TCP are bound to (the picked one when 0 was asked for). */
  readonly port: number;
  /** The UDP receive buffer size the OS accepted (it may still cap it lower, e.g. `rmem_max`). */
  readonly udpRecvBufferSize: number;
  readonly #udp: UdpSocket;
  readonly #tcp: Server;
  #closed: Promise<void> | undefined;

  private constructor(options: NetTransportOptions, bound: { udp: UdpSocket; tcp: Server; port: number; recvBuf: number }) {
    super(options);
    this.bindAddr = options.bindAddr ?? '0.0.0.0';
    this.port = bound.port;
    this.udpRecvBufferSize = bound.recvBuf;
    this.#udp = bound.udp;
    this.#tcp = bound.tcp;
    this.#udp.on('message', (msg, rinfo) => {
      // Timestamp as close to the read as possible: memberlist uses it for RTT (Vivaldi).
      const timestamp = new Date();
      this.receivePacket(msg, joinHostPort(rinfo.address, rinfo.port), timestamp);
    });
    this.#udp.on('error', (err) => this.log.error(`gossip UDP socket error: ${errorMessage(err)}`));
    this.#tcp.on('connection', (sock: Socket) => {
      sock.setNoDelay(true);
      // Keep an error listener so a reset stream never becomes an uncaught exception.
      sock.on('error', (err) => this.log.debug(`gossip stream error: ${errorMessage(err)}`, { from: joinHostPort(sock.remoteAddress ?? '?', sock.remotePort ?? 0) }));
      if (this.isShutdown) sock.destroy();
      else this.deliverStream(sock);
    });
    this.#tcp.on('error', (err) => this.log.error(`gossip TCP listener error: ${errorMessage(err)}`));
    this.log.info('gossip transport listening', { udp: joinHostPort(this.bindAddr, this.port), tcp: joinHostPort(this.bindAddr, this.port), udpRecvBuffer: bound.recvBuf });
  }

  /** Bind UDP and TCP on one port (see {@link createNetTransport}). */
  static async create(options: NetTransportOptions = {}): Promise<NetTransport> {
    const host = options.bindAddr ?? '0.0.0.0';
    const family = isIP(host);
    if (family === 0) {
      throw new MeshfedError(GossipTransportErrorCode.BIND, `gossip bind address "${host}" is not an IP address; set bind_addr to an IPv4 or IPv6 address`);
    }
    const requested = options.bindPort ?? 0;
    const attempts = requested === 0 ? Math.max(1, options.bindAttempts ?? 10) : 1;
    let lastErr: unknown;
    for (let i = 0; i < attempts; i++) {
      const tcp = createServer({ allowHalfOpen: true, noDelay: true });
      const udp = createSocket({ type: family === 6 ? 'udp6' : 'udp4' });
      try {
        await listenTcp(tcp, host, requested);
        const port = (tcp.address() as AddressInfo).port;
        await bindUdp(udp, host, port);
        const recvBuf = setRecvBuffer(udp, options.udpRecvBufferSize ?? DEFAULT_UDP_RECV_BUFFER_SIZE);
        return new NetTransport(options, { udp, tcp, port, recvBuf });
      } catch (err) {
        lastErr = err;
        await Promise.all([closeServer(tcp), closeUdp(udp)]);
        // With port 0 the TCP pick can collide with a UDP user of that port: pick again.
        if (requested !== 0 || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE') break;
      }
    }
    throw new MeshfedError(
      GossipTransportErrorCode.BIND,
      `cannot bind gossip UDP+TCP on ${joinHostPort(host, requested)}: ${errorMessage(lastErr)}; choose another port or stop what uses it`,
      { cause: lastErr },
    );
  }

  /** See {@link GossipTransport.finalAdvertiseAddr}. */
  finalAdvertiseAddr(ip: string, port: number): { ip: string; port: number } {
    const finalPort = port > 0 ? port : this.port;
    if (ip) {
      if (isIP(ip) === 0) throw new MeshfedError(GossipTransportErrorCode.ADDRESS, `advertise address "${ip}" is not an IP address`);
      return { ip, port: finalPort };
    }
    if (!WILDCARDS.has(this.bindAddr)) return { ip: this.bindAddr, port: finalPort };
    for (const addrs of Object.values(networkInterfaces())) {
      for (const a of addrs ?? []) {
        if (a.family === 'IPv4' && !a.internal && isPrivateIPv4(a.address)) return { ip: a.address, port: finalPort };
      }
    }
    throw new MeshfedError(
      GossipTransportErrorCode.ADDRESS,
      `bound to ${this.bindAddr} and no private IPv4 address found to advertise; set advertise_addr explicitly`,
    );
  }

  /** See {@link GossipTransport.writeToAddress}. Sent from the gossip port, so `from` is our address. */
  async writeToAddress(bytes: Uint8Array, to: GossipAddress): Promise<Date> {
    this.checkOutgoing(bytes, to);
    const { host, port } = splitHostPort(to.addr);
    return new Promise<Date>((resolve, reject) => {
      this.#udp.send(bytes, port, host, (err) => {
        if (err) reject(new MeshfedError(GossipTransportErrorCode.PACKET, `send gossip packet to ${to.addr}: ${errorMessage(err)}`, { cause: err }));
        else resolve(new Date());
      });
    });
  }

  /** See {@link GossipTransport.dialAddress}: TCP with `noDelay`, half-close allowed. */
  async dialAddress(to: GossipAddress, options: DialOptions = {}): Promise<Duplex> {
    const { host, port } = splitHostPort(to.addr);
    return this.dialWithDeadline(
      to,
      options,
      (signal) =>
        new Promise<Duplex>((resolve, reject) => {
          const sock = connect({ host, port, noDelay: true, allowHalfOpen: true });
          const onAbort = (): void => {
            sock.destroy();
            reject(new Error('aborted'));
          };
          const onError = (err: Error): void => {
            signal.removeEventListener('abort', onAbort);
            reject(err);
          };
          signal.addEventListener('abort', onAbort, { once: true });
          sock.once('error', onError);
          sock.once('connect', () => {
            signal.removeEventListener('abort', onAbort);
            sock.removeListener('error', onError);
            sock.on('error', (err) => this.log.debug(`gossip stream error: ${errorMessage(err)}`, { to: to.addr }));
            resolve(sock);
          });
        }),
    );
  }

  /** See {@link GossipTransport.shutdown}. */
  shutdown(): Promise<void> {
    if (this.beginShutdown()) {
      this.#closed = Promise.all([closeUdp(this.#udp), closeServer(this.#tcp)]).then(() => {
        this.log.info('gossip transport stopped');
      });
    }
    return this.#closed ?? Promise.resolve();
  }
}

/** Ask for `size` bytes of UDP receive buffer, halving until the OS accepts (memberlist does the same). */
function setRecvBuffer(udp: UdpSocket, size: number): number {
  for (let s = size; s >= 4096; s = Math.floor(s / 2)) {
    try {
      udp.setRecvBufferSize(s);
      return s;
    } catch {
      // try a smaller one
    }
  }
  return udp.getRecvBufferSize();
}

/** Bind a {@link NetTransport}: UDP and TCP on `bindAddr:bindPort` (port 0 picks one for both). */
export function createNetTransport(options: NetTransportOptions = {}): Promise<NetTransport> {
  return NetTransport.create(options);
}
