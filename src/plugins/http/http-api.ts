/**
 * The HTTP API server: a small router over `node:http` that other plugins add Consul-v1-shaped
 * endpoints to. Bad requests get a 4xx with a plain-text reason; handler errors a 500 that is
 * logged once; nothing a client sends can stop the listener.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { listenOn } from '../../core/address.js';
import { errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';

/** An incoming API request, parsed. */
export interface HttpRequest {
  readonly method: string;
  /** Path without the query string, e.g. `/v1/status/leader`. */
  readonly path: string;
  /** Query parameters (last value wins). */
  readonly query: URLSearchParams;
  readonly headers: IncomingMessage['headers'];
  /** Request body (bounded by the server's maximum body size). */
  readonly body: Buffer;
  /** Path parameters captured by `:name` segments. */
  readonly params: Readonly<Record<string, string>>;
  /** Aborted if the client goes away. */
  readonly signal: AbortSignal;
}

/** What a handler returns: a JSON body (default) or raw text. */
export interface HttpResponse {
  readonly status?: number;
  readonly headers?: Readonly<Record<string, string>>;
  /** Serialized as JSON unless `text` is set. */
  readonly json?: unknown;
  /** Sent as `text/plain`. */
  readonly text?: string;
}

/** Handles one route. */
export type HttpHandler = (req: HttpRequest) => HttpResponse | Promise<HttpResponse>;

/** The route table other plugins add endpoints to (token `HttpTokens.HttpApi`). */
export interface HttpApi {
  /**
   * Add a route. `pattern` is a path whose segments may be `:name` parameters or end in `*`
   * (rest of the path as `params['*']`). Adding the same method+pattern twice is an error.
   */
  route(method: string, pattern: string, handler: HttpHandler): void;
  /** `host:port` the server listens on, once started. */
  readonly address: string | undefined;
}

interface Route {
  readonly method: string;
  readonly pattern: string;
  readonly segments: readonly string[];
  readonly handler: HttpHandler;
}

/** Maximum request body accepted (bytes). */
export const MAX_BODY_BYTES = 4 * 1024 * 1024;

function match(route: Route, parts: readonly string[]): Record<string, string> | undefined {
  const params: Record<string, string> = {};
  for (let i = 0; i < route.segments.length; i++) {
    const seg = route.segments[i] as string;
    if (seg === '*') {
      params['*'] = parts.slice(i).join('/');
      return params;
    }
    const part = parts[i];
    if (part === undefined) return undefined;
    if (seg.startsWith(':')) params[seg.slice(1)] = decodeURIComponent(part);
    else if (seg !== part) return undefined;
  }
  return parts.length === route.segments.length ? params : undefined;
}

/** The HTTP API server behind {@link HttpApi}. */
export class HttpApiServer implements HttpApi {
  readonly #routes: Route[] = [];
  readonly #logger: Logger;
  #server: Server | undefined;
  #address: string | undefined;

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  get address(): string | undefined {
    return this.#address;
  }

  route(method: string, pattern: string, handler: HttpHandler): void {
    const m = method.toUpperCase();
    if (this.#routes.some((r) => r.method === m && r.pattern === pattern)) throw new Error(`HTTP route ${m} ${pattern} is already registered`);
    this.#routes.push({ method: m, pattern, segments: pattern.split('/').filter(Boolean), handler });
  }

  /** Listen on `host:port` (port 0 = any free port). */
  async listen(host: string, port: number, signal: AbortSignal): Promise<string> {
    const server = createServer((req, res) => void this.#handle(req, res));
    server.on('clientError', (err, socket) => {
      this.#logger.debug('bad HTTP request', { err: errorMessage(err) });
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
      else socket.destroy();
    });
    this.#address = await listenOn(server, host, port, signal);
    this.#server = server;
    return this.#address;
  }

  /** Stop listening and close every connection. */
  async close(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    if (!server) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const ctl = new AbortController();
    res.on('close', () => ctl.abort());
    try {
      const url = new URL(req.url ?? '/', 'http://localhost');
      const parts = url.pathname.split('/').filter(Boolean);
      const method = (req.method ?? 'GET').toUpperCase();
      let allowed = false;
      for (const route of this.#routes) {
        const params = match(route, parts);
        if (!params) continue;
        if (route.method !== method) {
          allowed = true;
          continue;
        }
        const body = await readBody(req);
        if (body === undefined) {
          send(res, { status: 413, text: `request body exceeds ${MAX_BODY_BYTES} bytes` });
          return;
        }
        const out = await route.handler({ method, path: url.pathname, query: url.searchParams, headers: req.headers, body, params, signal: ctl.signal });
        send(res, out);
        return;
      }
      send(res, allowed ? { status: 405, text: `method ${method} not allowed on ${url.pathname}` } : { status: 404, text: `no endpoint at ${url.pathname}` });
    } catch (err) {
      this.#logger.error('HTTP handler failed', { err: errorMessage(err), url: req.url });
      send(res, { status: 500, text: errorMessage(err) });
    }
  }
}

async function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) return undefined;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

function send(res: ServerResponse, out: HttpResponse): void {
  if (res.headersSent || res.destroyed) return;
  const headers: Record<string, string> = { ...out.headers };
  let payload: string;
  if (out.text !== undefined) {
    headers['content-type'] ??= 'text/plain; charset=utf-8';
    payload = out.text.endsWith('\n') || out.text === '' ? out.text : `${out.text}\n`;
  } else {
    headers['content-type'] ??= 'application/json';
    payload = JSON.stringify(out.json ?? null);
  }
  res.writeHead(out.status ?? 200, headers);
  res.end(payload);
}
