import fc from 'fast-check';
import { isNormalEmail, normalizeIdentity } from '../../../src/domain/identity';

/** The rule as written before the fast path: trim, lower-case, the pattern, at most 320 characters. */
function reference(raw: string): string | null {
  const email = raw.trim().toLowerCase();
  return /^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email) && email.length <= 320 ? email : null;
}

/** Strings built from the characters that matter to the rule, so most runs are near-emails, not noise. */
const emailish = fc
  .array(fc.constantFrom('a', 'b', 'Z', '0', '.', '@', '-', '+', ' ', '\t', '\u00a0', 'É', 'ß', '\u212a', '_'), { maxLength: 24 })
  .map((chars) => chars.join(''));

describe('email normalisation fast path', () => {
  it('gives the same identity as the full rule for any string', () => {
    fc.assert(
      fc.property(fc.oneof(emailish, fc.string(), fc.emailAddress()), (raw) => {
        const expected = reference(raw);
        expect(normalizeIdentity('email', raw)).toEqual(expected === null ? null : { kind: 'email', value: expected });
        // Whatever the fast check accepts is already normal: the full rule leaves it as it is.
        if (isNormalEmail(raw)) expect(expected).toBe(raw);
      }),
      { numRuns: 20_000 },
    );
  });

  it.each([
    ['ana@example.com', true],
    ['Ana@example.com', false],
    [' ana@example.com', false],
    ['ana@example', false],
    ['ana@.com', false],
    ['ana@example.', false],
    ['@example.com', false],
    ['a@b@example.com', false],
    ['a@b.c.', false], // valid, but left to the full path (only the last dot is tried)
    ['ana@exämple.com', false],
    [`${'a'.repeat(308)}@example.com`, true], // 320 characters
    [`${'a'.repeat(309)}@example.com`, false],
  ])('isNormalEmail(%j) is %s', (raw, expected) => {
    expect(isNormalEmail(raw)).toBe(expected);
  });
});

describe('normalisation is idempotent', () => {
  // The gate cache relies on it (src/gate/cache.ts): it looks a recipient's value up as given, and only normal
  // values are in its index, so a value found as given must be what normalising it would give.
  const phoneish = fc.array(fc.constantFrom('+', '0', '1', '4', '9', ' ', '(', ')', '-', '.', '/', 'x'), { maxLength: 20 }).map((chars) => chars.join(''));
  const idish = fc.oneof(fc.stringMatching(/^\s?\d{1,22}\s?$/), fc.nat().map((n) => `gid://shopify/Customer/${n}`), fc.string());
  const cases = fc.oneof(
    fc.tuple(fc.constant('email' as const), fc.oneof(emailish, fc.string(), fc.emailAddress())),
    fc.tuple(fc.constant('phone' as const), fc.oneof(phoneish, fc.string())),
    fc.tuple(fc.constantFrom('shopify_customer' as const, 'hubspot_contact' as const), idish),
  );

  it('normalising a normal value gives it back, for every kind', () => {
    fc.assert(
      fc.property(cases, ([kind, raw]) => {
        const once = normalizeIdentity(kind, raw);
        if (once !== null) expect(normalizeIdentity(kind, once.value)).toEqual(once);
      }),
      { numRuns: 20_000 },
    );
  });
});
