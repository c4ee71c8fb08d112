/**
 * The `meshfed` command (entry point: meshfed.ts). Errors print one line (the message, then each cause) and exit 1;
 * stack traces only with `-log-level debug` (or trace).
 */
import { errorMessage } from '../core/errors.js';
import { MESHFED_VERSION } from '../core/version.js';
import { agentCommand } from './commands/agent.js';
import { gatewayCommand } from './commands/gateway.js';
import { keygenCommand } from './commands/keygen.js';
import { membersCommand } from './commands/members.js';
import { tlsCommand } from './commands/tls.js';
import { versionCommand } from './commands/version.js';
import { UsageError } from './flags.js';
import type { CliIo, Command } from './io.js';

const COMMANDS: readonly Command[] = [agentCommand, gatewayCommand, keygenCommand, membersCommand, tlsCommand, versionCommand];

function help(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return `Usage: meshfed [--help] <command> [args]

  meshfed ${MESHFED_VERSION}: federate service-mesh control planes across datacenters through
  mesh gateways.

Commands:
${COMMANDS.map((c) => `    ${c.name.padEnd(width)}    ${c.synopsis}`).join('\n')}

Run "meshfed <command> --help" for a command's options.
`;
}

function describe(err: unknown, verbose: boolean): string {
  if (verbose && err instanceof Error && err.stack) return `${err.stack}\n`;
  const parts = [errorMessage(err)];
  let cause = err instanceof Error ? err.cause : undefined;
  while (cause !== undefined && parts.length < 5) {
    const m = errorMessage(cause);
    if (!parts.some((p) => p.includes(m))) parts.push(`caused by: ${m}`);
    cause = cause instanceof Error ? cause.cause : undefined;
  }
  return `Error: ${parts.join('\n  ')}\n`;
}

/** Run the CLI with `argv` (without node and script); returns the exit code. */
export async function main(argv: readonly string[], io: CliIo): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '-h' || name === '-help' || name === '--help' || name === 'help') {
    io.stdout.write(help());
    return name === undefined ? 1 : 0;
  }
  if (name === '-v' || name === '-version' || name === '--version') return versionCommand.run([], io);
  const cmd = COMMANDS.find((c) => c.name === name);
  if (!cmd) {
    io.stderr.write(`Error: unknown command "${name}"\n\n${help()}`);
    return 1;
  }
  const verbose = rest.some((a, i) => /^--?log-level(=(debug|trace))?$/.test(a) && (a.includes('=') || rest[i + 1] === 'debug' || rest[i + 1] === 'trace'));
  try {
    return await cmd.run(rest, io);
  } catch (err) {
    io.stderr.write(describe(err, verbose));
    if (err instanceof UsageError) io.stderr.write(`Run "meshfed ${name} --help" for usage.\n`);
    return 1;
  }
}

