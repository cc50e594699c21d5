/**
 * The Koa app factory. Tests drive `app.callback()` with supertest, no ports (style.md §19).
 */
import Router from '@koa/router';
import Koa, { type Context, type Next } from 'koa';
import type { AppConfig, Feature } from '../config/config';
import { AppError } from '../domain/errors';
import type { IdGenerator, LogFields, Logger } from '../ports';
import { errorMiddleware } from './errors';

export interface Readiness {
  readonly ready: boolean;
  readonly checks: Readonly<Record<string, { ok: boolean; detail?: string }>>;
}

export interface ServerDeps {
  readonly config: Pick<AppConfig, 'features'>;
  readonly logger: Logger;
  readonly ids: IdGenerator;
  /** Database reachable and migrations applied. */
  readonly readiness: () => Promise<Readiness>;
}

/** Routes a feature contributes (webhooks, gate …), mounted by the composition root. */
export interface RouteModule {
  readonly router: Router;
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * A child logger made on its first use: most requests log nothing at the default levels, and making a pino
 * child (with its masked bindings) for each was a measurable share of the webhook request path.
 */
function lazyChild(parent: Logger, bindings: LogFields): Logger {
  let child: Logger | undefined;
  const get = (): Logger => (child ??= parent.child(bindings));
  return {
    debug: (fields, message) => get().debug(fields, message),
    info: (fields, message) => get().info(fields, message),
    warn: (fields, message) => get().warn(fields, message),
    error: (fields, message) => get().error(fields, message),
    child: (more) => get().child(more),
  };
}

/** 503 naming the missing variables when a feature's secrets are not configured. */
export function requireFeature(config: Pick<AppConfig, 'features'>, feature: Feature) {
  return async function featureGate(_ctx: Context, next: Next): Promise<void> {
    const status = config.features[feature];
    if (!status.enabled) {
      throw new AppError('feature_disabled', `${feature} is not configured: set ${status.missing.join(', ')}`);
    }
    await next();
  };
}

export function createServer(deps: ServerDeps, modules: readonly RouteModule[] = []): Koa {
  const app = new Koa();
  app.proxy = true; // behind a TLS-terminating proxy, the public URL comes from X-Forwarded-* headers
  app.silent = true; // errors are logged by our middleware, once, masked

  app.use(async (ctx, next) => {
    const incoming = ctx.get('X-Request-Id');
    const requestId = REQUEST_ID.test(incoming) ? incoming : deps.ids.next();
    ctx.state.requestId = requestId;
    ctx.state.logger = lazyChild(deps.logger, { requestId });
    ctx.set('X-Request-Id', requestId);
    const started = process.hrtime.bigint();
    try {
      await next();
    } finally {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      // The parent logger with the id as a field: no child is made when the level drops the line.
      deps.logger.info({ requestId, method: ctx.method, path: ctx.path, status: ctx.status, ms: Math.round(ms * 10) / 10 }, 'request');
    }
  });
  app.use(errorMiddleware());

  const health = new Router();
  health.get('/healthz', (ctx) => {
    ctx.body = { status: 'ok' };
  });
  health.get('/readyz', async (ctx) => {
    const readiness = await deps.readiness().catch(
      (err: unknown): Readiness => ({ ready: false, checks: { readiness: { ok: false, detail: err instanceof Error ? err.message : 'failed' } } }),
    );
    ctx.status = readiness.ready ? 200 : 503;
    ctx.body = { status: readiness.ready ? 'ready' : 'not_ready', checks: readiness.checks };
  });
  for (const router of [health, ...modules.map((m) => m.router)]) {
    app.use(router.routes());
    app.use(router.allowedMethods()); // sets 405 + Allow (or 501); the error middleware renders the JSON
  }
  app.on('error', (err: unknown) => deps.logger.error({ err }, 'koa error'));
  return app;
}
