/**
 * AES-256-GCM encryption of stored platform tokens (issue 2: no secret stored in plain text).
 *
 * Format: `v1.<iv base64url>.<tag base64url>.<ciphertext base64url>`; a fresh 96-bit IV per value (NIST SP
 * 800-38D §8.2.2: random IVs are safe well below 2^32 encryptions per key). The associated data binds the
 * ciphertext to its row and field, so a token copied onto another tenant's row does not decrypt.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { AppError } from '../domain/errors';

const VERSION = 'v1';

export interface SecretBox {
  seal(plaintext: string, associatedData: string): string;
  open(sealed: string, associatedData: string): string;
}

export function createSecretBox(key: Buffer, random: (size: number) => Buffer = randomBytes): SecretBox {
  if (key.length !== 32) throw new Error('AES-256-GCM needs a 32-byte key');
  return {
    seal(plaintext, associatedData) {
      const iv = random(12);
      const cipher = createCipheriv('aes-256-gcm', key, iv);
      cipher.setAAD(Buffer.from(associatedData, 'utf8'));
      const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
      return [VERSION, iv.toString('base64url'), cipher.getAuthTag().toString('base64url'), body.toString('base64url')].join('.');
    },
    open(sealed, associatedData) {
      const [version, iv, tag, body] = sealed.split('.');
      if (version !== VERSION || !iv || !tag || body === undefined) {
        throw new AppError('internal', 'stored secret has an unknown format');
      }
      const ivBytes = Buffer.from(iv, 'base64url');
      if (ivBytes.length !== 12) throw new AppError('internal', 'stored secret has an invalid IV');
      try {
        // A fixed 16-byte tag: Node otherwise accepts truncated tags (down to 4 bytes), which weakens forgery resistance.
        const decipher = createDecipheriv('aes-256-gcm', key, ivBytes, { authTagLength: 16 });
        decipher.setAAD(Buffer.from(associatedData, 'utf8'));
        decipher.setAuthTag(Buffer.from(tag, 'base64url'));
        return Buffer.concat([decipher.update(Buffer.from(body, 'base64url')), decipher.final()]).toString('utf8');
      } catch (cause) {
        throw new AppError('internal', 'stored secret cannot be decrypted (wrong ENCRYPTION_KEY, or the value was moved or altered)', { cause });
      }
    },
  };
}
