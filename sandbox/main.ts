/**
 * Entry of `consent-bridge sandbox` and `npm run demo` (the launcher bin/consent-bridge.js hands `sandbox` here, so
 * the core never imports the simulators).
 *
 *   sandbox            start the app and both simulators, print the URLs, run until Ctrl-C
 *   demo [--exit]      the same, then run the demo story and print its timeline; --exit ends with 0 when every
 *                      step passed (1 otherwise) instead of running on
 *
 * Options: --port N (the app's port), DATABASE_URL (default SQLite in a temporary directory), LOG_LEVEL.
 */
import { readEnvironment } from '../src/config/env';
import { startSandbox, type Sandbox } from './sandbox';
import { runStory } from './story';

function describe(sandbox: Sandbox): string {
  return [
    `consent-bridge sandbox (${sandbox.database})`,
    `  app              ${sandbox.appUrl}   (health: ${sandbox.appUrl}/healthz, metrics: ${sandbox.appUrl}/metrics)`,
    `  Shopify sim      ${sandbox.shopifyUrl}   (state: ${sandbox.shopifyUrl}/_sim/state; shop ${sandbox.shop})`,
    `  HubSpot sim      ${sandbox.hubspotUrl}   (state: ${sandbox.hubspotUrl}/_sim/state; portal ${sandbox.portalId})`,
    `  gate API key     ${sandbox.apiKey}`,
    '',
    'Try:',
    `  curl -s -X POST ${sandbox.appUrl}/api/v1/gate/check -H 'Authorization: Bearer ${sandbox.apiKey}' -H 'Content-Type: application/json' \\`,
    `    -d '{"channel":"email","categories":["footwear"],"recipients":[{"email":"anna@example.nl"}]}'`,
    `  curl -s -X POST ${sandbox.shopifyUrl}/_sim/shops/${sandbox.shop}/customers -H 'Content-Type: application/json' -d '{"email":"new@example.nl","country":"NL","acceptsEmailMarketing":true}'`,
    '  (the simulators\' READMEs list every /_sim action: simulators/shopify/README.md, simulators/hubspot/README.md)',
  ].join('\n');
}

function waitForSignal(): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      process.off('SIGINT', done);
      process.off('SIGTERM', done);
      resolve();
    };
    process.on('SIGINT', done);
    process.on('SIGTERM', done);
  });
}

export async function main(argv: readonly string[]): Promise<number> {
  const [command = 'sandbox', ...rest] = argv;
  if (command !== 'sandbox' && command !== 'demo') {
    process.stderr.write(`unknown command ${command}: use sandbox or demo\n`);
    return 2;
  }
  const portAt = rest.indexOf('--port');
  const port = portAt >= 0 ? Number(rest[portAt + 1]) : undefined;
  if (port !== undefined && !(Number.isInteger(port) && port > 0 && port < 65536)) {
    process.stderr.write('--port must be a port number\n');
    return 2;
  }
  const env = readEnvironment(process.cwd());
  const sandbox = await startSandbox({ ...(port ? { port } : {}), ...(env.DATABASE_URL ? { databaseUrl: env.DATABASE_URL } : {}), ...(env.LOG_LEVEL ? { logLevel: env.LOG_LEVEL } : {}) });
  try {
    process.stdout.write(`${describe(sandbox)}\n\n`);
    if (command === 'demo') {
      process.stdout.write('Demo story:\n');
      const results = await runStory(sandbox, { print: (line) => process.stdout.write(`${line}\n`) });
      const failed = results.filter((r) => !r.ok).length;
      process.stdout.write(`\n${results.length - failed} of ${results.length} steps passed\n`);
      if (rest.includes('--exit')) return failed === 0 ? 0 : 1;
    }
    process.stdout.write('Running; Ctrl-C stops.\n');
    await waitForSignal();
    return 0;
  } finally {
    await sandbox.stop();
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}
