/**
 * Error codes of the TLS plugin (`MESHFED_ERR_TLS_…`). Every error the plugin raises is a
 * {@link MeshfedError} carrying one of these codes, a message that says how to fix the problem,
 * and the underlying error as `cause`.
 */
import { MeshfedError } from '../../core/errors.js';

/** Stable error codes of the TLS plugin. */
export const TlsErrorCode = Object.freeze({
  /** A certificate-creation call was given a contradictory or invalid option (`-node` without `-server`, …). */
  USAGE: 'MESHFED_ERR_TLS_USAGE',
  /** A file that would be written already exists; nothing is overwritten. */
  FILE_EXISTS: 'MESHFED_ERR_TLS_FILE_EXISTS',
  /** A file needed to create certificates (the CA certificate or key) is missing or unusable. */
  FILE: 'MESHFED_ERR_TLS_FILE',
  /** TLS material (CA, certificate, key) is missing, malformed, mismatched, untrusted or expired. */
  MATERIAL: 'MESHFED_ERR_TLS_MATERIAL',
  /** The ALPN wrapper cannot be used (missing target, no mutual TLS) or the server refused the protocol. */
  ALPN: 'MESHFED_ERR_TLS_ALPN',
  /** A TLS handshake failed, timed out, or the peer certificate was rejected. */
  HANDSHAKE: 'MESHFED_ERR_TLS_HANDSHAKE',
  /** Serving TLS needs a certificate and key, and none is configured. */
  NO_CERT: 'MESHFED_ERR_TLS_NO_CERT',
  /** The TLS configurator was used before `init()` completed. */
  NOT_INITIALIZED: 'MESHFED_ERR_TLS_NOT_INITIALIZED',
} as const);

/** A value of {@link TlsErrorCode}. */
export type TlsErrorCodeValue = (typeof TlsErrorCode)[keyof typeof TlsErrorCode];

/** A {@link MeshfedError} with a TLS code, attributed to the `tls` plugin. */
export function tlsError(code: TlsErrorCodeValue, message: string, cause?: unknown): MeshfedError {
  return new MeshfedError(code, message, { cause, plugin: 'tls' });
}

/** Whether `err` is a MeshfedError carrying the given TLS code. */
export function isTlsError(err: unknown, code: TlsErrorCodeValue): err is MeshfedError {
  return err instanceof MeshfedError && err.code === code;
}

/** `err.code` when the value is an object with a string code (Node system and TLS errors). */
export function errorCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const code: unknown = (err as { code?: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}
