/**
 * `POST /api/v1/gate/check` (issue 4 §8): `Authorization: Bearer <tenant API key>`, a JSON body (gate.ts
 * `gateRequestSchema`), one result per recipient in order. `?explain=1` adds every check made per recipient.
 *
 * Answers: 200 with results; 401 missing or bad key; 400 malformed body, unknown channel, more than 10,000
 * recipients (each problem listed); 413 body over the limit; 415 not JSON. Reads only local state.
 */
import Router from '@koa/router';
import type { Context } from 'koa';
import type { Clock } from '../ports';
import { AppError } from '../domain/errors';
import type { Metrics } from '../metrics/metrics';
import type { RouteModule } from '../server/app';
import { isJsonContentType, parseJson, readRawBody } from '../server/body';
import type { Store } from '../store/database';
import type { Tenant } from '../tenants/tenants';
import { authenticateApiKey } from './api-keys';
import type { FactsSource } from './facts';
import { checkRecipients, parseGateRequest } from './gate';

export const GATE_CHECK_PATH = '/api/v1/gate/check';

/** Largest gate request body: 10,000 recipients of about 60 bytes each, with room. Default 4 MiB. */
export const GATE_BODY_LIMIT_BYTES = 4 * 1024 * 1024;

/** `facts`: the gate cache in `serve` (GATE_CACHE_MAX_SUBJECTS > 0), else the database on every request. */
/**
 * The shared front of the gate's routes: the tenant's API key, a JSON body within `limitBytes`. Answers 401, 415,
 * 413 and 400 through AppError before anything else happens.
 */
export async function readGateRequest(ctx: Context, store: Store, limitBytes: number): Promise<{ tenant: Tenant; body: unknown }> {
  const tenant = await authenticateApiKey(store, ctx.get('Authorization'));
  if (!isJsonContentType(ctx)) throw new AppError('unsupported_media_type', 'send the request as application/json');
  const parsed = parseJson(await readRawBody(ctx, limitBytes));
  if (!parsed.ok) throw new AppError('bad_request', parsed.message);
  return { tenant, body: parsed.value };
}

export function gateRoutes(deps: { store: Store; clock: Clock; facts?: FactsSource; metrics?: Pick<Metrics, 'gateDecisions'> }): RouteModule {
  const router = new Router();
  router.post(GATE_CHECK_PATH, async (ctx) => {
    const { tenant, body } = await readGateRequest(ctx, deps.store, GATE_BODY_LIMIT_BYTES);
    const request = parseGateRequest(body);
    const explain = ctx.query.explain === '1' || ctx.query.explain === 'true';
    const response = await checkRecipients(deps.store, tenant, request, deps.clock.now(), { explain, ...(deps.facts ? { facts: deps.facts } : {}) });
    deps.metrics?.gateDecisions('api', response.results);
    ctx.body = response;
  });
  return { router };
}
