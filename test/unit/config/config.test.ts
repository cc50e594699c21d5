import path from 'node:path';
import {
  CONFIG_VARIABLES,
  ConfigError,
  DEFAULT_SQLITE_FILE,
  describeConfig,
  loadConfig,
  parseDatabaseUrl,
  parseEncryptionKey,
  redactUrl,
  type AppConfig,
} from '../../../src/config/config';

const CWD = path.resolve('/srv/consent-bridge');
const HEX_KEY = '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff';
const KEY_BYTES = Buffer.from(HEX_KEY, 'hex');

/** Every nested object (not Buffers) of `value` must be frozen. */
function expectDeepFrozen(value: unknown, where = 'config'): number {
  if (!value || typeof value !== 'object' || Buffer.isBuffer(value)) return 0;
  expect({ where, frozen: Object.isFrozen(value) }).toEqual({ where, frozen: true });
  let count = 1;
  for (const [k, v] of Object.entries(value)) count += expectDeepFrozen(v, `${where}.${k}`);
  return count;
}

function configError(env: Record<string, string | undefined>): ConfigError {
  try {
    loadConfig(env, CWD);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected loadConfig to throw a ConfigError');
}

describe('loadConfig with an empty environment', () => {
  const config = loadConfig({}, CWD);

  it('starts on an SQLite file under <cwd>/data/ on port 3000', () => {
    expect(config.database).toEqual({ kind: 'sqlite', file: path.join(CWD, 'data', 'consent-bridge.sqlite') });
    expect(config.database.kind === 'sqlite' && path.dirname(config.database.file)).toBe(path.join(CWD, 'data'));
    expect(path.join(CWD, DEFAULT_SQLITE_FILE)).toBe(config.database.kind === 'sqlite' ? config.database.file : null);
    expect(config.port).toBe(3000);
    expect(config.host).toBe('0.0.0.0');
    expect(config.logLevel).toBe('info');
    expect(config.appUrl).toBe('http://localhost:3000');
    expect(config.shutdownTimeoutMs).toBe(10_000);
    expect(config.webhookBodyLimitBytes).toBe(2 * 1024 * 1024);
    expect(config.tenantCacheMs).toBe(5000);
    expect(config.gateCacheMaxSubjects).toBe(500_000);
    expect(config.worker).toEqual({ inProcess: true, maxAttempts: 8 });
    expect(config.sqliteWriteThread).toBe(true);
    expect(config.encryptionKey).toBeNull();
    expect(config.shopify).toEqual({ apiKey: null, apiSecret: null, apiSecretPrevious: null, apiBaseUrl: null });
    expect(config.hubspot).toEqual({ clientId: null, clientSecret: null, clientSecretPrevious: null, appId: null, apiBaseUrl: null });
    expect(config.outbox.maxAttempts).toBe(15);
    expect(config.metricsToken).toBeNull();
  });

  it('switches every feature off and names the exact missing variables', () => {
    expect(config.features).toEqual({
      shopify: { enabled: false, missing: ['SHOPIFY_API_KEY', 'SHOPIFY_API_SECRET'] },
      hubspot: { enabled: false, missing: ['HUBSPOT_CLIENT_ID', 'HUBSPOT_CLIENT_SECRET', 'HUBSPOT_APP_ID'] },
      tokenStorage: { enabled: false, missing: ['ENCRYPTION_KEY'] },
    });
  });

  it('is deeply frozen', () => {
    const checked = expectDeepFrozen(config);
    // config, database, shopify, hubspot, features, 3 feature statuses, 3 missing arrays
    expect(checked).toBeGreaterThanOrEqual(11);
    expect(() => {
      (config as { port: number }).port = 1;
    }).toThrow(TypeError);
    expect(() => {
      (config.features.shopify.missing as string[]).push('X');
    }).toThrow(TypeError);
    expect(config.port).toBe(3000);
  });

  it('uses process.cwd() when no cwd is given', () => {
    const defaultCwd = loadConfig({});
    expect(defaultCwd.database).toEqual({ kind: 'sqlite', file: path.resolve(process.cwd(), DEFAULT_SQLITE_FILE) });
  });
});

describe('loadConfig with a full environment', () => {
  const env = {
    PORT: '8080',
    HOST: '127.0.0.1',
    DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/test',
    LOG_LEVEL: 'debug',
    APP_URL: 'https://bridge.example.com/',
    SHOPIFY_API_KEY: 'shop-key',
    SHOPIFY_API_SECRET: 'shop-secret',
    SHOPIFY_API_SECRET_PREVIOUS: 'shop-secret-old',
    HUBSPOT_CLIENT_ID: 'hs-client',
    HUBSPOT_CLIENT_SECRET: 'hs-secret',
    HUBSPOT_CLIENT_SECRET_PREVIOUS: 'hs-secret-old',
    HUBSPOT_APP_ID: '123456',
    ENCRYPTION_KEY: HEX_KEY,
    SHUTDOWN_TIMEOUT_MS: '2500',
    WEBHOOK_BODY_LIMIT_BYTES: '65536',
    TENANT_CACHE_MS: '0',
    GATE_CACHE_MAX_SUBJECTS: '1000',
    SHOPIFY_API_BASE_URL: 'http://127.0.0.1:4001',
    HUBSPOT_API_BASE_URL: 'http://127.0.0.1:4002',
    OUTBOX_MAX_ATTEMPTS: '4',
    RUN_WORKER: 'false',
    INBOX_MAX_ATTEMPTS: '3',
    SQLITE_WRITE_THREAD: 'false',
    METRICS_TOKEN: ' metrics-token-123 ',
    UNRELATED_VARIABLE: 'ignored',
  };
  const config = loadConfig(env, CWD);

  it('reads every variable', () => {
    expect(config.port).toBe(8080);
    expect(config.host).toBe('127.0.0.1');
    expect(config.database).toEqual({ kind: 'postgres', url: 'postgres://postgres@127.0.0.1:5432/test' });
    expect(config.logLevel).toBe('debug');
    expect(config.shopify).toEqual({ apiKey: 'shop-key', apiSecret: 'shop-secret', apiSecretPrevious: 'shop-secret-old', apiBaseUrl: 'http://127.0.0.1:4001' });
    expect(config.outbox.maxAttempts).toBe(4);
    expect(config.hubspot).toEqual({ clientId: 'hs-client', clientSecret: 'hs-secret', clientSecretPrevious: 'hs-secret-old', appId: '123456', apiBaseUrl: 'http://127.0.0.1:4002' });
    expect(config.encryptionKey?.equals(KEY_BYTES)).toBe(true);
    expect(config.shutdownTimeoutMs).toBe(2500);
    expect(config.webhookBodyLimitBytes).toBe(65536);
    expect(config.tenantCacheMs).toBe(0);
    expect(config.gateCacheMaxSubjects).toBe(1000);
    expect(config.worker).toEqual({ inProcess: false, maxAttempts: 3 });
    expect(config.sqliteWriteThread).toBe(false);
    expect(config.metricsToken).toBe('metrics-token-123');
  });

  it('turns every feature on', () => {
    for (const status of Object.values(config.features)) expect(status).toEqual({ enabled: true, missing: [] });
  });

  it('strips the trailing slash of APP_URL', () => {
    expect(config.appUrl).toBe('https://bridge.example.com');
    expect(loadConfig({ APP_URL: 'https://bridge.example.com/base///' }, CWD).appUrl).toBe('https://bridge.example.com/base');
  });

  it('defaults APP_URL to localhost on the configured port', () => {
    expect(loadConfig({ PORT: '4100' }, CWD).appUrl).toBe('http://localhost:4100');
  });

  it('lists every variable it reads in CONFIG_VARIABLES', () => {
    const { UNRELATED_VARIABLE: _ignored, ...ours } = env;
    expect([...CONFIG_VARIABLES].sort()).toEqual(Object.keys(ours).sort());
  });

  it('enables a feature only when all of its variables are set', () => {
    const partial = loadConfig({ SHOPIFY_API_KEY: 'k', HUBSPOT_CLIENT_ID: 'c', HUBSPOT_APP_ID: '1' }, CWD);
    expect(partial.features.shopify).toEqual({ enabled: false, missing: ['SHOPIFY_API_SECRET'] });
    expect(partial.features.hubspot).toEqual({ enabled: false, missing: ['HUBSPOT_CLIENT_SECRET'] });
  });
});

describe('DATABASE_URL', () => {
  it('selects PostgreSQL for postgres:// and postgresql:// URLs', () => {
    expect(loadConfig({ DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/test' }, CWD).database).toEqual({
      kind: 'postgres',
      url: 'postgres://postgres@127.0.0.1:5432/test',
    });
    expect(loadConfig({ DATABASE_URL: 'postgresql://u:p@db:5432/app' }, CWD).database.kind).toBe('postgres');
  });

  it('takes Unix-socket URLs as node-postgres does (empty host, ?host=<socket directory>)', () => {
    for (const url of ['postgresql://app@/consent?host=/var/run/postgresql', 'postgres:///consent?host=%2Fcloudsql%2Fproj%3Aregion%3Ainst']) {
      expect(loadConfig({ DATABASE_URL: url }, CWD).database).toEqual({ kind: 'postgres', url });
    }
  });

  it('resolves sqlite:relative.db against cwd', () => {
    expect(loadConfig({ DATABASE_URL: 'sqlite:relative.db' }, CWD).database).toEqual({ kind: 'sqlite', file: path.join(CWD, 'relative.db') });
  });

  it('keeps absolute sqlite paths and :memory:', () => {
    expect(parseDatabaseUrl('sqlite:///var/lib/cb.sqlite', CWD)).toEqual({ kind: 'sqlite', file: path.resolve('/var/lib/cb.sqlite') });
    expect(parseDatabaseUrl('file:./x/y.db', CWD)).toEqual({ kind: 'sqlite', file: path.join(CWD, 'x', 'y.db') });
    expect(parseDatabaseUrl('sqlite::memory:', CWD)).toEqual({ kind: 'sqlite', file: ':memory:' });
  });

  it('defaults to the SQLite file when unset', () => {
    expect(parseDatabaseUrl(null, CWD)).toEqual({ kind: 'sqlite', file: path.join(CWD, DEFAULT_SQLITE_FILE) });
  });

  it('returns a problem for other schemes and broken postgres URLs', () => {
    expect(typeof parseDatabaseUrl('mysql://x', CWD)).toBe('string');
    expect(parseDatabaseUrl('mysql://x', CWD)).toMatch(/postgres:\/\/.*sqlite:/);
    expect(typeof parseDatabaseUrl('postgres://user@host:notaport/db', CWD)).toBe('string');
    expect(typeof parseDatabaseUrl('sqlite:', CWD)).toBe('string');
  });
});

describe('invalid configuration', () => {
  const bad = {
    PORT: 'abc',
    LOG_LEVEL: 'loud',
    APP_URL: 'notaurl',
    ENCRYPTION_KEY: 'short',
    DATABASE_URL: 'mysql://x',
    HUBSPOT_APP_ID: 'x1',
    SHOPIFY_API_SECRET_PREVIOUS: 'old-secret',
  };
  const names = Object.keys(bad);

  it('throws one ConfigError naming every bad variable', () => {
    const err = configError(bad);
    expect(err.name).toBe('ConfigError');
    expect(err.problems).toHaveLength(names.length);
    for (const name of names) {
      expect(err.problems.some((p) => p.startsWith(`${name}:`))).toBe(true);
      expect(err.message).toContain(name);
    }
    expect(err.message).toContain(`${names.length} problems`);
  });

  it('does not echo secret values into the problems', () => {
    const err = configError(bad);
    expect(err.message).not.toContain('old-secret');
  });

  it('reports a single problem in the singular', () => {
    const err = configError({ PORT: '70000' });
    expect(err.problems).toEqual([expect.stringMatching(/^PORT: must be at most 65535/)]);
    expect(err.message).toMatch(/\(1 problem\)/);
  });

  it('rejects an out-of-range or non-integer shutdown timeout and port', () => {
    expect(configError({ SHUTDOWN_TIMEOUT_MS: '600001', PORT: '-1' }).problems.map((p) => p.split(':')[0]).sort()).toEqual([
      'PORT',
      'SHUTDOWN_TIMEOUT_MS',
    ]);
    expect(configError({ PORT: '80.5' }).problems).toHaveLength(1);
  });

  it('rejects a non-http APP_URL', () => {
    expect(configError({ APP_URL: 'ftp://files.example.com' }).problems[0]).toMatch(/^APP_URL:/);
  });

  it('rejects HUBSPOT_CLIENT_SECRET_PREVIOUS without HUBSPOT_CLIENT_SECRET', () => {
    expect(configError({ HUBSPOT_CLIENT_SECRET_PREVIOUS: 'x' }).problems).toEqual([expect.stringMatching(/^HUBSPOT_CLIENT_SECRET_PREVIOUS:/)]);
  });
});

describe('empty strings count as unset', () => {
  it('treats empty and blank values as absent', () => {
    const env = Object.fromEntries(CONFIG_VARIABLES.map((name, i) => [name, i % 2 === 0 ? '' : '   ']));
    const config = loadConfig(env, CWD);
    expect(config).toEqual(loadConfig({}, CWD));
    expect(config.features.shopify.enabled).toBe(false);
    expect(config.features.tokenStorage.missing).toEqual(['ENCRYPTION_KEY']);
  });

  it('does not complain about a previous secret that is empty', () => {
    expect(() => loadConfig({ SHOPIFY_API_SECRET_PREVIOUS: '', HUBSPOT_CLIENT_SECRET_PREVIOUS: ' ' }, CWD)).not.toThrow();
  });

  it('does not enable a feature with an empty secret', () => {
    const config = loadConfig({ SHOPIFY_API_KEY: 'k', SHOPIFY_API_SECRET: '' }, CWD);
    expect(config.features.shopify).toEqual({ enabled: false, missing: ['SHOPIFY_API_SECRET'] });
    expect(config.shopify.apiSecret).toBeNull();
  });

  it('trims surrounding whitespace', () => {
    const config = loadConfig({ PORT: ' 3100 ', SHOPIFY_API_KEY: ' k ' }, CWD);
    expect(config.port).toBe(3100);
    expect(config.shopify.apiKey).toBe('k');
  });
});

describe('ENCRYPTION_KEY', () => {
  it('accepts 64 hex characters (either case)', () => {
    expect(loadConfig({ ENCRYPTION_KEY: HEX_KEY }, CWD).encryptionKey?.equals(KEY_BYTES)).toBe(true);
    expect(loadConfig({ ENCRYPTION_KEY: HEX_KEY.toUpperCase() }, CWD).encryptionKey?.equals(KEY_BYTES)).toBe(true);
    expect(loadConfig({ ENCRYPTION_KEY: HEX_KEY }, CWD).features.tokenStorage).toEqual({ enabled: true, missing: [] });
  });

  it('accepts base64 of 32 bytes', () => {
    const b64 = KEY_BYTES.toString('base64');
    expect(b64).toHaveLength(44);
    const key = loadConfig({ ENCRYPTION_KEY: b64 }, CWD).encryptionKey;
    expect(Buffer.isBuffer(key)).toBe(true);
    expect(key?.equals(KEY_BYTES)).toBe(true);
    const other = Buffer.from(Array.from({ length: 32 }, (_, i) => 255 - i * 7));
    expect((parseEncryptionKey(other.toString('base64')) as Buffer).equals(other)).toBe(true);
  });

  it('rejects keys of the wrong length or alphabet', () => {
    expect(typeof parseEncryptionKey('short')).toBe('string');
    expect(typeof parseEncryptionKey(HEX_KEY.slice(2))).toBe('string');
    expect(typeof parseEncryptionKey(`${HEX_KEY}00`)).toBe('string');
    expect(typeof parseEncryptionKey(Buffer.alloc(31).toString('base64'))).toBe('string');
    expect(typeof parseEncryptionKey(Buffer.alloc(33).toString('base64'))).toBe('string');
    expect(typeof parseEncryptionKey(`${HEX_KEY.slice(0, 63)}g`)).toBe('string');
    expect(configError({ ENCRYPTION_KEY: 'short' }).problems[0]).toMatch(/^ENCRYPTION_KEY: must be 32 bytes/);
  });

  it('never puts the key text into the problem', () => {
    const err = configError({ ENCRYPTION_KEY: 'not-a-key-but-a-secret-value' });
    expect(err.message).not.toContain('not-a-key-but-a-secret-value');
  });
});

describe('describeConfig', () => {
  it('says OFF (set …) for every disabled feature', () => {
    const lines = describeConfig(loadConfig({}, CWD));
    expect(lines).toContain('shopify: OFF (set SHOPIFY_API_KEY, SHOPIFY_API_SECRET)');
    expect(lines).toContain('hubspot: OFF (set HUBSPOT_CLIENT_ID, HUBSPOT_CLIENT_SECRET, HUBSPOT_APP_ID)');
    expect(lines).toContain('tokenStorage: OFF (set ENCRYPTION_KEY)');
    expect(lines).toContain(`database: SQLite ${path.join(CWD, DEFAULT_SQLITE_FILE)}`);
    expect(lines).toContain('public URL: http://localhost:3000');
    expect(lines).toContain('metrics: GET /metrics open (set METRICS_TOKEN to require a bearer token)');
  });

  it('says on for enabled features', () => {
    const lines = describeConfig(loadConfig({ SHOPIFY_API_KEY: 'k', SHOPIFY_API_SECRET: 's', ENCRYPTION_KEY: HEX_KEY }, CWD));
    expect(lines).toContain('shopify: on');
    expect(lines).toContain('tokenStorage: on');
    expect(lines.some((l) => l.startsWith('hubspot: OFF'))).toBe(true);
  });

  it('says whether /metrics needs a token, never printing it', () => {
    const lines = describeConfig(loadConfig({ METRICS_TOKEN: 'scrape-secret' }, CWD));
    expect(lines).toContain('metrics: GET /metrics with the METRICS_TOKEN bearer token');
    expect(lines.join('\n')).not.toContain('scrape-secret');
  });

  it('never prints the database password', () => {
    const config: AppConfig = loadConfig({ DATABASE_URL: 'postgres://app:s3cr3t-pw@db.internal:5432/consent' }, CWD);
    const text = describeConfig(config).join('\n');
    expect(text).not.toContain('s3cr3t-pw');
    expect(text).toContain('PostgreSQL postgres://app:***@db.internal:5432/consent');
  });
});

describe('redactUrl', () => {
  it('replaces the password and keeps the rest', () => {
    expect(redactUrl('postgres://user:hunter2@host:5432/db?sslmode=require')).toBe('postgres://user:***@host:5432/db?sslmode=require');
  });

  it('leaves URLs without a password alone', () => {
    expect(redactUrl('postgres://postgres@127.0.0.1:5432/test')).toBe('postgres://postgres@127.0.0.1:5432/test');
  });

  it('replaces a password holding @ / ? (raw or encoded), and a password query parameter however spelled', () => {
    expect(redactUrl('postgres://user:p@ss@host:5432/db')).toBe('postgres://user:***@host:5432/db');
    expect(redactUrl('postgres://user:p%40ss%2Fw%3F@host:5432/db')).toBe('postgres://user:***@host:5432/db');
    expect(redactUrl('postgres://user@host/db?sslmode=disable&password=hunter2')).toBe('postgres://user:***@host/db?sslmode=disable&password=***');
    expect(redactUrl('postgres://user@host/db?pass%77ord=hunter2')).toBe('postgres://user:***@host/db?pass%77ord=***');
  });

  it('redacts Unix-socket URLs, whose host is empty', () => {
    expect(redactUrl('postgresql://app:hunter2@/consent?host=/var/run/postgresql')).toBe('postgresql://app:***@/consent?host=/var/run/postgresql');
    expect(redactUrl('postgresql:///consent?host=/var/run/postgresql')).toBe('postgresql:///consent?host=/var/run/postgresql');
  });

  it('prints nothing of an unparseable URL', () => {
    const out = redactUrl('postgres://user:hunter2@host:notaport/db');
    expect(out).toBe('(unparseable URL)');
    expect(out).not.toContain('hunter2');
  });
});
