/** Shared helpers for benchmarks: machine busy %, medians, child processes that print one line. */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** Busy % of all CPUs over `ms` (from /proc/stat), to print before and after a run. */
export async function machineBusyPercent(ms = 500): Promise<number> {
  const read = (): { idle: number; total: number } => {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] as string;
    const v = line.trim().split(/\s+/).slice(1).map(Number);
    const idle = (v[3] ?? 0) + (v[4] ?? 0);
    return { idle, total: v.reduce((a, b) => a + b, 0) };
  };
  const a = read();
  await new Promise((r) => setTimeout(r, ms));
  const b = read();
  const total = b.total - a.total;
  return total === 0 ? 0 : Math.round((100 * (total - (b.idle - a.idle))) / total);
}

/** Median of numbers. */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

/** Run a command to completion; resolve with its stdout (reject with stderr on failure). */
export function runToEnd(cmd: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    c.stdout.on('data', (d: Buffer) => (out += d.toString()));
    c.stderr.on('data', (d: Buffer) => (err += d.toString()));
    c.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${err}`))));
  });
}

/** Start a long-running server process and wait for a `listening <addr>` line. */
export async function startServer(cmd: string, args: readonly string[]): Promise<{ address: string; stop: () => void }> {
  const c = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const address = await new Promise<string>((resolve, reject) => {
    let buf = '';
    c.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      const m = /listening (\S+)/.exec(buf);
      if (m) resolve(m[1] as string);
    });
    c.on('exit', (code) => reject(new Error(`${cmd} exited ${code} before listening`)));
  });
  return { address, stop: () => c.kill('SIGKILL') };
}

/** A child process whose stdout is read line by line. */
export interface Spawned {
  child: ChildProcess;
  pid: number;
  /** The next not-yet-consumed stdout line matching `re` (an `ERROR …` line rejects). */
  nextLine(re: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  send(line: string): void;
}

/**
 * Spawn `cmd` and read its stdout as lines: `nextLine(re)` resolves with the next unread line
 * matching `re`, rejects on an `ERROR …` line, on exit, or after `timeoutMs` (default 120 s).
 */
export function spawnLines(cmd: string, args: readonly string[]): Spawned {
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let buf = '';
  let err = '';
  const waiters = new Set<() => void>();
  child.stdout?.on('data', (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      lines.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
    for (const w of [...waiters]) w();
  });
  child.stderr?.on('data', (d: Buffer) => {
    err = (err + d.toString()).slice(-4000);
  });
  child.on('exit', () => {
    for (const w of [...waiters]) w();
  });
  return {
    child,
    pid: child.pid as number,
    send: (line) => child.stdin?.write(`${line}\n`),
    nextLine: (re, timeoutMs = 120_000) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`${args.join(' ')}: no ${re} within ${timeoutMs} ms`));
        }, timeoutMs);
        const done = (): void => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        function check(): void {
          while (lines.length > 0) {
            const line = lines.shift() as string;
            if (line.startsWith('ERROR ')) {
              done();
              reject(new Error(`${args.join(' ')}: ${line}`));
              return;
            }
            const m = re.exec(line);
            if (m) {
              done();
              resolve(m);
              return;
            }
          }
          if (child.exitCode !== null || child.signalCode !== null) {
            done();
            reject(new Error(`${cmd} ${args.join(' ')} exited (${child.exitCode ?? child.signalCode}) without ${re}: ${err}`));
          }
        }
        waiters.add(check);
        check();
      }),
  };
}
