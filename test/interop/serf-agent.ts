/**
 * Harness for Debian's serf agent binary (/usr/bin/serf, package serf 0.9.4 — `serf version`
 * claims 0.8.2-dev, see shared/spec/hashicorp-wire.md §1/§12): start an agent on loopback, wait
 * for its RPC, capture its log in memory, drive it through the `serf` CLI (members, join, event,
 * query), stop it gracefully (SIGINT = leave) or kill it. Every agent started here is SIGKILLed
 * when this Node process exits (an 'exit' hook, plus PR_SET_PDEATHSIG through setpriv for deaths
 * by signal); stop agents one after another (§12: stopping both at once makes
 * serf log "Shutdown without a Leave").
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { access, constants } from 'node:fs/promises';
import { createServer } from 'node:net';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

/** The serf binary (override with MESHFED_SERF). */
export const SERF_BIN = process.env.MESHFED_SERF ?? '/usr/bin/serf';

/** True if the serf binary is installed and executable. */
export async function serfAvailable(): Promise<boolean> {
  try {
    await access(SERF_BIN, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export interface SerfAgentOptions {
  node: string;
  /** Gossip port on 127.0.0.1 (UDP+TCP); 0 or absent = a free one. */
  bindPort?: number;
  /** RPC port on 127.0.0.1; 0 or absent = a free one. */
  rpcPort?: number;
  tags?: Record<string, string>;
  /** base64 key (16/24/32 bytes) → `-encrypt=`. */
  encryptKey?: string;
  /** `-profile=` (serf's default is lan). */
  profile?: 'lan' | 'wan' | 'local';
  /** `-log-level=` (default info). */
  logLevel?: 'trace' | 'debug' | 'info' | 'warn' | 'err';
  /** `-event-handler=` values, e.g. `query:ping=echo pong` (the handler's stdout answers a query). */
  eventHandlers?: readonly string[];
  extraArgs?: readonly string[];
  /** Deadline for the agent's RPC to answer (default 15 s). */
  startTimeoutMs?: number;
}

/** One member as `serf members -format=json` prints it. */
export interface SerfCliMember {
  name: string;
  /** `ip:port` */
  addr: string;
  port: number;
  tags: Record<string, string>;
  /** alive | leaving | left | failed */
  status: string;
  protocol: { min: number; max: number; version: number };
}

export interface SerfQueryResult {
  acks: string[];
  responses: Record<string, string>;
}

const SETPRIV = '/usr/bin/setpriv';
let setprivChecked: Promise<boolean> | undefined;
function setprivAvailable(): Promise<boolean> {
  setprivChecked ??= access(SETPRIV, constants.X_OK).then(
    () => true,
    () => false,
  );
  return setprivChecked;
}

const agents = new Set<ChildProcess>();
let exitHookInstalled = false;
function track(c: ChildProcess): void {
  agents.add(c);
  c.once('exit', () => agents.delete(c));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const a of agents) a.kill('SIGKILL');
    });
  }
}

/** A port on 127.0.0.1 free for both TCP and UDP at the time of the call (retries on conflicts). */
export async function freePort(udpToo = true): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const srv = createServer();
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(0, '127.0.0.1', () => resolve());
    });
    const port = (srv.address() as { port: number }).port;
    let ok = true;
    if (udpToo) {
      const sock = createSocket('udp4');
      ok = await new Promise<boolean>((resolve) => {
        sock.once('error', () => resolve(false));
        sock.bind(port, '127.0.0.1', () => resolve(true));
      });
      await new Promise<void>((r) => sock.close(() => r())).catch(() => undefined);
    }
    await new Promise<void>((r) => srv.close(() => r()));
    if (ok) return port;
  }
  throw new Error('no free TCP+UDP port found');
}

function deadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

export class SerfAgent {
  /** Log lines (stdout and stderr) so far. */
  readonly logs: string[] = [];
  private readonly waiters = new Set<() => void>();
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  /** @internal use startSerfAgent */
  constructor(
    readonly child: ChildProcess,
    readonly node: string,
    readonly bindPort: number,
    readonly rpcPort: number,
  ) {
    const feed = (stream: NodeJS.ReadableStream | null): void => {
      let buf = '';
      stream?.on('data', (d: Buffer) => {
        buf += d.toString();
        let i: number;
        while ((i = buf.indexOf('\n')) >= 0) {
          this.logs.push(buf.slice(0, i).trimEnd());
          buf = buf.slice(i + 1);
        }
        for (const w of this.waiters) w();
      });
    };
    feed(child.stdout);
    feed(child.stderr);
    this.exited = new Promise((resolve) => child.once('close', (code, signal) => resolve({ code, signal })));
    void this.exited.then(() => {
      for (const w of this.waiters) w();
    });
  }

  /** Gossip address `127.0.0.1:port`. */
  get addr(): string {
    return `127.0.0.1:${this.bindPort}`;
  }

  get rpcAddr(): string {
    return `127.0.0.1:${this.rpcPort}`;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Resolve with the first log line (from index `since`) matching `re`; reject on deadline or exit. */
  waitForLog(re: RegExp, timeoutMs = 10_000, since = 0): Promise<RegExpExecArray> {
    return new Promise((resolve, reject) => {
      let i = since;
      const check = (): void => {
        for (; i < this.logs.length; i++) {
          const m = re.exec(this.logs[i]!);
          if (m) {
            done();
            resolve(m);
            return;
          }
        }
        if (!this.running) {
          done();
          reject(new Error(`serf agent ${this.node} exited before logging ${re}${this.tail()}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`serf agent ${this.node} did not log ${re} within ${timeoutMs} ms${this.tail()}`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
      check();
    });
  }

  /** Run a serf CLI subcommand against this agent's RPC. */
  async cli(sub: string, args: readonly string[] = [], timeoutMs = 10_000): Promise<string> {
    const { stdout } = await execFileP(SERF_BIN, [sub, `-rpc-addr=${this.rpcAddr}`, ...args], { timeout: timeoutMs });
    return stdout;
  }

  /** `serf members -format=json` (optionally `-status=` filter). */
  async members(status?: string): Promise<SerfCliMember[]> {
    const out = await this.cli('members', ['-format=json', ...(status ? [`-status=${status}`] : [])]);
    const parsed = JSON.parse(out) as { members: SerfCliMember[] | null };
    return (parsed.members ?? []).map((m) => ({
      name: m.name,
      addr: m.addr,
      port: m.port,
      tags: m.tags ?? {},
      status: m.status,
      protocol: m.protocol,
    }));
  }

  /** Poll members() until `pred` holds (deadline `timeoutMs`); resolves with that member list. */
  async waitForMembers(pred: (ms: SerfCliMember[]) => boolean, timeoutMs = 10_000, pollMs = 100): Promise<SerfCliMember[]> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const last = await this.members();
      if (pred(last)) return last;
      if (Date.now() >= end) {
        throw new Error(`serf agent ${this.node}: members condition not met within ${timeoutMs} ms; last: ${JSON.stringify(last)}`);
      }
      await new Promise((r) => setTimeout(r, pollMs));
    }
  }

  /** `serf join addr...`; resolves with the number of nodes contacted. */
  async join(...addrs: string[]): Promise<number> {
    const out = await this.cli('join', addrs, 15_000);
    const m = /contacting (\d+) nodes/.exec(out);
    return m ? Number(m[1]) : 0;
  }

  /** `serf event name payload`. */
  async event(name: string, payload = '', coalesce = true): Promise<void> {
    await this.cli('event', [...(coalesce ? [] : ['-coalesce=false']), name, payload]);
  }

  /** `serf query -format=json name payload`. */
  async query(name: string, payload = '', opts: { timeoutMs?: number; nodes?: string[]; tags?: Record<string, string> } = {}): Promise<SerfQueryResult> {
    const args = ['-format=json', `-timeout=${opts.timeoutMs ?? 1000}ms`];
    for (const n of opts.nodes ?? []) args.push(`-node=${n}`);
    for (const [k, v] of Object.entries(opts.tags ?? {})) args.push(`-tag=${k}=${v}`);
    const out = await this.cli('query', [...args, name, payload], (opts.timeoutMs ?? 1000) + 10_000);
    const parsed = JSON.parse(out) as { Acks: string[] | null; Responses: Record<string, string> | null };
    return { acks: parsed.Acks ?? [], responses: parsed.Responses ?? {} };
  }

  /** Graceful leave: SIGINT, wait for the agent to exit (SIGKILL after `timeoutMs`). */
  async leave(timeoutMs = 15_000): Promise<void> {
    if (this.running) {
      this.child.kill('SIGINT');
      try {
        await deadline(this.exited, timeoutMs, `serf agent ${this.node} leave`);
      } catch (e) {
        await this.kill();
        throw e;
      }
    }
    await this.exited;
  }

  /** SIGKILL (a crash: no leave) and wait for exit. */
  async kill(): Promise<void> {
    if (this.running) this.child.kill('SIGKILL');
    await this.exited;
  }

  private tail(): string {
    return `; log tail:\n  ${this.logs.slice(-12).join('\n  ')}`;
  }
}

/** Start `serf agent` on 127.0.0.1 and wait until its RPC answers `serf members`. */
export async function startSerfAgent(opts: SerfAgentOptions): Promise<SerfAgent> {
  const bindPort = opts.bindPort || (await freePort(true));
  const rpcPort = opts.rpcPort || (await freePort(false));
  const args = ['agent', `-node=${opts.node}`, `-bind=127.0.0.1:${bindPort}`, `-rpc-addr=127.0.0.1:${rpcPort}`];
  for (const [k, v] of Object.entries(opts.tags ?? {})) args.push('-tag', `${k}=${v}`);
  if (opts.encryptKey) args.push(`-encrypt=${opts.encryptKey}`);
  if (opts.profile) args.push(`-profile=${opts.profile}`);
  if (opts.logLevel) args.push(`-log-level=${opts.logLevel}`);
  for (const h of opts.eventHandlers ?? []) args.push(`-event-handler=${h}`);
  args.push(...(opts.extraArgs ?? []));
  // setpriv (util-linux, Essential in Debian) execs serf with PR_SET_PDEATHSIG=KILL, so the agent
  // dies with this process even when it is killed by a signal and no 'exit' handler runs.
  const child = (await setprivAvailable())
    ? spawn(SETPRIV, ['--pdeathsig', 'KILL', '--', SERF_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn(SERF_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  track(child);
  const agent = new SerfAgent(child, opts.node, bindPort, rpcPort);
  const timeoutMs = opts.startTimeoutMs ?? 15_000;
  const end = Date.now() + timeoutMs;
  try {
    // Once it logs "agent running", RPC is up; poll `serf members` to be sure, within the deadline.
    await agent.waitForLog(/Serf agent running!/, timeoutMs);
    for (;;) {
      try {
        await agent.members();
        return agent;
      } catch (e) {
        if (!agent.running) throw new Error(`serf agent ${opts.node} exited: ${agent.logs.slice(-12).join('\n')}`, { cause: e });
        if (Date.now() >= end) throw e;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  } catch (e) {
    await agent.kill();
    throw e;
  }
}
