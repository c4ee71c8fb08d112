/**
 * The stream "ops" protocol shared by the Go reference peer (test/interop/yamux-peer/main.go),
 * the interop tests and bench/yamux.ts: the opener writes one op byte, then op-specific data.
 * This is the meshfed (Node) server side of it; it also runs over raw TCP sockets (ops E and s).
 */
import { createHash } from 'node:crypto';
import type { Duplex, Readable } from 'node:stream';
import { isYamuxError, YamuxErrorCode, type YamuxSession } from '../../../src/plugins/yamux/index.js';

/** Read exactly `n` bytes (paused mode); rejects if the stream ends, fails or closes first. */
export function readExactly(stream: Readable, n: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const cleanup = (): void => {
      stream.off('readable', tryRead);
      stream.off('end', onEnd);
      stream.off('error', onError);
      stream.off('close', onEnd);
    };
    const tryRead = (): void => {
      const b = stream.read(n) as Buffer | null;
      if (b !== null) {
        cleanup();
        resolve(b);
      }
    };
    const onEnd = (): void => {
      cleanup();
      reject(new Error(`stream ended before ${n} bytes arrived`));
    };
    const onError = (err: Error): void => {
      cleanup();
      reject(err);
    };
    stream.on('readable', tryRead);
    stream.once('end', onEnd);
    stream.once('error', onError);
    stream.once('close', onEnd);
    tryRead();
  });
}

/** Read everything until 'end' (events, not `for await`, which destroys a still-writable Duplex). */
export function readAll(stream: Readable): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.once('end', () => resolve(Buffer.concat(chunks)));
    stream.once('error', reject);
    stream.resume();
  });
}

/** Echo until the peer's FIN, then end (backpressure both ways). */
export function echo(stream: Duplex): void {
  stream.on('data', (d: Buffer) => {
    if (!stream.write(d)) stream.pause();
  });
  stream.on('drain', () => stream.resume());
  stream.on('end', () => stream.end());
  stream.resume();
}

/** Count (and optionally sha256) exactly `n` bytes, then reply u64 count [+ digest] and end. */
export function sink(stream: Duplex, n: number, withHash: boolean): void {
  let got = 0;
  const hash = withHash ? createHash('sha256') : undefined;
  const finish = (): void => {
    const reply = Buffer.alloc(8);
    reply.writeBigUInt64BE(BigInt(got));
    stream.end(hash ? Buffer.concat([reply, hash.digest()]) : reply);
  };
  if (n === 0) {
    finish();
    return;
  }
  stream.on('data', (d: Buffer) => {
    if (got >= n) return;
    const take = Math.min(d.length, n - got);
    hash?.update(take === d.length ? d : d.subarray(0, take));
    got += take;
    if (got === n) finish();
  });
  stream.resume();
}

/** What the interop test observes on the meshfed server side. */
export interface OpsRecord {
  /** Bytes received after this side's FIN on 'F' streams. */
  afterFin: string[];
  /** Errors seen by op handlers. */
  errors: Error[];
}

/**
 * Serve one stream (meshfed server side of the ops protocol). `session` enables the ops that need
 * it (P open-back, X ping, Q open-after-go-away, B backlog probe).
 */
export async function serveOps(stream: Duplex, session?: YamuxSession, record?: OpsRecord): Promise<void> {
  stream.on('error', (err: Error) => record?.errors.push(err));
  const op = String.fromCharCode((await readExactly(stream, 1))[0] as number);
  switch (op) {
    case 'E':
      echo(stream);
      return;
    case 'S':
    case 's': {
      const n = Number((await readExactly(stream, 8)).readBigUInt64BE());
      sink(stream, n, op === 'S');
      return;
    }
    case 'F': {
      // Half-close first, then keep reading what the peer sends after our FIN.
      stream.end('fin-first');
      const rest = await readAll(stream);
      record?.afterFin.push(rest.toString());
      return;
    }
    case 'R':
      stream.destroy();
      return;
    case 'P': {
      if (!session) throw new Error('op P needs a session');
      const n = Number((await readExactly(stream, 8)).readBigUInt64BE());
      const back = await session.open();
      back.on('error', (err: Error) => record?.errors.push(err));
      const data = Buffer.alloc(n);
      for (let i = 0; i < n; i++) data[i] = (i * 131 + 7) & 0xff;
      const echoed = readAll(back);
      back.end(data);
      const got = await echoed;
      stream.end(got.equals(data) ? 'push ok' : 'push FAIL');
      return;
    }
    case 'X':
      if (!session) throw new Error('op X needs a session');
      await session.ping();
      stream.end('pong');
      return;
    case 'Q': {
      if (!session) throw new Error('op Q needs a session');
      try {
        const s = await session.open();
        s.destroy();
        stream.end('opened');
      } catch (err) {
        stream.end(isYamuxError(err, YamuxErrorCode.REMOTE_GOAWAY) ? 'refused' : `error ${String(err)}`);
      }
      return;
    }
    case 'B': {
      // The peer has accept backlog 2 and never accepts: open 3, expect exactly one RST.
      if (!session) throw new Error('op B needs a session');
      const opened = [await session.open(), await session.open(), await session.open()];
      const resets = opened.map(
        (s) =>
          new Promise<boolean>((resolve) => {
            s.once('error', (err) => resolve(isYamuxError(err, YamuxErrorCode.STREAM_RESET)));
            s.once('close', () => resolve(false));
          }),
      );
      const third = await resets[2];
      for (const s of opened) s.destroy();
      const refused = (await Promise.all(resets)).filter(Boolean).length;
      stream.end(third ? `refused ${refused}` : 'not refused');
      return;
    }
    default:
      stream.destroy(new Error(`unknown op ${JSON.stringify(op)}`));
  }
}
