/**
 * HubSpot's error answers (hubspot.md §5, §8; docs/api-reference/error-handling): a JSON body
 * `{status:'error', message, correlationId, category, …}`. Handlers throw `SimHttpError`; the server renders it
 * and fills in the correlationId.
 */

export class SimHttpError extends Error {
  readonly status: number;
  /** The body without `correlationId` (added when rendered). */
  readonly body: Record<string, unknown>;
  readonly headers: Readonly<Record<string, string>>;

  constructor(status: number, body: Record<string, unknown>, headers: Record<string, string> = {}) {
    super(typeof body.message === 'string' ? body.message : `HTTP ${status}`);
    this.status = status;
    this.body = body;
    this.headers = headers;
  }
}

/** `{status:'error', message, category, ...extra}`: HubSpot's usual error body. */
export function apiError(status: number, category: string, message: string, extra: Record<string, unknown> = {}): SimHttpError {
  return new SimHttpError(status, { status: 'error', message, category, ...extra });
}

export const validation = (message: string, extra: Record<string, unknown> = {}) => apiError(400, 'VALIDATION_ERROR', message, extra);
export const notFound = (message: string, extra: Record<string, unknown> = {}) => apiError(404, 'OBJECT_NOT_FOUND', message, extra);
export const conflict = (message: string, category = 'CONFLICT') => apiError(409, category, message);

/** The messages of the two 429 bodies (hubspot.md §8; the v13 client matches these exact strings). */
export const TEN_SECONDLY_MESSAGE = 'You have reached your ten_secondly_rolling limit.';
export const SECONDLY_MESSAGE = 'You have reached your secondly limit.';
