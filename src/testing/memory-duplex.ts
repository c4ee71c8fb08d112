/**
 * In-memory connections: a pair of Duplex streams wired to each other, with backpressure and
 * half-close, for testing protocol code without sockets. Also an in-memory "network" that
 * plugin authors can tap into `onDial` to connect agents in one process.
 */
import { Duplex } from 'node:stream';

/** Options of {@link duplexPair}. */
export interface DuplexPairOptions {
  /** Buffered bytes before `write()` returns false (default 64 KiB). */
  readonly highWaterMark?: number;
  /** `remoteAddress` reported by each end (default `memory`). */
  readonly addresses?: readonly [string, string];
}

class MemoryEnd extends Duplex {
  peer: MemoryEnd | undefined;
  readonly remoteAddress: string;
  #pendingWrite: (() => void) | undefined;

  constructor(highWaterMark: number, remoteAddress: string) {
    super({ highWaterMark, allowHalfOpen: true });
    this.remoteAddress = remoteAddress;
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    const peer = this.peer;
    if (!peer || peer.destroyed) {
      cb(Object.assign(new Error('memory peer closed'), { code: 'EPIPE' }));
      return;
    }
    if (peer.push(chunk)) cb();
    else peer.#pendingWrite = cb;
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.peer?.push(null);
    cb();
  }

  override _read(): void {
    const w = this.#pendingWrite;
    this.#pendingWrite = undefined;
    w?.();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    const peer = this.peer;
    this.peer = undefined;
    const w = this.#pendingWrite;
    this.#pendingWrite = undefined;
    w?.();
    if (peer && !peer.destroyed) {
      peer.peer = undefined;
      // A graceful close (our writable side ended, the peer already saw end-of-stream) leaves
      // the peer alone so it can still read what is buffered (the last reply of a half-closed
      // exchange). An abrupt destroy ends the peer too, like a TCP reset, without an error
      // event nobody may listen for.
      if (!this.writableFinished) {
        peer.push(null);
        peer.destroy();
      }
    }
    cb(err);
  }
}

/** Two connected in-memory Duplex ends: bytes written to one are read from the other. */
export function duplexPair(options: DuplexPairOptions = {}): [Duplex, Duplex] {
  const hwm = options.highWaterMark ?? 64 * 1024;
  const [addrA, addrB] = options.addresses ?? ['memory', 'memory'];
  const a = new MemoryEnd(hwm, addrB);
  const b = new MemoryEnd(hwm, addrA);
  a.peer = b;
  b.peer = a;
  return [a, b];
}

/** A listener in a {@link MemoryNetwork}. */
export type MemoryAcceptor = (conn: Duplex) => void;

/**
 * An in-memory network: `listen(address, onConn)` and `connect(address)`. Each agent under test
 * gets its own network object or shares one; nothing is global.
 */
export class MemoryNetwork {
  readonly #listeners = new Map<string, MemoryAcceptor>();

  /** Accept connections to `address`; returns a function that stops listening. */
  listen(address: string, accept: MemoryAcceptor): () => void {
    if (this.#listeners.has(address)) throw new Error(`memory address ${address} is already in use`);
    this.#listeners.set(address, accept);
    return () => {
      if (this.#listeners.get(address) === accept) this.#listeners.delete(address);
    };
  }

  /** Connect to `address`; rejects with ECONNREFUSED if nobody listens there. */
  async connect(address: string, options: { signal?: AbortSignal } = {}): Promise<Duplex> {
    options.signal?.throwIfAborted();
    const accept = this.#listeners.get(address);
    if (!accept) throw Object.assign(new Error(`connect ECONNREFUSED ${address} (memory)`), { code: 'ECONNREFUSED' });
    const [client, server] = duplexPair({ addresses: ['memory-client', address] });
    queueMicrotask(() => accept(server));
    return client;
  }
}
