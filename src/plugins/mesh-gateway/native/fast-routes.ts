/**
 * Encoder of the native engine's fast route table (the binary format is described in
 * `fastpath.h`, next to this file). The engine parses each ClientHello itself and, when the
 * server name goes to a cluster in this table, connects without calling JavaScript; every other
 * connection (no route, an unsupported chain or cluster, a cluster whose endpoints need DNS, …) is
 * handed to JavaScript, which decides as `SniProxy#route` always does.
 *
 * The table mirrors {@link matchChain} and the cluster resolution of `SniProxy#route`: exact
 * names, wildcard suffixes and the catch-all chain each point at a cluster index, at "ask
 * JavaScript" or at "the cluster named like the server name" (`sni_cluster`).
 */
import { isIP } from 'node:net';
import type { RouteChain, RouteCluster, RoutingTable } from '../routing.js';

/** Version written in the first four bytes of the table. */
export const FAST_ROUTES_VERSION = 1;

/** Chain target: JavaScript decides (an unsupported chain, a cluster that does not exist). */
export const FAST_TARGET_ASK = -1;
/** Chain target: the cluster named like the server name (`sni_cluster`). */
export const FAST_TARGET_SNI_CLUSTER = -2;
/** Catch-all target: the table has no catch-all chain. */
export const FAST_TARGET_NONE = -3;

/** Longest server name the engine's ClientHello parser returns (longer names are left to JavaScript). */
export const FAST_MAX_SERVER_NAME = 255;

/** Largest string the format can hold (a u16 byte length). */
const MAX_STRING_BYTES = 0xffff;
/** Largest endpoint count the format can hold (a u16). */
const MAX_ENDPOINTS = 0xffff;
/** Largest u32. */
const MAX_U32 = 0xffff_ffff;

/**
 * Whether the engine's parser can return `name`: 1–255 printable ASCII bytes (0x21–0x7e) without
 * upper case. Route entries that no such name can match are left out of the table.
 */
function clientHelloName(name: string): boolean {
  if (name.length === 0 || name.length > FAST_MAX_SERVER_NAME) return false;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c < 0x21 || c > 0x7e || (c >= 0x41 && c <= 0x5a)) return false;
  }
  return true;
}

/** Whether `s` has no lone surrogate (so its UTF-8 bytes name it and nothing else). */
function wellFormed(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0xd800 || c > 0xdfff) continue;
    const next = s.charCodeAt(i + 1);
    if (c > 0xdbff || !(next >= 0xdc00 && next <= 0xdfff)) return false;
    i++;
  }
  return true;
}

/** An endpoint host the engine connects to without a DNS lookup (an IP literal without an IPv6 zone). */
function ipLiteral(host: string): boolean {
  return isIP(host) !== 0 && !host.includes('%');
}

/**
 * Whether the engine may connect to `cluster` by itself: it is supported, has at least one endpoint
 * (and no more than the format holds), every endpoint is an IP literal with a port in 1–65535, and
 * its connect timeout fits a u32.
 */
function isFast(cluster: RouteCluster): boolean {
  if (cluster.unsupported) return false;
  const n = cluster.endpoints.length;
  if (n === 0 || n > MAX_ENDPOINTS) return false;
  if (!Number.isFinite(cluster.connectTimeoutMs)) return false;
  return cluster.endpoints.every((e) => ipLiteral(e.host) && Number.isInteger(e.port) && e.port >= 1 && e.port <= 65_535);
}

/** Growable big-endian writer. */
class Writer {
  #buf = Buffer.alloc(1024);
  #len = 0;

  #room(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (size < this.#len + n) size *= 2;
    const next = Buffer.alloc(size);
    this.#buf.copy(next, 0, 0, this.#len);
    this.#buf = next;
  }

  u8(v: number): void {
    this.#room(1);
    this.#len = this.#buf.writeUInt8(v, this.#len);
  }

  u16(v: number): void {
    this.#room(2);
    this.#len = this.#buf.writeUInt16BE(v, this.#len);
  }

  u32(v: number): void {
    this.#room(4);
    this.#len = this.#buf.writeUInt32BE(v, this.#len);
  }

  i32(v: number): void {
    this.#room(4);
    this.#len = this.#buf.writeInt32BE(v, this.#len);
  }

  /** A string given as its UTF-8 bytes (at most {@link MAX_STRING_BYTES}). */
  bytes(b: Buffer): void {
    this.u16(b.length);
    this.#room(b.length);
    this.#len += b.copy(this.#buf, this.#len);
  }

  done(): Buffer {
    return Buffer.from(this.#buf.subarray(0, this.#len));
  }
}

/**
 * Encode the routes the native engine may take by itself (format: `fastpath.h`).
 *
 * Every cluster of the table is listed (in `table.clusters` order), with its `slot`
 * (`slotOf(name)`, a u32 the engine reports back), connect timeout and a `fast` flag; only fast
 * clusters carry their endpoints. A cluster is fast when it is supported, has at least one
 * endpoint, and every endpoint is an IP literal (`net.isIP`, no IPv6 zone) with a valid port —
 * hostname endpoints need DNS, which stays in JavaScript. A cluster whose name is not well-formed
 * UTF-16 or longer than the format holds is left out (chains pointing at it ask JavaScript).
 *
 * Chains become targets: unsupported → {@link FAST_TARGET_ASK}; `sni_cluster` (no cluster) →
 * {@link FAST_TARGET_SNI_CLUSTER}; a cluster of the table → its index; a missing cluster →
 * {@link FAST_TARGET_ASK}. No catch-all chain → {@link FAST_TARGET_NONE}. Exact names and wildcard
 * suffixes that no ClientHello name the engine returns could match (empty, longer than 255, upper
 * case, bytes outside printable ASCII, a suffix without a leading dot and a label) are left out;
 * this changes no lookup of such a name.
 *
 * @param table the routing table JavaScript routes by
 * @param slotOf the engine-side id of a cluster, an integer in 0–2^32-1
 * @returns the encoded table, for the engine's `fp_table_decode`
 * @throws RangeError when `slotOf` returns something that is not a u32
 */
export function encodeFastRoutes(table: RoutingTable, slotOf: (cluster: string) => number): Buffer {
  const w = new Writer();
  w.u32(FAST_ROUTES_VERSION);

  const listed: Array<{ key: string; cluster: RouteCluster; name: Buffer }> = [];
  const index = new Map<string, number>();
  for (const [name, cluster] of table.clusters) {
    if (!wellFormed(name)) continue;
    const bytes = Buffer.from(name, 'utf8');
    if (bytes.length > MAX_STRING_BYTES) continue;
    index.set(name, listed.length);
    listed.push({ key: name, cluster, name: bytes });
  }
  w.u32(listed.length);
  for (const { key, cluster, name } of listed) {
    const slot = slotOf(key);
    if (!Number.isInteger(slot) || slot < 0 || slot > MAX_U32) throw new RangeError(`slotOf(${JSON.stringify(key)}) returned ${slot}, not a u32`);
    const fast = isFast(cluster);
    w.bytes(name);
    w.u32(slot);
    w.u32(Number.isFinite(cluster.connectTimeoutMs) ? Math.min(MAX_U32, Math.max(0, Math.round(cluster.connectTimeoutMs))) : 0);
    w.u8(fast ? 1 : 0);
    if (!fast) {
      w.u16(0);
      continue;
    }
    w.u16(cluster.endpoints.length);
    for (const e of cluster.endpoints) {
      w.bytes(Buffer.from(e.host, 'latin1'));
      w.u16(e.port);
    }
  }

  const target = (chain: RouteChain): number => {
    if (chain.unsupported) return FAST_TARGET_ASK;
    if (chain.cluster === undefined) return FAST_TARGET_SNI_CLUSTER;
    return index.get(chain.cluster) ?? FAST_TARGET_ASK;
  };
  const routes = (map: ReadonlyMap<string, RouteChain>, wildcard: boolean): void => {
    const kept = [...map].filter(([name]) => clientHelloName(name) && (!wildcard || (name.length >= 2 && name.startsWith('.'))));
    w.u32(kept.length);
    for (const [name, chain] of kept) {
      w.bytes(Buffer.from(name, 'latin1'));
      w.i32(target(chain));
    }
  };
  routes(table.exact, false);
  routes(table.wildcard, true);
  w.i32(table.catchAll ? target(table.catchAll) : FAST_TARGET_NONE);
  return w.done();
}
