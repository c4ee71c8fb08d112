/**
 * TLS material (CA bundle, certificate, key): where it comes from ({@link TlsMaterialSource}) and
 * whether it is usable ({@link validateTlsMaterial}). Every problem is reported as one
 * `MESHFED_ERR_TLS_MATERIAL` error that names the file and says how to fix it, so a bad
 * configuration fails at boot instead of at the first handshake.
 */
import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { abortError, errorMessage } from '../../core/errors.js';
import type { MeshfedError } from '../../core/errors.js';
import { TlsErrorCode, errorCode, tlsError } from './errors.js';

/** PEM-encoded TLS material. The CA may be a bundle; the certificate file may carry intermediates after the leaf. */
export interface TlsMaterial {
  /** One or more CA certificates trusted for peers (`ca_file`). */
  readonly caPem: string;
  /** This agent's certificate, leaf first (`cert_file`). */
  readonly certPem?: string;
  /** The private key of the certificate (`key_file`). */
  readonly keyPem?: string;
}

/** How each piece of material is named in error messages, e.g. `ca_file "/etc/meshfed/ca.pem"`. */
export interface TlsMaterialNames {
  /** Names the CA bundle. */
  readonly ca: string;
  /** Names the certificate. */
  readonly cert: string;
  /** Names the private key. */
  readonly key: string;
}

/** Where TLS material comes from, and whether it changed since it was last loaded. */
export interface TlsMaterialSource {
  /** One line for logs, e.g. `files ca=/etc/ca.pem cert=… key=…`. */
  describe(): string;
  /** Names used in validation errors; sources without it get generic names. */
  readonly names?: TlsMaterialNames;
  /** Read the material. Fails with `MESHFED_ERR_TLS_MATERIAL` naming the piece that cannot be read. */
  load(signal?: AbortSignal): Promise<TlsMaterial>;
  /**
   * Whether the material may differ from what the last `load()` returned. Cheap and throttled by
   * the source, so it can be asked on every handshake. Stays true until the next `load()`.
   */
  changed(): Promise<boolean>;
}

/** A source that names its material (every built-in source does). */
export interface NamedTlsMaterialSource extends TlsMaterialSource {
  /** Names used in validation errors. */
  readonly names: TlsMaterialNames;
}

/** A source holding material in memory; {@link MemoryTlsSource.replace} swaps it. */
export interface MemoryTlsSource extends NamedTlsMaterialSource {
  /** Replace the material: `changed()` is true from now until the next `load()`. */
  replace(material: TlsMaterial): void;
}

/** Options of {@link fileTlsSource}. */
export interface FileTlsSourceOptions {
  /** CA bundle file (`ca_file`). */
  readonly caFile: string;
  /** Certificate file (`cert_file`). */
  readonly certFile?: string;
  /** Private-key file (`key_file`). */
  readonly keyFile?: string;
  /** Milliseconds, monotonic (default `performance.now`). Injected by tests to drive the throttle. */
  readonly clock?: () => number;
  /** Least time between two stat rounds in `changed()` (default 1000 ms). */
  readonly checkIntervalMs?: number;
}

/** Options of {@link validateTlsMaterial}. */
export interface ValidateTlsMaterialOptions {
  /** Current time in ms since the epoch, for the validity check (default `Date.now()`). */
  readonly now?: number;
}

/** What validation learned about valid material. */
export interface ValidatedTlsMaterial {
  /** Every certificate of the CA bundle. */
  readonly caCertificates: readonly X509Certificate[];
  /** The leaf certificate, when a certificate is configured. */
  readonly certificate?: X509Certificate;
}

/** Generic names, for sources that do not name their material. */
export const DEFAULT_TLS_MATERIAL_NAMES: TlsMaterialNames = Object.freeze({
  ca: 'the CA certificate (ca_file)',
  cert: 'the certificate (cert_file)',
  key: 'the private key (key_file)',
});

const DEFAULT_CHECK_INTERVAL_MS = 1000;
const CERT_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;
const KEY_BLOCK = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/;

/** Material read from files. `changed()` compares each file's mtime, size and inode, at most once per interval. */
export function fileTlsSource(options: FileTlsSourceOptions): NamedTlsMaterialSource {
  return new FileTlsSource(options);
}

/** Material held in memory (tests, material fetched from elsewhere). */
export function memoryTlsSource(material: TlsMaterial, names: TlsMaterialNames = MEMORY_NAMES): MemoryTlsSource {
  return new MemoryTlsSourceImpl(material, names);
}

/**
 * Check that material is usable: PEM certificates and key, the key matching the certificate, the
 * certificate chaining to a CA of the bundle, inside its validity period, and cert and key given
 * together. Throws the first problem as a `MESHFED_ERR_TLS_MATERIAL` error naming the piece.
 */
export function validateTlsMaterial(
  material: TlsMaterial,
  names: TlsMaterialNames = DEFAULT_TLS_MATERIAL_NAMES,
  options: ValidateTlsMaterialOptions = {},
): ValidatedTlsMaterial {
  const hasCert = nonEmpty(material.certPem);
  const hasKey = nonEmpty(material.keyPem);
  if (hasCert && !hasKey) {
    throw materialError(`${names.cert} is set but no private key is; set key_file to the certificate's key as well (or neither)`);
  }
  if (hasKey && !hasCert) {
    throw materialError(`${names.key} is set but no certificate is; set cert_file to the key's certificate as well (or neither)`);
  }

  const caCertificates = parseCertificates(material.caPem, names.ca, 'point it at the CA certificate (the …-agent-ca.pem file, not the key)');
  if (!hasCert || !hasKey) return { caCertificates };

  const [certificate, ...intermediates] = parseCertificates(
    material.certPem,
    names.cert,
    'point it at the certificate file (…-<n>.pem, not …-<n>-key.pem)',
  );
  if (!certificate) throw materialError(`${names.cert} contains no certificate`);

  if (!KEY_BLOCK.test(material.keyPem)) {
    const hint = material.keyPem.includes('-----BEGIN CERTIFICATE-----') ? ' (it holds a certificate: are cert_file and key_file swapped?)' : '';
    throw materialError(
      `${names.key} is not a PEM private key${hint}; expected a "-----BEGIN … PRIVATE KEY-----" block: point it at the key file written with the certificate (…-<n>-key.pem)`,
    );
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(material.keyPem);
  } catch (err) {
    throw materialError(
      `${names.key} cannot be read as a private key (${errorMessage(err)}); use an unencrypted PEM key (encrypted keys are not supported)`,
      err,
    );
  }
  if (!keyMatchesCertificate(certificate, key)) {
    throw materialError(
      `${names.cert} and ${names.key} do not belong together: the key is not the certificate's key; use the key file created together with the certificate`,
    );
  }
  if (!chainsToCa(certificate, intermediates, caCertificates)) {
    throw materialError(
      `${names.cert} (subject ${oneLine(certificate.subject)}, issuer ${oneLine(certificate.issuer)}) is not signed by a CA in ${names.ca}; ` +
        'issue the certificate from that CA (meshfed tls cert create) or add its CA to the CA file',
    );
  }
  const now = options.now ?? Date.now();
  const validFrom = Date.parse(certificate.validFrom);
  const validTo = Date.parse(certificate.validTo);
  if (now > validTo) {
    throw materialError(`${names.cert} expired on ${certificate.validTo}; create a new certificate (meshfed tls cert create) and replace the files`);
  }
  if (now < validFrom) {
    throw materialError(`${names.cert} is not valid before ${certificate.validFrom}; check this host's clock, or use a certificate whose validity has started`);
  }
  return { caCertificates, certificate };
}

/** Whether `key` is the private key of `cert` (their public keys are equal). */
export function keyMatchesCertificate(cert: X509Certificate, key: KeyObject): boolean {
  const fromKey = createPublicKey(key).export({ type: 'spki', format: 'der' });
  const fromCert = cert.publicKey.export({ type: 'spki', format: 'der' });
  return fromKey.equals(fromCert);
}

/** The PEM certificate blocks of a file, in order. */
export function splitPemCertificates(pem: string): string[] {
  return pem.match(CERT_BLOCK) ?? [];
}

// ---------------------------------------------------------------------------------------------

const MEMORY_NAMES: TlsMaterialNames = Object.freeze({
  ca: 'the in-memory CA certificate',
  cert: 'the in-memory certificate',
  key: 'the in-memory private key',
});

function nonEmpty(s: string | undefined): s is string {
  return s !== undefined && s.trim() !== '';
}

function materialError(message: string, cause?: unknown): MeshfedError {
  return tlsError(TlsErrorCode.MATERIAL, message, cause);
}

function oneLine(dn: string): string {
  return JSON.stringify(dn.split('\n').filter(Boolean).join(', '));
}

function parseCertificates(pem: string, name: string, fix: string): X509Certificate[] {
  const blocks = splitPemCertificates(pem);
  if (blocks.length === 0) {
    const hint = KEY_BLOCK.test(pem) ? ' (it holds a private key)' : '';
    throw materialError(`${name} is not a PEM certificate${hint}; expected a "-----BEGIN CERTIFICATE-----" block: ${fix}`);
  }
  return blocks.map((block, i) => {
    try {
      return new X509Certificate(block);
    } catch (err) {
      throw materialError(`${name}: PEM block ${i + 1} is not a valid X.509 certificate (${errorMessage(err)}); ${fix}`, err);
    }
  });
}

function issuedBy(child: X509Certificate, parent: X509Certificate): boolean {
  try {
    return child.checkIssued(parent) && child.verify(parent.publicKey);
  } catch {
    return false;
  }
}

/** Whether `leaf` is signed by a CA of the bundle, directly or through CA intermediates from the cert file. */
function chainsToCa(leaf: X509Certificate, intermediates: readonly X509Certificate[], cas: readonly X509Certificate[]): boolean {
  let current = leaf;
  const unused = [...intermediates];
  for (;;) {
    if (cas.some((ca) => issuedBy(current, ca))) return true;
    const i = unused.findIndex((c) => c.ca && issuedBy(current, c));
    const next = unused[i];
    if (next === undefined) return false;
    unused.splice(i, 1);
    current = next;
  }
}

type Role = 'ca' | 'cert' | 'key';

class FileTlsSource implements NamedTlsMaterialSource {
  readonly names: TlsMaterialNames;
  readonly #files: ReadonlyArray<readonly [Role, string]>;
  readonly #clock: () => number;
  readonly #intervalMs: number;
  /** Stamps of the files at the last load; undefined before the first load. */
  #loadedStamp: string | undefined;
  #lastCheck = Number.NEGATIVE_INFINITY;
  #pending = false;

  constructor(options: FileTlsSourceOptions) {
    if (options.caFile === '') throw materialError('ca_file is empty; set it to the CA certificate file');
    const files: Array<readonly [Role, string]> = [['ca', options.caFile]];
    if (options.certFile) files.push(['cert', options.certFile]);
    if (options.keyFile) files.push(['key', options.keyFile]);
    this.#files = files;
    this.#clock = options.clock ?? (() => performance.now());
    this.#intervalMs = options.checkIntervalMs ?? DEFAULT_CHECK_INTERVAL_MS;
    this.names = Object.freeze({
      ca: `ca_file ${JSON.stringify(options.caFile)}`,
      cert: options.certFile ? `cert_file ${JSON.stringify(options.certFile)}` : 'cert_file',
      key: options.keyFile ? `key_file ${JSON.stringify(options.keyFile)}` : 'key_file',
    });
  }

  describe(): string {
    return `files ${this.#files.map(([role, file]) => `${role}=${file}`).join(' ')}`;
  }

  async load(signal?: AbortSignal): Promise<TlsMaterial> {
    // Stamp before reading: a file rewritten between stat and read then looks changed at the
    // next check and is read again, never the other way round. A failed read still records the
    // stamp, so a file that stays broken is reported once, not on every check.
    this.#loadedStamp = await this.#stamp();
    this.#lastCheck = this.#clock();
    this.#pending = false;
    const out: { caPem: string; certPem?: string; keyPem?: string } = { caPem: '' };
    for (const [role, file] of this.#files) {
      const text = await this.#read(role, file, signal);
      if (role === 'ca') out.caPem = text;
      else if (role === 'cert') out.certPem = text;
      else out.keyPem = text;
    }
    return out;
  }

  async changed(): Promise<boolean> {
    if (this.#loadedStamp === undefined || this.#pending) return true;
    const now = this.#clock();
    if (now - this.#lastCheck < this.#intervalMs) return false;
    // Set before awaiting, so concurrent handshakes share one stat round.
    this.#lastCheck = now;
    const stamp = await this.#stamp();
    if (stamp !== this.#loadedStamp) this.#pending = true;
    return this.#pending;
  }

  async #stamp(): Promise<string> {
    const parts = await Promise.all(
      this.#files.map(async ([, file]) => {
        try {
          const st = await stat(file);
          return `${st.mtimeMs}:${st.size}:${st.ino}`;
        } catch (err) {
          return `error:${errorCode(err) ?? errorMessage(err)}`;
        }
      }),
    );
    return parts.join('|');
  }

  async #read(role: Role, file: string, signal: AbortSignal | undefined): Promise<string> {
    try {
      return await readFile(file, { encoding: 'utf8', signal });
    } catch (err) {
      if (signal?.aborted) throw abortError(signal, `reading ${file}`);
      const fix =
        errorCode(err) === 'ENOENT'
          ? role === 'ca'
            ? 'fix the path, or create a CA with `meshfed tls ca create`'
            : 'fix the path, or create a certificate with `meshfed tls cert create`'
          : 'check the path and the file permissions';
      throw materialError(`cannot read ${this.names[role]}: ${errorMessage(err)}; ${fix}`, err);
    }
  }
}

class MemoryTlsSourceImpl implements MemoryTlsSource {
  readonly names: TlsMaterialNames;
  #material: TlsMaterial;
  #changed = false;

  constructor(material: TlsMaterial, names: TlsMaterialNames) {
    this.#material = material;
    this.names = names;
  }

  describe(): string {
    return 'memory';
  }

  async load(signal?: AbortSignal): Promise<TlsMaterial> {
    if (signal?.aborted) throw abortError(signal, 'loading TLS material');
    this.#changed = false;
    return this.#material;
  }

  async changed(): Promise<boolean> {
    return this.#changed;
  }

  replace(material: TlsMaterial): void {
    this.#material = material;
    this.#changed = true;
  }
}
