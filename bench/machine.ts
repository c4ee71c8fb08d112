/** Shared helpers for benchmarks: machine busy %, medians, child processes that print one line. */
import { spawn } from 'node:child_process';
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
