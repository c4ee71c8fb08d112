import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { GossipTransportErrorCode, type GossipPacket } from '../../../../src/plugins/gossip/transport/index.js';
import { waitFor } from '../../../../src/testing/index.js';
import { MemoryGossipNetwork } from '../../../../src/testing/memory-transport.js';
import { runTransportCompliance } from '../../../../src/testing/transport-compliance.js';

runTransportCompliance('MemoryTransport', async () => {
  const net = new MemoryGossipNetwork();
  const a = net.createTransport();
  const b = net.createTransport();
  const hole = net.createTransport();
  net.partition([a.addr], [hole.addr]);
  return {
    a,
    b,
    addrA: a.addr,
    addrB: b.addr,
    unreachableAddr: hole.addr,
    cleanup: async () => {
      await a.shutdown();
      await b.shutdown();
      await hole.shutdown();
    },
  };
});

describe('MemoryGossipNetwork', () => {
  test('networks are independent objects; addresses are unique within one', async () => {
    const n1 = new MemoryGossipNetwork();
    const n2 = new MemoryGossipNetwork();
    const a1 = n1.createTransport({ addr: '10.0.0.1:7946' });
    const a2 = n2.createTransport({ addr: '10.0.0.1:7946' });
    assert.throws(() => n1.createTransport({ addr: '10.0.0.1:7946' }), { code: GossipTransportErrorCode.BIND });
    assert.throws(() => n1.createTransport({ addr: 'nope' }), { code: GossipTransportErrorCode.ADDRESS });
    const auto = n1.createTransport();
    assert.notEqual(auto.addr, a1.addr);
    assert.deepEqual(auto.finalAdvertiseAddr('', 0), { ip: auto.addr.split(':')[0], port: 7946 });
    await a1.shutdown();
    const again = n1.createTransport({ addr: '10.0.0.1:7946' }); // freed by shutdown
    for (const t of [again, a2, auto]) await t.shutdown();
  });

  test('partition drops packets and black-holes dials; heal restores both', async () => {
    const net = new MemoryGossipNetwork();
    const a = net.createTransport();
    const b = net.createTransport();
    const got: GossipPacket[] = [];
    b.onPacket((p) => got.push(p));
    b.onStream((c) => c.pipe(c));
    net.partition([a.addr], [b.addr]);
    await a.writeToAddress(Buffer.from('lost'), { name: 'b', addr: b.addr });
    assert.equal(net.stats.packetsLost, 1);
    await assert.rejects(a.dialAddress({ name: 'b', addr: b.addr }, { timeoutMs: 20 }), { code: GossipTransportErrorCode.DIAL_TIMEOUT });
    net.heal();
    await a.writeToAddress(Buffer.from('found'), { name: 'b', addr: b.addr });
    await waitFor(() => got.length === 1);
    assert.equal(got[0]?.buf.toString(), 'found');
    const c = await a.dialAddress({ name: 'b', addr: b.addr });
    c.destroy();
    await a.shutdown();
    await b.shutdown();
  });

  test('packet loss and filters drop packets deterministically', async () => {
    const net = new MemoryGossipNetwork();
    const a = net.createTransport();
    const b = net.createTransport();
    const got: string[] = [];
    b.onPacket((p) => got.push(p.buf.toString()));
    let i = 0;
    net.setPacketLoss(0.5, () => (i++ % 2 === 0 ? 0.1 : 0.9)); // lose every other packet
    for (const s of ['1', '2', '3', '4']) await a.writeToAddress(Buffer.from(s), { name: 'b', addr: b.addr });
    net.setPacketLoss(0);
    net.setPacketFilter((p) => p.buf.toString() !== 'drop-me');
    await a.writeToAddress(Buffer.from('drop-me'), { name: 'b', addr: b.addr });
    await a.writeToAddress(Buffer.from('keep'), { name: 'b', addr: b.addr });
    await waitFor(() => got.includes('keep'));
    assert.deepEqual(got, ['2', '4', 'keep']);
    assert.deepEqual(net.stats, { packetsSent: 6, packetsLost: 3 });
    await a.shutdown();
    await b.shutdown();
  });

  test('node-aware transports require names; disableTcpPingsForNode is passed through', async () => {
    const net = new MemoryGossipNetwork();
    const a = net.createTransport({ nodeAware: true, disableTcpPingsForNode: (n) => !n.endsWith('.dc1') });
    const plain = net.createTransport();
    assert.equal(a.capabilities.nodeAware, true);
    assert.equal(a.disableTcpPingsForNode?.('s1.dc2'), true);
    assert.equal(a.disableTcpPingsForNode?.('s1.dc1'), false);
    assert.equal(plain.disableTcpPingsForNode, undefined);
    await assert.rejects(a.writeToAddress(Buffer.from('x'), { name: '', addr: plain.addr }), { code: GossipTransportErrorCode.ADDRESS });
    await assert.rejects(a.dialAddress({ name: '', addr: plain.addr }), { code: GossipTransportErrorCode.ADDRESS });
    await a.shutdown();
    await plain.shutdown();
  });

  test('the sender may reuse its buffer right after writeToAddress', async () => {
    const net = new MemoryGossipNetwork();
    const a = net.createTransport();
    const b = net.createTransport();
    const got: string[] = [];
    b.onPacket((p) => got.push(p.buf.toString()));
    const buf = Buffer.from('abc');
    await a.writeToAddress(buf, { name: 'b', addr: b.addr });
    buf.write('xyz');
    await waitFor(() => got.length === 1);
    assert.equal(got[0], 'abc');
    await a.shutdown();
    await b.shutdown();
  });
});
