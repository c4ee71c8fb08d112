/** The @example of src/plugins/yamux/index.ts runs as written (transpiled, against dist). */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import ts from 'typescript';

const ROOT = resolve(fileURLToPath(import.meta.url), '../../../../..');

test('the yamux @example runs: echo over TCP, ping, close', async () => {
  const src = await readFile(join(ROOT, 'src/plugins/yamux/index.ts'), 'utf8');
  const m = /@example\s*\n\s*\* ```ts\n([\s\S]*?)\n\s*\* ```/.exec(src);
  assert.ok(m, 'index.ts has a ts @example');
  const code = (m[1] as string)
    .split('\n')
    .map((l) => l.replace(/^\s*\* ?/, ''))
    .join('\n')
    .replace("'meshfed/plugins/yamux'", JSON.stringify(pathToFileURL(join(ROOT, 'dist/src/plugins/yamux/index.js')).href));
  const js = ts.transpileModule(code, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText;
  const dir = await mkdtemp(join(tmpdir(), 'yamux-example-'));
  try {
    await writeFile(join(dir, 'example.mjs'), js);
    const { stdout } = await promisify(execFile)(process.execPath, [join(dir, 'example.mjs')], { timeout: 30_000 });
    assert.match(stdout, /^hello rtt ms \d+(\.\d+)?\n$/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
