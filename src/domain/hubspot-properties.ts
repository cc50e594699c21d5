/**
 * The app's own HubSpot contact properties (design.md "Writing to the platforms"), in the app's property group.
 * Named here once: the HubSpot connector provisions and writes them (issue 5); the webhook mapper reads changes
 * to them (issue 3). Names only grow: a renamed property would orphan every portal's data.
 */
export const HUBSPOT_PROPERTY_PREFIX = 'consent_bridge_';

export const HUBSPOT_PROPERTIES = {
  /** SMS consent state, because HubSpot has no SMS subscription API (hubspot.md §3.1). Values: SMS_CONSENT_VALUES. */
  smsConsent: 'consent_bridge_sms_consent',
  emailGate: 'consent_bridge_email_gate',
  smsGate: 'consent_bridge_sms_gate',
  basis: 'consent_bridge_basis',
  softOptInCategories: 'consent_bridge_soft_opt_in_categories',
  softOptInValidUntil: 'consent_bridge_soft_opt_in_valid_until',
  lastEvidenceId: 'consent_bridge_last_evidence_id',
} as const;

export const SMS_CONSENT_VALUES = ['subscribed', 'pending', 'unsubscribed', 'not_subscribed'] as const;
