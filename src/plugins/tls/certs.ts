/**
 * Certificate authority and agent certificates, the way `consul tls ca create` and
 * `consul tls cert create` make them (spec §10): the same names, SANs, key usages and file names,
 * so a meshfed server and a Consul server can present each other's kind of certificate.
 *
 * X.509 structures are built and signed with node-forge; RSA keys come from Node's native
 * `crypto.generateKeyPair` because forge's pure-JS key generation takes seconds.
 */
import { X509Certificate, createPrivateKey, generateKeyPair, randomBytes, randomInt } from 'node:crypto';
import { readFile, stat, unlink, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import forge from 'node-forge';
import { errorMessage } from '../../core/errors.js';
import type { MeshfedError } from '../../core/errors.js';
import { trimDomain } from '../../core/protocol.js';
import { TlsErrorCode, errorCode, tlsError } from './errors.js';
import { keyMatchesCertificate } from './material.js';

/** A certificate and its private key, both PEM-encoded. */
export interface PemPair {
  /** The certificate, `-----BEGIN CERTIFICATE-----`. */
  readonly certPem: string;
  /** The unencrypted PKCS#8 private key, `-----BEGIN PRIVATE KEY-----`. */
  readonly keyPem: string;
}

/** Which kind of agent certificate to create: the `-server`, `-client` or `-cli` flag. */
export type CertKind = 'server' | 'client' | 'cli';

/** The certificate kinds, in flag order. */
export const CERT_KINDS: readonly CertKind[] = Object.freeze(['server', 'client', 'cli']);

/** Options of {@link generateCa}. */
export interface GenerateCaOptions {
  /** Cluster domain (default `consul`). The CA itself does not embed it; it names the CA files. */
  readonly domain?: string;
  /** Validity in days (default 1825, five years). */
  readonly days?: number;
  /** Subject common name (default `meshfed Agent CA <random number>`). */
  readonly commonName?: string;
  /** Start of validity (default: one minute ago). Tests use it to make expired certificates. */
  readonly notBefore?: Date;
}

/** Options of {@link generateCert}. */
export interface GenerateCertOptions {
  /** The signing CA's certificate and key. */
  readonly ca: PemPair;
  /** Server, client or CLI certificate. */
  readonly kind: CertKind;
  /** Datacenter the certificate is for (default `dc1`). */
  readonly datacenter?: string;
  /** Cluster domain (default `consul`; a trailing `.` is ignored). */
  readonly domain?: string;
  /** Server node name: adds the SAN `<node>.server.<dc>.<domain>`. Only with kind `server`. */
  readonly node?: string;
  /** DNS SANs listed before the generated ones (`-additional-dnsname`). */
  readonly additionalDnsNames?: readonly string[];
  /** IP SANs listed before the generated ones (`-additional-ipaddress`). */
  readonly additionalIpAddresses?: readonly string[];
  /** Validity in days (default 365). */
  readonly days?: number;
  /** Start of validity (default: one minute ago). Tests use it to make expired certificates. */
  readonly notBefore?: Date;
}

/** Paths of a written certificate and its key. */
export interface CertFiles {
  /** The certificate file. */
  readonly certFile: string;
  /** The private-key file (mode 0600). */
  readonly keyFile: string;
}

/** Options of {@link createCaFiles}. */
export interface CreateCaFilesOptions {
  /** Directory to write `<domain>-agent-ca.pem` and `<domain>-agent-ca-key.pem` into. */
  readonly dir: string;
  /** Cluster domain (default `consul`). */
  readonly domain?: string;
  /** Validity in days (default 1825). */
  readonly days?: number;
  /** Subject common name (default `meshfed Agent CA <random number>`). */
  readonly commonName?: string;
}

/** Options of {@link createCertFiles}: those of {@link generateCert}, with CA files instead of the CA. */
export interface CreateCertFilesOptions extends Omit<GenerateCertOptions, 'ca' | 'notBefore'> {
  /** Directory to write the certificate and key into (and where the CA files are by default). */
  readonly dir: string;
  /** CA certificate file (default `<dir>/<domain>-agent-ca.pem`). */
  readonly caFile?: string;
  /** CA key file (default `<dir>/<domain>-agent-ca-key.pem`). */
  readonly caKeyFile?: string;
}

const DEFAULT_DOMAIN = 'consul';
const DEFAULT_DATACENTER = 'dc1';
const DEFAULT_CA_DAYS = 1825;
const DEFAULT_CERT_DAYS = 365;
const DAY_MS = 24 * 60 * 60 * 1000;
/** Backdating tolerates a peer whose clock is slightly behind the issuer's. */
const BACKDATE_MS = 60 * 1000;
const RSA_BITS = 2048;
/** Most certificates an index search will skip before giving up (a runaway guard, not a limit anyone meets). */
const MAX_FILE_INDEX = 100_000;

/** ASN.1 universal tag number of UTF8String. */
const ASN1_UTF8: number = forge.asn1.Type.UTF8;

const generateKeyPairAsync = promisify(generateKeyPair);

/** The file names of a domain's CA, as `consul tls ca create` writes them. */
export function caFileNames(domain: string = DEFAULT_DOMAIN): { readonly certFile: string; readonly keyFile: string } {
  const d = trimDomain(domain);
  return { certFile: `${d}-agent-ca.pem`, keyFile: `${d}-agent-ca-key.pem` };
}

/** The file-name prefix of agent certificates: `<dc>-<kind>-<domain>` (then `-<n>.pem`, `-<n>-key.pem`). */
export function certFilePrefix(kind: CertKind, datacenter: string = DEFAULT_DATACENTER, domain: string = DEFAULT_DOMAIN): string {
  return `${datacenter}-${kind}-${trimDomain(domain)}`;
}

/** The subject common name of an agent certificate (spec §10). */
export function certCommonName(kind: CertKind, datacenter: string, domain: string): string {
  const d = trimDomain(domain);
  switch (kind) {
    case 'server':
      return `server.${datacenter}.${d}`;
    case 'client':
      return `client.${datacenter}.${d}`;
    case 'cli':
      return `cli.client.${datacenter}.${d}`;
  }
}

/** Create a self-signed CA certificate and its RSA key. */
export async function generateCa(options: GenerateCaOptions = {}): Promise<PemPair> {
  const days = checkDays(options.days ?? DEFAULT_CA_DAYS);
  const commonName = options.commonName ?? `meshfed Agent CA ${randomInt(1, 2 ** 47)}`;
  if (commonName.trim() === '') throw usage('the CA common name must not be empty');

  const key = await newRsaKey();
  const cert = forge.pki.createCertificate();
  cert.publicKey = key.publicKey;
  cert.serialNumber = randomSerialHex();
  setValidity(cert, options.notBefore, days);
  const subject = [utf8CommonName(commonName)];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: 'basicConstraints', critical: true, cA: true },
    { name: 'keyUsage', critical: true, keyCertSign: true, cRLSign: true, digitalSignature: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(key.privateKey, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: key.keyPem };
}

/** Create an agent certificate signed by `options.ca`, following `consul tls cert create` (spec §10). */
export async function generateCert(options: GenerateCertOptions): Promise<PemPair> {
  const kind = checkKind(options.kind);
  const datacenter = options.datacenter ?? DEFAULT_DATACENTER;
  const domain = trimDomain(options.domain ?? DEFAULT_DOMAIN);
  const node = options.node ?? '';
  const days = checkDays(options.days ?? DEFAULT_CERT_DAYS);
  if (node !== '' && kind !== 'server') throw usage('-node requires -server');
  if (datacenter === '') throw usage('the datacenter must not be empty');
  if (domain === '') throw usage('the domain must not be empty');
  const extraDns = options.additionalDnsNames ?? [];
  const extraIps = options.additionalIpAddresses ?? [];
  for (const name of extraDns) {
    if (name.trim() === '' || /\s/.test(name)) throw usage(`additional DNS name ${JSON.stringify(name)} is not a DNS name`);
  }
  for (const ip of extraIps) {
    if (isIP(ip) === 0) throw usage(`additional IP address ${JSON.stringify(ip)} is not an IPv4 or IPv6 address`);
  }

  const ca = parseCa(options.ca, 'the CA certificate', 'the CA key');
  const commonName = certCommonName(kind, datacenter, domain);
  const dnsNames = [...extraDns];
  if (kind === 'server' && node !== '') dnsNames.push(`${node}.server.${datacenter}.${domain}`);
  dnsNames.push(commonName, 'localhost');
  // The CLI certificate is client-only and never served, so it gets no loopback IP (spec §10).
  const ips = kind === 'cli' ? [...extraIps] : [...extraIps, '127.0.0.1'];

  const key = await newRsaKey();
  const cert = forge.pki.createCertificate();
  cert.publicKey = key.publicKey;
  cert.serialNumber = randomSerialHex();
  setValidity(cert, options.notBefore, days);
  cert.setSubject([utf8CommonName(commonName)]);
  cert.setIssuer(ca.subject);
  cert.setExtensions([
    { name: 'basicConstraints', critical: true, cA: false },
    { name: 'keyUsage', critical: true, digitalSignature: true, keyEncipherment: true },
    { name: 'extKeyUsage', serverAuth: kind !== 'cli', clientAuth: true },
    { name: 'subjectKeyIdentifier' },
    { name: 'authorityKeyIdentifier', keyIdentifier: ca.keyIdentifier },
    {
      name: 'subjectAltName',
      altNames: [
        ...dnsNames.map((value) => ({ type: 2, value })),
        ...ips.map((ip) => ({ type: 7, ip })),
      ],
    },
  ]);
  cert.sign(ca.privateKey, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: key.keyPem };
}

/**
 * Write a new CA into `dir` as `<domain>-agent-ca.pem` and `<domain>-agent-ca-key.pem` (key mode 0600).
 * Never overwrites: if either file exists, fails with `MESHFED_ERR_TLS_FILE_EXISTS` before generating anything.
 */
export async function createCaFiles(options: CreateCaFilesOptions): Promise<CertFiles> {
  const names = caFileNames(options.domain ?? DEFAULT_DOMAIN);
  const certFile = join(options.dir, names.certFile);
  const keyFile = join(options.dir, names.keyFile);
  for (const file of [certFile, keyFile]) {
    if (await fileExists(file)) {
      throw tlsError(
        TlsErrorCode.FILE_EXISTS,
        `${file} already exists; a CA is never overwritten: remove the file or create the CA in another directory`,
      );
    }
  }
  const ca = await generateCa({
    days: options.days ?? DEFAULT_CA_DAYS,
    ...(options.commonName === undefined ? {} : { commonName: options.commonName }),
  });
  await writePair(certFile, keyFile, ca);
  return { certFile, keyFile };
}

/**
 * Write a new agent certificate into `dir` as `<dc>-<kind>-<domain>-<n>.pem` and `…-<n>-key.pem`,
 * `n` being the first index for which neither file exists. The CA defaults to the domain's CA files in `dir`.
 */
export async function createCertFiles(options: CreateCertFilesOptions): Promise<CertFiles> {
  const kind = checkKind(options.kind);
  const domain = trimDomain(options.domain ?? DEFAULT_DOMAIN);
  const datacenter = options.datacenter ?? DEFAULT_DATACENTER;
  // Check usage before touching any file, so `-node` without `-server` is reported as such.
  if ((options.node ?? '') !== '' && kind !== 'server') throw usage('-node requires -server');
  checkDays(options.days ?? DEFAULT_CERT_DAYS);

  const defaults = caFileNames(domain);
  const caFile = options.caFile ?? join(options.dir, defaults.certFile);
  const caKeyFile = options.caKeyFile ?? join(options.dir, defaults.keyFile);
  const caPem = await readCaFile(caFile, 'CA certificate');
  const caKeyPem = await readCaFile(caKeyFile, 'CA key');
  // Fails with the file names when the CA is unusable; generateCert repeats the cheap check.
  parseCa({ certPem: caPem, keyPem: caKeyPem }, `CA certificate file ${caFile}`, `CA key file ${caKeyFile}`);

  const pair = await generateCert({
    ca: { certPem: caPem, keyPem: caKeyPem },
    kind,
    datacenter,
    domain,
    ...(options.node === undefined ? {} : { node: options.node }),
    additionalDnsNames: options.additionalDnsNames ?? [],
    additionalIpAddresses: options.additionalIpAddresses ?? [],
    days: options.days ?? DEFAULT_CERT_DAYS,
  });

  const prefix = certFilePrefix(kind, datacenter, domain);
  for (let n = 0; n < MAX_FILE_INDEX; n++) {
    const certFile = join(options.dir, `${prefix}-${n}.pem`);
    const keyFile = join(options.dir, `${prefix}-${n}-key.pem`);
    if ((await fileExists(certFile)) || (await fileExists(keyFile))) continue;
    await writePair(certFile, keyFile, pair);
    return { certFile, keyFile };
  }
  throw tlsError(TlsErrorCode.FILE, `no free file name ${prefix}-<n>.pem in ${options.dir}; remove old certificates`);
}

// ---------------------------------------------------------------------------------------------

interface RsaKey {
  readonly keyPem: string;
  readonly privateKey: forge.pki.rsa.PrivateKey;
  readonly publicKey: forge.pki.rsa.PublicKey;
}

async function newRsaKey(): Promise<RsaKey> {
  const { publicKey, privateKey } = await generateKeyPairAsync('rsa', {
    modulusLength: RSA_BITS,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  return {
    keyPem: privateKey,
    privateKey: forge.pki.privateKeyFromPem(privateKey),
    publicKey: forge.pki.publicKeyFromPem(publicKey),
  };
}

/**
 * A random positive 127-bit serial. The top byte is forced into 0x40–0x7f so the DER INTEGER is
 * positive and minimally encoded (Go's parser rejects a redundant leading zero byte).
 */
/**
 * A CN attribute encoded as UTF8String (forge defaults to PrintableString, which cannot hold `_`
 * or `*`). @types/node-forge types `valueTagClass` as a tag *class*; forge reads it as a tag *type*.
 */
function utf8CommonName(value: string): forge.pki.CertificateField {
  return { name: 'commonName', value, valueTagClass: ASN1_UTF8 };
}

function randomSerialHex(): string {
  const bytes = randomBytes(16);
  bytes.writeUInt8((bytes.readUInt8(0) & 0x3f) | 0x40, 0);
  return bytes.toString('hex');
}

function setValidity(cert: forge.pki.Certificate, notBefore: Date | undefined, days: number): void {
  const start = notBefore ?? new Date(Date.now() - BACKDATE_MS);
  cert.validity.notBefore = start;
  cert.validity.notAfter = new Date(start.getTime() + days * DAY_MS);
}

interface ParsedCa {
  readonly subject: forge.pki.CertificateField[];
  readonly keyIdentifier: string;
  readonly privateKey: forge.pki.rsa.PrivateKey;
}

/** Parse and check a CA pair; `certName`/`keyName` name the inputs in error messages. */
function parseCa(ca: PemPair, certName: string, keyName: string): ParsedCa {
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(ca.certPem);
  } catch (err) {
    throw caFileError(`${certName} is not a PEM certificate (${errorMessage(err)}); point it at the CA's .pem file`, err);
  }
  if (!x509.ca) {
    throw caFileError(`${certName} is not a CA certificate (basic constraints CA:FALSE); use the file written by \`meshfed tls ca create\``);
  }
  let matches: boolean;
  try {
    matches = keyMatchesCertificate(x509, createPrivateKey(ca.keyPem));
  } catch (err) {
    throw caFileError(`${keyName} is not a PEM private key (${errorMessage(err)}); point it at the CA's -key.pem file`, err);
  }
  if (!matches) {
    throw caFileError(`${keyName} does not belong to ${certName}: their public keys differ; use the key created together with that CA`);
  }

  let cert: forge.pki.Certificate;
  let privateKey: forge.pki.rsa.PrivateKey;
  try {
    cert = forge.pki.certificateFromPem(ca.certPem);
    privateKey = forge.pki.privateKeyFromPem(ca.keyPem);
  } catch (err) {
    throw caFileError(
      `${certName} cannot sign certificates here (${errorMessage(err)}); only RSA CAs are supported, create one with \`meshfed tls ca create\``,
      err,
    );
  }
  // forge keeps parsed attribute values as raw bytes but UTF-8-encodes UTF8String values again on
  // output; decode them first so a non-ASCII CA subject is copied into the issuer unchanged.
  const subject = cert.subject.attributes.map((attr) =>
    (attr.valueTagClass as number | undefined) === ASN1_UTF8 && typeof attr.value === 'string'
      ? { ...attr, value: forge.util.decodeUtf8(attr.value) }
      : attr,
  );
  // The authority key identifier must equal the CA's own subject key identifier when it has one
  // (a CA made by another tool may compute it differently from forge).
  const ski: { subjectKeyIdentifier?: string } | undefined = cert.getExtension('subjectKeyIdentifier');
  const keyIdentifier = ski?.subjectKeyIdentifier
    ? forge.util.hexToBytes(ski.subjectKeyIdentifier)
    : cert.generateSubjectKeyIdentifier().getBytes();
  return { subject, keyIdentifier, privateKey };
}

function caFileError(message: string, cause?: unknown): MeshfedError {
  return tlsError(TlsErrorCode.FILE, message, cause);
}

function usage(message: string): MeshfedError {
  return tlsError(TlsErrorCode.USAGE, message);
}

function checkKind(kind: string): CertKind {
  if (!(CERT_KINDS as readonly string[]).includes(kind)) {
    throw usage(`certificate kind ${JSON.stringify(kind)} is not one of server, client, cli; pass exactly one of -server, -client, -cli`);
  }
  return kind as CertKind;
}

function checkDays(days: number): number {
  if (!Number.isInteger(days) || days <= 0) throw usage(`-days must be a positive whole number of days, got ${days}`);
  return days;
}

async function readCaFile(file: string, what: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    const hint =
      errorCode(err) === 'ENOENT'
        ? `create a CA with \`meshfed tls ca create\` first, or give the path of an existing ${what} file`
        : 'check the path and its permissions';
    throw tlsError(TlsErrorCode.FILE, `cannot read ${what} file ${file}: ${errorMessage(err)}; ${hint}`, err);
  }
}

async function fileExists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch (err) {
    if (errorCode(err) === 'ENOENT') return false;
    throw tlsError(TlsErrorCode.FILE, `cannot check whether ${file} exists: ${errorMessage(err)}`, err);
  }
}

/** Write cert then key with O_EXCL; if the key cannot be written, the cert is removed again. */
async function writePair(certFile: string, keyFile: string, pair: PemPair): Promise<void> {
  await writeExclusive(certFile, pair.certPem, 0o644);
  try {
    await writeExclusive(keyFile, pair.keyPem, 0o600);
  } catch (err) {
    await unlink(certFile).catch(() => undefined);
    throw err;
  }
}

async function writeExclusive(file: string, data: string, mode: number): Promise<void> {
  try {
    await writeFile(file, data, { flag: 'wx', mode });
  } catch (err) {
    if (errorCode(err) === 'EEXIST') {
      throw tlsError(TlsErrorCode.FILE_EXISTS, `${file} already exists; remove it or write into another directory`, err);
    }
    throw tlsError(TlsErrorCode.FILE, `cannot write ${file}: ${errorMessage(err)}; check that the directory exists and is writable`, err);
  }
}
