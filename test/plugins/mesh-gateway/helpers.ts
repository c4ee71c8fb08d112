/**
 * Shared fixtures of the mesh-gateway tests (not a test file: importing it runs nothing). Real
 * ClientHellos from `node:tls`, TLS and raw upstream servers on 127.0.0.1, and xDS resource builders.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { parseClientHello } from '../../../src/plugins/mesh-gateway/client-hello.js';
import { loadNativeRelay } from '../../../src/plugins/mesh-gateway/native/relay.js';
import type { DataPlane } from '../../../src/plugins/mesh-gateway/proxy.js';
import { loadTcpHandles } from '../../../src/plugins/mesh-gateway/tcp-handles.js';
import type { MeshGatewayResources, XdsResource } from '../../../src/plugins/mesh-gateway/routing.js';
import { generateCa, generateCert, type PemPair } from '../../../src/plugins/tls/certs.js';

/** Options of {@link captureClientHello}. */
export interface CaptureOptions {
  /** SNI to send (omit: none, as when connecting to an IP). */
  readonly servername?: string;
  /** ALPN protocols to offer. */
  readonly alpn?: readonly string[];
}

/** Connect a real `node:tls` client to a capture socket and return the bytes of its first flight. */
export async function captureClientHello(options: CaptureOptions = {}): Promise<Buffer> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  try {
    const captured = new Promise<Buffer>((resolve, reject) => {
      server.once('connection', (sock) => {
        const chunks: Buffer[] = [];
        sock.on('data', (d: Buffer) => {
          chunks.push(d);
          const all = Buffer.concat(chunks);
          const v = parseClientHello(all);
          if (v.kind === 'incomplete') return;
          sock.destroy();
          if (v.kind === 'hello') resolve(all);
          else reject(new Error(`capture parsed ${v.kind}: ${v.detail}`));
        });
        sock.on('error', () => undefined);
      });
    });
    const connectOptions: tls.ConnectionOptions = { host: '127.0.0.1', port, rejectUnauthorized: false };
    if (options.servername !== undefined) connectOptions.servername = options.servername;
    if (options.alpn) connectOptions.ALPNProtocols = [...options.alpn];
    const client = tls.connect(connectOptions);
    client.on('error', () => undefined);
    try {
      return await captured;
    } finally {
      client.destroy();
    }
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/** CA and a server certificate that covers every name the tests route. */
export interface TestPki {
  readonly ca: PemPair;
  readonly server: PemPair;
}

/** Names the test server certificate covers. */
export const TEST_NAMES = ['node1.server.dc1.consul', 'server.dc1.consul', '*.server.dc2.consul', 'server.dc2.consul', 'foo.example'];

/** Make a CA and a server certificate for {@link TEST_NAMES}. */
export async function makePki(): Promise<TestPki> {
  const ca = await generateCa();
  const server = await generateCert({ ca, kind: 'server', datacenter: 'dc1', node: 'node1', additionalDnsNames: TEST_NAMES.filter((n) => n !== 'node1.server.dc1.consul' && n !== 'server.dc1.consul') });
  return { ca, server };
}

/** A TLS echo server that records the SNI and ALPN of each handshake. */
export interface EchoServer {
  readonly port: number;
  readonly label: string;
  /** SNI and negotiated ALPN per accepted TLS connection. */
  readonly seen: Array<{ servername: string | false; alpn: string | false }>;
  /** Raw TCP connections accepted. */
  connections: number;
  close(): Promise<void>;
}

/** Start a TLS server that answers every chunk with `<label>:<chunk>`. */
export async function startEchoServer(pki: TestPki, label: string, alpn: readonly string[] = ['consul/rpc-multi', 'h2']): Promise<EchoServer> {
  const seen: EchoServer['seen'] = [];
  const sockets = new Set<net.Socket>();
  const server = tls.createServer({ key: pki.server.keyPem, cert: pki.server.certPem, ALPNProtocols: [...alpn] }, (s) => {
    seen.push({ servername: s.servername ?? false, alpn: s.alpnProtocol ?? false });
    s.on('data', (d: Buffer) => s.write(`${label}:${d.toString()}`));
    s.on('end', () => s.end());
    s.on('error', () => undefined);
  });
  const result: EchoServer = {
    port: 0,
    label,
    seen,
    connections: 0,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
  server.on('connection', (s: net.Socket) => {
    result.connections++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  (result as { port: number }).port = (server.address() as net.AddressInfo).port;
  return result;
}

/** Open a TLS connection through the proxy, send `msg`, and return the reply and what was negotiated. */
export async function tlsRoundTrip(
  port: number,
  pki: TestPki,
  servername: string,
  msg = 'ping',
  alpn?: readonly string[],
): Promise<{ reply: string; alpn: string | false }> {
  const opts: tls.ConnectionOptions = { host: '127.0.0.1', port, servername, ca: pki.ca.certPem };
  if (alpn) opts.ALPNProtocols = [...alpn];
  const sock = tls.connect(opts);
  try {
    await new Promise<void>((resolve, reject) => {
      sock.once('secureConnect', resolve);
      sock.once('error', reject);
      sock.once('close', () => reject(new Error(`connection for ${servername} closed before the handshake`)));
    });
    const reply = await new Promise<string>((resolve, reject) => {
      sock.once('data', (d: Buffer) => resolve(d.toString()));
      sock.once('error', reject);
      sock.write(msg);
    });
    return { reply, alpn: sock.alpnProtocol ?? false };
  } finally {
    sock.destroy();
  }
}

/** Expect a TLS connection through the proxy to fail before a handshake completes. */
export async function expectTlsRefused(port: number, servername: string | undefined): Promise<void> {
  const opts: tls.ConnectionOptions = { host: '127.0.0.1', port, rejectUnauthorized: false };
  if (servername !== undefined) opts.servername = servername;
  const sock = tls.connect(opts);
  const outcome = await new Promise<string>((resolve) => {
    sock.once('secureConnect', () => resolve('connected'));
    sock.once('error', () => resolve('error'));
    sock.once('close', () => resolve('closed'));
  });
  sock.destroy();
  assert.notEqual(outcome, 'connected', `TLS connection for ${String(servername)} should have been refused`);
}

/** Write raw bytes to the proxy and resolve once the proxy closes the connection; returns what came back. */
export async function rawRefused(port: number, bytes: Buffer | string): Promise<Buffer> {
  const sock = net.connect({ host: '127.0.0.1', port });
  const chunks: Buffer[] = [];
  sock.on('data', (d: Buffer) => chunks.push(d));
  sock.on('error', () => undefined);
  sock.write(bytes);
  await new Promise<void>((resolve) => sock.once('close', () => resolve()));
  return Buffer.concat(chunks);
}

/** A tcp_proxy filter chain. */
export function tcpChain(serverNames: readonly string[] | undefined, cluster: string, statPrefix = 'mesh_gateway'): XdsResource {
  const chain: Record<string, unknown> = {
    filters: [
      {
        name: 'envoy.filters.network.tcp_proxy',
        typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', stat_prefix: statPrefix, cluster },
      },
    ],
  };
  if (serverNames) chain['filter_chain_match'] = { server_names: [...serverNames] };
  return chain;
}

/** The sni_cluster catch-all chain. */
export function sniClusterChain(): XdsResource {
  return {
    filters: [
      { name: 'envoy.filters.network.sni_cluster', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.sni_cluster.v3.SniCluster' } },
      {
        name: 'envoy.filters.network.tcp_proxy',
        typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', stat_prefix: 'mesh_gateway_local.default', cluster: '' },
      },
    ],
  };
}

/** A listener with the given chains. */
export function listener(chains: readonly XdsResource[], name = 'default:127.0.0.1:8443'): XdsResource {
  return {
    '@type': 'type.googleapis.com/envoy.config.listener.v3.Listener',
    name,
    address: { socket_address: { address: '127.0.0.1', port_value: 8443 } },
    listener_filters: [{ name: 'envoy.filters.listener.tls_inspector', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector' } }],
    filter_chains: [...chains],
  };
}

/** An EDS cluster. */
export function edsCluster(name: string, connectTimeoutSeconds = 5): XdsResource {
  return { '@type': 'type.googleapis.com/envoy.config.cluster.v3.Cluster', name, type: 'EDS', connect_timeout: { seconds: connectTimeoutSeconds }, eds_cluster_config: { eds_config: { ads: {} } } };
}

/** One endpoint of {@link loadAssignment}. */
export interface TestEndpoint {
  readonly port: number;
  readonly host?: string;
  readonly health?: string;
}

/** A ClusterLoadAssignment. */
export function loadAssignment(cluster: string, endpoints: readonly TestEndpoint[]): XdsResource {
  return {
    '@type': 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
    cluster_name: cluster,
    endpoints: [
      {
        lb_endpoints: endpoints.map((e) => ({
          endpoint: { address: { socket_address: { address: e.host ?? '127.0.0.1', port_value: e.port } } },
          ...(e.health ? { health_status: e.health } : {}),
        })),
      },
    ],
  };
}

/** Resources for the usual wanfed layout: exact node1 chain, `*.server.dc2.consul`, sni_cluster catch-all. */
export function wanfedResources(ports: { node1: number; dc2: number; dc1: number }): MeshGatewayResources {
  return {
    listeners: [listener([tcpChain(['*.server.dc2.consul'], 'server.dc2.consul'), tcpChain(['node1.server.dc1.consul'], 'node1.server.dc1.consul'), sniClusterChain()])],
    clusters: [edsCluster('server.dc2.consul'), edsCluster('node1.server.dc1.consul'), edsCluster('server.dc1.consul')],
    endpoints: [
      loadAssignment('server.dc2.consul', [{ port: ports.dc2 }]),
      loadAssignment('node1.server.dc1.consul', [{ port: ports.node1, health: 'HEALTHY' }]),
      loadAssignment('server.dc1.consul', [{ port: ports.dc1 }]),
    ],
  };
}

/** A port on 127.0.0.1 with nothing listening (bound then released). */
export async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

/** A listener that never accepts (see {@link startStuckListener}). */
export interface StuckListener {
  readonly port: number;
  close(): Promise<void>;
}

/**
 * A TCP listener on 127.0.0.1 whose accept queue is full, so the kernel drops further SYNs and a
 * connect to it hangs (a real connect timeout on loopback): a child process listens with backlog
 * 1, then blocks its event loop, and two connections from here fill its queue. Whoever uses it
 * must check that a connect really hung (e.g. that it took at least the connect timeout).
 */
export async function startStuckListener(): Promise<StuckListener> {
  const { spawn } = await import('node:child_process');
  const script = `const s = require('net').createServer(); s.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => { process.stdout.write(s.address().port + '\\n'); Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0); });`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`stuck listener exited early (${String(code)})`)));
    child.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
  });
  child.removeAllListeners('exit');
  const fillers: net.Socket[] = [];
  // Fill the accept queue (backlog 1 holds two completed connections on Linux). Tests using the
  // listener prove that further connects hang by timing them (no probe with a fixed wait here).
  for (let i = 0; i < 2; i++) {
    const f = net.connect({ host: '127.0.0.1', port });
    f.on('error', () => undefined);
    await new Promise<void>((resolve) => f.once('connect', resolve));
    fillers.push(f);
  }
  return {
    port,
    close: async () => {
      for (const f of fillers) f.destroy();
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGKILL');
      await exited;
    },
  };
}

/** Number of libuv handles keeping the process alive (sockets, servers, timers with handles). */
export function activeHandles(): number {
  return (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles().length;
}

/**
 * The data planes this build and this Node provide: `native` when its addon is built (the test
 * command builds it; proxy.test.ts has a test that fails when it is missing), `handles` when
 * Node's handle bindings are there, and always `streams`.
 */
export function dataPlanesHere(): readonly DataPlane[] {
  return [...(loadNativeRelay().relay ? (['native'] as const) : []), ...(loadTcpHandles() ? (['handles'] as const) : []), 'streams'];
}

/** Open file descriptors of this process (the native plane's sockets are invisible to `activeHandles`). */
export function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}
