/**
 * Serf tags in memberlist node meta (serf 0.9.4 `serf.go` encodeTags/decodeTags; hashicorp-wire.md
 * §6): protocol ≥ 3 writes `0xff` + a msgpack `map[string]string`; older peers put a bare role
 * string there, which still decodes as `{ role }`.
 */
import { encode, t, type DecodeLimits } from '../../rpc/msgpack/index.js';
import { SerfErrorCode, serfError } from './errors.js';
import { decodeFirst } from './message-codec.js';
import { TAGS_MAX_SIZE, TAG_MAGIC_BYTE } from './message-type.js';

const TagMap = t.map(t.string);

/** Serf tags: tag name → value. */
export type SerfTags = Record<string, string>;

/**
 * Encode tags as serf protocol ≥ 3 does: `0xff` + msgpack `map[string]string`. Keys are written
 * sorted, so equal tags always give equal bytes (Go's map order is random; serf accepts any).
 * Throws `MESHFED_ERR_SERF_TAGS` when the result exceeds memberlist's 512-byte meta limit, as
 * serf refuses such tags, or `MESHFED_ERR_SERF_ENCODE` for a non-string value.
 *
 * @example
 * ```ts
 * encodeTags({ role: 'ml' }); // ff 81 a4"role" a2"ml"
 * ```
 */
export function encodeTags(tags: Readonly<Record<string, string>> | ReadonlyMap<string, string>): Uint8Array {
  let body: Uint8Array;
  try {
    body = encode(tags, TagMap);
  } catch (err) {
    throw serfError(SerfErrorCode.ENCODE, `serf: cannot encode tags (expected string values): ${err instanceof Error ? err.message : String(err)}`, err);
  }
  const out = new Uint8Array(1 + body.length);
  out[0] = TAG_MAGIC_BYTE;
  out.set(body, 1);
  if (out.length > TAGS_MAX_SIZE) {
    throw serfError(SerfErrorCode.TAGS, `serf: encoded tags are ${out.length} bytes, over memberlist's meta limit of ${TAGS_MAX_SIZE}: use fewer or shorter tags`);
  }
  return out;
}

/**
 * Decode node meta into tags. Meta that is empty or does not start with `0xff` is a protocol < 3
 * role string and gives `{ role: <meta as UTF-8> }` (serf does the same, `role` possibly empty).
 * A `0xff` blob that is not a msgpack `map[string]string` throws `MESHFED_ERR_SERF_TAGS` (serf
 * logs "Failed to decode tags" and keeps what it decoded). Bytes after the map are ignored, as in Go.
 */
export function decodeTags(meta: Uint8Array, limits?: DecodeLimits): SerfTags {
  if (meta.length === 0 || meta[0] !== TAG_MAGIC_BYTE) {
    return { role: Buffer.from(meta.buffer, meta.byteOffset, meta.byteLength).toString('utf8') };
  }
  try {
    return decodeFirst(meta.subarray(1), TagMap, 'tags', { maxCollectionLength: TAGS_MAX_SIZE, ...limits })[0];
  } catch (err) {
    throw serfError(SerfErrorCode.TAGS, `serf: malformed tags (expected 0xff + msgpack map[string]string): ${err instanceof Error ? err.message : String(err)}`, err);
  }
}
