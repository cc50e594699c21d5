/**
 * HubSpot signature checks against the published vectors (v1/v2: HubSpot's docs FAQ and the SDK's own tests,
 * hubspot.md §2) and a v3 signature computed here with node:crypto from the documented recipe.
 */
import { createHmac } from 'node:crypto';
import { checkHubspotSignature, decodeV3Uri, MAX_TIMESTAMP_AGE_MS, signV1, signV2, signV3 } from '../../../webhooks/hubspot/verify';

const SECRET = 'yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy';
const V1_BODY =
  '[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM","changeFlag":"NEW","appId":54321}]';

function headers(map: Record<string, string>) {
  const lower = Object.fromEntries(Object.entries(map).map(([k, v]) => [k.toLowerCase(), v]));
  return (name: string) => lower[name.toLowerCase()] ?? '';
}

describe('published vectors', () => {
  it('v1: sha256(secret + body)', () => {
    expect(signV1(SECRET, Buffer.from(V1_BODY))).toBe('232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de');
  });
  it('v2: sha256(secret + method + uri + body), empty GET', () => {
    expect(signV2(SECRET, 'GET', 'https://www.example.com/webhook_uri', Buffer.alloc(0))).toBe('eee2dddcc73c94d699f5e395f4b9d454a069a6855fbfa152e91e88823087200e');
  });
  it('v2: POST with a body', () => {
    expect(signV2(SECRET, 'POST', 'https://www.example.com/webhook_uri', Buffer.from('{"example_field":"example_value"}'))).toBe(
      '9569219f8ba981ffa6f6f16aa0f48637d35d728c7e4d93d0d52efaa512af7900',
    );
  });
});

describe('v3', () => {
  const now = Date.parse('2026-06-01T12:00:00.000Z');
  const body = Buffer.from('[{"eventId":1}]');
  const uri = 'https://bridge.example.com/webhooks/hubspot';
  const independent = (secret: string, timestamp: number, signedUri = uri) =>
    createHmac('sha256', secret).update(`POST${signedUri}${body.toString()}${timestamp}`).digest('base64');
  const check = (signature: string, timestamp: number | null, secrets = [SECRET], requestUri = uri) =>
    checkHubspotSignature(
      {
        method: 'POST',
        uri: requestUri,
        raw: body,
        nowMs: now,
        header: headers({ 'X-HubSpot-Signature-v3': signature, ...(timestamp === null ? {} : { 'X-HubSpot-Request-Timestamp': String(timestamp) }) }),
      },
      secrets,
    );

  it('matches an independently computed HMAC', () => {
    expect(signV3(SECRET, 'POST', uri, body, String(now))).toBe(independent(SECRET, now));
    expect(check(independent(SECRET, now), now)).toEqual({ ok: true, version: 'v3' });
  });

  it('accepts the previous secret during a rotation', () => {
    expect(check(independent('old-secret', now), now, [SECRET, 'old-secret'])).toEqual({ ok: true, version: 'v3' });
    expect(check(independent('old-secret', now), now, [SECRET])).toEqual({ ok: false, reason: 'invalid_signature' });
  });

  it('enforces the 5-minute window in both directions', () => {
    expect(check(independent(SECRET, now - MAX_TIMESTAMP_AGE_MS), now - MAX_TIMESTAMP_AGE_MS).ok).toBe(true);
    expect(check(independent(SECRET, now - MAX_TIMESTAMP_AGE_MS - 1), now - MAX_TIMESTAMP_AGE_MS - 1)).toEqual({ ok: false, reason: 'stale_timestamp' });
    expect(check(independent(SECRET, now + 1000), now + 1000).ok).toBe(true); // 1 s clock skew
    expect(check(independent(SECRET, now + 1001), now + 1001)).toEqual({ ok: false, reason: 'future_timestamp' });
    expect(check(independent(SECRET, now), null)).toEqual({ ok: false, reason: 'missing_timestamp' });
  });

  it('decodes exactly the escapes HubSpot decodes before signing', () => {
    expect(decodeV3Uri('https://h.example/p?a=%3A%2F%3F%40%21%24%27%28%29%2A%2C%3B&b=%20%26%3D')).toBe("https://h.example/p?a=:/?@!$'()*,;&b=%20%26%3D");
    const encoded = `${uri}?next=%2Fhome%3Fx%3D1`;
    expect(check(independent(SECRET, now, `${uri}?next=/home?x%3D1`), now, [SECRET], encoded)).toEqual({ ok: true, version: 'v3' });
  });

  it('rejects a signature of the right length but wrong content (constant-time compare path)', () => {
    const good = independent(SECRET, now);
    const flipped = (good[0] === 'A' ? 'B' : 'A') + good.slice(1);
    expect(check(flipped, now)).toEqual({ ok: false, reason: 'invalid_signature' });
  });
});

describe('v1/v2 selection', () => {
  it('reads the version header and refuses unknown versions', () => {
    const raw = Buffer.from(V1_BODY);
    const base = { method: 'POST', uri: 'https://x.example/h', raw, nowMs: 0 };
    expect(checkHubspotSignature({ ...base, header: headers({ 'X-HubSpot-Signature': signV1(SECRET, raw) }) }, [SECRET])).toEqual({ ok: true, version: 'v1' });
    expect(
      checkHubspotSignature({ ...base, header: headers({ 'X-HubSpot-Signature': signV2(SECRET, 'POST', base.uri, raw), 'X-HubSpot-Signature-Version': 'v2' }) }, [SECRET]),
    ).toEqual({ ok: true, version: 'v2' });
    expect(checkHubspotSignature({ ...base, header: headers({ 'X-HubSpot-Signature': 'abc', 'X-HubSpot-Signature-Version': 'v9' }) }, [SECRET])).toEqual({
      ok: false,
      reason: 'unknown_version',
    });
    expect(checkHubspotSignature({ ...base, header: headers({}) }, [SECRET])).toEqual({ ok: false, reason: 'missing_signature' });
  });
});
