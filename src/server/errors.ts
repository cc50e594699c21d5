/**
 * The one place errors become HTTP responses: JSON `{error:{code,message,details?}}`. Unknown errors become a
 * 500 that leaks nothing but the request id; Koa/router HTTP errors (405, 413 …) keep their status.
 */
import type { Context, Next } from 'koa';
import { AppError, ERROR_CODES, HTTP_STATUS_BY_CODE, type ErrorCode } from '../domain/errors';

const CODE_BY_STATUS = new Map<number, ErrorCode>();
for (const code of ERROR_CODES) if (!CODE_BY_STATUS.has(HTTP_STATUS_BY_CODE[code])) CODE_BY_STATUS.set(HTTP_STATUS_BY_CODE[code], code);

interface HttpLikeError {
  status?: number;
  statusCode?: number;
  expose?: boolean;
  message?: string;
  headers?: Record<string, string>;
}

export function errorBody(code: ErrorCode, message: string, details?: readonly string[]): { error: { code: ErrorCode; message: string; details?: readonly string[] } } {
  return { error: details && details.length > 0 ? { code, message, details } : { code, message } };
}

export function errorMiddleware() {
  return async function handleErrors(ctx: Context, next: Next): Promise<void> {
    try {
      await next();
      if ((ctx.status === 405 || ctx.status === 501) && ctx.body == null) {
        const allow = ctx.response.get('Allow');
        // 501 is the router's answer to a method it does not know at all; to a client it is a 405, or a 404
        // (rendered just below) when nothing is served at that path.
        if (allow) {
          ctx.status = 405;
          ctx.body = errorBody('method_not_allowed', `${ctx.method} is not allowed on ${ctx.path} (allowed: ${allow})`);
        } else {
          ctx.status = 404;
        }
      }
      if (ctx.status === 404 && ctx.body === undefined) {
        ctx.status = 404;
        ctx.body = errorBody('not_found', `no route for ${ctx.method} ${ctx.path}`);
      }
    } catch (err: unknown) {
      const requestId = String(ctx.state.requestId ?? '');
      if (err instanceof AppError) {
        ctx.status = err.status;
        ctx.body = err.expose ? errorBody(err.code, err.message, err.details) : errorBody('internal', `internal error (request ${requestId})`);
        if (!err.expose) ctx.state.logger?.error({ err }, 'internal error');
        return;
      }
      const http = (err ?? {}) as HttpLikeError;
      const status = http.status ?? http.statusCode;
      if (typeof status === 'number' && status >= 400 && status < 500 && http.expose !== false) {
        ctx.status = status;
        if (http.headers) ctx.set(http.headers);
        ctx.body = errorBody(CODE_BY_STATUS.get(status) ?? 'bad_request', http.message ?? 'bad request');
        return;
      }
      ctx.state.logger?.error({ err }, 'unhandled error');
      ctx.status = 500;
      ctx.body = errorBody('internal', `internal error (request ${requestId})`);
    }
  };
}
