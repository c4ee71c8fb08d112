import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const MAIN = resolve(fileURLToPath(import.meta.url), '../../../examples/custom-plugin/main.js');

test('examples/custom-plugin runs and every hook behaves', async () => {
  const { stdout } = await promisify(execFile)(process.execPath, [MAIN], { timeout: 60_000 });
  for (const hook of ['onGatewayList', 'onDial + onRpcAccept', 'onXdsBuild', 'per-agent state']) {
    assert.match(stdout, new RegExp(`^ok\\s+${hook.replace(/[+]/g, '\\+')}:`, 'm'));
  }
  assert.match(stdout, /all hooks behaved/);
});
