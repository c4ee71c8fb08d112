/** `host:port` strings, as every listener and dialer writes them (IPv6 hosts in brackets). */
import { isIP } from 'node:net';

/** Parse `host:port` / `[v6]:port`; `undefined` when it is not one (callers add their own error). */
export function parseHostPort(address: string): { host: string; port: number } | undefined {
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(address) ?? /^([^:[\]]+):(\d{1,5})$/.exec(address);
  if (!m) return undefined;
  const port = Number(m[2]);
  return port > 65535 ? undefined : { host: m[1] as string, port };
}

/** Join a host and port, bracketing IPv6 literals. */
export function joinHostPort(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}
