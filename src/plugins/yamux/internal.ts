/**
 * What a stream and its session say to each other. Not exported from the package: the symbols
 * keep the per-frame entry points off the public surface of `YamuxStream`.
 */
import type { Duplex } from 'node:stream';
import type { Logger } from '../../core/logger.js';
import type { YamuxSession } from './session.js';
import type { YamuxStream } from './stream.js';

/** Session → stream: a data frame of `length` bytes arrives; false = it exceeds the window. */
export const kReserve = Symbol('yamux.reserve');
/** Session → stream: a piece of a data frame's payload. */
export const kPush = Symbol('yamux.push');
/** Session → stream: ACK / RST flags of an incoming frame; returns false when the stream was reset. */
export const kFlags = Symbol('yamux.flags');
/** Session → stream: the peer's FIN; returns false for a second FIN (protocol error). */
export const kRemoteFin = Symbol('yamux.remoteFin');
/** Session → stream: a window update of `delta` bytes; returns false on u32 overflow. */
export const kWindow = Symbol('yamux.window');
/** Session → stream: the connection drained, finish the write that waited for it. */
export const kDrained = Symbol('yamux.drained');
/** Session → stream: the session accepted this inbound stream, send the ACK. */
export const kAccept = Symbol('yamux.accept');
/** Session → stream: the session ended; destroy without sending anything. */
export const kSessionEnded = Symbol('yamux.sessionEnded');
/** Session → stream: outbound stream opened (SYN sent); arm the open timeout. */
export const kOpened = Symbol('yamux.opened');
/** Session → stream: the chunk that delivered data is parsed; grant window for what was consumed. */
export const kGrant = Symbol('yamux.grant');

/** The session's side of the contract, one object per session. */
export interface StreamHost {
  /** The session, for `stream.session`. */
  readonly session: YamuxSession;
  /** The session's connection (for address passthrough). */
  readonly conn: Duplex;
  /** Logger of the session. */
  readonly logger: Logger;
  /** Receive window each stream grants. */
  readonly maxWindow: number;
  /** Consumed bytes that trigger a window update. */
  readonly updateThreshold: number;
  /** `streamOpenTimeoutMs`. */
  readonly openTimeoutMs: number;
  /** `streamCloseTimeoutMs`. */
  readonly closeTimeoutMs: number;
  /** Whether frames can still be sent. */
  isOpen(): boolean;
  /** Queue a data frame (flags 0) carrying `payload`. */
  writeData(id: number, payload: Buffer): void;
  /** Queue a header-only frame. */
  writeControl(type: number, flags: number, id: number, length: number): void;
  /** Ask for `kGrant` once the current connection chunk is parsed. */
  queueGrant(stream: YamuxStream): void;
  /** True when the connection is congested: the stream was queued and gets `kDrained` later. */
  mustWaitDrain(stream: YamuxStream): boolean;
  /** The stream is done with the session: drop it from the map, free its open slot, send RST if asked. */
  release(stream: YamuxStream, sendRst: boolean, wasInflight: boolean): void;
  /** An outbound stream was acknowledged: free its open slot. */
  acknowledged(stream: YamuxStream): void;
  /** The open timeout of a stream fired: close the session. */
  openTimedOut(stream: YamuxStream): void;
}
