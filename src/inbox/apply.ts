/**
 * Apply the effects of one delivery inside the worker's transaction: subjects resolved (and united), profile
 * and purchase facts recorded, and every consent event of the delivery appended to the ledger in one append
 * keyed by the delivery (so a re-delivery after the inbox row was pruned still appends nothing).
 */
import type { Transaction } from 'kysely';
import type { NewConsentEvent } from '../domain/consent';
import type { InboundEffect, ProfileFacts } from '../domain/inbound';
import { appendInTransaction } from '../ledger/ledger';
import type { Clock, IdGenerator } from '../ports';
import { resolveAndUnite } from '../subjects/merge';
import type { Dialect } from '../store/database';
import * as identities from '../store/identity.repository';
import type { Database } from '../store/schema';
import * as subjects from '../store/subject.repository';
import * as tenants from '../store/tenant.repository';

export interface ApplyDeps {
  readonly clock: Clock;
  readonly ids: IdGenerator;
}

export interface ApplyTarget {
  readonly tenantId: string;
  /** Ledger idempotency key, `<platform>:<delivery key>`. */
  readonly ledgerKey: string;
}

async function recordProfile(trx: Transaction<Database>, tenantId: string, subjectId: string, profile: ProfileFacts | null, now: string): Promise<void> {
  if (profile === null) return;
  await subjects.upsertProfile(trx, {
    tenant_id: tenantId,
    subject_id: subjectId,
    country: profile.country,
    company: profile.company,
    source_updated_at: profile.sourceUpdatedAt,
    updated_at: now,
  });
}

/** Apply effects; returns a short outcome for the inbox row (`appended 2 events`, `skipped: echo` …). */
export async function applyEffects(
  trx: Transaction<Database>,
  dialect: Dialect,
  deps: ApplyDeps,
  target: ApplyTarget,
  effects: readonly InboundEffect[],
): Promise<string> {
  const { tenantId } = target;
  const now = deps.clock.now().toISOString();
  const events: NewConsentEvent[] = [];
  const notes: string[] = [];
  for (const effect of effects) {
    switch (effect.kind) {
      case 'consent': {
        const subject = await resolveAndUnite(trx, deps, tenantId, effect.identities, 'identities_united');
        events.push(...subject.carryOver, ...effect.events.map((e) => ({ ...e, subjectId: subject.subjectId })));
        break;
      }
      case 'identify': {
        const subject = await resolveAndUnite(trx, deps, tenantId, effect.identities, 'identities_united');
        events.push(...subject.carryOver);
        await recordProfile(trx, tenantId, subject.subjectId, effect.profile, now);
        notes.push('identity recorded');
        break;
      }
      case 'purchase': {
        const subject = await resolveAndUnite(trx, deps, tenantId, effect.identities, 'identities_united');
        events.push(...subject.carryOver);
        const p = effect.purchase;
        const inserted = await subjects.insertPurchase(trx, {
          tenant_id: tenantId,
          order_id: p.orderId,
          subject_id: subject.subjectId,
          paid_at: p.paidAt,
          ordered_at: p.orderedAt,
          country: p.country,
          buyer_accepts_marketing: p.buyerAcceptsMarketing === null ? null : p.buyerAcceptsMarketing ? 1 : 0,
          line_items: JSON.stringify(p.lines),
          attributes: JSON.stringify(p.attributes),
          created_at: now,
        });
        await recordProfile(trx, tenantId, subject.subjectId, effect.profile, now);
        notes.push(inserted ? `purchase ${p.orderId} recorded` : `purchase ${p.orderId} already recorded`);
        break;
      }
      case 'merge': {
        // The surviving record first: its subject survives, the others' are merged into it.
        const united = await resolveAndUnite(trx, deps, tenantId, [effect.into, ...effect.merged], 'merge');
        events.push(...united.carryOver);
        notes.push(`merged ${effect.merged.length} record(s)`);
        break;
      }
      case 'unlink': {
        const removed = await identities.deleteIdentity(trx, tenantId, effect.identity);
        notes.push(removed > 0 ? `${effect.identity.kind} unlinked` : `${effect.identity.kind} was not linked`);
        break;
      }
      case 'uninstall': {
        // Tokens are discarded (not kept encrypted): an uninstalled app must not be able to call the store.
        await tenants.updateTenant(trx, tenantId, { status: 'uninstalled', shopify_credentials: null, hubspot_credentials: null, updated_at: now });
        notes.push('tenant uninstalled; tokens discarded');
        break;
      }
      case 'skip':
        notes.push(`skipped: ${effect.reason}`);
        break;
    }
  }
  const result = await appendInTransaction(trx, dialect, deps, { tenantId, deliveryKey: target.ledgerKey, events });
  if (result.duplicate) notes.unshift('ledger already had this delivery');
  else if (events.length > 0) notes.unshift(`appended ${result.events.length} event${result.events.length === 1 ? '' : 's'}`);
  return notes.join('; ') || 'nothing to do';
}
