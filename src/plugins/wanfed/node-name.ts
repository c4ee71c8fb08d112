/** WAN node names under WAN federation: `<node>.<datacenter>`, exactly two dot-separated parts (spec §3.3). */
import { MeshfedError } from '../../core/errors.js';

/**
 * Split a WAN member name into node and datacenter. `"foo.bar"` → `["foo", "bar"]`,
 * `".bar"` → `["", "bar"]`; anything without exactly one dot is an error, as in Consul.
 * @throws {MeshfedError} `node name does not encode a datacenter: <name>`
 */
export function splitNodeName(name: string): [node: string, datacenter: string] {
  const parts = name.split('.');
  if (parts.length !== 2) throw new MeshfedError('MESHFED_ERR_WANFED_NODE_NAME', `node name does not encode a datacenter: ${name}`, { plugin: 'wanfed' });
  return [parts[0] as string, parts[1] as string];
}
