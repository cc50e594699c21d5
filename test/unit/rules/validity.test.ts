/**
 * `validityEnd` (src/rules/profiles.ts) remembers the ends it computed per rule and start: the remembered answer
 * must always be the computed one, whatever the order of questions.
 */
import fc from 'fast-check';
import { validityEnd, type Validity } from '../../../src/rules/profiles';

function computed(validity: Validity, start: string): string | null {
  if (validity.kind === 'none') return null;
  const date = new Date(start);
  date.setUTCMonth(date.getUTCMonth() + validity.months);
  return date.toISOString();
}

describe('validityEnd', () => {
  it('answers as the plain computation, asked first or again, month ends and leap days included', () => {
    const rules: Validity[] = [{ kind: 'months_from_sale', months: 12 }, { kind: 'months_from_last_contact', months: 36 }, { kind: 'months_from_sale', months: 1 }, { kind: 'none' }];
    const start = fc.date({ min: new Date('2000-01-01T00:00:00.000Z'), max: new Date('2100-01-01T00:00:00.000Z'), noInvalidDate: true }).map((d) => d.toISOString());
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.constantFrom(...rules), fc.oneof(start, fc.constantFrom('2024-01-31T10:00:00.000Z', '2024-02-29T00:00:00.000Z'))), { minLength: 1, maxLength: 50 }), (questions) => {
        for (const [rule, at] of [...questions, ...questions]) expect(validityEnd(rule, at)).toBe(computed(rule, at));
      }),
      { numRuns: 300 },
    );
    expect(validityEnd({ kind: 'months_from_sale', months: 1 }, '2024-01-31T10:00:00.000Z')).toBe('2024-03-02T10:00:00.000Z');
  });
});
