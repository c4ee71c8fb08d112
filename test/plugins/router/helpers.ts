/** Shared fixtures of the router tests: Consul-shaped serf members and a scriptable pinger. */
import type { Member } from '../../../src/index.js';
import { parseServer, type ServerMeta, type ServerPinger } from '../../../src/plugins/router/index.js';

/** A server member as Consul tags it (LAN name `node`, WAN name `node.dc`). */
export function serverMember(name: string, dc: string, opts: { ip?: string; port?: number; id?: string; tags?: Record<string, string>; status?: Member['status'] } = {}): Member {
  return {
    name,
    address: opts.ip ?? '127.0.0.1',
    port: 8301,
    status: opts.status ?? 'alive',
    tags: {
      role: 'consul',
      dc,
      id: opts.id ?? `id-${name}`,
      port: String(opts.port ?? 8300),
      vsn: '2',
      vsn_min: '2',
      vsn_max: '3',
      raft_vsn: '3',
      build: '1.8.0:12345678',
      segment: '',
      ...opts.tags,
    },
  };
}

/** A client (non-server) member. */
export function clientMember(name: string, dc: string): Member {
  return { name, address: '127.0.0.2', port: 8301, status: 'alive', tags: { role: 'node', dc, id: `id-${name}`, vsn: '2', build: '1.8.0' } };
}

/** Parse a member that must be a server. */
export function server(name: string, dc: string, opts: Parameters<typeof serverMember>[2] = {}): ServerMeta {
  const s = parseServer(serverMember(name, dc, opts));
  if (!s) throw new Error(`fixture ${name} is not a server`);
  return s;
}

/** A pinger whose answers are scripted per server name; records every ping. */
export class FakePinger implements ServerPinger {
  readonly pinged: string[] = [];
  healthy = new Set<string>();
  /** When set, ping awaits this before answering (to change the list during a rebalance). */
  gate: Promise<void> | undefined;
  onPing: ((name: string) => void) | undefined;

  async ping(s: ServerMeta, { signal }: { signal: AbortSignal }): Promise<boolean> {
    this.pinged.push(s.name);
    this.onPing?.(s.name);
    if (this.gate) await this.gate;
    if (signal.aborted) throw new Error('aborted');
    return this.healthy.has(s.name);
  }
}

/** A promise plus its resolver. */
export function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}
