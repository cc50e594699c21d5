/** What the webhook routes need from the composition root (style.md §12: every side effect injected). */
import type { AppConfig } from '../../src/config/config';
import type { InboxWriter } from '../../src/inbox/inbox';
import type { Metrics } from '../../src/metrics/metrics';
import type { Clock, IdGenerator, Logger } from '../../src/ports';
import type { Store } from '../../src/store/database';
import type { TenantLookup } from '../../src/tenants/tenants';

export interface WebhookDeps {
  readonly config: Pick<AppConfig, 'features' | 'shopify' | 'hubspot' | 'appUrl' | 'webhookBodyLimitBytes'>;
  readonly store: Store;
  readonly clock: Clock;
  readonly ids: IdGenerator;
  readonly logger: Logger;
  /** Tenant by shop domain or portal id (cached: see CachedTenantLookup). */
  readonly tenants: TenantLookup;
  /** Stores each request's deliveries (group commit: one durable commit for many concurrent requests). */
  readonly inbox: InboxWriter;
  /** Called after a request stored new deliveries (wakes the in-process worker). */
  readonly onAccepted?: () => void;
  /** Webhooks received / rejected and the workflow action's gate decisions (default: not counted). */
  readonly metrics?: Metrics;
}
