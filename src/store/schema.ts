/**
 * Row types of every table (Kysely `Database`). Timestamps are ISO-8601 UTC text on both databases (see
 * domain/time.ts); JSON columns are text holding canonical JSON.
 */
export interface TenantTable {
  id: string;
  shop_domain: string;
  hubspot_portal_id: string;
  /** `active` or `uninstalled`. */
  status: string;
  /** Tenant settings (JSON), validated against manifest.json `settings` schema. */
  settings: string;
  /** AES-256-GCM sealed JSON `{accessToken, refreshToken?, expiresAt?}` (crypto/secret-box.ts), or null. */
  shopify_credentials: string | null;
  hubspot_credentials: string | null;
  created_at: string;
  updated_at: string;
}

export interface SubjectTable {
  id: string;
  tenant_id: string;
  created_at: string;
}

export interface SubjectIdentityTable {
  tenant_id: string;
  /** `email`, `phone`, `shopify_customer`, `hubspot_contact`. */
  kind: string;
  /** Normalised value (lower-case email, E.164-ish phone, numeric id). */
  value: string;
  subject_id: string;
  created_at: string;
}

export interface ConsentEventTable {
  tenant_id: string;
  /** Position in the tenant's hash chain, 1-based and gapless. */
  seq: number;
  id: string;
  subject_id: string;
  channel: string;
  purpose: string;
  kind: string;
  basis: string | null;
  occurred_at: string;
  received_at: string;
  source: string;
  source_delivery_id: string | null;
  evidence: string;
  prev_hash: string;
  hash: string;
}

/** The tail of each tenant's chain; locked by every append so concurrent workers never fork it. */
export interface LedgerHeadTable {
  tenant_id: string;
  seq: number;
  hash: string;
  updated_at: string;
  /** Last seq of the gate's change feed (`subject_change`); bumped under the same lock as the chain. */
  change_seq?: number;
}

/** One subject whose decision inputs changed, under the tenant's change seq (migration 0007). */
export interface SubjectChangeTable {
  tenant_id: string;
  seq: number;
  subject_id: string;
  created_at: string;
}

/** One row per source delivery appended: the insert-first idempotency point of the ledger. */
export interface LedgerDeliveryTable {
  tenant_id: string;
  delivery_key: string;
  first_seq: number | null;
  event_count: number;
  created_at: string;
}

export interface ConsentCurrentTable {
  tenant_id: string;
  subject_id: string;
  channel: string;
  purpose: string;
  status: string;
  basis: string | null;
  /** The full ConsentState as canonical JSON. */
  state: string;
  last_event_at: string | null;
  /** Highest ledger seq folded into this row. */
  last_seq: number;
  /** `FOLD_VERSION` of the fold that computed the row; null for rows written before versions were recorded. */
  fold_version: number | null;
}

/**
 * One verified webhook delivery (each event of a HubSpot batch is its own row), stored before the 200 and
 * processed afterwards by the worker. UNIQUE (platform, delivery_key) is the insert-first idempotency point.
 */
export interface InboxTable {
  id: string;
  tenant_id: string;
  /** `shopify` or `hubspot`. */
  platform: string;
  /** `X-Shopify-Webhook-Id`, or HubSpot `eventId:subscriptionId:portalId:objectId:occurredAt`. */
  delivery_key: string;
  /** Shopify topic (`customers/update`) or HubSpot subscriptionType (`contact.merge`). */
  topic: string;
  /** The delivery's own JSON (one HubSpot event, or the Shopify body), as received. Personal data: pruned. */
  payload: string;
  /** Delivery metadata that is not in the body (API version, triggered-at, event id), JSON. */
  meta: string;
  /** `pending`, `done`, `dead`. */
  status: string;
  attempts: number;
  /** Not before this time (backoff after a failure). */
  run_at: string;
  last_error: string | null;
  /** What processing did (`appended 1 event`, `echo`, …): shown by `inbox dlq` and in logs. */
  outcome: string | null;
  received_at: string;
  processed_at: string | null;
}

/**
 * Compliance requests (Shopify customers/data_request, customers/redact, shop/redact; HubSpot
 * contact.privacyDeletion), kept durably even for unknown tenants, and never pruned by inbox retention.
 */
export interface PrivacyRequestTable {
  id: string;
  /** Null when no tenant matched the shop or portal. */
  tenant_id: string | null;
  platform: string;
  /** Shop domain or portal id the delivery named. */
  account: string;
  delivery_key: string;
  topic: string;
  payload: string;
  /** `open` until acted upon. */
  status: string;
  received_at: string;
}

/** Deliveries for unknown or uninstalled tenants, and of topics not handled: counted, never stored. */
export interface UnroutedDeliveryTable {
  platform: string;
  account: string;
  topic: string;
  /** `unknown_tenant`, `tenant_uninstalled`, `unhandled_topic`. */
  reason: string;
  count: number;
  first_seen_at: string;
  last_seen_at: string;
}

/** A paid order (Shopify orders/paid): the fact soft opt-in rules start from. */
export interface PurchaseTable {
  tenant_id: string;
  order_id: string;
  subject_id: string;
  /** When it was paid (order `updated_at` of the orders/paid delivery, else `processed_at`/`created_at`). */
  paid_at: string;
  ordered_at: string;
  country: string | null;
  buyer_accepts_marketing: number | null;
  /** JSON `[{productId, variantId, quantity}]`. */
  line_items: string;
  /** JSON of note attributes (objection checkbox, issue 4). */
  attributes: string;
  created_at: string;
  /** Soft opt-in evaluation (migration 0008): `pending` → `done` | `failed`. */
  soi_status?: 'pending' | 'done' | 'failed';
  soi_attempts?: number;
  /** Earliest time of the next attempt; null = now. */
  soi_next_at?: string | null;
  /** JSON outcome per channel (src/soft-opt-in/evaluate.ts `PurchaseOutcome`). */
  soi_outcome?: string | null;
}

/** What the platforms say about a person besides consent (country, business hints). Newest source time wins. */
/** A tenant's gate API key: only its SHA-256 is stored (keys are 256-bit random, so a fast hash suffices). */
export interface ApiKeyTable {
  id: string;
  tenant_id: string;
  /** First characters of the key, to recognise it in `tenant api-key list`. */
  prefix: string;
  hash: string;
  label: string;
  created_at: string;
  revoked_at: string | null;
}

export interface SubjectProfileTable {
  tenant_id: string;
  subject_id: string;
  country: string | null;
  company: string | null;
  source_updated_at: string;
  updated_at: string;
  /** JSON array of the customer's tags; null until a source carried them (migration 0014). */
  tags?: string | null;
  /** Source time of `tags` (the newer one wins, independently of the address fields). */
  tags_updated_at?: string | null;
}

/** A subject united into another (HubSpot contact.merge, or one delivery naming identities of two subjects). */
export interface SubjectMergeTable {
  tenant_id: string;
  merged_subject_id: string;
  into_subject_id: string;
  reason: string;
  merged_at: string;
}

/**
 * The answer given to one HubSpot custom workflow action execution (`POST /hubspot/actions/check-consent`),
 * kept so a retried `callbackId` gets the same answer (migration 0005).
 */
export interface WorkflowActionCallTable {
  tenant_id: string;
  /** HubSpot's `callbackId` of the execution. */
  callback_id: string;
  /** SHA-256 of what the answer depends on (contact, channel, purpose, categories): a reused id with other inputs is refused. */
  request_fingerprint: string;
  /** The response body as sent (JSON `{outputFields:{…}}`). */
  answer: string;
  created_at: string;
}

/**
 * Cached product facts for similarity (src/catalog/cached-catalog.ts, migration 0006). A row written from a
 * products/* webhook has only the REST facts and is `stale` until the next lookup refetches taxonomy and
 * collections through GraphQL. Newest `source_updated_at` wins.
 */
export interface ProductTable {
  tenant_id: string;
  /** Numeric Shopify product id. */
  product_id: string;
  product_type: string | null;
  vendor: string | null;
  /** JSON array of tags. */
  tags: string;
  /** Standard taxonomy category id (`aa-1-2`), null when none or not yet fetched. */
  taxonomy_category_id: string | null;
  taxonomy_category_name: string | null;
  /** JSON `[{id, handle}]`; null until fetched through GraphQL. */
  collections: string | null;
  /** The product's own `updated_at`/`updatedAt`, ISO-8601 UTC. */
  source_updated_at: string | null;
  /** When the facts were last read through GraphQL; null when only a webhook wrote the row. */
  fetched_at: string | null;
  /** 1 = refetch on the next lookup (a webhook changed facts the row cannot complete). */
  stale: number;
  updated_at: string;
}

/**
 * One write owed to a platform (issue 5 §1), enqueued in the same transaction as the change that causes it and
 * delivered by the outbox dispatcher (src/outbox/dispatcher.ts). UNIQUE (tenant_id, idempotency_key) is the
 * insert-first idempotency point: enqueueing the same write again adds nothing (migration 0009).
 */
export interface OutboxTable {
  id: string;
  tenant_id: string;
  /** `hubspot` or `shopify`. */
  platform: string;
  /** What to do (`contact_properties`, `subscription`, `customer_consent`, …): picks the handler. */
  operation: string;
  idempotency_key: string;
  subject_id: string | null;
  /** The write's JSON (personal data: done rows are pruned). */
  payload: string;
  /** Ledger seq of the event that caused the write, or null. */
  source_seq: number | null;
  /** `pending`, `done`, `dead`. */
  status: string;
  /** Failed attempts so far. */
  attempts: number;
  /** Not before this time: backoff after a failure, or the end of the lease while claimed. */
  run_at: string;
  /** Lease of the dispatcher that claimed the row (also its fencing token); null when not claimed. */
  claimed_until: string | null;
  last_error: string | null;
  created_at: string;
  updated_at: string;
  done_at: string | null;
  /** Done rows: what the platform kept instead of the write, when it said so (`ItemOutcome.note`). */
  note: string | null;
}

/** A platform write of ours, by fingerprint (migration 0011): inbound echoes of it are dropped. */
export interface SyncWriteTable {
  tenant_id: string;
  fingerprint: string;
  written_at: string;
}

/**
 * Where a tenant's long-running sync work stands (migration 0012): the reconciliation poll's position in HubSpot's
 * contact history (`reconcile:hubspot`) and the backfill's last recorded Shopify customer (`backfill:shopify`).
 * `value` is JSON owned by the job that writes it (src/sync/reconcile.ts, backfill.ts); `updated_at` is also the
 * compare-and-set token with which one process at a time claims the work.
 */
export interface SyncCursorTable {
  tenant_id: string;
  name: string;
  value: string;
  updated_at: string;
}

/**
 * Units admitted per rate-limit key and fixed sub-window of its rolling window (migration 0010,
 * src/sync/rate-limit.ts `DatabaseRateLimiter`).
 */
export interface RateLimitSlotTable {
  /** The limit's key (`hubspot:<portal>:10s`); one key always has the same max and window. */
  key: string;
  /** Bucket start, epoch milliseconds (a multiple of the bucket length). */
  window_start: number;
  used: number;
}

export interface Database {
  rate_limit_slot: RateLimitSlotTable;
  product: ProductTable;
  api_key: ApiKeyTable;
  workflow_action_call: WorkflowActionCallTable;
  inbox: InboxTable;
  outbox: OutboxTable;
  privacy_request: PrivacyRequestTable;
  unrouted_delivery: UnroutedDeliveryTable;
  purchase: PurchaseTable;
  subject_profile: SubjectProfileTable;
  subject_merge: SubjectMergeTable;
  tenant: TenantTable;
  subject: SubjectTable;
  subject_identity: SubjectIdentityTable;
  consent_event: ConsentEventTable;
  ledger_head: LedgerHeadTable;
  subject_change: SubjectChangeTable;
  sync_write: SyncWriteTable;
  sync_cursor: SyncCursorTable;
  ledger_delivery: LedgerDeliveryTable;
  consent_current: ConsentCurrentTable;
}
