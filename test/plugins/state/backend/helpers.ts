/** Shared helpers of the embedded backend tests: temp directories and command builders. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MessageType, type Command } from '../../../../src/plugins/state/store/index.js';

/** A fresh temp directory and a function that removes it. */
export function tempDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'meshfed-backend-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A register command for node `node` (address 10.0.0.1), with optional service `svc`. */
export function register(node: string, svc?: string, meta?: Record<string, string>): Command {
  return {
    Type: MessageType.Register,
    Body: { Node: node, Address: '10.0.0.1', ...(meta ? { NodeMeta: meta } : {}), ...(svc ? { Service: { Service: svc, Port: 8080 } } : {}) },
  };
}

/** A deregister command for node `node`. */
export const deregister = (node: string): Command => ({ Type: MessageType.Deregister, Body: { Node: node } });
