import Router from '@koa/router';
import request from 'supertest';
import type { AppConfig } from '../../src/config/config';
import { AppError } from '../../src/domain/errors';
import { silentLogger } from '../../src/log/logger';
import type { LogFields, Logger } from '../../src/ports';
import { createServer, requireFeature, type Readiness, type RouteModule, type ServerDeps } from '../../src/server/app';
import { countingIds } from '../helpers/deps';

type Features = AppConfig['features'];

const ALL_ON: Features = {
  shopify: { enabled: true, missing: [] },
  hubspot: { enabled: true, missing: [] },
  tokenStorage: { enabled: true, missing: [] },
};
const SHOPIFY_OFF: Features = { ...ALL_ON, shopify: { enabled: false, missing: ['SHOPIFY_API_KEY', 'SHOPIFY_API_SECRET'] } };

interface Harness {
  app: ReturnType<ReturnType<typeof createServer>['callback']>;
  setReadiness(next: Readiness): void;
}

function harness(options: { features?: Features; modules?: RouteModule[]; logger?: Logger } = {}): Harness {
  let readiness: Readiness = { ready: true, checks: { database: { ok: true } } };
  const deps: ServerDeps = {
    config: { features: options.features ?? ALL_ON },
    logger: options.logger ?? silentLogger,
    ids: countingIds('req'),
    readiness: async () => readiness,
  };
  return {
    app: createServer(deps, options.modules ?? []).callback(),
    setReadiness: (next) => {
      readiness = next;
    },
  };
}

/** A logger that records every call, children included. */
function recordingLogger(): { logger: Logger; records: Array<{ level: string; fields: LogFields; message: string }> } {
  const records: Array<{ level: string; fields: LogFields; message: string }> = [];
  const make = (bindings: LogFields): Logger => ({
    debug: (fields, message) => void records.push({ level: 'debug', fields: { ...bindings, ...fields }, message }),
    info: (fields, message) => void records.push({ level: 'info', fields: { ...bindings, ...fields }, message }),
    warn: (fields, message) => void records.push({ level: 'warn', fields: { ...bindings, ...fields }, message }),
    error: (fields, message) => void records.push({ level: 'error', fields: { ...bindings, ...fields }, message }),
    child: (more) => make({ ...bindings, ...more }),
  });
  return { logger: make({}), records };
}

function throwingModule(): RouteModule {
  const router = new Router();
  router.post('/validate', () => {
    throw new AppError('validation_failed', 'bad', { details: ['a', 'b'] });
  });
  router.get('/boom', () => {
    throw new Error('secret db password xyz');
  });
  router.get('/internal', () => {
    throw new AppError('internal', 'ledger hash mismatch xyz');
  });
  return { router };
}

describe('health endpoints', () => {
  it('GET /healthz answers 200 {status:"ok"}', async () => {
    const res = await request(harness().app).get('/healthz');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: 'ok' });
    expect(res.headers['content-type']).toMatch(/application\/json/);
  });

  it('GET /readyz answers 200 when ready', async () => {
    const res = await request(harness().app).get('/readyz');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: 'ready', checks: { database: { ok: true } } });
  });

  it('GET /readyz answers 503 with the checks when not ready, and recovers', async () => {
    const h = harness();
    const checks = { database: { ok: true }, migrations: { ok: false, detail: '2 pending' } };
    h.setReadiness({ ready: false, checks });
    const down = await request(h.app).get('/readyz');
    expect(down.status).toBe(503);
    expect(down.body).toEqual({ status: 'not_ready', checks });

    h.setReadiness({ ready: true, checks: { database: { ok: true }, migrations: { ok: true } } });
    const up = await request(h.app).get('/readyz');
    expect(up.status).toBe(200);
    expect(up.body.status).toBe('ready');
  });
});

describe('errors as JSON', () => {
  it('answers an unknown path with 404 not_found', async () => {
    const res = await request(harness().app).get('/no/such/path');
    expect(res.status).toBe(404);
    expect(res.headers['content-type']).toMatch(/application\/json/);
    expect(res.body).toEqual({ error: { code: 'not_found', message: expect.stringContaining('/no/such/path') } });
  });

  it('answers a wrong method with 405 method_not_allowed and an Allow header', async () => {
    const res = await request(harness().app).post('/healthz').send({});
    expect(res.status).toBe(405);
    expect(res.body).toEqual({ error: { code: 'method_not_allowed', message: expect.any(String) } });
    expect(res.headers.allow).toBeDefined();
    expect(res.headers.allow?.split(/,\s*/)).toEqual(expect.arrayContaining(['GET', 'HEAD']));
  });

  it('answers a wrong method on a module route with 405 too', async () => {
    const res = await request(harness({ modules: [throwingModule()] }).app).get('/validate');
    expect(res.status).toBe(405);
    expect(res.body.error.code).toBe('method_not_allowed');
    expect(res.headers.allow).toContain('POST');
  });

  it('turns an AppError into its status with code, message and details', async () => {
    const res = await request(harness({ modules: [throwingModule()] }).app).post('/validate').send({});
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error: { code: 'validation_failed', message: 'bad', details: ['a', 'b'] } });
  });

  it('turns an unknown error into a 500 that leaks nothing but the request id', async () => {
    const res = await request(harness({ modules: [throwingModule()] }).app).get('/boom');
    expect(res.status).toBe(500);
    expect(res.body.error.code).toBe('internal');
    expect(res.text).not.toContain('xyz');
    expect(res.text).not.toMatch(/secret|password/);
    expect(res.text).not.toMatch(/\bat \//); // no stack trace
    const requestId = res.headers['x-request-id'];
    expect(requestId).toBe('req-00000001');
    expect(res.body).toEqual({ error: { code: 'internal', message: `internal error (request ${requestId})` } });
  });

  it('hides the message of an internal AppError as well', async () => {
    const res = await request(harness({ modules: [throwingModule()] }).app).get('/internal').set('X-Request-Id', 'trace-42');
    expect(res.status).toBe(500);
    expect(res.text).not.toContain('xyz');
    expect(res.body).toEqual({ error: { code: 'internal', message: 'internal error (request trace-42)' } });
  });

  it('logs the hidden error once, with the request id, and logs every request', async () => {
    const { logger, records } = recordingLogger();
    const h = harness({ modules: [throwingModule()], logger });
    await request(h.app).get('/boom').set('X-Request-Id', 'trace-7');
    const errors = records.filter((r) => r.level === 'error');
    expect(errors).toHaveLength(1);
    expect(errors[0]?.fields.requestId).toBe('trace-7');
    expect((errors[0]?.fields.err as Error).message).toBe('secret db password xyz');
    const access = records.filter((r) => r.message === 'request');
    expect(access).toHaveLength(1);
    expect(access[0]?.fields).toMatchObject({ requestId: 'trace-7', method: 'GET', path: '/boom', status: 500 });
  });
});

describe('X-Request-Id', () => {
  it('echoes a valid incoming id', async () => {
    const res = await request(harness().app).get('/healthz').set('X-Request-Id', 'abc-123_x.y:z');
    expect(res.headers['x-request-id']).toBe('abc-123_x.y:z');
  });

  it('accepts an id of exactly 128 characters', async () => {
    const id = 'a'.repeat(128);
    const res = await request(harness().app).get('/healthz').set('X-Request-Id', id);
    expect(res.headers['x-request-id']).toBe(id);
  });

  it('generates one when absent', async () => {
    const h = harness();
    const first = await request(h.app).get('/healthz');
    const second = await request(h.app).get('/no/such/path');
    expect(first.headers['x-request-id']).toBe('req-00000001');
    expect(second.headers['x-request-id']).toBe('req-00000002');
  });

  it.each([
    ['containing spaces', 'abc def'],
    ['longer than 128 characters', 'a'.repeat(129)],
    ['with a forbidden character', 'abc<script>'],
    ['with a slash', '../etc/passwd'],
  ])('replaces an invalid id (%s) with a generated one', async (_label, id) => {
    const res = await request(harness().app).get('/healthz').set('X-Request-Id', id);
    expect(res.status).toBe(200);
    expect(res.headers['x-request-id']).toBe('req-00000001');
  });
});

describe('requireFeature', () => {
  function shopModule(features: Features): { module: RouteModule; calls: () => number } {
    let calls = 0;
    const router = new Router();
    router.get('/shop', requireFeature({ features }, 'shopify'), (ctx) => {
      calls += 1;
      ctx.body = { shop: 'ok' };
    });
    return { module: { router }, calls: () => calls };
  }

  it('answers 503 feature_disabled naming every missing variable when the feature is off', async () => {
    const shop = shopModule(SHOPIFY_OFF);
    const res = await request(harness({ features: SHOPIFY_OFF, modules: [shop.module] }).app).get('/shop');
    expect(res.status).toBe(503);
    expect(res.body.error.code).toBe('feature_disabled');
    expect(res.body.error.message).toContain('SHOPIFY_API_KEY');
    expect(res.body.error.message).toContain('SHOPIFY_API_SECRET');
    expect(shop.calls()).toBe(0);
  });

  it('passes through when the feature is on', async () => {
    const shop = shopModule(ALL_ON);
    const res = await request(harness({ modules: [shop.module] }).app).get('/shop');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ shop: 'ok' });
    expect(shop.calls()).toBe(1);
  });

  it('only guards the feature it names', async () => {
    const router = new Router();
    router.get('/hubspot', requireFeature({ features: SHOPIFY_OFF }, 'hubspot'), (ctx) => {
      ctx.body = { hubspot: 'ok' };
    });
    const res = await request(harness({ features: SHOPIFY_OFF, modules: [{ router }] }).app).get('/hubspot');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ hubspot: 'ok' });
  });

  it('leaves health endpoints working when features are off', async () => {
    const res = await request(harness({ features: SHOPIFY_OFF, modules: [shopModule(SHOPIFY_OFF).module] }).app).get('/healthz');
    expect(res.status).toBe(200);
  });
});
