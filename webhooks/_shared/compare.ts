/**
 * Signature comparison in constant time (style.md §2): length check, then crypto.timingSafeEqual on the bytes.
 * Never `===`, which returns at the first differing character.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

export function safeEqual(expected: string, received: string): boolean {
  const a = Buffer.from(expected, 'utf8');
  const b = Buffer.from(received, 'utf8');
  if (a.length !== b.length) return false;
  return timingSafeEqual(a, b);
}

export function hmacSha256Base64(key: string, data: Buffer | string): string {
  return createHmac('sha256', key).update(data).digest('base64');
}

export function sha256Hex(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Configured secrets in order: the current one, then the previous one during a rotation (style.md §4). */
export function activeSecrets(current: string | null, previous: string | null): string[] {
  return [current, previous].filter((s): s is string => s !== null && s !== '');
}
