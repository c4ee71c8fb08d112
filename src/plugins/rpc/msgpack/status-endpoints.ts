/**
 * The `Status` service every Consul server answers: `Status.Ping` (the pool's health check,
 * spec §1.7), `Status.Leader` and `Status.Peers`.
 */
import { defineEndpoint, type EndpointDefinition } from './endpoint-registry.js';
import { Empty } from './net-rpc.js';
import { t } from './schema.js';

/** What the Status endpoints report. */
export interface StatusSourceForRpc {
  /** The leader's RPC address (`host:port`), or `""` when there is none. */
  leader(): string | Promise<string>;
  /** The RPC addresses of the servers in the local datacenter's raft configuration. */
  peers(): readonly string[] | Promise<readonly string[]>;
}

/** `Status.Ping`: `struct{}` in, `struct{}` out. */
export const StatusPingRequest = Empty;
/** `Status.Leader` takes `struct{}` and returns a Go `string`. */
export const StatusLeaderResponse = t.string;
/** `Status.Peers` takes `struct{}` and returns a Go `[]string`. */
export const StatusPeersResponse = t.list(t.string);

/** The three Status endpoints, for `registry.registerAll(statusEndpoints(source))`. */
export function statusEndpoints(source: StatusSourceForRpc): EndpointDefinition[] {
  return [
    defineEndpoint({ method: 'Status.Ping', request: Empty, response: Empty, handler: () => ({}) }),
    defineEndpoint({ method: 'Status.Leader', request: Empty, response: StatusLeaderResponse, handler: async () => source.leader() }),
    defineEndpoint({
      method: 'Status.Peers',
      request: Empty,
      response: StatusPeersResponse,
      handler: async () => [...(await source.peers())],
    }),
  ];
}
