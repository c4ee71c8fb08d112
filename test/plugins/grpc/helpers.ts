/** Shared fixtures of the gRPC tests: a `Who` service plugin that also records dispatched gRPC connections. */
import type * as grpcJs from '@grpc/grpc-js';
import { Stage, type AgentPlugin } from '../../../src/index.js';
import { Alpn, RpcType } from '../../../src/core/protocol.js';
import { GrpcTokens } from '../../../src/plugins/grpc/index.js';
import { WhoService } from '../router/helpers.js';

/** One dispatched RPC-port connection as the listener saw it. */
export interface AcceptRecord {
  readonly key: string | number;
  readonly tls: boolean;
  readonly from: string;
}

/** Serves `Who` (answering the node name) and records gRPC connections the RPC port dispatches (passes them on). */
export function whoPlugin(seen: AcceptRecord[] = []): AgentPlugin {
  return {
    name: 'who',
    requires: ['grpc'],
    apply({ services, hooks, config }) {
      services.get(GrpcTokens.Server).addService(WhoService, { Who: (_call: unknown, cb: grpcJs.sendUnaryData<Buffer>) => cb(null, Buffer.from(config.node_name)) });
      for (const key of [RpcType.GRPC, Alpn.RpcGRPC]) {
        hooks.onRpcAccept.for(key).tap({ stage: Stage.FIRST }, (_conn, info) => {
          seen.push({ key, tls: info.tls, from: info.remoteAddress.replace(/:\d+$/, '').replace(/^::ffff:/, '') });
          return undefined;
        });
      }
    },
  };
}

