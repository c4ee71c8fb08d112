import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { generateCa, generateCert } from '../../../../src/plugins/tls/certs.js';
import { waitFor } from '../../../../src/testing/index.js';
import { EtcdCluster, makeBackend, register, waitLeader, type TestBackend } from './cluster.js';

describe('etcd backend over TLS with client certificates (1-member etcd)', () => {
  let cluster: EtcdCluster;
  let dir: string;
  const backends: TestBackend[] = [];
  let pems: { ca: Buffer; cert: Buffer; key: Buffer };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'meshfed-etcd-tls-'));
    const ca = await generateCa();
    const server = await generateCert({ ca, kind: 'server' });
    const client = await generateCert({ ca, kind: 'client' });
    const file = (name: string, data: string): string => {
      const p = join(dir, name);
      writeFileSync(p, data, { mode: 0o600 });
      return p;
    };
    const tls = { caFile: file('ca.pem', ca.certPem), certFile: file('server.pem', server.certPem), keyFile: file('server-key.pem', server.keyPem) };
    pems = { ca: Buffer.from(ca.certPem), cert: Buffer.from(client.certPem), key: Buffer.from(client.keyPem) };
    // the harness's health probe presents the server certificate, which also allows clientAuth
    cluster = await EtcdCluster.start(1, { tls });
  });

  after(async () => {
    await Promise.all(backends.map((b) => b.backend.close()));
    await cluster?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('replicates between two backends on https endpoints with a CA and a client certificate', async () => {
    assert.match(cluster.endpoints()[0] as string, /^https:/);
    const pair = ['t1', 't2'].map((n) => makeBackend(cluster.endpoints(), n, { prefix: '/tls/', tls: pems }));
    backends.push(...pair);
    await Promise.all(pair.map((b) => b.backend.start(AbortSignal.timeout(10_000))));
    const leader = await waitLeader(pair);
    const follower = pair.find((b) => b !== leader) as TestBackend;
    const { index } = await leader.backend.apply(register('tls-node'));
    await waitFor(() => follower.store.latestIndex() >= index, { message: 'follower applies over TLS' });
    assert.deepEqual(follower.store.snapshot(), leader.store.snapshot());
    assert.equal(JSON.stringify(leader.backend.status()).includes('PRIVATE KEY'), false, 'status shows no key material');
  });

  it('fails to start without a client certificate, within dialTimeoutMs', async () => {
    const b = makeBackend(cluster.endpoints(), 't3', { prefix: '/tls/', tls: { ca: pems.ca }, dialTimeoutMs: 1000, requestTimeoutMs: 500 });
    backends.push(b);
    const t0 = Date.now();
    await assert.rejects(b.backend.start(AbortSignal.timeout(10_000)), (err: { code?: string }) => typeof err.code === 'string' && err.code.startsWith('MESHFED_ERR_STATE_'));
    assert.ok(Date.now() - t0 < 1000 + 1500, `gave up after ${Date.now() - t0} ms`);
  });
});
