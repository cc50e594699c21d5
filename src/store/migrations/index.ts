/**
 * Versioned migrations, applied at start (`serve`) and by `consent-bridge migrate`. Each is written once for
 * both dialects; the few dialect differences (bigint, triggers) are branches inside it. Never edit a shipped
 * migration: add a new one.
 */
import { Migrator, sql, type DatabaseIntrospector, type Kysely, type Migration, type MigrationProvider, type MigrationResultSet } from 'kysely';
import type { Dialect, Store } from '../database';

function initial(dialect: Dialect): Migration {
  const bigint = dialect === 'postgres' ? 'bigint' : 'integer';
  return {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('tenant')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('shop_domain', 'text', (c) => c.notNull().unique())
        .addColumn('hubspot_portal_id', 'text', (c) => c.notNull().unique())
        .addColumn('status', 'text', (c) => c.notNull().check(sql`status in ('active', 'uninstalled')`))
        .addColumn('settings', 'text', (c) => c.notNull())
        .addColumn('shopify_credentials', 'text')
        .addColumn('hubspot_credentials', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .execute();

      await db.schema
        .createTable('subject')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenant.id'))
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('subject_tenant_idx').on('subject').column('tenant_id').execute();

      await db.schema
        .createTable('subject_identity')
        .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenant.id'))
        .addColumn('kind', 'text', (c) => c.notNull().check(sql`kind in ('email', 'phone', 'shopify_customer', 'hubspot_contact')`))
        .addColumn('value', 'text', (c) => c.notNull())
        .addColumn('subject_id', 'text', (c) => c.notNull().references('subject.id'))
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('subject_identity_pk', ['tenant_id', 'kind', 'value'])
        .execute();
      await db.schema.createIndex('subject_identity_subject_idx').on('subject_identity').columns(['tenant_id', 'subject_id']).execute();

      await db.schema
        .createTable('consent_event')
        .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenant.id'))
        .addColumn('seq', bigint, (c) => c.notNull().check(sql`seq >= 1`))
        .addColumn('id', 'text', (c) => c.notNull().unique())
        .addColumn('subject_id', 'text', (c) => c.notNull().references('subject.id'))
        .addColumn('channel', 'text', (c) => c.notNull())
        .addColumn('purpose', 'text', (c) => c.notNull())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('basis', 'text')
        .addColumn('occurred_at', 'text', (c) => c.notNull())
        .addColumn('received_at', 'text', (c) => c.notNull())
        .addColumn('source', 'text', (c) => c.notNull())
        .addColumn('source_delivery_id', 'text')
        .addColumn('evidence', 'text', (c) => c.notNull())
        .addColumn('prev_hash', 'text', (c) => c.notNull())
        .addColumn('hash', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('consent_event_pk', ['tenant_id', 'seq'])
        .execute();
      await db.schema.createIndex('consent_event_subject_idx').on('consent_event').columns(['tenant_id', 'subject_id', 'channel']).execute();

      await db.schema
        .createTable('ledger_head')
        .addColumn('tenant_id', 'text', (c) => c.primaryKey().references('tenant.id'))
        .addColumn('seq', bigint, (c) => c.notNull())
        .addColumn('hash', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .execute();

      await db.schema
        .createTable('ledger_delivery')
        .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenant.id'))
        .addColumn('delivery_key', 'text', (c) => c.notNull())
        .addColumn('first_seq', bigint)
        .addColumn('event_count', 'integer', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('ledger_delivery_pk', ['tenant_id', 'delivery_key'])
        .execute();

      await db.schema
        .createTable('consent_current')
        .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenant.id'))
        .addColumn('subject_id', 'text', (c) => c.notNull().references('subject.id'))
        .addColumn('channel', 'text', (c) => c.notNull())
        .addColumn('purpose', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('basis', 'text')
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('last_event_at', 'text')
        .addColumn('last_seq', bigint, (c) => c.notNull())
        .addPrimaryKeyConstraint('consent_current_pk', ['tenant_id', 'subject_id', 'channel', 'purpose'])
        .execute();

      // The ledger is append-only: the code has no update/delete path, and the database refuses one too.
      if (dialect === 'postgres') {
        await sql`
          create function consent_event_append_only() returns trigger language plpgsql as $$
          begin
            raise exception 'consent_event is append-only: % refused', tg_op using errcode = 'insufficient_privilege';
          end $$`.execute(db);
        await sql`create trigger consent_event_no_update_delete before update or delete on consent_event
                  for each row execute function consent_event_append_only()`.execute(db);
        await sql`create trigger consent_event_no_truncate before truncate on consent_event
                  for each statement execute function consent_event_append_only()`.execute(db);
      } else {
        await sql`create trigger consent_event_no_update before update on consent_event
                  begin select raise(abort, 'consent_event is append-only: UPDATE refused'); end`.execute(db);
        await sql`create trigger consent_event_no_delete before delete on consent_event
                  begin select raise(abort, 'consent_event is append-only: DELETE refused'); end`.execute(db);
      }
    },
  };
}

/** Issue 3: the webhook inbox and what the worker derives from deliveries besides ledger events. */
function inbox(dialect: Dialect): Migration {
  const bigint = dialect === 'postgres' ? 'bigint' : 'integer';
  return {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('inbox')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenant.id'))
        .addColumn('platform', 'text', (c) => c.notNull().check(sql`platform in ('shopify', 'hubspot')`))
        .addColumn('delivery_key', 'text', (c) => c.notNull())
        .addColumn('topic', 'text', (c) => c.notNull())
        .addColumn('payload', 'text', (c) => c.notNull())
        .addColumn('meta', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull().check(sql`status in ('pending', 'done', 'dead')`))
        .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('run_at', 'text', (c) => c.notNull())
        .addColumn('last_error', 'text')
        .addColumn('outcome', 'text')
        .addColumn('received_at', 'text', (c) => c.notNull())
        .addColumn('processed_at', 'text')
        .addUniqueConstraint('inbox_delivery_uq', ['platform', 'delivery_key'])
        .execute();
      await db.schema.createIndex('inbox_claim_idx').on('inbox').columns(['status', 'run_at']).execute();
      await db.schema.createIndex('inbox_tenant_idx').on('inbox').columns(['tenant_id', 'status']).execute();

      await db.schema
        .createTable('privacy_request')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('tenant_id', 'text', (c) => c.references('tenant.id'))
        .addColumn('platform', 'text', (c) => c.notNull())
        .addColumn('account', 'text', (c) => c.notNull())
        .addColumn('delivery_key', 'text', (c) => c.notNull())
        .addColumn('topic', 'text', (c) => c.notNull())
        .addColumn('payload', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('received_at', 'text', (c) => c.notNull())
        .addUniqueConstraint('privacy_request_delivery_uq', ['platform', 'delivery_key'])
        .execute();

      await db.schema
        .createTable('unrouted_delivery')
        .addColumn('platform', 'text', (c) => c.notNull())
        .addColumn('account', 'text', (c) => c.notNull())
        .addColumn('topic', 'text', (c) => c.notNull())
        .addColumn('reason', 'text', (c) => c.notNull())
        .addColumn('count', bigint, (c) => c.notNull())
        .addColumn('first_seen_at', 'text', (c) => c.notNull())
        .addColumn('last_seen_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('unrouted_delivery_pk', ['platform', 'account', 'topic', 'reason'])
        .execute();

      await db.schema
        .createTable('purchase')
        .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenant.id'))
        .addColumn('order_id', 'text', (c) => c.notNull())
        .addColumn('subject_id', 'text', (c) => c.notNull().references('subject.id'))
        .addColumn('paid_at', 'text', (c) => c.notNull())
        .addColumn('ordered_at', 'text', (c) => c.notNull())
        .addColumn('country', 'text')
        .addColumn('buyer_accepts_marketing', 'integer')
        .addColumn('line_items', 'text', (c) => c.notNull())
        .addColumn('attributes', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('purchase_pk', ['tenant_id', 'order_id'])
        .execute();
      await db.schema.createIndex('purchase_subject_idx').on('purchase').columns(['tenant_id', 'subject_id']).execute();

      await db.schema
        .createTable('subject_profile')
        .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenant.id'))
        .addColumn('subject_id', 'text', (c) => c.notNull().references('subject.id'))
        .addColumn('country', 'text')
        .addColumn('company', 'text')
        .addColumn('source_updated_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('subject_profile_pk', ['tenant_id', 'subject_id'])
        .execute();

      await db.schema
        .createTable('subject_merge')
        .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenant.id'))
        .addColumn('merged_subject_id', 'text', (c) => c.notNull().references('subject.id'))
        .addColumn('into_subject_id', 'text', (c) => c.notNull().references('subject.id'))
        .addColumn('reason', 'text', (c) => c.notNull())
        .addColumn('merged_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('subject_merge_pk', ['tenant_id', 'merged_subject_id'])
        .execute();

      // Shopify ids are global: finding which tenant already knows a customer id guards against a signed body
      // of one shop replayed under another shop's header.
      await db.schema.createIndex('subject_identity_value_idx').on('subject_identity').columns(['kind', 'value']).execute();
    },
  };
}

/**
 * A subject-channel's history is read on every append. With only (tenant_id, subject_id, channel) indexed,
 * SQLite's planner preferred the primary key (tenant_id, seq) to avoid sorting by seq, and so scanned the
 * tenant's whole ledger on every append; with seq in the index the read is a seek that comes out ordered.
 */
const eventSubjectSeqIndex: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema.createIndex('consent_event_subject_seq_idx').on('consent_event').columns(['tenant_id', 'subject_id', 'channel', 'seq']).execute();
    await db.schema.dropIndex('consent_event_subject_idx').execute();
  },
};

/** Gate API keys (issue 4 §8): per tenant, stored as SHA-256 only, revocable. */
const apiKeys: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable('api_key')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenant.id'))
      .addColumn('prefix', 'text', (c) => c.notNull())
      .addColumn('hash', 'text', (c) => c.notNull().unique())
      .addColumn('label', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('revoked_at', 'text')
      .execute();
    await db.schema.createIndex('api_key_tenant_idx').on('api_key').column('tenant_id').execute();
  },
};

/**
 * Change feed of the send gate's in-memory index (src/gate/cache.ts). Every transaction that changes what a
 * decision reads about a subject (consent projection, identities, profile, purchases) records the subject under
 * the tenant's next `ledger_head.change_seq`, taken under the same row lock as the ledger chain, so rows commit
 * in seq order on both databases and a reader's watermark never skips a change that commits late.
 */
function gateChanges(dialect: Dialect): Migration {
  const bigint = dialect === 'postgres' ? 'bigint' : 'integer';
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema.alterTable('ledger_head').addColumn('change_seq', bigint, (c) => c.notNull().defaultTo(0)).execute();
      await db.schema
        .createTable('subject_change')
        .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenant.id'))
        .addColumn('seq', bigint, (c) => c.notNull())
        .addColumn('subject_id', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('subject_change_pk', ['tenant_id', 'seq', 'subject_id'])
        .execute();
      await db.schema.createIndex('subject_change_created_idx').on('subject_change').column('created_at').execute();
    },
  };
}

/**
 * HubSpot custom workflow action calls (issue 4 §9): the answer given to each `callbackId`. HubSpot retries an
 * execution after a 5xx, a 429 or a timeout (hubspot.md §6), and a retry must get the first answer unchanged even
 * if consent changed since: the answer is inserted under this primary key (UNIQUE tenant_id, callback_id) and a
 * retry's insert does nothing and reads it back (insert-first, style.md §10).
 */
const workflowActionCalls: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable('workflow_action_call')
      .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenant.id'))
      .addColumn('callback_id', 'text', (c) => c.notNull())
      .addColumn('request_fingerprint', 'text', (c) => c.notNull())
      .addColumn('answer', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('workflow_action_call_pk', ['tenant_id', 'callback_id'])
      .execute();
  },
};

/**
 * Issue 4 §3: cached product facts for similarity (src/catalog/cached-catalog.ts). Arrays are JSON text on both
 * databases; `stale` is 0/1 (SQLite has no boolean).
 */
const productCatalog: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable('product')
      .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenant.id'))
      .addColumn('product_id', 'text', (c) => c.notNull())
      .addColumn('product_type', 'text')
      .addColumn('vendor', 'text')
      .addColumn('tags', 'text', (c) => c.notNull())
      .addColumn('taxonomy_category_id', 'text')
      .addColumn('taxonomy_category_name', 'text')
      .addColumn('collections', 'text')
      .addColumn('source_updated_at', 'text')
      .addColumn('fetched_at', 'text')
      .addColumn('stale', 'integer', (c) => c.notNull().defaultTo(0).check(sql`stale in (0, 1)`))
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('product_pk', ['tenant_id', 'product_id'])
      .execute();
  },
};

/**
 * Soft opt-in evaluation of each paid order (issue 4 §4) as a durable job on the purchase row itself: pending
 * until its products' category groups are known (a catalog call, outside any transaction), retried with backoff,
 * and the outcome (earned, or why not, per channel) kept for `explain`.
 */
const purchaseSoftOptIn: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema.alterTable('purchase').addColumn('soi_status', 'text', (c) => c.notNull().defaultTo('pending')).execute();
    await db.schema.alterTable('purchase').addColumn('soi_attempts', 'integer', (c) => c.notNull().defaultTo(0)).execute();
    await db.schema.alterTable('purchase').addColumn('soi_next_at', 'text').execute();
    await db.schema.alterTable('purchase').addColumn('soi_outcome', 'text').execute();
    await db.schema.createIndex('purchase_soi_due_idx').on('purchase').columns(['soi_status', 'soi_next_at']).execute();
  },
};

/**
 * Issue 5 §1: the outbox of writes owed to the platforms. Insert-first on UNIQUE (tenant_id, idempotency_key);
 * claimed by (status, run_at) with a lease (`claimed_until`), so a dispatcher that dies leaves its rows due
 * again when the lease ends.
 */
function outbox(dialect: Dialect): Migration {
  const bigint = dialect === 'postgres' ? 'bigint' : 'integer';
  return {
    async up(db: Kysely<any>): Promise<void> {
      await db.schema
        .createTable('outbox')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenant.id'))
        .addColumn('platform', 'text', (c) => c.notNull().check(sql`platform in ('hubspot', 'shopify')`))
        .addColumn('operation', 'text', (c) => c.notNull())
        .addColumn('idempotency_key', 'text', (c) => c.notNull())
        .addColumn('subject_id', 'text')
        .addColumn('payload', 'text', (c) => c.notNull())
        .addColumn('source_seq', bigint)
        .addColumn('status', 'text', (c) => c.notNull().check(sql`status in ('pending', 'done', 'dead')`))
        .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('run_at', 'text', (c) => c.notNull())
        .addColumn('claimed_until', 'text')
        .addColumn('last_error', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .addColumn('done_at', 'text')
        .addColumn('note', 'text')
        .addUniqueConstraint('outbox_idempotency_uq', ['tenant_id', 'idempotency_key'])
        .execute();
      await db.schema.createIndex('outbox_claim_idx').on('outbox').columns(['status', 'run_at']).execute();
      await db.schema.createIndex('outbox_tenant_idx').on('outbox').columns(['tenant_id', 'status']).execute();
    },
  };
}

/**
 * Our own platform writes, by fingerprint (issue 5 echo suppression): an inbound webhook or poll observation that
 * only reflects one of them is dropped instead of entering the ledger a second time.
 */
const syncWrites: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable('sync_write')
      .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenant.id'))
      .addColumn('fingerprint', 'text', (c) => c.notNull())
      .addColumn('written_at', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('sync_write_pk', ['tenant_id', 'fingerprint'])
      .execute();
    await db.schema.createIndex('sync_write_written_idx').on('sync_write').column('written_at').execute();
  },
};

/**
 * Shared admission for platform calls (src/sync/rate-limit.ts `DatabaseRateLimiter`): units used per key and
 * fixed sub-window (bucket) of a rolling window. `window_start` is the bucket start in epoch milliseconds.
 * Rows older than the key's window are deleted by the limiter itself.
 */
function rateLimits(dialect: Dialect): Migration {
  const bigint = dialect === 'postgres' ? 'bigint' : 'integer';
  return {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('rate_limit_slot')
        .addColumn('key', 'text', (c) => c.notNull())
        .addColumn('window_start', bigint, (c) => c.notNull())
        .addColumn('used', 'integer', (c) => c.notNull().check(sql`used >= 0`))
        .addPrimaryKeyConstraint('rate_limit_slot_pk', ['key', 'window_start'])
        .execute();
    },
  };
}

/**
 * Positions of the reconciliation poll and the backfill per tenant (src/store/cursor.repository.ts), so both resume
 * where they stopped after a restart or a crash. Also an index on outbox (tenant_id, subject_id, status): the poll
 * asks, for the contacts of each page, whether a subscription write of ours is still on its way to HubSpot.
 */
const syncCursors: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable('sync_cursor')
      .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenant.id'))
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('value', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('sync_cursor_pk', ['tenant_id', 'name'])
      .execute();
    await db.schema.createIndex('outbox_subject_idx').on('outbox').columns(['tenant_id', 'subject_id', 'status']).execute();
  },
};

/**
 * A dispatcher claims only the platforms its process can call (src/outbox/dispatcher.ts `platforms`); rows of the
 * others wait, pending, at the front of (status, run_at). This index lets such a claim go straight to its own.
 */
const outboxPlatformClaims: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema.createIndex('outbox_platform_claim_idx').on('outbox').columns(['status', 'platform', 'run_at']).execute();
  },
};

/**
 * Customer tags (Shopify customers/* and the order's customer) for the audience rule's `b2b.customerTags`: a JSON
 * array, with their own source time (a payload may carry tags and no address, or the other way round).
 */
const profileTags: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema.alterTable('subject_profile').addColumn('tags', 'text').execute();
    await db.schema.alterTable('subject_profile').addColumn('tags_updated_at', 'text').execute();
  },
};

/**
 * The fold version behind each projection row (src/domain/fold.ts `FOLD_VERSION`): an append extends stored rows
 * only when they were computed by the running fold; older rows (null here) are refolded on their next append.
 */
const projectionFoldVersion: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema.alterTable('consent_current').addColumn('fold_version', 'integer').execute();
  },
};

export function migrationsFor(dialect: Dialect): Record<string, Migration> {
  return {
    '0001_initial': initial(dialect),
    '0002_inbox': inbox(dialect),
    '0003_event_subject_seq': eventSubjectSeqIndex,
    '0004_api_keys': apiKeys,
    '0005_workflow_action_calls': workflowActionCalls,
    '0006_product_catalog': productCatalog,
    '0007_gate_changes': gateChanges(dialect),
    '0008_purchase_soft_opt_in': purchaseSoftOptIn,
    '0009_outbox': outbox(dialect),
    '0010_rate_limits': rateLimits(dialect),
    '0011_sync_writes': syncWrites,
    '0012_sync_cursors': syncCursors,
    '0013_outbox_platform_claims': outboxPlatformClaims,
    '0014_profile_tags': profileTags,
    '0015_projection_fold_version': projectionFoldVersion,
  };
}

class StaticMigrationProvider implements MigrationProvider {
  readonly #migrations: Record<string, Migration>;
  constructor(migrations: Record<string, Migration>) {
    this.#migrations = migrations;
  }
  async getMigrations(): Promise<Record<string, Migration>> {
    return this.#migrations;
  }
}

/**
 * On PostgreSQL the migration bookkeeping tables are pinned to the connection's current schema: Kysely looks
 * for them across all schemas otherwise, and a database holding another consent-bridge schema would make it
 * skip creating its own.
 */
async function migratorFor(store: Store): Promise<Migrator> {
  const provider = new StaticMigrationProvider(migrationsFor(store.dialect));
  if (store.dialect !== 'postgres') return new Migrator({ db: store.db, provider });
  const result = await sql<{ schema: string }>`select current_schema() as schema`.execute(store.db);
  const migrationTableSchema = result.rows[0]?.schema;
  if (!migrationTableSchema) return new Migrator({ db: store.db, provider });
  return new Migrator({ db: withSchemaScopedIntrospection(store.db, migrationTableSchema), provider, migrationTableSchema });
}

/**
 * The Migrator only asks introspection whether its own bookkeeping tables exist. Kysely's PostgreSQL
 * introspector answers by reading every table of every schema, calling `pg_get_serial_sequence` on each: a
 * schema dropped by someone else meanwhile (another instance's, or a parallel test suite's) makes that call
 * fail with "relation … does not exist" and the migration with it. So the migrator gets a view of the database
 * whose introspection lists only the tables of our own schema, read from pg_catalog without any lookup by name.
 */
function withSchemaScopedIntrospection(db: Kysely<any>, schema: string): Kysely<any> {
  const introspection: DatabaseIntrospector = {
    async getSchemas() {
      const rows = await sql<{ name: string }>`select nspname as name from pg_catalog.pg_namespace where nspname = ${schema}`.execute(db);
      return rows.rows;
    },
    async getTables() {
      const rows = await sql<{ name: string; isView: boolean }>`
        select c.relname as name, c.relkind in ('v', 'm') as "isView"
        from pg_catalog.pg_class c join pg_catalog.pg_namespace ns on ns.oid = c.relnamespace
        where ns.nspname = ${schema} and c.relkind in ('r', 'p', 'v', 'm')`.execute(db);
      // Columns are not needed by the Migrator (it checks names only), so none are read.
      return rows.rows.map((row) => ({ name: row.name, schema, isView: row.isView, columns: [] }));
    },
    async getMetadata() {
      return { tables: await this.getTables() };
    },
  };
  return new Proxy(db, {
    get(target, property) {
      if (property === 'introspection') return introspection;
      const value: unknown = Reflect.get(target, property, target);
      // Kysely keeps its state in private fields, so its methods must run with the real instance as `this`.
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

/** Apply every pending migration. Throws with the failing migration's name if one fails. */
export async function migrateToLatest(store: Store): Promise<MigrationResultSet> {
  await requireSchema(store);
  const result = await (await migratorFor(store)).migrateToLatest();
  if (result.error) {
    const failed = result.results?.find((r) => r.status === 'Error')?.migrationName;
    const reason = result.error instanceof Error ? result.error.message : String(result.error);
    throw new Error(failed ? `migration ${failed} failed: ${reason}` : `migrations could not run on ${store.description}: ${reason}`, { cause: result.error });
  }
  return result;
}

/**
 * PostgreSQL: the search_path must name a schema that exists (a `?options=-c search_path=…` with a typo, or a schema
 * not created yet); otherwise Kysely's first statement fails with a puzzling "relation kysely_migration_lock does
 * not exist".
 */
async function requireSchema(store: Store): Promise<void> {
  if (store.dialect !== 'postgres') return;
  let rows: Array<{ schema: string | null; path: string }>;
  try {
    ({ rows } = await sql<{ schema: string | null; path: string }>`select current_schema() as schema, current_setting('search_path') as path`.execute(store.db));
  } catch (err) {
    throw new Error(`cannot query ${store.description}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  if (rows[0]?.schema == null) {
    throw new Error(
      `no schema of the PostgreSQL search_path (${rows[0]?.path ?? '?'}) exists on ${store.description} or is usable by this role; create it first (create schema …), or grant usage and create on it`,
    );
  }
}

/** Names of migrations known to the code but not applied to the database (empty = up to date). */
export async function pendingMigrations(store: Store): Promise<string[]> {
  const migrations = await (await migratorFor(store)).getMigrations();
  return migrations.filter((m) => m.executedAt === undefined).map((m) => m.name);
}
