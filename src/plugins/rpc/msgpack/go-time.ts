/**
 * A Go `time.Time` with nanosecond precision and Go's location flag, as go-msgpack carries it:
 * the 15-byte `MarshalBinary` blob `01 | seconds since 0001-01-01 (i64) | nanoseconds (i32) |
 * zone offset in minutes (i16, -1 = UTC)`, or the 16-byte version 2 when the zone offset has
 * seconds (shared/spec/hashicorp-wire.md §8). A JS `Date` keeps only milliseconds, so times
 * cross the wire as {@link GoTime}.
 */
import { MeshfedError } from '../../../core/errors.js';
import { MsgpackErrorCode } from './errors.js';

/** Seconds from 0001-01-01T00:00:00Z (Go's internal epoch) to 1970-01-01T00:00:00Z. */
const UNIX_TO_INTERNAL = 62135596800;
const NS_PER_S = 1_000_000_000;

/**
 * A time that Go's `MarshalBinary`/`UnmarshalBinary` would refuse, or bad input to a GoTime
 * constructor or parser (`MESHFED_ERR_MSGPACK_TIME`). Binary errors use Go's texts.
 */
export class GoTimeError extends MeshfedError {
  constructor(message: string) {
    super(MsgpackErrorCode.TIME, message, { plugin: 'rpc' });
    this.name = 'GoTimeError';
  }
}

/** A Go `time.Time`: an instant with nanoseconds, plus its zone offset (or Go's UTC location). */
export class GoTime {
  /** Seconds since 1970-01-01T00:00:00Z (negative before 1970). */
  readonly unixSeconds: number;
  /** Nanoseconds within the second, 0 to 999 999 999. */
  readonly nanoseconds: number;
  /**
   * Zone offset east of UTC in seconds, or `null` for Go's UTC location (encoded as -1 minutes).
   * An offset of 0 is a fixed zone at UTC+0 that is not Go's `time.UTC`.
   */
  readonly zoneOffsetSeconds: number | null;

  constructor(unixSeconds: number, nanoseconds = 0, zoneOffsetSeconds: number | null = null) {
    if (!Number.isSafeInteger(unixSeconds)) throw new GoTimeError(`GoTime: unixSeconds must be a safe integer, got ${unixSeconds}`);
    if (!Number.isInteger(nanoseconds) || nanoseconds < 0 || nanoseconds >= NS_PER_S) {
      throw new GoTimeError(`GoTime: nanoseconds must be an integer in [0, 1e9), got ${nanoseconds}`);
    }
    if (zoneOffsetSeconds !== null && (!Number.isInteger(zoneOffsetSeconds) || Math.abs(zoneOffsetSeconds) > 32767 * 60)) {
      throw new GoTimeError(`GoTime: zoneOffsetSeconds must be an integer within ±${32767 * 60}, got ${zoneOffsetSeconds}`);
    }
    this.unixSeconds = unixSeconds;
    this.nanoseconds = nanoseconds;
    this.zoneOffsetSeconds = zoneOffsetSeconds;
  }

  /** Go's zero time, `0001-01-01T00:00:00Z` (what an unset `time.Time` field holds). */
  static readonly ZERO: GoTime = new GoTime(-UNIX_TO_INTERNAL, 0, null);

  /** The current time, in UTC, with the millisecond precision of `Date.now()`. */
  static now(): GoTime {
    return GoTime.fromDate(new Date());
  }

  /** A UTC time from a `Date` (milliseconds). */
  static fromDate(date: Date): GoTime {
    const ms = date.getTime();
    if (!Number.isFinite(ms)) throw new GoTimeError('GoTime.fromDate: invalid Date');
    const s = Math.floor(ms / 1000);
    return new GoTime(s, (ms - s * 1000) * 1_000_000, null);
  }

  /** A UTC time from nanoseconds since the Unix epoch. */
  static fromUnixNanos(ns: bigint): GoTime {
    let s = ns / 1_000_000_000n;
    let n = ns % 1_000_000_000n;
    if (n < 0n) {
      n += 1_000_000_000n;
      s -= 1n;
    }
    return new GoTime(Number(s), Number(n), null);
  }

  /**
   * Parse RFC 3339 with up to nanosecond fractions (`2024-01-02T03:04:05.123456789Z`,
   * `…+02:00`). A `Z` suffix gives Go's UTC location; a numeric offset a fixed zone.
   */
  static parse(text: string): GoTime {
    const m = /^(-?\d{4,})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/.exec(text);
    if (!m) throw new GoTimeError(`GoTime.parse: not an RFC 3339 time: ${JSON.stringify(text)}`);
    const [, y, mo, d, h, mi, se, frac, z, sign, oh, om] = m;
    const days = daysFromCivil(Number(y), Number(mo), Number(d));
    let secs = days * 86400 + Number(h) * 3600 + Number(mi) * 60 + Number(se);
    let offset: number | null = null;
    if (!z) {
      offset = (sign === '-' ? -1 : 1) * (Number(oh) * 3600 + Number(om) * 60);
      secs -= offset;
    }
    const nanos = frac ? Number(frac.padEnd(9, '0')) : 0;
    return new GoTime(secs, nanos, offset);
  }

  /**
   * Decode Go's `MarshalBinary` blob (15 bytes, or 16 for version 2). Throws a
   * {@link GoTimeError} with Go's `UnmarshalBinary` texts for a bad blob.
   */
  static fromBinary(b: Uint8Array): GoTime {
    if (b.length === 0) throw new GoTimeError('Time.UnmarshalBinary: no data');
    const version = b[0];
    if (version !== 1 && version !== 2) throw new GoTimeError('Time.UnmarshalBinary: unsupported version');
    if (b.length !== (version === 2 ? 16 : 15)) throw new GoTimeError('Time.UnmarshalBinary: invalid length');
    const hi = ((b[1]! << 24) | (b[2]! << 16) | (b[3]! << 8) | b[4]!) | 0;
    const lo = ((b[5]! << 24) | (b[6]! << 16) | (b[7]! << 8) | b[8]!) >>> 0;
    const nsec = (b[9]! << 24) | (b[10]! << 16) | (b[11]! << 8) | b[12]!;
    const offsetMin = ((b[13]! << 8) | b[14]!) << 16 >> 16;
    // Exact while |hi| < 2^21; beyond that the time is ~285 million years away from 1970.
    if (hi >= 0x200000 || hi < -0x200000) throw new GoTimeError('Time.UnmarshalBinary: seconds out of the supported range (±2^53)');
    const unix = hi * 4294967296 + lo - UNIX_TO_INTERNAL;
    if (nsec < 0 || nsec >= NS_PER_S) throw new GoTimeError(`Time.UnmarshalBinary: nanoseconds out of range (${nsec})`);
    if (offsetMin === -1) return new GoTime(unix, nsec, null);
    // Go adds the version-2 seconds byte unsigned (time.go), so do we.
    const offset = offsetMin * 60 + (version === 2 ? b[15]! : 0);
    return new GoTime(unix, nsec, offset);
  }

  /** Go's `MarshalBinary` blob (15 bytes; 16 when the zone offset has seconds). */
  toBinary(): Uint8Array {
    let offsetMin = -1;
    let offsetSec = 0;
    let version = 1;
    if (this.zoneOffsetSeconds !== null) {
      const off = this.zoneOffsetSeconds;
      if (off % 60 !== 0) {
        version = 2;
        offsetSec = off % 60;
      }
      offsetMin = Math.trunc(off / 60);
      if (offsetMin === -1) throw new GoTimeError('Time.MarshalBinary: unexpected zone offset');
    }
    const out = new Uint8Array(version === 2 ? 16 : 15);
    out[0] = version;
    const sec = this.unixSeconds + UNIX_TO_INTERNAL;
    const hi = Math.floor(sec / 4294967296);
    const lo = sec - hi * 4294967296;
    writeU32(out, 1, hi >>> 0);
    writeU32(out, 5, lo);
    writeU32(out, 9, this.nanoseconds);
    out[13] = (offsetMin >> 8) & 0xff;
    out[14] = offsetMin & 0xff;
    if (version === 2) out[15] = offsetSec & 0xff;
    return out;
  }

  /** Whether this is Go's zero time (`IsZero()`: the instant 0001-01-01T00:00:00Z). */
  isZero(): boolean {
    return this.unixSeconds === -UNIX_TO_INTERNAL && this.nanoseconds === 0;
  }

  /** The instant as a `Date` (nanoseconds truncated to milliseconds). */
  toDate(): Date {
    return new Date(this.unixSeconds * 1000 + Math.floor(this.nanoseconds / 1_000_000));
  }

  /** Nanoseconds since the Unix epoch. */
  toUnixNanos(): bigint {
    return BigInt(this.unixSeconds) * 1_000_000_000n + BigInt(this.nanoseconds);
  }

  /** Same instant (Go's `Equal`: zones may differ). */
  equals(other: GoTime): boolean {
    return this.unixSeconds === other.unixSeconds && this.nanoseconds === other.nanoseconds;
  }

  /** Negative, zero or positive as this instant is before, equal to or after `other`. */
  compare(other: GoTime): number {
    return this.unixSeconds - other.unixSeconds || this.nanoseconds - other.nanoseconds;
  }

  /** RFC 3339 with nanoseconds in the time's own zone, like Go's `time.RFC3339Nano`. */
  toString(): string {
    const off = this.zoneOffsetSeconds ?? 0;
    const local = this.unixSeconds + off;
    const days = Math.floor(local / 86400);
    const sod = local - days * 86400;
    const [y, mo, d] = civilFromDays(days);
    const pad = (n: number, w = 2): string => String(n).padStart(w, '0');
    let frac = '';
    if (this.nanoseconds) frac = `.${pad(this.nanoseconds, 9).replace(/0+$/, '')}`;
    let zone = 'Z';
    if (this.zoneOffsetSeconds !== null) {
      const a = Math.abs(off);
      zone = `${off < 0 ? '-' : '+'}${pad(Math.floor(a / 3600))}:${pad(Math.floor((a % 3600) / 60))}`;
    }
    const year = y < 0 ? `-${pad(-y, 4)}` : pad(y, 4);
    return `${year}-${pad(mo)}-${pad(d)}T${pad(Math.floor(sod / 3600))}:${pad(Math.floor((sod % 3600) / 60))}:${pad(sod % 60)}${frac}${zone}`;
  }

  /** RFC 3339 text (for JSON). */
  toJSON(): string {
    return this.toString();
  }
}

function writeU32(out: Uint8Array, at: number, v: number): void {
  out[at] = v >>> 24;
  out[at + 1] = (v >>> 16) & 0xff;
  out[at + 2] = (v >>> 8) & 0xff;
  out[at + 3] = v & 0xff;
}

/** Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). */
function daysFromCivil(y: number, m: number, d: number): number {
  y -= m <= 2 ? 1 : 0;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

/** Inverse of {@link daysFromCivil}. */
function civilFromDays(z: number): [number, number, number] {
  z += 719468;
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const d = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const m = mp + (mp < 10 ? 3 : -9);
  return [yoe + era * 400 + (m <= 2 ? 1 : 0), m, d];
}
