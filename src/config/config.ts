/**
 * Configuration: parsed once at start from the environment (plus an optional `.env`, loaded by the caller),
 * validated with zod, frozen. Nothing else in the app reads `process.env` (style.md §13).
 *
 * With no configuration at all the app starts on SQLite; features whose secrets are missing are reported in
 * `features` (start-up banner, and a 503 naming the missing variable on their routes).
 */
import path from 'node:path';
import { z } from 'zod';
import { parse as parsePgConnectionString } from 'pg-connection-string';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Default database: an embedded SQLite file under ./data/ (created on first start). */
export const DEFAULT_SQLITE_FILE = path.join('data', 'consent-bridge.sqlite');

export type DatabaseTarget =
  | { readonly kind: 'sqlite'; readonly file: string }
  | { readonly kind: 'postgres'; readonly url: string };

export interface FeatureStatus {
  readonly enabled: boolean;
  /** Environment variables whose absence switches the feature off. */
  readonly missing: readonly string[];
}

export const FEATURES = ['shopify', 'hubspot', 'tokenStorage'] as const;
export type Feature = (typeof FEATURES)[number];

export interface AppConfig {
  readonly port: number;
  readonly host: string;
  readonly database: DatabaseTarget;
  readonly logLevel: LogLevel;
  /** Public base URL of this app (no trailing slash); HubSpot v3 signatures are computed over it. */
  readonly appUrl: string;
  readonly shopify: {
    readonly apiKey: string | null;
    readonly apiSecret: string | null;
    readonly apiSecretPrevious: string | null;
    /** Base URL every Shopify Admin API call goes to instead of `https://<shop>` (simulators, staging); null = the real platform. */
    readonly apiBaseUrl: string | null;
  };
  readonly hubspot: {
    readonly clientId: string | null;
    readonly clientSecret: string | null;
    readonly clientSecretPrevious: string | null;
    readonly appId: string | null;
    /** Base URL every HubSpot API call goes to instead of `https://api.hubapi.com`; null = the real platform. */
    readonly apiBaseUrl: string | null;
  };
  /** 32-byte key for AES-256-GCM encryption of stored platform tokens; null = token storage off. */
  readonly encryptionKey: Buffer | null;
  /** How long graceful shutdown waits for in-flight work before closing anyway (ms). */
  readonly shutdownTimeoutMs: number;
  /** Largest webhook body read (bytes); larger requests get 413 before any parsing. Default 2 MiB. */
  readonly webhookBodyLimitBytes: number;
  /**
   * How long the webhook routes reuse a tenant found by shop domain or portal id (ms). Default 5000; 0 = no
   * cache. Only found tenants are cached, so a newly linked tenant is routed at once; a change made by another
   * process (uninstall, settings) reaches the routes within this time.
   */
  readonly tenantCacheMs: number;
  /**
   * Most subjects the send gate keeps in memory across tenants (src/gate/cache.ts). Default 500,000 (about
   * 1 KB each); 0 = no cache, every gate request reads the database. The cache is exact, not time-based: every
   * batch first applies the changes committed since the last one.
   */
  readonly gateCacheMaxSubjects: number;
  readonly outbox: {
    /** Attempts before a platform write is dead-lettered (default 15: backoff 5 s doubling, capped at 1 h, about 5 h in all). */
    readonly maxAttempts: number;
  };
  readonly worker: {
    /** Run the inbox worker inside `serve` (default true); false when `consent-bridge worker` runs apart. */
    readonly inProcess: boolean;
    /** Attempts before a delivery is dead-lettered (default 8). */
    readonly maxAttempts: number;
  };
  /**
   * SQLite file inside `serve`: commit the webhook request path's inbox rows on a thread of their own, so the
   * event loop never waits for the fsync (default true; src/store/sqlite-offload.ts).
   */
  readonly sqliteWriteThread: boolean;
  /** Bearer token `GET /metrics` requires; null = open on the app port (the default). */
  readonly metricsToken: string | null;
  readonly features: Readonly<Record<Feature, FeatureStatus>>;
}

export class ConfigError extends Error {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(`Invalid configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n` + problems.map((p) => `  - ${p}`).join('\n'));
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/** Empty strings count as unset, so `FOO=` in a .env file does not turn a feature on with an empty secret. */
const optionalText = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? null : v.trim()));

/** Whole number from text, within bounds; null when unset. */
function wholeNumber(min: number, max: number) {
  return optionalText.pipe(
    z
      .string()
      .regex(/^\d+$/, 'must be a whole number')
      .transform(Number)
      .pipe(z.number().min(min, `must be at least ${min}`).max(max, `must be at most ${max}`))
      .nullable(),
  );
}

const envSchema = z.object({
  PORT: wholeNumber(0, 65535),
  HOST: optionalText,
  DATABASE_URL: optionalText,
  LOG_LEVEL: optionalText.pipe(z.enum(LOG_LEVELS).nullable()),
  APP_URL: optionalText.pipe(z.url({ protocol: /^https?$/ }).nullable()),
  SHOPIFY_API_BASE_URL: optionalText.pipe(z.url({ protocol: /^https?$/ }).nullable()),
  HUBSPOT_API_BASE_URL: optionalText.pipe(z.url({ protocol: /^https?$/ }).nullable()),
  OUTBOX_MAX_ATTEMPTS: wholeNumber(1, 100),
  SHOPIFY_API_KEY: optionalText,
  SHOPIFY_API_SECRET: optionalText,
  SHOPIFY_API_SECRET_PREVIOUS: optionalText,
  HUBSPOT_CLIENT_ID: optionalText,
  HUBSPOT_CLIENT_SECRET: optionalText,
  HUBSPOT_CLIENT_SECRET_PREVIOUS: optionalText,
  HUBSPOT_APP_ID: optionalText.pipe(z.string().regex(/^\d+$/, 'must be the numeric HubSpot app id').nullable()),
  ENCRYPTION_KEY: optionalText,
  SHUTDOWN_TIMEOUT_MS: wholeNumber(0, 600_000),
  WEBHOOK_BODY_LIMIT_BYTES: wholeNumber(1024, 50 * 1024 * 1024),
  TENANT_CACHE_MS: wholeNumber(0, 600_000),
  GATE_CACHE_MAX_SUBJECTS: wholeNumber(0, 50_000_000),
  RUN_WORKER: optionalText.pipe(z.enum(['true', 'false']).nullable()),
  SQLITE_WRITE_THREAD: optionalText.pipe(z.enum(['true', 'false']).nullable()),
  INBOX_MAX_ATTEMPTS: wholeNumber(1, 100),
  METRICS_TOKEN: optionalText,
});

/** Every variable the app reads; documented in the README "Configuration" table. */
export const CONFIG_VARIABLES = Object.freeze(Object.keys(envSchema.shape));

/**
 * `ENCRYPTION_KEY`: 32 bytes, given as 64 hex characters or base64 (44 characters). Generate one with
 * `openssl rand -hex 32`.
 */
export function parseEncryptionKey(value: string): Buffer | string {
  if (/^[0-9a-fA-F]{64}$/.test(value)) return Buffer.from(value, 'hex');
  if (/^[A-Za-z0-9+/]{43}=?$/.test(value)) {
    const key = Buffer.from(value, 'base64');
    if (key.length === 32) return key;
  }
  return 'must be 32 bytes as 64 hex characters or base64 (generate one with `openssl rand -hex 32`)';
}

export function parseDatabaseUrl(value: string | null, cwd: string): DatabaseTarget | string {
  if (value === null) return { kind: 'sqlite', file: path.resolve(cwd, DEFAULT_SQLITE_FILE) };
  if (/^postgres(ql)?:\/\//i.test(value)) {
    // Checked as node-postgres will read it (pg-connection-string), which also takes Unix-socket URLs such as
    // postgresql://app@/consent?host=/var/run/postgresql (or /cloudsql/… behind the Cloud SQL proxy); WHATWG URL
    // refuses those for their empty host.
    try {
      parsePgConnectionString(value);
    } catch (err) {
      // The parser also reads the files of sslrootcert, sslcert and sslkey: its message says which part failed.
      return `is not a valid postgres:// URL (${err instanceof Error ? err.message : String(err)})`;
    }
    return { kind: 'postgres', url: value };
  }
  const sqlite = /^(sqlite|file):(\/\/)?(.+)$/i.exec(value);
  if (sqlite?.[3]) return { kind: 'sqlite', file: sqlite[3] === ':memory:' ? ':memory:' : path.resolve(cwd, sqlite[3]) };
  return 'must be postgres://user@host:port/db or sqlite:<file path> (default: sqlite under ./data/)';
}

function feature(missing: readonly (string | false)[]): FeatureStatus {
  const names = missing.filter((m): m is string => m !== false);
  return Object.freeze({ enabled: names.length === 0, missing: Object.freeze(names) });
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Buffer.isBuffer(value)) {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}

/**
 * Parse and validate the environment. Reports every problem at once (ConfigError), never the first only.
 * Unknown variables are ignored: the process environment holds many that are not ours.
 */
export function loadConfig(env: Readonly<Record<string, string | undefined>>, cwd: string = process.cwd()): AppConfig {
  const problems: string[] = [];
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      problems.push(`${issue.path.join('.') || '(environment)'}: ${issue.message}`);
    }
  }
  // Check the fields zod accepted for the rules it cannot express, so all problems come out together.
  const raw = parsed.success ? parsed.data : undefined;
  const text = (name: keyof z.infer<typeof envSchema>): string | null => {
    const value = env[name];
    return value === undefined || value.trim() === '' ? null : value.trim();
  };

  const database = parseDatabaseUrl(text('DATABASE_URL'), cwd);
  if (typeof database === 'string') problems.push(`DATABASE_URL: ${database}`);

  const keyText = text('ENCRYPTION_KEY');
  const encryptionKey = keyText === null ? null : parseEncryptionKey(keyText);
  if (typeof encryptionKey === 'string') problems.push(`ENCRYPTION_KEY: ${encryptionKey}`);

  if (text('SHOPIFY_API_SECRET_PREVIOUS') !== null && text('SHOPIFY_API_SECRET') === null) {
    problems.push('SHOPIFY_API_SECRET_PREVIOUS: set without SHOPIFY_API_SECRET (the previous secret is only accepted next to the current one)');
  }
  if (text('HUBSPOT_CLIENT_SECRET_PREVIOUS') !== null && text('HUBSPOT_CLIENT_SECRET') === null) {
    problems.push('HUBSPOT_CLIENT_SECRET_PREVIOUS: set without HUBSPOT_CLIENT_SECRET');
  }

  if (problems.length > 0 || raw === undefined || typeof database === 'string' || typeof encryptionKey === 'string') {
    throw new ConfigError(problems);
  }

  const port = raw.PORT ?? 3000;
  const host = raw.HOST ?? '0.0.0.0';
  const appUrl = (raw.APP_URL ?? `http://localhost:${port}`).replace(/\/+$/, '');
  const config: AppConfig = {
    port,
    host,
    database,
    logLevel: raw.LOG_LEVEL ?? 'info',
    appUrl,
    shopify: { apiKey: raw.SHOPIFY_API_KEY, apiSecret: raw.SHOPIFY_API_SECRET, apiSecretPrevious: raw.SHOPIFY_API_SECRET_PREVIOUS, apiBaseUrl: raw.SHOPIFY_API_BASE_URL },
    hubspot: {
      clientId: raw.HUBSPOT_CLIENT_ID,
      clientSecret: raw.HUBSPOT_CLIENT_SECRET,
      clientSecretPrevious: raw.HUBSPOT_CLIENT_SECRET_PREVIOUS,
      appId: raw.HUBSPOT_APP_ID,
      apiBaseUrl: raw.HUBSPOT_API_BASE_URL,
    },
    encryptionKey,
    shutdownTimeoutMs: raw.SHUTDOWN_TIMEOUT_MS ?? 10_000,
    webhookBodyLimitBytes: raw.WEBHOOK_BODY_LIMIT_BYTES ?? 2 * 1024 * 1024,
    tenantCacheMs: raw.TENANT_CACHE_MS ?? 5000,
    gateCacheMaxSubjects: raw.GATE_CACHE_MAX_SUBJECTS ?? 500_000,
    outbox: { maxAttempts: raw.OUTBOX_MAX_ATTEMPTS ?? 15 },
    worker: { inProcess: raw.RUN_WORKER !== 'false', maxAttempts: raw.INBOX_MAX_ATTEMPTS ?? 8 },
    sqliteWriteThread: raw.SQLITE_WRITE_THREAD !== 'false',
    metricsToken: raw.METRICS_TOKEN,
    features: {
      // Webhook verification needs the secret; the API key identifies the app for OAuth.
      shopify: feature([raw.SHOPIFY_API_KEY === null && 'SHOPIFY_API_KEY', raw.SHOPIFY_API_SECRET === null && 'SHOPIFY_API_SECRET']),
      hubspot: feature([
        raw.HUBSPOT_CLIENT_ID === null && 'HUBSPOT_CLIENT_ID',
        raw.HUBSPOT_CLIENT_SECRET === null && 'HUBSPOT_CLIENT_SECRET',
        raw.HUBSPOT_APP_ID === null && 'HUBSPOT_APP_ID',
      ]),
      tokenStorage: feature([encryptionKey === null && 'ENCRYPTION_KEY']),
    },
  };
  return deepFreeze(config);
}

/** Human-readable lines for the start-up banner: what runs where, and what is off and why. */
export function describeConfig(config: AppConfig): string[] {
  const db = config.database.kind === 'sqlite' ? `SQLite ${config.database.file}` : `PostgreSQL ${redactUrl(config.database.url)}`;
  const lines = [`database: ${db}`, `public URL: ${config.appUrl}`, `metrics: GET /metrics ${config.metricsToken === null ? 'open (set METRICS_TOKEN to require a bearer token)' : 'with the METRICS_TOKEN bearer token'}`];
  for (const name of FEATURES) {
    const status = config.features[name];
    lines.push(status.enabled ? `${name}: on` : `${name}: OFF (set ${status.missing.join(', ')})`);
  }
  return lines;
}

/**
 * A PostgreSQL connection URL fit to print: rebuilt from what node-postgres reads (user, host or socket, port,
 * database) and the query parameters, with the password (in the user info or a `password` parameter, however
 * encoded) replaced by `***`. Never the raw string, so no odd character in a password can carry it through. A URL
 * node-postgres cannot read prints as `(unparseable URL)`.
 */
export function redactUrl(url: string): string {
  let parsed: ReturnType<typeof parsePgConnectionString>;
  try {
    parsed = parsePgConnectionString(url);
  } catch {
    return '(unparseable URL)';
  }
  const scheme = url.slice(0, url.indexOf('://'));
  const queryAt = url.indexOf('?');
  const decode = (text: string): string => {
    try {
      return decodeURIComponent(text.replace(/\+/g, ' '));
    } catch {
      return text;
    }
  };
  const pairs = (queryAt === -1 ? '' : url.slice(queryAt + 1).split('#')[0]!).split('&').filter((pair) => pair !== '');
  const query = pairs.map((pair) => (decode(pair.split('=')[0]!).toLowerCase() === 'password' ? `${pair.split('=')[0]}=***` : pair)).join('&');
  const user = parsed.user ? encodeURIComponent(parsed.user) : '';
  const auth = user || parsed.password ? `${user}${parsed.password ? ':***' : ''}@` : '';
  const host = parsed.host && !parsed.host.startsWith('/') ? (parsed.host.includes(':') ? `[${parsed.host}]` : parsed.host) : '';
  return `${scheme}://${auth}${host}${parsed.port ? `:${parsed.port}` : ''}/${parsed.database ?? ''}${query ? `?${query}` : ''}`;
}
