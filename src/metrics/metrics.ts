/**
 * What the app counts (issue 5 §7), as a port: routes, the dispatcher and the connectors get a `Metrics` (or
 * the `onCall` hook) through their deps objects and never import a registry (style.md §12: no module
 * singletons). `noopMetrics` is the default everywhere (tests, CLI); `serve` wires the prom-client
 * implementation (prometheus.ts) and exposes it at `GET /metrics` (routes.ts).
 *
 * Labels are bounded sets (platform, reason codes, error kinds, operations); never a tenant, a contact or an
 * error text, except the backfill gauge's `tenant` (one series per tenant being backfilled).
 */
import { AppError } from '../domain/errors';
import { PlatformCallError } from '../sync/ports';

export type MetricsPlatform = 'shopify' | 'hubspot';

/**
 * One platform call's result. `kind`: `ok`, else the `PlatformCallError` kind (`rate_limited`, `server_error`,
 * `timeout`, `connection`, `auth`, `client_error`, `malformed`). `status`: the HTTP status when there was one.
 */
export interface PlatformCallOutcome {
  readonly kind: string;
  readonly status: number | null;
}

/** The connectors' hook, called once per request sent to a platform (an in-process retry is another call). */
export type PlatformCallHook = (platform: MetricsPlatform, outcome: PlatformCallOutcome) => void;

/** Where a gate decision was asked for: the gate API, or HubSpot's "Check marketing consent" workflow action. */
export type GateDecisionSource = 'api' | 'hubspot_action';

export interface GateDecisionSample {
  readonly allowed: boolean;
  readonly reason: string;
}

/** What the dispatcher recorded for one chunk of one (platform, operation). */
export interface OutboxChunkOutcome {
  /** Rows marked done. */
  readonly done: number;
  /**
   * Per row marked done: seconds from the row's `created_at` (enqueue) to being marked done. Empty when some
   * outcomes were not recorded (a lease lost): which rows were is not known, and their new owner observes them.
   */
  readonly lagSeconds: readonly number[];
  /** Rows that failed and will be retried. */
  readonly retried: number;
  /** Rows dead-lettered. */
  readonly dead: number;
}

export interface Metrics {
  /** A request reached a webhook route (counted before any check). */
  webhookReceived(platform: MetricsPlatform): void;
  /** A webhook request was refused; `reason` from `rejectionReason`. */
  webhookRejected(platform: MetricsPlatform, reason: string): void;
  platformCall(platform: MetricsPlatform, outcome: PlatformCallOutcome): void;
  /** The decisions of one request (one per recipient). */
  gateDecisions(source: GateDecisionSource, decisions: Iterable<GateDecisionSample>): void;
  outboxRecorded(platform: string, operation: string, outcome: OutboxChunkOutcome): void;
}

export const noopMetrics: Metrics = Object.freeze({
  webhookReceived: () => undefined,
  webhookRejected: () => undefined,
  platformCall: () => undefined,
  gateDecisions: () => undefined,
  outboxRecorded: () => undefined,
});

/**
 * Why a request was refused, as a bounded label: the AppError code (`unauthorized`, `bad_request`,
 * `payload_too_large`, `unsupported_media_type`, `feature_disabled`, …), else the HTTP status class of an error
 * that carries one (`4xx`, `5xx`), else `internal`.
 */
export function rejectionReason(err: unknown): string {
  if (err instanceof AppError) return err.code;
  const status = (err as { status?: unknown; statusCode?: unknown } | null)?.status ?? (err as { statusCode?: unknown } | null)?.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 600) return `${Math.floor(status / 100)}xx`;
  return 'internal';
}

/** The outcome of a failed call: a `PlatformCallError`'s kind and status; anything else `error`. */
export function callOutcomeOf(err: unknown): PlatformCallOutcome {
  if (err instanceof PlatformCallError) return { kind: err.kind, status: err.status };
  return { kind: 'error', status: null };
}
