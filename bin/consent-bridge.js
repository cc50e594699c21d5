#!/usr/bin/env node
'use strict';
// Thin launcher: the CLI is compiled to dist/ by `npm run build` (run by `npm ci` through `prepare`).
// `sandbox` starts the app with the platform simulators: its own entry, so the core never imports them.
const run = process.argv[2] === 'sandbox' ? require('../dist/sandbox/main.js').main(process.argv.slice(2)) : require('../dist/src/cli.js').runCli(process.argv);
run.then(
  (code) => { process.exitCode = code; },
  (err) => { console.error(err); process.exitCode = 1; },
);
