/**
 * Builds and runs the Go reference peers in test/interop/<name>/ (programs written here that
 * import Debian's HashiCorp libraries), in GOPATH mode with no downloads
 * (shared/spec/hashicorp-wire.md §3). scripts/setup.sh installs golang-go and the -dev packages.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdir, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

/** Repository root (this file runs from dist/test/interop/). */
export const REPO_ROOT = resolve(fileURLToPath(import.meta.url), '../../../..');

const CACHE = join(tmpdir(), 'meshfed-interop');

/** Environment for `go build` in GOPATH mode against /usr/share/gocode. */
export function goEnv(): NodeJS.ProcessEnv {
  return {
    ...process.env,
    GO111MODULE: 'off',
    GOPATH: `${join(CACHE, 'gopath')}:/usr/share/gocode`,
    GOCACHE: join(CACHE, 'gocache'),
    GOFLAGS: '',
    GOENV: 'off',
    GOPROXY: 'off',
    GOTMPDIR: tmpdir(),
  };
}

const built = new Map<string, Promise<string>>();

/** Build test/interop/<name> once per process; resolves to the binary's path. */
export function buildGoPeer(name: string): Promise<string> {
  let p = built.get(name);
  if (!p) {
    p = (async () => {
      const src = join(REPO_ROOT, 'test', 'interop', name);
      await stat(join(src, 'main.go'));
      await mkdir(join(CACHE, 'bin'), { recursive: true });
      const out = join(CACHE, 'bin', name);
      await promisify(execFile)('go', ['build', '-o', out, '.'], { cwd: src, env: goEnv(), timeout: 300_000 });
      return out;
    })();
    built.set(name, p);
  }
  return p;
}

/** A running Go peer: its process and the lines it printed so far. */
export interface GoPeer {
  readonly child: ChildProcess;
  /** stdout lines so far. */
  readonly lines: string[];
  /** Resolve with the first stdout line matching `re` (or reject when the process exits / times out). */
  line(re: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  /** Kill the process and wait for it to exit. */
  stop(): Promise<void>;
}

/** Start a built Go peer with arguments. stderr is collected for error messages. */
export async function startGoPeer(name: string, args: readonly string[]): Promise<GoPeer> {
  const bin = await buildGoPeer(name);
  const child = spawn(bin, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let stderr = '';
  let buf = '';
  const waiters = new Set<() => void>();
  child.stdout.on('data', (d: Buffer) => {
    buf += d.toString();
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      lines.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
    for (const w of waiters) w();
  });
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
    if (stderr.length > 65536) stderr = stderr.slice(-32768);
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  void exited.then(() => {
    for (const w of waiters) w();
  });
  return {
    child,
    lines,
    line(re, timeoutMs = 30_000) {
      return new Promise((resolveLine, reject) => {
        const check = (): void => {
          for (const l of lines) {
            const m = re.exec(l);
            if (m) {
              cleanup();
              resolveLine(m);
              return;
            }
          }
          if (child.exitCode !== null || child.signalCode !== null) {
            cleanup();
            reject(new Error(`${name} exited (${child.exitCode ?? child.signalCode}) before printing ${re}; stderr: ${stderr}`));
          }
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`${name} did not print ${re} within ${timeoutMs} ms; stderr: ${stderr}`));
        }, timeoutMs);
        const cleanup = (): void => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}
