/**
 * The gate's change feed (src/gate/cache.ts reads it): every transaction that changes a subject's decision
 * inputs (consent projection, identities, profile, purchases) records the subject here, in the same
 * transaction. The seq comes from the tenant's ledger head under its row lock, so feed rows become visible in
 * seq order and a reader that has seen seq N has seen every change up to N.
 */
import type { Transaction } from 'kysely';
import type { Dialect, Store } from '../store/database';
import * as repo from '../store/change.repository';
import type { Database } from '../store/schema';
import { GENESIS_HASH } from './chain';

/** How long feed rows are kept (1 h). A gate cache idle for longer than this starts over (cache.ts). */
export const CHANGE_RETENTION_MS = 3_600_000;

export async function recordSubjectChanges(trx: Transaction<Database>, dialect: Dialect, tenantId: string, subjectIds: Iterable<string>, now: string): Promise<void> {
  const unique = new Set(subjectIds);
  if (unique.size === 0) return;
  const seq = await repo.nextChangeSeq(trx, dialect, tenantId, GENESIS_HASH, now);
  await repo.insertChanges(trx, dialect, tenantId, seq, unique, now);
}

/** Drop feed rows older than the retention; the worker calls it with its other housekeeping. */
export async function pruneSubjectChanges(store: Store, now: Date): Promise<number> {
  return repo.pruneChanges(store.db, new Date(now.getTime() - CHANGE_RETENTION_MS).toISOString());
}
