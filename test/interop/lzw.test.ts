/**
 * meshfed's LZW against Go's compress/lzw (LSB, literal width 8 — memberlist's compression),
 * through test/interop/lzw-peer/main.go: Go's output equals meshfed's byte for byte, and each
 * decodes the other's, for inputs from empty to long enough to pass the 4096-code reset many
 * times. Both also refuse the same broken streams.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { before, describe, test } from 'node:test';
import { GossipWireErrorCode, MessageType, encodeMessage, lzwCompress, lzwDecompress } from '../../src/plugins/gossip/wire/index.js';
import { buildGoPeer } from './go-peer.js';

let bin: string;

/** Run the Go filter; resolves with its stdout, or rejects with its stderr when it exits non-zero. */
function runGo(mode: 'compress' | 'decompress', input: Uint8Array): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, [mode], { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(Buffer.concat(out)) : reject(new Error(`lzw-peer ${mode} exited ${code}: ${err.trim()}`))));
    child.stdin.end(input);
  });
}

function inputs(): Array<[string, Uint8Array]> {
  let x = 0x9e3779b9;
  const rnd = (): number => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>>= 0);
  };
  return [
    ['empty', new Uint8Array(0)],
    ['one byte', Uint8Array.of(0x42)],
    ['TOBEORNOT', Buffer.from('TOBEORNOTTOBEORTOBEORNOT')],
    ['a ping message', encodeMessage(MessageType.ping, { SeqNo: 3, Node: 'serf-b', SourceAddr: Uint8Array.of(127, 0, 0, 1), SourcePort: 7946, SourceNode: 'serf-a' })],
    ['random 3838 (reset boundary)', randomBytes(3838)],
    ['random 3839', randomBytes(3839)],
    ['random 20 KiB (~5 resets)', randomBytes(20_000)],
    ['random 200 KiB', randomBytes(200_000)],
    ['zeros 1 MiB', new Uint8Array(1 << 20)],
    ['3-symbol 300 KB', Uint8Array.from({ length: 300_000 }, () => rnd() % 3)],
    ['text-like 100 KB', Buffer.from(Array.from({ length: 20_000 }, () => ['serf', 'node', 'alive', 'dc1', '127.0.0.1'][rnd() % 5]).join(' '))],
    ['mixed runs 150 KB', Uint8Array.from({ length: 150_000 }, (_, i) => (i % 1000 < 500 ? rnd() & 0xff : i & 7))],
  ];
}

before(async () => {
  bin = await buildGoPeer('lzw-peer');
});

describe('LZW interop with Go compress/lzw', { timeout: 120_000 }, () => {
  for (const [name, input] of inputs()) {
    test(`${name} (${input.length} bytes)`, async () => {
      const ours = lzwCompress(input);
      const theirs = await runGo('compress', input);
      assert.ok(ours.equals(theirs), `compressed bytes differ: meshfed ${ours.length} B, Go ${theirs.length} B`);
      assert.ok((await runGo('decompress', ours)).equals(Buffer.from(input)), 'Go decodes meshfed output');
      assert.ok(lzwDecompress(theirs, { maxOutputBytes: Math.max(1, input.length) }).equals(Buffer.from(input)), 'meshfed decodes Go output');
    });
  }

  test('both refuse a truncated stream and an invalid code', async () => {
    const c = lzwCompress(randomBytes(5000));
    const cut = c.subarray(0, c.length - 3);
    await assert.rejects(runGo('decompress', cut), /unexpected EOF/);
    assert.throws(() => lzwDecompress(cut), (err: { code?: string }) => err.code === GossipWireErrorCode.TRUNCATED);
    const bad = Buffer.alloc(4);
    bad.writeUInt32LE(256 | (300 << 9));
    await assert.rejects(runGo('decompress', bad), /invalid code/);
    assert.throws(() => lzwDecompress(bad), (err: { code?: string }) => err.code === GossipWireErrorCode.COMPRESS);
  });

  test('a stream without a leading clear code, and codes left at 12 bits after 4095 entries (Go never clears by itself)', async () => {
    // Hand-built: literals only, no clear, enough codes to fill the table, then EOF — as a foreign encoder might send.
    const codes: number[] = [];
    let width = 9;
    let hi = 257;
    const bitsOut: number[] = [];
    let acc = 0;
    let n = 0;
    const put = (c: number): void => {
      acc |= c << n;
      n += width;
      while (n >= 8) {
        bitsOut.push(acc & 0xff);
        acc >>>= 8;
        n -= 8;
      }
    };
    for (let i = 0; i < 5000; i++) {
      const c = (i * 31) & 0xff;
      codes.push(c);
      put(c);
      hi++;
      if (hi >= 1 << width) {
        if (width === 12) hi--;
        else width++;
      }
    }
    put(257);
    if (n > 0) bitsOut.push(acc & 0xff);
    const stream = Uint8Array.from(bitsOut);
    const go = await runGo('decompress', stream);
    assert.ok(lzwDecompress(stream).equals(go));
    assert.deepEqual([...go], codes);
  });
});
