/** Error codes of the `grpc` plugin. */
import { MeshfedError } from '../../core/errors.js';

/** Stable error codes of the `grpc` plugin. */
export const GrpcErrorCode = Object.freeze({
  /** A service was added after the agent started, twice, or after the server stopped. */
  SERVICE: 'MESHFED_ERR_GRPC_SERVICE',
  /** An outgoing gRPC connection could not be made to speak the RPC port's protocol. */
  DIAL: 'MESHFED_ERR_GRPC_DIAL',
  /** A client was asked for after the agent stopped. */
  CLOSED: 'MESHFED_ERR_GRPC_CLOSED',
} as const);

/** A value of {@link GrpcErrorCode}. */
export type GrpcErrorCodeValue = (typeof GrpcErrorCode)[keyof typeof GrpcErrorCode];

/** A {@link MeshfedError} with a gRPC code, attributed to the `grpc` plugin. */
export function grpcError(code: GrpcErrorCodeValue, message: string, cause?: unknown): MeshfedError {
  return new MeshfedError(code, message, { cause, plugin: 'grpc' });
}
