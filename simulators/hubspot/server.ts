/**
 * A HubSpot simulator (issue 6 §2): one HTTP server that behaves like api.hubapi.com for the endpoints the app's
 * HubSpot connector calls (connectors/hubspot: CRM contacts, properties, lists, communication preferences v3/v4,
 * OAuth v1), and like HubSpot towards the app (signed webhooks, custom workflow action calls). It imports nothing
 * from the app: it is written from hubspot.md and answers as the platform would, so it can catch the app out.
 *
 * Per request to the API: fault injection (5xx with a JSON body, a slow answer after the work is done, or a reset
 * connection before it is) → Bearer token of a portal (401) → scopes (403) → the portal's rolling 110 requests per
 * 10 s, or for search 5 per second (429 with HubSpot's bodies) → the endpoint. `/_sim/…` is the control plane (no
 * auth, no faults, no limits): state, configuration, and what people and workflows do in HubSpot (create or edit,
 * merge or delete contacts, unsubscribe through an email link, run a workflow action).
 *
 * Point the app at it with `HUBSPOT_API_BASE_URL=<simulator.url>` (the connector and the OAuth refresh both use it),
 * and the simulator at the app with `appUrl` = the app's `APP_URL` (signatures are computed over that URL).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import Router from '@koa/router';
import Koa, { type Context } from 'koa';
import getRawBody from 'raw-body';
import { z } from 'zod';
import { actionPath, sendExecution, type WorkflowActionCall, type WorkflowActionResult } from './actions';
import { API_ROUTES, type ApiRoute } from './api';
import { apiError, SECONDLY_MESSAGE, SimHttpError, TEN_SECONDLY_MESSAGE, validation } from './errors';
import { Portal, type Contact, type PropertiesInput } from './portal';
import { CommunicationPreferences, SOURCES } from './preferences';
import { seededRandom, uuidFrom } from './random';
import { RollingLimit, TokenStore } from './tokens';
import { systemClock, type ChangeSource, type PortalOptions, type SimulatorClock } from './types';
import { DEFAULT_WEBHOOK_SETTINGS, WebhookDispatcher, type WebhookCounters, type WebhookDelivery, type WebhookEvent, type WebhookSettings } from './webhooks';

/** The app's required scopes (manifest.json `hubspot.scopes`): what a portal grants unless told otherwise. */
export const DEFAULT_SCOPES: readonly string[] = [
  'oauth',
  'crm.objects.contacts.read',
  'crm.objects.contacts.write',
  'crm.schemas.contacts.write',
  'communication_preferences.read_write',
  'crm.lists.read',
  'crm.lists.write',
];

/** Batch subscription scopes (Marketing Hub Enterprise only, hubspot.md §3.3). */
export const BATCH_SCOPES: readonly string[] = ['communication_preferences.statuses.batch.read', 'communication_preferences.statuses.batch.write'];

export interface FaultOptions {
  /** Share (0–1) of requests answered 5xx with a JSON body; nothing is applied. Default 0. */
  readonly errorRate?: number;
  /** Share of requests that are applied but answered only after `delayMs` (beyond the client's timeout). Default 0. */
  readonly slowRate?: number;
  /** Share of requests whose connection is destroyed before anything is applied. Default 0. */
  readonly resetRate?: number;
  /** Delay of a slow answer. Default 20,000 ms (the connector's timeout is 15 s). */
  readonly delayMs?: number;
  /** Statuses an injected error picks from (at random). Default 500, 502, 503, 504. */
  readonly errorStatuses?: readonly number[];
}

/** A fault for the next matching request(s), before the random ones. */
export interface QueuedFault {
  readonly kind: 'error' | 'slow' | 'reset';
  /** `error` only. Default one of `errorStatuses`. */
  readonly status?: number;
  /** How many requests it hits. Default 1. */
  readonly times?: number;
  /** Only requests whose path (without query) contains this string or matches this pattern. Default all. */
  readonly path?: string | RegExp;
}

export interface HubspotSimulatorOptions {
  /** Default 0 (any free port). */
  readonly port?: number;
  /** Default 127.0.0.1. */
  readonly host?: string;
  readonly clientId: string;
  /** Signs webhooks (v1 + v3) and workflow action calls (v2 or v3); checked on `POST /oauth/v1/token`. */
  readonly clientSecret: string;
  readonly appId: string | number;
  /** The app's public URL (its APP_URL): webhooks go to `${appUrl}/webhooks/hubspot`, actions to `${appUrl}/hubspot/actions/…`. Settable later. */
  readonly appUrl?: string | null;
  readonly portals: readonly PortalOptions[];
  /** Per portal, rolling. Default 110 per 10,000 ms (public OAuth apps, hubspot.md §8). */
  readonly rateLimit?: { readonly max?: number; readonly windowMs?: number };
  /** Search, per portal. Default 5 per 1,000 ms. */
  readonly searchLimit?: { readonly max?: number; readonly windowMs?: number };
  readonly faults?: FaultOptions;
  /** Seed of the simulator's randomness (faults, ids). Default 1. */
  readonly seed?: number;
  /** Draws for fault injection instead of the seeded generator. */
  readonly random?: () => number;
  /** Time of the platform: timestamps, token expiry, rate-limit windows, webhook timestamps. Default the system clock. */
  readonly clock?: SimulatorClock;
  readonly webhooks?: Partial<WebhookSettings>;
  /** Lifetime of issued access tokens. Default 1,800 s (hubspot.md §7). */
  readonly accessTokenTtlSeconds?: number;
  /** How HubSpot reports the app's own writes in webhooks. Default `{changeSource: 'INTEGRATION', sourceId: <appId>}`. */
  readonly appWriteSource?: ChangeSource;
  /** The HubSpot user whose UI edits the `/_sim` actions stand for (`sourceId: userId:<n>`). Default 2000001. */
  readonly userId?: number;
  /** Workflow action definition id and request timeout (UNVERIFIED; third parties say 20 s). */
  readonly workflowActions?: { readonly actionDefinitionId?: number; readonly timeoutMs?: number };
}

export interface RequestRecord {
  readonly at: string;
  readonly method: string;
  readonly path: string;
  readonly portalId: string | null;
  /** null when the connection was reset. */
  readonly status: number | null;
  readonly fault: 'error' | 'slow' | 'reset' | null;
  readonly rateLimited: 'TEN_SECONDLY_ROLLING' | 'SECONDLY' | null;
}

export interface SimulatorCounters {
  readonly requests: { total: number; api: number; oauth: number; byPortal: Record<string, number> };
  readonly rateLimited: { TEN_SECONDLY_ROLLING: number; SECONDLY: number };
  readonly faults: { error: number; slow: number; reset: number };
  readonly workflowActions: { calls: number; failed: number };
  readonly oauth: { issued: number; refused: number };
}

export interface ContactView {
  readonly id: string;
  readonly email: string | null;
  readonly properties: Record<string, string>;
  readonly createdAt: string;
  readonly updatedAt: string;
}

export interface PortalState {
  readonly portalId: string;
  readonly hubDomain: string;
  readonly scopes: string[];
  readonly gdpr: boolean;
  readonly tokens: { accessTokens: number; refreshTokens: number };
  readonly subscriptionTypes: Array<{ id: string; name: string; isActive: boolean; businessUnitId: number }>;
  readonly contacts: ContactView[];
  /** Per email address: `optedOutOfAll`, `portalWide`, and per subscription type its status with legal basis and explanation. */
  readonly subscriptions: unknown[];
  readonly propertyGroups: Array<{ name: string; label: string }>;
  /** The portal's own (non-HubSpot) contact properties. */
  readonly properties: Array<{ name: string; type: string; fieldType: string; groupName: string; options: string[] }>;
  readonly lists: Array<{ listId: string; name: string; processingType: string; members: string[] }>;
}

export interface SimulatorState {
  readonly appUrl: string | null;
  readonly appId: string;
  readonly faults: Required<FaultOptions>;
  readonly webhookSubscriptions: ReadonlyArray<{ id: number; subscriptionType: string; propertyName?: string }>;
  readonly portals: PortalState[];
  readonly pendingWebhooks: WebhookEvent[];
  readonly counters: SimulatorCounters & { readonly webhooks: WebhookCounters & { readonly pending: number } };
}

export interface HubspotSimulator {
  /** Base URL of the simulated API (HUBSPOT_API_BASE_URL), e.g. http://127.0.0.1:53412. */
  readonly url: string;
  readonly port: number;
  readonly appUrl: string | null;
  setAppUrl(url: string | null): void;
  setFaults(faults: FaultOptions): void;
  /** Faults for the next matching requests (before the random ones). */
  injectFault(fault: QueuedFault): void;
  state(): SimulatorState;
  /** Every API/OAuth request so far (newest last, at most 10,000). */
  requests(): RequestRecord[];
  /** A person creates a contact in HubSpot (UI, form, import): `contact.creation` and property-change webhooks. */
  createContact(portalId: string | number, contact: { email?: string | null; properties?: PropertiesInput; source?: ChangeSource }): ContactView;
  updateContact(portalId: string | number, contactId: string, properties: PropertiesInput, source?: ChangeSource): ContactView;
  mergeContacts(portalId: string | number, primaryId: string, mergedId: string, source?: ChangeSource): ContactView;
  /** `privacy`: a GDPR deletion (`contact.privacyDeletion` as well; the addresses' subscription statuses are erased). */
  deleteContact(portalId: string | number, contactId: string, options?: { privacy?: boolean; source?: ChangeSource }): void;
  /** The contact clicks an email's unsubscribe link: one type NOT_SUBSCRIBED, or (no type) unsubscribed from all. No webhook. */
  unsubscribeViaLink(portalId: string | number, email: string, subscriptionId?: string | number): void;
  /** The contact opts in through a form (their own act; re-subscribes). */
  subscribeViaForm(portalId: string | number, email: string, subscriptionId: string | number, basis?: { legalBasis?: string; legalBasisExplanation?: string }): void;
  /** A workflow runs the app's custom action for a contact: one signed execution request, the app's answer. */
  callWorkflowAction(call: WorkflowActionCall): Promise<WorkflowActionResult>;
  /** Sends the queued webhook events now (always possible; the only way in `manual` delivery). */
  flushWebhooks(): Promise<WebhookDelivery[]>;
  pendingWebhooks(): WebhookEvent[];
  /** The app is uninstalled from the portal: its tokens stop working; a refresh answers invalid_grant. */
  uninstall(portalId: string | number): void;
  /** A single-use OAuth authorization code for an install in the portal (`grant_type=authorization_code`). */
  authorizationCode(portalId: string | number): string;
  close(): Promise<void>;
}

const REQUEST_LOG_MAX = 10_000;
const BODY_LIMIT_BYTES = 20 * 1024 * 1024;
const FAULT_MESSAGES: Readonly<Record<number, string>> = { 500: 'internal error', 502: 'Bad Gateway', 503: 'Service Unavailable', 504: 'Gateway Timeout' };

function trimUrl(url: string | null | undefined): string | null {
  if (url === null || url === undefined || url.trim() === '') return null;
  return url.trim().replace(/\/+$/, '');
}

function firstValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function checkRate(name: string, value: number | undefined): number {
  const rate = value ?? 0;
  if (!Number.isFinite(rate) || rate < 0 || rate > 1) throw new RangeError(`faults.${name} must be between 0 and 1`);
  return rate;
}

function normalizeFaults(faults: FaultOptions = {}): Required<FaultOptions> {
  return {
    errorRate: checkRate('errorRate', faults.errorRate),
    slowRate: checkRate('slowRate', faults.slowRate),
    resetRate: checkRate('resetRate', faults.resetRate),
    delayMs: faults.delayMs ?? 20_000,
    errorStatuses: faults.errorStatuses ?? [500, 502, 503, 504],
  };
}

async function readBody(ctx: Context): Promise<string> {
  try {
    return (await getRawBody(ctx.req, { limit: BODY_LIMIT_BYTES })).toString('utf8');
  } catch {
    throw apiError(413, 'VALIDATION_ERROR', `request body larger than ${BODY_LIMIT_BYTES} bytes or incomplete`);
  }
}

async function readJson(ctx: Context): Promise<unknown> {
  const raw = await readBody(ctx);
  if (raw.trim() === '') return undefined;
  if (!/json/i.test(ctx.get('Content-Type'))) throw apiError(415, 'VALIDATION_ERROR', `Content-Type ${ctx.get('Content-Type') || '(none)'} is not supported; send application/json`);
  try {
    return JSON.parse(raw) as unknown;
  } catch (err) {
    throw validation(`Invalid input JSON: ${err instanceof Error ? err.message : 'not JSON'}`);
  }
}

class Simulation {
  readonly options: HubspotSimulatorOptions;
  readonly clock: SimulatorClock;
  readonly portals = new Map<string, { portal: Portal; preferences: CommunicationPreferences }>();
  readonly tokens: TokenStore;
  readonly tenSecondly: RollingLimit;
  readonly search: RollingLimit;
  readonly dispatcher: WebhookDispatcher;
  readonly log: RequestRecord[] = [];
  readonly counters: SimulatorCounters;
  readonly appSource: ChangeSource;
  readonly userSource: ChangeSource;
  readonly inflight = new Set<AbortController>();
  readonly sleeping = new Set<{ timer: NodeJS.Timeout; done: () => void }>();
  appUrl: string | null;
  faults: Required<FaultOptions>;
  queuedFaults: Array<QueuedFault & { left: number }> = [];
  readonly #faultRandom: () => number;
  readonly #idRandom: () => number;
  #nextContactId = 1001;
  #nextListId = 1;
  #nextCallback = 1;

  constructor(options: HubspotSimulatorOptions) {
    if (options.portals.length === 0) throw new TypeError('HubSpot simulator: give at least one portal');
    this.options = options;
    this.clock = options.clock ?? systemClock;
    const seed = options.seed ?? 1;
    this.#faultRandom = options.random ?? seededRandom(seed);
    this.#idRandom = seededRandom(seed ^ 0x9e3779b9);
    this.appUrl = trimUrl(options.appUrl);
    this.faults = normalizeFaults(options.faults);
    this.tokens = new TokenStore(this.clock, this.#idRandom, options.accessTokenTtlSeconds ?? 1800);
    this.tenSecondly = new RollingLimit(options.rateLimit?.max ?? 110, options.rateLimit?.windowMs ?? 10_000);
    this.search = new RollingLimit(options.searchLimit?.max ?? 5, options.searchLimit?.windowMs ?? 1_000);
    const appId = String(options.appId);
    this.appSource = options.appWriteSource ?? { changeSource: 'INTEGRATION', sourceId: appId };
    this.userSource = { changeSource: 'CRM_UI', sourceId: `userId:${options.userId ?? 2000001}` };
    this.dispatcher = new WebhookDispatcher({ ...DEFAULT_WEBHOOK_SETTINGS, ...options.webhooks }, { appId, clientSecret: options.clientSecret, clock: this.clock, targetBase: () => this.appUrl });
    this.counters = {
      requests: { total: 0, api: 0, oauth: 0, byPortal: {} },
      rateLimited: { TEN_SECONDLY_ROLLING: 0, SECONDLY: 0 },
      faults: { error: 0, slow: 0, reset: 0 },
      workflowActions: { calls: 0, failed: 0 },
      oauth: { issued: 0, refused: 0 },
    };
    for (const p of options.portals) {
      const portalId = String(p.portalId);
      if (!/^\d+$/.test(portalId)) throw new TypeError(`portal id ${portalId} must be numeric`);
      if (this.portals.has(portalId)) throw new TypeError(`portal ${portalId} given twice`);
      const types = (p.subscriptionTypes ?? []).map((t) => ({ id: String(t.id), name: t.name }));
      const portal = new Portal({ ...p, scopes: p.scopes ?? DEFAULT_SCOPES }, types, {
        clock: this.clock,
        nextContactId: () => String(this.#nextContactId++),
        nextListId: () => String(this.#nextListId++),
        emit: (id, event) => this.dispatcher.enqueue(id, event),
      });
      const preferences = new CommunicationPreferences(portal, p.subscriptionTypes ?? [], this.clock);
      this.portals.set(portalId, { portal, preferences });
      this.tokens.add(portalId, p.accessToken, p.refreshToken);
    }
  }

  correlationId(): string {
    return uuidFrom(this.#idRandom);
  }

  portal(portalId: string | number): { portal: Portal; preferences: CommunicationPreferences } {
    const found = this.portals.get(String(portalId));
    if (found === undefined) throw apiError(404, 'OBJECT_NOT_FOUND', `portal ${String(portalId)} is not simulated`);
    return found;
  }

  record(entry: RequestRecord): void {
    this.log.push(entry);
    if (this.log.length > REQUEST_LOG_MAX) this.log.splice(0, this.log.length - REQUEST_LOG_MAX);
  }

  /** The fault for this request, if any: a queued one first, then one draw against the rates. */
  rollFault(path: string): { kind: 'error' | 'slow' | 'reset'; status: number } | null {
    const pick = (status: number | undefined) => {
      if (status !== undefined) return status;
      const statuses = this.faults.errorStatuses;
      return statuses.length === 1 ? statuses[0]! : statuses[Math.floor(this.#faultRandom() * statuses.length)]!;
    };
    const queued = this.queuedFaults.find((q) => q.path === undefined || (typeof q.path === 'string' ? path.includes(q.path) : q.path.test(path)));
    if (queued !== undefined) {
      queued.left--;
      if (queued.left <= 0) this.queuedFaults.splice(this.queuedFaults.indexOf(queued), 1);
      return { kind: queued.kind, status: queued.kind === 'error' ? pick(queued.status) : 0 };
    }
    const { errorRate, slowRate, resetRate } = this.faults;
    if (errorRate + slowRate + resetRate <= 0) return null;
    const r = this.#faultRandom();
    if (r < errorRate) return { kind: 'error', status: pick(undefined) };
    if (r < errorRate + slowRate) return { kind: 'slow', status: 0 };
    if (r < errorRate + slowRate + resetRate) return { kind: 'reset', status: 0 };
    return null;
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const entry = {
        timer: setTimeout(() => {
          this.sleeping.delete(entry);
          resolve();
        }, ms),
        done: resolve,
      };
      this.sleeping.add(entry);
    });
  }

  callbackId(portalId: string, workflowId: number): string {
    return `ap-${portalId}-${workflowId}-${this.#nextCallback++}-${Math.floor(this.#idRandom() * 1e9)}`;
  }

  contactView(contact: Contact): ContactView {
    return { id: contact.id, email: contact.properties.get('email') ?? null, properties: Object.fromEntries(contact.properties), createdAt: contact.createdAt, updatedAt: contact.updatedAt };
  }

  state(): SimulatorState {
    return {
      appUrl: this.appUrl,
      appId: String(this.options.appId),
      faults: this.faults,
      webhookSubscriptions: this.dispatcher.subscriptions.map((s) => ({ id: s.id, subscriptionType: s.subscriptionType, ...(s.propertyName !== undefined ? { propertyName: s.propertyName } : {}) })),
      portals: [...this.portals.values()].map(({ portal, preferences }) => ({
        portalId: portal.id,
        hubDomain: portal.hubDomain,
        scopes: [...portal.scopes],
        gdpr: portal.gdpr,
        tokens: this.tokens.activeCount(portal.id),
        subscriptionTypes: preferences.types.map((t) => ({ id: t.id, name: t.name, isActive: t.isActive, businessUnitId: t.businessUnitId })),
        contacts: [...portal.contacts.values()].map((c) => this.contactView(c)),
        subscriptions: preferences.snapshot(),
        propertyGroups: [...portal.groups.values()].map((g) => ({ name: g.name, label: g.label })),
        properties: [...portal.properties.values()]
          .filter((p) => !p.readOnlyDefinition)
          .map((p) => ({ name: p.name, type: p.type, fieldType: p.fieldType, groupName: p.groupName, options: p.options.map((o) => o.value) })),
        lists: [...portal.lists.values()].map((l) => ({ listId: l.listId, name: l.name, processingType: l.processingType, members: [...l.members.keys()] })),
      })),
      pendingWebhooks: this.dispatcher.pending(),
      counters: { ...(JSON.parse(JSON.stringify(this.counters)) as SimulatorCounters), webhooks: { ...this.dispatcher.counters, pending: this.dispatcher.pending().length } },
    };
  }
}

// ---------------------------------------------------------------------------------------------------- HTTP

function apiMiddleware(sim: Simulation, route: ApiRoute): Koa.Middleware {
  return async (ctx) => {
    const auth = sim.tokens.authenticate(ctx.get('Authorization'));
    if (!auth.ok) {
      if (auth.reason === 'expired') {
        throw apiError(401, 'EXPIRED_AUTHENTICATION', `The OAuth token used to make this call expired ${Math.ceil((auth.expiredMsAgo ?? 0) / 1000)} second(s) ago.`);
      }
      throw apiError(
        401,
        'INVALID_AUTHENTICATION',
        auth.reason === 'missing'
          ? 'Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview'
          : 'The OAuth token used to make this call is invalid or has been revoked.',
      );
    }
    const { portal, preferences } = sim.portal(auth.portalId);
    ctx.state.portalId = portal.id;
    sim.counters.requests.byPortal[portal.id] = (sim.counters.requests.byPortal[portal.id] ?? 0) + 1;
    if (!route.scopes.some((s) => portal.scopes.has(s))) {
      throw apiError(403, 'MISSING_SCOPES', "This app hasn't been granted all required scopes to make this call. Read more about required scopes here: https://developers.hubspot.com/scopes.", {
        errors: [{ message: 'One or more of the following scopes are required.', context: { requiredGranularScopes: route.scopes } }],
        links: { scopes: 'https://developers.hubspot.com/scopes' },
      });
    }
    const nowMs = sim.clock.now().getTime();
    if (route.search === true) {
      // Search has its own limit and no rate-limit headers (hubspot.md §5, §8). The policy name is UNVERIFIED.
      if (!sim.search.take(portal.id, nowMs).ok) {
        sim.counters.rateLimited.SECONDLY++;
        ctx.state.rateLimited = 'SECONDLY';
        throw new SimHttpError(429, { status: 'error', message: SECONDLY_MESSAGE, errorType: 'RATE_LIMIT', policyName: 'SECONDLY', requestId: sim.correlationId() });
      }
    } else {
      const taken = sim.tenSecondly.take(portal.id, nowMs);
      const headers = {
        'X-HubSpot-RateLimit-Interval-Milliseconds': String(sim.tenSecondly.windowMs),
        'X-HubSpot-RateLimit-Max': String(sim.tenSecondly.max),
        'X-HubSpot-RateLimit-Remaining': String(taken.remaining),
      };
      if (!taken.ok) {
        sim.counters.rateLimited.TEN_SECONDLY_ROLLING++;
        ctx.state.rateLimited = 'TEN_SECONDLY_ROLLING';
        throw new SimHttpError(
          429,
          { status: 'error', message: TEN_SECONDLY_MESSAGE, errorType: 'RATE_LIMIT', policyName: 'TEN_SECONDLY_ROLLING', requestId: sim.correlationId() },
          headers,
        );
      }
      ctx.set(headers);
    }
    const body = ctx.method === 'GET' || ctx.method === 'DELETE' ? undefined : await readJson(ctx);
    const query = Object.fromEntries(Object.entries(ctx.query).map(([k, v]) => [k, firstValue(v)]));
    const answer = route.handle({ portal, preferences, params: ctx.params as Record<string, string>, query, body, appSource: sim.appSource });
    ctx.status = answer.status;
    if (answer.body !== undefined) ctx.body = answer.body;
  };
}

const tokenForm = z.object({
  grant_type: z.string(),
  client_id: z.string().optional(),
  client_secret: z.string().optional(),
  refresh_token: z.string().optional(),
  code: z.string().optional(),
  redirect_uri: z.string().optional(),
});

/** `POST /oauth/v1/token` (and the v3 twin, which also answers `hub_id` and `scopes`), form-encoded (hubspot.md §7). */
function tokenEndpoint(sim: Simulation, version: 'v1' | 'v3'): Koa.Middleware {
  return async (ctx) => {
    if (!/application\/x-www-form-urlencoded/i.test(ctx.get('Content-Type'))) {
      throw new SimHttpError(400, { status: 'BAD_REQUEST', error: 'invalid_request', message: 'the token request must be application/x-www-form-urlencoded' });
    }
    const parsed = tokenForm.safeParse(Object.fromEntries(new URLSearchParams(await readBody(ctx))));
    if (!parsed.success) throw new SimHttpError(400, { status: 'BAD_REQUEST', error: 'invalid_request', message: 'missing grant_type' });
    const form = parsed.data;
    const refuse = (status: string, error: string, message: string) => {
      sim.counters.oauth.refused++;
      return new SimHttpError(400, { status, message, error, error_description: message });
    };
    if (form.client_id !== sim.options.clientId) throw refuse('BAD_CLIENT_ID', 'invalid_client', 'missing or unknown client_id');
    if (form.client_secret !== sim.options.clientSecret) throw refuse('BAD_CLIENT_SECRET', 'invalid_client', 'missing or invalid client_secret');
    let issued: ReturnType<TokenStore['refresh']>;
    if (form.grant_type === 'refresh_token') {
      issued = sim.tokens.refresh(form.refresh_token ?? '');
      if (issued === null) throw refuse('BAD_REFRESH_TOKEN', 'invalid_grant', 'missing or unknown refresh token');
    } else if (form.grant_type === 'authorization_code') {
      issued = sim.tokens.exchange(form.code ?? '');
      if (issued === null) throw refuse('BAD_AUTH_CODE', 'invalid_grant', 'missing or unknown auth code');
    } else {
      throw refuse('BAD_GRANT_TYPE', 'unsupported_grant_type', `grant_type ${form.grant_type} is not supported`);
    }
    sim.counters.oauth.issued++;
    const portal = sim.portal(issued.portalId).portal;
    ctx.body = {
      token_type: 'bearer',
      refresh_token: issued.refreshToken,
      access_token: issued.accessToken,
      expires_in: issued.expiresIn,
      ...(version === 'v3' ? { hub_id: Number(portal.id), scopes: [...portal.scopes] } : {}),
    };
  };
}

function oauthRouter(sim: Simulation): Router {
  const router = new Router();
  router.post('/oauth/v1/token', tokenEndpoint(sim, 'v1'));
  router.post('/oauth/v3/token', tokenEndpoint(sim, 'v3'));
  router.get('/oauth/v1/access-tokens/:token', (ctx) => {
    const info = sim.tokens.accessInfo(ctx.params.token!);
    if (info === null) throw apiError(404, 'OBJECT_NOT_FOUND', 'access token not found');
    if ('expired' in info) throw apiError(401, 'EXPIRED_AUTHENTICATION', 'The OAuth token has expired.');
    const portal = sim.portal(info.portalId).portal;
    ctx.body = {
      token: ctx.params.token,
      user: `user-${sim.options.userId ?? 2000001}@hubspot.sim`,
      hub_domain: portal.hubDomain,
      scopes: [...portal.scopes],
      hub_id: Number(portal.id),
      app_id: Number(sim.options.appId),
      expires_in: info.expiresInSeconds ?? sim.tokens.ttlSeconds,
      user_id: sim.options.userId ?? 2000001,
      token_type: 'access',
    };
  });
  router.get('/oauth/v1/refresh-tokens/:token', (ctx) => {
    const portalId = sim.tokens.refreshInfo(ctx.params.token!);
    if (portalId === null) throw apiError(404, 'OBJECT_NOT_FOUND', 'refresh token not found');
    const portal = sim.portal(portalId).portal;
    ctx.body = { token: ctx.params.token, user: `user-${sim.options.userId ?? 2000001}@hubspot.sim`, hub_domain: portal.hubDomain, scopes: [...portal.scopes], hub_id: Number(portal.id), client_id: sim.options.clientId, user_id: sim.options.userId ?? 2000001, token_type: 'refresh' };
  });
  router.delete('/oauth/v1/refresh-tokens/:token', (ctx) => {
    if (!sim.tokens.revokeRefresh(ctx.params.token!)) throw apiError(404, 'OBJECT_NOT_FOUND', 'refresh token not found');
    ctx.status = 204;
  });
  return router;
}

function apiRouter(sim: Simulation): Router {
  const router = new Router();
  for (const route of API_ROUTES) {
    const middleware = apiMiddleware(sim, route);
    if (route.method === 'GET') router.get(route.path, middleware);
    else if (route.method === 'POST') router.post(route.path, middleware);
    else if (route.method === 'PUT') router.put(route.path, middleware);
    else if (route.method === 'PATCH') router.patch(route.path, middleware);
    else router.delete(route.path, middleware);
  }
  return router;
}

const sourceSchema = z.object({ changeSource: z.string(), sourceId: z.string().optional() }).optional();
const propertiesSchema = z.record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.null()]));
const faultsSchema = z.object({
  errorRate: z.number().optional(),
  slowRate: z.number().optional(),
  resetRate: z.number().optional(),
  delayMs: z.number().int().nonnegative().optional(),
  errorStatuses: z.array(z.number().int().min(500).max(599)).min(1).optional(),
});

function simBody<T extends z.ZodType>(schema: T, value: unknown): z.infer<T> {
  const result = schema.safeParse(value ?? {});
  if (result.success) return result.data;
  throw new SimHttpError(400, { status: 'error', message: `invalid /_sim request: ${result.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; ')}` });
}

/** The control plane: JSON in and out, the same operations as the programmatic API. */
function controlRouter(sim: Simulation, api: HubspotSimulator): Router {
  const router = new Router({ prefix: '/_sim' });
  const json = async (ctx: Context) => {
    const raw = await readBody(ctx);
    if (raw.trim() === '') return undefined;
    try {
      return JSON.parse(raw) as unknown;
    } catch {
      throw new SimHttpError(400, { status: 'error', message: 'invalid /_sim request: body is not JSON' });
    }
  };
  router.get('/state', (ctx) => {
    ctx.body = api.state();
  });
  router.get('/requests', (ctx) => {
    ctx.body = { requests: api.requests() };
  });
  router.put('/config', async (ctx) => {
    const body = simBody(z.object({ appUrl: z.url().nullable().optional(), faults: faultsSchema.optional() }), await json(ctx));
    if (body.appUrl !== undefined) api.setAppUrl(body.appUrl);
    if (body.faults !== undefined) api.setFaults(body.faults);
    ctx.body = { appUrl: sim.appUrl, faults: sim.faults };
  });
  router.post('/faults', async (ctx) => {
    const body = simBody(z.object({ kind: z.enum(['error', 'slow', 'reset']), status: z.number().int().min(500).max(599).optional(), times: z.number().int().positive().optional(), path: z.string().optional() }), await json(ctx));
    api.injectFault(body);
    ctx.status = 204;
  });
  router.post('/webhooks/flush', async (ctx) => {
    if (sim.appUrl === null) throw new SimHttpError(409, { status: 'error', message: 'appUrl is not set (PUT /_sim/config {"appUrl": …})' });
    ctx.body = { deliveries: await api.flushWebhooks() };
  });
  router.post('/portals/:portalId/contacts/merge', async (ctx) => {
    const body = simBody(z.object({ primaryId: z.string(), mergedId: z.string(), source: sourceSchema }), await json(ctx));
    ctx.body = api.mergeContacts(ctx.params.portalId!, body.primaryId, body.mergedId, body.source);
  });
  router.post('/portals/:portalId/contacts', async (ctx) => {
    const body = simBody(z.object({ email: z.string().nullable().optional(), properties: propertiesSchema.optional(), source: sourceSchema }), await json(ctx));
    ctx.status = 201;
    ctx.body = api.createContact(ctx.params.portalId!, body);
  });
  router.patch('/portals/:portalId/contacts/:contactId', async (ctx) => {
    const body = simBody(z.object({ properties: propertiesSchema, source: sourceSchema }), await json(ctx));
    ctx.body = api.updateContact(ctx.params.portalId!, ctx.params.contactId!, body.properties, body.source);
  });
  router.delete('/portals/:portalId/contacts/:contactId', (ctx) => {
    api.deleteContact(ctx.params.portalId!, ctx.params.contactId!, { privacy: ctx.query.privacy === 'true' });
    ctx.status = 204;
  });
  router.post('/portals/:portalId/unsubscribe', async (ctx) => {
    const body = simBody(z.object({ email: z.string(), subscriptionId: z.union([z.string(), z.number()]).optional() }), await json(ctx));
    api.unsubscribeViaLink(ctx.params.portalId!, body.email, body.subscriptionId);
    ctx.status = 204;
  });
  router.post('/portals/:portalId/subscribe', async (ctx) => {
    const body = simBody(z.object({ email: z.string(), subscriptionId: z.union([z.string(), z.number()]), legalBasis: z.string().optional(), legalBasisExplanation: z.string().optional() }), await json(ctx));
    api.subscribeViaForm(ctx.params.portalId!, body.email, body.subscriptionId, body);
    ctx.status = 204;
  });
  router.post('/portals/:portalId/workflow-actions', async (ctx) => {
    const body = simBody(
      z.object({
        contactId: z.union([z.string(), z.number()]),
        action: z.string().optional(),
        inputFields: z.record(z.string(), z.unknown()).optional(),
        properties: z.array(z.string()).optional(),
        workflowId: z.number().int().optional(),
        callbackId: z.string().optional(),
        signatureVersion: z.enum(['v2', 'v3']).optional(),
      }),
      await json(ctx),
    );
    ctx.body = await api.callWorkflowAction({ ...body, portalId: ctx.params.portalId! });
  });
  router.post('/portals/:portalId/uninstall', (ctx) => {
    api.uninstall(ctx.params.portalId!);
    ctx.status = 204;
  });
  router.post('/portals/:portalId/authorization-codes', (ctx) => {
    ctx.status = 201;
    ctx.body = { code: api.authorizationCode(ctx.params.portalId!) };
  });
  return router;
}

function isControl(path: string): boolean {
  return path === '/_sim' || path.startsWith('/_sim/');
}

function buildApp(sim: Simulation, api: HubspotSimulator): Koa {
  const app = new Koa();
  app.silent = true;
  app.on('error', () => undefined);
  const control = controlRouter(sim, api).routes();
  const platform = [oauthRouter(sim).routes(), apiRouter(sim).routes()];

  // Outermost: every platform request is counted and recorded with its final status (the control plane is not).
  app.use(async (ctx, next) => {
    if (isControl(ctx.path)) return next();
    sim.counters.requests.total++;
    if (ctx.path.startsWith('/oauth/')) sim.counters.requests.oauth++;
    else sim.counters.requests.api++;
    try {
      await next();
    } finally {
      sim.record({
        at: sim.clock.now().toISOString(),
        method: ctx.method,
        path: ctx.path,
        portalId: (ctx.state.portalId as string | undefined) ?? null,
        status: ctx.respond === false ? null : ctx.status,
        fault: (ctx.state.fault as RequestRecord['fault'] | undefined) ?? null,
        rateLimited: (ctx.state.rateLimited as RequestRecord['rateLimited'] | undefined) ?? null,
      });
    }
  });

  // Errors → HubSpot's JSON error bodies with a correlationId; unknown routes → 404.
  app.use(async (ctx, next) => {
    const correlationId = sim.correlationId();
    ctx.set('X-HubSpot-Correlation-Id', correlationId);
    try {
      await next();
      if (ctx.respond !== false && ctx.status === 404 && ctx.body == null) {
        throw apiError(404, 'OBJECT_NOT_FOUND', `HubSpot simulator: no endpoint ${ctx.method} ${ctx.path}`);
      }
    } catch (err) {
      if (ctx.respond === false) return;
      if (err instanceof SimHttpError) {
        const { status, message, ...rest } = err.body;
        ctx.status = err.status;
        ctx.set(err.headers);
        ctx.body = { status, message, correlationId, ...rest };
      } else {
        ctx.status = 500;
        ctx.body = { status: 'error', message: `HubSpot simulator bug: ${err instanceof Error ? err.message : String(err)}`, correlationId };
      }
    }
  });

  // The control plane: no faults, no limits.
  app.use(async (ctx, next) => {
    if (!isControl(ctx.path)) return next();
    await control(ctx as Parameters<typeof control>[0], async () => undefined);
  });

  // Faults: a reset before anything is read or applied; a 5xx instead of the work; a slow answer after it.
  app.use(async (ctx, next) => {
    const fault = sim.rollFault(ctx.path);
    if (fault === null) return next();
    ctx.state.fault = fault.kind;
    sim.counters.faults[fault.kind]++;
    if (fault.kind === 'reset') {
      ctx.respond = false;
      ctx.req.socket.destroy();
      return;
    }
    if (fault.kind === 'error') throw new SimHttpError(fault.status, { status: 'error', message: FAULT_MESSAGES[fault.status] ?? 'internal error' });
    try {
      await next();
    } finally {
      await sim.sleep(sim.faults.delayMs);
    }
  });
  for (const routes of platform) app.use(routes);
  return app;
}

/** Starts the simulator; resolves once it listens. */
export async function startHubspotSimulator(options: HubspotSimulatorOptions): Promise<HubspotSimulator> {
  const sim = new Simulation(options);
  const host = options.host ?? '127.0.0.1';
  const server = http.createServer();
  let url = '';
  let port = 0;

  const withPortal = (portalId: string | number) => sim.portal(portalId);
  const api: HubspotSimulator = {
    get url() {
      return url;
    },
    get port() {
      return port;
    },
    get appUrl() {
      return sim.appUrl;
    },
    setAppUrl(next) {
      sim.appUrl = trimUrl(next);
      sim.dispatcher.kick();
    },
    setFaults(faults) {
      sim.faults = normalizeFaults({ ...sim.faults, ...faults });
    },
    injectFault(fault) {
      sim.queuedFaults.push({ ...fault, left: fault.times ?? 1 });
    },
    state: () => sim.state(),
    requests: () => [...sim.log],
    createContact(portalId, contact) {
      const { portal } = withPortal(portalId);
      return sim.contactView(portal.createContact(contact.email ?? null, contact.properties ?? {}, contact.source ?? sim.userSource));
    },
    updateContact(portalId, contactId, properties, source) {
      const { portal } = withPortal(portalId);
      return sim.contactView(portal.updateContact(contactId, properties, source ?? sim.userSource));
    },
    mergeContacts(portalId, primaryId, mergedId, source) {
      const { portal } = withPortal(portalId);
      return sim.contactView(portal.merge(primaryId, mergedId, source ?? sim.userSource));
    },
    deleteContact(portalId, contactId, options = {}) {
      const { portal, preferences } = withPortal(portalId);
      const addresses = portal.deleteContact(contactId, options.source ?? sim.userSource, options.privacy === true);
      if (options.privacy === true) preferences.erase(addresses);
    },
    unsubscribeViaLink(portalId, email, subscriptionId) {
      const { preferences } = withPortal(portalId);
      const source = { changeSource: 'EMAIL' };
      if (subscriptionId === undefined) preferences.unsubscribeAll(email, SOURCES.link, source);
      else preferences.change(email, { subscriptionId: String(subscriptionId), statusState: 'UNSUBSCRIBED' }, SOURCES.link, source);
    },
    subscribeViaForm(portalId, email, subscriptionId, basis = {}) {
      const { preferences } = withPortal(portalId);
      preferences.change(
        email,
        {
          subscriptionId: String(subscriptionId),
          statusState: 'SUBSCRIBED',
          legalBasis: basis.legalBasis ?? 'CONSENT_WITH_NOTICE',
          legalBasisExplanation: basis.legalBasisExplanation ?? 'Opted in through a HubSpot form',
        },
        SOURCES.form,
        { changeSource: 'FORM' },
      );
    },
    async callWorkflowAction(call) {
      const { portal } = withPortal(call.portalId);
      const contact = portal.contact(String(call.contactId));
      if (sim.appUrl === null) throw new SimHttpError(409, { status: 'error', message: 'appUrl is not set, so the workflow action has nowhere to go' });
      const workflowId = call.workflowId ?? 5_000_001;
      const actionDefinitionId = call.actionDefinitionId ?? options.workflowActions?.actionDefinitionId ?? 3_000_001;
      const actionDefinitionVersion = call.actionDefinitionVersion ?? 1;
      const body = {
        callbackId: call.callbackId ?? sim.callbackId(portal.id, workflowId),
        origin: { portalId: Number(portal.id), actionDefinitionId, actionDefinitionVersion, extensionDefinitionId: actionDefinitionId, extensionDefinitionVersionId: actionDefinitionVersion },
        context: { source: 'WORKFLOWS', workflowId },
        object: {
          objectId: Number(contact.id),
          objectType: 'CONTACT',
          properties: Object.fromEntries((call.properties ?? []).map((name) => [name, contact.properties.get(name) ?? null])),
        },
        inputFields: call.inputFields ?? {},
      };
      sim.counters.workflowActions.calls++;
      const result = await sendExecution(
        {
          url: `${sim.appUrl}${actionPath(call.action)}`,
          body,
          clientSecret: options.clientSecret,
          nowMs: sim.clock.now().getTime(),
          signatureVersion: call.signatureVersion ?? 'v2',
          versionHeader: call.versionHeader ?? true,
          timeoutMs: options.workflowActions?.timeoutMs ?? 20_000,
        },
        sim.inflight,
      );
      if (result.status === null || result.status < 200 || result.status >= 300) sim.counters.workflowActions.failed++;
      return result;
    },
    flushWebhooks: () => sim.dispatcher.flush(),
    pendingWebhooks: () => sim.dispatcher.pending(),
    uninstall(portalId) {
      sim.tokens.revokePortal(withPortal(portalId).portal.id);
    },
    authorizationCode(portalId) {
      return sim.tokens.code(withPortal(portalId).portal.id);
    },
    async close() {
      sim.dispatcher.close();
      for (const controller of sim.inflight) controller.abort();
      for (const entry of sim.sleeping) {
        clearTimeout(entry.timer);
        entry.done();
      }
      sim.sleeping.clear();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };

  server.on('request', buildApp(sim, api).callback());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  port = (server.address() as AddressInfo).port;
  url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  return api;
}

