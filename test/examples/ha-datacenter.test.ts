import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { ETCD_BIN } from '../../src/testing/index.js';

const MAIN = resolve(fileURLToPath(import.meta.url), '../../../examples/ha-datacenter/main.js');

test(
  'examples/ha-datacenter runs: three servers on a 3-member etcd, one leader, forwarded write, etcd member killed, failover, writes continue',
  { skip: existsSync(ETCD_BIN) ? false : `etcd not installed at ${ETCD_BIN} (scripts/setup.sh)` },
  async () => {
    const { stdout } = await promisify(execFile)(process.execPath, [MAIN, '--ephemeral', '--once', '--kill-etcd-member'], { timeout: 90_000 }).catch((err: unknown) => {
      const e = err as { code?: unknown; signal?: unknown; stdout?: string; stderr?: string };
      throw new Error(`example failed (exit ${String(e.code)}, signal ${String(e.signal)})\n--- stdout\n${e.stdout ?? ''}\n--- stderr\n${e.stderr ?? ''}`);
    });
    const expect = (re: RegExp): RegExpMatchArray => {
      const m = stdout.match(re);
      assert.ok(m, `missing ${re} in:\n${stdout}`);
      return m;
    };
    expect(/ok {2}etcd up: 3 members/);
    for (const s of ['s1', 's2', 's3']) expect(new RegExp(`ok {2}server ${s} up: http http://127\\.0\\.0\\.1:\\d+`));
    expect(/ok {2}LAN pool dc1: s1 s2 s3/);
    const first = expect(/ok {2}leader elected: (s[123]) .*agrees on s1 s2 s3/)[1];
    expect(/ok {2}peers: s1=\S+ s2=\S+ s3=\S+/);
    const via = expect(/ok {2}registered web on web1 through follower (s[123])/)[1];
    assert.notEqual(via, first, 'the write did not go through a follower');
    expect(/ok {2}service web visible on s1 s2 s3/);
    expect(/ok {2}write with one etcd member down: web2 registered/);
    // losing etcd's raft leader may move meshfed's leadership: the leader stopped is the one of that moment
    const stopped = expect(/\.\. {2}stopping the leader (s[123])/)[1];
    if (stopped !== first) expect(new RegExp(`ok {2}leadership moved while etcd recovered: the leader is now ${stopped}`));
    expect(new RegExp(`ok {2}stopped the leader ${stopped} \\(agent\\.stop\\(\\) took \\d+ ms\\)`));
    const next = expect(/ok {2}new leader: (s[123]) .*agrees on (s[123]) (s[123])$/m)[1];
    assert.notEqual(next, stopped, 'the stopped leader is still reported as leader');
    expect(/ok {2}write after failover: web3 registered .*visible on s[123] s[123]$/m);
    expect(new RegExp(`ok {2}${stopped} restarted .* caught up as a follower; the leader is`));
    expect(new RegExp(`ok {2}${stopped} re-registered as service consul`));
    expect(/web {6}web1@10\.0\.0\.5:80, web2@10\.0\.0\.6:80, web3@10\.0\.0\.7:80/);
    assert.match(stdout, /ha-datacenter example done/);
  },
);
