import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { waitFor } from '../../../../src/testing/index.js';

const CLUSTER_MODULE = fileURLToPath(new URL('../../../../src/testing/etcd-cluster.js', import.meta.url));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('etcd members die with the process that started them, even when it is SIGKILLed (no orphans after a crashed run)', { skip: !existsSync('/usr/bin/setpriv') && 'util-linux setpriv missing', timeout: 60_000 }, async () => {
  const script = `
    const { EtcdCluster } = await import(${JSON.stringify(CLUSTER_MODULE)});
    const c = await EtcdCluster.start(1);
    process.stdout.write('PID ' + c.pid(0) + '\\n');
    setInterval(() => undefined, 1000);
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  const pid = await new Promise<number>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /PID (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (code) => reject(new Error(`the child exited (${String(code)}) before starting etcd: ${out}`)));
  });
  assert.ok(alive(pid), 'etcd runs');
  child.kill('SIGKILL');
  await waitFor(() => !alive(pid), { message: `etcd ${pid} died with its parent`, timeoutMs: 10_000 });
});
