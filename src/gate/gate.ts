/**
 * The send gate (issue 4 §8, §10): decisions for up to 10,000 recipients of one campaign, from local state only
 * (no outbound call). Each recipient is looked up by one identity, its consent state for the channel and purpose
 * read from the projection, its jurisdiction and audience resolved, and `decide` applied.
 *
 * Jurisdiction (issue 4 §2): country of the customer's default address, else of the newest paid order's billing
 * address, else the shop's country (setting `shopCountry`), else none (EU default profile). Audience: B2B when
 * the merchant's rule says so (setting `b2b`: company on the address, or an email domain in the list); otherwise
 * B2C. Customer tags are not stored yet, so `b2b.customerTags` does not classify anyone (README says so).
 */
import { z } from 'zod';
import { CHANNELS, EMPTY_STATE, type ConsentState } from '../domain/consent';
import { AppError } from '../domain/errors';
import { normalizeIdentity, type IdentityKind } from '../domain/identity';
import { decide, type CountrySource, type Decision, type DecisionSettings } from '../rules/decide';
import { PROFILES_VERSION, profileForCountry, type Audience } from '../rules/profiles';
import type { Store } from '../store/database';
import * as repo from '../store/gate.repository';
import type { TenantSettings } from '../config/manifest';
import type { Tenant } from '../tenants/tenants';

/** Most recipients per request (issue 4 §8). */
export const MAX_RECIPIENTS = 10_000;

const recipientSchema = z
  .strictObject({
    email: z.string().min(3).max(320).optional(),
    phone: z.string().min(3).max(40).optional(),
    shopifyCustomerId: z.union([z.string().regex(/^\d{1,20}$/), z.number().int().positive()]).optional(),
    hubspotContactId: z.union([z.string().regex(/^\d{1,20}$/), z.number().int().positive()]).optional(),
  })
  .refine((r) => Object.values(r).filter((v) => v !== undefined).length === 1, 'give exactly one of email, phone, shopifyCustomerId, hubspotContactId');

export const gateRequestSchema = z.strictObject({
  channel: z.enum(CHANNELS),
  /** A purpose id of the tenant's settings; default `*` (any marketing purpose). */
  purpose: z.string().regex(/^(\*|[a-z0-9][a-z0-9_-]{0,63})$/).default('*'),
  /** Category groups the campaign promotes. */
  categories: z.array(z.string().regex(/^[a-z0-9][a-z0-9_-]{0,63}$/)).max(100).default([]),
  /** Decision time (ISO-8601 with zone); default now. Windows and dated rules are evaluated at this time. */
  at: z.iso.datetime({ offset: true }).optional(),
  professionalContext: z.boolean().default(false),
  registersCleared: z.array(z.string().regex(/^[A-Z]{2}_[A-Z_]{2,40}$/)).max(20).default([]),
  recipients: z.array(recipientSchema).min(1).max(MAX_RECIPIENTS, `at most ${MAX_RECIPIENTS} recipients per request`),
});
export type GateRequest = z.infer<typeof gateRequestSchema>;
export type Recipient = GateRequest['recipients'][number];

/** Validate a request body; every problem is listed in one `bad_request`. */
export function parseGateRequest(body: unknown): GateRequest {
  const result = gateRequestSchema.safeParse(body);
  if (result.success) return result.data;
  const details = result.error.issues.slice(0, 20).map((i) => `${i.path.length ? i.path.join('.') : '(body)'}: ${i.message}`);
  throw new AppError('bad_request', 'invalid gate request', { details });
}

export interface GateResult extends Omit<Decision, 'conditions'> {
  /** Only with `explain`. */
  readonly conditions?: Decision['conditions'];
}

export interface GateResponse {
  readonly decidedAt: string;
  readonly rulesVersion: string;
  readonly results: readonly GateResult[];
}

const KIND_OF: Record<keyof Recipient, IdentityKind> = { email: 'email', phone: 'phone', shopifyCustomerId: 'shopify_customer', hubspotContactId: 'hubspot_contact' };

function identityOf(recipient: Recipient): { kind: IdentityKind; value: string } | null {
  for (const [field, kind] of Object.entries(KIND_OF) as Array<[keyof Recipient, IdentityKind]>) {
    const raw = recipient[field];
    if (raw !== undefined) return normalizeIdentity(kind, raw);
  }
  return null;
}

function chunks<T>(items: readonly T[], size = repo.IN_CHUNK): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

function decisionSettings(settings: TenantSettings): DecisionSettings {
  return { doubleOptInCountries: settings.doubleOptInCountries, softOptInMaxMonths: settings.softOptInMaxMonths ?? null };
}

/** Decide for every recipient, in order. `now` is the request time; `request.at` overrides the decision time. */
export async function checkRecipients(store: Store, tenant: Tenant, request: GateRequest, now: Date, options: { explain?: boolean } = {}): Promise<GateResponse> {
  const db = store.reader;
  const at = request.at ? new Date(request.at).toISOString() : now.toISOString();
  const identities = request.recipients.map(identityOf);

  // Subjects by identity, one query per identity kind and chunk.
  const subjectOf = new Map<string, string>();
  const byKind = new Map<IdentityKind, string[]>();
  for (const identity of identities) {
    if (!identity) continue;
    const values = byKind.get(identity.kind);
    if (values) values.push(identity.value);
    else byKind.set(identity.kind, [identity.value]);
  }
  for (const [kind, values] of byKind) {
    for (const chunk of chunks([...new Set(values)])) {
      for (const row of await repo.subjectsByIdentity(db, tenant.id, kind, chunk)) subjectOf.set(`${kind}:${row.value}`, row.subject_id);
    }
  }
  const subjectIds = [...new Set(subjectOf.values())];

  // Consent state for the channel: the purpose's own row, else the `*` row, else nothing recorded.
  const purposes = request.purpose === '*' ? ['*'] : [request.purpose, '*'];
  const stateOf = new Map<string, ConsentState>();
  const country = new Map<string, { country: string; source: CountrySource }>();
  const company = new Set<string>();
  const emailsOf = new Map<string, string[]>();
  const b2b = tenant.settings.b2b;
  for (const chunk of chunks(subjectIds)) {
    const rows = await repo.projectionRows(db, tenant.id, chunk, request.channel, purposes);
    for (const row of rows.sort((a, b) => (a.purpose === '*' ? 1 : 0) - (b.purpose === '*' ? 1 : 0))) {
      if (!stateOf.has(row.subject_id)) stateOf.set(row.subject_id, JSON.parse(row.state) as ConsentState);
    }
    for (const row of await repo.profilesOf(db, tenant.id, chunk)) {
      if (row.country) country.set(row.subject_id, { country: row.country, source: 'customer_address' });
      if (row.company) company.add(row.subject_id);
    }
    for (const row of await repo.purchaseCountries(db, tenant.id, chunk)) {
      if (!country.has(row.subject_id)) country.set(row.subject_id, { country: row.country, source: 'order_billing' });
    }
    if (b2b && b2b.emailDomains.length > 0) {
      for (const row of await repo.identitiesOfKind(db, tenant.id, chunk, 'email')) {
        const emails = emailsOf.get(row.subject_id);
        if (emails) emails.push(row.value);
        else emailsOf.set(row.subject_id, [row.value]);
      }
    }
  }

  const settings = decisionSettings(tenant.settings);
  const shopCountry = tenant.settings.shopCountry;
  const results: GateResult[] = identities.map((identity) => {
    const subjectId = identity ? subjectOf.get(`${identity.kind}:${identity.value}`) : undefined;
    const resolved = subjectId ? country.get(subjectId) : undefined;
    const subjectCountry = resolved?.country ?? shopCountry ?? null;
    const countrySource: CountrySource = resolved?.source ?? (shopCountry ? 'shop_country' : 'none');
    const isB2b =
      subjectId !== undefined &&
      b2b !== undefined &&
      ((b2b.companyOnAddress && company.has(subjectId)) || (emailsOf.get(subjectId) ?? []).some((e) => b2b.emailDomains.includes(e.slice(e.lastIndexOf('@') + 1))));
    const audience: Audience = isB2b ? 'B2B' : 'B2C';
    const decision = decide(
      { consent: subjectId ? (stateOf.get(subjectId) ?? EMPTY_STATE) : null, country: subjectCountry, countrySource, audience },
      profileForCountry(subjectCountry),
      settings,
      request,
      at,
    );
    if (options.explain) return decision;
    const { conditions: _omitted, ...rest } = decision;
    return rest;
  });
  return { decidedAt: at, rulesVersion: PROFILES_VERSION, results };
}
