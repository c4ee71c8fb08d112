/** GoTime: Go's time.Time with nanoseconds, its MarshalBinary blob, RFC 3339 text. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { GoTime, GoTimeError } from '../../../../src/plugins/rpc/msgpack/index.js';
import { hex } from './wire-notation.js';

describe('GoTime', () => {
  test('MarshalBinary blob of the spec example (§8)', () => {
    const tm = GoTime.parse('2024-01-02T03:04:05.123456789Z');
    assert.equal(hex(tm.toBinary()), '010000000edd257425075bcd15ffff');
    assert.equal(tm.unixSeconds, 1704164645);
    assert.equal(tm.nanoseconds, 123456789);
    assert.equal(tm.zoneOffsetSeconds, null);
  });

  test('times before 1970 keep nanoseconds in [0, 1e9)', () => {
    const tm = GoTime.parse('1969-12-31T23:59:59.999999999Z');
    assert.equal(tm.unixSeconds, -1);
    assert.equal(tm.nanoseconds, 999_999_999);
    assert.equal(tm.toUnixNanos(), -1n);
    assert.deepEqual(GoTime.fromUnixNanos(-1n), tm);
    assert.deepEqual(GoTime.fromBinary(tm.toBinary()), tm);
    const old = GoTime.parse('1901-12-13T20:45:52.000000001Z');
    assert.equal(hex(old.toBinary()), '010000000df791f70000000001ffff');
    assert.equal(old.toString(), '1901-12-13T20:45:52.000000001Z');
  });

  test('zero time is year 1, IsZero, all-zero seconds', () => {
    assert.equal(GoTime.ZERO.toString(), '0001-01-01T00:00:00Z');
    assert.equal(GoTime.ZERO.isZero(), true);
    assert.equal(hex(GoTime.ZERO.toBinary()), '01000000000000000000000000ffff');
    assert.equal(GoTime.parse('2000-01-01T00:00:00Z').isZero(), false);
  });

  test('fixed zones: offset minutes; version 2 adds the offset seconds', () => {
    const plus2 = GoTime.parse('2024-06-01T12:00:00+02:00');
    assert.equal(plus2.zoneOffsetSeconds, 7200);
    assert.equal(plus2.toString(), '2024-06-01T12:00:00+02:00');
    assert.equal(hex(plus2.toBinary()), '010000000eddece820000000000078');
    assert.ok(plus2.equals(GoTime.parse('2024-06-01T10:00:00Z')));
    const utc0 = new GoTime(0, 0, 0); // FixedZone("", 0): not Go's UTC location
    assert.equal(hex(utc0.toBinary()).slice(-4), '0000');
    const withSecs = new GoTime(0, 0, 3630);
    assert.equal(withSecs.toBinary().length, 16);
    assert.deepEqual(GoTime.fromBinary(withSecs.toBinary()), withSecs);
  });

  test('Go refuses offsets that round to -1 minute; so does toBinary', () => {
    assert.throws(() => new GoTime(0, 0, -60).toBinary(), { name: 'GoTimeError', message: 'Time.MarshalBinary: unexpected zone offset' });
  });

  test('Date conversions keep milliseconds', () => {
    const d = new Date('2024-01-02T03:04:05.678Z');
    const tm = GoTime.fromDate(d);
    assert.equal(tm.nanoseconds, 678_000_000);
    assert.equal(tm.toDate().getTime(), d.getTime());
    assert.equal(GoTime.fromDate(new Date(-1)).toString(), '1969-12-31T23:59:59.999Z');
    assert.equal(JSON.stringify({ t: tm }), '{"t":"2024-01-02T03:04:05.678Z"}');
  });

  test('compare orders instants', () => {
    const a = GoTime.parse('2024-01-01T00:00:00.000000001Z');
    const b = GoTime.parse('2024-01-01T00:00:00.000000002Z');
    assert.ok(a.compare(b) < 0 && b.compare(a) > 0 && a.compare(a) === 0);
  });

  test('invalid input is refused with a GoTimeError', () => {
    assert.throws(() => GoTime.parse('yesterday'), (err: unknown) => err instanceof GoTimeError && err.code === 'MESHFED_ERR_MSGPACK_TIME');
    assert.throws(() => new GoTime(0, 1e9), GoTimeError);
    assert.throws(() => new GoTime(0.5), GoTimeError);
    assert.throws(() => GoTime.fromBinary(new Uint8Array(0)), { message: 'Time.UnmarshalBinary: no data' });
    assert.throws(() => GoTime.fromBinary(Uint8Array.of(3)), { message: 'Time.UnmarshalBinary: unsupported version' });
    assert.throws(() => GoTime.fromBinary(Uint8Array.of(1, 2)), { message: 'Time.UnmarshalBinary: invalid length' });
  });
});
