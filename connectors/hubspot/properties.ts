/**
 * The app's HubSpot contact properties and what `provision` creates (design.md "Writing to the platforms";
 * hubspot.md §4–5). The names are the core's (src/domain/hubspot-properties.ts: the webhook mapper reads them
 * too) and only grow; so do enumeration options (provisioning adds missing ones to an existing property).
 */
import { LEGAL_BASES } from '../../src/domain/consent';
import { HUBSPOT_PROPERTIES, HUBSPOT_PROPERTY_PREFIX, SMS_CONSENT_VALUES } from '../../src/domain/hubspot-properties';

export { HUBSPOT_PROPERTIES, HUBSPOT_PROPERTY_PREFIX, SMS_CONSENT_VALUES };

/** Property names, one constant each. */
export const EMAIL_GATE_PROPERTY = HUBSPOT_PROPERTIES.emailGate;
export const SMS_GATE_PROPERTY = HUBSPOT_PROPERTIES.smsGate;
export const BASIS_PROPERTY = HUBSPOT_PROPERTIES.basis;
export const SOFT_OPT_IN_CATEGORIES_PROPERTY = HUBSPOT_PROPERTIES.softOptInCategories;
export const SOFT_OPT_IN_VALID_UNTIL_PROPERTY = HUBSPOT_PROPERTIES.softOptInValidUntil;
export const SMS_CONSENT_PROPERTY = HUBSPOT_PROPERTIES.smsConsent;
export const LAST_EVIDENCE_PROPERTY = HUBSPOT_PROPERTIES.lastEvidenceId;

/** Values of the gate properties: what the send gate answers for the channel now. */
export const GATE_VALUES = ['allowed', 'blocked'] as const;

export const DEFAULT_PROPERTY_GROUP = { name: 'consent_bridge', label: 'Consent Bridge' } as const;
/** The MANUAL list of blocked contacts (usable as a suppression list in the UI). */
export const DEFAULT_SUPPRESSION_LIST_NAME = 'Consent Bridge: blocked contacts';

/** A contact property as `POST /crm/v3/properties/contacts` takes it (v13 `PropertyCreate`), without the group. */
export interface HubspotPropertyDefinition {
  readonly name: string;
  readonly label: string;
  readonly description: string;
  readonly type: 'string' | 'number' | 'date' | 'datetime' | 'enumeration' | 'bool';
  readonly fieldType: 'text' | 'textarea' | 'select' | 'radio' | 'checkbox' | 'booleancheckbox' | 'date' | 'number';
  readonly options?: ReadonlyArray<{ readonly label: string; readonly value: string }>;
  /** Shown in HubSpot forms (only the SMS consent: a form submission is how a person gives it, README mapping). */
  readonly formField?: boolean;
}

const options = (values: readonly string[], labels: Readonly<Record<string, string>>) => values.map((value) => ({ label: labels[value] ?? value, value }));

export const DEFAULT_PROPERTY_DEFINITIONS: readonly HubspotPropertyDefinition[] = [
  {
    name: EMAIL_GATE_PROPERTY,
    label: 'Email marketing gate',
    description: 'Whether Consent Bridge allows marketing email to this contact now (written by the app; branch workflows on it).',
    type: 'enumeration',
    fieldType: 'select',
    options: options(GATE_VALUES, { allowed: 'Allowed', blocked: 'Blocked' }),
  },
  {
    name: SMS_GATE_PROPERTY,
    label: 'SMS marketing gate',
    description: 'Whether Consent Bridge allows marketing SMS to this contact now (written by the app).',
    type: 'enumeration',
    fieldType: 'select',
    options: options(GATE_VALUES, { allowed: 'Allowed', blocked: 'Blocked' }),
  },
  {
    name: BASIS_PROPERTY,
    label: 'Marketing legal basis',
    description: 'The legal basis Consent Bridge relies on for marketing email (consent, soft opt-in, …).',
    type: 'enumeration',
    fieldType: 'select',
    options: options(LEGAL_BASES, { consent: 'Consent', soft_opt_in: 'Soft opt-in (existing customer)', legitimate_interest: 'Legitimate interest', contract: 'Contract' }),
  },
  {
    name: SOFT_OPT_IN_CATEGORIES_PROPERTY,
    label: 'Soft opt-in categories',
    description: 'Product category groups the soft opt-in covers (semicolon-separated).',
    type: 'string',
    fieldType: 'textarea',
  },
  {
    name: SOFT_OPT_IN_VALID_UNTIL_PROPERTY,
    label: 'Soft opt-in valid until',
    description: 'When the soft opt-in ends unless renewed by a new purchase.',
    type: 'datetime',
    fieldType: 'date',
  },
  {
    name: SMS_CONSENT_PROPERTY,
    label: 'SMS marketing consent',
    description: 'SMS marketing consent (HubSpot has no SMS subscription API). A form submission setting it is an affirmative act.',
    type: 'enumeration',
    fieldType: 'select',
    options: options(SMS_CONSENT_VALUES, { subscribed: 'Subscribed', unsubscribed: 'Unsubscribed', pending: 'Pending confirmation', not_subscribed: 'Not subscribed' }),
    formField: true,
  },
  {
    name: LAST_EVIDENCE_PROPERTY,
    label: 'Consent evidence',
    description: 'Id of the newest consent-ledger event behind the current state (consent-bridge explain shows it).',
    type: 'string',
    fieldType: 'text',
  },
];
