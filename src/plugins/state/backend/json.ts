/**
 * Whether a command object may be applied as it is instead of its JSON round trip (what a
 * follower or a restart applies from the log): shared by the embedded and etcd backends.
 */

/** Deepest nesting {@link isJsonFaithful} inspects before giving up (falls back to the parsed copy). */
const MAX_FAITHFUL_DEPTH = 32;

/**
 * True when `JSON.parse(JSON.stringify(v))` is structurally identical to `v`: only plain objects
 * (prototype `Object.prototype` or null, no `toJSON`, no non-enumerable own string keys), arrays
 * (no holes), strings, booleans, null and finite numbers other than -0. Symbol keys are ignored
 * by both JSON and the store. Accessor properties are not detected (they are read like data).
 */
export function isJsonFaithful(v: unknown, depth = 0): boolean {
  switch (typeof v) {
    case 'string':
    case 'boolean':
      return true;
    case 'number':
      return Number.isFinite(v) && (v !== 0 || 1 / v > 0);
    case 'object': {
      if (v === null) return true;
      if (depth >= MAX_FAITHFUL_DEPTH) return false;
      if (Array.isArray(v)) {
        if (Object.getPrototypeOf(v) !== Array.prototype) return false;
        for (let i = 0; i < v.length; i++) if (!isJsonFaithful(v[i], depth + 1)) return false;
        return true;
      }
      const proto: unknown = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== null) return false;
      let n = 0;
      for (const k in v) {
        if (k === 'toJSON' || !isJsonFaithful((v as Record<string, unknown>)[k], depth + 1)) return false;
        n++;
      }
      return Object.getOwnPropertyNames(v).length === n;
    }
    default:
      return false;
  }
}
