/**
 * Run the Shopify simulator on its own (after `npm run build`):
 *
 *   node dist/simulators/shopify/main.js --api-key KEY --api-secret SECRET \
 *     --shop acme-de.myshopify.com=shpat_acme[,shprt_acme] [--shop …] \
 *     [--port 4010] [--host 127.0.0.1] [--app-webhook-url http://127.0.0.1:3000/webhooks/shopify] \
 *     [--bucket 1000] [--restore-rate 50]
 *
 * Prints one JSON line `{"url": …}` when listening; SIGINT/SIGTERM stop it. Options only (no environment).
 */
import { Command, InvalidArgumentError } from 'commander';
import { startShopifySimulator } from './server';
import type { ShopOptions } from './store';

function positive(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError('not a non-negative number');
  return n;
}

function shop(value: string, previous: ShopOptions[]): ShopOptions[] {
  const match = /^([^=]+)=([^,]+)(?:,(.+))?$/.exec(value);
  if (match === null) throw new InvalidArgumentError('expected DOMAIN=ACCESS_TOKEN[,REFRESH_TOKEN]');
  return [...previous, { domain: match[1]!, accessToken: match[2]!, ...(match[3] ? { refreshToken: match[3] } : {}) }];
}

export async function main(argv: readonly string[]): Promise<void> {
  const program = new Command('shopify-simulator')
    .requiredOption('--api-key <key>', "the app's client id (SHOPIFY_API_KEY)")
    .requiredOption('--api-secret <secret>', "the app's client secret (SHOPIFY_API_SECRET): webhook HMAC key")
    .option('--shop <domain=token[,refresh]>', 'a shop and its Admin API token (repeatable)', shop, [] as ShopOptions[])
    .option('--port <port>', 'port (0 = any)', positive, 4010)
    .option('--host <host>', 'interface', '127.0.0.1')
    .option('--app-webhook-url <url>', 'where webhooks are POSTed')
    .option('--bucket <points>', 'leaky bucket size', positive, 1000)
    .option('--restore-rate <points>', 'points restored per second', positive, 50)
    .parse([...argv]);
  const options = program.opts<{ apiKey: string; apiSecret: string; shop: ShopOptions[]; port: number; host: string; appWebhookUrl?: string; bucket: number; restoreRate: number }>();
  const sim = await startShopifySimulator({
    port: options.port,
    host: options.host,
    apiKey: options.apiKey,
    apiSecret: options.apiSecret,
    appWebhookUrl: options.appWebhookUrl ?? null,
    shops: options.shop,
    throttle: { maximumAvailable: options.bucket, restoreRate: options.restoreRate },
  });
  process.stdout.write(`${JSON.stringify({ url: sim.url, appWebhookUrl: options.appWebhookUrl ?? null, shops: options.shop.map((s) => s.domain) })}\n`);
  const stop = () => {
    void sim.stop().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

if (require.main === module) {
  main(process.argv).catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
