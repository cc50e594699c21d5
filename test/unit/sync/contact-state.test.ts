/**
 * The HubSpot contact state (src/sync/contact-state.ts) and the gate agree on which soft opt-ins are live: a grant
 * whose stored end is later than the end the gate computes (the merchant's cap, the row's window, or an end stored
 * before windows stopped rolling over into the next month) is not listed, and does not make the contact blocked.
 */
import { defaultSettings } from '../../../src/config/manifest';
import { EMPTY_STATE, type ConsentState } from '../../../src/domain/consent';
import { HUBSPOT_PROPERTIES } from '../../../src/domain/hubspot-properties';
import type { SubjectFacts } from '../../../src/gate/facts';
import { stateKey } from '../../../src/gate/facts';
import { contactStateOf } from '../../../src/sync/contact-state';

function factsWith(state: ConsentState): SubjectFacts {
  return {
    subjectId: 's1',
    identities: [{ kind: 'email', value: 'ana@example.com' }],
    emails: ['ana@example.com'],
    country: { country: 'NL', source: 'customer_address' },
    hasCompany: false,
    tags: [],
    states: new Map([[stateKey('email', '*'), state]]),
  };
}

describe('contact state and the gate on soft opt-in ends', () => {
  // Earned 31 January; stored end 2 March (an end computed before month ends were clamped). With a one-month
  // merchant cap the gate ends `shoes` on 29 February 2024; `hats` lasts until 15 March.
  const state: ConsentState = {
    ...EMPTY_STATE,
    softOptIn: {
      shoes: { earnedAt: '2024-01-31T10:00:00.000Z', validUntil: '2024-03-02T10:00:00.000Z', eventId: 'e-shoes', orderId: 'o1' },
      hats: { earnedAt: '2024-02-15T10:00:00.000Z', validUntil: '2024-03-15T10:00:00.000Z', eventId: 'e-hats', orderId: 'o2' },
    },
  };
  const settings = { ...defaultSettings(), softOptInMaxMonths: 1 };

  it.each([
    ['2024-02-27T12:00:00.000Z', 'allowed', 'hats;shoes', '2024-02-29T10:00:00.000Z'],
    ['2024-03-01T12:00:00.000Z', 'allowed', 'hats', '2024-03-15T10:00:00.000Z'],
    ['2024-03-16T12:00:00.000Z', 'blocked', '', ''],
  ])('at %s the email gate is %s with live categories "%s" until %s', (now, gate, categories, validUntil) => {
    const contact = contactStateOf(factsWith(state), settings, now);
    expect(contact.properties[HUBSPOT_PROPERTIES.emailGate]).toBe(gate);
    expect(contact.properties[HUBSPOT_PROPERTIES.softOptInCategories]).toBe(categories);
    expect(contact.properties[HUBSPOT_PROPERTIES.softOptInValidUntil]).toBe(validUntil);
    expect(contact.suppressed).toBe(gate === 'blocked');
  });
});
