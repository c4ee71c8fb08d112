/**
 * Query plumbing of {@link Serf}: the handle a query's originator reads acks and responses from,
 * tag-filter regular expressions (Go RE2 syntax mapped to JavaScript, with a guard against
 * catastrophic backtracking), and the ping-delegate coordinate payload.
 */
import { encode, t } from '../../rpc/msgpack/index.js';

/** One node's answer to a query. */
export interface SerfNodeResponse {
  /** The node that answered. */
  readonly from: string;
  /** Its payload. */
  readonly payload: Buffer;
}

/** What a query collected by its deadline. */
export interface SerfQueryResult {
  /** Nodes that acked (only when `requestAck` was set). */
  readonly acks: readonly string[];
  /** Responses, in arrival order, one per node. */
  readonly responses: readonly SerfNodeResponse[];
}

/**
 * A running query (Go `QueryResponse`): acks and responses arrive until the deadline, then the
 * handle closes. Iterate it (`for await (const r of handle)`) to stream responses, or await
 * {@link SerfQueryHandle.done} for everything at once.
 */
export class SerfQueryHandle implements AsyncIterable<SerfNodeResponse> {
  /** The query's Lamport time (its key among running queries). */
  readonly ltime: bigint;
  /** The query's random ID. */
  readonly id: number;
  /** When the query closes (ms since epoch, the Serf's clock). */
  readonly deadline: number;
  /** Whether acks were requested. */
  readonly ackRequested: boolean;
  /** Resolves when the query closes (deadline or {@link close}) with what was collected. */
  readonly done: Promise<SerfQueryResult>;
  readonly #acks: string[] = [];
  readonly #ackSet = new Set<string>();
  readonly #responses: SerfNodeResponse[] = [];
  readonly #responded = new Set<string>();
  readonly #maxEntries: number;
  readonly #onClose: () => void;
  #closed = false;
  #resolveDone!: (r: SerfQueryResult) => void;
  #wake: (() => void)[] = [];

  /** @internal built by `Serf.query`. */
  constructor(init: { ltime: bigint; id: number; deadline: number; ackRequested: boolean; maxEntries: number; onClose: () => void }) {
    this.ltime = init.ltime;
    this.id = init.id;
    this.deadline = init.deadline;
    this.ackRequested = init.ackRequested;
    this.#maxEntries = init.maxEntries;
    this.#onClose = init.onClose;
    this.done = new Promise((resolve) => {
      this.#resolveDone = resolve;
    });
  }

  /** Acks so far (node names). */
  get acks(): readonly string[] {
    return [...this.#acks];
  }

  /** Responses so far. */
  get responses(): readonly SerfNodeResponse[] {
    return [...this.#responses];
  }

  /** Whether the query is closed. */
  get finished(): boolean {
    return this.#closed;
  }

  /** Stop collecting now (idempotent). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#onClose();
    this.#resolveDone({ acks: [...this.#acks], responses: [...this.#responses] });
    this.#notify();
  }

  /** @internal Record an ack; false when a duplicate, closed or full. */
  addAck(from: string): boolean {
    if (this.#closed || !this.ackRequested || this.#ackSet.has(from) || this.#acks.length >= this.#maxEntries) return false;
    this.#ackSet.add(from);
    this.#acks.push(from);
    return true;
  }

  /** @internal Record a response; false when a duplicate, closed or full. */
  addResponse(from: string, payload: Buffer): boolean {
    if (this.#closed || this.#responded.has(from) || this.#responses.length >= this.#maxEntries) return false;
    this.#responded.add(from);
    this.#responses.push({ from, payload });
    this.#notify();
    return true;
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = [];
    for (const w of wake) w();
  }

  /** Stream responses as they arrive; ends when the query closes. */
  async *[Symbol.asyncIterator](): AsyncIterator<SerfNodeResponse> {
    let i = 0;
    for (;;) {
      while (i < this.#responses.length) yield this.#responses[i++] as SerfNodeResponse;
      if (this.#closed) return;
      await new Promise<void>((r) => this.#wake.push(r));
    }
  }
}

const MAX_FILTER_EXPR = 512;
/** A quantified group that itself contains a quantifier: `(a+)+`, `(\w*x)*`, `(a|b+){2,}`. */
const NESTED_QUANTIFIER = /\((?:[^()\\]|\\.)*(?:[+*]|\{\d+,?\d*\})(?:[^()\\]|\\.)*\)\s*(?:[+*]|\{\d+,?\d*\})/;

/**
 * Compile a query tag filter's `Expr` (Go RE2, unanchored match). A leading `(?flags)` of `i`,
 * `m`, `s` becomes JavaScript flags. Refuses (throws) expressions over 512 characters and nested
 * quantifiers, which RE2 runs in linear time but a backtracking engine may not.
 */
export function compileFilterExpr(expr: string): RegExp {
  if (expr.length > MAX_FILTER_EXPR) throw new Error(`expression is ${expr.length} characters, over the limit of ${MAX_FILTER_EXPR}`);
  let source = expr;
  let flags = '';
  const lead = /^\(\?([ims]+)\)/.exec(source);
  if (lead) {
    flags = [...new Set(lead[1])].join('');
    source = source.slice(lead[0].length);
  }
  if (NESTED_QUANTIFIER.test(source)) throw new Error('nested quantifiers are refused (they can backtrack for a very long time)');
  return new RegExp(source, flags);
}

const Coordinate = t.struct({ Adjustment: t.float64, Error: t.float64, Height: t.float64, Vec: t.list(t.float64) });

/** Serf's ping-delegate payload version (Go `PingVersion`). */
export const PING_VERSION = 1;

/**
 * The ack payload a serf node attaches to pings: `PingVersion` (1) + a msgpack Vivaldi coordinate.
 * Meshfed keeps no coordinates and always sends the origin with serf's initial error and height,
 * which Go serf accepts (it only checks the coordinate is valid and of its dimensionality, 8).
 */
export function coordinatePayload(): Uint8Array {
  const body = encode({ Adjustment: 0, Error: 1.5, Height: 1e-5, Vec: new Array<number>(8).fill(0) }, Coordinate);
  const out = new Uint8Array(1 + body.length);
  out[0] = PING_VERSION;
  out.set(body, 1);
  return out;
}

/** Schema of a ping payload's coordinate (after the version byte). */
export const CoordinateSchema = Coordinate;
