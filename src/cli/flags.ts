/**
 * Go-style command-line flags, as Consul's CLI uses them: `-name value`, `-name=value`, `--name`
 * alike; booleans as `-flag` or `-flag=false`; list flags repeat (`-retry-join a -retry-join b`).
 * Parsing stops at the first non-flag argument or at `--`.
 */
import { ErrorCode, MeshfedError } from '../core/errors.js';

/** Description of one flag. */
export interface FlagSpec {
  readonly name: string;
  readonly kind: 'string' | 'bool' | 'int' | 'list';
  /** One line of help. */
  readonly usage: string;
  /** Placeholder in help (`-node NAME`). */
  readonly metavar?: string;
  /** Default shown in help. */
  readonly defaultText?: string;
}

/** Parsed flags. */
export interface ParsedFlags {
  /** Flag values by name: string, boolean, number or string[]. Only flags that were given. */
  readonly values: ReadonlyMap<string, string | boolean | number | readonly string[]>;
  /** Arguments after the flags. */
  readonly positionals: readonly string[];
  /** Whether `-h`, `-help` or `--help` was given. */
  readonly help: boolean;
}

/** A usage error: the CLI prints it with the command's help and exits 1. */
export class UsageError extends MeshfedError {
  constructor(message: string) {
    super(ErrorCode.CONFIG_INVALID, message);
    this.name = 'UsageError';
  }
}

/** Parse `args` against `specs`. Throws {@link UsageError} for unknown flags and bad values. */
export function parseFlags(args: readonly string[], specs: readonly FlagSpec[]): ParsedFlags {
  const byName = new Map(specs.map((s) => [s.name, s]));
  const values = new Map<string, string | boolean | number | readonly string[]>();
  let help = false;
  let i = 0;
  for (; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === '--') {
      i++;
      break;
    }
    if (!arg.startsWith('-') || arg === '-') break;
    const body = arg.replace(/^--?/, '');
    const eq = body.indexOf('=');
    const name = eq === -1 ? body : body.slice(0, eq);
    let inline: string | undefined = eq === -1 ? undefined : body.slice(eq + 1);
    if (name === 'h' || name === 'help') {
      help = true;
      continue;
    }
    const spec = byName.get(name);
    if (!spec) throw new UsageError(`flag provided but not defined: -${name}`);
    if (spec.kind === 'bool') {
      if (inline === undefined) values.set(name, true);
      else if (inline === 'true' || inline === '1') values.set(name, true);
      else if (inline === 'false' || inline === '0') values.set(name, false);
      else throw new UsageError(`invalid boolean value "${inline}" for -${name}: use -${name} or -${name}=false`);
      continue;
    }
    if (inline === undefined) {
      const next = args[i + 1];
      if (next === undefined) throw new UsageError(`flag needs an argument: -${name}`);
      inline = next;
      i++;
    }
    if (spec.kind === 'int') {
      const n = Number(inline);
      if (!Number.isInteger(n)) throw new UsageError(`invalid value "${inline}" for -${name}: expected an integer`);
      values.set(name, n);
    } else if (spec.kind === 'list') {
      values.set(name, [...((values.get(name) as readonly string[] | undefined) ?? []), inline]);
    } else {
      values.set(name, inline);
    }
  }
  return { values, positionals: args.slice(i), help };
}

/** Render the flags section of a help text. */
export function formatFlags(specs: readonly FlagSpec[]): string {
  return specs
    .map((s) => {
      const head = `  -${s.name}${s.kind === 'bool' ? '' : ` ${s.metavar ?? (s.kind === 'int' ? 'N' : 'VALUE')}`}`;
      const def = s.defaultText ? ` (default ${s.defaultText})` : '';
      const rep = s.kind === 'list' ? ' May be repeated.' : '';
      return `${head}\n      ${s.usage}${rep}${def}`;
    })
    .join('\n');
}
