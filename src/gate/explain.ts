/**
 * `consent-bridge explain` (issue 4 §10): one decision in plain words: the law.md row applied, each check with
 * pass or fail, and the evidence events with their times and sources.
 */
import type { Decision } from '../rules/decide';
import { PROFILES, type ProfileId, type RuleChannel, ruleAt, ruleChannelOf } from '../rules/profiles';
import type { Store } from '../store/database';
import type { Identity } from '../domain/identity';
import * as repo from '../store/gate.repository';
import * as purchases from '../store/purchase.repository';
import { lookupSubjects, identityKey } from './facts';

export interface EvidenceEvent {
  readonly id: string;
  readonly occurredAt: string;
  readonly kind: string;
  readonly channel: string;
  readonly purpose: string;
  readonly basis: string | null;
  readonly source: string;
  readonly evidence: Record<string, unknown>;
}

export async function loadEvidence(store: Store, tenantId: string, ids: readonly string[]): Promise<EvidenceEvent[]> {
  return (await repo.eventsByIds(store.reader, tenantId, ids)).map((e) => ({
    id: e.id,
    occurredAt: e.occurred_at,
    kind: e.kind,
    channel: e.channel,
    purpose: e.purpose,
    basis: e.basis,
    source: e.source,
    evidence: JSON.parse(e.evidence) as Record<string, unknown>,
  }));
}

const EVIDENCE_FIELDS = ['capturePoint', 'optInLevel', 'orderId', 'orderDate', 'categories', 'validUntil', 'noticeVersion', 'profileRow', 'note'];

function describeEvidence(evidence: Record<string, unknown>): string {
  return EVIDENCE_FIELDS.filter((k) => evidence[k] !== undefined)
    .map((k) => `${k} ${Array.isArray(evidence[k]) ? (evidence[k] as unknown[]).join(',') : String(evidence[k])}`)
    .join('; ');
}

/** How each recent paid order of the person was evaluated for soft opt-in on this channel (issue 4 §4: why not). */
export interface OrderOutcome {
  readonly orderId: string;
  readonly paidAt: string;
  readonly status: string;
  readonly outcome: string;
}

/** The person's last `limit` paid orders and their soft opt-in outcome for `channel` (email, or SMS for sms/whatsapp). */
export async function loadOrderOutcomes(store: Store, tenantId: string, identity: Identity | null, channel: string, limit = 5): Promise<OrderOutcome[]> {
  if (identity === null) return [];
  const subjectId = (await lookupSubjects(store, tenantId, [identity])).get(identityKey(identity));
  if (subjectId === undefined) return [];
  const key = channel === 'email' ? 'email' : 'sms';
  return (await purchases.purchasesOf(store.reader, tenantId, subjectId, limit)).map((row) => {
    const parsed = JSON.parse(row.soi_outcome ?? 'null') as { error?: string; channels?: Record<string, { earned: boolean; categories?: string[]; reason?: string; detail?: string; row?: string }> } | null;
    const result = parsed?.channels?.[key];
    const outcome =
      row.soi_status === 'pending' && !parsed ? 'not evaluated yet'
      : parsed?.error ? `not evaluated: ${parsed.error}`
      : result === undefined ? 'no outcome recorded'
      : result.earned ? `soft opt-in earned for ${(result.categories ?? []).join(', ')} (${result.row ?? ''})`
      : `no soft opt-in: ${result.reason} (${result.detail ?? ''})`;
    return { orderId: row.order_id, paidAt: row.paid_at, status: row.soi_status ?? 'pending', outcome };
  });
}

export function formatExplanation(
  request: { channel: string; purpose: string; categories: readonly string[] },
  decision: Decision,
  events: readonly EvidenceEvent[],
  at: string,
  orders: readonly OrderOutcome[] = [],
): string {
  const j = decision.jurisdiction;
  const profile = PROFILES[j.profile as ProfileId];
  const rule = ruleAt(profile, ruleChannelOf(request.channel) as RuleChannel, j.audience, at).rule;
  const lines = [
    `${decision.allowed ? 'ALLOWED' : 'BLOCKED'} (${decision.reason}) for ${request.channel}, purpose ${request.purpose}` +
      `${request.categories.length ? `, categories ${request.categories.join(', ')}` : ''}, at ${at}`,
    `Basis: ${decision.basis ?? 'none'}${decision.validUntil ? `, valid until ${decision.validUntil}` : ''}`,
    `Jurisdiction: law.md row ${j.row} (${profile.name}); country ${j.country ?? 'unknown'} from ${j.countrySource}; audience ${j.audience}`,
    `Rule: ${rule.regime}: ${rule.summary}. Sources ${j.sources.join('')}${rule.unverified ? ' (contains UNVERIFIED items, applied conservatively)' : ''}; rules version ${j.rulesVersion}`,
    'Checks:',
    ...(decision.conditions ?? []).map((c) => `  ${c.passed ? '✓' : '✗'} ${c.check}: ${c.detail}`),
    events.length ? 'Evidence:' : 'Evidence: no ledger events',
    ...events.map((e) => {
      const details = describeEvidence(e.evidence);
      return `  ${e.occurredAt}  ${e.kind}  ${e.channel}/${e.purpose}  source ${e.source}  event ${e.id}${details ? `  (${details})` : ''}`;
    }),
    ...(orders.length ? ['Paid orders (soft opt-in):', ...orders.map((o) => `  ${o.paidAt}  order ${o.orderId}  ${o.outcome}`)] : []),
  ];
  return lines.join('\n');
}
