/**
 * `GET /metrics` (issue 5 §7): the Prometheus text format of the app's own registry. Open on the app port by
 * default; with `METRICS_TOKEN` set, only `Authorization: Bearer <token>` is answered (401 otherwise).
 *
 * Also the webhook routes' counting middleware: every request that reaches a webhook route is counted as
 * received, and a refused one (thrown error, or an error status) also as rejected with its reason.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import Router from '@koa/router';
import type { Context, Next } from 'koa';
import { AppError } from '../domain/errors';
import type { RouteModule } from '../server/app';
import { rejectionReason, type Metrics, type MetricsPlatform } from './metrics';

export const METRICS_PATH = '/metrics';

/** What the route needs of the metrics: the text exposition. */
export interface MetricsExposition {
  render(): Promise<{ readonly contentType: string; readonly body: string }>;
}

const BEARER = /^Bearer[ \t]+(\S+)[ \t]*$/i;

/** Constant time over the SHA-256 of both (equal lengths, so no length leak either; style.md §2). */
function tokenMatches(authorization: string, token: string): boolean {
  const given = BEARER.exec(authorization)?.[1];
  if (given === undefined) return false;
  const digest = (text: string) => createHash('sha256').update(text, 'utf8').digest();
  return timingSafeEqual(digest(given), digest(token));
}

export function metricsRoutes(deps: { readonly metrics: MetricsExposition; readonly token: string | null }): RouteModule {
  const router = new Router();
  router.get(METRICS_PATH, async (ctx) => {
    if (deps.token !== null && !tokenMatches(ctx.get('Authorization'), deps.token)) {
      ctx.set('WWW-Authenticate', 'Bearer realm="metrics"');
      throw new AppError('unauthorized', 'send Authorization: Bearer <METRICS_TOKEN>');
    }
    const { contentType, body } = await deps.metrics.render();
    ctx.status = 200;
    ctx.type = contentType;
    ctx.body = body;
  });
  return { router };
}

/** Koa middleware for a webhook route: put it first, before the feature check, so every refusal is counted. */
export function countWebhooks(metrics: Pick<Metrics, 'webhookReceived' | 'webhookRejected'> | undefined, platform: MetricsPlatform) {
  return async function countWebhook(ctx: Context, next: Next): Promise<void> {
    if (metrics === undefined) return next();
    metrics.webhookReceived(platform);
    try {
      await next();
    } catch (err) {
      metrics.webhookRejected(platform, rejectionReason(err));
      throw err;
    }
    if (ctx.status >= 400) metrics.webhookRejected(platform, rejectionReason({ status: ctx.status }));
  };
}
