import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const MAIN = resolve(fileURLToPath(import.meta.url), '../../../examples/gateway-plugin/main.js');

test('examples/gateway-plugin runs: registered, routes TLS to the server, deregisters on stop', async () => {
  const { stdout } = await promisify(execFile)(process.execPath, [MAIN], { timeout: 60_000 });
  for (const step of ['gateway running', 'registered in the catalog', 'TLS through the gateway', 'deregistered on stop']) {
    assert.match(stdout, new RegExp(`^ok\\s+${step}:`, 'm'));
  }
  assert.match(stdout, /gateway-plugin example: ok/);
});
