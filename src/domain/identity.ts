/**
 * Subject identities (design.md "Consent model": one person per tenant, known by any of these).
 * Values are normalised before they are stored or looked up, so `Ana@Example.com ` finds `ana@example.com`.
 */
export const IDENTITY_KINDS = ['email', 'phone', 'shopify_customer', 'hubspot_contact'] as const;
export type IdentityKind = (typeof IDENTITY_KINDS)[number];

export interface Identity {
  readonly kind: IdentityKind;
  readonly value: string;
}

/** Normalised identity, or null when the value cannot be one (so bad input is refused, not stored). */
export function normalizeIdentity(kind: IdentityKind, raw: string | number): Identity | null {
  const text = String(raw).trim();
  switch (kind) {
    case 'email': {
      const email = text.toLowerCase();
      return /^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email) && email.length <= 320 ? { kind, value: email } : null;
    }
    case 'phone': {
      // Keep a leading + and the digits; Shopify and HubSpot give E.164 (+4915112345678) most of the time.
      const phone = text.replace(/[\s().\/-]/g, '');
      return /^\+?\d{6,15}$/.test(phone) ? { kind, value: phone } : null;
    }
    case 'shopify_customer':
    case 'hubspot_contact': {
      // Accept a GraphQL gid (gid://shopify/Customer/123) as well as the bare numeric id.
      const id = /^gid:\/\/shopify\/Customer\/(\d+)$/.exec(text)?.[1] ?? text;
      return /^\d{1,20}$/.test(id) ? { kind, value: id } : null;
    }
  }
}
