/**
 * `POST /api/v1/gate/check` (issue 4 §8): `Authorization: Bearer <tenant API key>`, a JSON body (gate.ts
 * `gateRequestSchema`), one result per recipient in order. `?explain=1` adds every check made per recipient.
 *
 * Answers: 200 with results; 401 missing or bad key; 400 malformed body, unknown channel, more than 10,000
 * recipients (each problem listed); 413 body over the limit; 415 not JSON. Reads only local state.
 */
import Router from '@koa/router';
import type { Clock } from '../ports';
import { AppError } from '../domain/errors';
import type { RouteModule } from '../server/app';
import { isJsonContentType, parseJson, readRawBody } from '../server/body';
import type { Store } from '../store/database';
import { authenticateApiKey } from './api-keys';
import { checkRecipients, parseGateRequest } from './gate';

export const GATE_CHECK_PATH = '/api/v1/gate/check';

/** Largest gate request body: 10,000 recipients of about 60 bytes each, with room. Default 4 MiB. */
export const GATE_BODY_LIMIT_BYTES = 4 * 1024 * 1024;

export function gateRoutes(deps: { store: Store; clock: Clock }): RouteModule {
  const router = new Router();
  router.post(GATE_CHECK_PATH, async (ctx) => {
    const tenant = await authenticateApiKey(deps.store, ctx.get('Authorization'));
    if (!isJsonContentType(ctx)) throw new AppError('unsupported_media_type', 'send the request as application/json');
    const parsed = parseJson(await readRawBody(ctx, GATE_BODY_LIMIT_BYTES));
    if (!parsed.ok) throw new AppError('bad_request', parsed.message);
    const request = parseGateRequest(parsed.value);
    const explain = ctx.query.explain === '1' || ctx.query.explain === 'true';
    ctx.body = await checkRecipients(deps.store, tenant, request, deps.clock.now(), { explain });
  });
  return { router };
}
