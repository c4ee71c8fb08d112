/** Shared fixtures of the router tests: Consul-shaped serf members, a scriptable pinger, a tiny gRPC service. */
import * as grpc from '@grpc/grpc-js';
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

const raw = (b: Buffer): Buffer => b;
/** A proto-less unary service `Who` with Buffer messages. */
export const WhoService = {
  Who: { path: '/meshfed.test.Who/Who', requestStream: false, responseStream: false, requestSerialize: raw, requestDeserialize: raw, responseSerialize: raw, responseDeserialize: raw },
} satisfies grpc.ServiceDefinition;
/** Its client class. */
export const WhoClient = grpc.makeGenericClientConstructor(WhoService, 'Who');

/** A gRPC server on 127.0.0.1 answering `Who` with its name. */
export async function whoServer(name: string): Promise<{ server: grpc.Server; port: number }> {
  const s = new grpc.Server();
  s.addService(WhoService, { Who: (_call: unknown, cb: grpc.sendUnaryData<Buffer>) => cb(null, Buffer.from(name)) });
  const port = await new Promise<number>((resolve, reject) => s.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  return { server: s, port };
}

/** Call `Who` (2 s deadline); resolves the answering server's name. */
export function who(client: grpc.Client): Promise<string> {
  return new Promise((resolve, reject) => {
    (client as unknown as { Who(req: Buffer, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Buffer) => void): void }).Who(
      Buffer.alloc(0),
      { deadline: Date.now() + 2000 },
      (err, res) => (err ? reject(err) : resolve(res?.toString() ?? '')),
    );
  });
}
