/**
 * The etcd backend: the servers of one datacenter share an etcd cluster that holds a replicated
 * command log, the latest store snapshot, the server list and the leader key. Every server runs
 * the same {@link StateStore} FSM by applying the log in order at index = etcd revision.
 *
 * Keys (under `prefix`, default `/meshfed/<datacenter>/`):
 * - `log/<seq, 20 digits>`: `{"commands":[…]}`, one group-committed batch; each command's index
 *   is the key's mod revision.
 * - `snapshot`: `{"index","seq","chunks","bytes"}`, the latest snapshot; its data is in
 *   `snapshot/<index, 20 digits>/<chunk, 6 digits>` (≤ 512 KiB per key). Log entries up to `seq`
 *   are deleted in the same transaction that sets the pointer; then (`compactHistory`, default)
 *   etcd's history is compacted up to it. Snapshots are written in the background: log writes go
 *   on meanwhile.
 * - `servers/<node>`: the server's RPC address, under its lease (→ {@link EtcdBackend.peers}).
 * - `leader`: `{"node","address"}`, created under the leader's lease (election + fencing).
 *
 * Writes: only the leader writes. It validates each queued command with `store.check`, then
 * writes one batch at a time in a transaction fenced on the leader key's create revision (and on
 * the log key not existing yet; hand-encoded, see etcd-txn.ts), applies
 * the batch locally at the response's revision and only then resolves the callers. Followers
 * watch `log/` and apply in order; a compacted watch re-lists (snapshot + log). Leadership is
 * given up as soon as the lease may have expired, so two servers never accept writes at once,
 * and a deposed leader's write fails the fence anyway.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { Etcd3, isRecoverableError, type IOptions, type IKeyValue, type IRangeRequest, type IRequestOp, type IWatchCreateRequest, type IWatchResponse } from 'etcd3';
import type { CallOptions } from '@grpc/grpc-js';
import { MeshfedError, abortError, errorMessage } from '../../../core/errors.js';
import type { Logger } from '../../../core/logger.js';
import { StateErrorCode, type Command, type StoreSnapshot } from '../store/index.js';
import { FencedTxnClient } from './etcd-txn.js';
import { isJsonFaithful } from './json.js';
import { StateBackendErrorCode, type ApplyResult, type BackendContext, type LeaderInfo, type StateBackend } from './types.js';

/** Error codes of the etcd backend (besides {@link StateBackendErrorCode}). */
export const EtcdBackendErrorCode = Object.freeze({
  /** The options are invalid (no endpoints, bad TTL, …). */
  OPTIONS: 'MESHFED_ERR_STATE_ETCD_OPTIONS',
  /** The backend is closed. */
  CLOSED: 'MESHFED_ERR_STATE_ETCD_CLOSED',
  /** A command is too large to be written as one log entry. */
  TOO_LARGE: 'MESHFED_ERR_STATE_ETCD_TOO_LARGE',
  /** etcd refused a request for a reason other than reachability (permissions, bad request). */
  REQUEST: 'MESHFED_ERR_STATE_ETCD_REQUEST',
  /** A snapshot or log entry in etcd is unreadable or incomplete. */
  CORRUPT: 'MESHFED_ERR_STATE_ETCD_CORRUPT',
  /** The requested revision was compacted (internal: triggers a re-list). */
  COMPACTED: 'MESHFED_ERR_STATE_ETCD_COMPACTED',
} as const);

/** TLS material for `https://` endpoints (PEM). */
export interface EtcdTlsOptions {
  /** CA bundle that signed the etcd server certificates (default: the system roots). */
  readonly ca?: Buffer;
  /** Client certificate chain, for etcd's client-certificate authentication. */
  readonly cert?: Buffer;
  /** Client private key matching `cert`. */
  readonly key?: Buffer;
}

/** Options of {@link EtcdBackend.create}. */
export interface EtcdBackendOptions extends BackendContext {
  /** etcd client URLs, e.g. `['http://127.0.0.1:2379']` (`https://` with {@link tls}). */
  readonly endpoints: readonly string[];
  /** Key prefix of this datacenter's state (default `/meshfed/<datacenter>/`). */
  readonly prefix?: string;
  /** Lease TTL in seconds: how long a dead leader keeps leadership (default 5, at least 2). */
  readonly leaseTtlSec?: number;
  /** TLS material for `https://` endpoints. */
  readonly tls?: EtcdTlsOptions;
  /** How long connecting may take before `start` fails (default 5000 ms). */
  readonly dialTimeoutMs?: number;
  /** Bound on every etcd request, including retries on other endpoints (default 5000 ms). */
  readonly requestTimeoutMs?: number;
  /** Log entries between snapshots (default 10 000). */
  readonly snapshotEvery?: number;
  /**
   * After each snapshot, compact etcd's history up to the snapshot's commit (default true). The
   * snapshot deletes the log entries it covers; until etcd compacts, their tombstones make every
   * fenced log write about half as fast (measured: 1 270 → 615–673 txn/s on one member, back to
   * 1 240–1 280 after a compaction), and without any compaction etcd's database only grows until
   * its space quota stops all writes. Compaction applies to the whole keyspace: turn it off when
   * etcd's own `--auto-compaction-*` is configured or other users of the cluster need old revisions.
   * Followers whose watch falls behind a compaction re-list (as after any compaction).
   */
  readonly compactHistory?: boolean;
}

/** Default log entries between two snapshots. */
export const DEFAULT_ETCD_SNAPSHOT_EVERY = 10_000;
/** Largest snapshot chunk stored under one key (etcd's default request limit is 1.5 MiB). */
export const SNAPSHOT_CHUNK_BYTES = 512 * 1024;
/** Largest log entry (one batch of commands) written in one request. */
export const MAX_ENTRY_BYTES = 1024 * 1024;

const plugin = { plugin: 'state' } as const;
const SEQ_DIGITS = 20;
const pad = (n: number, width: number): string => String(n).padStart(width, '0');

interface Pending {
  readonly command: Command;
  readonly json: string;
  readonly resolve: (r: ApplyResult) => void;
  readonly reject: (err: unknown) => void;
}

interface InFlight {
  readonly seq: number;
  readonly batch: readonly Pending[];
}

interface SnapshotPointer {
  readonly index: number;
  readonly seq: number;
  readonly chunks: number;
  readonly bytes: number;
}

interface Waiter {
  readonly rev: number;
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
}

/** Policy shape etcd3 expects for fault handling (derived from its own option types). */
type FaultPolicy = NonNullable<NonNullable<IOptions['faultHandling']>['global']>;

/** A key range just past every key starting with `prefix`. */
function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if ((end[i] as number) < 0xff) {
      end[i] = (end[i] as number) + 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

function isCompacted(err: unknown): boolean {
  return /compacted/i.test(errorMessage(err));
}

/** A wake-up signal: `wait` resolves on the next `notify` or after `ms`. */
class Wakeup {
  #waiters: (() => void)[] = [];

  wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== done);
        resolve();
      }, ms);
      this.#waiters.push(done);
    });
  }

  notify(): void {
    const ws = this.#waiters;
    this.#waiters = [];
    for (const w of ws) w();
  }
}

/** A {@link StateBackend} on an etcd cluster shared by the servers of one datacenter. */
export class EtcdBackend implements StateBackend {
  /** Always `"etcd"`. */
  readonly kind = 'etcd';
  readonly #opts: EtcdBackendOptions;
  readonly #logger: Logger;
  readonly #client: Etcd3;
  /** The log-entry write (hand-encoded KV.Txn; see etcd-txn.ts). */
  readonly #txn: FencedTxnClient;
  readonly #prefix: string;
  readonly #ttl: number;
  readonly #requestTimeoutMs: number;
  readonly #dialTimeoutMs: number;
  readonly #snapshotEvery: number;
  readonly #compactHistory: boolean;
  readonly #abort = new AbortController();
  readonly #wake = new Wakeup();
  readonly #streams = new Set<{ cancel(): void }>();
  readonly #loops: Promise<void>[] = [];

  // applied state
  #rev = 0;
  #seq = 0;
  #watchFrom = 1;
  #needRelist = false;
  #snapIndex = 0;
  #snapSeq = 0;
  #nextSnapshotSeq = 0;
  #waiters: Waiter[] = [];
  #loading: Promise<number> | undefined;
  #relists = 0;

  // health
  #lastContact = Date.now();
  #logWatchUp = false;
  #cancelLogWatch: (() => void) | undefined;
  #lastKeepAliveOk = 0;

  // election
  #leaseId: string | undefined;
  #leaseValidUntil = 0;
  #registered = false;
  #leaderInfo: LeaderInfo | undefined;
  #leaderKeyCreateRev = 0;
  #leaderSeenRev = 0;
  #won = false;
  #leading = false;
  #leaderCreateRev = 0;
  #notified = false;
  #leadershipChain: Promise<void> = Promise.resolve();
  #servers = new Map<string, string>();

  // writes
  #queue: Pending[] = [];
  #flushScheduled = false;
  #busy = false;
  /** The snapshot being written, if any (log writes go on meanwhile). */
  #snapshotting: Promise<void> | undefined;
  #inflight: InFlight | undefined;
  #uncertain = false;

  #started = false;
  #closed = false;
  #closing: Promise<void> | undefined;

  private constructor(opts: EtcdBackendOptions) {
    this.#opts = opts;
    this.#logger = opts.logger.child({ component: 'state-etcd' });
    this.#prefix = opts.prefix ?? `/meshfed/${opts.self.datacenter}/`;
    this.#ttl = opts.leaseTtlSec ?? 5;
    this.#requestTimeoutMs = opts.requestTimeoutMs ?? 5000;
    this.#dialTimeoutMs = opts.dialTimeoutMs ?? 5000;
    this.#snapshotEvery = opts.snapshotEvery ?? DEFAULT_ETCD_SNAPSHOT_EVERY;
    this.#compactHistory = opts.compactHistory ?? true;
    this.#nextSnapshotSeq = this.#snapshotEvery;
    const hosts = [...opts.endpoints];
    const never = new AbortController().signal;
    const passthrough = { execute: async (fn: (ctx: unknown) => unknown) => fn({ signal: never, attempt: 0 }) } as unknown as FaultPolicy;
    const retry = {
      execute: async (fn: (ctx: unknown) => Promise<unknown>): Promise<unknown> => {
        let last: unknown;
        for (let attempt = 0; attempt < hosts.length; attempt++) {
          try {
            return await fn({ signal: never, attempt });
          } catch (err) {
            last = err;
            if (!(err instanceof Error) || !isRecoverableError(err)) throw err;
          }
        }
        throw last;
      },
    } as unknown as FaultPolicy;
    const tls = opts.tls;
    const timeout = this.#requestTimeoutMs;
    const grpcOptions = {
      'grpc.use_local_subchannel_pool': 1,
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 1000,
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
      'grpc.max_receive_message_length': 64 * 1024 * 1024,
    };
    this.#txn = new FencedTxnClient(hosts, tls, grpcOptions);
    this.#client = new Etcd3({
      hosts,
      dialTimeout: this.#dialTimeoutMs,
      ...(tls ? { credentials: { rootCertificate: tls.ca as Buffer, ...(tls.key ? { privateKey: tls.key } : {}), ...(tls.cert ? { certChain: tls.cert } : {}) } } : {}),
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + timeout }),
      faultHandling: { host: () => passthrough, global: retry },
      grpcOptions,
    });
  }

  /**
   * Create a backend (no I/O yet; {@link start} connects).
   * @throws {MeshfedError} `MESHFED_ERR_STATE_ETCD_OPTIONS` on invalid options
   */
  static create(opts: EtcdBackendOptions): EtcdBackend {
    const bad = (why: string): MeshfedError => new MeshfedError(EtcdBackendErrorCode.OPTIONS, `invalid etcd backend options: ${why}`, plugin);
    if (opts.endpoints === undefined || opts.endpoints.length === 0) throw bad('endpoints must list at least one etcd client URL, e.g. http://127.0.0.1:2379');
    for (const e of opts.endpoints) if (!/^https?:\/\/[^/]+\/?$/.test(e)) throw bad(`endpoint ${JSON.stringify(e)} must look like http(s)://host:port`);
    const posInt = (v: number | undefined, name: string, min: number): void => {
      if (v !== undefined && (!Number.isSafeInteger(v) || v < min)) throw bad(`${name} must be an integer ≥ ${min}, got ${String(v)}`);
    };
    posInt(opts.leaseTtlSec, 'leaseTtlSec', 2);
    posInt(opts.dialTimeoutMs, 'dialTimeoutMs', 1);
    posInt(opts.requestTimeoutMs, 'requestTimeoutMs', 1);
    posInt(opts.snapshotEvery, 'snapshotEvery', 1);
    if (opts.prefix !== undefined && !opts.prefix.endsWith('/')) throw bad(`prefix ${JSON.stringify(opts.prefix)} must end with "/"`);
    if (opts.store.latestIndex() !== 0) throw bad(`the store was already written (latest index ${opts.store.latestIndex()}): pass a fresh StateStore`);
    return new EtcdBackend(opts);
  }

  #key(suffix: string): Buffer {
    return Buffer.from(this.#prefix + suffix);
  }

  #logKey(seq: number): Buffer {
    return this.#key(`log/${pad(seq, SEQ_DIGITS)}`);
  }

  // ---- requests ------------------------------------------------------------------------------

  #unavailable(what: string, cause?: unknown): MeshfedError {
    return new MeshfedError(StateBackendErrorCode.UNAVAILABLE, `etcd unreachable: ${what}${cause === undefined ? '' : `: ${errorMessage(cause)}`} (endpoints ${this.#opts.endpoints.join(', ')})`, { ...plugin, cause });
  }

  #closedError(): MeshfedError {
    return new MeshfedError(EtcdBackendErrorCode.CLOSED, 'etcd state backend is closed', plugin);
  }

  /** One etcd request, bounded by requestTimeoutMs; errors become MeshfedErrors. */
  async #rpc<T>(what: string, fn: (o: CallOptions) => Promise<T>, timeoutMs = this.#requestTimeoutMs): Promise<T> {
    if (this.#closed && this.#closing === undefined) throw this.#closedError();
    let timer: NodeJS.Timeout | undefined;
    // timeoutMs 0: the call honours its gRPC deadline itself (requestTimeoutMs), no extra timer
    const deadline = Date.now() + (timeoutMs || this.#requestTimeoutMs);
    const timeout =
      timeoutMs === 0
        ? undefined
        : new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(this.#unavailable(`${what} not answered within ${timeoutMs} ms`)), timeoutMs);
          });
    try {
      const call = fn({ deadline });
      const res = await (timeout ? Promise.race([call, timeout]) : call);
      this.#lastContact = Date.now();
      return res;
    } catch (err) {
      if (err instanceof MeshfedError) throw err;
      if (isCompacted(err)) throw new MeshfedError(EtcdBackendErrorCode.COMPACTED, `${what}: revision compacted`, { ...plugin, cause: err });
      if (err instanceof Error && !isRecoverableError(err) && !/deadline|unavailable|closed|cancel|connect|timed? ?out/i.test(err.message)) {
        throw new MeshfedError(EtcdBackendErrorCode.REQUEST, `etcd refused ${what}: ${err.message}`, { ...plugin, cause: err });
      }
      throw this.#unavailable(what, err);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Run one watch stream until it ends or fails; `onResponse` throwing cancels it. */
  async #watchStream(req: IWatchCreateRequest, onResponse: (res: IWatchResponse) => void, onCreated?: () => void, onStream?: (cancel: () => void) => void): Promise<void> {
    const stream = await this.#client.watchClient.watch();
    this.#streams.add(stream);
    if (this.#closed && this.#abort.signal.aborted) {
      // close() already cancelled the streams it knew of
      this.#streams.delete(stream);
      stream.cancel();
      return;
    }
    onStream?.(() => stream.cancel());
    try {
      await new Promise<void>((resolve, reject) => {
        stream.on('data', (res: IWatchResponse) => {
          this.#lastContact = Date.now();
          try {
            if (res.created) onCreated?.();
            onResponse(res);
          } catch (err) {
            reject(err instanceof Error ? err : new Error(String(err)));
            stream.cancel();
          }
        });
        stream.on('error', reject);
        stream.on('end', () => resolve());
        stream.write({ create_request: req });
      });
    } finally {
      this.#streams.delete(stream);
      try {
        stream.cancel();
      } catch {
        // already gone
      }
    }
  }

  async #pause(ms: number): Promise<void> {
    try {
      await delay(ms, undefined, { signal: this.#abort.signal });
    } catch {
      // closed
    }
  }

  // ---- applying the log ----------------------------------------------------------------------

  /** Apply log entry `seq` at revision `rev` (no-op if already applied); settles the in-flight batch. */
  #applyEntry(seq: number, rev: number, commands: readonly Command[]): void {
    if (seq <= this.#seq) return;
    if (seq !== this.#seq + 1) {
      this.#logger.warn('gap in the etcd command log; re-listing', { expected: this.#seq + 1, got: seq });
      this.#needRelist = true;
      throw new MeshfedError(EtcdBackendErrorCode.CORRUPT, `log entry ${this.#seq + 1} missing (next is ${seq})`, plugin);
    }
    const results: unknown[] = commands.map((cmd) => {
      try {
        this.#store().apply(rev, cmd);
        return undefined;
      } catch (err) {
        return err ?? new Error('apply failed');
      }
    });
    this.#seq = seq;
    this.#rev = rev;
    this.#watchFrom = Math.max(this.#watchFrom, rev + 1);
    const inflight = this.#inflight;
    if (inflight?.seq === seq) {
      inflight.batch.forEach((p, i) => {
        const err = results[i];
        if (err === undefined) p.resolve({ index: rev });
        else p.reject(err);
      });
    }
    this.#wakeWaiters();
  }

  #store(): BackendContext['store'] {
    return this.#opts.store;
  }

  #wakeWaiters(): void {
    if (this.#waiters.length === 0) return;
    const ready = this.#waiters.filter((w) => w.rev <= this.#rev);
    if (ready.length === 0) return;
    this.#waiters = this.#waiters.filter((w) => w.rev > this.#rev);
    for (const w of ready) w.resolve();
  }

  #applyKv(kv: IKeyValue): void {
    const name = kv.key.toString().slice(this.#prefix.length + 'log/'.length);
    const seq = Number(name);
    if (!/^\d+$/.test(name) || !Number.isSafeInteger(seq)) {
      this.#logger.warn('ignoring a foreign key under the log prefix', { key: kv.key.toString() });
      return;
    }
    if (seq <= this.#seq) return;
    let commands: Command[];
    try {
      const entry = JSON.parse(kv.value.toString()) as { commands?: unknown };
      if (!Array.isArray(entry.commands)) throw new Error('no commands array');
      commands = entry.commands as Command[];
    } catch (err) {
      // every server skips it identically
      this.#logger.error('unreadable log entry skipped', { seq, error: errorMessage(err) });
      commands = [];
    }
    this.#applyEntry(seq, Number(kv.mod_revision), commands);
  }

  /** Load the snapshot (if newer than the store) and every log entry after it; one at a time. */
  #load(): Promise<number> {
    this.#loading ??= this.#doLoad().finally(() => (this.#loading = undefined));
    return this.#loading;
  }

  async #doLoad(): Promise<number> {
    const kv = this.#client.kv;
    const head = await this.#rpc('read snapshot pointer', (o) => kv.range({ key: this.#key('snapshot') }, o));
    const at = Number(head.header.revision);
    const ptrKv = head.kvs[0];
    if (ptrKv) {
      const ptr = JSON.parse(ptrKv.value.toString()) as SnapshotPointer;
      this.#snapIndex = Math.max(this.#snapIndex, ptr.index);
      this.#snapSeq = Math.max(this.#snapSeq, ptr.seq);
      this.#nextSnapshotSeq = Math.max(this.#nextSnapshotSeq, ptr.seq + this.#snapshotEvery);
      if (ptr.index > this.#rev) {
        const dir = this.#key(`snapshot/${pad(ptr.index, SEQ_DIGITS)}/`);
        const res = await this.#rpc('read snapshot', (o) => kv.range({ key: dir, range_end: prefixEnd(dir), revision: at, sort_target: 'Key', sort_order: 'Ascend' }, o));
        if (res.kvs.length !== ptr.chunks) {
          throw new MeshfedError(EtcdBackendErrorCode.CORRUPT, `snapshot at index ${ptr.index} has ${res.kvs.length} of ${ptr.chunks} chunks`, plugin);
        }
        const data = Buffer.concat(res.kvs.map((c) => c.value)).toString();
        this.#store().restore(JSON.parse(data) as StoreSnapshot);
        this.#rev = ptr.index;
        this.#seq = ptr.seq;
        this.#logger.info('state restored from etcd snapshot', { index: ptr.index, seq: ptr.seq, bytes: ptr.bytes });
        this.#wakeWaiters();
      }
    }
    const end = prefixEnd(this.#key('log/'));
    let from = this.#logKey(this.#seq + 1);
    for (;;) {
      const req: IRangeRequest = { key: from, range_end: end, revision: at, limit: 500, sort_target: 'Key', sort_order: 'Ascend' };
      const res = await this.#rpc('read log', (o) => kv.range(req, o));
      for (const e of res.kvs) this.#applyKv(e);
      const last = res.kvs[res.kvs.length - 1];
      if (!res.more || !last) break;
      from = Buffer.concat([last.key, Buffer.from([0])]);
    }
    this.#watchFrom = Math.max(this.#watchFrom, at + 1);
    return at;
  }

  async #logWatchLoop(): Promise<void> {
    const key = this.#key('log/');
    let backoff = 50;
    while (!this.#closed) {
      if (this.#leading) {
        // the leader is the only writer and applies its own entries: watching them would only
        // cost etcd and this process work per write. Resume (from the last applied revision)
        // when no longer leading.
        await this.#wake.wait(1000);
        continue;
      }
      try {
        if (this.#needRelist) {
          await this.#load();
          this.#needRelist = false;
          this.#relists++;
        }
        const req: IWatchCreateRequest = { key, range_end: prefixEnd(key), start_revision: this.#watchFrom };
        await this.#watchStream(
          req,
          (res) => {
            if (res.canceled) {
              if (Number(res.compact_revision) > 0) {
                this.#needRelist = true;
                throw new MeshfedError(EtcdBackendErrorCode.COMPACTED, `log watch from revision ${req.start_revision} compacted at ${res.compact_revision}`, plugin);
              }
              throw new Error(`log watch canceled: ${res.cancel_reason}`);
            }
            for (const ev of res.events ?? []) {
              if (ev.type === 'Put') this.#applyKv(ev.kv);
              this.#watchFrom = Math.max(this.#watchFrom, Number(ev.kv.mod_revision) + 1);
            }
            backoff = 50;
          },
          () => (this.#logWatchUp = true),
          (cancel) => (this.#cancelLogWatch = cancel),
        );
      } catch (err) {
        if (this.#closed) break;
        if (err instanceof MeshfedError && err.code === EtcdBackendErrorCode.COMPACTED) this.#needRelist = true;
        this.#logger.debug('log watch interrupted', { error: errorMessage(err), relist: this.#needRelist });
      } finally {
        this.#logWatchUp = false;
        this.#cancelLogWatch = undefined;
      }
      if (this.#closed) break;
      await this.#pause(backoff);
      backoff = Math.min(1000, backoff * 2);
    }
  }

  /** List `key` (a prefix when `range` is set), then follow its changes; forever. */
  async #follow(what: string, key: Buffer, range: boolean, onReset: (kvs: readonly IKeyValue[], rev: number) => void, onEvent: (type: string, kv: IKeyValue) => void): Promise<void> {
    let backoff = 50;
    while (!this.#closed) {
      try {
        const res = await this.#rpc(`list ${what}`, (o) => this.#client.kv.range(range ? { key, range_end: prefixEnd(key) } : { key }, o));
        onReset(res.kvs, Number(res.header.revision));
        await this.#watchStream({ key, ...(range ? { range_end: prefixEnd(key) } : {}), start_revision: Number(res.header.revision) + 1 }, (w) => {
          if (w.canceled) throw new Error(`${what} watch canceled: ${w.cancel_reason}`);
          for (const ev of w.events ?? []) onEvent(ev.type, ev.kv);
          backoff = 50;
        });
      } catch (err) {
        if (this.#closed) break;
        this.#logger.debug(`${what} watch interrupted`, { error: errorMessage(err) });
      }
      if (this.#closed) break;
      await this.#pause(backoff);
      backoff = Math.min(1000, backoff * 2);
    }
  }

  // ---- leadership ----------------------------------------------------------------------------

  /** A view of the leader key as of etcd revision `rev`; older views than one already seen are ignored. */
  #onLeaderKey(kv: IKeyValue | undefined, rev: number): void {
    if (rev < this.#leaderSeenRev) return;
    this.#leaderSeenRev = rev;
    if (!kv) {
      this.#leaderInfo = undefined;
      this.#leaderKeyCreateRev = 0;
      if (this.#won) void this.#stepDown('the leader key was deleted');
      this.#wake.notify();
      return;
    }
    try {
      const v = JSON.parse(kv.value.toString()) as LeaderInfo;
      this.#leaderInfo = Object.freeze({ node: String(v.node), address: String(v.address) });
    } catch {
      this.#leaderInfo = undefined;
    }
    this.#leaderKeyCreateRev = Number(kv.create_revision);
    if (this.#won && this.#leaderKeyCreateRev !== this.#leaderCreateRev) void this.#stepDown('another server holds the leader key');
  }

  async #grantLease(): Promise<void> {
    const sent = Date.now();
    const res = await this.#rpc('grant lease', (o) => this.#client.leaseClient.leaseGrant({ TTL: this.#ttl }, o));
    this.#leaseId = res.ID;
    this.#leaseValidUntil = sent + Number(res.TTL) * 1000;
    this.#lastKeepAliveOk = Date.now();
    this.#registered = false;
  }

  async #keepAliveOnce(id: string): Promise<number> {
    return this.#rpc('lease keep-alive', async () => {
      const stream = await this.#client.leaseClient.leaseKeepAlive();
      this.#streams.add(stream);
      if (this.#abort.signal.aborted) {
        this.#streams.delete(stream);
        stream.cancel();
        throw this.#closedError();
      }
      try {
        return await new Promise<number>((resolve, reject) => {
          stream.on('data', (r: { TTL: string }) => resolve(Number(r.TTL)));
          stream.on('error', reject);
          stream.on('end', () => reject(new Error('keep-alive stream ended')));
          stream.write({ ID: id });
        });
      } finally {
        this.#streams.delete(stream);
        stream.cancel();
      }
    }, Math.min(this.#requestTimeoutMs, (this.#ttl * 1000) / 3));
  }

  #leaseLost(why: string): void {
    this.#logger.warn('etcd lease lost', { reason: why });
    this.#leaseId = undefined;
    this.#registered = false;
    void this.#stepDown(`lease lost: ${why}`);
    this.#wake.notify();
  }

  async #keepAliveLoop(): Promise<void> {
    const interval = (this.#ttl * 1000) / 3;
    while (!this.#closed) {
      const id = this.#leaseId;
      let next = interval;
      if (id !== undefined) {
        const sent = Date.now();
        try {
          const ttl = await this.#keepAliveOnce(id);
          if (id === this.#leaseId) {
            if (ttl <= 0) this.#leaseLost('etcd says it expired');
            else {
              this.#leaseValidUntil = sent + ttl * 1000;
              this.#lastKeepAliveOk = Date.now();
            }
          }
        } catch (err) {
          if (this.#closed) break;
          this.#logger.debug('lease keep-alive failed', { error: errorMessage(err) });
          next = Math.min(interval, 100);
        }
      }
      await this.#pause(next);
    }
  }

  /** Step down when the lease may have expired: fast enough that another leader cannot overlap. */
  #guard(): void {
    if (this.#won && Date.now() > this.#leaseValidUntil - Math.min(1000, (this.#ttl * 1000) / 4)) {
      void this.#stepDown('lease keep-alive failed for too long; the lease may have expired');
    }
  }

  async #campaignLoop(): Promise<void> {
    while (!this.#closed) {
      try {
        if (this.#leaseId === undefined) await this.#grantLease();
        const lease = this.#leaseId as string;
        if (!this.#registered) {
          await this.#rpc('register server', (o) => this.#client.kv.put({ key: this.#key(`servers/${this.#opts.self.node}`), value: Buffer.from(this.#opts.self.rpcAddress()), lease }, o));
          this.#registered = true;
        }
        if (!this.#won && !this.#closed) await this.#campaign(lease);
      } catch (err) {
        if (this.#closed) break;
        this.#logger.debug('campaign round failed', { error: errorMessage(err) });
      }
      if (this.#closed) break;
      await this.#wake.wait(this.#won ? 2000 : 1000);
    }
  }

  async #campaign(lease: string): Promise<void> {
    const key = this.#key('leader');
    const value = Buffer.from(JSON.stringify({ node: this.#opts.self.node, address: this.#opts.self.rpcAddress() }));
    const res = await this.#rpc('campaign', (o) =>
      this.#client.kv.txn(
        {
          compare: [{ key, target: 'Create', result: 'Equal', create_revision: 0 }],
          success: [{ request_put: { key, value, lease } }],
          failure: [{ request_range: { key } }],
        },
        o,
      ),
    );
    if (this.#closed) return;
    if (res.succeeded) {
      this.#leaderSeenRev = Math.max(this.#leaderSeenRev, Number(res.header.revision));
      await this.#becomeLeader(Number(res.header.revision), lease);
      return;
    }
    const kv = res.responses[0]?.response_range.kvs[0];
    this.#onLeaderKey(kv, Number(res.header.revision));
    if (kv && kv.lease === lease) await this.#becomeLeader(Number(kv.create_revision), lease);
  }

  async #becomeLeader(createRev: number, lease: string): Promise<void> {
    this.#won = true;
    this.#leaderCreateRev = createRev;
    this.#leaderKeyCreateRev = createRev;
    this.#leaderInfo = Object.freeze({ node: this.#opts.self.node, address: this.#opts.self.rpcAddress() });
    this.#logger.info('won etcd leader election; catching up', { revision: createRev });
    try {
      await this.#load();
    } catch (err) {
      this.#logger.warn('catch-up after winning the election failed; resigning', { error: errorMessage(err) });
      await this.#stepDown('catch-up failed');
      await this.#resign(createRev).catch(() => undefined);
      return;
    }
    if (!this.#won || this.#leaderCreateRev !== createRev || lease !== this.#leaseId || this.#closed) return;
    this.#notified = true;
    await this.#notify(true);
    if (!this.#won || this.#leaderCreateRev !== createRev || this.#closed) return;
    this.#leading = true;
    this.#cancelLogWatch?.();
    this.#logger.info('leading the datacenter', { index: this.#rev, seq: this.#seq });
    this.#schedule();
  }

  #notify(isLeader: boolean): Promise<void> {
    this.#leadershipChain = this.#leadershipChain.then(async () => {
      try {
        await this.#opts.self.onLeadership(isLeader);
      } catch (err) {
        this.#logger.error('onLeadership hook failed', { isLeader, error: errorMessage(err) });
      }
    });
    return this.#leadershipChain;
  }

  async #stepDown(reason: string): Promise<void> {
    if (!this.#won) return;
    this.#won = false;
    this.#leading = false;
    this.#leaderCreateRev = 0;
    if (this.#leaderInfo?.node === this.#opts.self.node) this.#leaderInfo = undefined;
    this.#logger.warn('stepping down as leader', { reason });
    const queued = this.#queue;
    this.#queue = [];
    for (const p of queued) p.reject(this.#notLeader());
    this.#wake.notify();
    if (this.#notified) {
      this.#notified = false;
      await this.#notify(false);
    }
  }

  async #resign(createRev: number): Promise<void> {
    const key = this.#key('leader');
    await this.#rpc('resign', (o) => this.#client.kv.txn({ compare: [{ key, target: 'Create', result: 'Equal', create_revision: createRev }], success: [{ request_delete_range: { key } }] }, o));
  }

  #notLeader(): MeshfedError {
    const l = this.#leaderInfo;
    const who = !l ? 'no leader is known yet' : l.node === this.#opts.self.node ? 'this server won the election and is catching up; retry shortly' : `the leader is ${l.node} (${l.address})`;
    return new MeshfedError(StateBackendErrorCode.NOT_LEADER, `not the leader of datacenter ${this.#opts.self.datacenter}: ${who}`, plugin);
  }

  // ---- StateBackend --------------------------------------------------------------------------

  /**
   * Connect, load the snapshot and the log, start following the log, register this server and
   * campaign for leadership. Resolves once the local store is current.
   * @throws {MeshfedError} `MESHFED_ERR_STATE_UNAVAILABLE` when etcd cannot be reached within
   *   `dialTimeoutMs`; `MESHFED_ERR_ABORTED`-like errors when `signal` fires
   */
  async start(signal: AbortSignal): Promise<void> {
    if (this.#closed) throw this.#closedError();
    if (this.#started) throw new MeshfedError(EtcdBackendErrorCode.OPTIONS, 'etcd backend already started', plugin);
    this.#started = true;
    const deadline = Date.now() + this.#dialTimeoutMs;
    for (;;) {
      if (signal.aborted) throw abortError(signal, 'etcd state backend start');
      try {
        await this.#load();
        break;
      } catch (err) {
        if (this.#closed) throw this.#closedError();
        if (Date.now() > deadline || (err instanceof MeshfedError && err.code !== StateBackendErrorCode.UNAVAILABLE && err.code !== EtcdBackendErrorCode.COMPACTED)) throw err;
        await this.#pause(100);
      }
    }
    const guard = setInterval(() => this.#guard(), 100);
    guard.unref();
    this.#abort.signal.addEventListener('abort', () => clearInterval(guard));
    const run = (p: Promise<void>): void => {
      this.#loops.push(p.catch((err: unknown) => this.#logger.error('etcd backend loop failed', { error: errorMessage(err) })));
    };
    run(this.#logWatchLoop());
    run(this.#follow('leader', this.#key('leader'), false, (kvs, rev) => this.#onLeaderKey(kvs[0], rev), (type, kv) => this.#onLeaderKey(type === 'Put' ? kv : undefined, Number(kv.mod_revision))));
    const serverPrefix = this.#prefix + 'servers/';
    run(
      this.#follow(
        'servers',
        this.#key('servers/'),
        true,
        (kvs) => (this.#servers = new Map(kvs.map((kv) => [kv.key.toString().slice(serverPrefix.length), kv.value.toString()]))),
        (type, kv) => {
          const node = kv.key.toString().slice(serverPrefix.length);
          if (type === 'Put') this.#servers.set(node, kv.value.toString());
          else this.#servers.delete(node);
        },
      ),
    );
    run(this.#keepAliveLoop());
    run(this.#campaignLoop());
    this.#logger.info('etcd state backend started', { prefix: this.#prefix, index: this.#rev, seq: this.#seq });
  }

  /**
   * Write `command` to the etcd log (group-committed with other queued commands) and apply it
   * locally; resolves when it is durable in etcd's quorum and visible in the local store.
   * @throws (rejects) the store's validation error (nothing written); `MESHFED_ERR_STATE_NOT_LEADER`
   *   on a follower or after losing leadership; `MESHFED_ERR_STATE_UNAVAILABLE` when etcd did not
   *   acknowledge (the write may or may not land); `MESHFED_ERR_STATE_ETCD_TOO_LARGE`
   */
  apply(command: Command): Promise<ApplyResult> {
    if (this.#closed) return Promise.reject(this.#closedError());
    if (!this.#leading) return Promise.reject(this.#notLeader());
    let json: string;
    try {
      json = JSON.stringify(command);
    } catch (err) {
      return Promise.reject(new MeshfedError(StateErrorCode.INVALID, `command is not serializable: ${errorMessage(err)}`, { ...plugin, cause: err }));
    }
    if (json === undefined || Buffer.byteLength(json) > MAX_ENTRY_BYTES) {
      return Promise.reject(new MeshfedError(EtcdBackendErrorCode.TOO_LARGE, `command of ${json === undefined ? 0 : Buffer.byteLength(json)} bytes exceeds the ${MAX_ENTRY_BYTES}-byte log entry limit`, plugin));
    }
    return new Promise((resolve, reject) => {
      this.#queue.push({ command, json, resolve, reject });
      this.#schedule();
    });
  }

  #schedule(): void {
    if (this.#flushScheduled || this.#busy || this.#queue.length === 0) return;
    this.#flushScheduled = true;
    // a microtask, not a timer: commands queued in the same turn (and by callers resumed in the
    // same microtask run) still share one batch, without paying an event-loop hop per write
    queueMicrotask(() => {
      this.#flushScheduled = false;
      void this.#flush();
    });
  }

  async #flush(): Promise<void> {
    if (this.#busy || this.#queue.length === 0) return;
    this.#busy = true;
    try {
      await this.#commitBatch();
      if (this.#leading && this.#seq >= this.#nextSnapshotSeq && !this.#snapshotting) {
        // in the background: the store is serialized synchronously at its current index, and later
        // log entries (seq + 1 …) are untouched by the snapshot's commit, so writes need not wait
        // for its chunks
        this.#snapshotting = this.#writeSnapshot()
          .catch((err: unknown) => this.#logger.warn('etcd snapshot failed', { error: errorMessage(err) }))
          .finally(() => {
            this.#snapshotting = undefined;
          });
      }
    } finally {
      this.#busy = false;
      this.#schedule();
    }
  }

  async #commitBatch(): Promise<void> {
    if (!this.#leading) {
      const q = this.#queue;
      this.#queue = [];
      for (const p of q) p.reject(this.#notLeader());
      return;
    }
    if (this.#uncertain) {
      try {
        await this.#load();
        this.#uncertain = false;
      } catch (err) {
        const q = this.#queue;
        this.#queue = [];
        const e = this.#unavailable('write not acknowledged (cannot read the log)', err);
        for (const p of q) p.reject(e);
        return;
      }
    }
    const batch: Pending[] = [];
    let bytes = 20;
    let i = 0;
    for (; i < this.#queue.length; i++) {
      const p = this.#queue[i] as Pending;
      if (batch.length > 0 && bytes + p.json.length + 1 > MAX_ENTRY_BYTES) break;
      try {
        this.#store().check(p.command);
      } catch (err) {
        if (batch.length === 0) {
          p.reject(err);
          continue;
        }
        break; // may depend on the commands before it: validate again in the next batch
      }
      batch.push(p);
      bytes += p.json.length + 1;
    }
    this.#queue = this.#queue.slice(i);
    if (batch.length === 0) return;
    const payload = Buffer.from(`{"commands":[${batch.map((p) => p.json).join(',')}]}`);
    // Apply what followers will parse from the log: the command objects themselves when JSON
    // reproduces them exactly (the common case, no parse), else their parsed JSON.
    const commands = batch.map((p) => (isJsonFaithful(p.command) ? p.command : (JSON.parse(p.json) as Command)));
    const seq = this.#seq + 1;
    const createRev = this.#leaderCreateRev;
    const leaderKey = this.#key('leader');
    const logKey = this.#logKey(seq);
    this.#inflight = { seq, batch };
    try {
      // the gRPC deadline bounds the call (and its tries on other endpoints): no extra timer
      const res = await this.#rpc('write log entry', (o) => this.#txn.fencedPut(leaderKey, createRev, logKey, payload, o.deadline as number), 0);
      let rev: number | undefined;
      if (res.succeeded) rev = res.revision;
      else {
        // rare path: find out why (kept out of the hot request to keep it small)
        const why = await this.#rpc('read after a refused write', (o) => this.#client.kv.txn({ success: [{ request_range: { key: leaderKey } }, { request_range: { key: logKey } }] }, o));
        const leaderKv = why.responses[0]?.response_range.kvs[0];
        const logKv = why.responses[1]?.response_range.kvs[0];
        // a retried request whose first attempt landed: ours
        if (Number(leaderKv?.create_revision) === createRev && logKv?.value.equals(payload)) rev = Number(logKv.mod_revision);
      }
      if (rev === undefined) {
        const err = this.#notLeader();
        for (const p of batch) p.reject(err);
        this.#uncertain = true;
        await this.#stepDown(`the fenced write of log entry ${seq} was refused`);
        return;
      }
      if (seq === this.#seq + 1) this.#applyEntry(seq, rev, commands);
      if (this.#seq < seq) {
        // could not apply in order (should not happen): the callers learn it was not confirmed
        const err = this.#unavailable(`write of log entry ${seq} landed but could not be applied locally`);
        for (const p of batch) p.reject(err);
        this.#uncertain = true;
      }
    } catch (err) {
      this.#uncertain = true;
      const e = err instanceof MeshfedError && err.code === StateBackendErrorCode.UNAVAILABLE ? new MeshfedError(err.code, `${err.message}; write not acknowledged (it may or may not have landed)`, { ...plugin, cause: err }) : err;
      for (const p of batch) p.reject(e);
    } finally {
      this.#inflight = undefined;
    }
  }

  async #writeSnapshot(): Promise<void> {
    const index = this.#rev;
    const seq = this.#seq;
    const createRev = this.#leaderCreateRev;
    const data = Buffer.from(JSON.stringify(this.#store().snapshot()));
    const chunks = Math.max(1, Math.ceil(data.length / SNAPSHOT_CHUNK_BYTES));
    const dir = `snapshot/${pad(index, SEQ_DIGITS)}/`;
    const kv = this.#client.kv;
    try {
      for (let n = 0; n < chunks; n++) {
        const value = data.subarray(n * SNAPSHOT_CHUNK_BYTES, (n + 1) * SNAPSHOT_CHUNK_BYTES);
        await this.#rpc('write snapshot chunk', (o) => kv.put({ key: this.#key(`${dir}${pad(n, 6)}`), value }, o));
      }
      const pointer: SnapshotPointer = { index, seq, chunks, bytes: data.length };
      const ops: IRequestOp[] = [
        { request_put: { key: this.#key('snapshot'), value: Buffer.from(JSON.stringify(pointer)) } },
        { request_delete_range: { key: this.#key('log/'), range_end: this.#logKey(seq + 1) } },
      ];
      const leaderKey = this.#key('leader');
      const res = await this.#rpc('commit snapshot', (o) => kv.txn({ compare: [{ key: leaderKey, target: 'Create', result: 'Equal', create_revision: createRev }], success: ops }, o));
      if (!res.succeeded) {
        await this.#rpc('drop snapshot chunks', (o) => kv.deleteRange({ key: this.#key(dir), range_end: prefixEnd(this.#key(dir)) }, o)).catch(() => undefined);
        await this.#stepDown('the fenced snapshot commit was refused');
        return;
      }
      this.#snapIndex = index;
      this.#snapSeq = seq;
      this.#nextSnapshotSeq = seq + this.#snapshotEvery;
      const dropped = await this.#rpc('drop old snapshots', (o) => kv.deleteRange({ key: this.#key('snapshot/'), range_end: this.#key(dir) }, o));
      if (this.#compactHistory) {
        // everything up to here is in the snapshot: drop the history (and the tombstones of the log
        // entries just deleted, which slow every later fenced write until etcd compacts them)
        const upTo = Number(dropped.header.revision);
        await this.#rpc('compact history', (o) => kv.compact({ revision: upTo, physical: false }, o)).catch((err: unknown) => {
          if (!this.#closed) this.#logger.warn('etcd compaction after a snapshot failed', { revision: upTo, error: errorMessage(err) });
        });
      }
      this.#logger.debug('snapshot written to etcd', { index, seq, chunks, bytes: data.length });
    } catch (err) {
      this.#nextSnapshotSeq = seq + Math.max(1, Math.ceil(this.#snapshotEvery / 4));
      if (!this.#closed) this.#logger.warn('etcd snapshot failed; will retry', { index, error: errorMessage(err) });
    }
  }

  /**
   * Resolve once every write acknowledged anywhere before this call is visible locally: reads
   * the latest log revision (linearizable) and waits until the store has applied it.
   * @throws (rejects) `MESHFED_ERR_STATE_UNAVAILABLE` when etcd cannot be reached, or the store
   *   does not catch up, within `requestTimeoutMs`
   */
  async barrier(signal?: AbortSignal): Promise<void> {
    if (this.#closed) throw this.#closedError();
    const started = Date.now();
    const key = this.#key('log/');
    const res = await this.#rpc('barrier read', (o) =>
      this.#client.kv.txn(
        {
          success: [
            { request_range: { key, range_end: prefixEnd(key), sort_target: 'Mod', sort_order: 'Descend', limit: 1, keys_only: true } },
            { request_range: { key: this.#key('snapshot') } },
          ],
        },
        o,
      ),
    );
    let target = Number(res.responses[0]?.response_range.kvs[0]?.mod_revision ?? 0);
    const ptr = res.responses[1]?.response_range.kvs[0];
    if (ptr) target = Math.max(target, (JSON.parse(ptr.value.toString()) as SnapshotPointer).index);
    if (this.#rev < target && (this.#leading || !this.#logWatchUp)) {
      // nothing is streaming entries to this server (the leader does not watch its own log):
      // read them (this also settles an earlier write whose acknowledgement was lost)
      await this.#load();
    }
    if (this.#rev >= target) return;
    const left = Math.max(1, this.#requestTimeoutMs - (Date.now() - started));
    await new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        rev: target,
        resolve: () => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
        reject: (err) => fail(err instanceof Error ? err : new Error(String(err))),
      };
      const fail = (err: Error): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        reject(err);
      };
      const onAbort = (): void => fail(abortError(signal as AbortSignal, 'barrier'));
      const timer = setTimeout(() => fail(this.#unavailable(`local store did not reach revision ${target} within ${this.#requestTimeoutMs} ms (at ${this.#rev})`)), left);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiters.push(waiter);
      if (!this.#logWatchUp) this.#needRelist = true;
    });
  }

  /** Whether this server leads its datacenter and accepts writes. */
  isLeader(): boolean {
    return this.#leading;
  }

  /** The leader as named by the `leader` key in etcd, when known. */
  leader(): LeaderInfo | undefined {
    return this.#leaderInfo;
  }

  /** RPC addresses of the servers registered under this datacenter's prefix (sorted, unique). */
  peers(): readonly string[] {
    return [...new Set(this.#servers.values())].sort();
  }

  /** 0 while the log watch and the lease are healthy, else ms since the last exchange with etcd. */
  lastContactMs(): number {
    const keepAliveHealthy = Date.now() - this.#lastKeepAliveOk < (this.#ttl * 1000 * 2) / 3 + 250;
    if ((this.#logWatchUp || this.#leading) && keepAliveHealthy) return 0;
    return Math.max(1, Date.now() - this.#lastContact);
  }

  /** Status for `/v1/meshfed/status`: endpoints, prefix, leader, indexes, contact (no secrets). */
  status(): Record<string, unknown> {
    return {
      kind: this.kind,
      endpoints: [...this.#opts.endpoints],
      prefix: this.#prefix,
      leader: this.#leaderInfo,
      isLeader: this.#leading,
      appliedIndex: this.#rev,
      appliedSeq: this.#seq,
      lastContactMs: this.lastContactMs(),
      snapshotIndex: this.#snapIndex,
      snapshotSeq: this.#snapSeq,
      relists: this.#relists,
      leaseTtlSec: this.#ttl,
      peers: this.peers(),
    };
  }

  /** Index (etcd revision) of the last log entry applied to the local store. */
  appliedIndex(): number {
    return this.#rev;
  }

  /**
   * Resign (delete the leader key if held), revoke the lease, fire `onLeadership(false)` if
   * leading, stop every watch and close the client. Queued writes reject. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= this.#doClose();
    return this.#closing;
  }

  async #doClose(): Promise<void> {
    this.#closed = true;
    const createRev = this.#leaderCreateRev;
    const won = this.#won;
    await this.#stepDown('closing');
    const q = this.#queue;
    this.#queue = [];
    for (const p of q) p.reject(this.#closedError());
    const quick = Math.min(this.#requestTimeoutMs, 2000);
    if (won) await this.#rpc('resign', (o) => this.#client.kv.txn({ compare: [{ key: this.#key('leader'), target: 'Create', result: 'Equal', create_revision: createRev }], success: [{ request_delete_range: { key: this.#key('leader') } }] }, o), quick).catch(() => undefined);
    const lease = this.#leaseId;
    if (lease !== undefined) await this.#rpc('revoke lease', (o) => this.#client.leaseClient.leaseRevoke({ ID: lease }, o), quick).catch(() => undefined);
    this.#abort.abort();
    this.#wake.notify();
    for (const s of this.#streams) {
      try {
        s.cancel();
      } catch {
        // already gone
      }
    }
    // every loop wakes up on the abort and each request is bounded; bound the wait anyway so a
    // stuck stream can never hang close()
    let timer: NodeJS.Timeout | undefined;
    const stuck = await Promise.race([
      Promise.all(this.#loops).then(() => false),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), this.#requestTimeoutMs + 1000))),
    ]);
    clearTimeout(timer);
    if (stuck) this.#logger.warn('etcd backend loops did not stop in time; closing the client anyway');
    for (const s of this.#streams) {
      try {
        s.cancel();
      } catch {
        // already gone
      }
    }
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w.reject(this.#closedError());
    this.#client.close();
    this.#txn.close();
    await this.#leadershipChain;
  }
}
