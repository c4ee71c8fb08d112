/** `host:port` helpers of the transports: the core parser with the gossip error code. */
import { joinHostPort, parseHostPort } from '../../../core/address.js';
import { MeshfedError } from '../../../core/errors.js';
import { GossipTransportErrorCode } from './errors.js';

export { joinHostPort };

/** Split `host:port` or `[v6]:port`; throws `MESHFED_ERR_GOSSIP_ADDRESS` on anything else. */
export function splitHostPort(address: string): { host: string; port: number } {
  const hp = parseHostPort(address);
  if (!hp) {
    throw new MeshfedError(GossipTransportErrorCode.ADDRESS, `gossip address "${address}" is not host:port (expected e.g. 127.0.0.1:8302 or [::1]:8302)`);
  }
  return hp;
}
