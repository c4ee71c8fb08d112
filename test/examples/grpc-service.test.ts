import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const MAIN = resolve(fileURLToPath(import.meta.url), '../../../examples/grpc-service/main.js');

test('examples/grpc-service runs: a plugin’s gRPC service called from another server over byte 8 + TLS', async () => {
  const { stdout } = await promisify(execFile)(process.execPath, [MAIN], { timeout: 60_000 });
  assert.match(stdout, /^reply: \{"greeting":"hello, s2","servedBy":"s1"\}$/m);
  assert.match(stdout, /grpc-service example: ok/);
});
