/**
 * Shopify topics this app handles (manifest.json `shopify.webhooks`) and the payload schemas the mapper
 * validates (shapes of shopify.md §2.2: REST shape, snake_case, numeric ids, lower-case enums). Schemas accept
 * unknown extra fields (Shopify adds fields over API versions) and refuse what the mapping relies on being absent
 * or of the wrong type.
 */
import { z } from 'zod';

export const CONSENT_TOPICS = ['customers_email_marketing_consent/update', 'customers_marketing_consent/update'] as const;
export const NORMAL_TOPICS = [
  'customers/create',
  'customers/update',
  ...CONSENT_TOPICS,
  'orders/create',
  'orders/paid',
  'products/create',
  'products/update',
  'app/uninstalled',
] as const;
export const COMPLIANCE_TOPICS = ['customers/data_request', 'customers/redact', 'shop/redact'] as const;

export type NormalTopic = (typeof NORMAL_TOPICS)[number];
export type ComplianceTopic = (typeof COMPLIANCE_TOPICS)[number];

export function isNormalTopic(topic: string): topic is NormalTopic {
  return (NORMAL_TOPICS as readonly string[]).includes(topic);
}

export function isComplianceTopic(topic: string): topic is ComplianceTopic {
  return (COMPLIANCE_TOPICS as readonly string[]).includes(topic);
}

const id = z.union([z.number().int().nonnegative(), z.string().regex(/^\d{1,20}$/)]).transform(String);
const text = z.string().nullish();
const timestamp = z.string().min(1);

const address = z.looseObject({ country_code: text, company: text }).nullish();

export const customerSchema = z.looseObject({
    id,
    email: text,
    phone: text,
    updated_at: timestamp,
    created_at: timestamp.nullish(),
    default_address: address,
    /** REST: one comma-separated string. */
    tags: z.union([z.string(), z.array(z.string())]).nullish(),
  });

const EMAIL_STATES = ['not_subscribed', 'pending', 'subscribed', 'unsubscribed', 'redacted', 'invalid'] as const;
const SMS_STATES = ['not_subscribed', 'pending', 'subscribed', 'unsubscribed', 'redacted'] as const;
const optInLevel = z.enum(['single_opt_in', 'confirmed_opt_in', 'unknown']).nullish();

export const emailConsentSchema = z.looseObject({
    customer_id: id,
    email_address: text,
    email_marketing_consent: z.looseObject({ state: z.enum(EMAIL_STATES), opt_in_level: optInLevel, consent_updated_at: timestamp.nullish() }),
  });

export const smsConsentSchema = z.looseObject({
    // The documented payload names the customer `id`; `customer_id` is accepted too (UNVERIFIED, shopify.md §2).
    id: id.optional(),
    customer_id: id.optional(),
    phone: text,
    sms_marketing_consent: z.looseObject({
        state: z.enum(SMS_STATES),
        opt_in_level: optInLevel,
        consent_updated_at: timestamp.nullish(),
        consent_collected_from: text,
      }),
  })
  .refine((v) => v.id !== undefined || v.customer_id !== undefined, { message: 'customer id (id or customer_id) is required' });

export const orderSchema = z.looseObject({
    id,
    email: text,
    phone: text,
    buyer_accepts_marketing: z.boolean().nullish(),
    financial_status: text,
    created_at: timestamp,
    updated_at: timestamp.nullish(),
    processed_at: timestamp.nullish(),
    billing_address: address,
    customer: z.looseObject({ id, email: text, phone: text, updated_at: timestamp.nullish(), default_address: address, tags: z.union([z.string(), z.array(z.string())]).nullish() })
      .nullish(),
    line_items: z
      .array(z.looseObject({ product_id: id.nullish(), variant_id: id.nullish(), quantity: z.number().int().nonnegative().nullish() }))
      .default([]),
    note_attributes: z.array(z.looseObject({ name: z.string(), value: z.unknown() })).nullish(),
  });

export const shopSchema = z.looseObject({ id, myshopify_domain: text, domain: text });

/**
 * products/create, products/update (scope read_products): the REST Product resource (shopify.md §2; @shopify/shopify-api
 * rest/admin/2026-04/product.ts). `tags` is one comma-separated string in REST; an array is accepted too (the
 * library types it `string | string[]`). The payload may carry a taxonomy `category` object: UNVERIFIED (not in
 * the REST resource), so it is accepted and ignored, and the catalog reads the category through GraphQL.
 */
export const productSchema = z.looseObject({
    id,
    product_type: text,
    vendor: text,
    tags: z.union([z.string(), z.array(z.string())]).nullish(),
    updated_at: timestamp,
  });
