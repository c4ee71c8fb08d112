/**
 * IP addresses as serf carries them: Go `net.IP` raw bytes (4 for IPv4, 16 for IPv6) in query
 * `Addr`, conflict-response `Addr` and relay `DestAddr.IP`. One implementation serves memberlist
 * and serf: this module only re-exports it under serf's names.
 */
import { ipFromBytes } from '../memberlist/ip.js';

export { ipToBytes } from '../memberlist/ip.js';
export { joinHostPort as hostPort } from '../transport/index.js';

/** Text form of a Go `net.IP` (see `ipFromBytes`). */
export const bytesToIp: (ip: Uint8Array) => string | undefined = ipFromBytes;
