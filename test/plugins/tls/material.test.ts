import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { MeshfedError } from '../../../src/core/errors.js';
import { generateCa, generateCert } from '../../../src/plugins/tls/certs.js';
import type { PemPair } from '../../../src/plugins/tls/certs.js';
import { TlsErrorCode } from '../../../src/plugins/tls/errors.js';
import { fileTlsSource, memoryTlsSource, validateTlsMaterial } from '../../../src/plugins/tls/material.js';
import type { FileTlsSourceOptions, TlsMaterialSource } from '../../../src/plugins/tls/material.js';

const DAY = 24 * 60 * 60 * 1000;

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** A MESHFED_ERR_TLS_MATERIAL error whose message matches every pattern. */
function materialError(...patterns: Array<RegExp | string>): (err: unknown) => boolean {
  return (err: unknown) => {
    assert.ok(err instanceof MeshfedError, `expected a MeshfedError, got ${String(err)}`);
    assert.equal(err.code, TlsErrorCode.MATERIAL);
    for (const p of patterns) assert.match(err.message, typeof p === 'string' ? new RegExp(escape(p)) : p);
    return true;
  };
}

describe('tls material', () => {
  let dir: string;
  let caA: PemPair;
  let caB: PemPair;
  let leafA: PemPair;
  let leafA2: PemPair;
  let leafB: PemPair;
  let expired: PemPair;
  let future: PemPair;
  const files: Record<string, string> = {};

  async function file(name: string, content: string): Promise<string> {
    const path = join(dir, name);
    await writeFile(path, content);
    files[name] = path;
    return path;
  }

  /** Load through a file source and validate with its names, as the configurator does. */
  async function loadAndValidate(options: FileTlsSourceOptions): Promise<void> {
    const source = fileTlsSource(options);
    validateTlsMaterial(await source.load(), source.names);
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'meshfed-material-'));
    [caA, caB] = await Promise.all([generateCa(), generateCa()]);
    [leafA, leafA2, leafB, expired, future] = await Promise.all([
      generateCert({ ca: caA, kind: 'server', node: 's1' }),
      generateCert({ ca: caA, kind: 'server', node: 's2' }),
      generateCert({ ca: caB, kind: 'server', node: 's1' }),
      generateCert({ ca: caA, kind: 'server', notBefore: new Date(Date.now() - 10 * DAY), days: 1 }),
      generateCert({ ca: caA, kind: 'server', notBefore: new Date(Date.now() + 10 * DAY), days: 1 }),
    ]);
    await file('ca-a.pem', caA.certPem);
    await file('ca-b.pem', caB.certPem);
    await file('bundle.pem', caB.certPem + caA.certPem);
    await file('a.pem', leafA.certPem);
    await file('a-key.pem', leafA.keyPem);
    await file('a2-key.pem', leafA2.keyPem);
    await file('b.pem', leafB.certPem);
    await file('b-key.pem', leafB.keyPem);
    await file('expired.pem', expired.certPem);
    await file('expired-key.pem', expired.keyPem);
    await file('future.pem', future.certPem);
    await file('future-key.pem', future.keyPem);
    await file('garbage.pem', 'this is not a certificate\n');
    await file('broken.pem', '-----BEGIN CERTIFICATE-----\nAAAAbm90IGRlcg==\n-----END CERTIFICATE-----\n');
    await file('encrypted-key.pem', '-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n');
  });

  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const f = (name: string): string => {
    const path = files[name];
    assert.ok(path, `fixture ${name}`);
    return path;
  };

  test('valid material: the leaf and the CA are returned', async () => {
    const source = fileTlsSource({ caFile: f('ca-a.pem'), certFile: f('a.pem'), keyFile: f('a-key.pem') });
    const material = await source.load();
    const v = validateTlsMaterial(material, source.names);
    assert.equal(v.certificate?.serialNumber, new X509Certificate(leafA.certPem).serialNumber);
    assert.equal(v.caCertificates.length, 1);
    assert.match(source.describe(), /ca=.*ca-a\.pem cert=.*a\.pem key=.*a-key\.pem/);
  });

  test('a CA bundle is accepted when any of its CAs signed the certificate', async () => {
    const source = fileTlsSource({ caFile: f('bundle.pem'), certFile: f('a.pem'), keyFile: f('a-key.pem') });
    assert.equal(validateTlsMaterial(await source.load(), source.names).caCertificates.length, 2);
  });

  test('CA only (no certificate) is valid', async () => {
    const v = validateTlsMaterial({ caPem: caA.certPem });
    assert.equal(v.certificate, undefined);
  });

  test('a missing CA file names the file and how to create a CA', async () => {
    const missing = join(dir, 'nope-ca.pem');
    await assert.rejects(loadAndValidate({ caFile: missing }), materialError(`ca_file "${missing}"`, 'ENOENT', 'meshfed tls ca create'));
  });

  test('a missing certificate or key file names that file', async () => {
    const missing = join(dir, 'nope.pem');
    await assert.rejects(
      loadAndValidate({ caFile: f('ca-a.pem'), certFile: missing, keyFile: f('a-key.pem') }),
      materialError(`cert_file "${missing}"`, 'meshfed tls cert create'),
    );
    await assert.rejects(
      loadAndValidate({ caFile: f('ca-a.pem'), certFile: f('a.pem'), keyFile: missing }),
      materialError(`key_file "${missing}"`),
    );
  });

  test('an unreadable file (a directory) names the file', async () => {
    await assert.rejects(loadAndValidate({ caFile: dir }), materialError(`cannot read ca_file "${dir}"`, 'permissions'));
  });

  test('a CA file that is not PEM', async () => {
    await assert.rejects(
      loadAndValidate({ caFile: f('garbage.pem') }),
      materialError(`ca_file "${f('garbage.pem')}" is not a PEM certificate`, '-----BEGIN CERTIFICATE-----'),
    );
  });

  test('a CA file holding a key says so', async () => {
    await assert.rejects(
      loadAndValidate({ caFile: f('a-key.pem') }),
      materialError(`ca_file "${f('a-key.pem')}" is not a PEM certificate (it holds a private key)`),
    );
  });

  test('a PEM block that is not a certificate', async () => {
    await assert.rejects(
      loadAndValidate({ caFile: f('broken.pem') }),
      materialError(`ca_file "${f('broken.pem')}": PEM block 1 is not a valid X.509 certificate`),
    );
  });

  test('a certificate file that is not PEM', async () => {
    await assert.rejects(
      loadAndValidate({ caFile: f('ca-a.pem'), certFile: f('garbage.pem'), keyFile: f('a-key.pem') }),
      materialError(`cert_file "${f('garbage.pem')}" is not a PEM certificate`),
    );
  });

  test('a key file that is not PEM', async () => {
    await assert.rejects(
      loadAndValidate({ caFile: f('ca-a.pem'), certFile: f('a.pem'), keyFile: f('garbage.pem') }),
      materialError(`key_file "${f('garbage.pem')}" is not a PEM private key;`, 'PRIVATE KEY'),
    );
  });

  test('swapped cert and key files are recognised', async () => {
    await assert.rejects(
      loadAndValidate({ caFile: f('ca-a.pem'), certFile: f('a-key.pem'), keyFile: f('a.pem') }),
      materialError(`cert_file "${f('a-key.pem')}" is not a PEM certificate (it holds a private key)`),
    );
    assert.throws(
      () => validateTlsMaterial({ caPem: caA.certPem, certPem: leafA.certPem, keyPem: leafA.certPem }),
      materialError('the private key (key_file) is not a PEM private key (it holds a certificate: are cert_file and key_file swapped?)'),
    );
  });

  test('an unusable (encrypted or corrupt) key', async () => {
    await assert.rejects(
      loadAndValidate({ caFile: f('ca-a.pem'), certFile: f('a.pem'), keyFile: f('encrypted-key.pem') }),
      materialError(`key_file "${f('encrypted-key.pem')}" cannot be read as a private key`, 'unencrypted PEM key'),
    );
  });

  test('a key that does not belong to the certificate', async () => {
    await assert.rejects(
      loadAndValidate({ caFile: f('ca-a.pem'), certFile: f('a.pem'), keyFile: f('a2-key.pem') }),
      materialError(`cert_file "${f('a.pem')}" and key_file "${f('a2-key.pem')}" do not belong together`),
    );
  });

  test('a certificate not signed by the CA', async () => {
    await assert.rejects(
      loadAndValidate({ caFile: f('ca-a.pem'), certFile: f('b.pem'), keyFile: f('b-key.pem') }),
      materialError(`cert_file "${f('b.pem')}"`, `is not signed by a CA in ca_file "${f('ca-a.pem')}"`, 'subject "CN=server.dc1.consul"'),
    );
  });

  test('an expired certificate', async () => {
    await assert.rejects(
      loadAndValidate({ caFile: f('ca-a.pem'), certFile: f('expired.pem'), keyFile: f('expired-key.pem') }),
      materialError(`cert_file "${f('expired.pem')}" expired on`, 'meshfed tls cert create'),
    );
  });

  test('a certificate not yet valid', async () => {
    await assert.rejects(
      loadAndValidate({ caFile: f('ca-a.pem'), certFile: f('future.pem'), keyFile: f('future-key.pem') }),
      materialError(`cert_file "${f('future.pem')}" is not valid before`, 'clock'),
    );
    // ...and valid once its time has come.
    const source = fileTlsSource({ caFile: f('ca-a.pem'), certFile: f('future.pem'), keyFile: f('future-key.pem') });
    validateTlsMaterial(await source.load(), source.names, { now: Date.now() + 10 * DAY + 60_000 });
  });

  test('cert_file without key_file, and key_file without cert_file', async () => {
    await assert.rejects(
      loadAndValidate({ caFile: f('ca-a.pem'), certFile: f('a.pem') }),
      materialError(`cert_file "${f('a.pem')}" is set but no private key is`, 'key_file'),
    );
    await assert.rejects(
      loadAndValidate({ caFile: f('ca-a.pem'), keyFile: f('a-key.pem') }),
      materialError(`key_file "${f('a-key.pem')}" is set but no certificate is`, 'cert_file'),
    );
  });

  test('fileTlsSource.changed(): false until a file changes, stat at most once per interval, true until reloaded', async () => {
    const caFile = join(dir, 'rot-ca.pem');
    const certFile = join(dir, 'rot.pem');
    const keyFile = join(dir, 'rot-key.pem');
    await writeFile(caFile, caA.certPem);
    await writeFile(certFile, leafA.certPem);
    await writeFile(keyFile, leafA.keyPem);
    let now = 5000;
    const source: TlsMaterialSource = fileTlsSource({ caFile, certFile, keyFile, clock: () => now });
    assert.equal(await source.changed(), true, 'nothing loaded yet');
    assert.equal((await source.load()).certPem, leafA.certPem);
    assert.equal(await source.changed(), false);

    // Replace the certificate the way rotation tools do (write aside, rename over).
    await writeFile(`${certFile}.tmp`, leafA2.certPem);
    await rename(`${certFile}.tmp`, certFile);
    now += 999;
    assert.equal(await source.changed(), false, 'throttled: no stat round within 1000 ms of the last');
    now += 1;
    assert.equal(await source.changed(), true);
    assert.equal(await source.changed(), true, 'stays true until load()');
    assert.equal((await source.load()).certPem, leafA2.certPem);
    now += 5000;
    assert.equal(await source.changed(), false);

    // A file that disappears is a change; once loaded (and failed), the same broken state is not.
    await rm(keyFile);
    now += 1000;
    assert.equal(await source.changed(), true);
    await assert.rejects(source.load(), materialError(`key_file "${keyFile}"`));
    now += 1000;
    assert.equal(await source.changed(), false);
  });

  test('memoryTlsSource: changed() only after replace(), until the next load()', async () => {
    const source = memoryTlsSource({ caPem: caA.certPem, certPem: leafA.certPem, keyPem: leafA.keyPem });
    assert.equal(await source.changed(), false);
    assert.equal((await source.load()).certPem, leafA.certPem);
    source.replace({ caPem: caA.certPem, certPem: leafA2.certPem, keyPem: leafA2.keyPem });
    assert.equal(await source.changed(), true);
    assert.equal((await source.load()).certPem, leafA2.certPem);
    assert.equal(await source.changed(), false);
    assert.throws(
      () => validateTlsMaterial({ caPem: 'x', certPem: leafA.certPem, keyPem: leafA.keyPem }, source.names),
      materialError('the in-memory CA certificate is not a PEM certificate'),
    );
  });
});
