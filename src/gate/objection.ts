/**
 * `POST /api/v1/gate/objection` (issue 4 §5): an email tool, preference centre or support desk records that people
 * object to direct marketing on a channel (GDPR art 21; law.md R6). Same per-tenant API keys as the gate check.
 *
 * Each recipient's subject is resolved by its one identity, or created: an objection from someone the tenant does
 * not know yet is still recorded, so it suppresses them from the first sync or order onwards (law.md R7). One
 * `object` event per recipient, all in one ledger append and one transaction (all or nothing). The fold ends
 * soft opt-in on the channel for good (conflict rule 4, law.md R4 condition (f)); explicit consent can still grant.
 *
 * Idempotency: an `Idempotency-Key` header becomes the ledger delivery key `gate-objection:<key>` (per tenant);
 * the same key again answers `duplicate: true` and changes nothing (the transaction is rolled back, so not even a
 * subject is created). Without the header every request appends.
 *
 * Answers: 200 `{recorded, duplicate, results: [{subjectCreated, eventId}]}` in recipient order; 401 missing or bad
 * key; 400 malformed body or header (each problem listed); 413 body over 256 KiB; 415 not JSON.
 */
import Router from '@koa/router';
import { z } from 'zod';
import type { NewConsentEvent } from '../domain/consent';
import { AppError } from '../domain/errors';
import type { Identity } from '../domain/identity';
import { appendInTransaction } from '../ledger/ledger';
import type { Clock, IdGenerator } from '../ports';
import type { RouteModule } from '../server/app';
import type { Store } from '../store/database';
import { resolveAndUnite } from '../subjects/merge';
import type { Tenant } from '../tenants/tenants';
import { readGateRequest } from './routes';
import { gateRequestSchema } from './gate';
import { identityOf } from './recipient';
import { MAX_SOURCE_CLOCK_SKEW_MS } from '../domain/time';

export const GATE_OBJECTION_PATH = '/api/v1/gate/objection';

/** Largest objection body: 1,000 recipients of about 60 bytes each, with room. 256 KiB. */
export const OBJECTION_BODY_LIMIT_BYTES = 256 * 1024;

/** Most recipients per objection request (one transaction each; issue 4 §5). */
export const MAX_OBJECTION_RECIPIENTS = 1_000;

/** How far `occurredAt` may lie ahead of our clock (the caller's clock may run fast): 5 minutes. */
export const MAX_CLOCK_SKEW_MS = MAX_SOURCE_CLOCK_SKEW_MS;

/** Capture point recorded when the caller names none. */
export const DEFAULT_CAPTURE_POINT = 'gate-api';

/** `Idempotency-Key`: 1–255 visible ASCII characters (a UUID, say), as Stripe accepts. */
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;

// Channel, purpose and recipient are the check's own schemas (gate.ts), so the two endpoints accept the same
// values: a purpose the check understands, and exactly one identity per recipient.
const { channel: channelSchema, purpose: purposeSchema, recipients: checkRecipientsSchema } = gateRequestSchema.shape;

export const objectionRequestSchema = z.strictObject({
  channel: channelSchema,
  /** Default `*`: an objection to direct marketing covers every purpose (law.md R6). */
  purpose: purposeSchema,
  /** When the person objected (ISO-8601 with zone); default now; at most 5 minutes ahead of our clock. */
  occurredAt: z.iso.datetime({ offset: true }).optional(),
  /** Where the objection was captured, e.g. `preference-center`; default `gate-api`. */
  capturePoint: z.string().trim().min(1).max(200).optional(),
  note: z.string().max(1000).optional(),
  recipients: z
    .array(checkRecipientsSchema.element)
    .min(1)
    .max(MAX_OBJECTION_RECIPIENTS, `at most ${MAX_OBJECTION_RECIPIENTS} recipients per request`),
});
export type ObjectionRequestBody = z.infer<typeof objectionRequestSchema>;
type Recipient = ObjectionRequestBody['recipients'][number];

/** A validated request: each recipient's identity normalised, `occurredAt` in ledger form (UTC, milliseconds). */
export interface ObjectionRequest {
  readonly channel: ObjectionRequestBody['channel'];
  readonly purpose: string;
  readonly occurredAt: string;
  readonly capturePoint: string;
  readonly note: string | undefined;
  readonly identities: readonly Identity[];
}

export interface ObjectionResult {
  readonly subjectCreated: boolean;
  readonly eventId: string;
}

export interface ObjectionResponse {
  /** Events appended by this request (0 for a duplicate). */
  readonly recorded: number;
  /** The `Idempotency-Key` was used before: nothing was appended and `results` is empty. */
  readonly duplicate: boolean;
  readonly results: readonly ObjectionResult[];
}

/**
 * Validate a body against the schema and the clock; every problem is listed in one `bad_request`. Unlike the
 * check (which answers an unusable identity with `unknown_recipient`), an objection must be stored under an
 * identity, so an email or phone that cannot be normalised is refused.
 */
export function parseObjectionRequest(body: unknown, now: Date): ObjectionRequest {
  const result = objectionRequestSchema.safeParse(body);
  if (!result.success) {
    const details = result.error.issues.slice(0, 20).map((i) => `${i.path.length ? i.path.join('.') : '(body)'}: ${i.message}`);
    throw new AppError('bad_request', 'invalid objection request', { details });
  }
  const request = result.data;
  const problems: string[] = [];
  const occurredAt = request.occurredAt === undefined ? now.toISOString() : new Date(request.occurredAt).toISOString();
  if (Date.parse(occurredAt) > now.getTime() + MAX_CLOCK_SKEW_MS) {
    problems.push(`occurredAt: ${request.occurredAt} is in the future (more than ${MAX_CLOCK_SKEW_MS / 60_000} minutes ahead of ${now.toISOString()})`);
  }
  const identities: Identity[] = [];
  request.recipients.forEach((recipient, i) => {
    const identity = identityOf(recipient);
    if (identity) identities.push(identity);
    else {
      const field = (Object.keys(recipient) as Array<keyof Recipient>).find((k) => recipient[k] !== undefined) ?? '(identity)';
      problems.push(`recipients.${i}.${field}: not a valid ${field === 'phone' ? 'phone number' : field === 'email' ? 'email address' : 'id'}`);
    }
  });
  if (problems.length > 0) throw new AppError('bad_request', 'invalid objection request', { details: problems.slice(0, 20) });
  return {
    channel: request.channel,
    purpose: request.purpose,
    occurredAt,
    capturePoint: request.capturePoint ?? DEFAULT_CAPTURE_POINT,
    note: request.note,
    identities,
  };
}

/** The ledger delivery key of an `Idempotency-Key` header; null without one. */
export function objectionDeliveryKey(header: string | string[] | undefined): string | null {
  if (header === undefined) return null;
  const key = Array.isArray(header) ? header.join(',') : header;
  if (!IDEMPOTENCY_KEY.test(key)) {
    throw new AppError('bad_request', 'invalid Idempotency-Key header', { details: ['Idempotency-Key: 1–255 visible ASCII characters without spaces'] });
  }
  return `gate-objection:${key}`;
}

/** Thrown inside the transaction to roll back a replayed request (subjects it created included). */
class ReplayedRequest extends Error {}

/**
 * Record one objection per identity, in one transaction: subjects resolved or created, then one append (so one
 * delivery key claim, one chain-head lock and the change feed rows for every subject touched).
 */
export async function recordObjections(
  store: Store,
  deps: { clock: Clock; ids: IdGenerator },
  tenant: Tenant,
  request: ObjectionRequest,
  deliveryKey: string | null,
): Promise<ObjectionResponse> {
  const evidence = {
    affirmative: true,
    capturePoint: request.capturePoint,
    ...(request.note !== undefined ? { note: request.note } : {}),
    channelObjected: request.channel,
  };
  try {
    return await store.db.transaction().execute(async (trx) => {
      const events: NewConsentEvent[] = [];
      const carryOver: NewConsentEvent[] = [];
      const created: boolean[] = [];
      const changed = new Set<string>();
      for (const identity of request.identities) {
        // One identity unites nothing; resolveAndUnite keeps merges in one place should that ever change.
        const subject = await resolveAndUnite(trx, deps, tenant.id, [identity], 'gate_objection');
        created.push(subject.created);
        carryOver.push(...subject.carryOver);
        changed.add(subject.subjectId);
        for (const merged of subject.mergedSubjectIds) changed.add(merged);
        events.push({
          subjectId: subject.subjectId,
          channel: request.channel,
          purpose: request.purpose,
          kind: 'object',
          basis: null,
          occurredAt: request.occurredAt,
          source: 'gate',
          sourceDeliveryId: deliveryKey,
          evidence,
        });
      }
      // Carry-overs last, so the first n appended events are the recipients' objections in order.
      const appended = await appendInTransaction(trx, store.dialect, deps, {
        tenantId: tenant.id,
        deliveryKey,
        events: [...events, ...carryOver],
        changedSubjects: changed,
      });
      if (appended.duplicate) throw new ReplayedRequest();
      const results = created.map((subjectCreated, i) => ({ subjectCreated, eventId: appended.events[i]!.id }));
      return { recorded: results.length, duplicate: false, results };
    });
  } catch (err) {
    if (err instanceof ReplayedRequest) return { recorded: 0, duplicate: true, results: [] };
    throw err;
  }
}

export function gateObjectionRoutes(deps: { store: Store; clock: Clock; ids: IdGenerator }): RouteModule {
  const router = new Router();
  router.post(GATE_OBJECTION_PATH, async (ctx) => {
    const { tenant, body } = await readGateRequest(ctx, deps.store, OBJECTION_BODY_LIMIT_BYTES);
    const deliveryKey = objectionDeliveryKey(ctx.headers['idempotency-key']);
    const request = parseObjectionRequest(body, deps.clock.now());
    const response = await recordObjections(deps.store, deps, tenant, request, deliveryKey);
    ctx.state.logger?.info({ tenantId: tenant.id, recorded: response.recorded, duplicate: response.duplicate }, 'gate objection');
    ctx.body = response;
  });
  return { router };
}
