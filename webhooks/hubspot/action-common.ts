/**
 * What the HubSpot custom workflow actions (hubspot.md §6) share: "Check marketing consent" (actions.ts) and
 * "Record consent change" (record-action.ts). The checks run in the same order for both, on the raw bytes, and
 * nothing is written unless all pass:
 *
 * 1. size limit (413) · 2. HubSpot's signature: v3 with its 5-minute window when present, else v2; v1 refused
 * (401) · 3. content type (415) · 4. JSON (400) · then, per action, the request's fields (400, every problem
 * listed) · 5. tenant by `origin.portalId`: unknown 404 `not_found`, uninstalled 403 `forbidden` (a 4xx, so HubSpot
 * records the failure and does not retry, hubspot.md §6).
 */
import type { Context } from 'koa';
import type { Kysely } from 'kysely';
import { z } from 'zod';
import { AppError } from '../../src/domain/errors';
import { isJsonContentType, parseJson, readRawBody } from '../../src/server/body';
import type { Database } from '../../src/store/schema';
import { findWorkflowActionCall } from '../../src/store/workflow-action.repository';
import type { Tenant } from '../../src/tenants/tenants';
import { activeSecrets } from '../_shared/compare';
import type { WebhookDeps } from '../_shared/deps';
import { checkHubspotSignature, SIGNATURE_MESSAGES, type SignatureCheck, type SignedRequest } from './verify';

/**
 * Largest execution request read. HubSpot sends the callback id, origin, context, the contact's id, the
 * properties listed in `objectRequestOptions` and the input fields: well under 1 KiB.
 */
export const WORKFLOW_ACTION_BODY_LIMIT_BYTES = 64 * 1024;

/** HubSpot sends ids as JSON numbers (hubspot.md §6 example); a numeric string is accepted too. */
export const numericId = z
  .union([z.number().int().positive().max(Number.MAX_SAFE_INTEGER), z.string().regex(/^[1-9]\d{0,19}$/, 'must be a positive number')])
  .transform(String);

/** An optional input left empty in the workflow editor may arrive as "" or null: treated as not given. */
export function optionalInput<T extends z.ZodType>(schema: T) {
  return z.preprocess((value) => (value === null || (typeof value === 'string' && value.trim() === '') ? undefined : value), schema.optional());
}

/** A HubSpot subscription type id (digits), sent as a string or a JSON number. */
export const subscriptionTypeId = z
  .union([z.string().trim().regex(/^\d{1,20}$/, 'must be a HubSpot subscription type id (digits)'), z.number().int().positive()])
  .transform(String);

/**
 * The envelope of an execution request (hubspot.md §6: `{callbackId, origin:{portalId, actionDefinitionId, …},
 * context, object:{objectId, objectType, properties?}, inputFields}`). Strict about the fields the answer depends
 * on, loose about the rest (HubSpot adds fields such as `extensionDefinitionId` without notice).
 */
export const executionEnvelope = {
  callbackId: z.string().min(1).max(256),
  origin: z.looseObject({ portalId: numericId, actionDefinitionId: numericId }),
} as const;

/** Both actions are defined for contacts only (manifest.json objectTypes); another type cannot be decided. */
export const contactObjectType = z.literal('CONTACT', { error: 'must be CONTACT (the action is defined for contacts only)' });

/** A failed parse as one 400 (`bad_request`, like the gate API) listing every problem. */
export function badActionRequest(error: z.ZodError): AppError {
  const details = error.issues.slice(0, 20).map((i) => `${i.path.length ? i.path.join('.') : '(body)'}: ${i.message}`);
  return new AppError('bad_request', 'malformed HubSpot workflow action request', { details });
}

/**
 * HubSpot signs workflow action requests with v2 (hubspot.md §2 [src]); whether it also sends
 * `X-HubSpot-Signature-Version: v2` is not confirmed (UNVERIFIED). verify.ts reads a missing version as v1, so
 * here a missing version is read as v2: a v1 signature then never matches, and an explicit v1 is refused below.
 */
function checkActionSignature(request: SignedRequest, secrets: readonly string[]): SignatureCheck {
  const header = (name: string): string => {
    const value = request.header(name);
    return name.toLowerCase() === 'x-hubspot-signature-version' && value.trim() === '' ? 'v2' : value;
  };
  return checkHubspotSignature({ ...request, header }, secrets);
}

const ACTION_SIGNATURE_MESSAGES: Readonly<Record<keyof typeof SIGNATURE_MESSAGES, string>> = {
  ...SIGNATURE_MESSAGES,
  missing_signature: 'missing X-HubSpot-Signature (v2) or X-HubSpot-Signature-v3 header',
};

/** Checks 1–4: the verified, parsed body of an execution request (not yet validated against a schema). */
export async function readSignedActionBody(deps: Pick<WebhookDeps, 'config' | 'clock'>, ctx: Context): Promise<unknown> {
  const { config } = deps;
  const raw = await readRawBody(ctx, WORKFLOW_ACTION_BODY_LIMIT_BYTES);
  const signature = checkActionSignature(
    { method: ctx.method, uri: `${config.appUrl}${ctx.originalUrl}`, raw, header: (name) => ctx.get(name), nowMs: deps.clock.now().getTime() },
    activeSecrets(config.hubspot.clientSecret, config.hubspot.clientSecretPrevious),
  );
  if (!signature.ok) throw new AppError('unauthorized', ACTION_SIGNATURE_MESSAGES[signature.reason]);
  // v1 signs the body only, not the URI: a body signed for any other endpoint of this app would verify here.
  if (signature.version === 'v1') throw new AppError('unauthorized', 'v1 signatures are not accepted for workflow actions (HubSpot signs them with v2 or v3)');
  // v2 has no timestamp, so a captured request replays forever; it is accepted anyway because HubSpot signs
  // workflow actions with it, and a replay only gets the answer stored for its callbackId back.
  if (!isJsonContentType(ctx)) throw new AppError('unsupported_media_type', 'workflow action body must be application/json');
  const parsed = parseJson(raw);
  if (!parsed.ok) throw new AppError('bad_request', parsed.message);
  return parsed.value;
}

/** Check 5: the active tenant of the portal that runs the workflow. */
export async function activeTenantOfPortal(deps: Pick<WebhookDeps, 'tenants'>, portalId: string): Promise<Tenant> {
  const tenant = await deps.tenants.byPortal(portalId);
  if (tenant === undefined) throw new AppError('not_found', `HubSpot portal ${portalId} is not linked to a shop`);
  if (tenant.status !== 'active') throw new AppError('forbidden', `consent-bridge is uninstalled for HubSpot portal ${portalId}`);
  return tenant;
}

/**
 * The stored answer of a callback id answered before (both actions share the `workflow_action_call` table): the
 * same answer again for the same request, 409 for anything else under that id (another contact, other inputs, or
 * the other action).
 */
export async function storedActionAnswer<T>(db: Kysely<Database>, tenantId: string, callbackId: string, fingerprint: string): Promise<T> {
  const stored = await findWorkflowActionCall(db, tenantId, callbackId);
  if (stored === undefined) throw new Error('workflow action call answered before but not found');
  if (stored.request_fingerprint !== fingerprint) {
    throw new AppError('conflict', 'this callbackId was already answered for a different contact, different inputs or another action');
  }
  return JSON.parse(stored.answer) as T;
}
