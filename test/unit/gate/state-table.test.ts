/**
 * `StateTable` (src/gate/facts.ts) keeps its first row in the object and the rest in a Map; for any sequence of
 * writes it must read exactly as a Map does.
 */
import fc from 'fast-check';
import { EMPTY_STATE, type ConsentState } from '../../../src/domain/consent';
import { StateTable } from '../../../src/gate/facts';

describe('StateTable', () => {
  it('reads as a Map after any sequence of writes', () => {
    const key = fc.constantFrom('email\u0000*', 'email\u0000news', 'sms\u0000*', 'sms\u0000news', '');
    fc.assert(
      fc.property(fc.array(fc.tuple(key, fc.nat(5)), { maxLength: 12 }), (writes) => {
        const table = new StateTable();
        const map = new Map<string, ConsentState>();
        const states = Array.from({ length: 6 }, (_, i): ConsentState => ({ ...EMPTY_STATE, evidenceEventIds: [`e${i}`] }));
        for (const [k, i] of writes) {
          expect(table.set(k, states[i]!)).toBe(table);
          map.set(k, states[i]!);
        }
        expect(table.size).toBe(map.size);
        for (const k of ['email\u0000*', 'email\u0000news', 'sms\u0000*', 'sms\u0000news', '', 'postal\u0000*']) expect(table.get(k)).toBe(map.get(k));
        // A key equal in content but built separately finds the same row.
        for (const k of map.keys()) expect(table.get([...k].join(''))).toBe(map.get(k));
      }),
      { numRuns: 2000 },
    );
  });
});
