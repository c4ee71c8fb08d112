import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const MAIN = resolve(fileURLToPath(import.meta.url), '../../../examples/three-dc/main.js');

test('examples/three-dc (the demo) forms a three-datacenter federation through gateways and stops cleanly', async () => {
  const { stdout } = await promisify(execFile)(process.execPath, [MAIN, '--ephemeral', '--once'], { timeout: 120_000 });
  for (const line of [
    'WAN pool formed through the gateways: server-1.dc1 server-2.dc2 server-3.dc3',
    'dc2: federation states dc1(1 gw) dc2(1 gw) dc3(1 gw)',
    'dc3: gateway locator mode local-gateways',
    'from dc3, GET /v1/catalog/nodes?dc=dc2 → dc2-gateway, server-2',
    '==> stopped',
  ]) {
    assert.ok(stdout.includes(line), `missing "${line}" in:\n${stdout}`);
  }
});
