import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { createAgent, RpcType, type Agent } from '../../../src/index.js';
import { rpc, RpcTokens } from '../../../src/plugins/rpc/index.js';
import { tls } from '../../../src/plugins/tls/index.js';
import { encodeFrameHeader, Flag, FrameType } from '../../../src/plugins/yamux/index.js';
import { createMemoryLogger, waitFor, type MemoryLogger } from '../../../src/testing/index.js';

const host = { hostname: 'h', privateIPv4: '127.0.0.1' };
const frame = (type: number, flags: number, id: number, length: number, payload: Buffer = Buffer.alloc(0)): Buffer =>
  Buffer.concat([encodeFrameHeader(type, flags, id, length), payload]);
const syn = (id: number): Buffer => frame(FrameType.WindowUpdate, Flag.SYN, id, 0);
/** A msgpack-RPC request for Status.Ping (header + empty body). */
const ping = Buffer.from('82a3536571' + '00' + 'ad536572766963654d6574686f64' + 'ab5374617475732e50696e67' + '80', 'hex');

describe('rpc port: bad input is closed and logged, everything else keeps serving', () => {
  let agent: Agent;
  let client: Agent;
  let address = '';
  const logger: MemoryLogger = createMemoryLogger('debug');

  before(async () => {
    agent = await createAgent({
      config: { node_name: 's1', server: true, bind_addr: '127.0.0.1', ports: { server: 0 }, limits: { rpc_handshake_timeout: '500ms' } },
      host,
      logger,
      plugins: [tls(), rpc()],
    });
    await agent.start();
    address = agent.services.get(RpcTokens.Listener).address as string;
    client = await createAgent({ config: { node_name: 'c1', server: true, ports: { server: -1 } }, host, logger: createMemoryLogger('silent'), plugins: [tls(), rpc()] });
    await client.start();
  });
  after(async () => {
    await client.stop();
    await agent.stop();
  });

  async function send(bytes: Buffer): Promise<Buffer> {
    const [h, p] = address.split(':');
    const s: Socket = connect({ host: h, port: Number(p) });
    s.on('error', () => undefined);
    const chunks: Buffer[] = [];
    s.on('data', (d: Buffer) => chunks.push(d));
    await new Promise<void>((resolve) => s.once('connect', () => resolve()));
    // Half-close after the bytes: a connection the server would otherwise wait on ends too.
    s.end(bytes);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        s.destroy();
        reject(new Error('the server did not close the connection within 10 s'));
      }, 10_000);
      s.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
    });
    return Buffer.concat(chunks);
  }

  const healthy = async (): Promise<void> => {
    await client.services.get(RpcTokens.Pool).ping({ datacenter: 'dc1', node: 's1', address });
  };

  const cases: [string, Buffer][] = [
    ['yamux frame with a wrong version', Buffer.concat([Buffer.of(RpcType.MultiplexV2), Buffer.from('010100010000000100000000', 'hex')])],
    ['yamux frame with an unknown type', Buffer.concat([Buffer.of(RpcType.MultiplexV2), frame(7, 0, 1, 0)])],
    ['yamux data beyond the stream window', Buffer.concat([Buffer.of(RpcType.MultiplexV2), syn(1), frame(FrameType.Data, 0, 1, 300 * 1024, Buffer.alloc(300 * 1024))])],
    ['yamux data for a stream never opened', Buffer.concat([Buffer.of(RpcType.MultiplexV2), frame(FrameType.Data, 0, 99, 4, Buffer.alloc(4))])],
    ['yamux oversize length', Buffer.concat([Buffer.of(RpcType.MultiplexV2), syn(1), frame(FrameType.Data, 0, 1, 0xffffffff, randomBytes(64))])],
    ['yamux window update overflowing the window', Buffer.concat([Buffer.of(RpcType.MultiplexV2), syn(1), frame(FrameType.WindowUpdate, 0, 1, 0xffffffff), frame(FrameType.WindowUpdate, 0, 1, 0xffffffff)])],
    ['msgpack garbage on a plain RPC connection', Buffer.concat([Buffer.of(RpcType.Consul), Buffer.of(0xc1, 0xc1, 0xc1)])],
    ['deeply nested msgpack', Buffer.concat([Buffer.of(RpcType.Consul), Buffer.alloc(200_000, 0x91)])],
    ['msgpack garbage inside a yamux stream', Buffer.concat([Buffer.of(RpcType.MultiplexV2), syn(1), frame(FrameType.Data, 0, 1, 3, Buffer.of(0xc1, 0xff, 0x00))])],
  ];

  for (const [name, bytes] of cases) {
    test(name, async () => {
      const before = logger.entries.length;
      await send(bytes);
      const lines = logger.entries.slice(before).filter((e) => e.level === 'warn' || e.level === 'error');
      assert.ok(lines.length >= 1, `${name}: nothing was logged`);
      assert.equal(lines.length, 1, `${name}: logged ${lines.length} times: ${lines.map((l) => l.msg).join(' | ')}`);
      await healthy();
    });
  }

  test('a valid ping on byte 0 still gets its reply (even after a half-close)', async () => {
    const reply = await send(Buffer.concat([Buffer.of(RpcType.Consul), ping]));
    // Response header {Error: "", Seq: 0, ServiceMethod: "Status.Ping"} then the empty body.
    assert.equal(reply.toString('hex'), '83a54572726f72a0a3536571' + '00' + 'ad536572766963654d6574686f64ab5374617475732e50696e67' + '80');
  });

  test('memory stays bounded under 300 mutated connections', async () => {
    const rss = process.memoryUsage().rss;
    const seeds = cases.map(([, b]) => b);
    for (let i = 0; i < 300; i++) {
      const seed = Buffer.from(seeds[i % seeds.length] as Buffer);
      const flips = 1 + (i % 8);
      for (let f = 0; f < flips; f++) {
        const at = 1 + Math.floor(Math.random() * Math.max(1, seed.length - 1));
        if (at < seed.length) seed[at] = Math.floor(Math.random() * 256);
      }
      await send(seed.subarray(0, Math.min(seed.length, 1 + Math.floor(Math.random() * 4096))));
    }
    // Only the pool's own session remains.
    await waitFor(() => agent.services.get(RpcTokens.Listener).connections <= 1, { timeoutMs: 20_000 });
    await healthy();
    assert.ok(process.memoryUsage().rss - rss < 128 * 1024 * 1024, 'RSS grew by more than 128 MiB');
  });
});
