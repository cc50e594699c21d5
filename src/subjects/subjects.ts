/**
 * Subject resolution: find the person a set of identities belongs to, or create one. Insert-first, so two
 * workers resolving the same new email at once end up with one subject (the loser's insert does nothing and
 * it re-reads the winner's).
 */
import type { Transaction } from 'kysely';
import type { Identity } from '../domain/identity';
import type { Clock, IdGenerator } from '../ports';
import * as repo from '../store/identity.repository';
import type { Database } from '../store/schema';

export interface SubjectDeps {
  readonly clock: Clock;
  readonly ids: IdGenerator;
}

export interface ResolvedSubject {
  readonly subjectId: string;
  readonly created: boolean;
  /**
   * Other subjects some of the identities already point to. Uniting them is a merge (contact.merge and the
   * "most restrictive state wins" rule), which the caller decides; resolution never moves an identity.
   */
  readonly conflictingSubjectIds: readonly string[];
}

export async function resolveSubject(
  trx: Transaction<Database>,
  deps: SubjectDeps,
  tenantId: string,
  identities: readonly Identity[],
): Promise<ResolvedSubject> {
  if (identities.length === 0) throw new Error('resolveSubject needs at least one identity');
  const now = deps.clock.now().toISOString();
  let found = await repo.findSubjectIds(trx, tenantId, identities);
  let created = false;
  if (found.size === 0) {
    const subjectId = deps.ids.next();
    await repo.insertSubject(trx, { id: subjectId, tenant_id: tenantId, created_at: now });
    await repo.insertIdentities(trx, tenantId, subjectId, identities, now);
    found = await repo.findSubjectIds(trx, tenantId, identities);
    created = [...found.values()].includes(subjectId);
  }
  // The subject of the first identity given wins (callers list the most specific identity first).
  const subjectId = identities.map((i) => found.get(`${i.kind}:${i.value}`)).find((s): s is string => s !== undefined);
  if (subjectId === undefined) throw new Error('identity resolution found no subject after insert');
  const missing = identities.filter((i) => !found.has(`${i.kind}:${i.value}`));
  await repo.insertIdentities(trx, tenantId, subjectId, missing, now);
  const conflicting = [...new Set(found.values())].filter((s) => s !== subjectId).sort();
  return { subjectId, created, conflictingSubjectIds: conflicting };
}

