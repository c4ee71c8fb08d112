/** Error codes of the `rpc` plugin. */
export const RpcErrorCode = Object.freeze({
  /** A dial could not be completed (TCP, TLS upgrade, type byte). */
  DIAL: 'MESHFED_ERR_RPC_DIAL',
  /** The pool was used without a node name, or after it was closed. */
  POOL: 'MESHFED_ERR_RPC_POOL',
  /** A call did not complete before its deadline. */
  TIMEOUT: 'MESHFED_ERR_RPC_TIMEOUT',
  /** Opening a stream failed twice (after one re-dial). */
  STREAM: 'MESHFED_ERR_RPC_STREAM',
} as const);
