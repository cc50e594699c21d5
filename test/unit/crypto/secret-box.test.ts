import { randomBytes } from 'node:crypto';
import { createSecretBox } from '../../../src/crypto/secret-box';
import { AppError } from '../../../src/domain/errors';

const KEY = Buffer.from('00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff', 'hex');
const TOKEN = 'shpat_0123456789abcdef0123456789abcdef';
const AD = 'tenant:t1/shopify_access_token';

/** Replace one base64url character of a sealed part with a different valid one. */
function flipChar(part: string, index = 0): string {
  const ch = part[index];
  return part.slice(0, index) + (ch === 'A' ? 'B' : 'A') + part.slice(index + 1);
}

function parts(sealed: string): [string, string, string, string] {
  const split = sealed.split('.');
  expect(split).toHaveLength(4);
  return split as [string, string, string, string];
}

function expectAppError(fn: () => unknown, message: RegExp = /cannot be decrypted/): AppError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(AppError);
  const err = caught as AppError;
  expect(err.code).toBe('internal');
  expect(err.expose).toBe(false);
  expect(err.message).toMatch(message);
  return err;
}

describe('createSecretBox', () => {
  const box = createSecretBox(KEY);

  it('round-trips text, including empty and non-ASCII text', () => {
    for (const plaintext of [TOKEN, '', 'Grüße 🍵 ✓', 'x'.repeat(10_000)]) {
      expect(box.open(box.seal(plaintext, AD), AD)).toBe(plaintext);
    }
  });

  it('opens with another box built from the same key', () => {
    expect(createSecretBox(Buffer.from(KEY)).open(box.seal(TOKEN, AD), AD)).toBe(TOKEN);
  });

  it('uses the v1.<iv>.<tag>.<ciphertext> format with a 96-bit IV and a 128-bit tag', () => {
    const [version, iv, tag, body] = parts(box.seal(TOKEN, AD));
    expect(version).toBe('v1');
    expect(Buffer.from(iv, 'base64url')).toHaveLength(12);
    expect(Buffer.from(tag, 'base64url')).toHaveLength(16);
    expect(Buffer.from(body, 'base64url')).toHaveLength(Buffer.byteLength(TOKEN));
    for (const part of [iv, tag, body]) expect(part).toMatch(/^[A-Za-z0-9_-]+$/);
  });

  it('gives a different sealed value each time (random IV)', () => {
    const a = box.seal(TOKEN, AD);
    const b = box.seal(TOKEN, AD);
    expect(a).not.toBe(b);
    expect(parts(a)[1]).not.toBe(parts(b)[1]);
    expect(parts(a)[3]).not.toBe(parts(b)[3]);
    expect(box.open(a, AD)).toBe(TOKEN);
    expect(box.open(b, AD)).toBe(TOKEN);
    const many = new Set(Array.from({ length: 50 }, () => box.seal(TOKEN, AD)));
    expect(many.size).toBe(50);
  });

  it('takes its IV from the injected random source', () => {
    const sizes: number[] = [];
    const fixedIv = Buffer.alloc(12, 7);
    const deterministic = createSecretBox(KEY, (size) => {
      sizes.push(size);
      return Buffer.from(fixedIv);
    });
    const sealed = deterministic.seal(TOKEN, AD);
    expect(sizes).toEqual([12]);
    expect(parts(sealed)[1]).toBe(fixedIv.toString('base64url'));
    expect(box.open(sealed, AD)).toBe(TOKEN);
  });

  it('never shows the plaintext in the sealed value', () => {
    const sealed = box.seal(TOKEN, AD);
    expect(sealed).not.toContain(TOKEN);
    expect(sealed).not.toContain('shpat_');
    expect(sealed).not.toContain(Buffer.from(TOKEN).toString('base64url'));
    expect(sealed).not.toContain(Buffer.from(TOKEN).toString('base64url').slice(0, 12));
    expect(sealed).not.toContain(Buffer.from(TOKEN).toString('hex').slice(0, 16));
  });

  it('refuses a different key', () => {
    const sealed = box.seal(TOKEN, AD);
    expectAppError(() => createSecretBox(randomBytes(32)).open(sealed, AD));
    const oneBitOff = Buffer.from(KEY);
    oneBitOff[31] = (oneBitOff[31] ?? 0) ^ 1;
    expectAppError(() => createSecretBox(oneBitOff).open(sealed, AD));
  });

  it('refuses different associated data (a value moved to another row or field)', () => {
    const sealed = box.seal(TOKEN, AD);
    expectAppError(() => box.open(sealed, 'tenant:t2/shopify_access_token'));
    expectAppError(() => box.open(sealed, 'tenant:t1/hubspot_refresh_token'));
    expectAppError(() => box.open(sealed, ''));
  });

  it('refuses a tampered ciphertext', () => {
    const [version, iv, tag, body] = parts(box.seal(TOKEN, AD));
    expectAppError(() => box.open([version, iv, tag, flipChar(body)].join('.'), AD));
    expectAppError(() => box.open([version, iv, tag, flipChar(body, body.length - 2)].join('.'), AD));
    expectAppError(() => box.open([version, iv, tag, body.slice(0, -4)].join('.'), AD));
    expectAppError(() => box.open([version, iv, tag, ''].join('.'), AD));
  });

  it('refuses a tampered tag or IV', () => {
    const [version, iv, tag, body] = parts(box.seal(TOKEN, AD));
    expectAppError(() => box.open([version, iv, flipChar(tag), body].join('.'), AD));
    expectAppError(() => box.open([version, iv, flipChar(tag, tag.length - 3), body].join('.'), AD));
    expectAppError(() => box.open([version, flipChar(iv), tag, body].join('.'), AD));
  });

  it('refuses a truncated tag (GCM accepts a 4-byte tag prefix unless the tag length is pinned)', () => {
    const [version, iv, tag, body] = parts(box.seal(TOKEN, AD));
    for (const bytes of [4, 8, 12, 13, 15]) {
      const short = Buffer.from(tag, 'base64url').subarray(0, bytes).toString('base64url');
      expectAppError(() => box.open([version, iv, short, body].join('.'), AD), /cannot be decrypted|unknown format/);
    }
  });

  it('keeps the underlying crypto error as the cause', () => {
    const [version, iv, tag, body] = parts(box.seal(TOKEN, AD));
    const err = expectAppError(() => box.open([version, iv, flipChar(tag), body].join('.'), AD));
    // Node's crypto errors come from another realm under jest, so check the shape, not instanceof.
    expect(err.cause).toEqual(expect.objectContaining({ message: expect.any(String) }));
  });

  it('refuses values in an unknown format', () => {
    const sealed = box.seal(TOKEN, AD);
    for (const bad of ['', TOKEN, sealed.replace(/^v1\./, 'v2.'), sealed.split('.').slice(0, 3).join('.'), 'v1..x.y']) {
      expectAppError(() => box.open(bad, AD), /unknown format|cannot be decrypted/);
    }
  });

  it('never puts the plaintext into its errors', () => {
    const sealed = box.seal(TOKEN, AD);
    const err = expectAppError(() => box.open(sealed, 'other'));
    expect(err.message).not.toContain(TOKEN);
  });
});

describe('key length', () => {
  it.each([0, 16, 24, 31, 33, 64])('rejects a %i-byte key', (length) => {
    expect(() => createSecretBox(Buffer.alloc(length, 1))).toThrow(/32-byte key/);
  });

  it('accepts a 32-byte key', () => {
    expect(() => createSecretBox(randomBytes(32))).not.toThrow();
  });
});
