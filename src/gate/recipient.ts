/**
 * A gate recipient (issue 4 §8): exactly one of email, phone, Shopify customer id or HubSpot contact id. Shared by
 * the check (gate.ts), the objection endpoint (objection.ts) and the facts sources (facts.ts, cache.ts).
 */
import { z } from 'zod';
import { normalizeIdentity, type Identity, type IdentityKind } from '../domain/identity';

export const recipientSchema = z
  .strictObject({
    email: z.string().min(3).max(320).optional(),
    phone: z.string().min(3).max(40).optional(),
    shopifyCustomerId: z.union([z.string().regex(/^\d{1,20}$/), z.number().int().positive()]).optional(),
    hubspotContactId: z.union([z.string().regex(/^\d{1,20}$/), z.number().int().positive()]).optional(),
  })
  .refine((r) => Object.values(r).filter((v) => v !== undefined).length === 1, 'give exactly one of email, phone, shopifyCustomerId, hubspotContactId');

export type Recipient = z.infer<typeof recipientSchema>;

const ID_TEXT = /^\d{1,20}$/;

/**
 * The recipients' fast path. Validating 10,000 recipients through zod costs about 0.28 µs each, most of a
 * decision's budget (bench:gate), because zod builds a result object per recipient. This check accepts only what
 * `recipientSchema` accepts, with every value a string (the common JSON form); anything else (numbers for ids,
 * an unknown field, a bad value) goes through zod, which then also words the error. It walks the keys with
 * `for…in` (no key list allocated per recipient). Equivalence is a property test
 * (test/unit/gate/recipients.test.ts).
 */
export function isPlainRecipient(value: unknown): value is Recipient {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  let key: string | undefined;
  for (const own in value) {
    if (!Object.hasOwn(value, own)) continue;
    if (key !== undefined) return false;
    key = own;
  }
  if (key === undefined) return false;
  const text = (value as Record<string, unknown>)[key];
  if (typeof text !== 'string') return false;
  switch (key) {
    case 'email':
      return text.length >= 3 && text.length <= 320;
    case 'phone':
      return text.length >= 3 && text.length <= 40;
    case 'shopifyCustomerId':
    case 'hubspotContactId':
      return ID_TEXT.test(text);
    default:
      return false;
  }
}

/** The kind of identity a recipient gives. Plain field checks, not a loop over a field table: this runs for every recipient. */
export function recipientKind(recipient: Recipient): IdentityKind | null {
  if (recipient.email !== undefined) return 'email';
  if (recipient.phone !== undefined) return 'phone';
  if (recipient.shopifyCustomerId !== undefined) return 'shopify_customer';
  if (recipient.hubspotContactId !== undefined) return 'hubspot_contact';
  return null;
}

/** The value a recipient gives for its kind, as given (not normalised). */
export function recipientValue(recipient: Recipient): string | number | undefined {
  return recipient.email ?? recipient.phone ?? recipient.shopifyCustomerId ?? recipient.hubspotContactId;
}

/** The recipient's one identity, normalised; null when it cannot be one. */
export function identityOf(recipient: Recipient): Identity | null {
  const kind = recipientKind(recipient);
  const value = recipientValue(recipient);
  return kind === null || value === undefined ? null : normalizeIdentity(kind, value);
}
