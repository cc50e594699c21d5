import fs from 'node:fs';
import path from 'node:path';
import Ajv from 'ajv';
import addFormats from 'ajv-formats';
import { defaultSettings, manifest, validateSettings } from '../../../src/config/manifest';
import { ACTION_CHANNELS, HUBSPOT_CHECK_CONSENT_PATH } from '../../../webhooks/hubspot/actions';
import { CHANGE_SOURCES, HUBSPOT_RECORD_CONSENT_CHANGE_PATH, RECORD_CHANNELS, RECORD_REASONS, SUBSCRIPTION_STATUSES } from '../../../webhooks/hubspot/record-action';

const ROOT = path.resolve(__dirname, '../../..');

function readJson(file: string): Record<string, unknown> {
  return JSON.parse(fs.readFileSync(path.join(ROOT, file), 'utf8')) as Record<string, unknown>;
}

/** manifest.json as it is on disk, independent of the module under test. */
const onDisk = readJson('manifest.json') as {
  name: string;
  version: string;
  shopify: { webhooks: Array<{ path: string; topics?: string[]; complianceTopics?: string[] }> };
  hubspot: {
    webhooks: { path: string; subscriptions: unknown[] };
    workflowActions: Array<{
      actionPath: string;
      objectTypes: string[];
      objectRequestOptions?: { properties: string[] };
      inputFields: Array<{ typeDefinition: { name: string; type: string; options?: Array<{ value: string }> }; supportedValueTypes: string[]; isRequired: boolean }>;
      outputFields: Array<{ typeDefinition: { name: string; options?: Array<{ value: string }> } }>;
      executionRules?: Array<{ labelName: string; conditions: Record<string, unknown> }>;
      labels: {
        en: {
          actionName: string;
          inputFieldLabels: Record<string, string>;
          outputFieldLabels: Record<string, string>;
          executionRules?: Record<string, string>;
        };
      };
    }>;
  };
  settings: { properties: Record<string, { default?: unknown }> };
};
const pkg = readJson('package.json') as { name: string; version: string };

function validFullDocument() {
  return {
    shopCountry: 'DE',
    softOptInNotice: {
      confirmed: true,
      text: 'We will send you offers for similar products. You can object at any time.',
      version: '2026-01',
      since: '2026-01-15T00:00:00.000Z',
    },
    categoryGroups: [
      { id: 'coffee', label: 'Coffee', taxonomyBranches: ['fb-2-1'], productTypes: ['Beans'], tags: ['espresso'], collections: ['roasts'] },
    ],
    defaultTaxonomyDepth: 3,
    purposes: [{ id: 'newsletter', label: 'Newsletter', hubspotSubscriptionTypeIds: ['12345'], categoryGroups: ['coffee'] }],
    b2b: { companyOnAddress: true, customerTags: ['wholesale'], emailDomains: ['example.com'] },
    doubleOptInCountries: ['DE', 'AT', 'CH'],
    softOptInMaxMonths: 24,
    objectionOrderAttribute: 'no_marketing',
    inboxRetentionDays: 14,
    allowLegacyHubspotSignatures: false,
    reconciliationIntervalMinutes: 15,
  };
}

describe('manifest.json', () => {
  it('is valid JSON and is what src/config/manifest.ts exports', () => {
    expect(onDisk).toEqual(manifest);
  });

  it('has the name and version of package.json', () => {
    expect(onDisk.name).toBe(pkg.name);
    expect(onDisk.version).toBe(pkg.version);
  });

  it('declares the Shopify webhook endpoints with the three compliance topics', () => {
    const paths = onDisk.shopify.webhooks.map((w) => w.path);
    expect(paths).toEqual(expect.arrayContaining(['/webhooks/shopify', '/webhooks/shopify/compliance']));
    const compliance = onDisk.shopify.webhooks.find((w) => w.path === '/webhooks/shopify/compliance');
    expect([...(compliance?.complianceTopics ?? [])].sort()).toEqual(['customers/data_request', 'customers/redact', 'shop/redact']);
    const main = onDisk.shopify.webhooks.find((w) => w.path === '/webhooks/shopify');
    expect(main?.topics).toEqual(expect.arrayContaining(['customers/update', 'app/uninstalled']));
    // Compliance topics go to their own endpoint only.
    for (const topic of compliance?.complianceTopics ?? []) expect(main?.topics ?? []).not.toContain(topic);
  });

  it('declares the HubSpot webhook endpoint', () => {
    expect(onDisk.hubspot.webhooks.path).toBe('/webhooks/hubspot');
    expect(onDisk.hubspot.webhooks.subscriptions.length).toBeGreaterThan(0);
  });

  it('declares the "Check marketing consent" workflow action at the path its route serves', () => {
    const action = onDisk.hubspot.workflowActions.find((a) => a.actionPath === HUBSPOT_CHECK_CONSENT_PATH);
    expect(action).toBeDefined();
    expect(action?.objectTypes).toEqual(['CONTACT']);
    expect(action?.labels.en.actionName).toBe('Check marketing consent');
    const inputs = Object.fromEntries((action?.inputFields ?? []).map((f) => [f.typeDefinition.name, f]));
    expect(Object.keys(inputs).sort()).toEqual(['category', 'channel', 'purpose', 'subscription_type']);
    expect(inputs.channel?.isRequired).toBe(true);
    expect(inputs.channel?.typeDefinition.options?.map((o) => o.value)).toEqual([...ACTION_CHANNELS]);
    const outputs = Object.fromEntries((action?.outputFields ?? []).map((f) => [f.typeDefinition.name, f]));
    expect(Object.keys(outputs).sort()).toEqual(['consent_allowed', 'consent_basis', 'consent_reason']);
    expect(outputs.consent_allowed?.typeDefinition.options?.map((o) => o.value)).toEqual(['yes', 'no']);
    // Every field has an English label (HubSpot requires labels.en).
    expect(Object.keys(action?.labels.en.inputFieldLabels ?? {}).sort()).toEqual(Object.keys(inputs).sort());
    expect(Object.keys(action?.labels.en.outputFieldLabels ?? {}).sort()).toEqual(Object.keys(outputs).sort());
  });

  it('declares the "Record consent change" workflow action at the path its route serves', () => {
    const action = onDisk.hubspot.workflowActions.find((a) => a.actionPath === HUBSPOT_RECORD_CONSENT_CHANGE_PATH);
    expect(action).toBeDefined();
    expect(onDisk.hubspot.workflowActions.map((a) => a.actionPath)).toEqual([HUBSPOT_CHECK_CONSENT_PATH, HUBSPOT_RECORD_CONSENT_CHANGE_PATH]);
    expect(action?.objectTypes).toEqual(['CONTACT']);
    // The contact's email comes with the request: the second identity, and the key of the echo log.
    expect(action?.objectRequestOptions).toEqual({ properties: ['email'] });
    expect(action?.labels.en.actionName).toBe('Record consent change');
    const inputs = Object.fromEntries((action?.inputFields ?? []).map((f) => [f.typeDefinition.name, f]));
    expect(Object.keys(inputs).sort()).toEqual(['changed_at', 'channel', 'source', 'status', 'subscription_type']);
    expect(inputs.channel?.isRequired).toBe(true);
    expect(inputs.channel?.typeDefinition.options?.map((o) => o.value)).toEqual([...RECORD_CHANNELS]);
    expect(inputs.status?.isRequired).toBe(true);
    expect(inputs.status?.typeDefinition.options?.map((o) => o.value)).toEqual([...SUBSCRIPTION_STATUSES]);
    expect(inputs.source?.isRequired).toBe(false);
    expect(inputs.source?.typeDefinition.options?.map((o) => o.value)).toEqual([...CHANGE_SOURCES]);
    expect(inputs.subscription_type?.isRequired).toBe(false);
    expect(inputs.changed_at?.isRequired).toBe(false);
    expect(inputs.changed_at?.typeDefinition.type).toBe('datetime');
    const outputs = Object.fromEntries((action?.outputFields ?? []).map((f) => [f.typeDefinition.name, f]));
    expect(Object.keys(outputs).sort()).toEqual(['reason', 'recorded']);
    expect(outputs.recorded?.typeDefinition.options?.map((o) => o.value)).toEqual(['yes', 'no']);
    expect(outputs.reason?.typeDefinition.options?.map((o) => o.value)).toEqual([...RECORD_REASONS]);
    expect(Object.keys(action?.labels.en.inputFieldLabels ?? {}).sort()).toEqual(Object.keys(inputs).sort());
    expect(Object.keys(action?.labels.en.outputFieldLabels ?? {}).sort()).toEqual(Object.keys(outputs).sort());
    // One workflow-history message per reason, each rule labelled.
    expect(action?.executionRules?.map((r) => r.conditions.reason)).toEqual([...RECORD_REASONS]);
    expect(Object.keys(action?.labels.en.executionRules ?? {}).sort()).toEqual((action?.executionRules ?? []).map((r) => r.labelName).sort());
  });

  it('has a settings schema that compiles with a fresh strict Ajv', () => {
    // strict: true turns every strict-mode warning (unknown keyword, union types, …) into a compile error.
    const ajv = new Ajv({ strict: true, strictRequired: true, allErrors: true });
    addFormats(ajv);
    const validate = ajv.compile(onDisk.settings);
    expect(typeof validate).toBe('function');
    expect(validate(validFullDocument())).toBe(true);
    expect(validate({ nope: 1 })).toBe(false);
  });
});

describe('defaultSettings', () => {
  it('equals the defaults declared in manifest.json', () => {
    const declared = Object.fromEntries(
      Object.entries(onDisk.settings.properties)
        .filter(([, schema]) => 'default' in schema)
        .map(([key, schema]) => [key, schema.default]),
    );
    expect(Object.keys(declared).length).toBeGreaterThanOrEqual(8);
    expect(defaultSettings()).toEqual(declared);
  });

  it('returns a fresh object each time', () => {
    const a = defaultSettings();
    a.doubleOptInCountries.push('FR');
    a.categoryGroups.push({ id: 'x', label: 'X', taxonomyBranches: [], productTypes: [], tags: [], collections: [] });
    const b = defaultSettings();
    expect(b.doubleOptInCountries).toEqual(onDisk.settings.properties.doubleOptInCountries?.default);
    expect(b.categoryGroups).toEqual([]);
    expect(manifest.settings.properties.doubleOptInCountries.default).toEqual(['DE', 'AT']);
  });
});

describe('validateSettings', () => {
  it('accepts a valid full document unchanged', () => {
    const doc = validFullDocument();
    const result = validateSettings(doc);
    expect(result).toEqual({ ok: true, settings: doc });
  });

  it('fills in defaults, including inside nested items', () => {
    const result = validateSettings({ shopCountry: 'AT', categoryGroups: [{ id: 'tea', label: 'Tea' }] });
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.settings.shopCountry).toBe('AT');
    expect(result.settings.categoryGroups).toEqual([{ id: 'tea', label: 'Tea', taxonomyBranches: [], productTypes: [], tags: [], collections: [] }]);
    expect(result.settings.inboxRetentionDays).toBe(onDisk.settings.properties.inboxRetentionDays?.default);
  });

  it('rejects an unknown key, naming it', () => {
    const result = validateSettings({ shopCounty: 'DE' });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.errors).toEqual([expect.stringContaining('unknown setting "shopCounty"')]);
  });

  it('rejects a bad shopCountry', () => {
    for (const shopCountry of ['de', 'DEU', 'D', '']) {
      const result = validateSettings({ shopCountry });
      expect(result.ok).toBe(false);
      if (!result.ok) expect(result.errors.join('\n')).toMatch(/^shopCountry: /m);
    }
  });

  it('rejects a wrong type', () => {
    const result = validateSettings({ inboxRetentionDays: '30' });
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.errors).toEqual([expect.stringMatching(/^inboxRetentionDays: must be integer/)]);
  });

  it('rejects a non-object document', () => {
    for (const input of [null, 'settings', 42, []]) expect(validateSettings(input).ok).toBe(false);
  });

  it('reports every error at once', () => {
    const result = validateSettings({
      typo: true,
      shopCountry: 'germany',
      defaultTaxonomyDepth: 'deep',
      purposes: [{ id: 'Bad Id', label: '' }],
    });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.errors.length).toBeGreaterThanOrEqual(5);
    const text = result.errors.join('\n');
    expect(text).toContain('unknown setting "typo"');
    expect(text).toMatch(/^shopCountry: /m);
    expect(text).toMatch(/^defaultTaxonomyDepth: /m);
    expect(text).toMatch(/^purposes\.0\.id: /m);
    expect(text).toMatch(/^purposes\.0\.label: /m);
  });

  it('reports at least three errors for a document with three problems', () => {
    const result = validateSettings({ extra: 1, shopCountry: 'xx', reconciliationIntervalMinutes: 0 });
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.errors.length).toBeGreaterThanOrEqual(3);
  });

  it('validates nested objects strictly', () => {
    const result = validateSettings({
      softOptInNotice: { confirmed: true, text: 'short', version: '1', since: 'yesterday' },
      b2b: { companyOnAddress: 'yes', emailDomains: ['Example'] },
    });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    const text = result.errors.join('\n');
    expect(text).toMatch(/^softOptInNotice\.text: /m);
    expect(text).toMatch(/^softOptInNotice\.since: /m);
    expect(text).toMatch(/^b2b\.companyOnAddress: /m);
    expect(text).toMatch(/^b2b\.emailDomains\.0: /m);
  });

  it('does not mutate its input', () => {
    const input = { shopCountry: 'FR', categoryGroups: [{ id: 'tea', label: 'Tea' }] };
    const snapshot = structuredClone(input);
    const result = validateSettings(input);
    expect(result.ok).toBe(true);
    expect(input).toEqual(snapshot);
    expect(Object.keys(input)).toEqual(['shopCountry', 'categoryGroups']);

    const invalid = { shopCountry: 'fr', categoryGroups: [{ id: 'tea', label: 'Tea' }] };
    const invalidSnapshot = structuredClone(invalid);
    validateSettings(invalid);
    expect(invalid).toEqual(invalidSnapshot);
  });

  it('returns a copy, not the input object', () => {
    const input = validFullDocument();
    const result = validateSettings(input);
    expect(result.ok).toBe(true);
    if (result.ok) {
      expect(result.settings).not.toBe(input);
      expect(result.settings.purposes).not.toBe(input.purposes);
    }
  });
});
