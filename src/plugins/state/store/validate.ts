/**
 * Validation and normalisation of command input (Consul's catalog rules): every problem throws a
 * {@link StateValidationError} naming the field, before anything is written.
 */
import { isIP } from 'node:net';
import { StateValidationError } from './errors.js';
import { HEALTH_STATUSES, SERVICE_KINDS, type HealthStatus, type ServiceAddress, type ServiceKind } from './types.js';

/** Most metadata pairs a node or service may carry. */
export const MAX_META_PAIRS = 64;
/** Longest metadata key. */
export const MAX_META_KEY_LENGTH = 128;
/** Longest metadata value. */
export const MAX_META_VALUE_LENGTH = 512;

const META_KEY = /^[A-Za-z0-9_-]+$/;
const HOST_LABEL = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/** True when `s` is an IPv4/IPv6 literal or an RFC 1123 host name. */
export function isValidAddress(s: string): boolean {
  if (isIP(s) !== 0) return true;
  if (s.length === 0 || s.length > 253) return false;
  const name = s.endsWith('.') ? s.slice(0, -1) : s;
  return name.split('.').every((label) => HOST_LABEL.test(label));
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A required non-empty string. */
export function requiredString(v: unknown, field: string, what: string): string {
  if (typeof v !== 'string' || v.length === 0) throw new StateValidationError(field, `missing ${what}`);
  return v;
}

/** An optional string (default `''`). */
export function optionalString(v: unknown, field: string): string {
  if (v === undefined || v === null) return '';
  if (typeof v !== 'string') throw new StateValidationError(field, `expected a string, got ${typeof v}`);
  return v;
}

/**
 * A required address (IP or DNS name). `prev`, the stored value, was validated when stored: an
 * equal input is not parsed again and `prev` itself is returned (cheap identity comparisons).
 */
export function address(v: unknown, field: string, prev?: string): string {
  if (v === prev && prev !== undefined && prev !== '') return prev;
  const s = requiredString(v, field, 'address');
  if (!isValidAddress(s)) throw new StateValidationError(field, `bad address ${JSON.stringify(s)}: expected an IP or a DNS name`);
  return s;
}

/** An optional address (`''` allowed); `prev` as for {@link address}. */
export function optionalAddress(v: unknown, field: string, prev?: string): string {
  if (v === prev && prev !== undefined) return prev;
  const s = optionalString(v, field);
  if (s !== '' && !isValidAddress(s)) throw new StateValidationError(field, `bad address ${JSON.stringify(s)}: expected an IP or a DNS name`);
  return s;
}

/** A port 0–65535 (default 0). */
export function port(v: unknown, field: string): number {
  if (v === undefined || v === null) return 0;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 65535) throw new StateValidationError(field, `bad port ${JSON.stringify(v)}: expected an integer 0–65535`);
  return v;
}

const EMPTY_MAP: Readonly<Record<string, never>> = Object.freeze({});
const EMPTY_TAGS: readonly string[] = Object.freeze([]);

/** Own enumerable keys of `v`, sorted (already-sorted input, the common case, is not re-sorted). */
function sortedKeys(v: object): string[] {
  const keys = Object.keys(v);
  for (let i = 1; i < keys.length; i++) {
    if ((keys[i - 1] as string) > (keys[i] as string)) return sortStrings(keys);
  }
  return keys;
}

/** Sort strings in place (code-unit order, as `Array.prototype.sort`): insertion sort for the few keys of a map. */
function sortStrings(keys: string[]): string[] {
  if (keys.length > 16) return keys.sort();
  for (let i = 1; i < keys.length; i++) {
    const k = keys[i] as string;
    let j = i - 1;
    for (; j >= 0 && (keys[j] as string) > k; j--) keys[j + 1] = keys[j] as string;
    keys[j + 1] = k;
  }
  return keys;
}

/** Number of own enumerable keys of a plain record, without allocating. */
function keyCount(v: object): number {
  let n = 0;
  for (const k in v) if (Object.hasOwn(v, k)) n++;
  return n;
}

/**
 * Metadata: ≤ 64 pairs, keys `[A-Za-z0-9_-]{1,128}`, string values ≤ 512 characters. Returns a
 * frozen record with sorted keys, or `prev` itself when it holds exactly the same pairs.
 */
export function meta(v: unknown, field: string, prev?: Readonly<Record<string, string>>): Readonly<Record<string, string>> {
  if (v === undefined || v === null) return prev !== undefined && keyCount(prev) === 0 ? prev : EMPTY_MAP;
  if (!isRecord(v)) throw new StateValidationError(field, 'expected an object of strings');
  // one allocation-free pass over the own keys: valid? already sorted? same as `prev`?
  let n = 0;
  let sorted = true;
  let last = '';
  let same = prev !== undefined;
  for (const k in v) {
    if (!Object.hasOwn(v, k)) continue;
    const val = v[k];
    // a pair equal to a stored one was validated when stored
    const stored = prev !== undefined && Object.hasOwn(prev, k) && prev[k] === val;
    if (!stored && (typeof val !== 'string' || val.length > MAX_META_VALUE_LENGTH || k.length > MAX_META_KEY_LENGTH || !META_KEY.test(k))) {
      return metaSlow(v, field); // throws the error of the first bad key in sorted order
    }
    if (++n > MAX_META_PAIRS) return metaSlow(v, field);
    if (n > 1 && last > k) sorted = false;
    last = k;
    if (!stored) same = false;
  }
  return settledStringMap(v, prev, same, n, sorted);
}

/** Validate metadata in sorted key order, throwing the first problem (the error path of {@link meta}). */
function metaSlow(v: Record<string, unknown>, field: string): Readonly<Record<string, string>> {
  const keys = Object.keys(v);
  if (keys.length > MAX_META_PAIRS) throw new StateValidationError(field, `too many metadata pairs: ${keys.length} > ${MAX_META_PAIRS}`);
  const out: Record<string, string> = {};
  for (const k of keys.sort()) {
    if (!META_KEY.test(k) || k.length > MAX_META_KEY_LENGTH) {
      throw new StateValidationError(`${field}.${k}`, `bad metadata key: use 1–${MAX_META_KEY_LENGTH} characters of [A-Za-z0-9_-]`);
    }
    const val = v[k];
    if (typeof val !== 'string') throw new StateValidationError(`${field}.${k}`, 'metadata values must be strings');
    if (val.length > MAX_META_VALUE_LENGTH) {
      throw new StateValidationError(`${field}.${k}`, `metadata value too long: ${val.length} > ${MAX_META_VALUE_LENGTH} characters`);
    }
    out[k] = val;
  }
  return Object.freeze(out);
}

/** Node tagged addresses: name → address (frozen, sorted keys; `prev` itself when the same). */
export function nodeTaggedAddresses(v: unknown, field: string, prev?: Readonly<Record<string, string>>): Readonly<Record<string, string>> {
  if (v === undefined || v === null) return prev !== undefined && keyCount(prev) === 0 ? prev : EMPTY_MAP;
  if (!isRecord(v)) throw new StateValidationError(field, 'expected an object of addresses');
  let n = 0;
  let sorted = true;
  let last = '';
  let same = prev !== undefined;
  for (const k in v) {
    if (!Object.hasOwn(v, k)) continue;
    const val = v[k];
    // an address equal to a stored one was validated when stored
    const stored = prev !== undefined && Object.hasOwn(prev, k) && prev[k] === val;
    if (!stored && (typeof val !== 'string' || !isValidAddress(val))) {
      // the error of the first bad key in sorted order
      for (const key of Object.keys(v).sort()) address(v[key], `${field}.${key}`);
    }
    n++;
    if (n > 1 && last > k) sorted = false;
    last = k;
    if (!stored) same = false;
  }
  return settledStringMap(v, prev, same, n, sorted);
}

/** Service tagged addresses: name → `{Address, Port}` (frozen, sorted keys; `prev` itself when the same). */
export function serviceTaggedAddresses(v: unknown, field: string, prev?: Readonly<Record<string, ServiceAddress>>): Readonly<Record<string, ServiceAddress>> {
  if (v === undefined || v === null) return prev !== undefined && keyCount(prev) === 0 ? prev : EMPTY_MAP;
  if (!isRecord(v)) throw new StateValidationError(field, 'expected an object of {Address, Port}');
  const keys = sortedKeys(v);
  let same = prev !== undefined && keyCount(prev) === keys.length;
  for (const k of keys) {
    const a = v[k];
    if (!isRecord(a)) throw new StateValidationError(`${field}.${k}`, 'expected {Address, Port}');
    // parts equal to the stored ones were validated when stored (field names built only to throw)
    const p = prev !== undefined && Object.hasOwn(prev, k) ? prev[k] : undefined;
    const addr = p !== undefined && a.Address === p.Address ? p.Address : address(a.Address, `${field}.${k}.Address`);
    const prt = p !== undefined && a.Port === p.Port ? p.Port : port(a.Port, `${field}.${k}.Port`);
    if (same && (p === undefined || p.Address !== addr || p.Port !== prt || keyCount(p) !== 2)) same = false;
  }
  if (same) return prev as Readonly<Record<string, ServiceAddress>>;
  if (keys.length === 0) return EMPTY_MAP;
  const out: Record<string, ServiceAddress> = {};
  for (const k of keys) {
    const a = v[k] as Record<string, unknown>;
    out[k] = Object.freeze({ Address: a.Address as string, Port: port(a.Port, '') });
  }
  return Object.freeze(out);
}

/** Service tags: an array of strings (frozen copy, or `prev` itself when the same). */
export function tags(v: unknown, field: string, prev?: readonly string[]): readonly string[] {
  if (v === undefined || v === null) return prev !== undefined && prev.length === 0 ? prev : EMPTY_TAGS;
  if (!Array.isArray(v)) throw new StateValidationError(field, 'expected an array of strings');
  const n = v.length;
  let same = prev !== undefined && prev.length === n;
  for (let i = 0; i < n; i++) {
    const t: unknown = v[i];
    if (typeof t !== 'string') throw new StateValidationError(field, 'expected an array of strings');
    if (same && (prev as readonly string[])[i] !== t) same = false;
  }
  if (same) return prev as readonly string[];
  if (n === 0) return EMPTY_TAGS;
  return Object.freeze([...(v as string[])]);
}

/** A service kind. */
export function serviceKind(v: unknown, field: string): ServiceKind {
  if (v === undefined || v === null) return '';
  if (typeof v !== 'string' || !(SERVICE_KINDS as readonly string[]).includes(v)) {
    throw new StateValidationError(field, `unknown service kind ${JSON.stringify(v)}: expected one of ${SERVICE_KINDS.map((k) => JSON.stringify(k)).join(', ')}`);
  }
  return v as ServiceKind;
}

/** A check status; empty defaults to `critical` as in Consul. */
export function healthStatus(v: unknown, field: string): HealthStatus {
  if (v === undefined || v === null || v === '') return 'critical';
  if (typeof v !== 'string' || !(HEALTH_STATUSES as readonly string[]).includes(v)) {
    throw new StateValidationError(field, `unknown check status ${JSON.stringify(v)}: expected passing, warning or critical`);
  }
  return v as HealthStatus;
}

/** Deep-freeze plain data so stored records cannot be changed by callers. */
export function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v)) deepFreeze(x);
  }
  return v;
}

/** Structural equality of plain JSON-like data (key order ignored). */
export function sameData(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  const ra = a as Record<string, unknown>;
  const rb = b as Record<string, unknown>;
  return ka.every((k) => Object.prototype.hasOwnProperty.call(rb, k) && sameData(ra[k], rb[k]));
}

/**
 * The end of a validated string map: `prev` itself when equal (same keys and values), the shared
 * empty map, or a frozen copy with sorted keys.
 */
function settledStringMap(v: Record<string, unknown>, prev: unknown, same: boolean, n: number, sorted: boolean): Readonly<Record<string, string>> {
  if (same && keyCount(prev as object) === n) return prev as Readonly<Record<string, string>>;
  if (n === 0) return EMPTY_MAP;
  const out: Record<string, string> = {};
  if (sorted) {
    for (const k in v) if (Object.hasOwn(v, k)) out[k] = v[k] as string;
  } else {
    for (const k of sortStrings(Object.keys(v))) out[k] = v[k] as string;
  }
  return Object.freeze(out);
}
