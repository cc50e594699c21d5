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
}

export interface Database {
  tenant: TenantTable;
  subject: SubjectTable;
  subject_identity: SubjectIdentityTable;
  consent_event: ConsentEventTable;
  ledger_head: LedgerHeadTable;
  ledger_delivery: LedgerDeliveryTable;
  consent_current: ConsentCurrentTable;
}
