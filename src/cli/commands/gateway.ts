/**
 * `meshfed gateway`: run meshfed's built-in mesh gateway (Consul's `consul connect envoy
 * -gateway=mesh -register -expose-servers …`): register it in the datacenter's catalog, take its
 * routes over ADS from the datacenter's servers, and route TLS connections by SNI without
 * decrypting them, until SIGINT/SIGTERM (then it deregisters).
 */
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { errorMessage } from '../../core/errors.js';
import { createLogger, isLogLevel } from '../../core/logger.js';
import { MeshGateway, parseAdsServer, parseHostPort, type AdsClientTlsOptions } from '../../plugins/mesh-gateway/index.js';
import { formatFlags, parseFlags, UsageError, type FlagSpec } from '../flags.js';
import type { Command } from '../io.js';

const FLAGS: readonly FlagSpec[] = [
  { name: 'register', kind: 'bool', usage: 'Register the gateway in the catalog (and deregister it on shutdown).' },
  { name: 'expose-servers', kind: 'bool', usage: 'Carry WAN federation traffic to and from this datacenter’s servers (meta consul-wan-federation=1). Requires -register.' },
  { name: 'address', kind: 'string', usage: 'LAN address to listen on and register (tagged address lan).', metavar: 'HOST:PORT' },
  { name: 'wan-address', kind: 'string', usage: 'WAN address other datacenters dial (tagged address wan; default -address).', metavar: 'HOST:PORT' },
  { name: 'bind', kind: 'string', usage: 'Bind host, if different from the -address host (e.g. 0.0.0.0).', metavar: 'HOST' },
  {
    name: 'server',
    kind: 'list',
    usage: 'ADS (gRPC) address of a server of this datacenter; https://HOST:PORT dials its TLS port (ports.grpc_tls), like Consul’s -grpc-addr. Repeat for failover.',
    metavar: 'ADDR',
    defaultText: '127.0.0.1:8502',
  },
  { name: 'ca-file', kind: 'string', usage: 'PEM file of the CA that verifies https:// ADS servers (default: the system roots).', metavar: 'FILE' },
  { name: 'tls-server-name', kind: 'string', usage: 'Name the https:// ADS servers’ certificate must carry, sent as SNI (e.g. server.dc1.consul; default: the -server host).', metavar: 'NAME' },
  { name: 'client-cert', kind: 'string', usage: 'PEM client certificate for https:// ADS servers with tls.verify_incoming (with -client-key).', metavar: 'FILE' },
  { name: 'client-key', kind: 'string', usage: 'PEM key of -client-cert.', metavar: 'FILE' },
  { name: 'http-addr', kind: 'string', usage: 'HTTP API of a server, for registration (also $MESHFED_HTTP_ADDR).', metavar: 'ADDR', defaultText: '127.0.0.1:8500' },
  { name: 'token', kind: 'string', usage: 'ACL token for the registration and the ADS stream (x-consul-token; needs service:write on -service; also $MESHFED_HTTP_TOKEN).', metavar: 'TOKEN' },
  { name: 'service', kind: 'string', usage: 'Service name.', metavar: 'NAME', defaultText: 'mesh-gateway' },
  { name: 'service-id', kind: 'string', usage: 'Service ID (also the ADS node id).', metavar: 'ID', defaultText: 'the service name' },
  { name: 'node', kind: 'string', usage: 'Catalog node to register under.', metavar: 'NAME', defaultText: '<hostname>-gateway' },
  { name: 'data-plane', kind: 'string', usage: 'How bytes are moved: auto (native where its addon is built, else handles, else streams), native (the C engine), handles (libuv handles from JavaScript), or streams (net.Socket).', metavar: 'PLANE', defaultText: 'auto' },
  { name: 'log-level', kind: 'string', usage: 'trace, debug, info, warn, error or silent.', metavar: 'LEVEL', defaultText: 'info' },
];

const HELP = `Usage: meshfed gateway -register -expose-servers -address HOST:PORT [-wan-address HOST:PORT] [-server ADDR …] [options]

  Runs a mesh gateway: routes TLS connections between datacenters by SNI without decrypting
  them, with routes from the datacenter's servers over ADS.

  With ACLs enabled, -token must grant service:write on the gateway's service (-service) for the
  ADS stream, and node:write on -node to register. To reach the servers' TLS ADS port:
  -server https://HOST:PORT -ca-file consul-agent-ca.pem -tls-server-name server.<dc>.consul
  (plus -client-cert/-client-key when the servers set tls.verify_incoming).

Options:
${formatFlags(FLAGS)}
`;

/** `meshfed gateway`. */
export const gatewayCommand: Command = {
  name: 'gateway',
  synopsis: 'Run the built-in mesh gateway',
  async run(args, io) {
    const f = parseFlags(args, FLAGS);
    if (f.help) {
      io.stdout.write(HELP);
      return 0;
    }
    if (f.positionals.length > 0) throw new UsageError(`unexpected argument "${f.positionals[0]}"`);
    const register = f.values.get('register') === true;
    const expose = f.values.get('expose-servers') === true;
    if (expose && !register) throw new UsageError("'-expose-servers' requires '-register'");
    const addressText = f.values.get('address') as string | undefined;
    if (!addressText) throw new UsageError('-address is required (the HOST:PORT the gateway listens on and registers)');
    const address = parseHostPort(addressText, '-address');
    const wanText = f.values.get('wan-address') as string | undefined;
    const wanAddress = wanText ? parseHostPort(wanText, '-wan-address') : undefined;
    const levelText = (f.values.get('log-level') as string | undefined) ?? 'info';
    if (!isLogLevel(levelText)) throw new UsageError(`invalid -log-level "${levelText}": use trace, debug, info, warn, error or silent`);
    const plane = (f.values.get('data-plane') as string | undefined) ?? 'auto';
    if (plane !== 'auto' && plane !== 'native' && plane !== 'handles' && plane !== 'streams') throw new UsageError(`invalid -data-plane "${plane}": use auto, native, handles or streams`);
    const servers = (f.values.get('server') as readonly string[] | undefined) ?? [];
    for (const s of servers) parseHostPort(parseAdsServer(s).address, '-server');
    const adsTls = await readAdsTls(f.values, servers);
    const token = (f.values.get('token') as string | undefined) ?? process.env['MESHFED_HTTP_TOKEN'];
    const service = (f.values.get('service') as string | undefined) ?? 'mesh-gateway';
    const gw = new MeshGateway({
      service,
      serviceId: (f.values.get('service-id') as string | undefined) ?? service,
      node: (f.values.get('node') as string | undefined) ?? `${hostname()}-gateway`,
      address,
      ...(wanAddress ? { wanAddress } : {}),
      ...(f.values.get('bind') ? { bindHost: f.values.get('bind') as string } : {}),
      exposeServers: expose,
      register,
      httpAddr: (f.values.get('http-addr') as string | undefined) ?? process.env['MESHFED_HTTP_ADDR'] ?? '127.0.0.1:8500',
      adsServers: servers.length > 0 ? servers : ['127.0.0.1:8502'],
      ...(adsTls ? { adsTls } : {}),
      ...(token ? { token } : {}),
      logger: createLogger({ level: levelText, stream: io.stderr }),
      proxy: { dataPlane: plane },
    });
    await gw.start();
    io.stdout.write(`==> mesh gateway ${gw.serviceId} listening on ${gw.address} (${gw.proxy.dataPlane} data plane)${expose ? ', exposing servers for WAN federation' : ''}\n`);
    if (!io.shutdownSignal.aborted) await new Promise<void>((r) => io.shutdownSignal.addEventListener('abort', () => r(), { once: true }));
    io.stdout.write('==> shutting down\n');
    await gw.stop();
    io.stdout.write('==> stopped\n');
    return 0;
  },
};

/** The TLS flags (`-ca-file`, `-tls-server-name`, `-client-cert`, `-client-key`), checked against the `-server` schemes. */
async function readAdsTls(values: ReadonlyMap<string, unknown>, servers: readonly string[]): Promise<AdsClientTlsOptions | undefined> {
  const str = (name: string): string | undefined => values.get(name) as string | undefined;
  const [caFile, serverName, certFile, keyFile] = [str('ca-file'), str('tls-server-name'), str('client-cert'), str('client-key')];
  const given = [['ca-file', caFile], ['tls-server-name', serverName], ['client-cert', certFile], ['client-key', keyFile]].filter(([, v]) => v !== undefined);
  if (!servers.some((s) => parseAdsServer(s).tls)) {
    if (given.length > 0) throw new UsageError(`-${String(given[0]?.[0])} applies to https:// ADS servers only: give -server https://HOST:PORT (the servers' ports.grpc_tls)`);
    return undefined;
  }
  if ((certFile === undefined) !== (keyFile === undefined)) throw new UsageError('-client-cert and -client-key go together');
  const read = async (flag: string, file: string | undefined): Promise<string | undefined> => {
    if (file === undefined) return undefined;
    try {
      return await readFile(file, 'utf8');
    } catch (err) {
      throw new UsageError(`-${flag}: cannot read ${file}: ${errorMessage(err)}`);
    }
  };
  const [caPem, certPem, keyPem] = await Promise.all([read('ca-file', caFile), read('client-cert', certFile), read('client-key', keyFile)]);
  return {
    ...(caPem !== undefined ? { caPem } : {}),
    ...(serverName !== undefined ? { serverName } : {}),
    ...(certPem !== undefined ? { certPem } : {}),
    ...(keyPem !== undefined ? { keyPem } : {}),
  };
}
