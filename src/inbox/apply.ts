/**
 * Apply the effects of one delivery inside the worker's transaction: subjects resolved (and united), profile
 * and purchase facts recorded, and every consent event of the delivery appended to the ledger in one append
 * keyed by the delivery (so a re-delivery after the inbox row was pruned still appends nothing).
 */
import type { Transaction } from 'kysely';
import type { NewConsentEvent } from '../domain/consent';
import { MAX_SOURCE_CLOCK_SKEW_MS } from '../domain/time';
import type { CustomerTags, InboundEffect, ProfileFacts, SubjectlessEvent } from '../domain/inbound';
import { shopifyConsentFingerprint } from '../sync/echo';
import * as writeLog from '../store/sync-write.repository';
import { appendInTransaction } from '../ledger/ledger';
import type { Clock, IdGenerator } from '../ports';
import { resolveAndUnite, type UnitedSubject } from '../subjects/merge';
import type { Dialect } from '../store/database';
import * as identities from '../store/identity.repository';
import * as products from '../store/product.repository';
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

async function recordTags(trx: Transaction<Database>, tenantId: string, subjectId: string, tags: CustomerTags | undefined, now: string): Promise<void> {
  if (tags === undefined) return;
  await subjects.upsertTags(trx, { tenant_id: tenantId, subject_id: subjectId, tags: tags.tags, source_updated_at: tags.sourceUpdatedAt, updated_at: now });
}

/**
 * Consent events dated later than their delivery's receipt (beyond the skew) are dated at the receipt, the claimed
 * time kept as `evidence.claimedOccurredAt`. A change is reported after it happens, so such a time is wrong; left as
 * it is, a grant dated 2031 would outrank every real withdrawal until then, since the source's time orders events
 * (conflict rule 1). The gate's objections refuse the same (MAX_SOURCE_CLOCK_SKEW_MS, src/domain/time.ts).
 */
export function withTimesNotAfterReceipt(effects: readonly InboundEffect[], receivedAt: string): InboundEffect[] {
  const latest = Date.parse(receivedAt) + MAX_SOURCE_CLOCK_SKEW_MS;
  return effects.map((effect) =>
    effect.kind !== 'consent' || effect.events.every((e) => Date.parse(e.occurredAt) <= latest)
      ? effect
      : {
          ...effect,
          events: effect.events.map((e) => (Date.parse(e.occurredAt) <= latest ? e : { ...e, occurredAt: receivedAt, evidence: { ...e.evidence, claimedOccurredAt: e.occurredAt } })),
        },
  );
}

const SHOPIFY_STATE_OF: Partial<Record<SubjectlessEvent['kind'], string>> = { grant: 'SUBSCRIBED', withdraw: 'UNSUBSCRIBED', pending: 'PENDING' };

/** Events of a Shopify consent delivery that only reflect a consent write of ours (src/sync/echo.ts). */
async function ownWritesAmong(trx: Transaction<Database>, tenantId: string, effect: Extract<InboundEffect, { kind: 'consent' }>): Promise<Set<SubjectlessEvent>> {
  const customer = effect.identities.find((i) => i.kind === 'shopify_customer');
  if (customer === undefined) return new Set();
  const candidates = new Map<string, SubjectlessEvent>();
  for (const event of effect.events) {
    const state = SHOPIFY_STATE_OF[event.kind];
    if (event.source === 'shopify' && state !== undefined) candidates.set(shopifyConsentFingerprint(customer.value, event.channel, state, event.occurredAt), event);
  }
  const known = await writeLog.knownWrites(trx, tenantId, [...candidates.keys()]);
  return new Set([...candidates].filter(([fingerprint]) => known.has(fingerprint)).map(([, event]) => event));
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
  // Subjects whose identities, profile or purchases this delivery touched: the gate's cache reloads them.
  const changed = new Set<string>();
  const touch = (subject: UnitedSubject): UnitedSubject => {
    changed.add(subject.subjectId);
    for (const merged of subject.mergedSubjectIds) changed.add(merged);
    return subject;
  };
  for (const effect of effects) {
    switch (effect.kind) {
      case 'consent': {
        const own = await ownWritesAmong(trx, tenantId, effect);
        const fresh = effect.events.filter((e) => !own.has(e));
        if (fresh.length === 0) {
          notes.push('skipped: echo of our own write');
          break;
        }
        const subject = touch(await resolveAndUnite(trx, deps, tenantId, effect.identities, 'identities_united'));
        events.push(...subject.carryOver, ...fresh.map((e) => ({ ...e, subjectId: subject.subjectId })));
        break;
      }
      case 'identify': {
        const subject = touch(await resolveAndUnite(trx, deps, tenantId, effect.identities, 'identities_united'));
        events.push(...subject.carryOver);
        await recordProfile(trx, tenantId, subject.subjectId, effect.profile, now);
        await recordTags(trx, tenantId, subject.subjectId, effect.customerTags, now);
        notes.push('identity recorded');
        break;
      }
      case 'purchase': {
        const subject = touch(await resolveAndUnite(trx, deps, tenantId, effect.identities, 'identities_united'));
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
        await recordTags(trx, tenantId, subject.subjectId, effect.customerTags, now);
        notes.push(inserted ? `purchase ${p.orderId} recorded` : `purchase ${p.orderId} already recorded`);
        break;
      }
      case 'merge': {
        // The surviving record first: its subject survives, the others' are merged into it.
        const united = touch(await resolveAndUnite(trx, deps, tenantId, [effect.into, ...effect.merged], 'merge'));
        events.push(...united.carryOver);
        notes.push(`merged ${effect.merged.length} record(s)`);
        break;
      }
      case 'unlink': {
        const unlinkedFrom = await identities.deleteIdentity(trx, tenantId, effect.identity);
        if (unlinkedFrom !== null) changed.add(unlinkedFrom);
        notes.push(unlinkedFrom !== null ? `${effect.identity.kind} unlinked` : `${effect.identity.kind} was not linked`);
        break;
      }
      case 'uninstall': {
        // Tokens are discarded (not kept encrypted): an uninstalled app must not be able to call the store.
        await tenants.updateTenant(trx, tenantId, { status: 'uninstalled', shopify_credentials: null, hubspot_credentials: null, updated_at: now });
        notes.push('tenant uninstalled; tokens discarded');
        break;
      }
      case 'product': {
        // Only the facts the webhook has; `stale` makes the next catalog lookup refetch taxonomy and collections.
        // An older delivery (a retry, shopify.md §1.4) never overwrites newer facts.
        const p = effect.product;
        const written = await products.upsertFromWebhook(trx, {
          tenant_id: tenantId,
          product_id: p.productId,
          product_type: p.productType,
          vendor: p.vendor,
          tags: JSON.stringify(p.tags),
          source_updated_at: p.updatedAt,
          updated_at: now,
        });
        notes.push(written ? `product ${p.productId} recorded (stale)` : `product ${p.productId}: newer facts kept`);
        break;
      }
      case 'skip':
        notes.push(`skipped: ${effect.reason}`);
        break;
    }
  }
  const result = await appendInTransaction(trx, dialect, deps, { tenantId, deliveryKey: target.ledgerKey, events, changedSubjects: changed });
  if (result.duplicate) notes.unshift('ledger already had this delivery');
  else if (events.length > 0) notes.unshift(`appended ${result.events.length} event${result.events.length === 1 ? '' : 's'}`);
  return notes.join('; ') || 'nothing to do';
}
