/**
 * msgpack-RPC: Go's net/rpc over HashiCorp's net-rpc-msgpackrpc codec, wire-compatible with
 * Consul servers (shared/spec/hashicorp-wire.md §8–§9).
 *
 * - a schema DSL ({@link t}) that declares Go types once and gives their TS types
 *   (`Infer<typeof S>`) and a go-msgpack 0.5.x-exact codec ({@link encode}, {@link decode});
 * - {@link MsgpackStreamDecoder}: framing of consecutive msgpack objects on a byte stream;
 * - {@link RpcClient} and {@link serveRpcConn} over one Duplex connection, with typed endpoints
 *   ({@link defineEndpoint}, {@link EndpointRegistry}) and the `Status` service
 *   ({@link statusEndpoints}).
 *
 * @example
 * ```ts
 * import { EndpointRegistry, RpcClient, defineEndpoint, serveRpcConn, t } from 'meshfed/plugins/rpc/msgpack';
 * const Echo = t.struct({ Name: t.string, Data: t.bytes });
 * const echo = defineEndpoint({ method: 'Test.Echo', request: Echo, response: Echo, handler: async (req) => req });
 * const registry = new EndpointRegistry().register(echo);
 * void serveRpcConn(serverSide, registry, { logger });
 * const client = new RpcClient(clientSide);
 * const reply = await client.callEndpoint(echo, { Name: 'x', Data: Uint8Array.of(0xff) });
 * ```
 */
export { t, Schema, StructSchema, isSchema } from './schema.js';
export type { AnySchema, Infer, InferInput, MsgpackExt, SchemaKind, StructFields, StructIn, StructOut } from './schema.js';
export { encode, decode, decodeFrom } from './codec.js';
export { ByteReader } from './byte-reader.js';
export { DEFAULT_DECODE_LIMITS, type DecodeLimits } from './byte-reader.js';
export { GoTime, GoTimeError } from './go-time.js';
export { MsgpackStreamDecoder } from './stream-decoder.js';
export {
  MsgpackErrorCode,
  MsgpackRpcErrorCode,
  RemoteRpcError,
  type MsgpackErrorCodeValue,
  type MsgpackRpcErrorCodeValue,
} from './errors.js';
export { Empty, NetRpcText, RequestHeader, ResponseHeader } from './net-rpc.js';
export {
  EndpointRegistry,
  defineEndpoint,
  splitServiceMethod,
  type EndpointDefinition,
  type ResolvedEndpoint,
  type RpcContext,
  type RpcHandler,
} from './endpoint-registry.js';
export { statusEndpoints, StatusLeaderResponse, StatusPeersResponse, StatusPingRequest, type StatusSourceForRpc } from './status-endpoints.js';
export { serveRpcConn, type ServeRpcConnOptions } from './serve-rpc-conn.js';
export { RpcClient, type RpcCallOptions, type RpcClientOptions } from './rpc-client.js';
