import { createLogger, silentLogger } from '../../../src/log/logger';
import { maskString, maskValue } from '../../../src/log/mask';
import type { Logger } from '../../../src/ports';
import { randomUUID } from 'node:crypto';

const EMAIL = 'ana.weber@example.com';
const EMAIL_2 = 'Jonas.Mueller@shop.example.de';
const PHONES = ['+4915112345678', '+49 151 1234 5678', '06-12345678', '(020) 123 4567'];
const SECRETS = ['shpat_0123456789abcdef', 'Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig', 'sk-live-topsecret', 'pa55w0rd!', 'cookie-session-abc'];
const SHOPIFY_ID = '7301122334455';
const ISO = '2026-05-02T10:14:03.000Z';

/** A logger whose output is captured line by line, as pino writes it. */
function capture(): { logger: Logger; lines: string[]; text: () => string; records: () => Array<Record<string, unknown>> } {
  const lines: string[] = [];
  const logger = createLogger({
    level: 'debug',
    destination: {
      write(chunk: string) {
        lines.push(chunk);
      },
    },
  });
  return {
    logger,
    lines,
    text: () => lines.join(''),
    records: () => lines.join('').trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}

function expectNoRawPersonalData(text: string): void {
  for (const raw of [EMAIL, EMAIL_2, ...PHONES, ...SECRETS]) expect({ leaked: raw, found: text.includes(raw) }).toEqual({ leaked: raw, found: false });
  // The local part of an email must not survive on its own either.
  expect(text).not.toMatch(/ana\.weber|Mueller/i);
  // Nor the subscriber digits of any phone number.
  for (const digits of ['5112345678', '12345678', '1234 5678', '123 4567']) expect(text).not.toContain(digits);
}

describe('maskString', () => {
  it('keeps the first character and top-level domain of an email', () => {
    expect(maskString(EMAIL)).toBe('a***@***.com');
    expect(maskString(`contact ${EMAIL_2}, please`)).toBe('contact J***@***.de, please');
  });

  it.each([
    ['+4915112345678', '+***78'],
    ['+49 151 1234 5678', '+***78'],
    ['06-12345678', '***78'],
    ['(020) 123 4567', '***67'],
    ['+49-151-1234-5678', '+***78'],
  ])('keeps only the last two digits of phone %s', (phone, masked) => {
    expect(maskString(phone)).toBe(masked);
    expect(maskString(`call ${phone} today`)).toBe(`call ${masked} today`);
  });

  it('does not alter Shopify ids', () => {
    expect(maskString(SHOPIFY_ID)).toBe(SHOPIFY_ID);
    expect(maskString(`gid://shopify/Customer/${SHOPIFY_ID}`)).toBe(`gid://shopify/Customer/${SHOPIFY_ID}`);
    expect(maskString(`customers ${SHOPIFY_ID}, 7301122334456`)).toBe(`customers ${SHOPIFY_ID}, 7301122334456`);
  });

  it('does not alter UUIDs (tenant, row and request ids), whatever their digits', () => {
    expect(maskString('tenant 01a21038-15c8-7053-9792-2c46bd417f02 ok')).toBe('tenant 01a21038-15c8-7053-9792-2c46bd417f02 ok');
    expect(maskString('12345678-1234-7234-9234-123456789012')).toBe('12345678-1234-7234-9234-123456789012');
    for (let i = 0; i < 20_000; i++) {
      const id = randomUUID();
      expect(maskString(`{"tenantId":"${id}"}`)).toBe(`{"tenantId":"${id}"}`);
    }
    // A phone next to an id, or after a word and a hyphen, is still masked.
    expect(maskString('01a21038-15c8-7053-9792-2c46bd417f02 +49 151 1234 5678')).toBe('01a21038-15c8-7053-9792-2c46bd417f02 +***78');
    expect(maskString('phone-+4915112345678')).toBe('phone-+***78');
    expect(maskString('phone-0151 1234567')).toBe('phone-***67');
    expect(maskString('A-0151 1234567')).toBe('A-***67');
    expect(maskString('tel 0151-1234567-a')).not.toContain('1234567');
  });

  it('does not alter ISO timestamps and dates', () => {
    expect(maskString(ISO)).toBe(ISO);
    expect(maskString(`received ${ISO} from shop`)).toBe(`received ${ISO} from shop`);
    expect(maskString('2026-05-02')).toBe('2026-05-02');
  });

  it('leaves text without personal data alone', () => {
    const text = 'order #1001 paid, total 12.50 EUR, 3 items';
    expect(maskString(text)).toBe(text);
  });
});

describe('maskValue', () => {
  it('redacts secret-named keys whatever their value', () => {
    expect(maskValue({ token: 'abc', authorization: 'Bearer x', apiSecret: 's', api_key: 'k', password: 123, hmac: 'h', keep: 'ok' })).toEqual({
      token: '[redacted]',
      authorization: '[redacted]',
      apiSecret: '[redacted]',
      api_key: '[redacted]',
      password: '[redacted]',
      hmac: '[redacted]',
      keep: 'ok',
    });
  });

  it('masks personal-data keys even when the pattern does not match', () => {
    expect(maskValue({ firstName: 'Ana', lastName: 'Weber', email: 'not-an-email', id: SHOPIFY_ID })).toEqual({
      firstName: 'A***',
      lastName: 'W***',
      email: 'n***',
      id: SHOPIFY_ID,
    });
  });

  it('masks inside arrays and nested objects', () => {
    expect(maskValue({ a: [{ b: { c: EMAIL } }, PHONES[0]] })).toEqual({ a: [{ b: { c: 'a***@***.com' } }, '+***78'] });
  });

  it('turns an Error into a masked plain object', () => {
    const masked = maskValue(new Error(`no customer ${EMAIL}`)) as { type: string; message: string; stack?: string };
    expect(masked.type).toBe('Error');
    expect(masked.message).toBe('no customer a***@***.com');
    expect(masked.stack).not.toContain(EMAIL);
  });

  it('does not mutate its input', () => {
    const input = { email: EMAIL, nested: { token: 't' } };
    maskValue(input);
    expect(input).toEqual({ email: EMAIL, nested: { token: 't' } });
  });
});

describe('createLogger', () => {
  it('writes one JSON line per record, at debug level and above', () => {
    const out = capture();
    out.logger.debug({ step: 1 }, 'debug message');
    out.logger.info({ step: 2 }, 'info message');
    out.logger.warn({ step: 3 }, 'warn message');
    out.logger.error({ step: 4 }, 'error message');
    const records = out.records();
    expect(records.map((r) => [r.level, r.msg, r.step])).toEqual([
      ['debug', 'debug message', 1],
      ['info', 'info message', 2],
      ['warn', 'warn message', 3],
      ['error', 'error message', 4],
    ]);
    for (const record of records) {
      expect(record.app).toBe('consent-bridge');
      expect(typeof record.time).toBe('string');
    }
  });

  it('respects the level', () => {
    const lines: string[] = [];
    const logger = createLogger({ level: 'warn', destination: { write: (chunk: string) => void lines.push(chunk) } });
    logger.debug({}, 'no');
    logger.info({}, 'no');
    logger.warn({}, 'yes');
    expect(lines).toHaveLength(1);
  });

  it('masks the message', () => {
    const out = capture();
    out.logger.info({}, `webhook for ${EMAIL} with phone ${PHONES[1]}`);
    expect(out.records()[0]?.msg).toBe('webhook for a***@***.com with phone +***78');
    expectNoRawPersonalData(out.text());
  });

  it('masks fields, nested objects and arrays', () => {
    const out = capture();
    out.logger.info(
      {
        customer: { id: SHOPIFY_ID, contact: { email: EMAIL, phones: PHONES }, addresses: [{ phone: PHONES[2], note: `ring ${PHONES[3]}` }] },
        recipients: [EMAIL, EMAIL_2],
        payloadExcerpt: `{"email":"${EMAIL}","phone":"${PHONES[0]}"}`,
        occurredAt: ISO,
      },
      'customer updated',
    );
    const text = out.text();
    expectNoRawPersonalData(text);
    const record = out.records()[0] as { customer: { id: string; contact: { email: string; phones: string[] } }; recipients: string[]; occurredAt: string };
    expect(record.customer.id).toBe(SHOPIFY_ID);
    expect(record.customer.contact.email).toBe('a***@***.com');
    expect(record.customer.contact.phones).toEqual(['+***78', '+***78', '***78', '***67']);
    expect(record.recipients).toEqual(['a***@***.com', 'J***@***.de']);
    expect(record.occurredAt).toBe(ISO);
  });

  it('masks Error objects, under err and under any other key', () => {
    const out = capture();
    out.logger.error({ err: new Error(`lookup failed for ${EMAIL}`), cause: new TypeError(`bad phone ${PHONES[0]}`) }, 'failed');
    const text = out.text();
    expectNoRawPersonalData(text);
    const record = out.records()[0] as { err: { type: string; message: string; stack: string }; cause: { type: string; message: string } };
    expect(record.err.type).toBe('Error');
    expect(record.err.message).toBe('lookup failed for a***@***.com');
    expect(record.err.stack).toContain('lookup failed for a***@***.com');
    expect(record.cause).toMatchObject({ type: 'TypeError', message: 'bad phone +***78' });
  });

  it('redacts secret-named fields at any depth', () => {
    const out = capture();
    out.logger.warn(
      {
        token: SECRETS[0],
        authorization: SECRETS[1],
        apiSecret: SECRETS[2],
        request: { headers: { Authorization: SECRETS[1], cookie: SECRETS[4] }, body: { password: SECRETS[3] } },
        tokens: [SECRETS[0]],
      },
      'auth',
    );
    const text = out.text();
    expectNoRawPersonalData(text);
    const record = out.records()[0] as Record<string, unknown>;
    expect(record.token).toBe('[redacted]');
    expect(record.authorization).toBe('[redacted]');
    expect(record.apiSecret).toBe('[redacted]');
    expect(record.request).toEqual({ headers: { Authorization: '[redacted]', cookie: '[redacted]' }, body: { password: '[redacted]' } });
  });

  it('masks child logger bindings', () => {
    const out = capture();
    const child = out.logger.child({ email: EMAIL, customer: `customer ${EMAIL_2}`, token: SECRETS[0], shopifyId: SHOPIFY_ID });
    child.info({}, 'from child');
    child.child({ phone: PHONES[1] }).info({}, 'from grandchild');
    const text = out.text();
    expectNoRawPersonalData(text);
    const [first, second] = out.records();
    expect(first).toMatchObject({ email: 'a***@***.com', customer: 'customer J***@***.de', token: '[redacted]', shopifyId: SHOPIFY_ID, msg: 'from child' });
    expect(second).toMatchObject({ email: 'a***@***.com', phone: '+***78', msg: 'from grandchild' });
  });

  it('leaks nothing when everything is logged at once', () => {
    const out = capture();
    const child = out.logger.child({ requestId: 'req-1', subject: EMAIL });
    child.debug({ email: EMAIL, phone: PHONES[0] }, `debug ${EMAIL_2} ${PHONES[1]}`);
    child.info({ list: PHONES, nested: { deeper: { deepest: [EMAIL, { x: PHONES[2] }] } } }, `info ${PHONES[3]}`);
    child.warn({ authorization: SECRETS[1], apiSecret: SECRETS[2], token: SECRETS[0], id: SHOPIFY_ID, at: ISO }, 'warn');
    child.error({ err: new Error(`cannot reach ${EMAIL} / ${PHONES[1]}`) }, `error for ${EMAIL}`);
    const text = out.text();
    expect(out.lines).toHaveLength(4);
    expectNoRawPersonalData(text);
    expect(text).toContain('a***@***.com');
    expect(text).toContain('J***@***.de');
    expect(text).toContain('+***78');
    expect(text).toContain('***67');
    expect(text).toContain(SHOPIFY_ID);
    expect(text).toContain(ISO);
    expect(text).toContain('[redacted]');
  });
});

describe('silentLogger', () => {
  it('accepts every call and returns itself as child', () => {
    expect(() => {
      silentLogger.debug({}, 'x');
      silentLogger.info({}, 'x');
      silentLogger.warn({}, 'x');
      silentLogger.error({ err: new Error('x') }, 'x');
    }).not.toThrow();
    expect(silentLogger.child({ a: 1 })).toBe(silentLogger);
  });
});

describe('masking of encoded and non-string personal data', () => {
  test('percent-encoded emails and phone numbers in URL paths are masked', () => {
    const masked = maskString('GET /subjects/ana.weber%40example.com?phone=%2B4915112345678');
    expect(masked).not.toContain('ana.weber');
    expect(masked).not.toContain('4915112345678');
    expect(masked).toContain('+***78');
  });

  test('a numeric phone under a personal-data key is masked; AppError codes survive', () => {
    expect(maskValue({ phone: 4915112345678 })).toEqual({ phone: expect.not.stringContaining('4915112345678') });
    const err = Object.assign(new Error('lookup of ana@example.com failed'), { code: 'not_found' });
    expect(maskValue(err)).toMatchObject({ code: 'not_found', message: 'lookup of a***@***.com failed' });
  });
});
