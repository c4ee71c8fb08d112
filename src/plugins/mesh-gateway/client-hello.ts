/**
 * Incremental TLS ClientHello reader for the SNI-routing mesh gateway (spec §9.3, §9.6): the
 * gateway never decrypts, it only reads the server name (SNI) and the ALPN protocol list the client
 * offers, picks a route, and forwards every byte it read unchanged.
 *
 * The reader never throws on its input: garbage, plain-text protocols, truncated or oversized
 * handshakes each get a verdict. It copies bytes only when a complete record (or the handshake
 * header) is known to be available, so a client that dribbles one byte at a time costs a few
 * concatenations, not one per byte.
 */

/** TLS record content type "handshake". */
const CONTENT_HANDSHAKE = 22;
/** Handshake message type "client_hello". */
const HANDSHAKE_CLIENT_HELLO = 1;
/** TLS record header: type(1) version(2) length(2). */
const RECORD_HEADER = 5;
/** Handshake header: type(1) length(3). */
const HANDSHAKE_HEADER = 4;
/** The largest plaintext record fragment TLS allows (2^14). */
const MAX_RECORD_FRAGMENT = 16_384;
/** Records a ClientHello may span before it is refused (real clients use one, rarely two). */
const MAX_HELLO_RECORDS = 32;
/** Extension numbers (RFC 6066, RFC 7301). */
const EXT_SERVER_NAME = 0;
const EXT_ALPN = 16;

/** Default cap on the ClientHello handshake message (body plus header): 16 KiB. */
export const DEFAULT_MAX_CLIENT_HELLO_BYTES = 16_384;

/** Why a stream was rejected before any routing. */
export type ClientHelloRejection = 'not-tls' | 'malformed' | 'too-large';

/** Outcome of feeding bytes to a {@link ClientHelloReader}. */
export type ClientHelloVerdict =
  /** More bytes are needed; `needed` is the total byte count at which parsing can progress. */
  | { readonly kind: 'incomplete'; readonly needed: number }
  /** A complete ClientHello was read. */
  | { readonly kind: 'hello'; readonly hello: ClientHello }
  /** The stream is not a TLS ClientHello, or not an acceptable one; `detail` says why. */
  | { readonly kind: ClientHelloRejection; readonly detail: string };

/** What the gateway needs from a ClientHello. */
export interface ClientHello {
  /** The `host_name` of the server_name extension, lower-cased; `undefined` when the client sent none. */
  readonly serverName: string | undefined;
  /** ALPN protocol names in the client's order (empty without the extension). */
  readonly alpn: readonly string[];
  /** TLS record-layer version of the first record (e.g. `0x0301`). */
  readonly recordVersion: number;
  /** `legacy_version` inside the ClientHello (e.g. `0x0303`). */
  readonly helloVersion: number;
  /** Bytes of the stream occupied by the records that carry the ClientHello. */
  readonly recordBytes: number;
}

/** Options of {@link ClientHelloReader} and {@link parseClientHello}. */
export interface ClientHelloReaderOptions {
  /** Largest ClientHello handshake message accepted, header included (default {@link DEFAULT_MAX_CLIENT_HELLO_BYTES}). */
  readonly maxHelloBytes?: number;
}

function reject(kind: ClientHelloRejection, detail: string): ClientHelloVerdict {
  return { kind, detail };
}

/**
 * Parse a ClientHello from the start of `buf` (the bytes a client sent so far). Pure and total:
 * returns `incomplete` with the byte count needed to progress, a `hello`, or a rejection.
 */
export function parseClientHello(buf: Uint8Array, options: ClientHelloReaderOptions = {}): ClientHelloVerdict {
  const maxHello = options.maxHelloBytes ?? DEFAULT_MAX_CLIENT_HELLO_BYTES;
  if (buf.length < 1) return { kind: 'incomplete', needed: 1 };
  if (buf[0] !== CONTENT_HANDSHAKE) return reject('not-tls', `first byte 0x${hex(buf[0] ?? 0)} is not a TLS handshake record`);
  if (buf.length < 2) return { kind: 'incomplete', needed: 2 };
  if (buf[1] !== 3) return reject('not-tls', `record version major ${buf[1] ?? 0} is not 3`);
  if (buf.length < 3) return { kind: 'incomplete', needed: 3 };
  if ((buf[2] ?? 0) > 4) return reject('not-tls', `record version minor ${buf[2] ?? 0} is unknown`);
  const recordVersion = u16(buf, 1);

  // Walk the records, collecting the handshake fragments (the ClientHello can span records).
  let handshakeLength = -1; // total handshake message length incl. header, once known
  let collected = 0; // handshake bytes available in complete records so far
  let offset = 0;
  const fragments: Array<[number, number]> = [];
  while (handshakeLength < 0 || collected < handshakeLength) {
    if (buf.length < offset + RECORD_HEADER) return { kind: 'incomplete', needed: offset + RECORD_HEADER };
    if (buf[offset] !== CONTENT_HANDSHAKE) return reject('malformed', `record of type ${buf[offset] ?? 0} inside the ClientHello`);
    if (buf[offset + 1] !== 3) return reject('malformed', 'record version major is not 3');
    const len = u16(buf, offset + 3);
    if (len === 0) return reject('malformed', 'empty handshake record');
    if (len > MAX_RECORD_FRAGMENT) return reject('malformed', `record length ${len} exceeds 16384`);
    if (fragments.length >= MAX_HELLO_RECORDS) return reject('malformed', `ClientHello spread over more than ${MAX_HELLO_RECORDS} records`);
    const start = offset + RECORD_HEADER;
    const end = start + len;
    // The handshake header may be readable in a partial first record: learn the length early so an
    // oversized hello is refused before the client sends it all.
    if (handshakeLength < 0) {
      const avail = Math.min(buf.length, end) - start;
      if (collected === 0 && avail >= HANDSHAKE_HEADER) {
        const v = handshakeHeader(buf, start, maxHello);
        if (typeof v !== 'number') return v;
        handshakeLength = v;
      }
    }
    if (buf.length < end) return { kind: 'incomplete', needed: end };
    fragments.push([start, end]);
    collected += len;
    offset = end;
    if (handshakeLength < 0 && collected >= HANDSHAKE_HEADER) {
      const hdr = gather(buf, fragments, HANDSHAKE_HEADER);
      const v = handshakeHeader(hdr, 0, maxHello);
      if (typeof v !== 'number') return v;
      handshakeLength = v;
    }
  }
  const msg = fragments.length === 1 && fragments[0] ? buf.subarray(fragments[0][0], fragments[0][0] + handshakeLength) : gather(buf, fragments, handshakeLength);
  if (collected > handshakeLength) {
    // Extra handshake bytes after the ClientHello in the same flight are legal only in odd
    // cases (none a client sends first); refuse rather than guess.
    return reject('malformed', 'data after the ClientHello in its last record');
  }
  return parseBody(msg, recordVersion, offset);
}

function handshakeHeader(buf: Uint8Array, at: number, maxHello: number): number | ClientHelloVerdict {
  if (buf[at] !== HANDSHAKE_CLIENT_HELLO) return reject('malformed', `first handshake message has type ${buf[at] ?? 0}, not client_hello`);
  const bodyLen = ((buf[at + 1] ?? 0) << 16) | ((buf[at + 2] ?? 0) << 8) | (buf[at + 3] ?? 0);
  const total = bodyLen + HANDSHAKE_HEADER;
  if (total > maxHello) return reject('too-large', `ClientHello of ${total} bytes exceeds the ${maxHello}-byte limit`);
  if (bodyLen < 38) return reject('malformed', `ClientHello body of ${bodyLen} bytes is too short`);
  return total;
}

/** Concatenate the first `want` bytes of the given fragments. */
function gather(buf: Uint8Array, fragments: ReadonlyArray<readonly [number, number]>, want: number): Uint8Array {
  const out = new Uint8Array(want);
  let n = 0;
  for (const [s, e] of fragments) {
    if (n >= want) break;
    const take = Math.min(e - s, want - n);
    out.set(buf.subarray(s, s + take), n);
    n += take;
  }
  return out;
}

function u16(b: Uint8Array, at: number): number {
  return ((b[at] ?? 0) << 8) | (b[at + 1] ?? 0);
}

function hex(n: number): string {
  return n.toString(16).padStart(2, '0');
}

/** Parse a complete handshake message (header included). */
function parseBody(msg: Uint8Array, recordVersion: number, recordBytes: number): ClientHelloVerdict {
  let p = HANDSHAKE_HEADER;
  const end = msg.length;
  const helloVersion = u16(msg, p);
  p += 2 + 32; // legacy_version, random
  if (p + 1 > end) return reject('malformed', 'truncated before session_id');
  const sidLen = msg[p] ?? 0;
  if (sidLen > 32) return reject('malformed', `session_id of ${sidLen} bytes`);
  p += 1 + sidLen;
  if (p + 2 > end) return reject('malformed', 'truncated before cipher_suites');
  const csLen = u16(msg, p);
  if (csLen < 2 || csLen % 2 !== 0) return reject('malformed', `cipher_suites length ${csLen}`);
  p += 2 + csLen;
  if (p + 1 > end) return reject('malformed', 'truncated before compression_methods');
  const cmLen = msg[p] ?? 0;
  if (cmLen < 1) return reject('malformed', 'no compression methods');
  p += 1 + cmLen;
  if (p > end) return reject('malformed', 'truncated compression_methods');
  let serverName: string | undefined;
  let alpn: string[] = [];
  if (p === end) return { kind: 'hello', hello: { serverName, alpn, recordVersion, helloVersion, recordBytes } };
  if (p + 2 > end) return reject('malformed', 'truncated extensions length');
  const extLen = u16(msg, p);
  p += 2;
  if (p + extLen !== end) return reject('malformed', 'extensions length does not match the message');
  const seen = new Set<number>();
  while (p < end) {
    if (p + 4 > end) return reject('malformed', 'truncated extension header');
    const type = u16(msg, p);
    const len = u16(msg, p + 2);
    p += 4;
    if (p + len > end) return reject('malformed', `extension ${type} overruns the message`);
    if (seen.has(type)) return reject('malformed', `duplicate extension ${type}`);
    seen.add(type);
    if (type === EXT_SERVER_NAME) {
      const r = parseServerName(msg, p, p + len);
      if (typeof r !== 'string' && r !== undefined) return r;
      serverName = r;
    } else if (type === EXT_ALPN) {
      const r = parseAlpn(msg, p, p + len);
      if (!Array.isArray(r)) return r;
      alpn = r;
    }
    p += len;
  }
  return { kind: 'hello', hello: { serverName, alpn, recordVersion, helloVersion, recordBytes } };
}

function parseServerName(msg: Uint8Array, p: number, end: number): string | undefined | ClientHelloVerdict {
  if (p === end) return undefined; // empty extension (servers echo it so; tolerate)
  if (p + 2 > end) return reject('malformed', 'truncated server_name list');
  const listLen = u16(msg, p);
  p += 2;
  if (p + listLen !== end || listLen === 0) return reject('malformed', 'server_name list length mismatch');
  let name: string | undefined;
  while (p < end) {
    if (p + 3 > end) return reject('malformed', 'truncated server_name entry');
    const nameType = msg[p] ?? 0;
    const len = u16(msg, p + 1);
    p += 3;
    if (p + len > end) return reject('malformed', 'server_name entry overruns the extension');
    if (nameType === 0) {
      if (name !== undefined) return reject('malformed', 'two host_name entries');
      if (len === 0) return reject('malformed', 'empty host_name');
      let s = '';
      for (let i = p; i < p + len; i++) {
        let c = msg[i] ?? 0;
        if (c < 0x21 || c > 0x7e) return reject('malformed', 'host_name has a byte outside printable ASCII');
        if (c >= 0x41 && c <= 0x5a) c += 0x20;
        s += String.fromCharCode(c);
      }
      name = s;
    }
    p += len;
  }
  return name;
}

function parseAlpn(msg: Uint8Array, p: number, end: number): string[] | ClientHelloVerdict {
  if (p + 2 > end) return reject('malformed', 'truncated ALPN list');
  const listLen = u16(msg, p);
  p += 2;
  if (p + listLen !== end || listLen === 0) return reject('malformed', 'ALPN list length mismatch');
  const out: string[] = [];
  while (p < end) {
    const len = msg[p] ?? 0;
    p += 1;
    if (len === 0 || p + len > end) return reject('malformed', 'bad ALPN protocol name length');
    out.push(Buffer.from(msg.buffer, msg.byteOffset + p, len).toString('latin1'));
    p += len;
  }
  return out;
}

/**
 * Stateful reader for one connection: feed it every chunk until it returns something other than
 * `incomplete`. It keeps the chunks (they are forwarded upstream unchanged, see {@link bytes}) and
 * joins them only when the next parse step can succeed.
 */
export class ClientHelloReader {
  readonly #options: ClientHelloReaderOptions;
  readonly #maxBuffered: number;
  #chunks: Buffer[] = [];
  #length = 0;
  #needed = 1;
  #verdict: ClientHelloVerdict = { kind: 'incomplete', needed: 1 };

  /** Create a reader; see {@link ClientHelloReaderOptions}. */
  constructor(options: ClientHelloReaderOptions = {}) {
    this.#options = options;
    const maxHello = options.maxHelloBytes ?? DEFAULT_MAX_CLIENT_HELLO_BYTES;
    // Records carrying the hello: at most ceil(max / 1) records in theory; bound the buffered
    // bytes by the hello plus generous per-record headers.
    this.#maxBuffered = maxHello + RECORD_HEADER * 64 + MAX_RECORD_FRAGMENT;
  }

  /** Add the next chunk received from the client and return the verdict so far. */
  push(chunk: Buffer): ClientHelloVerdict {
    if (this.#verdict.kind !== 'incomplete') return this.#verdict;
    this.#chunks.push(chunk);
    this.#length += chunk.length;
    if (this.#length < this.#needed) {
      if (this.#length > this.#maxBuffered) this.#verdict = reject('too-large', 'ClientHello records exceed the buffer limit');
      return this.#verdict;
    }
    const all = this.bytes();
    const v = parseClientHello(all, this.#options);
    if (v.kind === 'incomplete') {
      this.#needed = v.needed;
      if (this.#length > this.#maxBuffered) {
        this.#verdict = reject('too-large', 'ClientHello records exceed the buffer limit');
        return this.#verdict;
      }
    }
    this.#verdict = v;
    return v;
  }

  /** Everything received so far, as one buffer (joined once, then cached). */
  bytes(): Buffer {
    if (this.#chunks.length === 1 && this.#chunks[0]) return this.#chunks[0];
    const joined = Buffer.concat(this.#chunks, this.#length);
    this.#chunks = [joined];
    return joined;
  }

  /** Bytes received so far. */
  get length(): number {
    return this.#length;
  }
}
