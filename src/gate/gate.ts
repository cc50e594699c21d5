/**
 * The send gate (issue 4 §8, §10): decisions for up to 10,000 recipients of one campaign, from local state only
 * (no outbound call). Each recipient is looked up by one identity, its consent state for the channel and purpose
 * read from the projection, its jurisdiction and audience resolved, and `decideWithin` applied with the batch's
 * context for that country and audience (the same answer as `decide`, built once per combination).
 *
 * Jurisdiction (issue 4 §2): country of the customer's default address, else of the newest paid order's billing
 * address, else the shop's country (setting `shopCountry`), else none (EU default profile). Audience: B2B when
 * the merchant's rule says so (setting `b2b`: company on the address, a customer tag in the list, or an email
 * domain in the list); otherwise B2C.
 */
import { z } from 'zod';
import { CHANNELS, EMPTY_STATE } from '../domain/consent';
import { AppError } from '../domain/errors';
import { type CountrySource, type Decision, type DecisionContext, type DecisionSettings, decideWithin, decisionContext } from '../rules/decide';
import { type Audience, PROFILES_VERSION, profileForCountry } from '../rules/profiles';
import type { Store } from '../store/database';
import type { TenantSettings } from '../config/manifest';
import type { Tenant } from '../tenants/tenants';
import { audienceOf, b2bRuleOf, countryOf, databaseFacts, stateKey, type FactsSource } from './facts';
import { isPlainRecipient, recipientSchema } from './recipient';

/** Most recipients per request (issue 4 §8). */
export const MAX_RECIPIENTS = 10_000;

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

const envelopeSchema = gateRequestSchema.omit({ recipients: true });

/** Validate a request body; every problem is listed in one `bad_request`. */
export function parseGateRequest(body: unknown): GateRequest {
  if (body !== null && typeof body === 'object' && !Array.isArray(body)) {
    const { recipients, ...envelope } = body as Record<string, unknown>;
    if (Array.isArray(recipients) && recipients.length >= 1 && recipients.length <= MAX_RECIPIENTS && recipients.every(isPlainRecipient)) {
      const parsed = envelopeSchema.safeParse(envelope);
      if (parsed.success) return { ...parsed.data, recipients };
    }
  }
  const result = gateRequestSchema.safeParse(body);
  if (result.success) return result.data;
  const details = result.error.issues.slice(0, 20).map((i) => `${i.path.length ? i.path.join('.') : '(body)'}: ${i.message}`);
  throw new AppError('bad_request', 'invalid gate request', { details });
}

/** A decision; `conditions` only with `explain`. */
export type GateResult = Decision;

export interface GateResponse {
  readonly decidedAt: string;
  readonly rulesVersion: string;
  readonly results: readonly GateResult[];
}

function decisionSettings(settings: TenantSettings): DecisionSettings {
  return { doubleOptInCountries: settings.doubleOptInCountries, softOptInMaxMonths: settings.softOptInMaxMonths ?? null };
}

export interface CheckOptions {
  /** Include each decision's conditions (`?explain=1`). */
  readonly explain?: boolean;
  /** Where facts come from: the in-memory gate cache in `serve`, else the database. */
  readonly facts?: FactsSource;
}

/** Decide for every recipient, in order. `now` is the request time; `request.at` overrides the decision time. */
export async function checkRecipients(store: Store, tenant: Tenant, request: GateRequest, now: Date, options: CheckOptions = {}): Promise<GateResponse> {
  const at = request.at ? new Date(request.at).toISOString() : now.toISOString();
  const factsOf = await (options.facts ?? databaseFacts).resolve(store, tenant.id, request.recipients);

  // Consent state for the channel: the purpose's own row, else the `*` row, else nothing recorded.
  const ownKey = stateKey(request.channel, request.purpose);
  const anyKey = stateKey(request.channel, '*');
  const settings = decisionSettings(tenant.settings);
  const shopCountry = tenant.settings.shopCountry;
  const b2b = b2bRuleOf(tenant.settings.b2b);
  const decideOptions = { trace: options.explain === true };
  // Built once per batch: the jurisdiction of a recipient without a country of their own.
  const fallback = countryOf(undefined, shopCountry);
  // One decision context per country fact and audience in this batch. Country facts are shared objects
  // (facts.ts `countryFact`), so a batch meets few distinct ones and each lookup compares pointers.
  const contexts = new Map<object, [DecisionContext | undefined, DecisionContext | undefined]>();
  const contextOf = (placement: { country: string | null; source: CountrySource }, audience: Audience): DecisionContext => {
    let pair = contexts.get(placement);
    if (pair === undefined) contexts.set(placement, (pair = [undefined, undefined]));
    const slot = audience === 'B2C' ? 0 : 1;
    return (pair[slot] ??= decisionContext(profileForCountry(placement.country), request.channel, { country: placement.country, countrySource: placement.source, audience }, settings, at));
  };
  const results = new Array<GateResult>(factsOf.length);
  for (let i = 0; i < factsOf.length; i++) {
    const facts = factsOf[i];
    const placement = facts?.country ?? fallback;
    const audience = audienceOf(facts, b2b);
    const consent = facts === undefined ? null : (facts.states.get(ownKey) ?? facts.states.get(anyKey) ?? EMPTY_STATE);
    results[i] = decideWithin(contextOf(placement, audience), consent, settings, request, at, decideOptions);
  }
  return { decidedAt: at, rulesVersion: PROFILES_VERSION, results };
}
