/**
 * Expiry (issue 4 §6): when a validity window passes, the scheduler appends it to the ledger as an event, so the
 * projection (and everything that reads or syncs it) changes without any webhook. The gate never depends on it:
 * `decide` compares every window with the decision time anyway; these events make the passage of time part of
 * the record, with its evidence (law.md R2, R3).
 *
 * - Soft opt-in: every grant whose stored `validUntil` has passed ends with one `soft_opt_in_expired` event per
 *   (subject, channel, purpose, end time), naming the category groups that end then; its `occurredAt` is the end
 *   itself, and the fold removes only grants ended by then (a renewal by a later purchase survives).
 * - Consent: a granted consent ends at the earlier of its stored `validUntil` and the consent validity of the
 *   subject's jurisdiction row (FR: 36 months from the grant), exactly as `decide` computes it
 *   (`consent_in_validity`). The `consent_expired` event names the grant it ends (`evidence.grantedAt`); a renewal
 *   before the end has another grantedAt and survives.
 *
 * Jurisdiction as the gate resolves it: the subject's country (default address, else newest paid order), else
 * the setting `shopCountry`, else the EU default profile; audience B2B by the setting `b2b`, else B2C; the row in
 * force at the run time.
 *
 * Idempotent: each expiry has a deterministic ledger delivery key (`expiry:soi:…`, `expiry:consent:…`), so a
 * second run, or two schedulers at once, append it once; and a row already expired no longer shows it.
 * Memory is bounded: the projection is read in keyset pages per tenant.
 */
import type { Transaction } from 'kysely';
import type { TenantSettings } from '../config/manifest';
import { ALL_PURPOSES, type Channel, type ConsentState, type NewConsentEvent } from '../domain/consent';
import { isIsoTimestamp, toIsoTimestamp } from '../domain/time';
import { audienceOf, b2bRuleOf, countryOf, loadFacts, type SubjectFacts } from '../gate/facts';
import { appendInTransaction } from '../ledger/ledger';
import type { Clock, IdGenerator } from '../ports';
import { PROFILES, profileForCountry, ruleAt, ruleChannelOf, rowName, validityEnd, type Validity } from '../rules/profiles';
import type { Dialect, Store } from '../store/database';
import * as repo from '../store/expiry.repository';
import type { Database } from '../store/schema';
import { listTenants, requireTenant, type Tenant } from '../tenants/tenants';

export interface ExpiryDeps {
  readonly clock: Clock;
  readonly ids: IdGenerator;
}

export interface ExpiryOptions {
  /** Only this tenant (an id, shop domain or portal id), also when uninstalled. Default: every active tenant. */
  readonly tenantId?: string;
  /** Projection rows read per page. Default 500. */
  readonly pageSize?: number;
}

export interface ExpiryResult {
  /** Tenants scanned. */
  readonly tenants: number;
  /** Projection rows read (those with a granted consent or a soft opt-in grant). */
  readonly scanned: number;
  /** `soft_opt_in_expired` events appended. */
  readonly softOptInExpired: number;
  /** `consent_expired` events appended. */
  readonly consentExpired: number;
}

export const DEFAULT_EXPIRY_PAGE_SIZE = 500;

/** How often the worker runs `expireDue` (see `expiryJob`): 15 minutes. */
export const DEFAULT_EXPIRY_INTERVAL_MS = 15 * 60_000;

/** The consent validity that applies to a subject on a channel, and the law.md row it comes from. */
export interface ConsentValidityRule {
  /** e.g. `FR/email/B2C`. */
  readonly row: string;
  readonly consentValidity: Validity;
}

/** One expiry to append: its idempotency key and its event. */
export interface DueExpiry {
  readonly deliveryKey: string;
  readonly event: NewConsentEvent;
}

function earliest(a: string | null, b: string | null): string | null {
  if (a === null) return b;
  if (b === null) return a;
  return a < b ? a : b;
}

/** Every distinct consent validity of the profiles: the earliest any jurisdiction could end a consent. */
const CONSENT_VALIDITIES: readonly Validity[] = (() => {
  const seen = new Map<string, Validity>();
  for (const profile of Object.values(PROFILES)) {
    for (const byAudience of Object.values(profile.rules)) {
      for (const variants of Object.values(byAudience)) {
        for (const { rule } of variants) if (rule.consentValidity.kind !== 'none') seen.set(JSON.stringify(rule.consentValidity), rule.consentValidity);
      }
    }
  }
  return [...seen.values()];
})();

/** A stored validity end in canonical form (the fold and the ledger compare timestamps as text), or null. */
function canonicalEnd(value: string | null): string | null {
  return value === null ? null : toIsoTimestamp(value);
}

/** The end of a granted consent as `decide` computes it, or null when it has none (or is not a consent). */
export function consentEnd(state: ConsentState, rule: ConsentValidityRule | null): string | null {
  if (state.status !== 'granted' || state.basis === 'soft_opt_in' || state.grantedAt === null) return null;
  return earliest(canonicalEnd(state.validUntil), rule ? validityEnd(rule.consentValidity, state.grantedAt) : null);
}

/** Soft opt-in groups whose stored window ended by `now`, by end time. */
function endedSoftOptIns(state: ConsentState, now: string): Map<string, string[]> {
  const byEnd = new Map<string, string[]>();
  for (const [category, grant] of Object.entries(state.softOptIn)) {
    // A non-canonical validUntil cannot be matched by an event time (the fold compares text); the app only
    // writes canonical ones, and `decide` still blocks an ended window at decision time.
    if (grant.validUntil === null || !isIsoTimestamp(grant.validUntil) || grant.validUntil > now) continue;
    const categories = byEnd.get(grant.validUntil);
    if (categories) categories.push(category);
    else byEnd.set(grant.validUntil, [category]);
  }
  return byEnd;
}

/** Whether a row could hold an expiry in any jurisdiction (so its subject's facts are worth loading). */
function mayExpire(state: ConsentState, now: string): boolean {
  if (endedSoftOptIns(state, now).size > 0) return true;
  if (state.status !== 'granted' || state.basis === 'soft_opt_in' || state.grantedAt === null) return false;
  const stored = canonicalEnd(state.validUntil);
  if (stored !== null && stored <= now) return true;
  const grantedAt = state.grantedAt;
  return CONSENT_VALIDITIES.some((validity) => {
    const end = validityEnd(validity, grantedAt);
    return end !== null && end <= now;
  });
}

/**
 * The expiries due at `now` for one projection row (pure). `rule` is the consent validity of the subject's row,
 * or null for none known (then only a stored validUntil ends a consent).
 */
export function dueExpiries(subjectId: string, channel: Channel, purpose: string, state: ConsentState, rule: ConsentValidityRule | null, now: string): DueExpiry[] {
  const due: DueExpiry[] = [];
  const base = { subjectId, channel, purpose, basis: null, source: 'system' as const };
  for (const [validUntil, categories] of [...endedSoftOptIns(state, now)].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const deliveryKey = `expiry:soi:${subjectId}:${channel}:${purpose}:${validUntil}`;
    due.push({
      deliveryKey,
      event: {
        ...base,
        kind: 'soft_opt_in_expired',
        occurredAt: validUntil,
        sourceDeliveryId: deliveryKey,
        evidence: { categories: categories.sort(), validUntil, note: `soft opt-in window ended at ${validUntil}` },
      },
    });
  }
  const end = consentEnd(state, rule);
  if (end !== null && end <= now && state.grantedAt !== null) {
    const profileEnd = rule ? validityEnd(rule.consentValidity, state.grantedAt) : null;
    const why =
      rule && profileEnd === end && rule.consentValidity.kind !== 'none'
        ? `${rule.row}: consent valid ${rule.consentValidity.months} months from the grant (law.md R3)`
        : 'the validUntil recorded with the grant';
    const deliveryKey = `expiry:consent:${subjectId}:${channel}:${purpose}:${state.grantedAt}`;
    due.push({
      deliveryKey,
      event: {
        ...base,
        kind: 'consent_expired',
        occurredAt: end,
        sourceDeliveryId: deliveryKey,
        evidence: { validUntil: end, grantedAt: state.grantedAt, ...(rule ? { profileRow: rule.row } : {}), note: `consent validity ended at ${end}: ${why}` },
      },
    });
  }
  return due;
}

/**
 * The consent validity of a subject's row, resolved with the gate's own rules (src/gate/facts.ts `countryOf`,
 * `audienceOf`): country from the subject's facts, else `shopCountry`, else the EU default; audience B2B by the
 * setting `b2b`; the row in force at `at`. Null for a channel the rules do not cover.
 */
export function consentRuleFor(settings: TenantSettings, facts: SubjectFacts | undefined, channel: string, at: string): ConsentValidityRule | null {
  const ruleChannel = ruleChannelOf(channel);
  if (ruleChannel === null) return null;
  const profile = profileForCountry(countryOf(facts, settings.shopCountry).country);
  const audience = audienceOf(facts, b2bRuleOf(settings.b2b));
  const dated = ruleAt(profile, ruleChannel, audience, at);
  return { row: rowName(profile, ruleChannel, audience, dated), consentValidity: dated.rule.consentValidity };
}

interface Appended {
  soft: number;
  consent: number;
}

/**
 * Expire what is due on one subject-channel, in one transaction, reading each row fresh. The `*` row goes first:
 * its events apply to every purpose, so a grant it ends is already gone from the purpose rows when they are read.
 */
async function expireSubjectChannel(
  trx: Transaction<Database>,
  dialect: Dialect,
  deps: ExpiryDeps,
  tenantId: string,
  subjectId: string,
  channel: Channel,
  rule: ConsentValidityRule | null,
  now: string,
): Promise<Appended> {
  const appended: Appended = { soft: 0, consent: 0 };
  const purposes = (await repo.purposesOf(trx, tenantId, subjectId, channel)).sort((a, b) =>
    a === b ? 0 : a === ALL_PURPOSES ? -1 : b === ALL_PURPOSES ? 1 : a < b ? -1 : 1,
  );
  for (const purpose of purposes) {
    const text = await repo.stateOf(trx, tenantId, { subject_id: subjectId, channel, purpose });
    if (text === undefined) continue;
    for (const due of dueExpiries(subjectId, channel, purpose, JSON.parse(text) as ConsentState, rule, now)) {
      const result = await appendInTransaction(trx, dialect, deps, { tenantId, deliveryKey: due.deliveryKey, events: [due.event] });
      if (result.duplicate) continue;
      if (due.event.kind === 'consent_expired') appended.consent += 1;
      else appended.soft += 1;
    }
  }
  return appended;
}

async function expireTenant(store: Store, deps: ExpiryDeps, tenant: Tenant, pageSize: number, now: string): Promise<Omit<ExpiryResult, 'tenants'>> {
  let scanned = 0;
  let softOptInExpired = 0;
  let consentExpired = 0;
  for (let after: repo.ProjectionKey | null = null; ; ) {
    const page: repo.ExpiryRow[] = await repo.expiryCandidatePage(store.reader, tenant.id, after, pageSize);
    scanned += page.length;
    // Subject-channels with something due on this page (a subject-channel split across pages is handled once
    // with fresh reads; its rows on the next page then show nothing due).
    const due = new Map<string, { subjectId: string; channel: Channel }>();
    for (const row of page) {
      if (mayExpire(JSON.parse(row.state) as ConsentState, now)) {
        due.set(`${row.subject_id}\u0000${row.channel}`, { subjectId: row.subject_id, channel: row.channel as Channel });
      }
    }
    if (due.size > 0) {
      const facts = await loadFacts(store, tenant.id, [...new Set([...due.values()].map((d) => d.subjectId))]);
      for (const { subjectId, channel } of due.values()) {
        const rule = consentRuleFor(tenant.settings, facts.get(subjectId), channel, now);
        const appended = await store.db.transaction().execute((trx) => expireSubjectChannel(trx, store.dialect, deps, tenant.id, subjectId, channel, rule, now));
        softOptInExpired += appended.soft;
        consentExpired += appended.consent;
      }
    }
    if (page.length < pageSize) break;
    const last = page[page.length - 1]!;
    after = { subject_id: last.subject_id, channel: last.channel, purpose: last.purpose };
  }
  return { scanned, softOptInExpired, consentExpired };
}

/**
 * Append every expiry due at `deps.clock.now()`: per tenant (one, or every active one), the projection in pages
 * of `pageSize`, one transaction per subject-channel with something due. Safe to run at any time and
 * concurrently (idempotent per expiry). Throws AppError('not_found') for an unknown `tenantId`.
 */
export async function expireDue(store: Store, deps: ExpiryDeps, options: ExpiryOptions = {}): Promise<ExpiryResult> {
  const pageSize = options.pageSize ?? DEFAULT_EXPIRY_PAGE_SIZE;
  if (!Number.isInteger(pageSize) || pageSize < 1) throw new RangeError('pageSize must be a positive integer');
  const now = deps.clock.now().toISOString();
  // An uninstalled tenant's state is read and synced by nothing; it is swept again once reinstalled.
  const tenants = options.tenantId !== undefined ? [await requireTenant(store, options.tenantId)] : (await listTenants(store)).filter((t) => t.status === 'active');
  const total = { tenants: tenants.length, scanned: 0, softOptInExpired: 0, consentExpired: 0 };
  for (const tenant of tenants) {
    const result = await expireTenant(store, deps, tenant, pageSize, now);
    total.scanned += result.scanned;
    total.softOptInExpired += result.softOptInExpired;
    total.consentExpired += result.consentExpired;
  }
  return total;
}

/**
 * A periodic job for the inbox worker's loop: `run()` expires what is due and returns how many events it
 * appended. Shape of `BackgroundJob` (src/jobs/scheduler.ts): `{ name, intervalMs, run(): Promise<number> }`.
 */
export function expiryJob(
  store: Store,
  deps: ExpiryDeps,
  options: { readonly intervalMs?: number; readonly pageSize?: number } = {},
): { readonly name: string; readonly intervalMs: number; run(): Promise<number> } {
  return {
    name: 'expiry',
    intervalMs: options.intervalMs ?? DEFAULT_EXPIRY_INTERVAL_MS,
    async run() {
      const result = await expireDue(store, deps, options.pageSize !== undefined ? { pageSize: options.pageSize } : {});
      return result.softOptInExpired + result.consentExpired;
    },
  };
}
