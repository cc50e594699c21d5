/**
 * The pure fold from consent events to current state: conflict rules 1–5 of design.md, written once.
 *
 * 1. Events are ordered by the source's `occurredAt`, never by arrival; duplicates (same id) count once, so any
 *    shuffle or duplication of a history folds to the same state.
 * 2. At an equal timestamp restrictive events sort last, so a withdrawal/objection beats a grant that is equal
 *    or older.
 * 3. After a withdrawal (or an erasure or an expiry) only a new affirmative act with evidence re-grants
 *    (`isAffirmativeAct`); a sync, backfill, echo or soft opt-in never does.
 * 4. An objection or unsubscribe ends soft opt-in on the channel for good; explicit consent can still grant.
 * 5. Pending is never `granted`; it becomes granted only through a confirmation.
 */
import {
  ALL_PURPOSES,
  EMPTY_STATE,
  isAffirmativeAct,
  type ConsentEvent,
  type ConsentState,
  type EventKind,
  type Purpose,
  type SoftOptInGrant,
} from './consent';

/**
 * The version of what a history folds to. Bump it with any change to `applyEvent`, `foldConsent` or
 * `compareEvents` that can change a state: projection rows record the version that computed them, and an append
 * extends stored rows only when they carry the current one (src/ledger/ledger.ts `extendProjection`), so rows
 * folded by an older version are refolded on their next append instead of carried forward (`ledger rebuild`
 * refolds them all at once). test/unit/domain/fold-version.test.ts fails when fold outputs change and this does not.
 */
export const FOLD_VERSION = 1;

/** Tie-break rank at equal `occurredAt`: grants first, then confirmations, expiries, and restrictive last. */
const KIND_RANK: Readonly<Record<EventKind, number>> = {
  grant: 0,
  pending: 0,
  soft_opt_in_earned: 0,
  confirm: 1,
  soft_opt_in_expired: 2,
  consent_expired: 2,
  address_invalid: 3,
  withdraw: 4,
  object: 4,
  erase: 5,
};

/** The total order of rule 1: (occurredAt, kind rank, id). Arrival order never matters. */
export function compareEvents(a: ConsentEvent, b: ConsentEvent): number {
  if (a.occurredAt !== b.occurredAt) return a.occurredAt < b.occurredAt ? -1 : 1;
  const rank = KIND_RANK[a.kind] - KIND_RANK[b.kind];
  if (rank !== 0) return rank;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** Does an event recorded for `eventPurpose` bear on the state of `purpose`? `*` events bear on every purpose. */
export function appliesToPurpose(eventPurpose: Purpose, purpose: Purpose): boolean {
  return eventPurpose === ALL_PURPOSES || eventPurpose === purpose;
}

/**
 * Fold one subject's events on one channel into the state for `purpose`.
 * Events for other channels or subjects must be filtered out by the caller.
 */
export function foldConsent(events: readonly ConsentEvent[], purpose: Purpose = ALL_PURPOSES): ConsentState {
  const byId = new Map<string, ConsentEvent>();
  for (const event of events) {
    if (appliesToPurpose(event.purpose, purpose) && !byId.has(event.id)) byId.set(event.id, event);
  }
  return [...byId.values()].sort(compareEvents).reduce(applyEvent, EMPTY_STATE);
}

/**
 * Every projection row for one subject on one channel: one per purpose seen in the events, plus `*`.
 * The ledger writes exactly these rows, and `ledger rebuild` recomputes them.
 */
export function projectChannel(events: readonly ConsentEvent[]): Map<Purpose, ConsentState> {
  const purposes = new Set<Purpose>([ALL_PURPOSES]);
  for (const event of events) purposes.add(event.purpose);
  const states = new Map<Purpose, ConsentState>();
  for (const purpose of [...purposes].sort()) states.set(purpose, foldConsent(events, purpose));
  return states;
}

function isBlocking(state: ConsentState): boolean {
  return state.status === 'withdrawn' || state.status === 'erased' || state.status === 'expired';
}

/** One step of the fold. Exported for unit tests of single transitions. */
export function applyEvent(state: ConsentState, event: ConsentEvent): ConsentState {
  const seen: ConsentState = {
    ...state,
    lastEventAt: state.lastEventAt === null || event.occurredAt > state.lastEventAt ? event.occurredAt : state.lastEventAt,
  };
  switch (event.kind) {
    case 'grant':
    case 'confirm': {
      if (isBlocking(state) && !isAffirmativeAct(event)) return seen; // rule 3
      // A sync or backfill re-observing an existing grant must not replace its proof with weaker evidence.
      if (state.status === 'granted' && event.kind === 'grant' && !isAffirmativeAct(event)) return seen;
      const confirmed = event.kind === 'confirm' || event.evidence.optInLevel === 'confirmed_opt_in';
      const viaPending = event.kind === 'confirm' && state.status === 'pending';
      return {
        ...seen,
        status: 'granted',
        basis: event.basis ?? 'consent',
        optInLevel: confirmed ? 'confirmed_opt_in' : (event.evidence.optInLevel ?? null),
        // Consent dates from the sign-up; the confirmation proves it (law.md R2: DOI request and confirm times).
        grantedAt: viaPending ? state.pendingSince : event.kind === 'confirm' && state.status === 'granted' ? state.grantedAt : event.occurredAt,
        confirmedAt: confirmed ? event.occurredAt : null,
        pendingSince: null,
        withdrawnAt: null,
        validUntil: typeof event.evidence.validUntil === 'string' ? event.evidence.validUntil : null,
        addressInvalid: false,
        evidenceEventIds:
          event.kind === 'confirm' && (state.status === 'pending' || state.status === 'granted')
            ? [...state.evidenceEventIds, event.id]
            : [event.id],
      };
    }
    case 'pending': {
      if (isBlocking(state) && !isAffirmativeAct(event)) return seen; // rule 3
      return {
        ...seen,
        status: 'pending', // rule 5: never sendable
        basis: null,
        optInLevel: event.evidence.optInLevel ?? null,
        grantedAt: null,
        confirmedAt: null,
        pendingSince: event.occurredAt,
        withdrawnAt: null,
        validUntil: null,
        evidenceEventIds: [event.id],
      };
    }
    case 'withdraw':
    case 'object':
    case 'erase':
      return {
        ...seen,
        status: event.kind === 'erase' ? 'erased' : 'withdrawn',
        basis: null,
        grantedAt: null,
        confirmedAt: null,
        pendingSince: null,
        withdrawnAt: event.occurredAt,
        validUntil: null,
        softOptInEnded: true, // rule 4
        softOptInEndedAt: state.softOptInEndedAt ?? event.occurredAt,
        softOptIn: {},
        evidenceEventIds: [event.id],
      };
    case 'soft_opt_in_earned': {
      if (state.softOptInEnded) return seen; // rule 4: ended for good
      const categories = event.evidence.categories ?? [];
      if (categories.length === 0) return seen;
      const grant: SoftOptInGrant = {
        earnedAt: event.occurredAt,
        validUntil: typeof event.evidence.validUntil === 'string' ? event.evidence.validUntil : null,
        eventId: event.id,
        orderId: typeof event.evidence.orderId === 'string' ? event.evidence.orderId : null,
      };
      const softOptIn: Record<string, SoftOptInGrant> = { ...state.softOptIn };
      for (const category of categories) softOptIn[category] = grant;
      return { ...seen, softOptIn };
    }
    case 'soft_opt_in_expired': {
      // Remove only grants whose window has ended by now, so an expiry computed for an older purchase
      // cannot end a soft opt-in renewed by a newer one.
      const listed = event.evidence.categories;
      const softOptIn: Record<string, SoftOptInGrant> = {};
      for (const [category, grant] of Object.entries(state.softOptIn)) {
        const targeted = listed === undefined || listed.length === 0 || listed.includes(category);
        const ended = grant.validUntil !== null && grant.validUntil <= event.occurredAt;
        if (!(targeted && ended)) softOptIn[category] = grant;
      }
      return { ...seen, softOptIn };
    }
    case 'consent_expired': {
      // Likewise only the grant the expiry was computed for ends: one whose own stored validity ended by now
      // (a renewal moves validUntil on), or the one named by `evidence.grantedAt` (the scheduler's expiry of a
      // profile validity such as FR's 36 months, law.md R3). A renewal before the expiry moment has another
      // grantedAt and survives.
      if (state.status !== 'granted') return seen;
      const storedEnded = state.validUntil !== null && state.validUntil <= event.occurredAt;
      const namedGrant = typeof event.evidence.grantedAt === 'string' && event.evidence.grantedAt === state.grantedAt;
      if (!storedEnded && !namedGrant) return seen;
      return { ...seen, status: 'expired', basis: null, evidenceEventIds: [...state.evidenceEventIds, event.id] };
    }
    case 'address_invalid':
      return { ...seen, addressInvalid: true };
  }
}
