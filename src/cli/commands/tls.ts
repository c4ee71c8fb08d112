/**
 * `meshfed tls ca create` and `meshfed tls cert create`: the same flags and file names as
 * `consul tls`, so operators' scripts carry over.
 */
import { resolve } from 'node:path';
import { createCaFiles, createCertFiles } from '../../plugins/tls/index.js';
import { formatFlags, parseFlags, UsageError, type FlagSpec } from '../flags.js';
import type { CliIo, Command } from '../io.js';

const CA_FLAGS: readonly FlagSpec[] = [
  { name: 'domain', kind: 'string', usage: 'Domain of the CA (used in its file names).', metavar: 'DOMAIN', defaultText: 'consul' },
  { name: 'days', kind: 'int', usage: 'Validity of the CA certificate in days.', metavar: 'N', defaultText: '1825' },
];

const CERT_FLAGS: readonly FlagSpec[] = [
  { name: 'server', kind: 'bool', usage: 'Create a server certificate (server.<dc>.<domain>).' },
  { name: 'client', kind: 'bool', usage: 'Create a client certificate (client.<dc>.<domain>).' },
  { name: 'cli', kind: 'bool', usage: 'Create a CLI certificate (cli.client.<dc>.<domain>, client auth only).' },
  { name: 'dc', kind: 'string', usage: 'Datacenter of the certificate.', metavar: 'DC', defaultText: 'dc1' },
  { name: 'domain', kind: 'string', usage: 'Domain of the certificate.', metavar: 'DOMAIN', defaultText: 'consul' },
  { name: 'node', kind: 'string', usage: 'Node name: adds <node>.server.<dc>.<domain> (needed for WAN federation via mesh gateways). Requires -server.', metavar: 'NAME' },
  { name: 'additional-dnsname', kind: 'list', usage: 'Extra DNS SAN.', metavar: 'NAME' },
  { name: 'additional-ipaddress', kind: 'list', usage: 'Extra IP SAN.', metavar: 'IP' },
  { name: 'ca', kind: 'string', usage: 'CA certificate file.', metavar: 'FILE', defaultText: '<domain>-agent-ca.pem' },
  { name: 'key', kind: 'string', usage: 'CA private key file.', metavar: 'FILE', defaultText: '<domain>-agent-ca-key.pem' },
  { name: 'days', kind: 'int', usage: 'Validity in days.', metavar: 'N', defaultText: '365' },
];

const TLS_HELP = `Usage: meshfed tls <subcommand> [options]

  Create a CA and agent certificates for internal RPC TLS (files are written to the
  current directory, named as Consul names them).

Subcommands:
  ca create      Create a new CA
  cert create    Create a server, client or CLI certificate signed by the CA
`;

const CA_HELP = `Usage: meshfed tls ca create [options]

  Writes <domain>-agent-ca.pem and <domain>-agent-ca-key.pem.

Options:
${formatFlags(CA_FLAGS)}
`;

const CERT_HELP = `Usage: meshfed tls cert create -server|-client|-cli [options]

  Writes <dc>-<kind>-<domain>-<n>.pem and <dc>-<kind>-<domain>-<n>-key.pem (n = first free index).
  Server certificates carry the SANs [additional..., <node>.server.<dc>.<domain>,
  server.<dc>.<domain>, localhost] and IPs [additional..., 127.0.0.1].

Options:
${formatFlags(CERT_FLAGS)}
`;

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

async function caCreate(args: readonly string[], io: CliIo): Promise<number> {
  const f = parseFlags(args, CA_FLAGS);
  if (f.help) {
    io.stdout.write(CA_HELP);
    return 0;
  }
  if (f.positionals.length > 0) throw new UsageError(`unexpected argument "${f.positionals[0]}"`);
  const days = (f.values.get('days') as number | undefined) ?? 1825;
  if (days <= 0) throw new UsageError('-days must be positive');
  const out = await createCaFiles({ dir: io.cwd, domain: str(f.values.get('domain')) ?? 'consul', days });
  io.stdout.write(`==> Saved ${out.certFile}\n==> Saved ${out.keyFile}\n`);
  return 0;
}

async function certCreate(args: readonly string[], io: CliIo): Promise<number> {
  const f = parseFlags(args, CERT_FLAGS);
  if (f.help) {
    io.stdout.write(CERT_HELP);
    return 0;
  }
  if (f.positionals.length > 0) throw new UsageError(`unexpected argument "${f.positionals[0]}"`);
  const kinds = (['server', 'client', 'cli'] as const).filter((k) => f.values.get(k) === true);
  if (kinds.length !== 1) throw new UsageError('exactly one of -server, -client or -cli is required');
  const kind = kinds[0] as 'server' | 'client' | 'cli';
  const node = str(f.values.get('node'));
  if (node !== undefined && kind !== 'server') throw new UsageError('-node requires -server');
  const days = (f.values.get('days') as number | undefined) ?? 365;
  if (days <= 0) throw new UsageError('-days must be positive');
  const ca = str(f.values.get('ca'));
  const key = str(f.values.get('key'));
  const out = await createCertFiles({
    dir: io.cwd,
    ...(ca !== undefined ? { caFile: resolve(io.cwd, ca) } : {}),
    ...(key !== undefined ? { caKeyFile: resolve(io.cwd, key) } : {}),
    kind,
    datacenter: str(f.values.get('dc')) ?? 'dc1',
    domain: str(f.values.get('domain')) ?? 'consul',
    ...(node !== undefined ? { node } : {}),
    additionalDnsNames: (f.values.get('additional-dnsname') as readonly string[] | undefined) ?? [],
    additionalIpAddresses: (f.values.get('additional-ipaddress') as readonly string[] | undefined) ?? [],
    days,
  });
  io.stdout.write(`==> Using CA ${ca ?? '(default)'}\n==> Saved ${out.certFile}\n==> Saved ${out.keyFile}\n`);
  return 0;
}

/** `meshfed tls …`. */
export const tlsCommand: Command = {
  name: 'tls',
  synopsis: 'Create a CA and agent certificates',
  async run(args, io) {
    const [sub, verb, ...rest] = args;
    if (sub === undefined || sub === '-h' || sub === '-help' || sub === '--help') {
      io.stdout.write(TLS_HELP);
      return sub === undefined ? 1 : 0;
    }
    if (sub === 'ca' && verb === 'create') return caCreate(rest, io);
    if (sub === 'cert' && verb === 'create') return certCreate(rest, io);
    if ((sub === 'ca' || sub === 'cert') && (verb === undefined || verb === '-h' || verb === '-help' || verb === '--help')) {
      io.stdout.write(sub === 'ca' ? CA_HELP : CERT_HELP);
      return verb === undefined ? 1 : 0;
    }
    throw new UsageError(`unknown tls subcommand "${[sub, verb].filter(Boolean).join(' ')}": use "tls ca create" or "tls cert create"`);
  },
};
