/** Error codes and texts of the `router` plugin (spec §11.1). */
import { MeshfedError, type MeshfedErrorOptions } from '../../core/errors.js';

/** Stable error codes of the `router` plugin. */
export const RouterErrorCode = Object.freeze({
  /** The datacenter is known but none of its managers has a reachable server ({@link ErrDCNotAvailable}). */
  DC_NOT_AVAILABLE: 'MESHFED_ERR_ROUTER_DC_NOT_AVAILABLE',
  /** No area knows the datacenter at all ({@link ErrNoDCPath}). */
  NO_DC_PATH: 'MESHFED_ERR_ROUTER_NO_DC_PATH',
  /** `addArea` was called twice for the same area. */
  AREA_EXISTS: 'MESHFED_ERR_ROUTER_AREA_EXISTS',
  /** A server was added to or removed from an area that was never added. */
  AREA_UNKNOWN: 'MESHFED_ERR_ROUTER_AREA_UNKNOWN',
  /** The gRPC resolver builder was configured wrongly (missing datacenter, bad agent type or scheme). */
  GRPC_RESOLVER_CONFIG: 'MESHFED_ERR_ROUTER_GRPC_RESOLVER_CONFIG',
} as const);

/** Consul's `structs.ErrDCNotAvailable` text: the DC is known, but no server is currently reachable. */
export const ErrDCNotAvailable = 'Remote DC has no server currently reachable';

/** Consul's `structs.ErrNoDCPath` text: no area knows the DC. */
export const ErrNoDCPath = 'No path to datacenter';

/**
 * A routing error. The message is exactly Consul's text ({@link ErrDCNotAvailable} /
 * {@link ErrNoDCPath}) so callers and remote peers can compare it; `datacenter` says which DC.
 */
export class RouterError extends MeshfedError {
  /** The datacenter that could not be reached, when the error concerns one. */
  readonly datacenter: string | undefined;

  constructor(code: string, message: string, options: MeshfedErrorOptions & { readonly datacenter?: string } = {}) {
    super(code, message, { ...options, plugin: options.plugin ?? 'router' });
    this.name = 'RouterError';
    this.datacenter = options.datacenter;
  }
}
