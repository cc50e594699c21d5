/**
 * manifest.json is the app's single source of truth. Tenant settings are validated against its `settings`
 * JSON Schema here (ajv, every error reported, defaults filled in), so the schema the marketplaces show and
 * the one the code enforces cannot drift apart.
 */
import Ajv, { type ErrorObject, type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import manifestJson from '../../manifest.json';

export const manifest = manifestJson;

/** Settings after validation and defaults (the shape of manifest.json `settings`). */
export interface TenantSettings {
  shopCountry: string | null;
  softOptInNotice?: { confirmed: boolean; text: string; version: string; since: string };
  categoryGroups: Array<{ id: string; label: string; taxonomyBranches: string[]; productTypes: string[]; tags: string[]; collections: string[] }>;
  defaultTaxonomyDepth: number;
  purposes: Array<{ id: string; label: string; hubspotSubscriptionTypeIds: string[]; categoryGroups: string[] }>;
  b2b?: { companyOnAddress: boolean; customerTags: string[]; emailDomains: string[] };
  doubleOptInCountries: string[];
  softOptInMaxMonths?: number | null;
  objectionOrderAttribute: string | null;
  inboxRetentionDays: number;
  allowLegacyHubspotSignatures: boolean;
  reconciliationIntervalMinutes: number;
}

export type SettingsValidation = { ok: true; settings: TenantSettings } | { ok: false; errors: string[] };

let compiled: ValidateFunction | undefined;

function settingsValidator(): ValidateFunction {
  if (!compiled) {
    const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: true, strictRequired: false, allowUnionTypes: true });
    addFormats(ajv);
    compiled = ajv.compile(manifest.settings);
  }
  return compiled;
}

function describe(error: ErrorObject): string {
  const where = error.instancePath === '' ? '(settings)' : error.instancePath.replace(/^\//, '').replace(/\//g, '.');
  if (error.keyword === 'additionalProperties') return `${where}: unknown setting "${String(error.params.additionalProperty)}"`;
  if (error.keyword === 'enum') return `${where}: must be one of ${(error.params.allowedValues as unknown[]).join(', ')}`;
  return `${where}: ${error.message ?? 'is invalid'}`;
}

/** Validate (a copy of) `input`; on success the result has every default filled in. */
export function validateSettings(input: unknown): SettingsValidation {
  const copy: unknown = input === undefined ? undefined : structuredClone(input);
  const validate = settingsValidator();
  if (validate(copy)) return { ok: true, settings: copy as TenantSettings };
  const errors = (validate.errors ?? []).map(describe);
  return { ok: false, errors: [...new Set(errors)] };
}

/** Settings of a new tenant: every default from the schema. */
export function defaultSettings(): TenantSettings {
  const result = validateSettings({});
  if (!result.ok) throw new Error(`manifest.json settings defaults are invalid: ${result.errors.join('; ')}`);
  return result.settings;
}
