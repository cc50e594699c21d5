/**
 * `validityEnd` and `addCalendarMonths` (src/rules/profiles.ts): windows counted in calendar months, a day the
 * target month lacks becoming its last day (the stricter reading of law.md's "N months"), and the remembered
 * answer always the computed one, whatever the order of questions.
 */
import fc from 'fast-check';
import { addCalendarMonths, validityEnd, type Validity } from '../../../src/rules/profiles';

/** Independent reference: target year and month by integer arithmetic, days per month from the leap-year rule. */
function reference(start: string, months: number): string {
  const [datePart, timePart] = start.split('T') as [string, string];
  const [y, m, d] = datePart.split('-').map(Number) as [number, number, number];
  const index = y * 12 + (m - 1) + months;
  const year = Math.floor(index / 12);
  const month = (index % 12) + 1;
  const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
  const days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]!;
  const pad = (n: number, width = 2): string => String(n).padStart(width, '0');
  return `${pad(year, 4)}-${pad(month)}-${pad(Math.min(d, days))}T${timePart}`;
}

const starts = fc.oneof(
  fc.date({ min: new Date('0000-01-01T00:00:00.000Z'), max: new Date('9989-12-31T23:59:59.999Z'), noInvalidDate: true }).map((d) => d.toISOString()),
  fc.constantFrom('2024-01-31T10:00:00.000Z', '2024-02-29T00:00:00.000Z', '2023-08-31T23:59:59.999Z', '2025-12-31T12:00:00.000Z'),
);

describe('calendar-month windows', () => {
  it.each([
    ['2024-01-31T10:00:00.000Z', 1, '2024-02-29T10:00:00.000Z'],
    ['2025-01-31T10:00:00.000Z', 1, '2025-02-28T10:00:00.000Z'],
    ['2024-02-29T00:00:00.000Z', 12, '2025-02-28T00:00:00.000Z'],
    ['2024-02-29T00:00:00.000Z', 48, '2028-02-29T00:00:00.000Z'],
    ['2026-03-31T08:30:00.000Z', 1, '2026-04-30T08:30:00.000Z'],
    ['2025-12-31T23:59:59.999Z', 2, '2026-02-28T23:59:59.999Z'],
    ['2026-06-15T12:00:00.000Z', 12, '2027-06-15T12:00:00.000Z'],
    ['0050-01-15T00:00:00.000Z', 1, '0050-02-15T00:00:00.000Z'],
    ['0000-02-29T00:00:00.000Z', 12, '0001-02-28T00:00:00.000Z'],
  ])('%s + %i months = %s', (start, months, end) => {
    expect(addCalendarMonths(new Date(start), months).toISOString()).toBe(end);
  });

  it('matches the reference for any start and month count, never running into the month after', () => {
    fc.assert(
      fc.property(starts, fc.integer({ min: 0, max: 120 }), (start, months) => {
        expect(addCalendarMonths(new Date(start), months).toISOString()).toBe(reference(start, months));
      }),
      { numRuns: 5_000 },
    );
  });

  it('remembers ends: asked first or again, the answer is the computed one, month ends and leap days included', () => {
    const rules: Validity[] = [{ kind: 'months_from_sale', months: 12 }, { kind: 'months_from_last_contact', months: 36 }, { kind: 'months_from_sale', months: 1 }, { kind: 'none' }];
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.constantFrom(...rules), starts), { minLength: 1, maxLength: 50 }), (questions) => {
        for (const [rule, at] of [...questions, ...questions]) expect(validityEnd(rule, at)).toBe(rule.kind === 'none' ? null : reference(at, rule.months));
      }),
      { numRuns: 300 },
    );
  });
});
