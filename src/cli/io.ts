/** What a CLI command may touch: its output streams, its environment and the process signals. */
export interface CliIo {
  /** Normal output (what the command produced). */
  readonly stdout: { write(s: string): unknown };
  /** Diagnostics and logs. */
  readonly stderr: { write(s: string): unknown };
  /** Working directory for relative file names. */
  readonly cwd: string;
  /** Resolves when the process is asked to stop (SIGINT/SIGTERM); used by long-running commands. */
  readonly shutdownSignal: AbortSignal;
}

/** A CLI command: returns the process exit code. */
export interface Command {
  readonly name: string;
  /** One-line synopsis for the command list. */
  readonly synopsis: string;
  run(args: readonly string[], io: CliIo): Promise<number>;
}
