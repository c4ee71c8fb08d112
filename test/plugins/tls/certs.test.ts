import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { MeshfedError } from '../../../src/core/errors.js';
import { createCaFiles, createCertFiles, generateCa, generateCert } from '../../../src/plugins/tls/certs.js';
import type { CertFiles } from '../../../src/plugins/tls/certs.js';
import { TlsErrorCode } from '../../../src/plugins/tls/errors.js';

const execFileAsync = promisify(execFile);

/** Run the real openssl CLI and return its stdout. */
async function openssl(...args: string[]): Promise<string> {
  const { stdout } = await execFileAsync('openssl', args);
  return stdout;
}

/**
 * The value of one X.509v3 extension as openssl prints it: `openssl x509 -noout -ext NAME` writes a
 * header line (`X509v3 Subject Alternative Name: …`) followed by indented value lines.
 */
async function extension(file: string, name: string): Promise<{ critical: boolean; value: string }> {
  const out = await openssl('x509', '-noout', '-ext', name, '-in', file);
  const [header, ...rest] = out.split('\n');
  if (header === undefined || !header.startsWith('X509v3 ')) assert.fail(`openssl printed no ${name} extension for ${file}: ${out}`);
  return {
    critical: header.includes('critical'),
    value: rest.map((l) => l.trim()).filter(Boolean).join(', '),
  };
}

async function sans(file: string): Promise<string> {
  return (await extension(file, 'subjectAltName')).value;
}

async function subjectCn(file: string): Promise<string> {
  // `subject=CN = server.dc2.consul` (OpenSSL 3) or `subject= /CN=…` (1.1 with other flags).
  const out = (await openssl('x509', '-noout', '-subject', '-nameopt', 'multiline', '-in', file)).trim();
  const m = /commonName\s*=\s*(.+)/.exec(out);
  assert.ok(m?.[1], `no CN in ${out}`);
  return m[1].trim();
}

function assertTlsError(code: string, pattern: RegExp): (err: unknown) => boolean {
  return (err: unknown) => {
    assert.ok(err instanceof MeshfedError, `expected a MeshfedError, got ${String(err)}`);
    assert.equal(err.code, code);
    assert.match(err.message, pattern);
    return true;
  };
}

describe('tls certs', () => {
  let root: string;
  let caDir: string;
  let ca: CertFiles;
  let outDirs = 0;

  /** A fresh output directory using the shared CA, so file-name indexes start at 0. */
  async function outDir(): Promise<string> {
    const dir = join(root, `out-${outDirs++}`);
    await mkdir(dir);
    return dir;
  }

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'meshfed-certs-'));
    caDir = join(root, 'ca');
    await mkdir(caDir);
    ca = await createCaFiles({ dir: caDir });
  });

  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  test('createCaFiles writes <domain>-agent-ca(-key).pem: a CA with a private key file', async () => {
    assert.equal(ca.certFile, join(caDir, 'consul-agent-ca.pem'));
    assert.equal(ca.keyFile, join(caDir, 'consul-agent-ca-key.pem'));
    assert.equal((await stat(ca.keyFile)).mode & 0o777, 0o600);
    const bc = await extension(ca.certFile, 'basicConstraints');
    assert.equal(bc.value, 'CA:TRUE');
    assert.ok(bc.critical);
    const ku = await extension(ca.certFile, 'keyUsage');
    assert.equal(ku.value, 'Digital Signature, Certificate Sign, CRL Sign');
    assert.match(await subjectCn(ca.certFile), /^meshfed Agent CA \d+$/);
    assert.match((await extension(ca.certFile, 'subjectKeyIdentifier')).value, /^([0-9A-F]{2}:){19}[0-9A-F]{2}$/);
    const x509 = new X509Certificate(await readFile(ca.certFile));
    assert.ok(x509.verify(x509.publicKey), 'self-signed');
    assert.match(await openssl('x509', '-noout', '-text', '-in', ca.certFile), /Signature Algorithm: sha256WithRSAEncryption/);
    assert.ok(!x509.serialNumber.startsWith('0') && Number.parseInt(x509.serialNumber.slice(0, 2), 16) < 0x80, 'positive minimal serial');
  });

  test('createCaFiles refuses to overwrite an existing CA', async () => {
    const before = await readFile(ca.certFile, 'utf8');
    await assert.rejects(
      createCaFiles({ dir: caDir }),
      assertTlsError(TlsErrorCode.FILE_EXISTS, /consul-agent-ca\.pem already exists; .*remove the file or create the CA in another directory/),
    );
    assert.equal(await readFile(ca.certFile, 'utf8'), before);
  });

  test('createCaFiles refuses when only the key file exists, and honours -domain', async () => {
    const dir = await outDir();
    const first = await createCaFiles({ dir, domain: 'example.' });
    assert.equal(first.certFile, join(dir, 'example-agent-ca.pem'));
    await rm(first.certFile);
    await assert.rejects(createCaFiles({ dir, domain: 'example' }), assertTlsError(TlsErrorCode.FILE_EXISTS, /example-agent-ca-key\.pem already exists/));
    assert.deepEqual(await readdir(dir), ['example-agent-ca-key.pem']);
  });

  test('server cert with -node: exact SANs, names, key usages; next run takes index 1', async () => {
    const dir = await outDir();
    const opts = { dir, caFile: ca.certFile, caKeyFile: ca.keyFile, kind: 'server', datacenter: 'dc2', node: 's1' } as const;
    const first = await createCertFiles(opts);
    assert.equal(first.certFile, join(dir, 'dc2-server-consul-0.pem'));
    assert.equal(first.keyFile, join(dir, 'dc2-server-consul-0-key.pem'));
    assert.equal(await sans(first.certFile), 'DNS:s1.server.dc2.consul, DNS:server.dc2.consul, DNS:localhost, IP Address:127.0.0.1');
    assert.equal(await subjectCn(first.certFile), 'server.dc2.consul');
    assert.equal((await extension(first.certFile, 'extendedKeyUsage')).value, 'TLS Web Server Authentication, TLS Web Client Authentication');
    assert.equal((await extension(first.certFile, 'keyUsage')).value, 'Digital Signature, Key Encipherment');
    assert.equal((await extension(first.certFile, 'basicConstraints')).value, 'CA:FALSE');
    assert.equal((await stat(first.keyFile)).mode & 0o777, 0o600);

    // Issued by the CA: real chain verification, and the AKI is the CA's SKI.
    assert.match(await openssl('verify', '-CAfile', ca.certFile, first.certFile), /: OK/);
    const ski = (await extension(ca.certFile, 'subjectKeyIdentifier')).value;
    assert.ok((await extension(first.certFile, 'authorityKeyIdentifier')).value.includes(ski));
    assert.match(await openssl('x509', '-noout', '-text', '-in', first.certFile), /Signature Algorithm: sha256WithRSAEncryption/);
    // The key file holds the certificate's key.
    const certModulus = await openssl('x509', '-noout', '-modulus', '-in', first.certFile);
    const keyModulus = await openssl('rsa', '-noout', '-modulus', '-in', first.keyFile);
    assert.equal(certModulus, keyModulus);

    const second = await createCertFiles(opts);
    assert.equal(second.certFile, join(dir, 'dc2-server-consul-1.pem'));
    assert.equal(second.keyFile, join(dir, 'dc2-server-consul-1-key.pem'));
    assert.notEqual(new X509Certificate(await readFile(first.certFile)).serialNumber, new X509Certificate(await readFile(second.certFile)).serialNumber);
  });

  test('the file index skips a number whose key file alone exists', async () => {
    const dir = await outDir();
    const first = await createCertFiles({ dir, caFile: ca.certFile, caKeyFile: ca.keyFile, kind: 'client' });
    await rm(first.certFile);
    const second = await createCertFiles({ dir, caFile: ca.certFile, caKeyFile: ca.keyFile, kind: 'client' });
    assert.equal(second.certFile, join(dir, 'dc1-client-consul-1.pem'));
  });

  test('additional DNS names and IPs come first', async () => {
    const dir = await outDir();
    const files = await createCertFiles({
      dir,
      caFile: ca.certFile,
      caKeyFile: ca.keyFile,
      kind: 'server',
      datacenter: 'dc2',
      node: 's1',
      additionalDnsNames: ['gw.example.com', '*.server.dc2.consul'],
      additionalIpAddresses: ['10.0.0.7', '::1'],
    });
    assert.equal(
      await sans(files.certFile),
      'DNS:gw.example.com, DNS:*.server.dc2.consul, DNS:s1.server.dc2.consul, DNS:server.dc2.consul, DNS:localhost, ' +
        'IP Address:10.0.0.7, IP Address:0:0:0:0:0:0:0:1, IP Address:127.0.0.1',
    );
  });

  test('server cert without -node has no node SAN; a trailing dot on the domain is dropped', async () => {
    const dir = await outDir();
    const files = await createCertFiles({ dir, caFile: ca.certFile, caKeyFile: ca.keyFile, kind: 'server', domain: 'consul.' });
    assert.equal(files.certFile, join(dir, 'dc1-server-consul-0.pem'));
    assert.equal(await sans(files.certFile), 'DNS:server.dc1.consul, DNS:localhost, IP Address:127.0.0.1');
  });

  test('client cert: client.<dc>.<domain>, server and client auth', async () => {
    const dir = await outDir();
    const files = await createCertFiles({ dir, caFile: ca.certFile, caKeyFile: ca.keyFile, kind: 'client', datacenter: 'dc3', additionalDnsNames: ['extra.local'] });
    assert.equal(files.certFile, join(dir, 'dc3-client-consul-0.pem'));
    assert.equal(files.keyFile, join(dir, 'dc3-client-consul-0-key.pem'));
    assert.equal(await subjectCn(files.certFile), 'client.dc3.consul');
    assert.equal(await sans(files.certFile), 'DNS:extra.local, DNS:client.dc3.consul, DNS:localhost, IP Address:127.0.0.1');
    assert.equal((await extension(files.certFile, 'extendedKeyUsage')).value, 'TLS Web Server Authentication, TLS Web Client Authentication');
  });

  test('cli cert: cli.client.<dc>.<domain>, client auth only, no loopback IP', async () => {
    const dir = await outDir();
    const files = await createCertFiles({ dir, caFile: ca.certFile, caKeyFile: ca.keyFile, kind: 'cli' });
    assert.equal(files.certFile, join(dir, 'dc1-cli-consul-0.pem'));
    assert.equal(files.keyFile, join(dir, 'dc1-cli-consul-0-key.pem'));
    assert.equal(await subjectCn(files.certFile), 'cli.client.dc1.consul');
    assert.equal(await sans(files.certFile), 'DNS:cli.client.dc1.consul, DNS:localhost');
    assert.equal((await extension(files.certFile, 'extendedKeyUsage')).value, 'TLS Web Client Authentication');
  });

  test('the CA files default to the domain names in dir', async () => {
    const files = await createCertFiles({ dir: caDir, kind: 'server', node: 'n1' });
    assert.equal(files.certFile, join(caDir, 'dc1-server-consul-0.pem'));
    assert.match(await openssl('verify', '-CAfile', ca.certFile, files.certFile), /: OK/);
  });

  test('-node without -server is a usage error and writes nothing', async () => {
    const dir = await outDir();
    for (const kind of ['client', 'cli'] as const) {
      await assert.rejects(
        createCertFiles({ dir, caFile: ca.certFile, caKeyFile: ca.keyFile, kind, node: 's1' }),
        assertTlsError(TlsErrorCode.USAGE, /^-node requires -server$/),
      );
    }
    assert.deepEqual(await readdir(dir), []);
  });

  test('a missing CA file names the file and suggests `meshfed tls ca create`', async () => {
    const dir = await outDir();
    await assert.rejects(
      createCertFiles({ dir, kind: 'server' }),
      assertTlsError(TlsErrorCode.FILE, new RegExp(`${join(dir, 'consul-agent-ca.pem').replace(/[.\\]/g, '\\$&')}.*meshfed tls ca create`)),
    );
    await assert.rejects(
      createCertFiles({ dir, caFile: ca.certFile, caKeyFile: join(dir, 'nope-key.pem'), kind: 'server' }),
      assertTlsError(TlsErrorCode.FILE, /nope-key\.pem.*meshfed tls ca create/),
    );
    assert.deepEqual(await readdir(dir), []);
  });

  test('a CA key that does not belong to the CA certificate is refused', async () => {
    const dir = await outDir();
    const other = await createCaFiles({ dir });
    await assert.rejects(
      createCertFiles({ dir, caFile: ca.certFile, caKeyFile: other.keyFile, kind: 'server' }),
      assertTlsError(TlsErrorCode.FILE, /CA key file .*consul-agent-ca-key\.pem does not belong to CA certificate file .*their public keys differ/),
    );
    // A leaf certificate is not a CA.
    const leaf = await createCertFiles({ dir, kind: 'client' });
    await assert.rejects(
      createCertFiles({ dir, caFile: leaf.certFile, caKeyFile: leaf.keyFile, kind: 'server' }),
      assertTlsError(TlsErrorCode.FILE, /is not a CA certificate/),
    );
  });

  test('generateCert validates its options', async () => {
    const pair = { certPem: await readFile(ca.certFile, 'utf8'), keyPem: await readFile(ca.keyFile, 'utf8') };
    await assert.rejects(generateCert({ ca: pair, kind: 'server', additionalIpAddresses: ['not-an-ip'] }), assertTlsError(TlsErrorCode.USAGE, /not-an-ip/));
    await assert.rejects(generateCert({ ca: pair, kind: 'server', days: 0 }), assertTlsError(TlsErrorCode.USAGE, /-days/));
    await assert.rejects(generateCa({ days: -1 }), assertTlsError(TlsErrorCode.USAGE, /-days/));
  });

  test('generateCa honours commonName and days', async () => {
    const pair = await generateCa({ commonName: 'Test CA', days: 10 });
    const x509 = new X509Certificate(pair.certPem);
    assert.equal(x509.subject, 'CN=Test CA');
    assert.equal(x509.issuer, 'CN=Test CA');
    const lifetime = Date.parse(x509.validTo) - Date.parse(x509.validFrom);
    assert.equal(lifetime, 10 * 24 * 60 * 60 * 1000);
    assert.ok(x509.ca);
  });
});
