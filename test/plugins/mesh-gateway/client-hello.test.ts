import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { before, describe, test } from 'node:test';
import { ClientHelloReader, parseClientHello, type ClientHelloVerdict } from '../../../src/plugins/mesh-gateway/client-hello.js';
import { captureClientHello } from './helpers.js';

function hello(v: ClientHelloVerdict): { serverName: string | undefined; alpn: readonly string[] } {
  assert.equal(v.kind, 'hello', `expected a hello, got ${JSON.stringify(v)}`);
  if (v.kind !== 'hello') throw new Error('unreachable');
  return v.hello;
}

/** Re-frame a single-record ClientHello into records carrying at most `size` handshake bytes each. */
function reframe(single: Buffer, size: number): Buffer {
  const len = single.readUInt16BE(3);
  const body = single.subarray(5, 5 + len);
  const out: Buffer[] = [];
  for (let i = 0; i < body.length; i += size) {
    const frag = body.subarray(i, Math.min(body.length, i + size));
    const hdr = Buffer.from([22, 3, 1, 0, 0]);
    hdr.writeUInt16BE(frag.length, 3);
    out.push(hdr, frag);
  }
  return Buffer.concat(out);
}

describe('ClientHello parser', () => {
  let withSni: Buffer;
  let noSni: Buffer;
  let withAlpn: Buffer;
  before(async () => {
    [withSni, noSni, withAlpn] = await Promise.all([
      captureClientHello({ servername: 'Bob.Server.dc1.consul' }),
      captureClientHello(),
      captureClientHello({ servername: 'node1.server.dc1.consul', alpn: ['consul/rpc-multi', 'h2'] }),
    ]);
  });

  test('reads the SNI of a real node:tls ClientHello (lower-cased)', () => {
    const h = hello(parseClientHello(withSni));
    assert.equal(h.serverName, 'bob.server.dc1.consul');
    assert.deepEqual(h.alpn, []);
  });

  test('reports no SNI when the client sent none', () => {
    const h = hello(parseClientHello(noSni));
    assert.equal(h.serverName, undefined);
  });

  test('reads the ALPN list in the client order', () => {
    const h = hello(parseClientHello(withAlpn));
    assert.equal(h.serverName, 'node1.server.dc1.consul');
    assert.deepEqual(h.alpn, ['consul/rpc-multi', 'h2']);
  });

  test('1-byte chunks: incomplete until the last byte, then the hello', () => {
    const r = new ClientHelloReader();
    for (let i = 0; i < withAlpn.length - 1; i++) {
      assert.equal(r.push(withAlpn.subarray(i, i + 1)).kind, 'incomplete', `byte ${i}`);
    }
    const h = hello(r.push(withAlpn.subarray(withAlpn.length - 1)));
    assert.deepEqual(h.alpn, ['consul/rpc-multi', 'h2']);
    assert.ok(r.bytes().equals(withAlpn), 'the reader keeps every byte for forwarding');
  });

  test('a ClientHello spanning two records (and one split before its handshake header)', () => {
    const len = withAlpn.readUInt16BE(3);
    const two = reframe(withAlpn, Math.ceil(len / 2));
    const h = hello(parseClientHello(two));
    assert.equal(h.serverName, 'node1.server.dc1.consul');
    assert.deepEqual(h.alpn, ['consul/rpc-multi', 'h2']);
    // Header split over records: 2-byte fragments, fed one byte at a time.
    const tiny = reframe(withSni, 2);
    assert.equal(parseClientHello(tiny).kind, 'malformed', 'more records than any real client uses are refused');
    const small = reframe(withSni, 100);
    const r = new ClientHelloReader();
    let v: ClientHelloVerdict = { kind: 'incomplete', needed: 1 };
    for (const b of small) v = r.push(Buffer.from([b]));
    assert.equal(hello(v).serverName, 'bob.server.dc1.consul');
  });

  test('truncated input stays incomplete, with a growing `needed`', () => {
    let last = 0;
    for (const cut of [0, 1, 4, 5, 9, 43, withSni.length - 1]) {
      const v = parseClientHello(withSni.subarray(0, cut));
      assert.equal(v.kind, 'incomplete', `cut at ${cut}`);
      if (v.kind === 'incomplete') {
        assert.ok(v.needed > cut && v.needed >= last, `needed ${v.needed} after ${cut} bytes`);
        last = v.needed;
      }
    }
  });

  test('HTTP and other plain text is "not-tls"', () => {
    for (const text of ['GET / HTTP/1.1\r\nHost: x\r\n\r\n', 'SSH-2.0-OpenSSH_9.0\r\n', '\u0000\u0001', '\u0004rpc']) {
      const v = parseClientHello(Buffer.from(text));
      assert.equal(v.kind, 'not-tls', text);
    }
    // An RPC type byte 0x16 followed by a non-TLS version byte.
    assert.equal(parseClientHello(Buffer.from([22, 9, 9])).kind, 'not-tls');
  });

  test('garbage never throws: random buffers get a verdict', () => {
    for (let i = 0; i < 2000; i++) {
      const b = randomBytes(1 + (i % 300));
      if (i % 3 === 0) b[0] = 22;
      if (i % 3 === 0 && b.length > 1) b[1] = 3;
      const v = parseClientHello(b);
      assert.ok(['incomplete', 'not-tls', 'malformed', 'too-large', 'hello'].includes(v.kind));
    }
  });

  test('corrupted real ClientHellos are "malformed"', () => {
    const badLen = Buffer.from(withAlpn);
    badLen.writeUInt16BE(badLen.readUInt16BE(5 + 4 + 2 + 32 + 1 + badLen[5 + 4 + 2 + 32]!) + 1, 5 + 4 + 2 + 32 + 1 + badLen[5 + 4 + 2 + 32]!);
    assert.equal(parseClientHello(badLen).kind, 'malformed', 'cipher suites length off by one');
    const notHello = Buffer.from(withSni);
    notHello[5] = 2; // server_hello
    assert.equal(parseClientHello(notHello).kind, 'malformed');
    const alert = Buffer.from(withSni);
    alert[0] = 21;
    assert.equal(parseClientHello(alert).kind, 'not-tls');
  });

  test('a ClientHello larger than the cap is "too-large" as soon as its header is read', () => {
    // Handshake header announcing a 64 KiB body; only the first record header and 4 bytes sent.
    const head = Buffer.from([22, 3, 1, 0x40, 0x00, 1, 0x01, 0x00, 0x00]);
    const v = parseClientHello(head);
    assert.equal(v.kind, 'too-large');
    const small = parseClientHello(withAlpn, { maxHelloBytes: 64 });
    assert.equal(small.kind, 'too-large');
    const r = new ClientHelloReader({ maxHelloBytes: 64 });
    assert.equal(r.push(withAlpn.subarray(0, 9)).kind, 'too-large');
  });
});
