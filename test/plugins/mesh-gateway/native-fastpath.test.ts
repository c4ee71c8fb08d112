/**
 * The native engine's fast path (native/fastpath.h) against the TypeScript it mirrors: its
 * ClientHello parser must give the verdict parseClientHello gives (mapped to incomplete / hello
 * with the server name / defer) for any input, and its route table (encoded by encodeFastRoutes)
 * must send a server name to the cluster SniProxy#route would connect to, when that cluster is one
 * the engine may take (else null: JavaScript decides).
 *
 * The addon is dist/src/plugins/mesh-gateway/native/relay.node (its test-only exports parseHello
 * and routeLookup), or the one named by MESHFED_FASTPATH_ADDON. Without it the tests fail, unless
 * MESHFED_NO_NATIVE=1 (no C compiler) skips them. MESHFED_FUZZ_SEED changes the fuzz seed.
 */
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { isIP } from 'node:net';
import { before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DEFAULT_MAX_CLIENT_HELLO_BYTES, parseClientHello } from '../../../src/plugins/mesh-gateway/client-hello.js';
import { encodeFastRoutes, FAST_TARGET_ASK, FAST_TARGET_NONE, FAST_TARGET_SNI_CLUSTER } from '../../../src/plugins/mesh-gateway/native/fast-routes.js';
import { matchChain, type RouteChain, type RouteCluster, type RouteEndpoint, type RoutingTable } from '../../../src/plugins/mesh-gateway/routing.js';
import { captureClientHello } from './helpers.js';

// ---------------------------------------------------------------------------------------------
// The addon
// ---------------------------------------------------------------------------------------------

type NativeVerdict = { kind: 'incomplete' } | { kind: 'hello'; sni: string } | { kind: 'defer' };

interface FastPathAddon {
  parseHello(buf: Uint8Array, maxHello: number): NativeVerdict;
  routeLookup(table: Uint8Array, sni: string): string | null;
}

const ADDON_PATH = process.env['MESHFED_FASTPATH_ADDON'] ?? fileURLToPath(new URL('../../../src/plugins/mesh-gateway/native/relay.node', import.meta.url));
const SKIP = process.env['MESHFED_NO_NATIVE'] === '1';

function loadAddon(): { addon: FastPathAddon | undefined; why: string } {
  try {
    const mod = createRequire(import.meta.url)(ADDON_PATH) as Partial<FastPathAddon>;
    if (typeof mod.parseHello !== 'function' || typeof mod.routeLookup !== 'function') {
      return { addon: undefined, why: `${ADDON_PATH} does not export parseHello and routeLookup (fp_register is not called)` };
    }
    return { addon: mod as FastPathAddon, why: '' };
  } catch (err) {
    return { addon: undefined, why: `${ADDON_PATH} did not load: ${err instanceof Error ? err.message : String(err)}` };
  }
}

const loaded = SKIP ? { addon: undefined, why: 'MESHFED_NO_NATIVE=1' } : loadAddon();

/** The addon; fails the calling test when it is missing. */
function native(): FastPathAddon {
  if (!loaded.addon) assert.fail(loaded.why);
  return loaded.addon;
}

// ---------------------------------------------------------------------------------------------
// Seeded randomness
// ---------------------------------------------------------------------------------------------

const SEED = Number(process.env['MESHFED_FUZZ_SEED'] ?? 0x5eed_f00d) >>> 0;

class Rng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0;
  }
  /** mulberry32: a float in [0, 1). */
  next(): number {
    this.#s = (this.#s + 0x6d2b79f5) >>> 0;
    let t = this.#s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  }
  /** An integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    const v = items[Math.floor(this.next() * items.length)];
    if (v === undefined) throw new Error('pick from an empty list');
    return v;
  }
  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.int(0, 255);
    return b;
  }
}

// ---------------------------------------------------------------------------------------------
// ClientHello building
// ---------------------------------------------------------------------------------------------

interface Extension {
  type: number;
  data: Buffer;
}

/** A ClientHello as fields, rebuilt into bytes by {@link buildHandshake}. */
interface HelloModel {
  version: number;
  random: Buffer;
  sessionId: Buffer;
  ciphers: Buffer;
  compression: Buffer;
  /** `undefined`: no extensions block at all. */
  extensions: Extension[] | undefined;
}

/** A handshake message and where its length fields are (offset, width in bytes). */
interface Built {
  msg: Buffer;
  lengths: Array<[number, 1 | 2 | 3]>;
}

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n & 0xffff);
  return b;
}

function buildHandshake(m: HelloModel): Built {
  const parts: Buffer[] = [];
  const lengths: Array<[number, 1 | 2 | 3]> = [[1, 3]];
  let at = 4;
  const push = (b: Buffer, lengthWidth?: 1 | 2 | 3): void => {
    if (lengthWidth) lengths.push([at, lengthWidth]);
    parts.push(b);
    at += b.length;
  };
  push(u16(m.version));
  push(m.random);
  push(Buffer.from([m.sessionId.length & 0xff]), 1);
  push(m.sessionId);
  push(u16(m.ciphers.length), 2);
  push(m.ciphers);
  push(Buffer.from([m.compression.length & 0xff]), 1);
  push(m.compression);
  if (m.extensions) {
    const total = m.extensions.reduce((n, e) => n + 4 + e.data.length, 0);
    push(u16(total), 2);
    for (const e of m.extensions) {
      push(u16(e.type));
      push(u16(e.data.length), 2);
      push(e.data);
    }
  }
  const body = Buffer.concat(parts);
  const hdr = Buffer.from([1, (body.length >>> 16) & 0xff, (body.length >>> 8) & 0xff, body.length & 0xff]);
  return { msg: Buffer.concat([hdr, body]), lengths };
}

/** Records carrying `msg`, `sizes` bytes each (the last size repeats; at most 65535, the largest record length). */
function frame(msg: Buffer, sizes: readonly number[], version = 0x0301): Buffer {
  const out: Buffer[] = [];
  let i = 0;
  let k = 0;
  while (i < msg.length) {
    const size = Math.min(0xffff, Math.max(1, sizes[Math.min(k, sizes.length - 1)] ?? msg.length));
    const frag = msg.subarray(i, Math.min(msg.length, i + size));
    const hdr = Buffer.from([22, version >> 8, version & 0xff, 0, 0]);
    hdr.writeUInt16BE(frag.length, 3);
    out.push(hdr, frag);
    i += frag.length;
    k++;
  }
  return Buffer.concat(out);
}

/** The model of a single-record ClientHello (as node:tls sends). */
function parseModel(record: Buffer): HelloModel {
  const msg = record.subarray(5, 5 + record.readUInt16BE(3));
  let p = 4;
  const version = msg.readUInt16BE(p);
  p += 2;
  const random = Buffer.from(msg.subarray(p, p + 32));
  p += 32;
  const sessionId = Buffer.from(msg.subarray(p + 1, p + 1 + msg[p]!));
  p += 1 + sessionId.length;
  const ciphers = Buffer.from(msg.subarray(p + 2, p + 2 + msg.readUInt16BE(p)));
  p += 2 + ciphers.length;
  const compression = Buffer.from(msg.subarray(p + 1, p + 1 + msg[p]!));
  p += 1 + compression.length;
  if (p === msg.length) return { version, random, sessionId, ciphers, compression, extensions: undefined };
  const end = p + 2 + msg.readUInt16BE(p);
  p += 2;
  const extensions: Extension[] = [];
  while (p < end) {
    const type = msg.readUInt16BE(p);
    const len = msg.readUInt16BE(p + 2);
    extensions.push({ type, data: Buffer.from(msg.subarray(p + 4, p + 4 + len)) });
    p += 4 + len;
  }
  return { version, random, sessionId, ciphers, compression, extensions };
}

function cloneModel(m: HelloModel): HelloModel {
  return { ...m, extensions: m.extensions?.map((e) => ({ type: e.type, data: Buffer.from(e.data) })) };
}

/** server_name extension data from (name type, name bytes) entries. */
function sniData(entries: ReadonlyArray<readonly [number, Buffer]>): Buffer {
  const list = Buffer.concat(entries.map(([type, name]) => Buffer.concat([Buffer.from([type]), u16(name.length), name])));
  return Buffer.concat([u16(list.length), list]);
}

function alpnData(protocols: readonly Buffer[]): Buffer {
  const list = Buffer.concat(protocols.map((p) => Buffer.concat([Buffer.from([p.length & 0xff]), p])));
  return Buffer.concat([u16(list.length), list]);
}

/** A minimal well-formed ClientHello model. */
function syntheticModel(extensions: Extension[] | undefined): HelloModel {
  return {
    version: 0x0303,
    random: Buffer.alloc(32, 7),
    sessionId: Buffer.alloc(32, 1),
    ciphers: Buffer.from([0x13, 0x01, 0x13, 0x02, 0xc0, 0x2f]),
    compression: Buffer.from([0]),
    extensions,
  };
}

function withSniModel(name: string | Buffer, extra: Extension[] = []): HelloModel {
  return syntheticModel([{ type: 0, data: sniData([[0, Buffer.isBuffer(name) ? name : Buffer.from(name, 'latin1')]]) }, ...extra]);
}

function helloBytes(m: HelloModel, sizes: readonly number[] = [16_384]): Buffer {
  return frame(buildHandshake(m).msg, sizes);
}

// ---------------------------------------------------------------------------------------------
// Verdicts
// ---------------------------------------------------------------------------------------------

/** parseClientHello's verdict as the engine must report it. */
function tsVerdict(buf: Buffer, maxHello: number): string {
  const v = parseClientHello(buf, { maxHelloBytes: maxHello });
  if (v.kind === 'incomplete') return 'incomplete';
  if (v.kind === 'hello' && v.hello.serverName !== undefined && v.hello.serverName.length <= 255) return `hello:${v.hello.serverName}`;
  return 'defer';
}

function cVerdict(buf: Buffer, maxHello: number): string {
  const v = native().parseHello(buf, maxHello);
  return v.kind === 'hello' ? `hello:${v.sni}` : v.kind;
}

function tsDetail(buf: Buffer, maxHello: number): string {
  const v = parseClientHello(buf, { maxHelloBytes: maxHello });
  return v.kind === 'hello' || v.kind === 'incomplete' ? v.kind : `${v.kind}: ${v.detail}`;
}

/** Compares verdicts, remembering the first few mismatches. */
class Comparer {
  readonly counts = new Map<string, number>();
  readonly mismatches: string[] = [];
  /** Distinct server names of the hellos seen. */
  readonly names = new Set<string>();
  cases = 0;

  check(buf: Buffer, maxHello: number, label: string): string {
    const want = tsVerdict(buf, maxHello);
    const got = cVerdict(buf, maxHello);
    this.cases++;
    const kind = want.startsWith('hello:') ? 'hello' : want;
    if (kind === 'hello') this.names.add(want);
    this.counts.set(kind, (this.counts.get(kind) ?? 0) + 1);
    if (want !== got && this.mismatches.length < 8) {
      const hex = buf.length > 600 ? `${buf.subarray(0, 600).toString('hex')}… (${buf.length} bytes)` : buf.toString('hex');
      this.mismatches.push(`${label} maxHello=${maxHello}: TS ${want} (${tsDetail(buf, maxHello)}), C ${got}; input ${hex}`);
    }
    return want;
  }

  done(): void {
    assert.deepEqual(this.mismatches, [], `C and TS disagree (seed ${SEED})`);
  }

  count(kind: string): number {
    return this.counts.get(kind) ?? 0;
  }
}

const MAX_VARIANTS = [DEFAULT_MAX_CLIENT_HELLO_BYTES, 65_536];

describe('native fast path', { skip: SKIP ? 'MESHFED_NO_NATIVE=1' : false }, () => {
  test('the addon exports parseHello and routeLookup', () => {
    const addon = native();
    assert.equal(typeof addon.parseHello, 'function');
    assert.equal(typeof addon.routeLookup, 'function');
  });

  describe('ClientHello parser = parseClientHello', () => {
    let captured: Buffer[] = [];
    before(async () => {
      captured = await Promise.all([
        captureClientHello({ servername: 'Bob.Server.dc1.consul' }),
        captureClientHello(),
        captureClientHello({ servername: 'node1.server.dc1.consul', alpn: ['consul/rpc-multi', 'h2'] }),
        captureClientHello({ servername: 'API.EXAMPLE.COM', alpn: ['h2', 'http/1.1'] }),
      ]);
    });

    test('real node:tls ClientHellos (SNI, none, ALPN, upper case)', () => {
      const cmp = new Comparer();
      const want = ['hello:bob.server.dc1.consul', 'defer', 'hello:node1.server.dc1.consul', 'hello:api.example.com'];
      captured.forEach((h, i) => {
        for (const max of [...MAX_VARIANTS, h.length - 5, h.length - 6, 100]) cmp.check(h, max, `captured ${i}`);
        assert.equal(cVerdict(h, DEFAULT_MAX_CLIENT_HELLO_BYTES), want[i]);
      });
      // The handshake message is record length bytes: a limit one below refuses it (too-large).
      const h0 = captured[0]!;
      assert.equal(cVerdict(h0, h0.length - 5), 'hello:bob.server.dc1.consul');
      assert.equal(cVerdict(h0, h0.length - 6), 'defer');
      cmp.done();
    });

    test('every prefix is incomplete (single record and split into records)', () => {
      const cmp = new Comparer();
      for (const h of captured) {
        const len = h.readUInt16BE(3);
        for (const input of [h, frame(h.subarray(5), [Math.ceil(len / 3)]), frame(h.subarray(5), [2, 3, 100])]) {
          for (let cut = 0; cut < input.length; cut++) {
            for (const max of MAX_VARIANTS) assert.equal(cmp.check(input.subarray(0, cut), max, `prefix ${cut}`), 'incomplete');
          }
        }
      }
      cmp.done();
    });

    test('multi-record hellos: every split size', () => {
      const cmp = new Comparer();
      for (const h of captured) {
        const msg = h.subarray(5);
        for (let size = 1; size <= msg.length; size++) {
          const input = frame(msg, [size], size % 2 ? 0x0301 : 0x0303);
          for (const max of MAX_VARIANTS) cmp.check(input, max, `split ${size}`);
        }
        // Uneven splits, the handshake header itself split.
        for (const sizes of [[1, 1, 1, 1, 1000], [3, 2000], [4, 1, 5000], [msg.length - 1, 1]]) cmp.check(frame(msg, sizes), DEFAULT_MAX_CLIENT_HELLO_BYTES, `split ${sizes.join(',')}`);
      }
      assert.ok(cmp.count('hello') > 1000, `multi-record hellos parsed: ${cmp.count('hello')}`);
      assert.ok(cmp.count('defer') > 50, 'more than 32 records are refused');
      cmp.done();
    });

    test('server names at the edges: 255/256 bytes, printable ASCII, two host_names, other name types', () => {
      const cmp = new Comparer();
      const long255 = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'D'.repeat(63)}`;
      assert.equal(long255.length, 255);
      const cases: Array<[HelloModel, string]> = [
        [withSniModel(long255), `hello:${long255.toLowerCase()}`],
        [withSniModel(`${long255}x`), 'defer'],
        [withSniModel('!~AZaz09'), 'hello:!~azaz09'],
        [withSniModel('a b'), 'defer'],
        [withSniModel(Buffer.from([0x61, 0x7f])), 'defer'],
        [withSniModel(Buffer.from([0x61, 0x80])), 'defer'],
        [withSniModel(''), 'defer'],
        [syntheticModel([{ type: 0, data: sniData([[0, Buffer.from('a')], [0, Buffer.from('b')]]) }]), 'defer'],
        [syntheticModel([{ type: 0, data: sniData([[1, Buffer.from('other')], [0, Buffer.from('X.y')], [7, Buffer.alloc(0)]]) }]), 'hello:x.y'],
        [syntheticModel([{ type: 0, data: sniData([[1, Buffer.from('other')]]) }]), 'defer'],
        [syntheticModel([{ type: 0, data: Buffer.alloc(0) }]), 'defer'],
        [syntheticModel([{ type: 0, data: Buffer.from([0, 0]) }]), 'defer'],
        [syntheticModel(undefined), 'defer'],
        [syntheticModel([]), 'defer'],
        [withSniModel('x.y', [{ type: 16, data: alpnData([Buffer.from('h2')]) }]), 'hello:x.y'],
        [withSniModel('x.y', [{ type: 16, data: alpnData([Buffer.from('h2'), Buffer.alloc(0)]) }]), 'defer'],
        [withSniModel('x.y', [{ type: 16, data: Buffer.from([0, 0]) }]), 'defer'],
        [withSniModel('x.y', [{ type: 16, data: Buffer.alloc(0) }]), 'defer'],
        [withSniModel('x.y', [{ type: 16, data: Buffer.from([0, 3, 3, 0x61, 0x62]) }]), 'defer'],
        [withSniModel('x.y', [{ type: 99, data: Buffer.alloc(0) }, { type: 99, data: Buffer.alloc(0) }]), 'defer'],
      ];
      cases.forEach(([m, want], i) => {
        const input = helloBytes(m);
        for (const max of MAX_VARIANTS) assert.equal(cmp.check(input, max, `edge ${i}`), want, `edge case ${i}`);
      });
      cmp.done();
    });

    test('many extensions (duplicate detection past the first 64), large multi-record hellos', () => {
      const cmp = new Comparer();
      const many = (dupAt: number | undefined, n: number): HelloModel => {
        const ext: Extension[] = [];
        for (let i = 0; i < n; i++) ext.push({ type: 1000 + i * 7, data: Buffer.from([i & 0xff]) });
        if (dupAt !== undefined) ext.splice(dupAt, 0, { type: 1000 + 7 * (dupAt >> 1), data: Buffer.alloc(0) });
        return withSniModel('many.example', ext);
      };
      for (const n of [10, 63, 64, 65, 200, 3000]) {
        assert.equal(cmp.check(helloBytes(many(undefined, n), [16_384]), 65_536, `many ${n}`), 'hello:many.example');
        for (const dupAt of [1, 30, 62, 63, 64, 65, 120, 2999]) {
          if (dupAt > n) continue;
          assert.equal(cmp.check(helloBytes(many(dupAt, n), [16_384]), 65_536, `many ${n} dup ${dupAt}`), 'defer');
        }
      }
      // Hellos of about 16 KiB and 60 KiB over several records (the engine gathers them; the larger on the heap).
      for (const pad of [16_000, 16_380, 16_384, 16_390, 40_000, 60_000]) {
        const m = withSniModel('big.example', [{ type: 21, data: Buffer.alloc(pad) }]);
        for (const sizes of [[16_384], [5000], [100, 16_384], [1, 16_384]]) {
          const input = helloBytes(m, sizes);
          for (const max of [...MAX_VARIANTS, 200_000]) cmp.check(input, max, `pad ${pad} sizes ${sizes.join(',')}`);
        }
      }
      assert.ok(cmp.count('hello') >= 20);
      cmp.done();
    });

    test('maxHello values (NaN, fractions, 0, negative, huge) behave as in TypeScript', () => {
      const cmp = new Comparer();
      const h = captured[2]!;
      const len = h.readUInt16BE(3);
      for (const max of [Number.NaN, len - 0.5, len + 0.5, len - 1.5, 0, -1, -Infinity, Infinity, 2 ** 53, 2 ** 64, 42, 41]) cmp.check(h, max, 'max');
      cmp.done();
    });

    test(`seeded mutation fuzz (seed ${SEED})`, () => {
      const rng = new Rng(SEED);
      const cmp = new Comparer();
      const corpus = [
        ...captured.map(parseModel),
        withSniModel('a.b.c', [{ type: 16, data: alpnData([Buffer.from('h2')]) }, { type: 43, data: Buffer.from([2, 3, 4]) }]),
        withSniModel('x'),
        syntheticModel([{ type: 16, data: alpnData([Buffer.from('http/1.1')]) }]),
        syntheticModel(undefined),
      ];
      const nameChars = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_*!~';
      const randomName = (): Buffer => {
        const len = rng.chance(0.05) ? rng.pick([0, 254, 255, 256, 300]) : rng.int(1, 40);
        const b = Buffer.alloc(len);
        for (let i = 0; i < len; i++) b[i] = rng.chance(0.01) ? rng.pick([0, 0x20, 0x7f, 0x80, 0xff]) : nameChars.charCodeAt(rng.int(0, nameChars.length - 1));
        return b;
      };
      const randomExtension = (m: HelloModel): Extension => {
        const r = rng.next();
        if (r < 0.25) {
          const entries: Array<[number, Buffer]> = [[0, randomName()]];
          if (rng.chance(0.2)) entries.push([rng.pick([0, 1, 2]), randomName()]);
          if (rng.chance(0.1)) entries.unshift([rng.int(1, 255), rng.bytes(rng.int(0, 5))]);
          return { type: 0, data: sniData(entries) };
        }
        if (r < 0.45) {
          const protos: Buffer[] = [];
          for (let i = rng.int(0, 3); i > 0; i--) protos.push(rng.chance(0.05) ? Buffer.alloc(0) : Buffer.from(rng.pick(['h2', 'http/1.1', 'consul/rpc-multi', 'x'])));
          return { type: 16, data: alpnData(protos) };
        }
        if (r < 0.7 && m.extensions && m.extensions.length > 0) {
          const e = rng.pick(m.extensions);
          return { type: e.type, data: Buffer.from(e.data) };
        }
        return { type: rng.chance(0.5) ? rng.int(0, 60) : rng.int(0, 0xffff), data: rng.bytes(rng.pick([0, 0, 1, 2, 3, 8, 40])) };
      };
      const mutateModel = (m: HelloModel): void => {
        const r = rng.next();
        if (r < 0.35) {
          m.extensions ??= [];
          m.extensions.splice(rng.int(0, m.extensions.length), 0, randomExtension(m));
        } else if (r < 0.45) {
          if (m.extensions && m.extensions.length > 0) m.extensions.splice(rng.int(0, m.extensions.length - 1), 1);
        } else if (r < 0.6) {
          const sni = { type: 0, data: sniData([[0, randomName()]]) };
          m.extensions = (m.extensions ?? []).filter((e) => e.type !== 0);
          m.extensions.splice(rng.int(0, m.extensions.length), 0, sni);
        } else if (r < 0.68) m.sessionId = rng.bytes(rng.pick([0, 1, 31, 32, 33, 40]));
        else if (r < 0.76) m.ciphers = rng.bytes(rng.pick([0, 1, 2, 3, 4, 5, 64]));
        else if (r < 0.84) m.compression = rng.bytes(rng.pick([0, 1, 2]));
        else if (r < 0.9) m.extensions = rng.chance(0.5) ? undefined : [];
        else if (r < 0.95 && m.extensions && m.extensions.length > 0) {
          const e = rng.pick(m.extensions);
          if (e.data.length > 0) e.data[rng.int(0, e.data.length - 1)] = rng.int(0, 255);
        } else m.extensions?.push({ type: 21, data: Buffer.alloc(rng.pick([100, 1000, 16_000, 17_000, 40_000])) });
      };
      const editLength = (buf: Buffer, at: number, width: 1 | 2 | 3): void => {
        if (at + width > buf.length) return;
        const old = width === 1 ? buf[at]! : width === 2 ? buf.readUInt16BE(at) : buf.readUIntBE(at, 3);
        const max = 2 ** (8 * width) - 1;
        const r = rng.next();
        let v: number;
        if (r < 0.6) v = old + rng.pick([-2, -1, 1, 2]);
        else if (r < 0.75) v = rng.pick([0, max, 38, 16_384, 16_385]);
        else v = rng.int(0, max);
        v = ((v % (max + 1)) + max + 1) % (max + 1);
        buf.writeUIntBE(v, at, width);
      };
      const makeCase = (): Buffer => {
        if (rng.chance(0.08)) {
          const b = rng.bytes(rng.int(0, 600));
          if (b.length > 0 && rng.chance(0.6)) b[0] = 22;
          if (b.length > 1 && rng.chance(0.6)) b[1] = 3;
          if (b.length > 2 && rng.chance(0.6)) b[2] = rng.int(0, 5);
          if (b.length > 5 && rng.chance(0.5)) b[5] = 1;
          return b;
        }
        const m = cloneModel(rng.pick(corpus));
        for (let k = rng.chance(0.3) ? 0 : rng.int(1, 3); k > 0; k--) mutateModel(m);
        const built = buildHandshake(m);
        const msg = built.msg;
        for (let k = rng.chance(0.3) ? rng.int(1, 3) : 0; k > 0; k--) {
          const r = rng.next();
          if (r < 0.5) {
            const [at, width] = rng.pick(built.lengths);
            editLength(msg, at, width);
          } else if (r < 0.8) msg[rng.int(0, msg.length - 1)] = rng.int(0, 255);
          else msg[rng.int(0, msg.length - 1)]! ^= 1 << rng.int(0, 7);
        }
        let input: Buffer;
        const f = rng.next();
        if (f < 0.6) input = frame(msg, [16_384], rng.pick([0x0301, 0x0303, 0x0300, 0x0304]));
        else if (f < 0.9) {
          const sizes: number[] = [];
          for (let k = rng.int(1, 6); k > 0; k--) sizes.push(rng.pick([1, 2, 3, 4, 5, rng.int(1, 64), rng.int(1, msg.length), 16_384]));
          input = frame(msg, sizes);
        } else {
          // Records with odd headers: a zero-length record, another content type, version 2.x or 3.5.
          const records = frame(msg, [rng.int(1, Math.max(1, msg.length))]);
          const at = rng.chance(0.5) ? 0 : 5 + rng.int(0, Math.max(0, msg.length - 1));
          const odd = Buffer.from([rng.pick([22, 21, 23, 0]), rng.pick([3, 2]), rng.int(0, 5), 0, rng.pick([0, 0, 1])]);
          input = Buffer.concat([records.subarray(0, at), odd, odd[4] === 1 ? Buffer.from([1]) : Buffer.alloc(0), records.subarray(at)]);
        }
        if (rng.chance(0.1)) {
          // Record-level edits: a record length, the record type or version bytes.
          const r = rng.next();
          if (r < 0.6) editLength(input, 3, 2);
          else input[rng.pick([0, 1, 2])] = rng.pick([22, 3, 1, 4, 5, 0, 255]);
        }
        if (rng.chance(0.05)) {
          // Data after the ClientHello in its last record: grow the (single) record.
          if (input.readUInt16BE(3) === input.length - 5 && input.length < 16_000) {
            const extra = rng.bytes(rng.int(1, 10));
            input = Buffer.concat([input, extra]);
            input.writeUInt16BE(input.length - 5, 3);
          }
        }
        if (rng.chance(0.1)) input = Buffer.concat([input, rng.bytes(rng.int(1, 20))]);
        if (rng.chance(0.12)) input = input.subarray(0, rng.int(0, input.length));
        return input;
      };
      const FUZZ_CASES = 25_000;
      for (let i = 0; i < FUZZ_CASES; i++) {
        const input = makeCase();
        const hsLen = input.length >= 9 ? input.readUIntBE(6, 3) + 4 : 64;
        for (const max of [rng.int(Math.max(0, hsLen - 3), hsLen + 3), ...MAX_VARIANTS]) cmp.check(input, max, `case ${i}`);
      }
      const summary = [...cmp.counts].map(([k, n]) => `${k} ${n}`).join(', ');
      // Each outcome must be well represented, or the fuzz proves little.
      assert.ok(cmp.count('hello') > cmp.cases * 0.1, summary);
      assert.ok(cmp.names.size > 1000, `${cmp.names.size} distinct server names parsed`);
      assert.ok(cmp.count('defer') > cmp.cases * 0.15, summary);
      assert.ok(cmp.count('incomplete') > cmp.cases * 0.02, summary);
      cmp.done();
    });
  });

  // -------------------------------------------------------------------------------------------
  // Routes
  // -------------------------------------------------------------------------------------------

  describe('fast route table = matchChain + SniProxy#route', () => {
    /** Whether the engine's parser can return `sni` (routeLookup answers null for anything else). */
    const helloName = (sni: string): boolean => /^[\x21-\x40\x5b-\x7e]{1,255}$/.test(sni);
    const wellFormed = (s: string): boolean => !/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(s);
    const fastCluster = (c: RouteCluster): boolean =>
      !c.unsupported && c.endpoints.length > 0 && c.endpoints.every((e) => isIP(e.host) !== 0 && !e.host.includes('%') && Number.isInteger(e.port) && e.port >= 1 && e.port <= 65_535);

    /** The cluster SniProxy#route would connect `sni` to, when the engine may do it itself; else null. */
    const expected = (table: RoutingTable, sni: string): string | null => {
      if (!helloName(sni)) return null;
      const chain = matchChain(table, sni);
      if (!chain || chain.unsupported) return null;
      const name = chain.cluster ?? sni;
      const cluster = table.clusters.get(name);
      if (!cluster || !fastCluster(cluster) || !wellFormed(name)) return null;
      return name;
    };

    const chain = (cluster: string | undefined, unsupported?: string): RouteChain => ({ index: 0, statPrefix: 'x', cluster, unsupported });
    const cluster = (name: string, endpoints: RouteEndpoint[], unsupported?: string): RouteCluster => ({ name, type: 'STATIC', connectTimeoutMs: 1000, endpoints, dnsFamily: 4, unsupported });
    const table = (t: Partial<RoutingTable>): RoutingTable => ({ listener: 'l', exact: new Map(), wildcard: new Map(), catchAll: undefined, clusters: new Map(), ...t });
    const lookup = (t: RoutingTable, sni: string): string | null => native().routeLookup(encodeFastRoutes(t, () => 0), sni);

    test('exact, wildcard (longest first, at least one label), catch-all, sni_cluster', () => {
      const ep = [{ host: '10.0.0.1', port: 8443 }];
      const t = table({
        exact: new Map([['node1.server.dc1.consul', chain('node1')]]),
        wildcard: new Map([
          ['.consul', chain('short')],
          ['.dc2.consul', chain('long')],
        ]),
        catchAll: chain(undefined),
        clusters: new Map([
          ['node1', cluster('node1', ep)],
          ['short', cluster('short', ep)],
          ['long', cluster('long', [{ host: '::1', port: 1 }])],
          ['server.dc9', cluster('server.dc9', ep)],
          ['dns', cluster('dns', [{ host: 'example.com', port: 1 }])],
        ]),
      });
      const cases: Array<[string, string | null]> = [
        ['node1.server.dc1.consul', 'node1'],
        ['x.dc2.consul', 'long'],
        ['a.b.dc2.consul', 'long'],
        ['x.dc3.consul', 'short'],
        ['dc2.consul', 'short'],
        ['consul', null], // catch-all sni_cluster: no cluster "consul"
        ['.consul', null], // a leading dot: no wildcard lookup at all
        ['x.consul.', null], // trailing dot: the suffix ".consul." is not in the table
        ['server.dc9', 'server.dc9'], // catch-all sni_cluster
        ['dns', null], // hostname endpoints: JavaScript resolves them
        ['NODE1.server.dc1.consul', null], // not a name the parser returns
        ['', null],
      ];
      for (const [sni, want] of cases) {
        assert.equal(expected(t, sni), want, `TS expectation for ${sni}`);
        assert.equal(lookup(t, sni), want, sni);
      }
    });

    test('IP literals node:net accepts decode; zoned IPv6 and hostnames are left to JavaScript', () => {
      const ips = ['0.0.0.0', '255.255.255.255', '127.0.0.1', '::', '::1', '1::', '1::2:3:4:5:6:7', '1:2:3:4:5:6:7::', '::1:2:3:4:5:6:7', '::ffff:1.2.3.4', '::1.2.3.4', '1:2:3:4:5:6:1.2.3.4', '0001:2:3:4:5:6:7:8', 'FE80::ABCD', 'fe80::1%eth0', 'localhost', '1.2.3', '01.2.3.4'];
      const clusters = new Map(ips.map((ip) => [ip, cluster(ip, [{ host: ip, port: 443 }])]));
      const t = table({ catchAll: chain(undefined), clusters });
      for (const ip of ips) {
        const sni = ip.toLowerCase();
        if (!clusters.has(sni)) continue;
        assert.equal(lookup(t, sni), expected(t, sni), ip);
      }
      assert.equal(lookup(t, '::1'), '::1');
      assert.equal(lookup(t, 'localhost'), null);
    });

    test('random tables: routeLookup = the TypeScript expectation', () => {
      const rng = new Rng(SEED ^ 0x9e37_79b9);
      const labels = ['a', 'b', 'c', 'x', 'api', 'dc1', 'dc2', 'consul', 'server', 'node1', '-', '0', 'web', 'A', 'Xy'];
      const randomName = (depth = rng.int(1, 4)): string => Array.from({ length: depth }, () => rng.pick(labels)).join('.');
      const hosts = ['10.0.0.1', '192.168.1.2', '::1', '2001:db8::7', 'example.com', 'node1.local', 'fe80::1%lo', '127.0.0.1'];
      let lookups = 0;
      let hits = 0;
      const mismatches: string[] = [];
      for (let round = 0; round < 300; round++) {
        const clusters = new Map<string, RouteCluster>();
        const clusterNames: string[] = [];
        for (let i = rng.int(0, 12); i > 0; i--) {
          const name = rng.chance(0.5) ? randomName() : rng.pick(['c1', 'c2', 'c3', 'svc', '', 'ünï', '\ud800', '\udc00x', 'a\u0000b']);
          const r = rng.next();
          const endpoints: RouteEndpoint[] = [];
          for (let k = r < 0.1 ? 0 : rng.int(1, 4); k > 0; k--) {
            endpoints.push({ host: rng.chance(0.8) ? rng.pick(hosts.slice(0, 4)) : rng.pick(hosts), port: rng.chance(0.95) ? rng.int(1, 65_535) : rng.pick([0, 65_536, 1.5]) });
          }
          clusters.set(name, cluster(name, endpoints, rng.chance(0.1) ? 'cluster type X is not supported' : undefined));
          clusterNames.push(name);
        }
        const randomChain = (): RouteChain => {
          const r = rng.next();
          if (r < 0.1) return chain(rng.chance(0.5) ? undefined : 'c1', 'unsupported');
          if (r < 0.3) return chain(undefined);
          if (r < 0.4) return chain(`missing-${rng.int(0, 9)}`);
          return chain(clusterNames.length > 0 ? rng.pick(clusterNames) : 'none');
        };
        const exact = new Map<string, RouteChain>();
        for (let i = rng.int(0, 15); i > 0; i--) exact.set(rng.chance(0.95) ? randomName().toLowerCase() : rng.pick(['', 'UPPER.case', 'ünï.x', 'a b', 'x'.repeat(300)]), randomChain());
        for (const name of clusterNames) if (rng.chance(0.2)) exact.set(name, randomChain());
        const wildcard = new Map<string, RouteChain>();
        for (let i = rng.int(0, 10); i > 0; i--) wildcard.set(rng.chance(0.95) ? `.${randomName(rng.int(1, 3)).toLowerCase()}` : rng.pick(['.', 'nodot', '.UP', `.${'y'.repeat(300)}`, '..']), randomChain());
        const r = rng.next();
        const catchAll = r < 0.25 ? undefined : randomChain();
        const t = table({ exact, wildcard, catchAll, clusters });
        const buf = encodeFastRoutes(t, (name) => clusterNames.indexOf(name));

        const snis = new Set<string>(['', '.', '..', '.x', 'x.', 'x', 'X', 'a..b', `${'a.'.repeat(127)}b`, `${'a.'.repeat(128)}b`]);
        for (const k of exact.keys()) snis.add(k).add(`${k}.`).add(`x${k}`);
        for (const s of wildcard.keys()) snis.add(s).add(s.slice(1)).add(`l${s}`).add(`a.b${s}`).add(`q.${randomName()}${s}`).add(`${rng.pick(labels)}${s}.`);
        for (const n of clusterNames) snis.add(n).add(n.toLowerCase());
        for (let i = 0; i < 20; i++) snis.add(randomName(rng.int(1, 6)));
        for (const sni of snis) {
          const want = expected(t, sni);
          const got = native().routeLookup(buf, sni);
          lookups++;
          if (want !== null) hits++;
          if (want !== got && mismatches.length < 8) mismatches.push(`round ${round} sni ${JSON.stringify(sni)}: TS ${want} C ${got}; table ${JSON.stringify({ exact: [...exact].map(([k, c]) => [k, c.cluster, c.unsupported]), wildcard: [...wildcard].map(([k, c]) => [k, c.cluster, c.unsupported]), catchAll, clusters: [...clusters.values()] })}`);
        }
      }
      assert.deepEqual(mismatches, [], `seed ${SEED}`);
      assert.ok(hits > lookups * 0.1 && hits < lookups * 0.9, `${hits} of ${lookups} lookups routed: the tables exercise both outcomes`);
    });

    test('a large table (thousands of names) hashes and looks up correctly', () => {
      const clusters = new Map<string, RouteCluster>();
      for (let i = 0; i < 500; i++) clusters.set(`c${i}`, cluster(`c${i}`, [{ host: `10.0.${i >> 8}.${i & 255}`, port: 443 }], i % 50 === 0 ? 'no' : undefined));
      const exact = new Map<string, RouteChain>();
      const wildcard = new Map<string, RouteChain>();
      for (let i = 0; i < 5000; i++) exact.set(`node${i}.server.dc${i % 7}.consul`, chain(`c${(i * 13) % 520}`));
      for (let i = 0; i < 2000; i++) wildcard.set(`.svc${i}.dc${i % 5}.consul`, chain(i % 3 === 0 ? undefined : `c${i % 500}`));
      for (let i = 0; i < 100; i++) clusters.set(`w${i}.svc${i * 3}.dc${(i * 3) % 5}.consul`, cluster('sni', [{ host: '::1', port: 1 }]));
      const t = table({ exact, wildcard, catchAll: chain('c7'), clusters });
      const buf = encodeFastRoutes(t, () => 1);
      const addon = native();
      const mismatches: string[] = [];
      const probe = (sni: string): void => {
        const want = expected(t, sni);
        const got = addon.routeLookup(buf, sni);
        if (want !== got && mismatches.length < 8) mismatches.push(`${sni}: TS ${want} C ${got}`);
      };
      for (let i = 0; i < 5200; i += 7) probe(`node${i}.server.dc${i % 7}.consul`);
      for (let i = 0; i < 2100; i += 3) probe(`w${i}.svc${i}.dc${i % 5}.consul`);
      for (let i = 0; i < 300; i++) probe(`w${i}.svc${i * 3}.dc${(i * 3) % 5}.consul`);
      probe('unknown.example');
      assert.deepEqual(mismatches, []);
    });

    test('encodeFastRoutes: targets and the cluster list', () => {
      const t = table({
        exact: new Map([
          ['a', chain('c1')],
          ['b', chain('gone')],
          ['c', chain(undefined)],
          ['d', chain('c1', 'TLS termination')],
        ]),
        catchAll: undefined,
        clusters: new Map([
          ['c0', cluster('c0', [{ host: 'h.example', port: 1 }])],
          ['c1', cluster('c1', [{ host: '1.2.3.4', port: 80 }])],
        ]),
      });
      const buf = encodeFastRoutes(t, (n) => (n === 'c1' ? 7 : 3));
      assert.equal(buf.readUInt32BE(0), 1, 'version');
      assert.equal(buf.readUInt32BE(4), 2, 'clusters');
      // c0: name, slot 3, timeout, fast 0, no endpoints.
      assert.equal(buf.readUInt16BE(8), 2);
      assert.equal(buf.subarray(10, 12).toString(), 'c0');
      assert.equal(buf.readUInt32BE(12), 3);
      assert.equal(buf.readUInt32BE(16), 1000);
      assert.equal(buf[20], 0);
      assert.equal(buf.readUInt16BE(21), 0);
      // c1: fast with one endpoint.
      assert.equal(buf.readUInt32BE(27), 7);
      assert.equal(buf[35], 1);
      assert.equal(buf.readUInt16BE(36), 1);
      const targets: number[] = [];
      let p = 38 + 2 + 7 + 2; // endpoint "1.2.3.4", port
      assert.equal(buf.readUInt32BE(p), 4, 'exact entries');
      p += 4;
      for (let i = 0; i < 4; i++) {
        p += 2 + buf.readUInt16BE(p);
        targets.push(buf.readInt32BE(p));
        p += 4;
      }
      assert.deepEqual(targets, [1, FAST_TARGET_ASK, FAST_TARGET_SNI_CLUSTER, FAST_TARGET_ASK]);
      assert.equal(buf.readUInt32BE(p), 0, 'wildcard entries');
      assert.equal(buf.readInt32BE(p + 4), FAST_TARGET_NONE);
      assert.equal(p + 8, buf.length);
      assert.throws(() => encodeFastRoutes(t, () => -1), RangeError);
    });

    describe('decode errors', () => {
      const str = (s: string): Buffer => {
        const b = Buffer.from(s, 'latin1');
        return Buffer.concat([u16(b.length), b]);
      };
      const u32 = (n: number): Buffer => {
        const b = Buffer.alloc(4);
        b.writeUInt32BE(n >>> 0);
        return b;
      };
      const i32 = (n: number): Buffer => {
        const b = Buffer.alloc(4);
        b.writeInt32BE(n);
        return b;
      };
      const clusterBytes = (name: string, fast: number, endpoints: Array<[string, number]>): Buffer =>
        Buffer.concat([str(name), u32(0), u32(1000), Buffer.from([fast]), u16(endpoints.length), ...endpoints.map(([ip, port]) => Buffer.concat([str(ip), u16(port)]))]);
      const tableBytes = (o: { version?: number; clusters?: Buffer[]; exact?: Array<[string, number]>; wild?: Array<[string, number]>; catchAll?: number }): Buffer =>
        Buffer.concat([
          u32(o.version ?? 1),
          u32((o.clusters ?? []).length),
          ...(o.clusters ?? []),
          u32((o.exact ?? []).length),
          ...(o.exact ?? []).map(([n, t]) => Buffer.concat([str(n), i32(t)])),
          u32((o.wild ?? []).length),
          ...(o.wild ?? []).map(([n, t]) => Buffer.concat([str(n), i32(t)])),
          i32(o.catchAll ?? -3),
        ]);
      const c0 = clusterBytes('c0', 1, [['10.0.0.1', 443]]);
      const rejects = (buf: Buffer, message: RegExp): void => {
        assert.throws(() => native().routeLookup(buf, 'x'), (err: unknown) => err instanceof Error && message.test(err.message) && err.message.startsWith('fast route table: '), `${buf.toString('hex')} should fail with ${message}`);
      };

      test('a well-formed hand-built table decodes', () => {
        assert.equal(native().routeLookup(tableBytes({ clusters: [c0], exact: [['x', 0]] }), 'x'), 'c0');
        assert.equal(native().routeLookup(tableBytes({ clusters: [c0], wild: [['.b', 0]], catchAll: -1 }), 'a.b'), 'c0');
        assert.equal(native().routeLookup(tableBytes({ clusters: [clusterBytes('c0', 0, [['not an ip', 1]])], catchAll: 0 }), 'x'), null, 'endpoints of a slow cluster are not parsed');
      });

      test('truncated: every prefix of a valid table, and an overlong one', () => {
        const good = tableBytes({ clusters: [c0, clusterBytes('c1', 1, [['::1', 1], ['1.2.3.4', 2]])], exact: [['x', 0], ['y', 1]], wild: [['.z', -2]], catchAll: -1 });
        assert.equal(native().routeLookup(good, 'y'), 'c1');
        for (let cut = 0; cut < good.length; cut++) rejects(good.subarray(0, cut), /truncated/);
        rejects(Buffer.concat([good, Buffer.from([0])]), /1 unexpected bytes after the catch-all/);
        rejects(Buffer.concat([u32(1), u32(0xffff_ffff)]), /truncated: 4294967295 clusters do not fit/);
      });

      test('bad version, out-of-range targets, bad IPs, duplicates, bad wildcards', () => {
        rejects(tableBytes({ version: 2 }), /unsupported version 2 \(expected 1\)/);
        rejects(tableBytes({ version: 0 }), /unsupported version 0/);
        rejects(tableBytes({ clusters: [c0], exact: [['x', 1]] }), /exact entry "x": target 1 is out of range \(1 clusters\)/);
        rejects(tableBytes({ clusters: [c0], exact: [['x', -3]] }), /target -3 is out of range/);
        rejects(tableBytes({ clusters: [c0], wild: [['.x', 5]] }), /wildcard entry ".x": target 5 is out of range/);
        rejects(tableBytes({ clusters: [c0], catchAll: 1 }), /catch-all target 1 is out of range/);
        rejects(tableBytes({ clusters: [c0], catchAll: -4 }), /catch-all target -4 is out of range/);
        for (const ip of ['999.1.1.1', 'example.com', '', '1.2.3.4%x', 'fe80::1%eth0', '1:2:3:4:5:6:7:8:9', '1.2.3.4\u0000']) {
          rejects(tableBytes({ clusters: [clusterBytes('c0', 1, [['10.0.0.1', 1], [ip, 443]])] }), /cluster "c0": endpoint 1 ".*" is not an IPv4 or IPv6 address/);
        }
        rejects(tableBytes({ clusters: [clusterBytes('c0', 1, [['10.0.0.1', 0]])] }), /endpoint 0 has port 0/);
        rejects(tableBytes({ clusters: [clusterBytes('c0', 1, [])] }), /fast cluster "c0" has no endpoints/);
        rejects(tableBytes({ clusters: [clusterBytes('c0', 2, [])] }), /fast flag 2 is not 0 or 1/);
        rejects(tableBytes({ clusters: [c0, clusterBytes('c0', 0, [])] }), /duplicate cluster name "c0"/);
        rejects(tableBytes({ clusters: [c0], exact: [['x', 0], ['x', -1]] }), /duplicate exact entry "x"/);
        rejects(tableBytes({ clusters: [c0], wild: [['.x', 0], ['.x', 0]] }), /duplicate wildcard entry ".x"/);
        rejects(tableBytes({ wild: [['x', -1]] }), /wildcard suffix 0 "x" does not start with a dot/);
        rejects(tableBytes({ wild: [['.', -1]] }), /does not start with a dot and a label/);
      });
    });
  });
});
