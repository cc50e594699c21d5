/**
 * Personal-data masking for logs (developers' guide: no PII in logs). Applied to every string value and to the
 * message, whatever the field is called, because personal data turns up in unexpected places (error messages,
 * request paths, payload excerpts).
 *
 * - Emails keep their first character and the top-level domain: `ana@example.com` → `a***@***.com`.
 * - Phone numbers keep their last two digits: `+49 151 1234 5678` → `+***78`. A phone is a run of 7+ digits
 *   that starts with `+` or `0` or contains separators; a bare digit run not starting with 0 (a Shopify or
 *   HubSpot id such as 7301122334455) is left alone so that logs stay useful.
 */
// `%40` and `%2B`: personal data in URL paths and query strings arrives percent-encoded.
const EMAIL = /([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*?(?:@|%40)[A-Za-z0-9.-]+\.([A-Za-z]{2,})/gi;
// A whole UUID (tenant, row and request ids) comes first and is kept as it is: otherwise a digit run inside it, as in
// `…-15c8-7053-9792-2c46…`, reads as a phone with separators and the id is corrupted in the log.
const UUID_OR_PHONE_CANDIDATE = /\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b|(?<![\w.])(?:\+|%2B)?\(?\d[\d\s().\/-]{5,}\d(?![\w])/gi;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Keys whose whole value is personal data, masked even when the pattern would not catch it. */
const PII_KEYS = /^(email|email_address|emailAddress|phone|phone_number|phoneNumber|first_name|last_name|firstName|lastName|name|address1|address2|ip|userAgent|user_agent)$/i;
const SECRET_KEYS = /(secret|token|password|authorization|cookie|api[-_]?key|encryption[-_]?key|hmac|signature)/i;

function looksLikePhone(candidate: string): boolean {
  const digits = candidate.replace(/\D/g, '');
  if (digits.length < 7 || digits.length > 15) return false;
  if (candidate.startsWith('+') || /^%2B/i.test(candidate) || candidate.startsWith('(')) return true;
  if (/^0/.test(digits)) return true;
  return /[\s().\/-]/.test(candidate.trim());
}

export function maskString(value: string): string {
  return value
    .replace(EMAIL, (_m, first: string, tld: string) => `${first}***@***.${tld}`)
    .replace(UUID_OR_PHONE_CANDIDATE, (match) => {
      if (UUID.test(match)) return match;
      // Do not mistake ISO timestamps or dates for phone numbers.
      if (/^\d{4}-\d{2}-\d{2}/.test(match) || /^\d{2}:\d{2}/.test(match)) return match;
      if (!looksLikePhone(match)) return match;
      const digits = match.replace(/^%2B/i, '+').replace(/\D/g, '');
      return `${match.startsWith('+') || /^%2B/i.test(match) ? '+' : ''}***${digits.slice(-2)}`;
    });
}

/** Deep-mask a log record. Secrets are replaced entirely; personal-data keys are masked even if unrecognised. */
export function maskValue(value: unknown, key = '', depth = 0): unknown {
  if (depth > 8) return '[depth]';
  if (typeof value === 'string') {
    if (key && SECRET_KEYS.test(key)) return '[redacted]';
    if (key && PII_KEYS.test(key) && value.length > 0) {
      const masked = maskString(value);
      return masked === value ? `${value.slice(0, 1)}***` : masked;
    }
    return maskString(value);
  }
  if (typeof value === 'number' && key && PII_KEYS.test(key)) return maskValue(String(value), key, depth);
  if (Array.isArray(value)) return value.map((item) => maskValue(item, key, depth + 1));
  if (value instanceof Date) return value.toISOString();
  if (value instanceof URL) return maskString(value.toString());
  if (Buffer.isBuffer(value)) return `[${value.length} bytes]`;
  if (value instanceof Error) {
    const extra = value as Error & { code?: unknown; details?: unknown; cause?: unknown };
    return {
      type: value.name,
      message: maskString(value.message),
      ...(extra.code !== undefined ? { code: maskValue(extra.code, 'code', depth + 1) } : {}),
      ...(extra.details !== undefined ? { details: maskValue(extra.details, 'details', depth + 1) } : {}),
      ...(extra.cause !== undefined ? { cause: maskValue(extra.cause, 'cause', depth + 1) } : {}),
      stack: value.stack ? maskString(value.stack) : undefined,
    };
  }
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = SECRET_KEYS.test(k) && v != null ? '[redacted]' : maskValue(v, k, depth + 1);
    return out;
  }
  return value;
}
