/**
 * The per-tenant hash chain: hash_n = SHA-256(hash_{n-1} + "\n" + canonical(event_n)), where the canonical
 * form has sorted keys and no insignificant white space (the subset of RFC 8785 our values need: strings,
 * finite numbers, booleans, null, arrays, objects). The sequence number is inside the hashed record, so a
 * reordered, inserted or deleted row breaks the chain at the first place it touches.
 */
import { createHash } from 'node:crypto';

export const GENESIS_HASH = '0'.repeat(64);

export function canonicalJson(value: unknown): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError('canonicalJson: non-finite number');
      return JSON.stringify(value);
    case 'object': {
      if (Array.isArray(value)) return `[${value.map((item) => canonicalJson(item === undefined ? null : item)).join(',')}]`;
      const entries = Object.entries(value as Record<string, unknown>)
        .filter(([, v]) => v !== undefined)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
    }
    default:
      throw new TypeError(`canonicalJson: unsupported ${typeof value}`);
  }
}

/** The exact columns of a ledger row that are covered by its hash (evidence as its stored text). */
export interface ChainedRecord {
  readonly tenant_id: string;
  readonly seq: number;
  readonly id: string;
  readonly subject_id: string;
  readonly channel: string;
  readonly purpose: string;
  readonly kind: string;
  readonly basis: string | null;
  readonly occurred_at: string;
  readonly received_at: string;
  readonly source: string;
  readonly source_delivery_id: string | null;
  readonly evidence: string;
}

export function chainHash(prevHash: string, record: ChainedRecord): string {
  const covered: ChainedRecord = {
    tenant_id: record.tenant_id,
    seq: record.seq,
    id: record.id,
    subject_id: record.subject_id,
    channel: record.channel,
    purpose: record.purpose,
    kind: record.kind,
    basis: record.basis,
    occurred_at: record.occurred_at,
    received_at: record.received_at,
    source: record.source,
    source_delivery_id: record.source_delivery_id,
    evidence: record.evidence,
  };
  return createHash('sha256').update(prevHash).update('\n').update(canonicalJson(covered)).digest('hex');
}
