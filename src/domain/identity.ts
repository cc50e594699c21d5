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

const AT = 0x40;
const DOT = 0x2e;

/**
 * True when `text` is already what `normalizeIdentity('email', …)` makes of it: printable ASCII without
 * upper case or spaces (so trimming and lower-casing change nothing), one `@` with something before it, and a
 * domain with a dot that has something on both sides (the pattern below), at most 320 characters. The gate
 * checks this for every recipient: it reads the characters once and allocates nothing, so the lookup then uses
 * the caller's own string. Anything else takes the full path; equivalence is a property test
 * (test/unit/domain/identity.test.ts).
 */
export function isNormalEmail(text: string): boolean {
  const length = text.length;
  if (length > 320) return false;
  let at = -1;
  let lastDot = -1;
  for (let i = 0; i < length; i++) {
    const code = text.charCodeAt(i);
    // Printable ASCII (no space, no control, nothing above 0x7e), no upper-case letter.
    if (code <= 0x20 || code >= 0x7f || (code >= 0x41 && code <= 0x5a)) return false;
    if (code === AT) {
      if (at !== -1) return false;
      at = i;
    } else if (code === DOT && at !== -1) {
      lastDot = i;
    }
  }
  // `^[^\s@]+@[^\s@]+\.[^\s@]+$`: a non-empty local part, then a dot in the domain with at least one character
  // between the @ and it and one after it. Only the last dot is tried: `a@b.c.` is left to the full path, since
  // false here only means "not sure".
  return at >= 1 && lastDot > at + 1 && lastDot < length - 1;
}

/** Normalised identity, or null when the value cannot be one (so bad input is refused, not stored). */
export function normalizeIdentity(kind: IdentityKind, raw: string | number): Identity | null {
  if (kind === 'email' && typeof raw === 'string' && isNormalEmail(raw)) return { kind, value: raw };
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
