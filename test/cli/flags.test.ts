import assert from 'node:assert/strict';
import { test } from 'node:test';
import { flagsToConfig } from '../../src/cli/commands/agent.js';
import { parseFlags, UsageError, type FlagSpec } from '../../src/cli/flags.js';

const specs: FlagSpec[] = [
  { name: 'dev', kind: 'bool', usage: '' },
  { name: 'node', kind: 'string', usage: '' },
  { name: 'http-port', kind: 'int', usage: '' },
  { name: 'retry-join', kind: 'list', usage: '' },
];

test('Go-style flags: -x v, -x=v, --x, bools, repeated lists, negative numbers', () => {
  const f = parseFlags(['-dev', '--node=n1', '-http-port', '-1', '-retry-join', 'a', '-retry-join=b', 'rest', '-dev'], specs);
  assert.equal(f.values.get('dev'), true);
  assert.equal(f.values.get('node'), 'n1');
  assert.equal(f.values.get('http-port'), -1);
  assert.deepEqual(f.values.get('retry-join'), ['a', 'b']);
  assert.deepEqual(f.positionals, ['rest', '-dev']);
  assert.equal(parseFlags(['-dev=false'], specs).values.get('dev'), false);
  assert.equal(parseFlags(['-h'], specs).help, true);
  assert.deepEqual(parseFlags(['--', '-dev'], specs).positionals, ['-dev']);
});

test('flag errors are usage errors with clear texts', () => {
  assert.throws(() => parseFlags(['-nope'], specs), (e: Error) => e instanceof UsageError && e.message === 'flag provided but not defined: -nope');
  assert.throws(() => parseFlags(['-node'], specs), /flag needs an argument: -node/);
  assert.throws(() => parseFlags(['-http-port', 'x'], specs), /expected an integer/);
  assert.throws(() => parseFlags(['-dev=maybe'], specs), /invalid boolean value/);
});

test('agent flags map to Consul configuration keys', () => {
  const c = flagsToConfig(
    new Map<string, unknown>([
      ['node', 's1'],
      ['datacenter', 'dc2'],
      ['http-port', 0],
      ['server-port', 9300],
      ['primary-gateway', ['gw:443']],
      ['server', true],
    ]),
  );
  assert.deepEqual(c, { node_name: 's1', datacenter: 'dc2', ports: { http: 0, server: 9300 }, primary_gateways: ['gw:443'], server: true });
});
