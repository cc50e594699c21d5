/**
 * Versioned migrations, applied at start (`serve`) and by `consent-bridge migrate`. Each is written once for
 * both dialects; the few dialect differences (bigint, triggers) are branches inside it. Never edit a shipped
 * migration: add a new one.
 */
import { Migrator, sql, type Kysely, type Migration, type MigrationProvider, type MigrationResultSet } from 'kysely';
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

export function migrationsFor(dialect: Dialect): Record<string, Migration> {
  return {
    '0001_initial': initial(dialect),
    '0002_inbox': inbox(dialect),
    '0003_event_subject_seq': eventSubjectSeqIndex,
    '0004_api_keys': apiKeys,
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
  let migrationTableSchema: string | undefined;
  if (store.dialect === 'postgres') {
    const result = await sql<{ schema: string }>`select current_schema() as schema`.execute(store.db);
    migrationTableSchema = result.rows[0]?.schema;
  }
  return new Migrator({
    db: store.db,
    provider: new StaticMigrationProvider(migrationsFor(store.dialect)),
    ...(migrationTableSchema ? { migrationTableSchema } : {}),
  });
}

/** Apply every pending migration. Throws with the failing migration's name if one fails. */
export async function migrateToLatest(store: Store): Promise<MigrationResultSet> {
  const result = await (await migratorFor(store)).migrateToLatest();
  if (result.error) {
    const failed = result.results?.find((r) => r.status === 'Error')?.migrationName ?? 'unknown';
    throw new Error(`migration ${failed} failed: ${result.error instanceof Error ? result.error.message : String(result.error)}`, {
      cause: result.error,
    });
  }
  return result;
}

/** Names of migrations known to the code but not applied to the database (empty = up to date). */
export async function pendingMigrations(store: Store): Promise<string[]> {
  const migrations = await (await migratorFor(store)).getMigrations();
  return migrations.filter((m) => m.executedAt === undefined).map((m) => m.name);
}
