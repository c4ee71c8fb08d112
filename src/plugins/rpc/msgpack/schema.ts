/**
 * The schema DSL: declare a Go type once, get its TypeScript type (`Infer<typeof S>`) and a
 * codec that is byte-exact with go-msgpack 0.5.x's default handle (hashicorp-wire.md §8).
 *
 * ```ts
 * const FederationState = t.struct({
 *   Datacenter: t.string,
 *   MeshGateways: t.list(CheckServiceNode),
 *   UpdatedAt: t.time,
 *   PrimaryModifyIndex: t.uint64,
 *   ...RaftIndex.fields,            // embedded structs are inlined, as Go does
 * });
 * type FederationState = Infer<typeof FederationState>;
 * ```
 *
 * Go semantics carried over:
 * - structs are maps keyed by Go field name, keys sorted by name (byte order), whatever the
 *   declaration order; decoding ignores unknown keys and accepts a struct as an array (Go's
 *   `toArray`, in declaration order);
 * - a missing or `undefined` input value encodes as Go's zero value (`""`, `0`, `false`, nil
 *   slice/map/[]byte = `c0`, zero struct, zero time); a `nil` on the wire decodes to the zero
 *   value of any kind (empty list/map/bytes, zero struct, zero time);
 * - only `t.string` turns raw bytes into a JS string; `t.bytes` and `t.any` keep bytes.
 */
import { describeByte, type ByteReader } from './byte-reader.js';
import type { ByteWriter } from './byte-writer.js';
import { LocatedMsgpackError, MsgpackErrorCode, msgpackError } from './errors.js';
import { GoTime, GoTimeError } from './go-time.js';

/** Which kind of Go type a schema describes. */
export type SchemaKind =
  | 'string' | 'bytes' | 'bool' | 'int' | 'float' | 'time' | 'duration'
  | 'list' | 'map' | 'struct' | 'nullable' | 'any' | 'encoded';

/**
 * A Go type: knows how to encode a JS value of type `In` and decode to a value of type `Out`.
 * Create schemas with {@link t}; use {@link Infer} / {@link InferInput} for the TS types.
 */
export abstract class Schema<Out = unknown, In = Out> {
  /** The kind of Go type. */
  abstract readonly kind: SchemaKind;
  /** The Go type, for messages (`string`, `[]uint8`, `map[string]T`, `struct{…}`). */
  abstract readonly goType: string;
  /** Phantom: the decoded TS type. Never set at runtime. */
  declare readonly __out?: Out;
  /** Phantom: the accepted input TS type. Never set at runtime. */
  declare readonly __in?: In;

  /** @internal Write `v` (undefined/null = Go zero value unless the kind says otherwise). */
  abstract write(w: ByteWriter, v: In | null | undefined): void;
  /** @internal Read one value whose descriptor byte `b` was just read, at nesting `depth`. */
  abstract read(r: ByteReader, b: number, depth: number): Out;
  /** @internal Go's zero value, as decoded from `nil`. */
  abstract zero(): Out;
  /** @internal Go's `isEmptyValue` (for `omitempty`). */
  isEmpty(v: In | null | undefined): boolean {
    return v === undefined || v === null;
  }
}

/** The decoded TS type of a schema. */
export type Infer<S> = S extends Schema<infer O, unknown> ? O : never;
/** The TS type a schema accepts for encoding (struct fields optional: missing = zero value). */
export type InferInput<S> = S extends Schema<unknown, infer I> ? I : never;

/** A schema of any type (for containers and registries). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnySchema = Schema<any, any>;

/** The fields of a struct schema: Go field name (the wire key) → schema. */
export type StructFields = Readonly<Record<string, AnySchema>>;

type Simplify<T> = { [K in keyof T]: T[K] } & {};
/** Decoded struct: every field present. */
export type StructOut<F extends StructFields> = Simplify<{ -readonly [K in keyof F]: Infer<F[K]> }>;
/** Struct input: every field optional (missing = Go zero value). */
export type StructIn<F extends StructFields> = Simplify<{ [K in keyof F]?: InferInput<F[K]> }>;

/** A decoded msgpack extension value (only produced by `t.any`). */
export interface MsgpackExt {
  readonly type: number;
  readonly data: Uint8Array;
}

// ---------------------------------------------------------------------------------------------
// helpers

function encodeFail(schema: AnySchema, v: unknown, why = ''): LocatedMsgpackError {
  const got = v === null ? 'null' : Array.isArray(v) ? 'an array' : v instanceof Uint8Array ? 'a Uint8Array' : typeof v;
  return new LocatedMsgpackError(MsgpackErrorCode.ENCODE, `msgpack: cannot encode ${got} as Go ${schema.goType}${why ? `: ${why}` : ''}`, undefined);
}

function typeFail(r: ByteReader, schema: AnySchema, b: number): LocatedMsgpackError {
  return r.fail(`expected ${schema.goType}, got ${describeByte(b)}`);
}

/** Set `key` on a plain object without ever touching its prototype (`__proto__` keys). */
function setOwn(obj: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
  else obj[key] = value;
}

function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

// ---------------------------------------------------------------------------------------------
// scalars

class StringSchema extends Schema<string> {
  readonly kind = 'string';
  readonly goType = 'string';
  write(w: ByteWriter, v: string | null | undefined): void {
    if (typeof v === 'string') w.string(v);
    else if (v === undefined || v === null) w.u8(0xa0);
    else throw encodeFail(this, v);
  }
  read(r: ByteReader, b: number): string {
    const n = r.rawLenAfter(b);
    if (n >= 0) return r.utf8(n);
    if (b === 0xc0) return '';
    throw typeFail(r, this, b);
  }
  zero(): string {
    return '';
  }
  override isEmpty(v: string | null | undefined): boolean {
    return !v;
  }
}

class BytesSchema extends Schema<Uint8Array, Uint8Array | null> {
  readonly kind = 'bytes';
  readonly goType = '[]uint8';
  write(w: ByteWriter, v: Uint8Array | null | undefined): void {
    if (v instanceof Uint8Array) w.raw(v);
    else if (v === undefined || v === null) w.u8(0xc0);
    else throw encodeFail(this, v);
  }
  read(r: ByteReader, b: number, depth: number): Uint8Array {
    const n = r.rawLenAfter(b);
    if (n >= 0) return r.copyBytes(n);
    if (b === 0xc0) return new Uint8Array(0);
    // go-msgpack also decodes []uint8 from an array of small integers.
    const len = r.arrayLenAfter(b);
    if (len >= 0) {
      if (len > 0) r.enter(depth);
      const out = new Uint8Array(len);
      for (let i = 0; i < len; i++) {
        const e = r.byte();
        const x = r.intAfter(e);
        if (typeof x !== 'number' || x < 0 || x > 255) throw r.fail(`expected a byte (0-255) in []uint8, got ${describeByte(e)}`);
        out[i] = x;
      }
      return out;
    }
    throw typeFail(r, this, b);
  }
  zero(): Uint8Array {
    return new Uint8Array(0);
  }
  override isEmpty(v: Uint8Array | null | undefined): boolean {
    return !v || v.length === 0;
  }
}

class BoolSchema extends Schema<boolean> {
  readonly kind = 'bool';
  readonly goType = 'bool';
  write(w: ByteWriter, v: boolean | null | undefined): void {
    if (v === true) w.u8(0xc3);
    else if (v === false || v === undefined || v === null) w.u8(0xc2);
    else throw encodeFail(this, v);
  }
  read(r: ByteReader, b: number): boolean {
    // go-msgpack accepts the fixints 0 and 1 as booleans too.
    if (b === 0xc3 || b === 0x01) return true;
    if (b === 0xc2 || b === 0x00 || b === 0xc0) return false;
    throw typeFail(r, this, b);
  }
  zero(): boolean {
    return false;
  }
  override isEmpty(v: boolean | null | undefined): boolean {
    return !v;
  }
}

const TWO_63 = 9223372036854775808n;
const TWO_64 = 18446744073709551616n;

/** Integers whose TS type is `number`: decoding refuses values outside [min, max]. */
class IntSchema extends Schema<number> {
  readonly kind = 'int';
  readonly goType: string;
  readonly #min: number;
  readonly #max: number;
  constructor(goType: string, min: number, max: number) {
    super();
    this.goType = goType;
    this.#min = min;
    this.#max = max;
  }
  write(w: ByteWriter, v: number | null | undefined): void {
    if (typeof v === 'number' && Number.isSafeInteger(v) && v >= this.#min && v <= this.#max) w.int(v);
    else if (v === undefined || v === null) w.u8(0);
    else throw encodeFail(this, v, typeof v === 'number' ? `${v} is not an integer in [${this.#min}, ${this.#max}]` : '');
  }
  read(r: ByteReader, b: number): number {
    const x = r.intAfter(b);
    if (typeof x === 'number') {
      if (x >= this.#min && x <= this.#max) return x;
      throw r.fail(`${x} overflows Go ${this.goType}`);
    }
    if (typeof x === 'bigint') {
      throw r.fail(`${x} is outside the safe integer range of a JS number; declare the field t.${this.#min < 0 ? 'int64' : 'uint64'} to get a bigint`);
    }
    if (b === 0xc0) return 0;
    throw typeFail(r, this, b);
  }
  zero(): number {
    return 0;
  }
  override isEmpty(v: number | null | undefined): boolean {
    return !v;
  }
}

/** 64-bit integers: a number while exact (|v| ≤ 2^53-1), a bigint beyond. */
class Int64Schema extends Schema<number | bigint> {
  readonly kind = 'int';
  readonly goType: string;
  readonly #unsigned: boolean;
  constructor(unsigned: boolean) {
    super();
    this.#unsigned = unsigned;
    this.goType = unsigned ? 'uint64' : 'int64';
  }
  write(w: ByteWriter, v: number | bigint | null | undefined): void {
    if (typeof v === 'number') {
      if (Number.isSafeInteger(v) && (v >= 0 || !this.#unsigned)) {
        w.int(v);
        return;
      }
    } else if (typeof v === 'bigint') {
      if (this.#unsigned ? v >= 0n && v < TWO_64 : v >= -TWO_63 && v < TWO_63) {
        w.bigint(v);
        return;
      }
    } else if (v === undefined || v === null) {
      w.u8(0);
      return;
    }
    throw encodeFail(this, v, typeof v === 'number' || typeof v === 'bigint' ? `${v} is out of range (numbers must be safe integers; use a bigint beyond 2^53)` : '');
  }
  read(r: ByteReader, b: number): number | bigint {
    const x = r.intAfter(b);
    if (x !== undefined) {
      if (this.#unsigned ? x < 0 : b === 0xcf && x >= TWO_63) throw r.fail(`${x} overflows Go ${this.goType}`);
      return x;
    }
    if (b === 0xc0) return 0;
    throw typeFail(r, this, b);
  }
  zero(): number {
    return 0;
  }
  override isEmpty(v: number | bigint | null | undefined): boolean {
    return !v;
  }
}

/**
 * `time.Duration`: int64 nanoseconds as a number. Sentinels beyond ±2^53 ns (~104 days; e.g.
 * `math.MaxInt64` for "forever") decode to the nearest number and encode back clamped to the
 * int64 range, so they round-trip; real durations are exact.
 */
class DurationSchema extends Schema<number> {
  readonly kind = 'duration';
  readonly goType = 'time.Duration';
  write(w: ByteWriter, v: number | null | undefined): void {
    if (typeof v === 'number' && Number.isInteger(v)) {
      if (Number.isSafeInteger(v)) w.int(v);
      else w.bigint(v > 0 ? (v >= 2 ** 63 ? TWO_63 - 1n : BigInt(v)) : v <= -(2 ** 63) ? -TWO_63 : BigInt(v));
    } else if (v === undefined || v === null) w.u8(0);
    else throw encodeFail(this, v, 'a duration is an integer number of nanoseconds');
  }
  read(r: ByteReader, b: number): number {
    const x = r.intAfter(b);
    if (typeof x === 'number') return x;
    if (typeof x === 'bigint') {
      if (b === 0xcf && x >= TWO_63) throw r.fail(`${x} overflows Go time.Duration (int64)`);
      return Number(x);
    }
    if (b === 0xc0) return 0;
    throw typeFail(r, this, b);
  }
  zero(): number {
    return 0;
  }
  override isEmpty(v: number | null | undefined): boolean {
    return !v;
  }
}

class FloatSchema extends Schema<number> {
  readonly kind = 'float';
  readonly goType: string;
  readonly #bits: 32 | 64;
  constructor(bits: 32 | 64) {
    super();
    this.#bits = bits;
    this.goType = `float${bits}`;
  }
  write(w: ByteWriter, v: number | null | undefined): void {
    if (typeof v === 'number') {
      if (this.#bits === 64) w.float64(v);
      else w.float32(v);
    } else if (v === undefined || v === null) {
      if (this.#bits === 64) w.float64(0);
      else w.float32(0);
    } else throw encodeFail(this, v);
  }
  read(r: ByteReader, b: number): number {
    if (b === 0xcb) return r.f64();
    if (b === 0xca) return r.f32();
    // go-msgpack decodes floats from integers too.
    const x = r.intAfter(b);
    if (x !== undefined) return Number(x);
    if (b === 0xc0) return 0;
    throw typeFail(r, this, b);
  }
  zero(): number {
    return 0;
  }
  override isEmpty(v: number | null | undefined): boolean {
    return !v;
  }
}

class TimeSchema extends Schema<GoTime> {
  readonly kind = 'time';
  readonly goType = 'time.Time';
  write(w: ByteWriter, v: GoTime | null | undefined): void {
    let t: GoTime;
    if (v instanceof GoTime) t = v;
    else if (v === undefined || v === null) t = GoTime.ZERO;
    else throw encodeFail(this, v, 'use a GoTime (GoTime.fromDate(date) for a Date)');
    try {
      w.raw(t.toBinary());
    } catch (err) {
      throw encodeFail(this, v, (err as Error).message);
    }
  }
  read(r: ByteReader, b: number): GoTime {
    const n = r.rawLenAfter(b);
    if (n >= 0) {
      const at = r.pos;
      const blob = r.buf.subarray(at, at + n);
      r.pos += n;
      try {
        return GoTime.fromBinary(blob);
      } catch (err) {
        if (err instanceof GoTimeError) throw r.fail(err.message, MsgpackErrorCode.DECODE, at);
        throw err;
      }
    }
    if (b === 0xc0) return GoTime.ZERO;
    // Go refuses the msgpack timestamp extension for time.Time, and so do we.
    throw typeFail(r, this, b);
  }
  zero(): GoTime {
    return GoTime.ZERO;
  }
  override isEmpty(): boolean {
    return false; // go-msgpack never treats a struct (time.Time) as empty
  }
}

// ---------------------------------------------------------------------------------------------
// containers

class ListSchema<O, I> extends Schema<O[], readonly I[] | null> {
  readonly kind = 'list';
  readonly goType: string;
  readonly element: Schema<O, I>;
  constructor(element: Schema<O, I>) {
    super();
    this.element = element;
    this.goType = `[]${element.goType}`;
  }
  write(w: ByteWriter, v: readonly I[] | null | undefined): void {
    if (Array.isArray(v)) {
      const arr = v as readonly I[];
      const n = arr.length;
      w.arrayHeader(n);
      const el = this.element;
      for (let i = 0; i < n; i++) {
        try {
          el.write(w, arr[i]);
        } catch (err) {
          throw locate(err, `[${i}]`);
        }
      }
    } else if (v === undefined || v === null) w.u8(0xc0);
    else throw encodeFail(this, v);
  }
  read(r: ByteReader, b: number, depth: number): O[] {
    const n = r.arrayLenAfter(b);
    if (n < 0) {
      if (b === 0xc0) return [];
      throw typeFail(r, this, b);
    }
    if (n > 0) r.enter(depth);
    const out = new Array<O>(n);
    const el = this.element;
    for (let i = 0; i < n; i++) {
      try {
        out[i] = el.read(r, r.byte(), depth + 1);
      } catch (err) {
        throw locate(err, `[${i}]`);
      }
    }
    return out;
  }
  zero(): O[] {
    return [];
  }
  override isEmpty(v: readonly I[] | null | undefined): boolean {
    return !v || v.length === 0;
  }
}

class MapSchema<O, I> extends Schema<Record<string, O>, Readonly<Record<string, I>> | ReadonlyMap<string, I> | null> {
  readonly kind = 'map';
  readonly goType: string;
  readonly value: Schema<O, I>;
  constructor(value: Schema<O, I>) {
    super();
    this.value = value;
    this.goType = `map[string]${value.goType}`;
  }
  write(w: ByteWriter, v: Readonly<Record<string, I>> | ReadonlyMap<string, I> | null | undefined): void {
    if (v === undefined || v === null) {
      w.u8(0xc0);
      return;
    }
    if (typeof v !== 'object' || Array.isArray(v) || v instanceof Uint8Array) throw encodeFail(this, v);
    // Go writes maps in random order; meshfed sorts keys so encodings are deterministic.
    const entries: [string, I][] = v instanceof Map ? [...(v as ReadonlyMap<string, I>)] : (Object.entries(v) as [string, I][]);
    entries.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    w.mapHeader(entries.length);
    const val = this.value;
    for (const [k, x] of entries) {
      if (typeof k !== 'string') throw encodeFail(this, v, 'map keys must be strings');
      w.string(k);
      try {
        val.write(w, x);
      } catch (err) {
        throw locate(err, `[${JSON.stringify(k)}]`);
      }
    }
  }
  read(r: ByteReader, b: number, depth: number): Record<string, O> {
    const n = r.mapLenAfter(b);
    const out: Record<string, O> = {};
    if (n < 0) {
      if (b === 0xc0) return out;
      throw typeFail(r, this, b);
    }
    if (n > 0) r.enter(depth);
    const val = this.value;
    for (let i = 0; i < n; i++) {
      const kb = r.byte();
      const kl = r.rawLenAfter(kb);
      if (kl < 0) throw r.fail(`expected a string map key in ${this.goType}, got ${describeByte(kb)}`);
      const key = r.utf8(kl);
      try {
        setOwn(out, key, val.read(r, r.byte(), depth + 1));
      } catch (err) {
        throw locate(err, `[${JSON.stringify(key)}]`);
      }
    }
    return out;
  }
  zero(): Record<string, O> {
    return {};
  }
  override isEmpty(v: Readonly<Record<string, I>> | ReadonlyMap<string, I> | null | undefined): boolean {
    if (!v) return true;
    return v instanceof Map ? v.size === 0 : Object.keys(v).length === 0;
  }
}

/** A struct field, in wire (sorted) order. */
interface FieldSlot {
  readonly name: string;
  readonly schema: AnySchema;
  /** The encoded key (raw header + UTF-8 name). */
  readonly key: Uint8Array;
  /** UTF-8 bytes of the name. */
  readonly nameBytes: Uint8Array;
  readonly omitEmpty: boolean;
}

/** Marks a field `omitempty` (see {@link t.omitEmpty}). */
class OmitEmptySchema<O, I> extends Schema<O, I> {
  readonly kind: SchemaKind;
  readonly goType: string;
  readonly inner: Schema<O, I>;
  constructor(inner: Schema<O, I>) {
    super();
    this.inner = inner;
    this.kind = inner.kind;
    this.goType = inner.goType;
  }
  write(w: ByteWriter, v: I | null | undefined): void {
    this.inner.write(w, v);
  }
  read(r: ByteReader, b: number, depth: number): O {
    return this.inner.read(r, b, depth);
  }
  zero(): O {
    return this.inner.zero();
  }
  override isEmpty(v: I | null | undefined): boolean {
    return this.inner.isEmpty(v);
  }
}

/** A Go struct: a map keyed by field name, keys sorted. */
export class StructSchema<F extends StructFields> extends Schema<StructOut<F>, StructIn<F>> {
  readonly kind = 'struct';
  readonly goType: string;
  /** The fields as declared (spread them into another struct to embed this one). */
  readonly fields: F;
  /** @internal Fields in wire order (sorted by name). */
  readonly slots: readonly FieldSlot[];
  /** @internal Fields in declaration order (for structs sent as arrays). */
  readonly declared: readonly FieldSlot[];
  readonly #byName: ReadonlyMap<string, number>;
  readonly #hasOmitEmpty: boolean;

  constructor(fields: F) {
    super();
    this.fields = fields;
    const declared: FieldSlot[] = [];
    for (const [name, schema] of Object.entries(fields)) {
      if (!(schema instanceof Schema)) throw msgpackError(MsgpackErrorCode.SCHEMA, `t.struct: field ${JSON.stringify(name)} is not a schema (use t.string, t.list(…), …)`);
      if (name === '') throw msgpackError(MsgpackErrorCode.SCHEMA, 't.struct: a field name cannot be empty');
      const nameBytes = Buffer.from(name, 'utf8');
      const hdr = nameBytes.length < 32 ? [0xa0 | nameBytes.length] : [0xda, nameBytes.length >> 8, nameBytes.length & 0xff];
      declared.push({
        name,
        schema,
        nameBytes: new Uint8Array(nameBytes),
        key: new Uint8Array([...hdr, ...nameBytes]),
        omitEmpty: schema instanceof OmitEmptySchema,
      });
    }
    this.declared = declared;
    this.slots = [...declared].sort((a, b) => compareUtf8(a.name, b.name));
    this.#byName = new Map(this.slots.map((s, i) => [s.name, i]));
    this.#hasOmitEmpty = declared.some((s) => s.omitEmpty);
    const names = this.slots.map((s) => s.name);
    this.goType = names.length <= 6 ? `struct{${names.join(', ')}}` : `struct{${names.slice(0, 6).join(', ')}, …}`;
  }

  write(w: ByteWriter, v: StructIn<F> | null | undefined): void {
    if (v !== undefined && v !== null && (typeof v !== 'object' || Array.isArray(v))) throw encodeFail(this, v);
    const obj = (v ?? {}) as Record<string, unknown>;
    const slots = this.slots;
    let n = slots.length;
    if (this.#hasOmitEmpty) {
      for (const s of slots) if (s.omitEmpty && s.schema.isEmpty(obj[s.name])) n--;
    }
    w.mapHeader(n);
    for (let i = 0; i < slots.length; i++) {
      const s = slots[i]!;
      const x = obj[s.name];
      if (s.omitEmpty && s.schema.isEmpty(x)) continue;
      w.bytes(s.key);
      try {
        s.schema.write(w, x);
      } catch (err) {
        throw locate(err, s.name);
      }
    }
  }

  read(r: ByteReader, b: number, depth: number): StructOut<F> {
    const slots = this.slots;
    const out: Record<string, unknown> = {};
    const n = r.mapLenAfter(b);
    if (n < 0) {
      if (b === 0xc0) return this.zero();
      const len = r.arrayLenAfter(b);
      if (len < 0) throw typeFail(r, this, b);
      return this.#readArray(r, len, depth);
    }
    if (n > 0) r.enter(depth);
    const buf = r.buf;
    let expect = 0;
    let seen = 0;
    for (let i = 0; i < n; i++) {
      const kb = r.byte();
      const kl = r.rawLenAfter(kb);
      if (kl < 0) throw r.fail(`expected a field name of ${this.goType}, got ${describeByte(kb)}`);
      const kp = r.pos;
      r.pos = kp + kl;
      // Go writes fields in sorted order, so the next slot almost always matches.
      let idx: number;
      const guess = slots[expect];
      if (guess !== undefined && bytesEqual(buf, kp, kl, guess.nameBytes)) idx = expect;
      else idx = this.#byName.get(buf.toString('utf8', kp, kp + kl)) ?? -1;
      const vb = r.byte();
      if (idx < 0) {
        r.skipAfter(vb, depth + 1);
        continue;
      }
      const s = slots[idx]!;
      expect = idx + 1;
      try {
        if (out[s.name] === undefined) seen++;
        out[s.name] = s.schema.read(r, vb, depth + 1);
      } catch (err) {
        throw locate(err, s.name);
      }
    }
    if (seen < slots.length) {
      for (const s of slots) if (out[s.name] === undefined) out[s.name] = s.schema.zero();
    }
    return out as StructOut<F>;
  }

  #readArray(r: ByteReader, len: number, depth: number): StructOut<F> {
    if (len > 0) r.enter(depth);
    const out: Record<string, unknown> = {};
    const decl = this.declared;
    for (let i = 0; i < len; i++) {
      const vb = r.byte();
      const s = decl[i];
      if (!s) {
        r.skipAfter(vb, depth + 1);
        continue;
      }
      try {
        out[s.name] = s.schema.read(r, vb, depth + 1);
      } catch (err) {
        throw locate(err, s.name);
      }
    }
    for (const s of decl) if (out[s.name] === undefined) out[s.name] = s.schema.zero();
    return out as StructOut<F>;
  }

  zero(): StructOut<F> {
    const out: Record<string, unknown> = {};
    for (const s of this.slots) out[s.name] = s.schema.zero();
    return out as StructOut<F>;
  }

  override isEmpty(): boolean {
    return false; // go-msgpack 0.5 never omits a struct value
  }
}

function bytesEqual(buf: Uint8Array, at: number, len: number, name: Uint8Array): boolean {
  if (name.length !== len) return false;
  for (let i = 0; i < len; i++) if (buf[at + i] !== name[i]) return false;
  return true;
}

/** A Go pointer (or any value that may be nil): `null` ↔ `c0`. */
class NullableSchema<O, I> extends Schema<O | null, I | null | undefined> {
  readonly kind = 'nullable';
  readonly goType: string;
  readonly inner: Schema<O, I>;
  constructor(inner: Schema<O, I>) {
    super();
    this.inner = inner;
    this.goType = `*${inner.goType}`;
  }
  write(w: ByteWriter, v: I | null | undefined): void {
    if (v === undefined || v === null) w.u8(0xc0);
    else this.inner.write(w, v);
  }
  read(r: ByteReader, b: number, depth: number): O | null {
    if (b === 0xc0) return null;
    return this.inner.read(r, b, depth);
  }
  zero(): null {
    return null;
  }
}

/**
 * `interface{}`: any msgpack value. Decodes nil → null, integers → number (bigint beyond 2^53),
 * raw/bin → Uint8Array (never a string: Go's default handle decodes raw to []byte), arrays,
 * maps → plain objects (keys as UTF-8 strings), extensions → {@link MsgpackExt}.
 * Encodes null/undefined, booleans, numbers (integers → int, others → float64), bigints,
 * strings, Uint8Arrays, GoTimes, arrays, Maps and plain objects (keys sorted).
 */
class AnyValueSchema extends Schema<unknown> {
  readonly kind = 'any';
  readonly goType = 'interface{}';
  write(w: ByteWriter, v: unknown): void {
    this.#write(w, v, 0);
  }
  #write(w: ByteWriter, v: unknown, depth: number): void {
    if (depth > 512) throw encodeFail(this, v, 'nested more than 512 levels (cyclic value?)');
    switch (typeof v) {
      case 'undefined':
        w.u8(0xc0);
        return;
      case 'boolean':
        w.bool(v);
        return;
      case 'string':
        w.string(v);
        return;
      case 'number':
        if (Number.isSafeInteger(v)) w.int(v);
        else w.float64(v);
        return;
      case 'bigint':
        if (v < -TWO_63 || v >= TWO_64) throw encodeFail(this, v, 'bigint outside the int64/uint64 range');
        w.bigint(v);
        return;
      case 'object': {
        if (v === null) {
          w.u8(0xc0);
          return;
        }
        if (v instanceof Uint8Array) {
          w.raw(v);
          return;
        }
        if (v instanceof GoTime) {
          w.raw(v.toBinary());
          return;
        }
        if (Array.isArray(v)) {
          w.arrayHeader(v.length);
          for (let i = 0; i < v.length; i++) {
            try {
              this.#write(w, v[i], depth + 1);
            } catch (err) {
              throw locate(err, `[${i}]`);
            }
          }
          return;
        }
        const entries: [unknown, unknown][] = v instanceof Map ? [...(v as Map<unknown, unknown>)] : Object.entries(v);
        for (const [k] of entries) if (typeof k !== 'string') throw encodeFail(this, v, 'map keys must be strings');
        (entries as [string, unknown][]).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
        w.mapHeader(entries.length);
        for (const [k, x] of entries as [string, unknown][]) {
          w.string(k);
          try {
            this.#write(w, x, depth + 1);
          } catch (err) {
            throw locate(err, `[${JSON.stringify(k)}]`);
          }
        }
        return;
      }
      default:
        throw encodeFail(this, v);
    }
  }
  read(r: ByteReader, b: number, depth: number): unknown {
    if (b <= 0x7f || b >= 0xe0) return r.intAfter(b);
    if (b === 0xc0) return null;
    if (b === 0xc2) return false;
    if (b === 0xc3) return true;
    if (b === 0xcb) return r.f64();
    if (b === 0xca) return r.f32();
    const x = r.intAfter(b);
    if (x !== undefined) return x;
    const raw = r.rawLenAfter(b);
    if (raw >= 0) return r.copyBytes(raw);
    let n = r.arrayLenAfter(b);
    if (n >= 0) {
      if (n > 0) r.enter(depth);
      const out = new Array<unknown>(n);
      for (let i = 0; i < n; i++) {
        try {
          out[i] = this.read(r, r.byte(), depth + 1);
        } catch (err) {
          throw locate(err, `[${i}]`);
        }
      }
      return out;
    }
    n = r.mapLenAfter(b);
    if (n >= 0) {
      if (n > 0) r.enter(depth);
      const out: Record<string, unknown> = {};
      for (let i = 0; i < n; i++) {
        const kb = r.byte();
        let key: string;
        const kl = r.rawLenAfter(kb);
        if (kl >= 0) key = r.utf8(kl);
        else {
          const ki = r.intAfter(kb);
          if (ki === undefined) throw r.fail(`map key must be a string or an integer, got ${describeByte(kb)}`);
          key = String(ki);
        }
        try {
          setOwn(out, key, this.read(r, r.byte(), depth + 1));
        } catch (err) {
          throw locate(err, `[${JSON.stringify(key)}]`);
        }
      }
      return out;
    }
    let len: number;
    switch (b) {
      case 0xd4: len = 1; break;
      case 0xd5: len = 2; break;
      case 0xd6: len = 4; break;
      case 0xd7: len = 8; break;
      case 0xd8: len = 16; break;
      case 0xc7: len = r.u8(); break;
      case 0xc8: len = r.u16(); break;
      case 0xc9: len = r.u32(); break;
      default: throw r.fail(`invalid descriptor byte 0x${b.toString(16)}`);
    }
    r.need(len + 1, 'an extension');
    const type = (r.buf[r.pos++]! << 24) >> 24;
    const ext: MsgpackExt = { type, data: r.copyBytes(len) };
    return ext;
  }
  zero(): null {
    return null;
  }
  override isEmpty(v: unknown): boolean {
    if (v === undefined || v === null || v === false || v === 0 || v === 0n || v === '') return true;
    if (Array.isArray(v) || v instanceof Uint8Array) return v.length === 0;
    return false;
  }
}

/** An already-encoded msgpack value, copied verbatim (decoding validates and copies its bytes). */
class EncodedSchema extends Schema<Uint8Array> {
  readonly kind = 'encoded';
  readonly goType = 'msgpack value';
  write(w: ByteWriter, v: Uint8Array | null | undefined): void {
    if (v instanceof Uint8Array && v.length > 0) w.bytes(v);
    else if (v === undefined || v === null) w.u8(0xc0);
    else throw encodeFail(this, v, 'expected the bytes of one msgpack value');
  }
  read(r: ByteReader, b: number, depth: number): Uint8Array {
    const start = r.pos - 1;
    r.skipAfter(b, depth);
    const out = new Uint8Array(r.pos - start);
    out.set(r.buf.subarray(start, r.pos));
    return out;
  }
  zero(): Uint8Array {
    return Uint8Array.of(0xc0);
  }
}

/** Add a path segment to a codec error travelling up; other errors pass through unchanged. */
function locate(err: unknown, segment: string): unknown {
  if (err instanceof LocatedMsgpackError) return err.within(segment);
  return err;
}

// ---------------------------------------------------------------------------------------------
// the DSL

/** Type a schema instance as its public `Schema` type (the implementation classes stay private). */
function widen<O, I = O>(schema: Schema<O, I>): Schema<O, I> {
  return schema;
}

/** The schema DSL. Each member describes one Go type; see the module comment. */
export const t = Object.freeze({
  /** Go `string`: a JS string (UTF-8 on the wire, raw family; invalid UTF-8 decodes to U+FFFD). */
  string: widen<string>(new StringSchema()),
  /** Go `[]byte`: a Uint8Array, never UTF-8-decoded. Unset/null input encodes nil (`c0`); nil decodes to an empty array. */
  bytes: widen<Uint8Array, Uint8Array | null>(new BytesSchema()),
  /** Go `bool`. */
  bool: widen<boolean>(new BoolSchema()),
  /** Go `int`/`int64` as a JS number: decoding refuses values beyond ±2^53-1 (use `t.int64`). */
  int: widen<number>(new IntSchema('int', Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER)),
  /** Go `int8`. */
  int8: widen<number>(new IntSchema('int8', -128, 127)),
  /** Go `int16`. */
  int16: widen<number>(new IntSchema('int16', -32768, 32767)),
  /** Go `int32`. */
  int32: widen<number>(new IntSchema('int32', -2147483648, 2147483647)),
  /** Go `int64` exactly: a number when |v| ≤ 2^53-1, else a bigint. */
  int64: widen<number | bigint>(new Int64Schema(false)),
  /** Go `uint`/`uint64` as a JS number: decoding refuses values beyond 2^53-1 (use `t.uint64`). */
  uint: widen<number>(new IntSchema('uint', 0, Number.MAX_SAFE_INTEGER)),
  /** Go `uint8` (a single byte value; `[]uint8` is `t.bytes`). */
  uint8: widen<number>(new IntSchema('uint8', 0, 255)),
  /** Go `uint16`. */
  uint16: widen<number>(new IntSchema('uint16', 0, 65535)),
  /** Go `uint32`. */
  uint32: widen<number>(new IntSchema('uint32', 0, 4294967295)),
  /** Go `uint64` exactly (raft indexes): a number when ≤ 2^53-1, else a bigint. */
  uint64: widen<number | bigint>(new Int64Schema(true)),
  /** Go `float64` (`cb`). Decodes float32 and integers too. */
  float64: widen<number>(new FloatSchema(64)),
  /** Go `float32` (`ca`). */
  float32: widen<number>(new FloatSchema(32)),
  /** Go `time.Time`: a {@link GoTime} (15-byte MarshalBinary raw; unset = zero time). */
  time: widen<GoTime>(new TimeSchema()),
  /** Go `time.Duration`: int64 nanoseconds as a number. */
  duration: widen<number>(new DurationSchema()),
  /** Go `interface{}`: any value (raw bytes stay Uint8Array). */
  any: widen<unknown>(new AnyValueSchema()),
  /** An already-encoded msgpack value passed through as bytes (e.g. a body to forward). */
  encoded: widen<Uint8Array>(new EncodedSchema()),
  /** Go `[]T`: a JS array. Unset/null input encodes nil (`c0`); `[]` encodes `90`; nil decodes to `[]`. */
  list<O, I>(element: Schema<O, I>): Schema<O[], readonly I[] | null> {
    return new ListSchema(element);
  },
  /** Go `map[string]T`: a plain object (or a Map on input); keys are written sorted. */
  map<O, I>(value: Schema<O, I>): Schema<Record<string, O>, Readonly<Record<string, I>> | ReadonlyMap<string, I> | null> {
    return new MapSchema(value);
  },
  /** A Go struct; field names are the wire keys (Go names, or the `codec:"…"` tag). */
  struct<F extends StructFields>(fields: F): StructSchema<F> {
    return new StructSchema(fields);
  },
  /** A Go pointer `*T` (or a slice/map/[]byte whose nil-ness matters): `null` ↔ nil (`c0`). */
  nullable<O, I>(inner: Schema<O, I>): Schema<O | null, I | null | undefined> {
    return new NullableSchema(inner);
  },
  /** Alias of {@link t.nullable}. */
  optional<O, I>(inner: Schema<O, I>): Schema<O | null, I | null | undefined> {
    return new NullableSchema(inner);
  },
  /** A struct field tagged `codec:",omitempty"`: left out of the map when Go's isEmptyValue holds. */
  omitEmpty<O, I>(inner: Schema<O, I>): Schema<O, I> {
    return new OmitEmptySchema(inner);
  },
});

/** Whether a value is a schema made by {@link t}. */
export function isSchema(x: unknown): x is AnySchema {
  return x instanceof Schema;
}
