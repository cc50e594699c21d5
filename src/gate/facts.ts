/**
 * What a gate decision reads about a person, loaded in batches: which subject an identity names, and for each
 * subject its identities, consent projection (every channel and purpose), jurisdiction hints and company flag.
 * `loadFacts` reads the database; `GateCache` (cache.ts) keeps the same facts in memory and falls back to it.
 */
import type { ConsentState } from '../domain/consent';
import type { Identity, IdentityKind } from '../domain/identity';
import type { TenantSettings } from '../config/manifest';
import type { CountrySource } from '../rules/decide';
import type { Audience } from '../rules/profiles';
import type { Store } from '../store/database';
import * as repo from '../store/gate.repository';
import { identityOf, type Recipient } from './recipient';

export interface SubjectFacts {
  readonly subjectId: string;
  /** Identities of the subject when loaded. */
  readonly identities: readonly Identity[];
  readonly emails: readonly string[];
  /** Customer's default address country, else the newest paid order's country; null when neither is known. */
  readonly country: { readonly country: string; readonly source: CountrySource } | null;
  readonly hasCompany: boolean;
  /** The customer's tags, lower case (empty when none are known). */
  readonly tags: readonly string[];
  /** Decoded projection states by `stateKey(channel, purpose)`: a `StateTable` when loaded, any Map-like reader in tests. */
  readonly states: Pick<ReadonlyMap<string, ConsentState>, 'get' | 'size'>;
}

/**
 * A subject's projection states by `stateKey(channel, purpose)`. Most subjects have one row (a channel's `*`
 * purpose), and the gate reads one per recipient, where the time goes on following references through memory
 * (bench:gate). So the first row is kept in the table object itself: reading it compares one key (canonical keys
 * compare as pointers) and follows one reference, where a Map would walk its hash table first. Other rows go
 * to a Map.
 */
export class StateTable implements Pick<ReadonlyMap<string, ConsentState>, 'get' | 'size'> {
  #firstKey: string | undefined;
  #firstState: ConsentState | undefined;
  #others: Map<string, ConsentState> | undefined;

  get(key: string): ConsentState | undefined {
    return key === this.#firstKey ? this.#firstState : this.#others?.get(key);
  }

  set(key: string, state: ConsentState): this {
    if (this.#firstKey === undefined || key === this.#firstKey) {
      this.#firstKey = key;
      this.#firstState = state;
    } else {
      (this.#others ??= new Map()).set(key, state);
    }
    return this;
  }

  get size(): number {
    return (this.#firstKey === undefined ? 0 : 1) + (this.#others?.size ?? 0);
  }
}

/** Facts per recipient, in input order; undefined for an unknown recipient or one whose identity cannot be normalised. */
export type ResolvedFacts = ReadonlyArray<SubjectFacts | undefined>;

/**
 * A source of facts for a batch of recipients (the database, or the in-memory cache in front of it). Each
 * recipient's identity is normalised by the source (`identityOf`); one that cannot be normalised is unknown.
 */
export interface FactsSource {
  resolve(store: Store, tenantId: string, recipients: readonly Recipient[]): Promise<ResolvedFacts>;
}

export function identityKey(identity: Identity): string {
  return `${identity.kind}:${identity.value}`;
}

/**
 * Canonical key strings by channel and purpose. Every loaded subject's state map uses the same string objects,
 * and so does a lookup with a known channel and purpose, so the lookup compares pointers instead of reading
 * another copy of the key from memory (the gate's decisions are bound by memory reads; bench:gate). Keys are
 * made canonical only from stored rows (`canonicalStateKey`, in `loadFacts`), never from a request, and the table
 * is bounded; any other key is built as before and still compares equal.
 */
const canonicalKeys = new Map<string, Map<string, string>>();
const MAX_CANONICAL_KEYS = 10_000;
let canonicalKeyCount = 0;

function buildStateKey(channel: string, purpose: string): string {
  return `${channel}\u0000${purpose}`;
}

/** The key of a channel and purpose in `SubjectFacts.states`. */
export function stateKey(channel: string, purpose: string): string {
  return canonicalKeys.get(channel)?.get(purpose) ?? buildStateKey(channel, purpose);
}

/** `stateKey`, remembered as the canonical string when there is room (stored rows only). */
function canonicalStateKey(channel: string, purpose: string): string {
  const known = canonicalKeys.get(channel)?.get(purpose);
  if (known !== undefined) return known;
  const key = buildStateKey(channel, purpose);
  if (canonicalKeyCount < MAX_CANONICAL_KEYS) {
    let byPurpose = canonicalKeys.get(channel);
    if (byPurpose === undefined) canonicalKeys.set(channel, (byPurpose = new Map()));
    byPurpose.set(purpose, key);
    canonicalKeyCount += 1;
  }
  return key;
}

/**
 * Shared `{country, source}` facts, one per country and source: few distinct values, so they stay in the CPU
 * cache instead of each subject pointing at its own copy. Bounded like the keys.
 */
const countryFacts = new Map<string, { readonly country: string; readonly source: CountrySource }>();

function countryFact(country: string, source: CountrySource): { readonly country: string; readonly source: CountrySource } {
  const key = `${source}:${country}`;
  let fact = countryFacts.get(key);
  if (fact === undefined) {
    fact = Object.freeze({ country, source });
    if (countryFacts.size < MAX_CANONICAL_KEYS) countryFacts.set(key, fact);
  }
  return fact;
}

function chunks<T>(items: readonly T[], size = repo.IN_CHUNK): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Subjects of these identities (one query per identity kind and chunk of 1,000). */
export async function lookupSubjects(store: Store, tenantId: string, identities: Iterable<Identity>): Promise<Map<string, string>> {
  const byKind = new Map<string, Set<string>>();
  for (const identity of identities) {
    const values = byKind.get(identity.kind);
    if (values) values.add(identity.value);
    else byKind.set(identity.kind, new Set([identity.value]));
  }
  const subjectOf = new Map<string, string>();
  for (const [kind, values] of byKind) {
    for (const chunk of chunks([...values])) {
      for (const row of await repo.subjectsByIdentity(store.reader, tenantId, kind, chunk)) subjectOf.set(`${kind}:${row.value}`, row.subject_id);
    }
  }
  return subjectOf;
}

/** Facts of these subjects; a subject with no rows anywhere still gets (empty) facts. */
export async function loadFacts(store: Store, tenantId: string, subjectIds: readonly string[]): Promise<Map<string, SubjectFacts>> {
  const db = store.reader;
  const identitiesOf = new Map<string, Identity[]>();
  const emails = new Map<string, string[]>();
  const states = new Map<string, StateTable>();
  const country = new Map<string, { readonly country: string; readonly source: CountrySource }>();
  const company = new Set<string>();
  const tags = new Map<string, string[]>();
  for (const subjectId of subjectIds) {
    identitiesOf.set(subjectId, []);
    emails.set(subjectId, []);
    states.set(subjectId, new StateTable());
  }
  for (const chunk of chunks(subjectIds)) {
    for (const row of await repo.identitiesOf(db, tenantId, chunk)) {
      identitiesOf.get(row.subject_id)?.push({ kind: row.kind as IdentityKind, value: row.value });
      if (row.kind === 'email') emails.get(row.subject_id)?.push(row.value);
    }
    for (const row of await repo.projectionRows(db, tenantId, chunk)) {
      states.get(row.subject_id)?.set(canonicalStateKey(row.channel, row.purpose), JSON.parse(row.state) as ConsentState);
    }
    for (const row of await repo.profilesOf(db, tenantId, chunk)) {
      if (row.country) country.set(row.subject_id, countryFact(row.country, 'customer_address'));
      if (row.company) company.add(row.subject_id);
      if (row.tags) tags.set(row.subject_id, (JSON.parse(row.tags) as string[]).map((t) => t.toLowerCase()));
    }
    // Newest first: the first country seen per subject wins.
    for (const row of await repo.purchaseCountries(db, tenantId, chunk)) {
      if (!country.has(row.subject_id)) country.set(row.subject_id, countryFact(row.country, 'order_billing'));
    }
  }
  const facts = new Map<string, SubjectFacts>();
  for (const subjectId of subjectIds) {
    facts.set(subjectId, {
      subjectId,
      identities: identitiesOf.get(subjectId)!,
      emails: emails.get(subjectId)!,
      country: country.get(subjectId) ?? null,
      hasCompany: company.has(subjectId),
      tags: tags.get(subjectId) ?? [],
      states: states.get(subjectId)!,
    });
  }
  return facts;
}

/** Straight from the database on every call (the CLI, single-contact checks, and GATE_CACHE_MAX_SUBJECTS=0). */
export const databaseFacts: FactsSource = {
  async resolve(store, tenantId, recipients) {
    const identities = recipients.map(identityOf);
    const subjectOf = await lookupSubjects(store, tenantId, identities.filter((i): i is Identity => i !== null));
    const factsOf = await loadFacts(store, tenantId, [...new Set(subjectOf.values())]);
    return identities.map((identity) => {
      const subjectId = identity === null ? undefined : subjectOf.get(identityKey(identity));
      return subjectId === undefined ? undefined : factsOf.get(subjectId);
    });
  },
};

/**
 * Jurisdiction of a subject (issue 4 §2): the default address country, else the newest paid order's country,
 * else the shop's country (setting `shopCountry`), else none (the EU default profile applies).
 */
export function countryOf(facts: SubjectFacts | undefined, shopCountry: string | null): { country: string | null; source: CountrySource } {
  if (facts?.country) return facts.country;
  return shopCountry ? { country: shopCountry, source: 'shop_country' } : { country: null, source: 'none' };
}

/** The merchant's B2B rule (setting `b2b`), with its lists as sets, built once per batch. Null: everyone is B2C. */
export interface B2bRule {
  readonly companyOnAddress: boolean;
  /** Lower case. */
  readonly customerTags: ReadonlySet<string>;
  readonly emailDomains: ReadonlySet<string>;
}

export function b2bRuleOf(b2b: TenantSettings['b2b']): B2bRule | null {
  if (b2b === undefined) return null;
  return {
    companyOnAddress: b2b.companyOnAddress,
    customerTags: new Set(b2b.customerTags.map((t) => t.trim().toLowerCase())),
    emailDomains: new Set(b2b.emailDomains),
  };
}

/**
 * Audience (issue 4 §2): B2B when the merchant's rule says so (company on the address, a customer tag in the
 * list, compared without case, or an email domain in the list); otherwise B2C.
 */
export function audienceOf(facts: SubjectFacts | undefined, rule: B2bRule | null): Audience {
  if (facts === undefined || rule === null) return 'B2C';
  if (rule.companyOnAddress && facts.hasCompany) return 'B2B';
  if (rule.customerTags.size > 0 && facts.tags.some((t) => rule.customerTags.has(t))) return 'B2B';
  return facts.emails.some((e) => rule.emailDomains.has(e.slice(e.lastIndexOf('@') + 1))) ? 'B2B' : 'B2C';
}
