/**
 * Primary-gateway discovery (spec §4.7): a secondary's servers turn `primary_gateways` into the
 * locator's fallback list, retrying every `primary_gateways_interval` until it works once or the
 * primary's gateways arrive through replicated federation state.
 */
import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { parseHostPort } from '../../core/address.js';
import { systemClock, type Clock } from '../../core/clock.js';
import { errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { GatewayLocator } from './locator.js';

/** Time bound of one hostname resolution (spec §4.7: 2 s resolver timeout). */
export const DISCOVERY_LOOKUP_TIMEOUT_MS = 2_000;

/** Error of an attempt that produced no address (spec §4.7). */
export const NO_MESH_GATEWAYS_FOUND = 'No mesh gateways found';

/** What discovery needs from the locator. */
export type DiscoveryLocator = Pick<GatewayLocator, 'refreshPrimaryGatewayFallbackAddresses' | 'primaryGatewaysReady'>;

/** Options of {@link discoverPrimaryGateways}. */
export interface DiscoverPrimaryGatewaysOptions {
  /** `primary_gateways` entries: `host:port`, `[v6]:port` or IP literals, hostnames; `provider=…` is not supported. */
  readonly addrs: readonly string[];
  /** Wait between failed attempts, ms (`primary_gateways_interval`, default 30 s in config). */
  readonly intervalMs: number;
  /** The locator receiving the fallback list; discovery stops once its primary gateways are ready. */
  readonly locator: DiscoveryLocator;
  /**
   * Resolve a hostname to IPv4 addresses (default: `node:dns` lookup, family 4). A rejection keeps
   * the entry verbatim; an empty answer drops it. Each call is bounded by 2 s.
   */
  readonly lookup?: (host: string) => Promise<string[]>;
  /** Stops discovery quietly. */
  readonly signal: AbortSignal;
  /** Logger for progress and warnings. */
  readonly logger: Logger;
  /** Time source for the retry interval and lookup timeout (default: system clock). */
  readonly clock?: Clock;
}

async function defaultLookup(host: string): Promise<string[]> {
  const found = await dnsLookup(host, { family: 4, all: true });
  return found.map((a) => a.address);
}

/** `lookup(host)` bounded by `ms` on `clock`; rejects on timeout. */
function lookupWithTimeout(lookup: (host: string) => Promise<string[]>, host: string, clock: Clock, ms: number): Promise<string[]> {
  return new Promise<string[]>((resolve, reject) => {
    const timer = clock.setTimeout(() => reject(new Error(`resolving ${host} timed out after ${ms} ms`)), ms);
    lookup(host).then(
      (v) => {
        clock.clearTimeout(timer);
        resolve(v);
      },
      (err: unknown) => {
        clock.clearTimeout(timer);
        reject(err instanceof Error ? err : new Error(errorMessage(err)));
      },
    );
  });
}

/**
 * Run primary-gateway discovery (spec §4.7). Each attempt expands the entries — IP literals kept
 * verbatim, hostnames resolved to IPv4 keeping the port (the raw entry kept when resolution
 * fails), `provider=` entries skipped with one warning — and hands the result to
 * `locator.refreshPrimaryGatewayFallbackAddresses`. On success it logs
 * `Refreshing mesh gateways completed` and returns (one-shot). On failure (no address: `No mesh
 * gateways found`) it logs `Refreshing mesh gateways failed, will retry` and waits `intervalMs`,
 * returning quietly if `locator.primaryGatewaysReady` resolves or `signal` aborts first. Never
 * rejects.
 *
 * @example
 * ```ts
 * void discoverPrimaryGateways({ addrs: config.primary_gateways, intervalMs: config.primary_gateways_interval,
 *   locator, signal, logger });
 * ```
 */
export async function discoverPrimaryGateways(options: DiscoverPrimaryGatewaysOptions): Promise<void> {
  const { addrs, intervalMs, locator, signal } = options;
  if (addrs.length === 0) return;
  const log = options.logger.child({ variant: 'mesh-gateway', cluster: 'primary' });
  const clock = options.clock ?? systemClock;
  const lookup = options.lookup ?? defaultLookup;

  // One listener for the whole run, so waiting many intervals does not pile up callbacks.
  let ready = false;
  let wake: (() => void) | undefined;
  void locator.primaryGatewaysReady.then(() => {
    ready = true;
    wake?.();
  });

  let warnedProvider = false;
  const expand = async (): Promise<string[]> => {
    const out: string[] = [];
    for (const raw of addrs) {
      const entry = raw.trim();
      if (entry === '') continue;
      if (entry.startsWith('provider=')) {
        if (!warnedProvider) {
          warnedProvider = true;
          log.warn('primary_gateways: cloud auto-join entries ("provider=...") are not supported by meshfed; skipping them (list the gateways as host:port instead)', { entry });
        }
        continue;
      }
      const hp = parseHostPort(entry);
      const host = hp ? hp.host : entry;
      if (isIP(host) !== 0) {
        out.push(entry);
        continue;
      }
      try {
        const ips = await lookupWithTimeout(lookup, host, clock, DISCOVERY_LOOKUP_TIMEOUT_MS);
        for (const ip of ips) out.push(hp ? `${ip}:${hp.port}` : ip);
      } catch (err) {
        log.debug('could not resolve primary gateway hostname, using it verbatim', { host, err });
        out.push(entry);
      }
    }
    return out;
  };

  const waitInterval = (): Promise<void> =>
    new Promise<void>((resolve) => {
      const done = (): void => {
        clock.clearTimeout(timer);
        signal.removeEventListener('abort', done);
        wake = undefined;
        resolve();
      };
      const timer = clock.setTimeout(done, intervalMs);
      signal.addEventListener('abort', done, { once: true });
      wake = done;
    });

  while (!signal.aborted && !ready) {
    let failure: unknown;
    try {
      const found = await expand();
      if (signal.aborted) return;
      if (found.length === 0) throw new Error(NO_MESH_GATEWAYS_FOUND);
      locator.refreshPrimaryGatewayFallbackAddresses(found);
      log.info('Refreshing mesh gateways completed');
      return;
    } catch (err) {
      failure = err;
    }
    log.warn('Refreshing mesh gateways failed, will retry', { retry_interval_ms: intervalMs, err: failure });
    if (ready) return;
    await waitInterval();
  }
}
