/**
 * Test helper: write bytes the way shared/spec/hashicorp-wire.md §9 does, hex with quoted ASCII
 * (`82 a3"Seq" 00`), so golden vectors can be pasted from the spec.
 */
export function wire(text: string): Uint8Array {
  const out: number[] = [];
  const re = /"([^"]*)"|([0-9a-fA-F]+)|(\s+)|(.)/g;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    if (m[1] !== undefined) for (const b of Buffer.from(m[1], 'utf8')) out.push(b);
    else if (m[2] !== undefined) {
      if (m[2].length % 2) throw new Error(`odd hex run ${m[2]}`);
      for (const b of Buffer.from(m[2], 'hex')) out.push(b);
    } else if (m[4] !== undefined) throw new Error(`unexpected ${JSON.stringify(m[4])} in wire notation`);
  }
  return Uint8Array.from(out);
}

/** Lowercase hex of bytes. */
export function hex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}
