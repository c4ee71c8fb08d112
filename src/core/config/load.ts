/**
 * Reading and merging configuration files. Merge rules follow Consul: later sources override
 * scalars, objects merge key by key, lists append.
 */
import { readFile } from 'node:fs/promises';
import { ErrorCode, MeshfedError, errorMessage } from '../errors.js';
import type { RawConfig } from './schema.js';

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Merge `b` over `a`: scalars replaced, objects merged recursively, lists concatenated. */
export function mergeConfig(a: RawConfig, b: RawConfig): RawConfig {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const prev = out[k];
    if (isPlainObject(prev) && isPlainObject(v)) out[k] = mergeConfig(prev, v);
    else if (Array.isArray(prev) && Array.isArray(v)) out[k] = [...(prev as unknown[]), ...(v as unknown[])];
    else out[k] = v;
  }
  return out;
}

function lineCol(text: string, message: string): string {
  const m = /position (\d+)/.exec(message);
  if (!m) return '';
  const pos = Number(m[1]);
  const before = text.slice(0, pos);
  const line = before.split('\n').length;
  const col = pos - before.lastIndexOf('\n');
  return ` at line ${line}, column ${col}`;
}

/** Read one JSON config file; errors name the file and say what to fix. */
export async function readConfigFile(path: string, signal?: AbortSignal): Promise<RawConfig> {
  let text: string;
  try {
    text = await readFile(path, { encoding: 'utf8', signal });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file (check the -config-file path)' : code === 'EACCES' ? 'permission denied' : errorMessage(err);
    throw new MeshfedError(ErrorCode.CONFIG_FILE, `config file "${path}": ${why}`, { cause: err });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new MeshfedError(ErrorCode.CONFIG_FILE, `config file "${path}": invalid JSON${lineCol(text, errorMessage(err))}: ${errorMessage(err)}`, { cause: err });
  }
  if (!isPlainObject(parsed)) {
    throw new MeshfedError(ErrorCode.CONFIG_FILE, `config file "${path}": the top level must be a JSON object such as {"datacenter": "dc1"}`);
  }
  return parsed;
}

/** Read and merge config files in order. */
export async function loadConfigFiles(paths: readonly string[], signal?: AbortSignal): Promise<RawConfig> {
  let merged: RawConfig = {};
  for (const p of paths) merged = mergeConfig(merged, await readConfigFile(p, signal));
  return merged;
}
