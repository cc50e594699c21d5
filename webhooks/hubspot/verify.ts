/**
 * HubSpot request signatures (hubspot.md §2). Our own implementation, not the SDK's `Signature.isValid`, which
 * throws on stale timestamps, ignores future ones, skips the v3 URI decoding and compares with `===`.
 *
 * - v3: `X-HubSpot-Signature-v3` = base64 HMAC-SHA256(clientSecret, METHOD + URI + rawBody + timestamp), with
 *   `X-HubSpot-Request-Timestamp` in epoch ms; refused when older than 5 minutes or in the future.
 * - v2: `X-HubSpot-Signature` = hex SHA-256(clientSecret + METHOD + URI + rawBody). v1: hex SHA-256(clientSecret +
 *   rawBody). Neither has replay protection: the caller accepts them only where a tenant setting allows.
 * The current and the previous client secret are both tried (rotation).
 */
import { hmacSha256Base64, safeEqual, sha256Hex } from '../_shared/compare';

/** v3 replay window (hubspot.md §2: reject timestamps older than 5 minutes). */
export const MAX_TIMESTAMP_AGE_MS = 5 * 60_000;
/**
 * How far in the future a v3 timestamp may be: 1 s of clock skew between HubSpot and an NTP-synced host. Beyond
 * it the request is refused, since a future timestamp would stay replayable for longer than the window.
 */
export const MAX_CLOCK_SKEW_MS = 1_000;

/**
 * HubSpot decodes these percent-escapes before signing the v3 URI, and only these (hubspot.md §2).
 */
const V3_DECODED: ReadonlyArray<[RegExp, string]> = [
  ['%3A', ':'],
  ['%2F', '/'],
  ['%3F', '?'],
  ['%40', '@'],
  ['%21', '!'],
  ['%24', '$'],
  ['%27', "'"],
  ['%28', '('],
  ['%29', ')'],
  ['%2A', '*'],
  ['%2C', ','],
  ['%3B', ';'],
].map(([escape, char]) => [new RegExp(escape!, 'gi'), char!] as [RegExp, string]);

export function decodeV3Uri(uri: string): string {
  return V3_DECODED.reduce((text, [pattern, char]) => text.replace(pattern, char), uri);
}

export function signV3(secret: string, method: string, uri: string, raw: Buffer, timestamp: string): string {
  return hmacSha256Base64(secret, Buffer.concat([Buffer.from(method.toUpperCase() + decodeV3Uri(uri), 'utf8'), raw, Buffer.from(timestamp, 'utf8')]));
}

export function signV2(secret: string, method: string, uri: string, raw: Buffer): string {
  return sha256Hex(Buffer.concat([Buffer.from(secret + method.toUpperCase() + uri, 'utf8'), raw]));
}

export function signV1(secret: string, raw: Buffer): string {
  return sha256Hex(Buffer.concat([Buffer.from(secret, 'utf8'), raw]));
}

export type SignatureVersion = 'v1' | 'v2' | 'v3';

export type SignatureCheck =
  | { ok: true; version: SignatureVersion }
  | { ok: false; reason: 'missing_signature' | 'missing_timestamp' | 'stale_timestamp' | 'future_timestamp' | 'invalid_signature' | 'unknown_version' };

export interface SignedRequest {
  readonly method: string;
  /** Public URI HubSpot called: APP_URL + path + query. */
  readonly uri: string;
  readonly raw: Buffer;
  readonly header: (name: string) => string;
  readonly nowMs: number;
}

export function checkHubspotSignature(request: SignedRequest, secrets: readonly string[]): SignatureCheck {
  const v3 = request.header('X-HubSpot-Signature-v3').trim();
  if (v3 !== '') {
    const timestamp = request.header('X-HubSpot-Request-Timestamp').trim();
    if (!/^\d{1,15}$/.test(timestamp)) return { ok: false, reason: 'missing_timestamp' };
    const age = request.nowMs - Number(timestamp);
    if (age > MAX_TIMESTAMP_AGE_MS) return { ok: false, reason: 'stale_timestamp' };
    if (age < -MAX_CLOCK_SKEW_MS) return { ok: false, reason: 'future_timestamp' };
    const valid = secrets.some((secret) => safeEqual(signV3(secret, request.method, request.uri, request.raw, timestamp), v3));
    return valid ? { ok: true, version: 'v3' } : { ok: false, reason: 'invalid_signature' };
  }
  const legacy = request.header('X-HubSpot-Signature').trim().toLowerCase();
  if (legacy === '') return { ok: false, reason: 'missing_signature' };
  const version = (request.header('X-HubSpot-Signature-Version').trim().toLowerCase() || 'v1') as string;
  if (version !== 'v1' && version !== 'v2') return { ok: false, reason: 'unknown_version' };
  const valid = secrets.some((secret) =>
    safeEqual(version === 'v1' ? signV1(secret, request.raw) : signV2(secret, request.method, request.uri, request.raw), legacy),
  );
  return valid ? { ok: true, version } : { ok: false, reason: 'invalid_signature' };
}

export const SIGNATURE_MESSAGES: Readonly<Record<Exclude<SignatureCheck, { ok: true }>['reason'], string>> = {
  missing_signature: 'missing X-HubSpot-Signature-v3 header',
  missing_timestamp: 'missing or malformed X-HubSpot-Request-Timestamp header',
  stale_timestamp: 'X-HubSpot-Request-Timestamp is more than 5 minutes old',
  future_timestamp: 'X-HubSpot-Request-Timestamp is in the future',
  invalid_signature: 'signature does not match the request',
  unknown_version: 'unknown X-HubSpot-Signature-Version',
};
