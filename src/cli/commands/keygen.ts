/** `meshfed keygen`: a new random gossip encryption key (32 bytes, base64), for `encrypt`. */
import { randomBytes } from 'node:crypto';
import type { Command } from '../io.js';

/** `meshfed keygen`. */
export const keygenCommand: Command = {
  name: 'keygen',
  synopsis: 'Generate a gossip encryption key',
  run(args, io) {
    if (args.includes('-h') || args.includes('-help') || args.includes('--help')) {
      io.stdout.write('Usage: meshfed keygen\n\n  Prints a new random 32-byte AES-256 gossip key, base64, for the `encrypt` setting or -encrypt.\n');
      return Promise.resolve(0);
    }
    io.stdout.write(`${randomBytes(32).toString('base64')}\n`);
    return Promise.resolve(0);
  },
};
