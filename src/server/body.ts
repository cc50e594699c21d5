/**
 * Raw body first (style.md §1): webhook and API routes read the exact bytes, with a size limit, before any parser,
 * because signatures are computed over those bytes. Nothing here re-serialises JSON.
 */
import type { Context } from 'koa';
import getRawBody from 'raw-body';
import { AppError } from '../domain/errors';

/**
 * Read the request body as bytes. A declared Content-Length over the limit is refused before reading; a body
 * that grows past it while streaming is refused too (413). An absent body is an empty Buffer.
 */
export async function readRawBody(ctx: Context, limitBytes: number): Promise<Buffer> {
  const declared = ctx.request.length;
  if (declared !== undefined && declared > limitBytes) {
    throw new AppError('payload_too_large', `request body of ${declared} bytes exceeds the ${limitBytes}-byte limit`);
  }
  try {
    return await getRawBody(ctx.req, { limit: limitBytes, length: declared });
  } catch (err) {
    const type = (err as { type?: string }).type;
    if (type === 'entity.too.large') throw new AppError('payload_too_large', `request body exceeds the ${limitBytes}-byte limit`);
    if (type === 'request.aborted' || type === 'request.size.invalid') throw new AppError('bad_request', 'request body incomplete or of the wrong length');
    throw err;
  }
}

/** Deepest nesting accepted in a webhook body. Real payloads nest 4–5 levels; a hostile one could nest 100k. */
export const MAX_JSON_DEPTH = 32;

export type JsonParseResult = { ok: true; value: unknown } | { ok: false; message: string };

/** Parse verified bytes as JSON (UTF-8), refusing anything nested deeper than MAX_JSON_DEPTH. */
export function parseJson(raw: Buffer): JsonParseResult {
  if (raw.length === 0) return { ok: false, message: 'body is empty; expected JSON' };
  let value: unknown;
  try {
    value = JSON.parse(raw.toString('utf8'));
  } catch (err) {
    return { ok: false, message: `body is not valid JSON (${err instanceof Error ? err.message : 'parse error'})` };
  }
  // Iterative, so measuring a hostile document cannot overflow the stack.
  const stack: Array<{ node: unknown; depth: number }> = [{ node: value, depth: 1 }];
  while (stack.length > 0) {
    const { node, depth } = stack.pop()!;
    if (node === null || typeof node !== 'object') continue;
    if (depth > MAX_JSON_DEPTH) return { ok: false, message: `JSON nested deeper than ${MAX_JSON_DEPTH} levels` };
    for (const child of Object.values(node)) stack.push({ node: child, depth: depth + 1 });
  }
  return { ok: true, value };
}

/** Webhook bodies are JSON; a signed body declared as something else is refused (415), never guessed at. */
export function isJsonContentType(ctx: Context): boolean {
  return ctx.request.is('application/json') === 'application/json';
}
