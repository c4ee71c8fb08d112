/**
 * Query filters (serf 0.9.4 `messages.go` encodeFilter, `query.go`): each element of a query's
 * `Filters` is a {@link FilterType} byte + msgpack — `[]string` of node names, or `{Expr, Tag}`.
 */
import { encode, type DecodeLimits } from '../../rpc/msgpack/index.js';
import { SerfErrorCode, serfError } from './errors.js';
import { decodeFirst } from './message-codec.js';
import { FilterType } from './message-type.js';
import { FilterNode, FilterTag } from './messages.js';

/** A decoded query filter. */
export type QueryFilter =
  | { readonly type: typeof FilterType.node; readonly nodes: string[] }
  | { readonly type: typeof FilterType.tag; readonly tag: string; readonly expr: string };

/** Encode one query filter (an element of `Query.Filters`). */
export function encodeFilter(filter: QueryFilter): Uint8Array {
  let body: Uint8Array;
  try {
    body = filter.type === FilterType.node ? encode(filter.nodes, FilterNode) : encode({ Tag: filter.tag, Expr: filter.expr }, FilterTag);
  } catch (err) {
    throw serfError(SerfErrorCode.ENCODE, `serf: cannot encode query filter: ${err instanceof Error ? err.message : String(err)}`, err);
  }
  const out = new Uint8Array(1 + body.length);
  out[0] = filter.type;
  out.set(body, 1);
  return out;
}

/** Decode one query filter; throws `MESHFED_ERR_SERF_…` for an unknown filter type or bad body. */
export function decodeFilter(buf: Uint8Array, limits?: DecodeLimits): QueryFilter {
  if (buf.length < 1) throw serfError(SerfErrorCode.TRUNCATED, 'serf: empty query filter: expected a filter type byte');
  const body = buf.subarray(1);
  switch (buf[0]) {
    case FilterType.node:
      return { type: FilterType.node, nodes: decodeFirst(body, FilterNode, 'node filter', limits)[0] };
    case FilterType.tag: {
      const f = decodeFirst(body, FilterTag, 'tag filter', limits)[0];
      return { type: FilterType.tag, tag: f.Tag, expr: f.Expr };
    }
    default:
      throw serfError(SerfErrorCode.UNKNOWN_TYPE, `serf: unknown query filter type ${String(buf[0])}: expected 0 (node) or 1 (tag)`);
  }
}
