/**
 * Hostile input: random bytes, every truncation and single-byte corruption of valid messages,
 * absurd lengths and nesting. Every outcome is a value or a MESHFED_ERR_SERF_… error.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  FilterType, SerfErrorCode, SerfMessageType, decodeFilter, decodeSerfMessage, decodeTags, encodeFilter, encodeRelayMessage,
  encodeSerfMessage, encodeTags, isSerfError,
} from '../../../../src/plugins/gossip/serf/index.js';
import { prng, unhex } from './helpers.js';

const samples: Array<[string, Uint8Array]> = [
  ['leave', encodeSerfMessage(SerfMessageType.leave, { LTime: 1, Node: 'a', Prune: true })],
  ['join', encodeSerfMessage(SerfMessageType.join, { LTime: 2n ** 62n, Node: 'b' })],
  ['pushPull', encodeSerfMessage(SerfMessageType.pushPull, {
    LTime: 3, StatusLTimes: { a: 1, b: 2 }, LeftMembers: ['c'], EventLTime: 4,
    Events: [null, { LTime: 4, Events: [{ Name: 'e', Payload: Uint8Array.of(0xff) }] }, null], QueryLTime: 5,
  })],
  ['userEvent', encodeSerfMessage(SerfMessageType.userEvent, { LTime: 6, Name: 'deploy', Payload: Uint8Array.of(0xc3, 0x28), CC: true })],
  ['query', encodeSerfMessage(SerfMessageType.query, {
    LTime: 7, ID: 8, Addr: Uint8Array.of(127, 0, 0, 1), Port: 7946, SourceNode: 's', Filters: [encodeFilter({ type: FilterType.node, nodes: ['x'] })],
    Flags: 1, RelayFactor: 2, Timeout: 1e9, Name: 'q', Payload: Uint8Array.of(1),
  })],
  ['queryResponse', encodeSerfMessage(SerfMessageType.queryResponse, { LTime: 9, ID: 8, From: 'r', Flags: 1, Payload: Uint8Array.of(2) })],
  ['conflictResponse', encodeSerfMessage(SerfMessageType.conflictResponse, { Name: 'm', Addr: Uint8Array.of(1, 2, 3, 4), Tags: { role: 'x' } })],
  ['keyRequest', encodeSerfMessage(SerfMessageType.keyRequest, { Key: new Uint8Array(16) })],
  ['keyResponse', encodeSerfMessage(SerfMessageType.keyResponse, { Result: true, Keys: ['k'] })],
];
const relay = encodeRelayMessage({ DestAddr: { IP: Uint8Array.of(10, 0, 0, 1), Port: 1 }, DestName: 'd' }, samples[5]![1]);

/** Run `fn`; it must return or throw a serf error. Returns the error code, or undefined. */
function outcome(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    assert.ok(isSerfError(err), `expected a MESHFED_ERR_SERF_… error, got ${String(err)}`);
    return err.code;
  }
}

describe('serf hostile input', () => {
  test('every strict prefix of a message is MESHFED_ERR_SERF_TRUNCATED', () => {
    for (const [name, bytes] of samples) {
      for (let n = 0; n < bytes.length; n++) {
        assert.equal(outcome(() => decodeSerfMessage(bytes.subarray(0, n))), SerfErrorCode.TRUNCATED, `${name} cut at ${n}`);
      }
    }
  });

  test('a relay cut inside its header is truncated; cut inside the wrapped message it still decodes', () => {
    const headerLen = relay.length - samples[5]![1].length;
    for (let n = 0; n < relay.length; n++) {
      const code = outcome(() => decodeSerfMessage(relay.subarray(0, n)));
      assert.equal(code, n < headerLen ? SerfErrorCode.TRUNCATED : undefined, `relay cut at ${n}`);
    }
  });

  test('every single-byte corruption gives a value or a coded error', () => {
    const rand = prng(7);
    for (const [, bytes] of [...samples, ['relay', relay] as const]) {
      for (let i = 0; i < bytes.length; i++) {
        for (let k = 0; k < 4; k++) {
          const copy = new Uint8Array(bytes);
          copy[i] = rand() & 0xff;
          outcome(() => decodeSerfMessage(copy));
        }
      }
    }
  });

  test('random bytes give a value or a coded error (decoders: message, tags, filter)', () => {
    const rand = prng(12345);
    let errors = 0;
    for (let i = 0; i < 3000; i++) {
      const len = rand() % 64;
      const buf = new Uint8Array(len);
      for (let j = 0; j < len; j++) buf[j] = rand() & 0xff;
      if (outcome(() => decodeSerfMessage(buf)) !== undefined) errors++;
      outcome(() => decodeTags(buf));
      outcome(() => decodeFilter(buf));
      // A valid type byte with random body.
      if (len > 0) {
        buf[0] = rand() % 10;
        outcome(() => decodeSerfMessage(buf));
      }
    }
    assert.ok(errors > 2500, `most random inputs are refused (${errors})`);
  });

  test('unknown type bytes are MESHFED_ERR_SERF_UNKNOWN_TYPE', () => {
    for (const b of [10, 0x7f, 0xff]) assert.equal(outcome(() => decodeSerfMessage(Uint8Array.of(b, 0x80))), SerfErrorCode.UNKNOWN_TYPE);
  });

  test('absurd lengths and nesting are refused without allocating', () => {
    // pushPull whose LeftMembers claims 2^32-1 elements.
    const huge = unhex('02 81 ab4c6566744d656d62657273 ddffffffff');
    assert.ok([SerfErrorCode.LIMIT, SerfErrorCode.TRUNCATED].includes(outcome(() => decodeSerfMessage(huge)) as never));
    // A userEvent Payload claiming 4 GiB.
    const bigRaw = unhex('03 81 a75061796c6f6164 dbffffffff 00');
    assert.ok([SerfErrorCode.LIMIT, SerfErrorCode.TRUNCATED].includes(outcome(() => decodeSerfMessage(bigRaw)) as never));
    // Deep nesting inside an ignored key.
    const deep = Buffer.concat([Buffer.of(0x01, 0x81, 0xa1, 0x58), Buffer.alloc(10_000, 0x91), Buffer.of(0xc0)]);
    assert.ok([SerfErrorCode.LIMIT, SerfErrorCode.DECODE].includes(outcome(() => decodeSerfMessage(deep)) as never));
  });

  test('maxMessageBytes bounds a message', () => {
    const bytes = samples[2]![1];
    assert.equal(outcome(() => decodeSerfMessage(bytes, { maxMessageBytes: bytes.length - 1 })), SerfErrorCode.LIMIT);
    assert.equal(outcome(() => decodeSerfMessage(bytes, { maxMessageBytes: bytes.length })), undefined);
  });

  test('wrong field types are MESHFED_ERR_SERF_DECODE', () => {
    // join with Node as an int; leave with LTime negative; query with Port beyond uint16.
    assert.equal(outcome(() => decodeSerfMessage(unhex('01 81 a44e6f6465 05'))), SerfErrorCode.DECODE);
    assert.equal(outcome(() => decodeSerfMessage(unhex('00 81 a54c54696d65 ff'))), SerfErrorCode.DECODE);
    assert.equal(outcome(() => decodeSerfMessage(unhex('04 81 a4506f7274 ce00010000'))), SerfErrorCode.DECODE);
    assert.equal(outcome(() => decodeSerfMessage(unhex('00 c1'))), SerfErrorCode.DECODE);
    assert.equal(outcome(() => decodeSerfMessage('x' as unknown as Uint8Array)), SerfErrorCode.DECODE);
  });

  test('tags survive the same treatment', () => {
    const meta = encodeTags({ role: 'consul', dc: 'dc2', port: '8300' });
    for (let n = 1; n < meta.length; n++) assert.equal(outcome(() => decodeTags(meta.subarray(0, n))), SerfErrorCode.TAGS, `cut at ${n}`);
  });
});
