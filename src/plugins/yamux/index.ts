/**
 * `yamux`: a stream multiplexer wire-compatible with hashicorp/yamux (protocol version 0), the
 * framing Consul uses for RPC type byte 4 and ALPN `consul/rpc-multi`
 * (shared/spec/wanfed-reference.md §1.9, hashicorp-wire.md §10). A library, not an agent plugin:
 * the RPC plugin runs a session over each multiplexed connection.
 *
 * @example
 * ```ts
 * import { createServer, connect } from 'node:net';
 * import { once } from 'node:events';
 * import { YamuxSession } from 'meshfed/plugins/yamux';
 *
 * // Server: echo every stream.
 * const server = createServer((conn) => {
 *   YamuxSession.server(conn, { onStream: (stream) => stream.pipe(stream) });
 * });
 * server.listen(0, '127.0.0.1');
 * await once(server, 'listening');
 * const { port } = server.address() as { port: number };
 *
 * // Client: open a stream, write, half-close, read the echo.
 * const conn = connect(port, '127.0.0.1');
 * await once(conn, 'connect');
 * const session = YamuxSession.client(conn);
 * const stream = await session.open();
 * stream.end('hello');
 * const chunks: Buffer[] = [];
 * for await (const chunk of stream) chunks.push(chunk as Buffer);
 * console.log(Buffer.concat(chunks).toString(), 'rtt ms', await session.ping());
 * await session.close();
 * server.close();
 * ```
 */
export { FRAME_TYPE_NAMES, Flag, FrameType, GoAwayCode, HEADER_SIZE, INITIAL_STREAM_WINDOW, PROTO_VERSION, YAMUX_DEFAULTS } from './constants.js';
export type { FrameTypeValue, GoAwayCodeValue } from './constants.js';
export { YamuxErrorCode, isYamuxError, yamuxError, type YamuxErrorCodeValue } from './errors.js';
export { decodeFrameHeader, encodeFrameHeader, type FrameHeader } from './frame-header.js';
export { resolveYamuxOptions, type ResolvedYamuxOptions, type YamuxSessionOptions } from './options.js';
export { YamuxSession, type YamuxSessionEvents, type YamuxWaitOptions } from './session.js';
export { YamuxStream } from './stream.js';
