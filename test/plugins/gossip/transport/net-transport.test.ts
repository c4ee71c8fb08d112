import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { connect, createServer, type AddressInfo } from 'node:net';
import { describe, test } from 'node:test';
import { createNetTransport, GossipTransportErrorCode, type NetTransport } from '../../../../src/plugins/gossip/transport/index.js';
import { createMemoryLogger, waitFor } from '../../../../src/testing/index.js';
import { runTransportCompliance } from '../../../../src/testing/transport-compliance.js';

const loopback = { bindAddr: '127.0.0.1', bindPort: 0 } as const;

runTransportCompliance('NetTransport (UDP+TCP on 127.0.0.1)', async () => {
  const a = await createNetTransport(loopback);
  const b = await createNetTransport(loopback);
  return {
    a,
    b,
    addrA: `127.0.0.1:${a.port}`,
    addrB: `127.0.0.1:${b.port}`,
    cleanup: async () => {
      await a.shutdown();
      await b.shutdown();
    },
  };
});

const resources = (): number => process.getActiveResourcesInfo().filter((r) => /^(TCPServerWrap|TCPSocketWrap|UDPWrap)$/.test(r)).length;

async function sendRaw(port: number, packets: Buffer[]): Promise<void> {
  const s = createSocket('udp4');
  try {
    for (const p of packets) await new Promise<void>((resolve, reject) => s.send(p, port, '127.0.0.1', (err) => (err ? reject(err) : resolve())));
  } finally {
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}

describe('NetTransport', () => {
  test('UDP and TCP listen on the same picked port', async () => {
    const t = await createNetTransport(loopback);
    try {
      assert.ok(t.port > 0);
      assert.equal(t.capabilities.nodeAware, false);
      assert.ok(t.udpRecvBufferSize >= 4096);
      const got: string[] = [];
      t.onPacket((p) => got.push(p.buf.toString()));
      const streams: string[] = [];
      t.onStream((c) => {
        c.on('data', (d: Buffer) => streams.push(d.toString()));
        c.on('end', () => c.end());
      });
      await sendRaw(t.port, [Buffer.from('udp')]);
      const sock = connect({ host: '127.0.0.1', port: t.port });
      await new Promise((r) => sock.once('connect', r));
      const closed = new Promise((r) => sock.once('close', r));
      sock.end('tcp');
      await waitFor(() => got.includes('udp') && streams.includes('tcp'), { message: 'UDP and TCP on one port' });
      await closed;
    } finally {
      await t.shutdown();
    }
  });

  test('a taken port is a BIND error that names the address, and leaks nothing', async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const port = (blocker.address() as AddressInfo).port;
    const before = resources();
    try {
      await assert.rejects(createNetTransport({ bindAddr: '127.0.0.1', bindPort: port }), (err: Error & { code?: string }) => {
        assert.equal(err.code, GossipTransportErrorCode.BIND);
        assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${port}`));
        return true;
      });
      await waitFor(() => resources() <= before, { message: 'no sockets left after a failed bind' });
    } finally {
      await new Promise((r) => blocker.close(r));
    }
  });

  test('a bind address that is not an IP is refused before binding', async () => {
    await assert.rejects(createNetTransport({ bindAddr: 'localhost' }), { code: GossipTransportErrorCode.BIND });
  });

  test('zero-length and oversize datagrams are dropped and warned about once each', async () => {
    const logger = createMemoryLogger('debug');
    const t: NetTransport = await createNetTransport({ ...loopback, logger, maxPacketSize: 2000 });
    try {
      const got: Buffer[] = [];
      t.onPacket((p) => got.push(p.buf));
      await sendRaw(t.port, [Buffer.alloc(0), Buffer.alloc(0), Buffer.alloc(0), Buffer.alloc(3000, 1), Buffer.alloc(2001, 1), Buffer.alloc(5000, 1)]);
      await sendRaw(t.port, [Buffer.alloc(2000, 2)]);
      await waitFor(() => t.stats.packetsDropped === 6 && got.length === 1, { message: `drops counted (${JSON.stringify(t.stats)})` });
      assert.equal(got[0]?.length, 2000);
      const warns = logger.entries.filter((e) => e.level === 'warn');
      assert.equal(warns.filter((e) => /too short \(0 bytes\)/.test(e.msg)).length, 1, 'one warning for empty packets');
      assert.equal(warns.filter((e) => /larger than 2000 bytes/.test(e.msg)).length, 1, 'one warning for oversize packets');
      assert.match(String(warns[0]?.fields.from), /^127\.0\.0\.1:\d+$/);
    } finally {
      await t.shutdown();
    }
  });

  test('finalAdvertiseAddr: explicit wins, else the bound address and port', async () => {
    const t = await createNetTransport(loopback);
    try {
      assert.deepEqual(t.finalAdvertiseAddr('', 0), { ip: '127.0.0.1', port: t.port });
      assert.deepEqual(t.finalAdvertiseAddr('10.1.2.3', 8302), { ip: '10.1.2.3', port: 8302 });
      assert.deepEqual(t.finalAdvertiseAddr('', 8302), { ip: '127.0.0.1', port: 8302 });
      assert.throws(() => t.finalAdvertiseAddr('not-an-ip', 0), { code: GossipTransportErrorCode.ADDRESS });
    } finally {
      await t.shutdown();
    }
  });

  test('a bad destination address is an ADDRESS error', async () => {
    const t = await createNetTransport(loopback);
    try {
      await assert.rejects(t.writeToAddress(Buffer.from('x'), { name: 'n', addr: 'no-port' }), { code: GossipTransportErrorCode.ADDRESS });
      await assert.rejects(t.dialAddress({ name: 'n', addr: '127.0.0.1:99999' }), { code: GossipTransportErrorCode.ADDRESS });
    } finally {
      await t.shutdown();
    }
  });
});
