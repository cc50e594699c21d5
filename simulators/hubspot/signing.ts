/**
 * How HubSpot signs the requests it sends to an app (hubspot.md §2), written from the documentation, not from the
 * app's verifier (webhooks/hubspot/verify.ts), so the simulator checks the app rather than agreeing with it.
 *
 * - v1: `X-HubSpot-Signature` = hex SHA-256(clientSecret + body) (webhooks, with `X-HubSpot-Signature-Version: v1`).
 * - v2: `X-HubSpot-Signature` = hex SHA-256(clientSecret + METHOD + URI + body) (custom workflow actions).
 * - v3: `X-HubSpot-Signature-v3` = base64 HMAC-SHA256(key clientSecret, METHOD + URI + body + timestamp), with
 *   `X-HubSpot-Request-Timestamp` in epoch ms; HubSpot decodes a fixed set of percent-escapes in the URI first.
 */
import { createHash, createHmac } from 'node:crypto';

/** The escapes HubSpot decodes in the v3 URI before signing (hubspot.md §2, [2nd]). */
const V3_DECODED: ReadonlyArray<readonly [string, string]> = [
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
];

export function v3Uri(uri: string): string {
  return V3_DECODED.reduce((text, [escape, char]) => text.replace(new RegExp(escape, 'gi'), char), uri);
}

export function signatureV1(clientSecret: string, body: string): string {
  return createHash('sha256').update(clientSecret + body, 'utf8').digest('hex');
}

export function signatureV2(clientSecret: string, method: string, uri: string, body: string): string {
  return createHash('sha256').update(clientSecret + method.toUpperCase() + uri + body, 'utf8').digest('hex');
}

export function signatureV3(clientSecret: string, method: string, uri: string, body: string, timestampMs: number): string {
  return createHmac('sha256', clientSecret)
    .update(method.toUpperCase() + v3Uri(uri) + body + String(timestampMs), 'utf8')
    .digest('base64');
}

export type SignatureVersion = 'v1' | 'v2' | 'v3';

/**
 * Headers of a signed request. Webhooks carry v1 and v3 together ([2nd] captured headers); workflow actions v2
 * (hubspot.md §6) or v3. `X-HubSpot-Signature-Version` accompanies v1/v2 (whether HubSpot sends it with v2 is
 * UNVERIFIED; the app reads a missing version on its action routes as v2).
 */
export function signedHeaders(
  clientSecret: string,
  versions: readonly SignatureVersion[],
  request: { method: string; uri: string; body: string; timestampMs: number },
): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const version of versions) {
    if (version === 'v3') {
      headers['X-HubSpot-Signature-v3'] = signatureV3(clientSecret, request.method, request.uri, request.body, request.timestampMs);
      headers['X-HubSpot-Request-Timestamp'] = String(request.timestampMs);
    } else {
      headers['X-HubSpot-Signature'] = version === 'v1' ? signatureV1(clientSecret, request.body) : signatureV2(clientSecret, request.method, request.uri, request.body);
      headers['X-HubSpot-Signature-Version'] = version;
    }
  }
  return headers;
}
