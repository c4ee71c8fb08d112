/**
 * The etcd backend's hot write path: one fenced `KV.Txn` per log entry, encoded and decoded by
 * hand over a plain @grpc/grpc-js channel.
 *
 * Why not the etcd3 client's `kv.txn`: every call goes through its object model (protobuf
 * `fromObject`/`toObject`, 64-bit numbers as strings, the response's nested operations) and its
 * connection pool and fault-policy wrappers. For the one request the leader sends per write that
 * costs ~20–40 µs of CPU and ~5 % of the sequential write rate (bench/README.md, "etcd backend").
 * Everything else (watches, leases, snapshots, reads, the rare checks after a refused write) stays
 * on the etcd3 client.
 *
 * The request is `TxnRequest{ compare: [leader key CREATE == leaderCreateRev, log key CREATE == 0],
 * success: [put(log key, value)] }` (etcd's rpc.proto); from the response only `header.revision`
 * and `succeeded` are read.
 */
import grpc from '@grpc/grpc-js';
import type { ChannelCredentials, ChannelOptions, ServiceError } from '@grpc/grpc-js';

/** Outcome of {@link FencedTxnClient.fencedPut}. */
export interface FencedPutResult {
  /** Both compares held and the put was applied. */
  readonly succeeded: boolean;
  /** The store revision in the response header (the put's revision when it succeeded). */
  readonly revision: number;
}

/** TLS material for `https://` endpoints (as the backend's options carry it). */
export interface TxnTlsOptions {
  readonly ca?: Buffer;
  readonly cert?: Buffer;
  readonly key?: Buffer;
}

// ---- protobuf, just what this request needs ------------------------------------------------------

const WIRE_VARINT = 0;
const WIRE_LEN = 2;

/** Bytes of a varint for a non-negative safe integer. */
function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

function writeVarint(buf: Buffer, off: number, n: number): number {
  while (n >= 0x80) {
    buf[off++] = (n % 128) | 0x80;
    n = Math.floor(n / 128);
  }
  buf[off++] = n;
  return off;
}

/** Size of a length-delimited field with tag < 16 and a body of `len` bytes. */
function lenFieldSize(len: number): number {
  return 1 + varintSize(len) + len;
}

function writeLenHeader(buf: Buffer, off: number, field: number, len: number): number {
  buf[off++] = (field << 3) | WIRE_LEN;
  return writeVarint(buf, off, len);
}

/** `Compare{ result: EQUAL, target: CREATE, key, create_revision: rev }` body size. */
function compareSize(key: Buffer, rev: number): number {
  // result EQUAL (0) and target CREATE (1): field 2 only; key: field 3; create_revision: field 5
  return 2 + lenFieldSize(key.length) + 1 + varintSize(rev);
}

function writeCompare(buf: Buffer, off: number, key: Buffer, rev: number): number {
  off = writeLenHeader(buf, off, 1, compareSize(key, rev)); // TxnRequest.compare
  buf[off++] = (2 << 3) | WIRE_VARINT; // Compare.target = CREATE
  buf[off++] = 1;
  off = writeLenHeader(buf, off, 3, key.length); // Compare.key
  off += key.copy(buf, off);
  buf[off++] = (5 << 3) | WIRE_VARINT; // Compare.create_revision (set even when 0: a oneof member)
  return writeVarint(buf, off, rev);
}

/** Encode the fenced put request. */
export function encodeFencedPut(leaderKey: Buffer, leaderCreateRev: number, key: Buffer, value: Buffer): Buffer {
  const put = lenFieldSize(key.length) + lenFieldSize(value.length); // PutRequest{ key: 1, value: 2 }
  const op = lenFieldSize(put); // RequestOp{ request_put: 2 }
  const size = lenFieldSize(compareSize(leaderKey, leaderCreateRev)) + lenFieldSize(compareSize(key, 0)) + lenFieldSize(op);
  const buf = Buffer.allocUnsafe(size);
  let off = writeCompare(buf, 0, leaderKey, leaderCreateRev);
  off = writeCompare(buf, off, key, 0);
  off = writeLenHeader(buf, off, 2, op); // TxnRequest.success
  off = writeLenHeader(buf, off, 2, put); // RequestOp.request_put
  off = writeLenHeader(buf, off, 1, key.length);
  off += key.copy(buf, off);
  off = writeLenHeader(buf, off, 2, value.length);
  off += value.copy(buf, off);
  if (off !== size) throw new Error(`etcd txn encoding: wrote ${off} of ${size} bytes`);
  return buf;
}

/** A reader over one message; throws on truncated or malformed input. */
class Reader {
  off = 0;
  constructor(
    readonly buf: Buffer,
    readonly end = buf.length,
  ) {}

  varint(): number {
    let n = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (this.off >= this.end) throw new Error('truncated varint');
      const b = this.buf[this.off++] as number;
      n += (b & 0x7f) * scale;
      if (b < 0x80) return n;
      scale *= 128;
    }
    throw new Error('varint longer than 10 bytes');
  }

  /** Skip a field of wire type `wt`; returns the [start, end) of a length-delimited body. */
  skip(wt: number): [number, number] {
    switch (wt) {
      case WIRE_VARINT:
        this.varint();
        return [this.off, this.off];
      case 1:
        this.off += 8;
        break;
      case WIRE_LEN: {
        const len = this.varint();
        const start = this.off;
        this.off += len;
        if (this.off > this.end) throw new Error('truncated field');
        return [start, this.off];
      }
      case 5:
        this.off += 4;
        break;
      default:
        throw new Error(`unsupported wire type ${wt}`);
    }
    if (this.off > this.end) throw new Error('truncated field');
    return [this.off, this.off];
  }
}

/** Decode `TxnResponse{ header: 1 { revision: 3 }, succeeded: 2 }`, ignoring everything else. */
export function decodeTxnResponse(buf: Buffer): FencedPutResult {
  const r = new Reader(buf);
  let succeeded = false;
  let revision = 0;
  while (r.off < r.end) {
    const tag = r.varint();
    const field = Math.floor(tag / 8);
    const wt = tag % 8;
    if (field === 2 && wt === WIRE_VARINT) succeeded = r.varint() !== 0;
    else if (field === 1 && wt === WIRE_LEN) {
      const [start, end] = r.skip(wt);
      const h = new Reader(buf, end);
      h.off = start;
      while (h.off < h.end) {
        const htag = h.varint();
        if (Math.floor(htag / 8) === 3 && htag % 8 === WIRE_VARINT) revision = h.varint();
        else h.skip(htag % 8);
      }
    } else r.skip(wt);
  }
  return { succeeded, revision };
}

// ---- the client --------------------------------------------------------------------------------

const identity = (b: Buffer): Buffer => b;

/** gRPC status codes after which the next endpoint is tried (the others, and a passed deadline, end the call). */
const RETRY_ON_NEXT = new Set<number>([grpc.status.UNAVAILABLE]);

/**
 * `KV.Txn` over one gRPC channel per endpoint, trying the next endpoint (within the deadline)
 * when one is unavailable, like the backend's etcd3 client does.
 */
export class FencedTxnClient {
  readonly #clients: grpc.Client[];
  #current = 0;

  /** One channel per endpoint (`http(s)://host:port`); nothing connects before the first call. */
  constructor(endpoints: readonly string[], tls: TxnTlsOptions | undefined, options: ChannelOptions) {
    this.#clients = endpoints.map((e) => {
      const url = new URL(e);
      const creds: ChannelCredentials = url.protocol === 'https:' ? grpc.credentials.createSsl(tls?.ca ?? null, tls?.key ?? null, tls?.cert ?? null) : grpc.credentials.createInsecure();
      return new grpc.Client(url.host, creds, options);
    });
  }

  /** The fenced put; rejects with the last endpoint's gRPC error when none answered. */
  async fencedPut(leaderKey: Buffer, leaderCreateRev: number, key: Buffer, value: Buffer, deadline: number): Promise<FencedPutResult> {
    const req = encodeFencedPut(leaderKey, leaderCreateRev, key, value);
    let last: unknown;
    for (let attempt = 0; attempt < this.#clients.length; attempt++) {
      const i = (this.#current + attempt) % this.#clients.length;
      const client = this.#clients[i] as grpc.Client;
      try {
        const res = await new Promise<Buffer>((resolve, reject) => {
          client.makeUnaryRequest<Buffer, Buffer>('/etcdserverpb.KV/Txn', identity, identity, req, new grpc.Metadata(), { deadline }, (err: ServiceError | null, value?: Buffer) => {
            if (err) reject(err);
            else resolve(value ?? Buffer.alloc(0));
          });
        });
        this.#current = i;
        return decodeTxnResponse(res);
      } catch (err) {
        last = err;
        const code = (err as Partial<ServiceError>).code;
        if (code === undefined || !RETRY_ON_NEXT.has(code) || Date.now() >= deadline) throw err;
      }
    }
    throw last;
  }

  /** Close every channel (calls in flight fail with CANCELLED). */
  close(): void {
    for (const c of this.#clients) c.close();
  }
}
