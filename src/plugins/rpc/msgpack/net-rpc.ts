/**
 * Go's net/rpc framing over the msgpackrpc codec (hashicorp-wire.md §9; Go 1.19
 * src/net/rpc/server.go and client.go): each call is a header object then a body object.
 * The texts below are Go's, byte for byte, because clients compare them.
 */
import { t, type Infer } from './schema.js';

/** `rpc.Request` as go-msgpack writes it: `{Seq, ServiceMethod}` (sorted keys). */
export const RequestHeader = t.struct({ ServiceMethod: t.string, Seq: t.uint64 });
/** A decoded {@link RequestHeader}. */
export type RequestHeader = Infer<typeof RequestHeader>;

/** `rpc.Response`: `{Error, Seq, ServiceMethod}`; `Error` is `""` on success. */
export const ResponseHeader = t.struct({ ServiceMethod: t.string, Seq: t.uint64, Error: t.string });
/** A decoded {@link ResponseHeader}. */
export type ResponseHeader = Infer<typeof ResponseHeader>;

/** `struct{}`: the body of `Status.Ping` both ways, and of every error reply (`80`). */
export const Empty = t.struct({});

/** Error texts of Go's net/rpc, exactly. */
export const NetRpcText = Object.freeze({
  /** No dot in the method name. */
  illFormed: (serviceMethod: string) => `rpc: service/method request ill-formed: ${serviceMethod}`,
  /** Unknown service (the text carries the whole `Service.Method`). */
  cantFindService: (serviceMethod: string) => `rpc: can't find service ${serviceMethod}`,
  /** Known service, unknown method. */
  cantFindMethod: (serviceMethod: string) => `rpc: can't find method ${serviceMethod}`,
  /** `rpc.ErrShutdown`: a call on a closed client. */
  shutdown: 'connection is shut down',
  /** `io.ErrUnexpectedEOF`: the server closed the connection with calls outstanding. */
  unexpectedEof: 'unexpected EOF',
});
