/**
 * The @shopify/shopify-api 13.x instance the Shopify connectors share (shopify.md §4.1). Built once in the
 * composition root; the connectors only use `clients.Graphql`.
 *
 * The node adapter import sets the library's fetch to `globalThis.fetch` (shopify.md §4.7): the library has no
 * per-client fetch option, so tests intercept at the HTTP boundary with nock ≥ 14 (style.md §19).
 */
import { ApiVersion, LogSeverity, shopifyApi, type Shopify } from '@shopify/shopify-api';
import { manifest } from '../../src/config/manifest';
import type { Logger } from '../../src/ports';

// The node adapter, for its side effect. `require`, not `import`: tsconfig's `moduleResolution: node` ignores the
// package's `exports` map and would type-check the package's shipped TypeScript sources (which fail our strict
// options) instead of its declarations; Node itself resolves the subpath through `exports` either way.
// eslint-disable-next-line @typescript-eslint/no-require-imports
require('@shopify/shopify-api/adapters/node');

function toApiVersion(value: string): ApiVersion {
  const known = Object.values(ApiVersion) as string[];
  if (!known.includes(value)) throw new Error(`manifest.json shopify.apiVersion ${value} is not an ApiVersion of @shopify/shopify-api (${known.join(', ')})`);
  return value as ApiVersion;
}

/**
 * The Admin API version of every call: manifest.json `shopify.apiVersion`, the version the app's webhook
 * payloads are serialised with (shopify.md §5), so REST webhook bodies and GraphQL reads describe the same schema.
 */
export const SHOPIFY_API_VERSION: ApiVersion = toApiVersion(manifest.shopify.apiVersion);

export interface ShopifyAdminApiConfig {
  /** SHOPIFY_API_KEY (client id). */
  readonly apiKey: string;
  /** SHOPIFY_API_SECRET (client secret). */
  readonly apiSecretKey: string;
  /** APP_URL: the library wants the app's host name even when only its clients are used (lib/config.ts). */
  readonly appUrl: string;
  readonly logger: Logger;
}

export function createShopifyAdminApi(config: ShopifyAdminApiConfig): Shopify {
  const url = new URL(config.appUrl);
  const log = config.logger.child({ component: 'shopify-api' });
  return shopifyApi({
    apiKey: config.apiKey,
    apiSecretKey: config.apiSecretKey,
    hostName: url.host,
    hostScheme: url.protocol === 'http:' ? 'http' : 'https',
    apiVersion: SHOPIFY_API_VERSION,
    isEmbeddedApp: false,
    scopes: manifest.shopify.scopes,
    // The library logs to the console by default; route its warnings and errors through ours (which masks PII),
    // never its HTTP request logs (they carry request bodies).
    logger: {
      level: LogSeverity.Warning,
      httpRequests: false,
      log: (severity, message) => (severity === LogSeverity.Error ? log.error({}, message) : log.warn({}, message)),
    },
  });
}
