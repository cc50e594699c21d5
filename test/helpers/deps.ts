/** Deterministic side effects for tests: a settable clock and counting ids. */
import type { Clock, IdGenerator } from '../../src/ports';

export function fixedClock(iso = '2026-06-01T12:00:00.000Z'): Clock & { set(iso: string): void; advance(ms: number): void } {
  let now = new Date(iso);
  return {
    now: () => new Date(now),
    set: (next) => {
      now = new Date(next);
    },
    advance: (ms) => {
      now = new Date(now.getTime() + ms);
    },
  };
}

export function countingIds(prefix = 'id'): IdGenerator {
  let n = 0;
  return { next: () => `${prefix}-${String(++n).padStart(8, '0')}` };
}
