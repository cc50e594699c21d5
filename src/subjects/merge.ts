/**
 * Uniting subjects (design.md "Consent model": merges on either side union the identities; the most
 * restrictive state wins).
 *
 * The ledger is append-only, so a merge moves identities, purchases and the profile to the surviving subject
 * and appends to it a copy of every restrictive event (withdraw, object, erase) of the merged one, with
 * evidence naming the original event. Folded with the survivor's own history by occurredAt (rule 1), a
 * withdrawal on either record beats any grant that is not a newer affirmative act (rules 2–3), and an
 * objection ends soft opt-in for good (rule 4). Grants are not carried over: a consent given on one record
 * does not become consent on the other.
 */
import type { Transaction } from 'kysely';
import { isRestrictive, EVENT_KINDS, type NewConsentEvent } from '../domain/consent';
import type { Identity } from '../domain/identity';
import { rowToEvent } from '../ledger/ledger';
import type { Clock, IdGenerator } from '../ports';
import * as identities from '../store/identity.repository';
import * as ledgerRepo from '../store/ledger.repository';
import type { Database } from '../store/schema';
import * as subjects from '../store/subject.repository';
import { resolveSubject } from './subjects';

const RESTRICTIVE_KINDS = EVENT_KINDS.filter(isRestrictive);

export interface MergeDeps {
  readonly clock: Clock;
  readonly ids: IdGenerator;
}

/**
 * Merge `mergedSubjectId` into `intoSubjectId`. Returns the carry-over events to append to the survivor (the
 * caller appends them with the delivery's other events, in the same transaction). A subject merged before
 * returns nothing.
 */
export async function mergeSubject(
  trx: Transaction<Database>,
  deps: MergeDeps,
  tenantId: string,
  intoSubjectId: string,
  mergedSubjectId: string,
  reason: string,
): Promise<NewConsentEvent[]> {
  if (intoSubjectId === mergedSubjectId) return [];
  const now = deps.clock.now().toISOString();
  const first = await identities.insertMerge(trx, {
    tenant_id: tenantId,
    merged_subject_id: mergedSubjectId,
    into_subject_id: intoSubjectId,
    reason,
    merged_at: now,
  });
  await identities.moveIdentities(trx, tenantId, mergedSubjectId, intoSubjectId);
  if (!first) return [];
  await subjects.movePurchases(trx, tenantId, mergedSubjectId, intoSubjectId);
  await subjects.moveProfile(trx, tenantId, mergedSubjectId, intoSubjectId, now);
  const restrictive = await ledgerRepo.eventsOfSubjectByKind(trx, tenantId, mergedSubjectId, RESTRICTIVE_KINDS);
  return restrictive.map(rowToEvent).map((event) => ({
    subjectId: intoSubjectId,
    channel: event.channel,
    purpose: event.purpose,
    kind: event.kind,
    basis: event.basis,
    occurredAt: event.occurredAt,
    source: event.source,
    sourceDeliveryId: event.sourceDeliveryId,
    evidence: { ...event.evidence, affirmative: false, mergedFrom: { subjectId: mergedSubjectId, eventId: event.id }, note: `carried over by merge (${reason})` },
  }));
}

export interface UnitedSubject {
  readonly subjectId: string;
  /** The subject was created by this call (none of the identities was known). */
  readonly created: boolean;
  readonly carryOver: readonly NewConsentEvent[];
  /** Subjects merged into `subjectId` by this call (their identities now point to it). */
  readonly mergedSubjectIds: readonly string[];
}

/**
 * Resolve the person the identities name. One delivery naming identities of several subjects (a customer's
 * id and an email another record holds) says they are one person: the others are merged into the subject of
 * the first identity.
 */
export async function resolveAndUnite(
  trx: Transaction<Database>,
  deps: MergeDeps,
  tenantId: string,
  ids: readonly Identity[],
  reason: string,
): Promise<UnitedSubject> {
  const resolved = await resolveSubject(trx, deps, tenantId, ids);
  const carryOver: NewConsentEvent[] = [];
  for (const other of resolved.conflictingSubjectIds) {
    carryOver.push(...(await mergeSubject(trx, deps, tenantId, resolved.subjectId, other, reason)));
  }
  if (resolved.conflictingSubjectIds.length > 0) {
    // Identities of the merged subjects that this delivery named are now the survivor's; claim any still missing.
    await identities.insertIdentities(trx, tenantId, resolved.subjectId, ids, deps.clock.now().toISOString());
  }
  return { subjectId: resolved.subjectId, created: resolved.created, carryOver, mergedSubjectIds: resolved.conflictingSubjectIds };
}
