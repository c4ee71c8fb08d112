/** Serf tags in node meta: golden bytes from hashicorp-wire.md §6, protocol < 3 role strings, bad blobs. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SerfErrorCode, TAGS_MAX_SIZE, decodeTags, encodeTags } from '../../../../src/plugins/gossip/serf/index.js';
import { hex, unhex } from './helpers.js';

describe('serf tags', () => {
  test('golden: {role: ml} = ff81a4726f6c65a26d6c, both ways', () => {
    assert.equal(hex(encodeTags({ role: 'ml' })), 'ff81a4726f6c65a26d6c');
    assert.deepEqual(decodeTags(unhex('ff81a4726f6c65a26d6c')), { role: 'ml' });
  });

  test('golden: Go map order role-then-dc decodes; our encoding sorts keys', () => {
    assert.deepEqual(decodeTags(unhex('ff82a4726f6c65a161a26463a3646331')), { role: 'a', dc: 'dc1' });
    const expected = 'ff82a26463a3646331a4726f6c65a161';
    assert.equal(hex(encodeTags({ role: 'a', dc: 'dc1' })), expected);
    assert.equal(hex(encodeTags({ dc: 'dc1', role: 'a' })), expected);
    assert.equal(hex(encodeTags(new Map([['role', 'a'], ['dc', 'dc1']]))), expected);
  });

  test('empty tags are 0xff + an empty map', () => {
    assert.equal(hex(encodeTags({})), 'ff80');
    assert.deepEqual(decodeTags(unhex('ff80')), {});
  });

  test('protocol < 3: meta without the magic byte is the role string', () => {
    assert.deepEqual(decodeTags(new TextEncoder().encode('plain')), { role: 'plain' });
    assert.deepEqual(decodeTags(new Uint8Array(0)), { role: '' });
  });

  test('bad 0xff blobs are MESHFED_ERR_SERF_TAGS', () => {
    for (const bad of ['ff', 'ff81', 'ff81a4726f6c65', 'ff81a4726f6c6501', 'ff90', 'ffc1', 'ff81a4726f6c65a5']) {
      assert.throws(() => decodeTags(unhex(bad)), { code: SerfErrorCode.TAGS }, bad);
    }
  });

  test('tags over the 512-byte meta limit are refused; non-string values too', () => {
    assert.throws(() => encodeTags({ big: 'x'.repeat(TAGS_MAX_SIZE) }), { code: SerfErrorCode.TAGS });
    assert.throws(() => encodeTags({ n: 1 as unknown as string }), { code: SerfErrorCode.ENCODE });
  });

  test('non-ASCII and __proto__ keys round-trip as own properties', () => {
    const tags = JSON.parse('{"__proto__":"x","ü":"ÿ"}') as Record<string, string>;
    const back = decodeTags(encodeTags(tags));
    assert.equal(Object.getPrototypeOf(back), Object.prototype);
    assert.ok(Object.hasOwn(back, '__proto__'));
    assert.equal(back['ü'], 'ÿ');
  });
});
