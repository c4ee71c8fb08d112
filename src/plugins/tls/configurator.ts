/**
 * The TLS configurator: one per agent. It loads and validates TLS material once, caches the
 * SecureContext built from it (building one parses every certificate and key: far too slow to do
 * per connection), re-reads the material when its source reports a change, and hands out the TLS
 * options for each kind of connection:
 *
 * - incoming RPC (spec §2.3): mandatory mTLS, ALPN, material re-checked at every ClientHello;
 * - plain outgoing RPC (spec §1.4): verification as configured by verify_outgoing / verify_server_hostname;
 * - the mesh-gateway ALPN wrapper (spec §1.5): always full verification against the target server's SNI.
 */
import tls from 'node:tls';
import type { X509Certificate } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { abortError, errorMessage } from '../../core/errors.js';
import type { MeshfedError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import { serverSni, trimDomain } from '../../core/protocol.js';
import { TlsErrorCode, errorCode, tlsError } from './errors.js';
import { DEFAULT_TLS_MATERIAL_NAMES, validateTlsMaterial } from './material.js';
import type { TlsMaterial, TlsMaterialSource } from './material.js';

/** Options of {@link TlsConfigurator}. */
export interface TlsConfiguratorOptions {
  /** Where the CA, certificate and key come from. */
  readonly source: TlsMaterialSource;
  /** This agent's datacenter. */
  readonly datacenter: string;
  /** Cluster domain (`consul.` or `consul`; the trailing dot is dropped in TLS names). */
  readonly domain: string;
  /** This agent's node name. */
  readonly nodeName: string;
  /** verify_incoming: whether the type-byte TLS path (byte 3) requires client certificates. */
  readonly verifyIncoming: boolean;
  /** verify_outgoing: whether plain outgoing dials verify the server's certificate chain. */
  readonly verifyOutgoing: boolean;
  /** verify_server_hostname: whether plain outgoing dials also check `server.<dc>.<domain>`. */
  readonly verifyServerHostname: boolean;
  /** Logs reloads (info) and failed reloads (one warning each). */
  readonly logger: Logger;
  /** Wall clock in ms since the epoch, for certificate validity (default `Date.now`). */
  readonly clock?: () => number;
}

/** Options of {@link TlsConfigurator.incomingOptions}. */
export interface IncomingTlsOptions {
  /** Require and verify a client certificate (always true for native TLS on the RPC port, spec §2.3). */
  readonly requireClientCert: boolean;
  /** ALPN ids to offer, in preference order (e.g. `RPC_NEXT_PROTOS`). */
  readonly alpnProtocols?: readonly string[];
}

/** Options of {@link TlsConfigurator.acceptTls}. */
export interface AcceptTlsOptions extends IncomingTlsOptions {
  /** Aborts the handshake (the socket is destroyed). */
  readonly signal?: AbortSignal;
  /** Handshake deadline in ms (default 5000, Consul's RPC handshake timeout). */
  readonly timeoutMs?: number;
}

/** Options of {@link TlsConfigurator.wrapAlpnClient}. */
export interface WrapAlpnClientOptions {
  /** Target datacenter. */
  readonly datacenter: string;
  /** Target server node name, or `*` for any server of the datacenter. */
  readonly node: string;
  /** The one ALPN id to offer (spec §1.2). */
  readonly alpn: string;
  /** Aborts the handshake (the socket is destroyed). */
  readonly signal?: AbortSignal;
  /** Handshake deadline in ms (default 10000, Consul's dial timeout). */
  readonly timeoutMs?: number;
}

/** Consul's default RPC handshake timeout. */
const DEFAULT_ACCEPT_TIMEOUT_MS = 5000;
/** Consul's `DefaultDialTimeout`; the gateway dial and its handshake share it. */
const DEFAULT_DIAL_TIMEOUT_MS = 10_000;
const MIN_TLS_VERSION = 'TLSv1.2';

/** Everything built from one generation of material; swapped as a whole on rotation. */
interface TlsState {
  readonly material: TlsMaterial;
  /** Serves and dials: holds the CA bundle, plus the certificate and key when configured. */
  readonly context: tls.SecureContext;
  /** CA, certificate and key are all present. */
  readonly mutual: boolean;
  readonly certificate: X509Certificate | undefined;
}

/**
 * Builds and caches TLS contexts for RPC, and reloads them when the material changes.
 *
 * @example
 * const tlsConf = new TlsConfigurator({
 *   source: fileTlsSource({ caFile, certFile, keyFile }),
 *   datacenter: 'dc1', domain: 'consul', nodeName: 's1',
 *   verifyIncoming: true, verifyOutgoing: true, verifyServerHostname: true,
 *   logger: logger.child({ component: 'tls' }),
 * });
 * await tlsConf.init();
 * const server = tls.createServer(tlsConf.incomingOptions({ requireClientCert: true, alpnProtocols: RPC_NEXT_PROTOS }));
 */
export class TlsConfigurator {
  /** This agent's datacenter. */
  readonly datacenter: string;
  /** Cluster domain without trailing dot. */
  readonly domain: string;
  /** This agent's node name. */
  readonly nodeName: string;
  /** verify_incoming. */
  readonly verifyIncoming: boolean;
  /** verify_outgoing. */
  readonly verifyOutgoing: boolean;
  /** verify_server_hostname. */
  readonly verifyServerHostname: boolean;

  readonly #source: TlsMaterialSource;
  readonly #logger: Logger;
  readonly #clock: () => number;
  #state: TlsState | undefined;
  #refreshing: Promise<boolean> | undefined;

  /**
   * Called by OpenSSL for every ClientHello that carries SNI: picks up rotated material before
   * answering, so a new certificate or CA applies from the next handshake on, without restart.
   * The SNI value itself is not checked (spec §2.3).
   */
  readonly #sniCallback = (_servername: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void): void => {
    this.refresh().then(
      () => {
        const state = this.#state;
        if (state?.mutual) cb(null, state.context);
        else cb(tlsError(TlsErrorCode.NO_CERT, 'no certificate to serve TLS with'));
      },
      (err: unknown) => cb(err instanceof Error ? err : new Error(errorMessage(err))),
    );
  };

  constructor(options: TlsConfiguratorOptions) {
    this.#source = options.source;
    this.datacenter = options.datacenter;
    this.domain = trimDomain(options.domain);
    this.nodeName = options.nodeName;
    this.verifyIncoming = options.verifyIncoming;
    this.verifyOutgoing = options.verifyOutgoing;
    this.verifyServerHostname = options.verifyServerHostname;
    this.#logger = options.logger;
    this.#clock = options.clock ?? Date.now;
  }

  /** Load and validate the material and build the contexts. Must complete before any other use; validation errors propagate. */
  async init(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) throw abortError(signal, 'TLS initialisation');
    const material = await this.#source.load(signal);
    if (signal?.aborted) throw abortError(signal, 'TLS initialisation');
    this.#state = this.#build(material);
    this.#logger.debug('TLS material loaded', this.#describeState(this.#state));
  }

  /** Whether a CA, a certificate and its key are all configured (spec §1.5: required for the gateway path). */
  mutualTlsCapable(): boolean {
    return this.#state?.mutual ?? false;
  }

  /**
   * Reload the material if the source reports a change. Concurrent calls share one reload. A
   * reload that fails (unreadable, invalid, or dropping the certificate a server was using) logs
   * one warning and keeps the previous contexts: rotation must never break a running server.
   * Resolves to whether new material is now in use.
   */
  async refresh(): Promise<boolean> {
    const previous = this.#requireState();
    this.#refreshing ??= this.#reload(previous).finally(() => {
      this.#refreshing = undefined;
    });
    return this.#refreshing;
  }

  /**
   * Options for `tls.createServer(...)` or `new tls.TLSSocket(sock, { isServer: true, ...opts })`.
   * Material is re-checked at every ClientHello carrying SNI (every meshfed and Consul dial sends
   * one). A `tls.Server` answers SNI-less clients with the certificate current when it was created;
   * {@link acceptTls} has no such limit.
   */
  incomingOptions(options: IncomingTlsOptions): tls.TlsOptions {
    const state = this.#requireServingState();
    const out: tls.TlsOptions = {
      // key/cert/ca build the default context of a tls.Server; a TLSSocket uses secureContext instead.
      ca: state.material.caPem,
      cert: state.material.certPem,
      key: state.material.keyPem,
      secureContext: state.context,
      minVersion: MIN_TLS_VERSION,
      SNICallback: this.#sniCallback,
      requestCert: options.requireClientCert,
      rejectUnauthorized: options.requireClientCert,
    };
    if (options.alpnProtocols) out.ALPNProtocols = [...options.alpnProtocols];
    return out;
  }

  /**
   * Server-side TLS handshake on an already accepted socket (the RPC port after sniffing a
   * ClientHello, spec §2.2). Resolves with the TLS socket once the handshake succeeded and, when
   * required, the client certificate verified. On error, abort or timeout the socket is destroyed.
   * From the call on, `socket` belongs to the TLS socket: close the returned socket, never `socket`
   * (destroying a socket under a live TLSSocket can crash Node 20).
   */
  async acceptTls(socket: Duplex, options: AcceptTlsOptions): Promise<tls.TLSSocket> {
    let state: TlsState;
    try {
      if (options.signal?.aborted) throw abortError(options.signal, 'TLS accept');
      this.#requireServingState();
      // SNI-less clients get the initial context: refresh first so it is the current one.
      await this.refresh();
      state = this.#requireServingState();
    } catch (err) {
      socket.destroy();
      throw err;
    }
    const tlsSocket = new tls.TLSSocket(socket, {
      isServer: true,
      secureContext: state.context,
      SNICallback: this.#sniCallback,
      requestCert: options.requireClientCert,
      rejectUnauthorized: options.requireClientCert,
      ...(options.alpnProtocols ? { ALPNProtocols: [...options.alpnProtocols] } : {}),
    });
    return awaitHandshake(tlsSocket, socket, {
      event: 'secure',
      what: 'TLS handshake with an incoming client',
      timeoutMs: options.timeoutMs ?? DEFAULT_ACCEPT_TIMEOUT_MS,
      signal: options.signal,
      check: () => (options.requireClientCert ? clientCertProblem(tlsSocket) : undefined),
    });
  }

  /**
   * Options for the plain (non-gateway) outgoing TLS dial to a server of `datacenter` (spec §1.4).
   * SNI is always `server.<dc>.<domain>`; the certificate is checked against it only with
   * verify_server_hostname, and only its chain with verify_outgoing alone. Uses the contexts as
   * they are: call {@link refresh} first to pick up rotated material.
   */
  outgoingOptions(datacenter: string): tls.ConnectionOptions {
    const state = this.#requireState();
    const out: tls.ConnectionOptions = {
      secureContext: state.context,
      servername: serverSni(datacenter, '', this.domain),
      // Hostname verification is meaningless without chain verification, so it implies it.
      rejectUnauthorized: this.verifyOutgoing || this.verifyServerHostname,
    };
    if (!this.verifyServerHostname) out.checkServerIdentity = () => undefined;
    return out;
  }

  /**
   * The ALPN client wrapper of the mesh-gateway dial (spec §1.5): TLS handshake on `socket` (a
   * connection to a mesh gateway) with SNI `serverSni(dc, node)` and exactly one ALPN id, always
   * fully verified whatever the verify_* settings, offering this agent's certificate. Takes
   * ownership of `socket`: on any failure it is destroyed; on success close the returned TLS
   * socket, never `socket` (destroying a socket under a live TLSSocket can crash Node 20).
   */
  async wrapAlpnClient(socket: Duplex, options: WrapAlpnClientOptions): Promise<tls.TLSSocket> {
    const { datacenter, node, alpn } = options;
    let state: TlsState;
    try {
      if (!this.mutualTlsCapable()) {
        this.#requireState();
        throw alpnError('cannot dial via a mesh gateway when outgoing TLS is disabled');
      }
      if (!datacenter) throw alpnError('cannot dial using ALPN-RPC without a target datacenter');
      if (!node) throw alpnError('cannot dial using ALPN-RPC without a target node');
      if (!alpn) throw alpnError('cannot dial using ALPN-RPC without a target alpn protocol');
      if (options.signal?.aborted) throw abortError(options.signal, 'TLS dial');
      await this.refresh();
      state = this.#requireState();
    } catch (err) {
      socket.destroy();
      throw err;
    }
    const servername = serverSni(datacenter, node, this.domain);
    const tlsSocket = tls.connect({
      socket,
      secureContext: state.context,
      servername,
      ALPNProtocols: [alpn],
      // Forced, whatever verify_outgoing says: the gateway only routes, the server is authenticated here.
      rejectUnauthorized: true,
    });
    return awaitHandshake(tlsSocket, socket, {
      event: 'secureConnect',
      what: `TLS handshake with ${servername} (ALPN ${alpn})`,
      timeoutMs: options.timeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS,
      signal: options.signal,
      check: () =>
        tlsSocket.alpnProtocol === alpn
          ? undefined
          : alpnError(
              `${servername} did not accept ALPN protocol ${alpn} (negotiated: ${tlsSocket.alpnProtocol || 'none'}); ` +
                'the server does not support this protocol or is not a meshfed/Consul RPC port',
            ),
    });
  }

  #requireState(): TlsState {
    const state = this.#state;
    if (!state) throw tlsError(TlsErrorCode.NOT_INITIALIZED, 'the TLS configurator is used before init() completed; await init() first');
    return state;
  }

  #requireServingState(): TlsState {
    const state = this.#requireState();
    if (!state.mutual) {
      throw tlsError(
        TlsErrorCode.NO_CERT,
        `serving TLS needs a certificate and key, and ${this.#source.describe()} has none; set cert_file and key_file`,
      );
    }
    return state;
  }

  #build(material: TlsMaterial): TlsState {
    const names = this.#source.names ?? DEFAULT_TLS_MATERIAL_NAMES;
    const validated = validateTlsMaterial(material, names, { now: this.#clock() });
    const mutual = validated.certificate !== undefined;
    let context: tls.SecureContext;
    try {
      context = tls.createSecureContext({
        ca: material.caPem,
        ...(mutual ? { cert: material.certPem, key: material.keyPem } : {}),
        minVersion: MIN_TLS_VERSION,
      });
    } catch (err) {
      throw tlsError(TlsErrorCode.MATERIAL, `TLS material from ${this.#source.describe()} is rejected by OpenSSL: ${errorMessage(err)}`, err);
    }
    return { material, context, mutual, certificate: validated.certificate };
  }

  async #reload(previous: TlsState): Promise<boolean> {
    try {
      if (!(await this.#source.changed())) return false;
      const next = this.#build(await this.#source.load());
      if (previous.mutual && !next.mutual) {
        throw tlsError(TlsErrorCode.MATERIAL, 'the new material has no certificate and key, and this agent serves TLS with one; set cert_file and key_file');
      }
      this.#state = next;
      this.#logger.info('TLS material reloaded', this.#describeState(next));
      return true;
    } catch (err) {
      this.#logger.warn('TLS material reload failed; keeping the previous certificates', {
        source: this.#source.describe(),
        error: errorMessage(err),
        code: errorCode(err),
      });
      return false;
    }
  }

  #describeState(state: TlsState): Record<string, unknown> {
    return {
      source: this.#source.describe(),
      serial: state.certificate?.serialNumber,
      subject: state.certificate?.subject.replace(/\n/g, ', '),
      expires: state.certificate?.validTo,
    };
  }
}

// ---------------------------------------------------------------------------------------------

function alpnError(message: string): MeshfedError {
  return tlsError(TlsErrorCode.ALPN, message);
}

/**
 * Why a server-side TLS socket's client certificate is not acceptable, if it is not. Node applies
 * OpenSSL's verdict itself only for sockets accepted by a `tls.Server`; for a TLSSocket made by
 * hand the verdict must be read with the same internal call tls.Server makes. If that call is not
 * there (a future Node), fail closed.
 */
function clientCertProblem(socket: tls.TLSSocket): Error | undefined {
  const handle = (socket as unknown as { _handle?: { verifyError?: () => Error | null } })._handle;
  if (typeof handle?.verifyError !== 'function') {
    return tlsError(TlsErrorCode.HANDSHAKE, 'cannot read the client certificate verification result from this Node.js version; refusing the connection');
  }
  const verifyError = handle.verifyError();
  if (verifyError) {
    return tlsError(
      TlsErrorCode.HANDSHAKE,
      `client certificate rejected: ${verifyError.message} (${errorCode(verifyError) ?? 'unknown'}); the client must present a certificate issued by a trusted CA`,
      verifyError,
    );
  }
  if (!socket.getPeerX509Certificate()) {
    return tlsError(TlsErrorCode.HANDSHAKE, 'the client presented no certificate; a client certificate is required');
  }
  return undefined;
}

interface HandshakeWait {
  /** `secure` (server side) or `secureConnect` (client side). */
  readonly event: 'secure' | 'secureConnect';
  /** Describes the handshake in error messages. */
  readonly what: string;
  readonly timeoutMs: number;
  readonly signal: AbortSignal | undefined;
  /** Extra check once the handshake completed; an error fails it. */
  readonly check: () => Error | undefined;
}

/** Resolve when `tlsSocket` completes its handshake; on failure destroy both sockets and reject. */
function awaitHandshake(tlsSocket: tls.TLSSocket, raw: Duplex, wait: HandshakeWait): Promise<tls.TLSSocket> {
  return new Promise<tls.TLSSocket>((resolve, reject) => {
    let done = false;
    const cleanup = (): void => {
      done = true;
      clearTimeout(timer);
      wait.signal?.removeEventListener('abort', onAbort);
      tlsSocket.off(wait.event, onSecure);
      tlsSocket.off('error', onError);
      tlsSocket.off('close', onClose);
    };
    const fail = (err: Error): void => {
      if (done) return;
      cleanup();
      // Late errors from the torn-down sockets have nobody to go to.
      tlsSocket.on('error', ignore);
      raw.on('error', ignore);
      // Destroying the TLS socket closes the socket under it. The other order (raw first) can
      // crash Node 20 with a use-after-free in TLSWrap (family of nodejs/node#49307), so the raw
      // socket is only destroyed here if the TLS socket somehow left it open.
      tlsSocket.destroy();
      if (!raw.destroyed) raw.destroy();
      reject(err);
    };
    const onSecure = (): void => {
      if (done) return;
      const problem = wait.check();
      if (problem) {
        fail(problem);
        return;
      }
      cleanup();
      resolve(tlsSocket);
    };
    const onError = (err: Error): void => {
      fail(tlsError(TlsErrorCode.HANDSHAKE, `${wait.what} failed: ${err.message}`, err));
    };
    const onClose = (): void => {
      fail(tlsError(TlsErrorCode.HANDSHAKE, `${wait.what} failed: the connection closed before the handshake completed`));
    };
    const onAbort = (): void => {
      if (wait.signal) fail(abortError(wait.signal, wait.what));
    };
    const timer = setTimeout(() => {
      fail(tlsError(TlsErrorCode.HANDSHAKE, `${wait.what} did not complete within ${wait.timeoutMs} ms`));
    }, wait.timeoutMs);
    timer.unref();
    tlsSocket.on(wait.event, onSecure);
    tlsSocket.on('error', onError);
    tlsSocket.on('close', onClose);
    if (wait.signal?.aborted) onAbort();
    else wait.signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function ignore(): void {
  // Intentionally empty: see awaitHandshake's fail().
}
