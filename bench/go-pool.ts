/**
 * Go reference figures for a gossip pool: N hashicorp/memberlist 0.2.2 nodes (Debian's package)
 * in ONE process (test/interop/memberlist-peer in bench mode), on loopback. Measured by the Go
 * process itself (hashicorp-wire.md §5 timings unless overridden):
 *
 * - convergeMs: from the moment nodes 1..N-1 start joining node 0 (concurrently) until every
 *   node's event delegate has seen all N nodes alive.
 * - cpuMsPerNodePerSec: steady-state process CPU (getrusage user+sys) between two `stats` calls
 *   `steadyMs` apart, after `settleMs` of quiet following convergence, per node per second.
 * - rssBytesPerNode: VmRSS at the second `stats` divided by N (includes the Go runtime's fixed
 *   share; `rssBytesTotal` and `rssBytesBeforeJoin` are returned too).
 * - failDetectMs: from a node's Shutdown without leave (a crash) until every other node's event
 *   delegate reported it dead.
 *
 * It is meant to be compared, in the same run, with meshfed's TS memberlist (the lead's
 * benchmark imports runGoPool).
 *
 *   node dist/bench/go-pool.js [nodes=48] [lan|wan|local]      # prints the Go figures
 */
import { fileURLToPath } from 'node:url';
import { startMemberlistPeer, type MemberlistProfile } from '../test/interop/memberlist-peer.js';

export interface GoPoolOptions {
  nodes: number;
  profile: MemberlistProfile;
  probeIntervalMs?: number;
  probeTimeoutMs?: number;
  gossipIntervalMs?: number;
  pushPullIntervalMs?: number;
  suspicionMult?: number;
  /** Quiet time after convergence before the first stats sample (default 2000). */
  settleMs?: number;
  /** Steady-state CPU window (default 10 000). */
  steadyMs?: number;
  /** Deadline for convergence (default 60 000) and for failure detection (default 120 000). */
  convergeTimeoutMs?: number;
  failTimeoutMs?: number;
  /** Local node to kill (default the last one). */
  killIndex?: number;
}

export interface GoPoolResult {
  nodes: number;
  convergeMs: number;
  failDetectMs: number;
  cpuMsPerNodePerSec: number;
  rssBytesPerNode: number;
  rssBytesTotal: number;
  rssBytesBeforeJoin: number;
  /** Measured steady window (Go process clock), ms. */
  steadyWindowMs: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function runGoPool(o: GoPoolOptions): Promise<GoPoolResult> {
  const peer = await startMemberlistPeer({
    name: 'gopool',
    nodes: o.nodes,
    profile: o.profile,
    bench: true,
    ...(o.probeIntervalMs !== undefined && { probeIntervalMs: o.probeIntervalMs }),
    ...(o.probeTimeoutMs !== undefined && { probeTimeoutMs: o.probeTimeoutMs }),
    ...(o.gossipIntervalMs !== undefined && { gossipIntervalMs: o.gossipIntervalMs }),
    ...(o.pushPullIntervalMs !== undefined && { pushPullIntervalMs: o.pushPullIntervalMs }),
    ...(o.suspicionMult !== undefined && { suspicionMult: o.suspicionMult }),
    readyTimeoutMs: 120_000,
  });
  try {
    const before = await peer.stats();
    const since = peer.events.mark();
    await peer.request({ cmd: 'join-all' }, o.convergeTimeoutMs ?? 60_000);
    const conv = await peer.events.waitFor('converged', undefined, o.convergeTimeoutMs ?? 60_000, since);
    // A fixed pause here is the measurement itself (a steady-state window), not a wait for an event.
    await sleep(o.settleMs ?? 2000);
    const s1 = await peer.stats();
    await sleep(o.steadyMs ?? 10_000);
    const s2 = await peer.stats();
    const killIndex = o.killIndex ?? o.nodes - 1;
    const killed = peer.nodes[killIndex]!.name;
    const since2 = peer.events.mark();
    await peer.request({ cmd: 'kill', node: killIndex });
    const fd = await peer.events.waitFor('failed-detected', (e) => e.name === killed, o.failTimeoutMs ?? 120_000, since2);
    const window = s2.tMs - s1.tMs;
    return {
      nodes: o.nodes,
      convergeMs: Number(conv.ms),
      failDetectMs: Number(fd.ms),
      cpuMsPerNodePerSec: (s2.cpuMs - s1.cpuMs) / o.nodes / (window / 1000),
      rssBytesPerNode: s2.rssBytes / o.nodes,
      rssBytesTotal: s2.rssBytes,
      rssBytesBeforeJoin: before.rssBytes,
      steadyWindowMs: window,
    };
  } finally {
    await peer.stop();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const nodes = Number(process.argv[2] ?? 48);
  const profile = (process.argv[3] ?? 'lan') as MemberlistProfile;
  const r = await runGoPool({ nodes, profile });
  process.stdout.write(
    `Go memberlist 0.2.2 pool, ${nodes} nodes in one process, ${profile} timings:\n` +
      `  converge ${r.convergeMs.toFixed(0)} ms, failure detection ${r.failDetectMs.toFixed(0)} ms\n` +
      `  steady CPU ${r.cpuMsPerNodePerSec.toFixed(3)} ms per node per s (window ${r.steadyWindowMs.toFixed(0)} ms)\n` +
      `  RSS ${(r.rssBytesPerNode / 1024).toFixed(0)} KiB per node (${(r.rssBytesTotal / 1048576).toFixed(1)} MiB total, ${(r.rssBytesBeforeJoin / 1048576).toFixed(1)} MiB before join)\n`,
  );
}
