/**
 * Timestamps in the ledger are ISO-8601 UTC with milliseconds (`2026-05-02T08:20:11.000Z`), so that they
 * sort lexicographically, hash identically on every database, and compare without parsing.
 */
export type IsoTimestamp = string;

/**
 * How far a source's timestamp may lie ahead of ours (its clock may run a little fast): 5 minutes. A later one is
 * refused (gate objections, the HubSpot "Record consent change" action) or, for a webhook that cannot be refused,
 * dated at its receipt (src/inbox/apply.ts).
 */
export const MAX_SOURCE_CLOCK_SKEW_MS = 5 * 60_000;

const ISO_UTC_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** Normalise a source timestamp (ISO with any offset, epoch ms, Date) to the canonical form; null if invalid. */
export function toIsoTimestamp(input: string | number | Date): IsoTimestamp | null {
  const date = input instanceof Date ? input : new Date(input);
  const ms = date.getTime();
  if (!Number.isFinite(ms)) return null;
  // Years outside 0000–9999 do not serialise to the fixed-width form.
  if (ms < -62167219200000 || ms > 253402300799999) return null;
  return date.toISOString();
}

export function isIsoTimestamp(value: unknown): value is IsoTimestamp {
  return typeof value === 'string' && ISO_UTC_MS.test(value) && toIsoTimestamp(value) === value;
}
