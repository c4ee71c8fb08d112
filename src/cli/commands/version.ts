import { RPC_MAX_TYPE_VALUE } from '../../core/protocol.js';
import { MESHFED_VERSION } from '../../core/version.js';
import type { Command } from '../io.js';

/** `meshfed version`. */
export const versionCommand: Command = {
  name: 'version',
  synopsis: 'Print the meshfed version',
  async run(args, io) {
    if (args.includes('-h') || args.includes('-help') || args.includes('--help')) {
      io.stdout.write('Usage: meshfed version\n\n  Prints the meshfed version and the protocol versions it speaks.\n');
      return 0;
    }
    io.stdout.write(`meshfed v${MESHFED_VERSION}\nRPC type bytes up to ${RPC_MAX_TYPE_VALUE}; gossip protocol 2 (understands 1..5); Node.js ${process.version}\n`);
    return 0;
  },
};
