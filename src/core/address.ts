/** `host:port` strings, as every listener and dialer writes them (IPv6 hosts in brackets). */
import { isIP, type Server } from 'node:net';

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

/**
 * Start `server` listening on `host:port` (port 0 = any free port); resolves with the bound
 * `host:port`. Rejects with the listen error (EADDRINUSE, …) or when `signal` aborts, in which
 * case the server is closed.
 */
export function listenOn(server: Server, host: string, port: number, signal: AbortSignal): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const onAbort = (): void => {
      server.close();
      reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
    };
    if (signal.aborted) {
      onAbort();
      return;
    }
    signal.addEventListener('abort', onAbort, { once: true });
    const onError = (err: Error): void => {
      signal.removeEventListener('abort', onAbort);
      reject(err);
    };
    server.once('error', onError);
    server.listen({ host, port }, () => {
      signal.removeEventListener('abort', onAbort);
      server.removeListener('error', onError);
      const a = server.address();
      resolve(a && typeof a === 'object' ? joinHostPort(a.address, a.port) : String(a));
    });
  });
}
