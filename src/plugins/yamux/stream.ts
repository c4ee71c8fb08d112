/**
 * One yamux stream: a Duplex with yamux flow control both ways (spec hashicorp-wire.md §10).
 *
 * Reading: the session pushes payload slices straight from the connection's chunks; the stream
 * grants the peer more window only as the application consumes data (like yamux, once the
 * consumed-but-not-yet-granted amount reaches half the window), so an application that stops
 * reading stalls the peer instead of growing memory.
 * Writing: `_write` sends frames no larger than the peer's window and holds the write callback
 * while the window is exhausted or the connection is congested, so `write()` returns false.
 * `end()` sends FIN (half-close: reading continues until the peer's FIN), `destroy()` sends RST
 * unless both sides had already sent FIN.
 */
import { Duplex } from 'node:stream';
import { Flag, FrameType, INITIAL_STREAM_WINDOW, MAX_U32 } from './constants.js';
import { YamuxErrorCode, yamuxError } from './errors.js';
import { kAccept, kDrained, kFlags, kGrant, kOpened, kPush, kRemoteFin, kReserve, kSessionEnded, kWindow, type StreamHost } from './internal.js';
import type { YamuxSession } from './session.js';

type WriteCallback = (error?: Error | null) => void;

/** A yamux stream. Obtain one from `YamuxSession.open()` / `accept()` / `onStream`, never with `new`. */
export class YamuxStream extends Duplex {
  /** Stream id: odd when the client side opened it, even for the server side. */
  readonly id: number;
  readonly #host: StreamHost;
  readonly #outbound: boolean;
  /** Bytes the peer may still send us (what we granted minus what arrived). */
  #recvWindow = INITIAL_STREAM_WINDOW;
  /** Bytes we may still send. */
  #sendWindow = INITIAL_STREAM_WINDOW;
  /** Window updates may be sent: outbound after SYN, inbound after our ACK. */
  #granting: boolean;
  /** Outbound: SYN sent, ACK not yet received (holds one open slot of the session). */
  #inflight: boolean;
  #grantQueued = false;
  #localFin = false;
  #remoteFin = false;
  #reset = false;
  /** Dropped from the session's map; nothing more is sent. */
  #released = false;
  /**
   * Handed to the application (opened, accepted). Streams still in the accept queue are destroyed
   * without an error: nobody could be listening for it, and an unhandled 'error' would crash.
   */
  #delivered: boolean;
  // The write in progress: one chunk (or a list from _writev) sent as the window allows.
  #wChunk: Buffer | null = null;
  #wList: readonly Buffer[] | null = null;
  #wIndex = 0;
  #wOffset = 0;
  #wCallback: WriteCallback | null = null;
  #openTimer: NodeJS.Timeout | undefined;
  #closeTimer: NodeJS.Timeout | undefined;

  /** @internal Streams are created by their session. */
  constructor(host: StreamHost, id: number, outbound: boolean, writableHighWaterMark: number) {
    super({ allowHalfOpen: true, readableHighWaterMark: host.maxWindow, writableHighWaterMark });
    this.#host = host;
    this.id = id;
    this.#outbound = outbound;
    this.#granting = outbound;
    this.#inflight = outbound;
    this.#delivered = outbound;
    if (outbound) this.#recvWindow = host.maxWindow; // the SYN carries the extra window, if any
  }

  /** The session this stream belongs to. */
  get session(): YamuxSession {
    return this.#host.session;
  }

  /** Remote address of the session's connection, when it has one (TCP). */
  get remoteAddress(): string | undefined {
    return (this.#host.conn as { remoteAddress?: string }).remoteAddress;
  }

  /** Remote port of the session's connection, when it has one (TCP). */
  get remotePort(): number | undefined {
    return (this.#host.conn as { remotePort?: number }).remotePort;
  }

  /** Local address of the session's connection, when it has one (TCP). */
  get localAddress(): string | undefined {
    return (this.#host.conn as { localAddress?: string }).localAddress;
  }

  /** Local port of the session's connection, when it has one (TCP). */
  get localPort(): number | undefined {
    return (this.#host.conn as { localPort?: number }).localPort;
  }

  /** Bytes this side may still send before the peer grants more window. */
  get sendWindow(): number {
    return this.#sendWindow;
  }

  /** Bytes the peer may still send before this side grants more window. */
  get receiveWindow(): number {
    return this.#recvWindow;
  }

  /** Whether this side opened the stream. */
  get outbound(): boolean {
    return this.#outbound;
  }

  // ---- reading -------------------------------------------------------------------------------

  /** Data arrives by push as the peer sends it within our window; nothing to ask for. */
  override _read(): void {}

  /**
   * Every consumption path (paused `read()`, flowing mode, async iteration, pipe) goes through
   * `read()`, so this is where consumed bytes are noticed and window granted back. (`_read()` is
   * not enough: Readable stops calling it until the next push, and the peer may be stalled.)
   */
  override read(size?: number): Buffer | string | null {
    const chunk = super.read(size) as Buffer | string | null;
    if (this.#granting && !this.#grantQueued) this.#maybeQueueGrant();
    return chunk;
  }

  /**
   * Once enough was consumed, have the session call kGrant at its next flush (end of this
   * event-loop turn), where the update is sized and sent.
   */
  #maybeQueueGrant(): void {
    const host = this.#host;
    if (host.maxWindow - this.readableLength - this.#recvWindow < host.updateThreshold) return;
    this.#grantQueued = true;
    host.queueGrant(this);
  }

  /** Send a window update once the consumed-but-not-granted bytes reach the threshold. */
  #grant(): void {
    if (this.#remoteFin || this.#released) return;
    const host = this.#host;
    const delta = host.maxWindow - this.readableLength - this.#recvWindow;
    if (delta >= host.updateThreshold) {
      this.#recvWindow += delta;
      host.writeControl(FrameType.WindowUpdate, 0, this.id, delta);
    }
  }

  /** @internal */
  [kReserve](length: number): boolean {
    if (length > this.#recvWindow) return false;
    this.#recvWindow -= length;
    return true;
  }

  /** @internal */
  [kPush](piece: Buffer): void {
    // Data after the peer's FIN can only come from a racing writer on the peer (hashicorp/yamux
    // tolerates it too): drop it rather than break the Readable contract.
    if (this.#remoteFin || this.destroyed) return;
    this.push(piece);
    // a flowing consumer took it during push()
    if (this.#granting && !this.#grantQueued) this.#maybeQueueGrant();
  }

  /** @internal */
  [kGrant](): void {
    this.#grantQueued = false;
    this.#grant();
  }

  /** @internal */
  [kFlags](flags: number): boolean {
    if ((flags & Flag.RST) !== 0) {
      this.#onReset();
      return false;
    }
    if ((flags & Flag.ACK) !== 0 && this.#inflight) {
      this.#inflight = false;
      if (this.#openTimer !== undefined) clearTimeout(this.#openTimer);
      this.#openTimer = undefined;
      this.#host.acknowledged(this);
    }
    return true;
  }

  /** @internal */
  [kRemoteFin](): boolean {
    if (this.#remoteFin) return false;
    this.#remoteFin = true;
    if (!this.destroyed) this.push(null);
    if (this.#localFin) {
      if (this.#closeTimer !== undefined) clearTimeout(this.#closeTimer);
      this.#closeTimer = undefined;
      this.#release(false);
    }
    return true;
  }

  /** @internal */
  [kWindow](delta: number): boolean {
    const w = this.#sendWindow + delta;
    if (w > MAX_U32) return false;
    this.#sendWindow = w;
    if (this.#wChunk !== null && w > 0) this.#pump();
    return true;
  }

  /** @internal */
  [kAccept](): void {
    this.#granting = true;
    this.#delivered = true;
    const delta = this.#host.maxWindow - this.readableLength - this.#recvWindow;
    this.#recvWindow += delta;
    this.#host.writeControl(FrameType.WindowUpdate, Flag.ACK, this.id, delta);
  }

  /** @internal */
  [kOpened](): void {
    const ms = this.#host.openTimeoutMs;
    if (ms > 0) this.#openTimer = setTimeout(YamuxStream.#fireOpenTimeout, ms, this).unref();
  }

  static #fireOpenTimeout(this: void, stream: YamuxStream): void {
    stream.#openTimer = undefined;
    if (stream.#inflight && !stream.#released) stream.#host.openTimedOut(stream);
  }

  static #fireCloseTimeout(this: void, stream: YamuxStream): void {
    stream.#closeTimer = undefined;
    if (stream.#released) return;
    stream.#host.logger.debug('yamux stream close timeout: no FIN from the peer, resetting', { stream: stream.id });
    stream.#release(true);
    stream.destroy();
  }

  /** @internal */
  [kSessionEnded](err: Error | undefined): void {
    this.#released = true;
    this.#clearTimers();
    if (!this.destroyed) this.destroy(this.#errorFor(err));
  }

  /**
   * The error to destroy with: only streams that reached the application and have an 'error'
   * listener get one. An accepted stream whose accept() continuation has not run yet would
   * otherwise raise an unhandled 'error' (a peer could crash the process with SYN + bad frame).
   */
  #errorFor(err: Error | undefined): Error | undefined {
    return this.#delivered && this.listenerCount('error') > 0 ? err : undefined;
  }

  #onReset(): void {
    if (this.#reset) return;
    this.#reset = true;
    const refused = this.#inflight;
    this.#release(false);
    const err = refused
      ? yamuxError(YamuxErrorCode.STREAM_RESET, `yamux stream ${this.id} was refused by the peer (its accept backlog is full or it is going away)`)
      : yamuxError(YamuxErrorCode.STREAM_RESET, `yamux stream ${this.id} was reset by the peer`);
    if (!this.destroyed) this.destroy(this.#errorFor(err));
  }

  #release(sendRst: boolean): void {
    if (this.#released) return;
    this.#released = true;
    this.#clearTimers();
    const wasInflight = this.#inflight;
    this.#inflight = false;
    this.#host.release(this, sendRst, wasInflight);
  }

  #clearTimers(): void {
    if (this.#openTimer !== undefined) clearTimeout(this.#openTimer);
    if (this.#closeTimer !== undefined) clearTimeout(this.#closeTimer);
    this.#openTimer = undefined;
    this.#closeTimer = undefined;
  }

  // ---- writing -------------------------------------------------------------------------------

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: WriteCallback): void {
    if (this.#reset || this.#released) {
      callback(this.#closedError());
      return;
    }
    this.#wChunk = chunk;
    this.#wList = null;
    this.#wOffset = 0;
    this.#wCallback = callback;
    this.#pump();
  }

  override _writev(chunks: Array<{ chunk: Buffer; encoding: BufferEncoding }>, callback: WriteCallback): void {
    if (this.#reset || this.#released) {
      callback(this.#closedError());
      return;
    }
    let total = 0;
    for (const c of chunks) total += c.chunk.length;
    // Many small writes (RPC messages) become one frame; large ones are framed as they are.
    if (total <= 16 * 1024) {
      const buf = Buffer.allocUnsafe(total);
      let off = 0;
      for (const c of chunks) off += c.chunk.copy(buf, off);
      this.#wChunk = buf;
      this.#wList = null;
    } else {
      const list = chunks.map((c) => c.chunk);
      this.#wChunk = list[0] ?? null;
      this.#wList = list;
      this.#wIndex = 0;
    }
    this.#wOffset = 0;
    this.#wCallback = callback;
    this.#pump();
  }

  /** Send as much of the current write as the peer's window allows; finish it when all is sent. */
  #pump(): void {
    const host = this.#host;
    let c = this.#wChunk;
    while (c !== null) {
      const w = this.#sendWindow;
      const left = c.length - this.#wOffset;
      if (left > 0) {
        if (w === 0) return; // stalled: a window update resumes us
        if (left <= w) {
          host.writeData(this.id, this.#wOffset === 0 ? c : c.subarray(this.#wOffset));
          this.#sendWindow = w - left;
        } else {
          host.writeData(this.id, c.subarray(this.#wOffset, this.#wOffset + w));
          this.#wOffset += w;
          this.#sendWindow = 0;
          return;
        }
      }
      const list = this.#wList;
      if (list !== null && ++this.#wIndex < list.length) {
        c = list[this.#wIndex] ?? null;
      } else {
        c = null;
        this.#wList = null;
      }
      this.#wChunk = c;
      this.#wOffset = 0;
    }
    if (host.mustWaitDrain(this)) return; // the callback runs on kDrained
    const cb = this.#wCallback;
    this.#wCallback = null;
    cb?.();
  }

  /** @internal */
  [kDrained](): void {
    if (this.#wChunk !== null) return;
    const cb = this.#wCallback;
    this.#wCallback = null;
    if (cb !== null && !this.destroyed) cb();
  }

  override _final(callback: WriteCallback): void {
    if (this.#reset || this.#released) {
      callback(); // reset, or released by the close timeout: nothing left to half-close
      return;
    }
    if (!this.#host.isOpen()) {
      callback(this.#closedError());
      return;
    }
    this.#localFin = true;
    this.#host.writeControl(FrameType.WindowUpdate, Flag.FIN, this.id, 0);
    if (this.#remoteFin) {
      this.#release(false);
    } else if (this.#host.closeTimeoutMs > 0) {
      this.#closeTimer = setTimeout(YamuxStream.#fireCloseTimeout, this.#host.closeTimeoutMs, this).unref();
    }
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // RST unless both FINs were exchanged (then the stream is already released).
    if (!this.#released) this.#release(!this.#reset && !(this.#localFin && this.#remoteFin));
    this.#wChunk = null;
    this.#wList = null;
    this.#wCallback = null;
    callback(error);
  }

  #closedError(): Error {
    if (this.#reset) return yamuxError(YamuxErrorCode.STREAM_RESET, `yamux stream ${this.id} was reset by the peer`);
    return yamuxError(YamuxErrorCode.SESSION_CLOSED, `yamux stream ${this.id} is closed`);
  }
}
