import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { describe, test } from 'node:test';
import { createNetTransport, splitHostPort } from '../../../../src/plugins/gossip/transport/index.js';
import { MessageType, addCrc, encodeMessage, compressMessage } from '../../../../src/plugins/gossip/wire/index.js';
import { decodeStreamMessage } from '../../../../src/plugins/gossip/memberlist/index.js';
import { waitFor } from '../../../../src/testing/index.js';
import { allSee, shutdownAll, startNode } from './helpers.js';

/** Send raw bytes on a TCP connection to `addr` and collect what comes back until the peer closes. */
function streamExchange(addr: string, bytes: Uint8Array): Promise<Buffer> {
  const { host, port } = splitHostPort(addr);
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const s = connect({ host, port }, () => s.write(bytes));
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', () => undefined);
    s.on('close', () => resolve(Buffer.concat(chunks)));
    setTimeout(() => s.destroy(), 3_000).unref();
  });
}

describe('memberlist bad input', () => {
  test('malformed packets are dropped and logged once per kind; the node keeps serving', async () => {
    const a = await startNode('a');
    const b = await startNode('b');
    const sender = await createNetTransport({ bindAddr: '127.0.0.1' });
    try {
      const to = { name: 'a', addr: a.m.advertiseAddress };
      const ping = encodeMessage(MessageType.ping, { SeqNo: 1, Node: 'a' });
      const badCrc = addCrc(ping);
      badCrc[1] = (badCrc[1] as number) ^ 0xff;
      const truncatedCompound = Buffer.from([MessageType.compound, 3, 0, 10, 0, 10, 0, 10, 1, 2]);
      const hugeCount = Buffer.concat([Buffer.from([MessageType.compound, 255]), Buffer.alloc(510, 0xff)]);
      const badMsgpack = Buffer.from([MessageType.alive, 0xc1, 0xc1]);
      const unknownType = Buffer.from([200, 1, 2, 3]);
      const lzwBomb = encodeMessage(MessageType.compress, { Algo: 0, Buf: Buffer.alloc(2000, 0xff) });
      const badAlgo = encodeMessage(MessageType.compress, { Algo: 7, Buf: Buffer.alloc(3) });
      const garbage = [badCrc, truncatedCompound, hugeCount, badMsgpack, unknownType, lzwBomb, badAlgo];
      for (let round = 0; round < 20; round++) for (const g of garbage) await sender.writeToAddress(g, to);
      // The node still answers: a join works and the pool converges.
      await b.m.join([a.m.advertiseAddress]);
      await waitFor(() => allSee([a, b], ['a', 'b']));
      await waitFor(() => a.logger.entries.filter((e) => e.level === 'warn').length >= 5, { message: 'bad packets not logged' });
      const warns = a.logger.entries.filter((e) => e.level === 'warn').map((e) => e.msg);
      // Each kind logged once, not 20 times.
      assert.ok(warns.length < 20, `too many warnings: ${warns.length}\n${warns.join('\n')}`);
      assert.ok(warns.some((w) => /invalid checksum/.test(w)), 'bad CRC named');
    } finally {
      await sender.shutdown();
      await shutdownAll([a, b]);
    }
  });

  test('hostile streams: garbage, absurd push-pull counts and lengths, truncation, slow loris', async () => {
    const a = await startNode('a', { tcpTimeoutMs: 500 });
    const b = await startNode('b');
    try {
      const addr = a.m.advertiseAddress;
      const header = (nodes: number, userStateLen: number): Buffer => Buffer.concat([Buffer.from([MessageType.pushPull]), msgpackHeader(nodes, userStateLen)]);
      const replies = await Promise.all([
        streamExchange(addr, Buffer.from('GET / HTTP/1.1\r\n\r\n')),
        streamExchange(addr, header(1_000_000_000, 0)),
        streamExchange(addr, header(1, 0x7fffffff)),
        streamExchange(addr, header(3, 10)),
        streamExchange(addr, compressMessage(Buffer.concat([header(0, 5), Buffer.from('abc')]))),
        streamExchange(addr, Buffer.from([MessageType.pushPull])),
      ]);
      // Every hostile stream is answered with an errResp (type 13, compressed like any stream) naming the problem, then closed.
      for (const [i, r] of replies.entries()) {
        const m = decodeStreamMessage(r);
        assert.equal(m.type, MessageType.err, `stream ${i} got ${m.type}`);
        if (m.type === MessageType.err) assert.ok(m.body.Error.length > 0);
      }
      assert.match((decodeStreamMessage(replies[1]) as { body: { Error: string } }).body.Error, /1000000000 nodes, more than the limit/);
      await b.m.join([addr]);
      await waitFor(() => allSee([a, b], ['a', 'b']));
      assert.deepEqual(a.m.members().map((m) => m.name).sort(), ['a', 'b'], 'no phantom nodes from hostile push-pulls');
    } finally {
      await shutdownAll([a, b]);
    }
  });
});

/** A push-pull header {Join: true, Nodes, UserStateLen} encoded by hand (go-msgpack style). */
function msgpackHeader(nodes: number, userStateLen: number): Buffer {
  const u = (v: number): Buffer => {
    const b = Buffer.alloc(5);
    b[0] = 0xce;
    b.writeUInt32BE(v, 1);
    return b;
  };
  return Buffer.concat([Buffer.from([0x83, 0xa4]), Buffer.from('Join'), Buffer.from([0xc3, 0xa5]), Buffer.from('Nodes'), u(nodes), Buffer.from([0xac]), Buffer.from('UserStateLen'), u(userStateLen)]);
}
