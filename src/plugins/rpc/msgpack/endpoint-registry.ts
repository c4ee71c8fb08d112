/**
 * Typed RPC endpoints: a `Service.Method` name, its request and response schemas, and a
 * handler. The registry resolves a method the way Go's net/rpc server does, with its exact
 * error texts (`rpc: can't find service X` / `rpc: can't find method X`).
 */
import type { Logger } from '../../../core/logger.js';
import { MsgpackRpcErrorCode, rpcError } from './errors.js';
import { NetRpcText } from './net-rpc.js';
import { isSchema, type AnySchema, type Infer, type InferInput } from './schema.js';

/** What a handler is told about the call it serves. */
export interface RpcContext {
  /** `Service.Method` as the client sent it. */
  readonly method: string;
  /** The client's sequence number. */
  readonly seq: number | bigint;
  /** Aborted when the connection closes or the server stops: long handlers should stop. */
  readonly signal: AbortSignal;
  /** The serving connection's logger. */
  readonly logger: Logger;
  /** The peer's address, when the connection knows it. */
  readonly remoteAddress: string | undefined;
}

/**
 * A handler: resolves with the response value, or throws. A thrown error's `message` becomes
 * the response header's `Error` text, as a Go method's returned `error` does; throw a
 * MeshfedError for expected failures (others are also logged as handler bugs).
 */
export type RpcHandler<Req extends AnySchema, Res extends AnySchema> = (
  request: Infer<Req>,
  ctx: RpcContext,
) => Promise<InferInput<Res>> | InferInput<Res>;

/** One endpoint. Make it with {@link defineEndpoint}. */
export interface EndpointDefinition<Req extends AnySchema = AnySchema, Res extends AnySchema = AnySchema> {
  /** `Service.Method`, e.g. `Status.Ping`. */
  readonly method: string;
  /** The Go type of the request body. */
  readonly request: Req;
  /** The Go type of the response body. */
  readonly response: Res;
  /** Serves one call. */
  readonly handler: RpcHandler<Req, Res>;
}

/** Split `Service.Method` at the last dot, as net/rpc does; undefined when ill-formed. */
export function splitServiceMethod(method: string): [service: string, name: string] | undefined {
  const dot = method.lastIndexOf('.');
  if (dot <= 0 || dot === method.length - 1) return undefined;
  return [method.slice(0, dot), method.slice(dot + 1)];
}

/**
 * Define an endpoint, checking its shape early (a bad definition fails at startup, not on the
 * first call).
 *
 * @example
 * ```ts
 * const ping = defineEndpoint({ method: 'Status.Ping', request: Empty, response: Empty, handler: async () => ({}) });
 * ```
 */
export function defineEndpoint<Req extends AnySchema, Res extends AnySchema>(def: EndpointDefinition<Req, Res>): EndpointDefinition<Req, Res> {
  if (typeof def.method !== 'string' || !splitServiceMethod(def.method)) {
    throw rpcError(MsgpackRpcErrorCode.ENDPOINT, `endpoint method must look like "Service.Method", got ${JSON.stringify(def.method)}`);
  }
  if (!isSchema(def.request) || !isSchema(def.response)) {
    throw rpcError(MsgpackRpcErrorCode.ENDPOINT, `endpoint ${def.method}: request and response must be schemas made with t (e.g. t.struct({...}))`);
  }
  if (typeof def.handler !== 'function') {
    throw rpcError(MsgpackRpcErrorCode.ENDPOINT, `endpoint ${def.method}: handler must be a function`);
  }
  return Object.freeze({ method: def.method, request: def.request, response: def.response, handler: def.handler });
}

/** Result of {@link EndpointRegistry.resolve}: the endpoint, or Go's error text for the client. */
export type ResolvedEndpoint = { readonly endpoint: EndpointDefinition; readonly error?: undefined } | { readonly endpoint?: undefined; readonly error: string };

/** The endpoints one server answers. One registry per agent (no global state). */
export class EndpointRegistry {
  readonly #byMethod = new Map<string, EndpointDefinition>();
  readonly #services = new Map<string, number>();

  /** Add an endpoint; throws `MESHFED_ERR_RPC_ENDPOINT` when the method is already registered. */
  register<Req extends AnySchema, Res extends AnySchema>(def: EndpointDefinition<Req, Res>): this {
    const checked = defineEndpoint(def);
    if (this.#byMethod.has(checked.method)) {
      throw rpcError(MsgpackRpcErrorCode.ENDPOINT, `endpoint ${checked.method} is already registered; each method has one handler`);
    }
    this.#byMethod.set(checked.method, checked);
    const [service] = splitServiceMethod(checked.method)!;
    this.#services.set(service, (this.#services.get(service) ?? 0) + 1);
    return this;
  }

  /** Add several endpoints (e.g. `registry.registerAll(statusEndpoints(...))`). */
  registerAll(defs: Iterable<EndpointDefinition>): this {
    for (const d of defs) this.register(d);
    return this;
  }

  /** The endpoint for `Service.Method`, if registered. */
  get(method: string): EndpointDefinition | undefined {
    return this.#byMethod.get(method);
  }

  /** Whether `Service.Method` is registered. */
  has(method: string): boolean {
    return this.#byMethod.has(method);
  }

  /** Registered methods, sorted. */
  methods(): string[] {
    return [...this.#byMethod.keys()].sort();
  }

  /** Look a method up as Go's server does, with its error texts for the unknown cases. */
  resolve(method: string): ResolvedEndpoint {
    const endpoint = this.#byMethod.get(method);
    if (endpoint) return { endpoint };
    const dot = method.lastIndexOf('.');
    if (dot < 0) return { error: NetRpcText.illFormed(method) };
    if (!this.#services.has(method.slice(0, dot))) return { error: NetRpcText.cantFindService(method) };
    return { error: NetRpcText.cantFindMethod(method) };
  }
}
