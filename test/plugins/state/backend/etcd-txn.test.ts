import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import protobuf from 'protobufjs';
import { decodeTxnResponse, encodeFencedPut } from '../../../../src/plugins/state/backend/etcd-txn.js';

// etcd's own rpc.proto, as shipped by the etcd3 package: the hand-written codec must agree with it.
const require = createRequire(import.meta.url);
const protoDir = join(dirname(require.resolve('etcd3/package.json')), 'proto');
const root = new protobuf.Root();
root.resolvePath = (_origin, target) => join(protoDir, target.replace(/^.*\//, ''));
root.loadSync('rpc.proto', { keepCase: true });
const TxnRequest = root.lookupType('etcdserverpb.TxnRequest');
const TxnResponse = root.lookupType('etcdserverpb.TxnResponse');

const long = (v: unknown): number => Number(String(v));

test('encodeFencedPut is the TxnRequest etcd expects: two CREATE compares and one put', () => {
  for (const rev of [0, 1, 127, 128, 300, 2 ** 31, 2 ** 40 + 5, Number.MAX_SAFE_INTEGER]) {
    const leader = Buffer.from('/meshfed/dc1/leader');
    const key = Buffer.from(`/meshfed/dc1/log/${String(rev).padStart(20, '0')}`);
    const value = Buffer.alloc(rev % 1000 === 0 ? 200_000 : 425, 7); // a length that needs 3 varint bytes too
    const decoded = TxnRequest.toObject(TxnRequest.decode(encodeFencedPut(leader, rev, key, value)), { defaults: true, oneofs: true }) as {
      compare: Array<{ result: number; target: number; key: Buffer; create_revision: unknown; target_union: string }>;
      success: Array<{ request_put: { key: Buffer; value: Buffer; lease: unknown } }>;
      failure: unknown[];
    };
    assert.equal(decoded.compare.length, 2);
    const [c0, c1] = decoded.compare;
    assert.ok(c0 && c1);
    assert.deepEqual([c0.result, c0.target, c0.key, long(c0.create_revision), c0.target_union], [0, 1, leader, rev, 'create_revision']);
    assert.deepEqual([c1.result, c1.target, c1.key, long(c1.create_revision), c1.target_union], [0, 1, key, 0, 'create_revision']);
    assert.equal(decoded.success.length, 1);
    assert.deepEqual(decoded.success[0]?.request_put.key, key);
    assert.deepEqual(decoded.success[0]?.request_put.value, value);
    assert.deepEqual(decoded.failure, []);
  }
});

test('decodeTxnResponse reads header.revision and succeeded, skipping the rest', () => {
  for (const [revision, succeeded] of [
    [1, true],
    [2 ** 33 + 7, false],
    [Number.MAX_SAFE_INTEGER, true],
  ] as const) {
    const msg = TxnResponse.fromObject({
      header: { cluster_id: '18446744073709551615', member_id: '123456789012345', revision: String(revision), raft_term: '9' },
      succeeded,
      responses: [{ response_put: { header: { revision: '5' } } }, { response_range: { kvs: [{ key: Buffer.from('k'), value: Buffer.from('v'), create_revision: '3' }], count: '1' } }],
    });
    assert.deepEqual(decodeTxnResponse(Buffer.from(TxnResponse.encode(msg).finish())), { succeeded, revision });
  }
  assert.deepEqual(decodeTxnResponse(Buffer.alloc(0)), { succeeded: false, revision: 0 });
});

test('decodeTxnResponse refuses truncated or malformed input instead of guessing', () => {
  const good = Buffer.from(TxnResponse.encode(TxnResponse.fromObject({ header: { revision: '300' }, succeeded: true })).finish());
  for (let cut = 1; cut < good.length; cut++) {
    const part = good.subarray(0, cut);
    let r: unknown;
    try {
      r = decodeTxnResponse(part);
    } catch (err) {
      assert.match((err as Error).message, /truncated|varint/);
      continue;
    }
    // a prefix that ends on a field boundary is a valid (shorter) message
    assert.ok(typeof r === 'object');
  }
  assert.throws(() => decodeTxnResponse(Buffer.from([0x0a, 0x05, 0x18])), /truncated/);
  assert.throws(() => decodeTxnResponse(Buffer.from([0x0b])), /unsupported wire type 3/);
  assert.throws(() => decodeTxnResponse(Buffer.alloc(11, 0xff)), /varint longer than 10 bytes/);
});
