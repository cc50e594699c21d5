/**
 * The gate's recipients fast path (src/gate/gate.ts `parseGateRequest`) accepts exactly what the zod schema
 * accepts and yields the same request, for arbitrary bodies; whatever it does not take goes through zod, which
 * words the error.
 */
import fc from 'fast-check';
import { AppError } from '../../../src/domain/errors';
import { gateRequestSchema, parseGateRequest } from '../../../src/gate/gate';

const fieldValue = fc.oneof(
  fc.string({ maxLength: 25 }),
  fc.stringMatching(/^\d{1,22}$/),
  fc.constantFrom('a@b.c', 'ab', 'abc', '+31612345678', '', ' 123', '123 ', 'x'.repeat(320), 'x'.repeat(321), 'x'.repeat(40), 'x'.repeat(41), '1'.repeat(20), '1'.repeat(21)),
  fc.integer({ min: -5, max: 10 ** 12 }),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
);
const recipient = fc.oneof(
  // Mostly well-formed, so accepted bodies are common and boundaries get probed.
  fc.constantFrom('email', 'phone', 'shopifyCustomerId', 'hubspotContactId').chain((key) => fieldValue.map((value) => ({ [key]: value }))),
  fc.dictionary(fc.constantFrom('email', 'phone', 'shopifyCustomerId', 'hubspotContactId'), fieldValue, { minKeys: 0, maxKeys: 3 }),
  fc.dictionary(fc.constantFrom('email', 'phone', 'extra', '__proto__', 'shopifyCustomerId'), fieldValue, { minKeys: 1, maxKeys: 2 }),
  fc.constantFrom(null, 'a@b.c', [], 42),
);
const body = fc.record(
  {
    channel: fc.constantFrom('email', 'email', 'sms', 'fax'),
    purpose: fc.constantFrom('*', 'newsletter', 'newsletter', 'Bad Purpose'),
    categories: fc.constantFrom([], ['footwear'], ['footwear'], ['BAD']),
    recipients: fc.oneof({ weight: 9, arbitrary: fc.array(recipient, { minLength: 0, maxLength: 3 }) }, { weight: 1, arbitrary: fc.constant('not a list') }),
    extra: fc.constant(1),
  },
  { requiredKeys: ['channel', 'recipients'] },
);

function outcome(parse: () => unknown): { ok: true; value: unknown } | { ok: false } {
  try {
    return { ok: true, value: parse() };
  } catch (err) {
    expect(err).toBeInstanceOf(AppError);
    return { ok: false };
  }
}

describe('parseGateRequest', () => {
  it('answers exactly as the zod schema does, for arbitrary bodies', () => {
    fc.assert(
      fc.property(body, (input) => {
        const fast = outcome(() => parseGateRequest(input));
        const zod = gateRequestSchema.safeParse(input);
        expect(fast.ok).toBe(zod.success);
        if (fast.ok && zod.success) expect(fast.value).toEqual(zod.data);
      }),
      { numRuns: 5000 },
    );
  });

  it('still words every problem through zod', () => {
    expect(() => parseGateRequest({ channel: 'email', recipients: [{ email: 'a@b.c', phone: '+3161234' }] })).toThrow(AppError);
    try {
      parseGateRequest({ channel: 'email', recipients: [{ email: 'a@b.c' }, { fax: '1' }] });
    } catch (err) {
      expect((err as AppError).details).toEqual(expect.arrayContaining([expect.stringMatching(/^recipients\.1/)]));
    }
  });
});
