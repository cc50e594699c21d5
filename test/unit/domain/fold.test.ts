import fc from 'fast-check';
import {
  EMPTY_STATE,
  EVENT_KINDS,
  isAffirmativeAct,
  isRestrictive,
  type ConsentEvent,
  type EventKind,
} from '../../../src/domain/consent';
import { applyEvent, compareEvents, foldConsent, projectChannel } from '../../../src/domain/fold';

const RUNS = { numRuns: 1000 };

/** A small pool of timestamps so generated histories have many ties (rule 2 is about equal timestamps). */
const TIMES = Array.from({ length: 8 }, (_, i) => new Date(Date.UTC(2026, 0, 1 + i)).toISOString());

let counter = 0;
function event(kind: EventKind, occurredAt: string, extra: Partial<ConsentEvent> = {}): ConsentEvent {
  counter += 1;
  return {
    id: `e${String(counter).padStart(6, '0')}`,
    tenantId: 't1',
    subjectId: 's1',
    channel: 'email',
    purpose: '*',
    kind,
    basis: kind === 'soft_opt_in_earned' ? 'soft_opt_in' : kind === 'grant' || kind === 'confirm' || kind === 'pending' ? 'consent' : null,
    occurredAt,
    receivedAt: '2026-02-01T00:00:00.000Z',
    source: 'shopify',
    sourceDeliveryId: null,
    evidence: {},
    ...extra,
  };
}

const affirmativeEvidence = { affirmative: true, capturePoint: 'checkout', noticeText: 'Send me news', noticeVersion: 'v1' };

const arbEvent: fc.Arbitrary<Omit<ConsentEvent, 'id'>> = fc
  .record({
    kind: fc.constantFrom(...EVENT_KINDS),
    time: fc.constantFrom(...TIMES),
    purpose: fc.constantFrom('*', 'newsletter'),
    affirmative: fc.boolean(),
    withCapture: fc.boolean(),
    optIn: fc.constantFrom(undefined, 'single_opt_in', 'confirmed_opt_in', 'unknown'),
    validUntil: fc.option(fc.constantFrom(...TIMES), { nil: undefined }),
    categories: fc.subarray(['footwear', 'insurance'], { minLength: 1 }),
    grantedAt: fc.option(fc.constantFrom(...TIMES), { nil: undefined }),
    source: fc.constantFrom('shopify', 'hubspot', 'system'),
  })
  .map((g) => {
    const base = event(g.kind, g.time);
    const { id: _id, ...rest } = base;
    return {
      ...rest,
      purpose: g.purpose,
      source: g.source as ConsentEvent['source'],
      evidence: {
        ...(g.affirmative ? { affirmative: true } : {}),
        ...(g.withCapture ? { capturePoint: 'checkout' } : {}),
        ...(g.optIn ? { optInLevel: g.optIn as 'single_opt_in' } : {}),
        ...(g.validUntil ? { validUntil: g.validUntil } : {}),
        ...(g.kind.startsWith('soft_opt_in') ? { categories: g.categories } : {}),
        ...(g.kind === 'consent_expired' && g.grantedAt ? { grantedAt: g.grantedAt } : {}),
      },
    };
  });

/** Histories with unique ids (as the ledger guarantees). */
const arbHistory = fc.array(arbEvent, { maxLength: 14 }).map((events) => events.map((e, i) => ({ ...e, id: `h${String(i).padStart(3, '0')}` }) as ConsentEvent));

describe('foldConsent: conflict rules as properties (≥1,000 histories each)', () => {
  test('rule 1: shuffling and duplicating a history never changes the state', () => {
    fc.assert(
      fc.property(
        arbHistory,
        fc.array(fc.nat(), { maxLength: 10 }),
        fc.constantFrom('*', 'newsletter'),
        (history, dupPicks, purpose) => {
          const duplicates = history.length === 0 ? [] : dupPicks.map((n) => history[n % history.length]!);
          const scrambled = fc.sample(fc.shuffledSubarray([...history, ...duplicates], { minLength: history.length + duplicates.length }), { numRuns: 1 })[0]!;
          expect(foldConsent(scrambled, purpose)).toEqual(foldConsent(history, purpose));
          expect(projectChannel(scrambled)).toEqual(projectChannel(history));
        },
      ),
      RUNS,
    );
  });

  test('rule 2: a withdrawal is never overridden by an equal-or-older grant', () => {
    fc.assert(
      fc.property(arbHistory, fc.constantFrom(...TIMES), fc.constantFrom('withdraw', 'object', 'erase'), (history, at, kind) => {
        const withdrawal = { ...event(kind as EventKind, at), id: 'zz-withdrawal' };
        // Everything else is at or before the withdrawal, so nothing may re-grant.
        const olderOrEqual = history.filter((e) => e.occurredAt <= at && (e.purpose === '*' || e.purpose === 'newsletter'));
        const state = foldConsent([...olderOrEqual, withdrawal], 'newsletter');
        expect(state.status === 'withdrawn' || state.status === 'erased').toBe(true);
        expect(state.basis).toBeNull();
        expect(state.softOptIn).toEqual({});
      }),
      RUNS,
    );
  });

  test('rule 3: after a withdrawal only an affirmative event with evidence re-grants', () => {
    fc.assert(
      fc.property(arbHistory, fc.constantFrom(...TIMES.slice(0, 4)), (history, at) => {
        const withdrawal = { ...event('withdraw', at), id: 'zz-withdrawal' };
        const later = history.filter((e) => e.occurredAt > at);
        // Walk the fold step by step: every step that leaves the blocked state must be an affirmative act.
        let current = EMPTY_STATE;
        for (const next of [withdrawal, ...later].sort(compareEvents)) {
          const after = applyEvent(current, next);
          const wasBlocked = ['withdrawn', 'erased', 'expired'].includes(current.status);
          if (wasBlocked && (after.status === 'granted' || after.status === 'pending')) expect(isAffirmativeAct(next)).toBe(true);
          current = after;
        }
        const state = foldConsent([withdrawal, ...later], 'newsletter'); // every generated purpose applies to it
        expect(state).toEqual(current);
        const anyAffirmative = later.some((e) => isAffirmativeAct(e));
        if (!anyAffirmative) expect(['withdrawn', 'erased', 'expired']).toContain(state.status);
      }),
      RUNS,
    );
  });

  test('rule 4: an objection ends soft opt-in for good; later explicit consent can still grant', () => {
    fc.assert(
      fc.property(arbHistory, fc.constantFrom(...TIMES.slice(0, 6)), (history, at) => {
        const objection = { ...event('object', at), id: 'zz-objection' };
        const state = foldConsent([...history, objection]);
        expect(state.softOptInEnded).toBe(true);
        expect(state.softOptIn).toEqual({});
      }),
      RUNS,
    );
    const objection = event('object', TIMES[1]!);
    const consent = event('grant', TIMES[2]!, { evidence: affirmativeEvidence });
    const soft = event('soft_opt_in_earned', TIMES[3]!, { evidence: { categories: ['footwear'] } });
    const state = foldConsent([objection, consent, soft]);
    expect(state.status).toBe('granted');
    expect(state.softOptIn).toEqual({});
  });

  test('rule 5: pending is never "granted", and becomes granted only by a confirmation', () => {
    fc.assert(
      fc.property(arbHistory, (history) => {
        const withoutGrants = history.filter((e) => e.kind !== 'grant' && e.kind !== 'confirm');
        expect(foldConsent(withoutGrants).status).not.toBe('granted');
        const state = foldConsent(history);
        if (state.status === 'pending') expect(state.basis).toBeNull();
      }),
      RUNS,
    );
  });

  test('the sort is a total order consistent with rule 2 (restrictive last at equal time)', () => {
    fc.assert(
      fc.property(arbHistory, (history) => {
        const sorted = [...history].sort(compareEvents);
        for (let i = 1; i < sorted.length; i++) {
          const [a, b] = [sorted[i - 1]!, sorted[i]!];
          expect(compareEvents(a, b)).toBeLessThanOrEqual(0);
          if (a.occurredAt === b.occurredAt && isRestrictive(a.kind)) expect(isRestrictive(b.kind) || b.kind === 'erase').toBe(true);
        }
      }),
      RUNS,
    );
  });
});

describe('foldConsent: single transitions', () => {
  test('no events → none', () => {
    expect(foldConsent([])).toEqual(EMPTY_STATE);
  });

  test('grant with opt-in level and evidence', () => {
    const grant = event('grant', TIMES[0]!, { evidence: { ...affirmativeEvidence, optInLevel: 'single_opt_in' } });
    const state = foldConsent([grant]);
    expect(state).toMatchObject({ status: 'granted', basis: 'consent', optInLevel: 'single_opt_in', grantedAt: TIMES[0], confirmedAt: null });
    expect(state.evidenceEventIds).toEqual([grant.id]);
  });

  test('pending then confirm → granted, confirmed, with both events as evidence', () => {
    const pending = event('pending', TIMES[0]!, { evidence: affirmativeEvidence });
    const confirm = event('confirm', TIMES[1]!, { evidence: affirmativeEvidence });
    const state = foldConsent([confirm, pending]);
    expect(state).toMatchObject({ status: 'granted', optInLevel: 'confirmed_opt_in', grantedAt: TIMES[0], confirmedAt: TIMES[1] });
    expect(state.evidenceEventIds).toEqual([pending.id, confirm.id]);
  });

  test('a withdrawal at the same instant as a grant wins, whatever the arrival order', () => {
    const grant = event('grant', TIMES[2]!, { evidence: affirmativeEvidence });
    const withdraw = event('withdraw', TIMES[2]!);
    expect(foldConsent([grant, withdraw]).status).toBe('withdrawn');
    expect(foldConsent([withdraw, grant]).status).toBe('withdrawn');
  });

  test('a backfill observation (not affirmative) does not re-subscribe after an unsubscribe', () => {
    const withdraw = event('withdraw', TIMES[1]!);
    const observed = event('grant', TIMES[3]!, { source: 'system', evidence: { note: 'observed in HubSpot', optInLevel: 'unknown' } });
    expect(foldConsent([withdraw, observed]).status).toBe('withdrawn');
    const ticked = event('grant', TIMES[4]!, { evidence: affirmativeEvidence });
    expect(foldConsent([withdraw, observed, ticked]).status).toBe('granted');
  });

  test('soft opt-in per category group, renewal survives the expiry of the older purchase', () => {
    const first = event('soft_opt_in_earned', TIMES[0]!, { evidence: { categories: ['footwear'], validUntil: TIMES[3]!, orderId: '1' } });
    const second = event('soft_opt_in_earned', TIMES[2]!, { evidence: { categories: ['footwear'], validUntil: TIMES[7]!, orderId: '2' } });
    const expiry = event('soft_opt_in_expired', TIMES[3]!, { evidence: { categories: ['footwear'] } });
    const state = foldConsent([first, second, expiry]);
    expect(state.softOptIn.footwear).toMatchObject({ eventId: second.id, orderId: '2', validUntil: TIMES[7] });
    expect(state.status).toBe('none'); // soft opt-in is not consent
    const finalExpiry = event('soft_opt_in_expired', TIMES[7]!, { evidence: { categories: ['footwear'] } });
    expect(foldConsent([first, second, expiry, finalExpiry]).softOptIn).toEqual({});
  });

  test('consent expiry applies only to a grant whose validity has ended', () => {
    const grant = event('grant', TIMES[0]!, { evidence: { ...affirmativeEvidence, validUntil: TIMES[4]! } });
    expect(foldConsent([grant, event('consent_expired', TIMES[3]!)]).status).toBe('granted');
    expect(foldConsent([grant, event('consent_expired', TIMES[4]!)]).status).toBe('expired');
  });

  test('a scheduler expiry naming the grant (evidence.grantedAt) ends that grant though it has no stored validUntil', () => {
    const grant = event('grant', TIMES[0]!, { evidence: affirmativeEvidence });
    const expiry = event('consent_expired', TIMES[5]!, { source: 'system', evidence: { grantedAt: TIMES[0]!, validUntil: TIMES[5]! } });
    const state = foldConsent([expiry, grant]);
    expect(state).toMatchObject({ status: 'expired', basis: null, grantedAt: TIMES[0] });
    expect(state.evidenceEventIds).toEqual([grant.id, expiry.id]);
    // Without grantedAt (and no stored validUntil) an expiry still does nothing, as before.
    expect(foldConsent([grant, event('consent_expired', TIMES[5]!)]).status).toBe('granted');
    // An expiry computed for another grant does nothing either.
    expect(foldConsent([grant, event('consent_expired', TIMES[5]!, { evidence: { grantedAt: TIMES[1]! } })]).status).toBe('granted');
  });

  test('a renewal before the expiry moment survives an expiry computed for the older grant, whatever the arrival order', () => {
    const grant = event('grant', TIMES[0]!, { evidence: affirmativeEvidence });
    const renewal = event('grant', TIMES[3]!, { evidence: affirmativeEvidence });
    const expiry = event('consent_expired', TIMES[5]!, { source: 'system', evidence: { grantedAt: TIMES[0]!, validUntil: TIMES[5]! } });
    for (const order of [[grant, renewal, expiry], [grant, expiry, renewal], [expiry, renewal, grant]]) {
      expect(foldConsent(order)).toMatchObject({ status: 'granted', grantedAt: TIMES[3], evidenceEventIds: [renewal.id] });
    }
    // A sync re-observing the old grant is no renewal (it keeps grantedAt): the grant still ends.
    const observed = event('grant', TIMES[3]!, { source: 'system', evidence: { note: 'observed in HubSpot' } });
    expect(foldConsent([grant, observed, expiry]).status).toBe('expired');
    // A renewal after the expiry moment needs an affirmative act (rule 3), like any re-grant after an expiry.
    expect(foldConsent([grant, expiry, event('grant', TIMES[6]!, { evidence: affirmativeEvidence })]).status).toBe('granted');
    expect(foldConsent([grant, expiry, event('grant', TIMES[6]!, { source: 'system', evidence: { note: 'observed' } })]).status).toBe('expired');
    // A renewal at the very expiry moment sorts before the expiry (grants first at equal times) and survives.
    expect(foldConsent([grant, expiry, event('grant', TIMES[5]!, { evidence: affirmativeEvidence })]).status).toBe('granted');
  });

  test('a confirmed double opt-in dates from the sign-up: an expiry naming the sign-up time ends it', () => {
    const pending = event('pending', TIMES[0]!, { evidence: affirmativeEvidence });
    const confirm = event('confirm', TIMES[1]!, { evidence: affirmativeEvidence });
    const expiry = event('consent_expired', TIMES[6]!, { source: 'system', evidence: { grantedAt: TIMES[0]! } });
    expect(foldConsent([pending, confirm, expiry])).toMatchObject({ status: 'expired', evidenceEventIds: [pending.id, confirm.id, expiry.id] });
  });

  test('purpose-specific withdrawal leaves other purposes alone; a * withdrawal applies to all', () => {
    const grant = event('grant', TIMES[0]!, { evidence: affirmativeEvidence });
    const newsOut = event('withdraw', TIMES[1]!, { purpose: 'newsletter' });
    const rows = projectChannel([grant, newsOut]);
    expect(rows.get('*')?.status).toBe('granted');
    expect(rows.get('newsletter')?.status).toBe('withdrawn');
    const allOut = event('withdraw', TIMES[2]!);
    expect(projectChannel([grant, newsOut, allOut]).get('*')?.status).toBe('withdrawn');
  });

  test('address invalid is recorded and cleared by a newer grant', () => {
    const grant = event('grant', TIMES[0]!, { evidence: affirmativeEvidence });
    const invalid = event('address_invalid', TIMES[1]!);
    expect(foldConsent([grant, invalid]).addressInvalid).toBe(true);
    // An observation of the same grant keeps the affirmative proof rather than replacing it.
    const observed = event('grant', TIMES[3]!, { source: 'system', evidence: { note: 'observed' } });
    expect(foldConsent([grant, observed]).evidenceEventIds).toEqual([grant.id]);
    expect(foldConsent([grant, invalid, event('grant', TIMES[2]!, { evidence: affirmativeEvidence })]).addressInvalid).toBe(false);
  });
});
