/**
 * A tripwire for `FOLD_VERSION` (src/domain/fold.ts): stored projection rows are extended by later appends only
 * when they carry the running fold's version, so a change to what histories fold to must bump it. This test folds
 * a fixed set of pseudo-random histories (the simulators' seeded mulberry32, independent of any library) and
 * compares a hash of the results with the one recorded for the current version.
 *
 * If it fails after you changed the fold on purpose: bump FOLD_VERSION and record the new hash here.
 */
import { createHash } from 'node:crypto';
import { EVENT_KINDS, type ConsentEvent } from '../../../src/domain/consent';
import { FOLD_VERSION, projectChannel } from '../../../src/domain/fold';
import { canonicalJson } from '../../../src/ledger/chain';
import { seededRandom } from '../../../simulators/hubspot/random';

const RECORDED: Readonly<Record<number, string>> = {
  1: '70068c7bc90d22fd6125d18ea6dd6baa44905d77bf43956ef61e454144981bdf',
};

function histories(count: number): ConsentEvent[][] {
  const random = seededRandom(20261124);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const day = (): string => new Date(Date.UTC(2026, 0, 1 + Math.floor(random() * 10))).toISOString();
  const out: ConsentEvent[][] = [];
  for (let h = 0; h < count; h++) {
    const length = 1 + Math.floor(random() * 12);
    const events: ConsentEvent[] = [];
    for (let i = 0; i < length; i++) {
      const kind = pick(EVENT_KINDS);
      events.push({
        id: `h${h}e${Math.floor(random() * 1e6)}`,
        tenantId: 't',
        subjectId: 's',
        channel: 'email',
        purpose: pick(['*', '*', 'newsletter', 'promo']),
        kind,
        basis: kind === 'soft_opt_in_earned' ? 'soft_opt_in' : kind === 'grant' || kind === 'pending' || kind === 'confirm' ? 'consent' : null,
        occurredAt: day(),
        receivedAt: '2026-02-01T00:00:00.000Z',
        source: pick(['shopify', 'hubspot', 'system', 'gate_api'] as const),
        sourceDeliveryId: null,
        evidence: {
          ...(random() < 0.5 ? { affirmative: true } : {}),
          ...(random() < 0.5 ? { capturePoint: 'checkout' } : {}),
          ...(random() < 0.5 ? { optInLevel: pick(['single_opt_in', 'confirmed_opt_in', 'unknown'] as const) } : {}),
          ...(random() < 0.3 ? { validUntil: day() } : {}),
          ...(random() < 0.5 ? { grantedAt: day() } : {}),
          ...(random() < 0.7 ? { categories: pick([['footwear'], ['insurance'], ['footwear', 'insurance']]) } : {}),
          ...(random() < 0.3 ? { orderId: String(Math.floor(random() * 100)) } : {}),
        },
      } as ConsentEvent);
    }
    out.push(events);
  }
  return out;
}

describe('FOLD_VERSION', () => {
  it('has a recorded hash of what 3,000 fixed histories fold to, and the fold still gives it', () => {
    const hash = createHash('sha256');
    for (const history of histories(3000)) hash.update(canonicalJson([...projectChannel(history)]));
    const digest = hash.digest('hex');
    expect({ version: FOLD_VERSION, digest }).toEqual({ version: FOLD_VERSION, digest: RECORDED[FOLD_VERSION] });
  });
});
