/**
 * `consent-bridge explain` (issue 4 §10): one decision in plain words: the law.md row applied, each check with
 * pass or fail, and the evidence events with their times and sources.
 */
import type { Decision } from '../rules/decide';
import { PROFILES, type ProfileId, type RuleChannel, ruleAt, ruleChannelOf } from '../rules/profiles';
import type { Store } from '../store/database';
import * as repo from '../store/gate.repository';

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

export function formatExplanation(request: { channel: string; purpose: string; categories: readonly string[] }, decision: Decision, events: readonly EvidenceEvent[], at: string): string {
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
    ...decision.conditions.map((c) => `  ${c.passed ? '✓' : '✗'} ${c.check}: ${c.detail}`),
    events.length ? 'Evidence:' : 'Evidence: no ledger events',
    ...events.map((e) => {
      const details = describeEvidence(e.evidence);
      return `  ${e.occurredAt}  ${e.kind}  ${e.channel}/${e.purpose}  source ${e.source}  event ${e.id}${details ? `  (${details})` : ''}`;
    }),
  ];
  return lines.join('\n');
}
