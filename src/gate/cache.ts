/**
 * In-memory index of gate facts per tenant, kept exact by the change feed (src/ledger/changes.ts).
 *
 * Why: a decision from the database costs four indexed reads per recipient (about 8 µs on SQLite), which caps
 * the gate near 100,000 decisions/s before any rule runs; issue 4 asks for 200,000. Why it is safe: before every
 * batch the cache reads the tenant's change seq (one primary-key read) and evicts every subject recorded after
 * its watermark, so a batch never decides on facts older than the last change committed before it started. A
 * withdrawal committed by this process, another instance or the CLI is seen by the next batch.
 *
 * - Entries are loaded on first use (misses go to the database in batches) and evicted oldest first beyond
 *   `maxSubjects` (GATE_CACHE_MAX_SUBJECTS, default 500,000 across tenants; 0 turns the cache off).
 * - Identities looked up but unknown are remembered until the tenant's next change of any kind (a new identity
 *   may be what made them known).
 * - A tenant idle longer than the feed's retention, or with more than `maxDelta` changes since the last batch,
 *   starts over (its whole index is dropped) rather than read a feed that may have been pruned.
 * - Batches of one tenant run one at a time, so a load that started before a change cannot land after the
 *   eviction that change caused.
 */
import { normalizeIdentity, type Identity, type IdentityKind } from '../domain/identity';
import { CHANGE_RETENTION_MS } from '../ledger/changes';
import type { Store } from '../store/database';
import * as changes from '../store/change.repository';
import { identityKey, loadFacts, lookupSubjects, type FactsSource, type ResolvedFacts, type SubjectFacts } from './facts';
import { recipientKind, recipientValue, type Recipient } from './recipient';

export interface GateCacheOptions {
  /** Most subjects kept across tenants. Default 500,000 (roughly 1 KB each). */
  readonly maxSubjects: number;
  /** Most changed subjects applied as evictions; more drops the tenant's index. Default 10,000. */
  readonly maxDelta: number;
  /** Monotonic milliseconds (injected for tests). */
  readonly nowMs: () => number;
}

interface TenantIndex {
  watermark: number;
  syncedAtMs: number;
  /** Facts by identity kind and value (per-kind maps: no key string is built per lookup). */
  readonly byIdentity: Map<IdentityKind, Map<string, SubjectFacts>>;
  readonly unknown: Map<IdentityKind, Set<string>>;
  unknownCount: number;
  readonly facts: Map<string, SubjectFacts>;
  /** Tail of the batches of this tenant (one at a time). */
  queue: Promise<unknown>;
}

export interface GateCacheStats {
  readonly tenants: number;
  readonly subjects: number;
  readonly hits: number;
  readonly misses: number;
  readonly evictions: number;
  readonly resets: number;
}

export class GateCache implements FactsSource {
  readonly #options: GateCacheOptions;
  readonly #tenants = new Map<string, TenantIndex>();
  #subjects = 0;
  #hits = 0;
  #misses = 0;
  #evictions = 0;
  #resets = 0;

  constructor(options: Partial<GateCacheOptions> = {}) {
    this.#options = { maxSubjects: 500_000, maxDelta: 10_000, nowMs: () => performance.now(), ...options };
  }

  stats(): GateCacheStats {
    return { tenants: this.#tenants.size, subjects: this.#subjects, hits: this.#hits, misses: this.#misses, evictions: this.#evictions, resets: this.#resets };
  }

  resolve(store: Store, tenantId: string, recipients: readonly Recipient[]): Promise<ResolvedFacts> {
    const index = this.#indexOf(tenantId);
    const run = index.queue.then(() => this.#resolve(store, tenantId, index, recipients));
    index.queue = run.catch(() => undefined);
    return run;
  }

  #indexOf(tenantId: string): TenantIndex {
    let index = this.#tenants.get(tenantId);
    if (index === undefined) {
      index = { watermark: -1, syncedAtMs: 0, byIdentity: new Map(), unknown: new Map(), unknownCount: 0, facts: new Map(), queue: Promise.resolve() };
      this.#tenants.set(tenantId, index);
    }
    return index;
  }

  #drop(index: TenantIndex): void {
    this.#subjects -= index.facts.size;
    index.facts.clear();
    index.byIdentity.clear();
    this.#clearUnknown(index);
  }

  #clearUnknown(index: TenantIndex): void {
    index.unknown.clear();
    index.unknownCount = 0;
  }

  #evict(index: TenantIndex, subjectId: string): void {
    const facts = index.facts.get(subjectId);
    if (facts === undefined) return;
    for (const { kind, value } of facts.identities) {
      const byValue = index.byIdentity.get(kind);
      if (byValue?.get(value) === facts) byValue.delete(value);
    }
    index.facts.delete(subjectId);
    this.#subjects -= 1;
  }

  /** Bring the index up to the tenant's last committed change. */
  async #sync(store: Store, tenantId: string, index: TenantIndex): Promise<void> {
    const head = await changes.currentChangeSeq(store.reader, store.dialect, tenantId);
    const now = this.#options.nowMs();
    const idle = now - index.syncedAtMs > CHANGE_RETENTION_MS / 2;
    if (index.watermark < 0 || idle || head < index.watermark) {
      if (index.facts.size > 0 || index.unknownCount > 0) this.#resets += 1;
      this.#drop(index);
    } else if (head > index.watermark) {
      const changed = await changes.changedSubjects(store.reader, tenantId, index.watermark, head, this.#options.maxDelta);
      if (changed.length > this.#options.maxDelta) {
        this.#resets += 1;
        this.#drop(index);
      } else {
        for (const subjectId of changed) this.#evict(index, subjectId);
        this.#clearUnknown(index);
      }
    }
    index.watermark = head;
    index.syncedAtMs = now;
  }

  async #resolve(store: Store, tenantId: string, index: TenantIndex, recipients: readonly Recipient[]): Promise<ResolvedFacts> {
    await this.#sync(store, tenantId, index);
    const result: Array<SubjectFacts | undefined> = new Array<SubjectFacts | undefined>(recipients.length).fill(undefined);
    const missing = new Map<string, { identity: Identity; positions: number[] }>();
    // The per-kind maps of the previous recipient's kind: batches are mostly of one kind.
    let kind: IdentityKind | null = null;
    let byValue: Map<string, SubjectFacts> | undefined;
    let unknownValues: Set<string> | undefined;
    for (let i = 0; i < recipients.length; i++) {
      const recipient = recipients[i]!;
      const given = recipientKind(recipient);
      const raw = recipientValue(recipient);
      if (given === null || raw === undefined) continue;
      if (given !== kind) {
        kind = given;
        byValue = index.byIdentity.get(kind);
        unknownValues = index.unknown.get(kind);
      }
      // The value as given first. Only normal values are indexed (below, when loaded) or remembered as unknown
      // (they come from `normalizeIdentity`), and normalising a normal value gives it back, so a value found as
      // given is that identity: a known or remembered-unknown recipient costs one or two lookups, no
      // normalisation and no allocation.
      let facts: SubjectFacts | undefined;
      if (typeof raw === 'string') {
        facts = byValue?.get(raw);
        if (facts !== undefined) {
          result[i] = facts;
          continue;
        }
        if (unknownValues?.has(raw) === true) continue;
      }
      const identity = normalizeIdentity(given, raw);
      if (identity === null) continue;
      if (identity.value !== raw) facts = byValue?.get(identity.value);
      if (facts !== undefined) {
        result[i] = facts;
      } else if (unknownValues?.has(identity.value) !== true) {
        const key = identityKey(identity);
        const entry = missing.get(key);
        if (entry) entry.positions.push(i);
        else missing.set(key, { identity, positions: [i] });
      }
    }
    this.#hits += recipients.length - missing.size;
    if (missing.size === 0) return result;

    this.#misses += missing.size;
    const found = await lookupSubjects(store, tenantId, [...missing.values()].map((m) => m.identity));
    const toLoad = new Set<string>();
    for (const [key, { identity }] of missing) {
      const subjectId = found.get(key);
      if (subjectId === undefined) this.#rememberUnknown(index, identity);
      else if (!index.facts.has(subjectId)) toLoad.add(subjectId);
    }
    const loaded = await loadFacts(store, tenantId, [...toLoad]);
    for (const [subjectId, facts] of loaded) {
      index.facts.set(subjectId, facts);
      this.#subjects += 1;
      // Only identities the subject's own rows list: one that moved between the two reads stays unmapped and
      // is looked up again next time. Only normal values: every write normalises (src/subjects), and a stored
      // value that is not normal could never be looked up, so it must not be found as given either.
      for (const { kind, value } of facts.identities) {
        if (normalizeIdentity(kind, value)?.value !== value) continue;
        let byValue = index.byIdentity.get(kind);
        if (byValue === undefined) index.byIdentity.set(kind, (byValue = new Map()));
        byValue.set(value, facts);
      }
    }
    // This batch answers from its own lookup.
    for (const [key, { positions }] of missing) {
      const subjectId = found.get(key);
      const facts = subjectId === undefined ? undefined : (loaded.get(subjectId) ?? index.facts.get(subjectId));
      for (const position of positions) result[position] = facts;
    }
    this.#trim(index);
    return result;
  }

  #rememberUnknown(index: TenantIndex, identity: Identity): void {
    let values = index.unknown.get(identity.kind);
    if (values === undefined) index.unknown.set(identity.kind, (values = new Set()));
    values.add(identity.value);
    index.unknownCount += 1;
  }

  /** Evict oldest-loaded subjects beyond the bound, this tenant's first, then other tenants'. */
  #trim(current: TenantIndex): void {
    if (current.unknownCount > this.#options.maxSubjects) this.#clearUnknown(current);
    const excess = this.#subjects - this.#options.maxSubjects;
    if (excess <= 0) return;
    let toEvict = excess + Math.floor(this.#options.maxSubjects / 10);
    for (const index of [current, ...this.#tenants.values()]) {
      for (const subjectId of index.facts.keys()) {
        if (toEvict <= 0) return;
        this.#evict(index, subjectId);
        this.#evictions += 1;
        toEvict -= 1;
      }
    }
  }
}
