/**
 * The Shopify mapping table (README "Mapping"): each consent state becomes the documented event kind, with the
 * evidence kept, ordered by consent_updated_at; malformed payloads are permanent failures (dead-lettered).
 */
import { PermanentDeliveryError, type InboundDelivery } from '../../../src/domain/inbound';
import { mapShopifyDelivery } from '../../../webhooks/shopify/map';

const delivery = (topic: string, payload: unknown, meta: Record<string, string> = {}): InboundDelivery => ({
  platform: 'shopify',
  topic,
  deliveryKey: 'wh-1',
  payload,
  meta,
  receivedAt: '2026-06-01T12:00:00.000Z',
});

const emailConsent = (state: string, extra: Record<string, unknown> = {}) =>
  delivery('customers_email_marketing_consent/update', {
    customer_id: 42,
    email_address: 'Ana@Example.com',
    email_marketing_consent: { state, opt_in_level: 'single_opt_in', consent_updated_at: '2026-05-02T10:20:11+02:00', ...extra },
  });

describe('email consent states', () => {
  it.each([
    ['subscribed', 'grant', 'consent'],
    ['pending', 'pending', 'consent'],
    ['unsubscribed', 'withdraw', null],
    ['redacted', 'erase', null],
    ['invalid', 'address_invalid', null],
  ])('%s → %s', (state, kind, basis) => {
    const [effect] = mapShopifyDelivery(emailConsent(state));
    expect(effect).toMatchObject({
      kind: 'consent',
      identities: [
        { kind: 'shopify_customer', value: '42' },
        { kind: 'email', value: 'ana@example.com' },
      ],
      events: [{ channel: 'email', purpose: '*', kind, basis, occurredAt: '2026-05-02T08:20:11.000Z', source: 'shopify', sourceDeliveryId: 'wh-1' }],
    });
    if (effect?.kind !== 'consent') throw new Error('expected consent');
    expect(effect.events[0]!.evidence).toMatchObject({ optInLevel: 'single_opt_in', shopifyState: state });
    expect(effect.events[0]!.evidence.affirmative === true).toBe(kind === 'grant' || kind === 'pending');
  });

  it('not_subscribed grants nothing (and withdraws nothing)', () => {
    const effects = mapShopifyDelivery(emailConsent('not_subscribed'));
    expect(effects.map((e) => e.kind)).toEqual(['identify', 'skip']);
  });

  it('falls back to X-Shopify-Triggered-At when consent_updated_at is null', () => {
    const d = { ...emailConsent('unsubscribed', { consent_updated_at: null }), meta: { triggeredAt: '2026-05-05T00:00:00Z' } };
    const [effect] = mapShopifyDelivery(d);
    expect(effect).toMatchObject({ events: [{ occurredAt: '2026-05-05T00:00:00.000Z' }] });
  });

  it('refuses an unknown state or a missing customer id as a permanent failure', () => {
    expect(() => mapShopifyDelivery(emailConsent('maybe'))).toThrow(PermanentDeliveryError);
    expect(() => mapShopifyDelivery(delivery('customers_email_marketing_consent/update', { email_address: 'a@b.co' }))).toThrow(PermanentDeliveryError);
    expect(() => mapShopifyDelivery(emailConsent('subscribed', { consent_updated_at: 'yesterday' }))).toThrow(/consent_updated_at/);
  });
});

describe('SMS consent', () => {
  it('keeps consent_collected_from and the phone identity', () => {
    const [effect] = mapShopifyDelivery(
      delivery('customers_marketing_consent/update', {
        id: 42,
        phone: '+31 6 1234 5678',
        sms_marketing_consent: { state: 'unsubscribed', opt_in_level: null, consent_updated_at: '2026-05-02T10:21:40Z', consent_collected_from: 'OTHER' },
      }),
    );
    expect(effect).toMatchObject({
      identities: [
        { kind: 'shopify_customer', value: '42' },
        { kind: 'phone', value: '+31612345678' },
      ],
      events: [{ channel: 'sms', kind: 'withdraw', evidence: { collectedFrom: 'OTHER' } }],
    });
  });
  it('has no invalid state (email only)', () => {
    expect(() =>
      mapShopifyDelivery(delivery('customers_marketing_consent/update', { id: 1, phone: null, sms_marketing_consent: { state: 'invalid' } })),
    ).toThrow(PermanentDeliveryError);
  });
});

describe('orders', () => {
  const order = { id: 9, email: null, phone: null, created_at: '2026-05-03T09:00:00Z', updated_at: '2026-05-03T09:05:00Z', customer: null, line_items: [] };
  it('a guest order without email or phone is skipped, not failed', () => {
    expect(mapShopifyDelivery(delivery('orders/paid', order))).toEqual([{ kind: 'skip', reason: 'order names no customer, email or phone' }]);
  });
  it('orders/create records identities only; orders/paid a purchase', () => {
    const withEmail = { ...order, email: 'guest@example.com', billing_address: { country_code: 'nl' } };
    expect(mapShopifyDelivery(delivery('orders/create', withEmail)).map((e) => e.kind)).toEqual(['identify']);
    expect(mapShopifyDelivery(delivery('orders/paid', withEmail))).toMatchObject([
      { kind: 'purchase', identities: [{ kind: 'email', value: 'guest@example.com' }], purchase: { orderId: '9', country: 'NL', buyerAcceptsMarketing: null, lines: [] } },
    ]);
  });
});
