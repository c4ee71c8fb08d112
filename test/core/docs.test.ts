import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CORE_SCHEMA, MESHFED_VERSION, type SchemaNode } from '../../src/index.js';

const ROOT = resolve(fileURLToPath(import.meta.url), '../../../..');

function keys(schema: Readonly<Record<string, SchemaNode>>, prefix = ''): string[] {
  return Object.entries(schema).flatMap(([k, v]) => (v.kind === 'object' ? keys(v.fields, `${prefix}${k}.`) : [`${prefix}${k}`]));
}

test('the README configuration reference mentions every core key', async () => {
  const readme = await readFile(resolve(ROOT, 'README.md'), 'utf8');
  const missing = keys(CORE_SCHEMA).filter((k) => {
    const leaf = k.split('.').pop() as string;
    return !readme.includes(`\`${k}\``) && !readme.includes(leaf);
  });
  assert.deepEqual(missing, []);
});

test('MESHFED_VERSION matches package.json', async () => {
  const pkg = JSON.parse(await readFile(resolve(ROOT, 'package.json'), 'utf8')) as { version: string };
  assert.equal(MESHFED_VERSION, pkg.version);
});

test('README starts with the two commands, and .ci/run runs the test one', async () => {
  const readme = await readFile(resolve(ROOT, 'README.md'), 'utf8');
  const ci = await readFile(resolve(ROOT, '.ci/run'), 'utf8');
  assert.match(readme, /bash scripts\/demo\.sh/);
  assert.match(readme, /bash scripts\/test\.sh/);
  assert.match(ci, /scripts\/test\.sh/);
});
