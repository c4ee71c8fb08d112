/** Error codes of the `rpc` plugin's listener, dialer and pool (the codec's are `MsgpackRpcErrorCode`). */
export const RpcErrorCode = Object.freeze({
  /** A dial could not be completed (TCP, TLS upgrade, type byte). */
  DIAL: 'MESHFED_ERR_RPC_DIAL',
  /** The pool was used without a node name, or after it was closed. */
  POOL: 'MESHFED_ERR_RPC_POOL',
  /** Opening a stream failed twice (after one re-dial). */
  STREAM: 'MESHFED_ERR_RPC_STREAM',
} as const);
