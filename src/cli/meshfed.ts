#!/usr/bin/env node
/** Entry point of the `meshfed` command: wires process signals and streams to {@link main}. */
import { main } from './main.js';

const ctl = new AbortController();
let signals = 0;
const onSignal = (sig: NodeJS.Signals): void => {
  signals++;
  if (signals > 1) {
    process.stderr.write(`received ${sig} again: exiting without a clean stop\n`);
    process.exit(1);
  }
  ctl.abort(new Error(`received ${sig}`));
};
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);
const code = await main(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, cwd: process.cwd(), shutdownSignal: ctl.signal });
process.off('SIGINT', onSignal);
process.off('SIGTERM', onSignal);
process.exitCode = code;
