/**
 * A workflow running the app's custom workflow action (hubspot.md §6): HubSpot POSTs an execution request
 * `{callbackId, origin:{portalId, actionDefinitionId, actionDefinitionVersion}, context:{source:'WORKFLOWS',
 * workflowId}, object:{objectId, objectType:'CONTACT', properties}, inputFields}` to the action's `actionUrl`, signed
 * with v2 (`X-HubSpot-Signature`, hex SHA-256 of secret + method + URI + body) or, on newer platforms, v3.
 * The simulator sends one request and hands back the app's answer; HubSpot's retries of 5xx/429 (up to 3 days)
 * are the caller's to repeat (same callbackId).
 */
import { signedHeaders } from './signing';
import { post } from './webhooks';

/** The app's action paths (manifest.json `workflowActions[].actionPath`). */
export const ACTION_PATHS: Readonly<Record<string, string>> = {
  'check-consent': '/hubspot/actions/check-consent',
  'record-consent-change': '/hubspot/actions/record-consent-change',
};

export interface WorkflowActionCall {
  readonly portalId: string | number;
  readonly contactId: string | number;
  /** `check-consent` (default), `record-consent-change`, or a path under appUrl starting with `/`. */
  readonly action?: string;
  readonly inputFields?: Readonly<Record<string, unknown>>;
  /** Contact properties sent in `object.properties` (the definition's `objectRequestOptions.properties`). Default none. */
  readonly properties?: readonly string[];
  readonly workflowId?: number;
  readonly actionDefinitionId?: number;
  readonly actionDefinitionVersion?: number;
  /** Default a new one (`ap-<portal>-<n>-<random>`); repeat one to replay a retry. */
  readonly callbackId?: string;
  /** Default v2 (hubspot.md §2: custom workflow actions are v2-signed). */
  readonly signatureVersion?: 'v2' | 'v3';
  /** Send `X-HubSpot-Signature-Version: v2` with a v2 signature (UNVERIFIED whether HubSpot does). Default true. */
  readonly versionHeader?: boolean;
}

export interface WorkflowActionResult {
  readonly url: string;
  readonly request: { readonly headers: Readonly<Record<string, string>>; readonly body: string };
  /** The app's HTTP status; null when no answer came. */
  readonly status: number | null;
  /** The app's answer, parsed when JSON. */
  readonly body: unknown;
  readonly error: string | null;
}

export function actionPath(action: string | undefined): string {
  const name = action ?? 'check-consent';
  if (name.startsWith('/')) return name;
  const path = ACTION_PATHS[name];
  if (path === undefined) throw new Error(`unknown workflow action ${name}: use ${Object.keys(ACTION_PATHS).join(', ')} or a path starting with /`);
  return path;
}

export async function sendExecution(
  request: { url: string; body: unknown; clientSecret: string; nowMs: number; signatureVersion: 'v2' | 'v3'; versionHeader: boolean; timeoutMs: number },
  inflight: Set<AbortController>,
): Promise<WorkflowActionResult> {
  const body = JSON.stringify(request.body);
  const signed = signedHeaders(request.clientSecret, [request.signatureVersion], { method: 'POST', uri: request.url, body, timestampMs: request.nowMs });
  if (request.signatureVersion === 'v2' && !request.versionHeader) delete signed['X-HubSpot-Signature-Version'];
  const headers = { 'Content-Type': 'application/json', 'User-Agent': 'HubSpot Connect 2.0 (consent-bridge simulator)', ...signed };
  const answer = await post(request.url, headers, body, request.timeoutMs, inflight);
  let parsed: unknown = answer.text;
  if (answer.text !== null) {
    try {
      parsed = JSON.parse(answer.text) as unknown;
    } catch {
      parsed = answer.text;
    }
  }
  return { url: request.url, request: { headers, body }, status: answer.status, body: parsed, error: answer.error };
}
