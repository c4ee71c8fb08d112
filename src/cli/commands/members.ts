/**
 * `meshfed members`: the members of this agent's LAN pool (or, with `-wan`, the WAN pool), read
 * from the agent's HTTP API (`GET /v1/agent/members`), as Consul's `consul members` prints them.
 */
import { memberStatusName, type AgentMemberJson } from '../../plugins/gossip/members-json.js';
import { formatFlags, parseFlags, UsageError, type FlagSpec } from '../flags.js';
import type { Command } from '../io.js';

const FLAGS: readonly FlagSpec[] = [
  { name: 'http-addr', kind: 'string', usage: 'Address of the agent HTTP API (also $MESHFED_HTTP_ADDR).', metavar: 'ADDR', defaultText: '127.0.0.1:8500' },
  { name: 'wan', kind: 'bool', usage: 'List the WAN pool (servers only) instead of the LAN pool.' },
  { name: 'detailed', kind: 'bool', usage: 'Show every tag and the protocol versions.' },
  { name: 'format', kind: 'string', usage: 'Output format: text or json.', metavar: 'FORMAT', defaultText: 'text' },
  { name: 'status', kind: 'string', usage: 'Only members whose status matches this regular expression.', metavar: 'REGEX' },
];

const HELP = `Usage: meshfed members [options]

  Lists the members of the gossip pool this agent is in.

Options:
${formatFlags(FLAGS)}
`;

/** Render members as aligned columns (Consul's layout). */
export function formatMembers(members: readonly AgentMemberJson[], detailed: boolean): string {
  const rows: string[][] = detailed
    ? [['Node', 'Address', 'Status', 'Tags']]
    : [['Node', 'Address', 'Status', 'Type', 'Build', 'Protocol', 'DC', 'Segment']];
  for (const m of members) {
    const addr = `${m.Addr.includes(':') ? `[${m.Addr}]` : m.Addr}:${m.Port}`;
    const status = memberStatusName(m.Status);
    if (detailed) {
      const tags = Object.keys(m.Tags)
        .sort()
        .map((k) => `${k}=${m.Tags[k]}`)
        .join(',');
      rows.push([m.Name, addr, status, tags]);
    } else {
      const type = m.Tags['role'] === 'consul' ? 'server' : m.Tags['role'] === 'node' ? 'client' : (m.Tags['role'] ?? 'unknown');
      const build = (m.Tags['build'] ?? '').split(':')[0] ?? '';
      rows.push([m.Name, addr, status, type, build, m.Tags['vsn'] ?? String(m.ProtocolCur), m.Tags['dc'] ?? '', m.Tags['segment'] ? m.Tags['segment'] : '<default>']);
    }
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n') + '\n';
}

/** `meshfed members`. */
export const membersCommand: Command = {
  name: 'members',
  synopsis: 'List the members of the LAN (or WAN) gossip pool',
  async run(args, io) {
    const f = parseFlags(args, FLAGS);
    if (f.help) {
      io.stdout.write(HELP);
      return 0;
    }
    if (f.positionals.length > 0) throw new UsageError(`unexpected argument "${f.positionals[0]}"`);
    const format = (f.values.get('format') as string | undefined) ?? 'text';
    if (format !== 'text' && format !== 'json') throw new UsageError(`invalid -format "${format}": use text or json`);
    let statusRe: RegExp | undefined;
    const statusText = f.values.get('status') as string | undefined;
    if (statusText !== undefined) {
      try {
        statusRe = new RegExp(statusText);
      } catch (err) {
        throw new UsageError(`invalid -status regular expression: ${(err as Error).message}`);
      }
    }
    const addr = (f.values.get('http-addr') as string | undefined) ?? process.env['MESHFED_HTTP_ADDR'] ?? '127.0.0.1:8500';
    const base = /^https?:\/\//.test(addr) ? addr : `http://${addr}`;
    const url = `${base}/v1/agent/members${f.values.get('wan') === true ? '?wan=1' : ''}`;
    let res: Response;
    try {
      res = await fetch(url, { signal: AbortSignal.any([io.shutdownSignal, AbortSignal.timeout(10_000)]) });
    } catch (err) {
      io.stderr.write(`Error retrieving members: cannot reach the agent at ${base} (${(err as Error).message}); is it running, and is -http-addr right?\n`);
      return 1;
    }
    const body = await res.text();
    if (!res.ok) {
      let msg = body;
      try {
        msg = (JSON.parse(body) as { error?: string }).error ?? body;
      } catch {
        // not JSON: print as is
      }
      io.stderr.write(`Error retrieving members: ${res.status} ${msg}\n`);
      return 1;
    }
    let members = JSON.parse(body) as AgentMemberJson[];
    if (statusRe) members = members.filter((m) => statusRe.test(memberStatusName(m.Status)));
    if (format === 'json') io.stdout.write(`${JSON.stringify(members, null, 2)}\n`);
    else io.stdout.write(formatMembers(members, f.values.get('detailed') === true));
    return 0;
  },
};
