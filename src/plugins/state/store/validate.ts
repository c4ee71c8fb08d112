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

/** A required address (IP or DNS name). */
export function address(v: unknown, field: string): string {
  const s = requiredString(v, field, 'address');
  if (!isValidAddress(s)) throw new StateValidationError(field, `bad address ${JSON.stringify(s)}: expected an IP or a DNS name`);
  return s;
}

/** An optional address (`''` allowed). */
export function optionalAddress(v: unknown, field: string): string {
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

/** Metadata: ≤ 64 pairs, keys `[A-Za-z0-9_-]{1,128}`, string values ≤ 512 characters. */
export function meta(v: unknown, field: string): Readonly<Record<string, string>> {
  if (v === undefined || v === null) return Object.freeze({});
  if (!isRecord(v)) throw new StateValidationError(field, 'expected an object of strings');
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

/** Node tagged addresses: name → address. */
export function nodeTaggedAddresses(v: unknown, field: string): Readonly<Record<string, string>> {
  if (v === undefined || v === null) return Object.freeze({});
  if (!isRecord(v)) throw new StateValidationError(field, 'expected an object of addresses');
  const out: Record<string, string> = {};
  for (const k of Object.keys(v).sort()) out[k] = address(v[k], `${field}.${k}`);
  return Object.freeze(out);
}

/** Service tagged addresses: name → `{Address, Port}`. */
export function serviceTaggedAddresses(v: unknown, field: string): Readonly<Record<string, ServiceAddress>> {
  if (v === undefined || v === null) return Object.freeze({});
  if (!isRecord(v)) throw new StateValidationError(field, 'expected an object of {Address, Port}');
  const out: Record<string, ServiceAddress> = {};
  for (const k of Object.keys(v).sort()) {
    const a = v[k];
    if (!isRecord(a)) throw new StateValidationError(`${field}.${k}`, 'expected {Address, Port}');
    out[k] = Object.freeze({ Address: address(a.Address, `${field}.${k}.Address`), Port: port(a.Port, `${field}.${k}.Port`) });
  }
  return Object.freeze(out);
}

/** Service tags: an array of strings. */
export function tags(v: unknown, field: string): readonly string[] {
  if (v === undefined || v === null) return Object.freeze([]);
  if (!Array.isArray(v) || v.some((t) => typeof t !== 'string')) throw new StateValidationError(field, 'expected an array of strings');
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
