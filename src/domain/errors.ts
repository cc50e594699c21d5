/**
 * The one error type of the app (style.md §6). Expected failures carry a `code`; the HTTP status for each code
 * lives in one table (`HTTP_STATUS_BY_CODE`), used by the server's error middleware and nowhere else.
 */
export const ERROR_CODES = [
  'bad_request',
  'validation_failed',
  'unauthorized',
  'forbidden',
  'not_found',
  'method_not_allowed',
  'conflict',
  'payload_too_large',
  'unsupported_media_type',
  'feature_disabled',
  'not_ready',
  'internal',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

export const HTTP_STATUS_BY_CODE: Readonly<Record<ErrorCode, number>> = {
  bad_request: 400,
  validation_failed: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  method_not_allowed: 405,
  conflict: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  feature_disabled: 503,
  not_ready: 503,
  internal: 500,
};

export interface AppErrorOptions {
  /** Extra machine-readable detail shown to the caller (e.g. every validation problem). */
  readonly details?: readonly string[];
  readonly cause?: unknown;
}

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly details: readonly string[];
  /** Internal errors never show their message to callers. */
  get expose(): boolean {
    return this.code !== 'internal';
  }
  get status(): number {
    return HTTP_STATUS_BY_CODE[this.code];
  }
  constructor(code: ErrorCode, message: string, options: AppErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AppError';
    this.code = code;
    this.details = options.details ?? [];
  }
}
