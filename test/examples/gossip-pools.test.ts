import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const MAIN = resolve(fileURLToPath(import.meta.url), '../../../examples/gossip-pools/main.js');

test('examples/gossip-pools runs: LAN and WAN pools, router-driven RPC to dc2, user event, graceful leave', async () => {
  const { stdout } = await promisify(execFile)(process.execPath, [MAIN], { timeout: 90_000 });
  for (const line of ['LAN dc1: a1 a2', 'WAN:     a1.dc1 a2.dc1 b1.dc2', 'router: dc2 -> b1.dc2', 'user event "deploy"', 'a2 left gracefully']) {
    assert.ok(stdout.includes(line), `missing "${line}" in:\n${stdout}`);
  }
  assert.match(stdout, /gossip pools example done/);
});
