/**
 * One HubSpot portal's CRM state: contacts with their properties, property groups and definitions, and lists
 * (hubspot.md §4–5). Operations answer in HubSpot's wire shapes (the v13 models named) and throw `SimHttpError`
 * with HubSpot's error bodies; every contact change is reported to `emit` as a webhook event draft (the dispatcher
 * keeps only what the app subscribed to). Subscription statuses live in preferences.ts and write the
 * `hs_email_optout*` properties here, so a change of them moves `lastmodifieddate` (that is how a poll finds them).
 */
import { conflict, notFound, validation } from './errors';
import type { ChangeSource, EventDraft, PortalOptions, SimulatorClock } from './types';

export interface PortalContext {
  readonly clock: SimulatorClock;
  readonly nextContactId: () => string;
  readonly nextListId: () => string;
  readonly emit: (portalId: string, event: EventDraft) => void;
}

export interface PropertyOption {
  readonly label: string;
  readonly value: string;
  readonly displayOrder: number;
  readonly hidden: boolean;
}

export interface PropertyDefinition {
  name: string;
  label: string;
  type: string;
  fieldType: string;
  description: string;
  groupName: string;
  options: PropertyOption[];
  displayOrder: number;
  hasUniqueValue: boolean;
  hidden: boolean;
  formField: boolean;
  /** HubSpot's own property: the definition cannot change. */
  readOnlyDefinition: boolean;
  /** Set by HubSpot only (hubspot.md §4: `hs_email_optout`, `hs_marketable_status` …). */
  readOnlyValue: boolean;
  createdAt: string;
  updatedAt: string;
}

export interface PropertyGroup {
  readonly name: string;
  readonly label: string;
  readonly displayOrder: number;
}

export interface Contact {
  readonly id: string;
  readonly properties: Map<string, string>;
  readonly createdAt: string;
  updatedAt: string;
}

export interface List {
  readonly listId: string;
  readonly name: string;
  readonly objectTypeId: string;
  readonly processingType: string;
  readonly createdAt: string;
  updatedAt: string;
  listVersion: number;
  /** Record id → membership timestamp. */
  readonly members: Map<string, string>;
}

/** Contacts are object type 0-1. */
export const CONTACT_OBJECT_TYPE = '0-1';
/** Inputs per CRM batch call (hubspot.md §5). */
export const CRM_BATCH_MAX = 100;
/** Search: page size and how far a query pages (hubspot.md §5). */
export const SEARCH_PAGE_MAX = 200;
export const SEARCH_RESULT_CAP = 10_000;

const EMAIL = /^[^\s@"(),:;<>[\]\\]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$/;
export const isEmail = (value: string) => value.length <= 254 && EMAIL.test(value);
export const normEmail = (email: string) => email.trim().toLowerCase();

const LEGAL_BASIS_LABELS = [
  'Legitimate interest – prospect/lead',
  'Legitimate interest – existing customer',
  'Legitimate interest – other',
  'Performance of a contract',
  'Freely given consent from contact',
  'Not applicable',
];

const TYPES_AND_FIELDS: Readonly<Record<string, readonly string[]>> = {
  string: ['text', 'textarea', 'file', 'html', 'phonenumber'],
  number: ['number', 'calculation_equation'],
  date: ['date'],
  datetime: ['date'],
  enumeration: ['select', 'radio', 'checkbox', 'booleancheckbox', 'calculation_equation'],
  bool: ['booleancheckbox', 'calculation_equation'],
  phone_number: ['phonenumber'],
};

/** Properties the app never reads back verbatim from its input: HubSpot maintains them. */
const SYSTEM = new Set(['hs_object_id', 'createdate', 'lastmodifieddate']);

function options(values: readonly string[], label: (v: string) => string = (v) => v): PropertyOption[] {
  return values.map((value, displayOrder) => ({ label: label(value), value, displayOrder, hidden: false }));
}

const boolOptions = () => options(['true', 'false'], (v) => (v === 'true' ? 'Yes' : 'No'));

/** The contact properties every portal has (a subset of HubSpot's; enough for the app and for realistic tests). */
function builtInProperties(subscriptionTypes: ReadonlyArray<{ id: string; name: string }>): Array<Omit<PropertyDefinition, 'createdAt' | 'updatedAt'>> {
  const base = {
    description: '',
    options: [] as PropertyOption[],
    displayOrder: -1,
    hasUniqueValue: false,
    hidden: false,
    formField: true,
    readOnlyDefinition: true,
    readOnlyValue: false,
  };
  const text = (name: string, label: string, groupName = 'contactinformation') => ({ ...base, name, label, type: 'string', fieldType: 'text', groupName });
  const system = (name: string, label: string, type: string, fieldType: string) => ({ ...base, name, label, type, fieldType, groupName: 'contactinformation', formField: false, readOnlyValue: true });
  return [
    { ...text('email', 'Email'), hasUniqueValue: true },
    text('firstname', 'First Name'),
    text('lastname', 'Last Name'),
    { ...text('phone', 'Phone Number'), fieldType: 'phonenumber' },
    { ...text('mobilephone', 'Mobile Phone Number'), fieldType: 'phonenumber' },
    text('company', 'Company Name'),
    text('country', 'Country/Region'),
    system('hs_object_id', 'Record ID', 'number', 'number'),
    system('createdate', 'Create Date', 'datetime', 'date'),
    system('lastmodifieddate', 'Last Modified Date', 'datetime', 'date'),
    system('hs_additional_emails', 'Additional email addresses', 'string', 'textarea'),
    { ...system('hs_email_optout', 'Unsubscribed from all email', 'bool', 'booleancheckbox'), groupName: 'emailinformation', options: boolOptions() },
    { ...system('hs_marketable_status', 'Marketing contact status', 'enumeration', 'booleancheckbox'), options: boolOptions() },
    {
      ...base,
      name: 'hs_legal_basis',
      label: "Legal basis for processing contact's data",
      type: 'enumeration',
      fieldType: 'checkbox',
      groupName: 'contactinformation',
      options: options(LEGAL_BASIS_LABELS),
    },
    ...subscriptionTypes.map((t) => ({
      ...system(`hs_email_optout_${t.id}`, `Opted out of email: ${t.name}`, 'enumeration', 'select'),
      groupName: 'emailinformation',
      options: boolOptions(),
    })),
  ];
}

/** One invalid property value, as HubSpot lists it inside "Property values were not valid: [...]". */
interface PropertyProblem {
  readonly isValid: false;
  readonly message: string;
  readonly error: string;
  readonly name: string;
}

function problemsMessage(problems: readonly PropertyProblem[]): string {
  return `Property values were not valid: ${JSON.stringify(problems)}`;
}

/** A value as HubSpot stores it (datetime as ISO-8601, date as YYYY-MM-DD), or the problem with it. */
function normalizeValue(definition: PropertyDefinition, raw: string): { value: string } | { problem: PropertyProblem } {
  const bad = (message: string, error: string) => ({ problem: { isValid: false as const, message, error, name: definition.name } });
  if (raw === '') return { value: '' };
  switch (definition.type) {
    case 'enumeration':
    case 'bool': {
      const allowed = definition.type === 'bool' ? ['true', 'false'] : definition.options.map((o) => o.value);
      const values = definition.fieldType === 'checkbox' ? raw.split(';') : [raw];
      const wrong = values.find((v) => !allowed.includes(v));
      if (wrong !== undefined) return bad(`${wrong} was not one of the allowed options: [${allowed.join(', ')}]`, 'INVALID_OPTION');
      return { value: raw };
    }
    case 'number':
      return /^-?\d+(\.\d+)?$/.test(raw) ? { value: raw } : bad(`${raw} is not a valid number`, 'INVALID_NUMBER');
    case 'datetime':
    case 'date': {
      const ms = /^\d+$/.test(raw) ? Number(raw) : Date.parse(raw);
      if (Number.isNaN(ms)) return bad(`${raw} is not a valid ${definition.type} (epoch milliseconds or ISO-8601)`, 'INVALID_DATE');
      const iso = new Date(ms).toISOString();
      if (definition.type === 'datetime') return { value: iso };
      if (!iso.endsWith('T00:00:00.000Z')) return bad(`${raw} is not midnight UTC; date properties take dates only`, 'INVALID_DATE');
      return { value: iso.slice(0, 10) };
    }
    default:
      return raw.length > 65_536 ? bad(`value of ${definition.name} is longer than 65536 characters`, 'INVALID_STRING') : { value: raw };
  }
}

export type PropertiesInput = Readonly<Record<string, string | number | boolean | null>>;

export class Portal {
  readonly id: string;
  readonly hubDomain: string;
  readonly scopes: Set<string>;
  readonly gdpr: boolean;
  readonly contacts = new Map<string, Contact>();
  /** Every address of a contact (primary and merged-in ones), lower case → contact id. */
  readonly emailIndex = new Map<string, string>();
  readonly groups = new Map<string, PropertyGroup>();
  readonly properties = new Map<string, PropertyDefinition>();
  readonly lists = new Map<string, List>();
  readonly #ctx: PortalContext;

  constructor(options: PortalOptions & { scopes: readonly string[] }, subscriptionTypes: ReadonlyArray<{ id: string; name: string }>, ctx: PortalContext) {
    this.id = String(options.portalId);
    this.hubDomain = options.hubDomain ?? `portal-${this.id}.hubspot.sim`;
    this.scopes = new Set(options.scopes);
    this.gdpr = options.gdpr ?? true;
    this.#ctx = ctx;
    const now = this.#now();
    this.groups.set('contactinformation', { name: 'contactinformation', label: 'Contact information', displayOrder: 0 });
    this.groups.set('emailinformation', { name: 'emailinformation', label: 'Email information', displayOrder: 1 });
    for (const p of builtInProperties(subscriptionTypes)) this.properties.set(p.name, { ...p, createdAt: now, updatedAt: now });
  }

  #now(): string {
    return this.#ctx.clock.now().toISOString();
  }

  // ------------------------------------------------------------------ contacts

  contactByEmail(email: string): Contact | undefined {
    const id = this.emailIndex.get(normEmail(email));
    return id === undefined ? undefined : this.contacts.get(id);
  }

  contact(id: string): Contact {
    const found = this.contacts.get(id);
    if (found === undefined) throw notFound(`resource not found: contact ${id} does not exist`);
    return found;
  }

  /** Checks every input value first; nothing is written when one is refused (HubSpot refuses the batch). */
  #checkProperties(inputs: readonly PropertiesInput[], { system = false } = {}): Array<Map<string, string>> {
    const problems: PropertyProblem[] = [];
    const out = inputs.map((input) => {
      const values = new Map<string, string>();
      for (const [name, rawValue] of Object.entries(input)) {
        const definition = this.properties.get(name);
        if (definition === undefined) {
          problems.push({ isValid: false, message: `Property "${name}" does not exist`, error: 'PROPERTY_DOESNT_EXIST', name });
          continue;
        }
        if (definition.readOnlyValue && !system) {
          problems.push({ isValid: false, message: `"${name}" is a read only property; its value cannot be set.`, error: 'READ_ONLY_VALUE', name });
          continue;
        }
        const result = normalizeValue(definition, rawValue === null ? '' : String(rawValue));
        if ('problem' in result) problems.push(result.problem);
        else values.set(name, result.value);
      }
      return values;
    });
    if (problems.length > 0) throw validation(problemsMessage(problems));
    return out;
  }

  /** Writes values; reports each change (and the creation) as an event. Answers whether anything changed. */
  #write(contact: Contact, values: ReadonlyMap<string, string>, source: ChangeSource, created: boolean): boolean {
    const now = this.#ctx.clock.now();
    const changed: Array<[string, string]> = [];
    for (const [name, value] of values) {
      if (name === 'email') continue; // the identity: set on create, changed only through `changeEmail`
      const before = contact.properties.get(name) ?? '';
      if (before === value) continue;
      if (value === '') contact.properties.delete(name);
      else contact.properties.set(name, value);
      changed.push([name, value]);
    }
    if (created) changed.unshift(['email', contact.properties.get('email') ?? '']);
    if (changed.length === 0 && !created) return false;
    contact.updatedAt = now.toISOString();
    contact.properties.set('lastmodifieddate', contact.updatedAt);
    const base = { objectId: Number(contact.id), occurredAt: now.getTime(), changeSource: source.changeSource, ...(source.sourceId !== undefined ? { sourceId: source.sourceId } : {}) };
    if (created) this.#ctx.emit(this.id, { ...base, subscriptionType: 'contact.creation', changeFlag: 'CREATED' });
    for (const [propertyName, propertyValue] of changed) {
      if (propertyValue === '' && created) continue;
      this.#ctx.emit(this.id, { ...base, subscriptionType: 'contact.propertyChange', propertyName, propertyValue });
    }
    return true;
  }

  #create(email: string | null): Contact {
    const id = this.#ctx.nextContactId();
    const now = this.#now();
    const contact: Contact = { id, properties: new Map([['hs_object_id', id], ['createdate', now], ['lastmodifieddate', now]]), createdAt: now, updatedAt: now };
    if (email !== null) {
      contact.properties.set('email', normEmail(email));
      this.emailIndex.set(normEmail(email), id);
    }
    this.contacts.set(id, contact);
    return contact;
  }

  /** A contact created in HubSpot itself (UI, form, import): `/_sim` actions. */
  createContact(email: string | null, properties: PropertiesInput, source: ChangeSource): Contact {
    if (email !== null && !isEmail(email.trim())) throw validation(problemsMessage([{ isValid: false, message: `Email address ${email} is invalid`, error: 'INVALID_EMAIL', name: 'email' }]));
    if (email !== null && this.contactByEmail(email) !== undefined) throw conflict(`Contact already exists. Existing ID: ${this.contactByEmail(email)!.id}`, 'CONFLICT');
    const [values] = this.#checkProperties([properties]);
    const contact = this.#create(email);
    this.#write(contact, values!, source, true);
    return contact;
  }

  updateContact(id: string, properties: PropertiesInput, source: ChangeSource, { system = false } = {}): Contact {
    const contact = this.contact(id);
    const input = { ...properties };
    const email = typeof input.email === 'string' ? input.email : undefined;
    delete input.email;
    const [values] = this.#checkProperties([input], { system });
    if (email !== undefined) this.#changeEmail(contact, email, source);
    this.#write(contact, values!, source, false);
    return contact;
  }

  #changeEmail(contact: Contact, email: string, source: ChangeSource): void {
    const next = normEmail(email);
    if (!isEmail(next)) throw validation(problemsMessage([{ isValid: false, message: `Email address ${email} is invalid`, error: 'INVALID_EMAIL', name: 'email' }]));
    const owner = this.emailIndex.get(next);
    if (owner !== undefined && owner !== contact.id) throw conflict(`A contact with the email ${next} already exists. Existing ID: ${owner}`, 'CONFLICT');
    const before = contact.properties.get('email');
    if (before === next) return;
    if (before !== undefined) this.emailIndex.delete(before);
    contact.properties.set('email', next);
    this.emailIndex.set(next, contact.id);
    const now = this.#ctx.clock.now();
    contact.updatedAt = now.toISOString();
    contact.properties.set('lastmodifieddate', contact.updatedAt);
    this.#ctx.emit(this.id, {
      subscriptionType: 'contact.propertyChange',
      objectId: Number(contact.id),
      occurredAt: now.getTime(),
      propertyName: 'email',
      propertyValue: next,
      changeSource: source.changeSource,
      ...(source.sourceId !== undefined ? { sourceId: source.sourceId } : {}),
    });
  }

  /** HubSpot-maintained properties of the contact holding `email` (subscription changes); nothing when none. */
  touchByEmail(email: string, values: Readonly<Record<string, string>>, source: ChangeSource): void {
    const contact = this.contactByEmail(email);
    if (contact !== undefined) this.updateContact(contact.id, values, source, { system: true });
  }

  /**
   * `POST /crm/v3/objects/contacts/batch/upsert` with `idProperty: email`: ≤ 100 inputs, distinct ids. A property
   * problem refuses the whole batch (400, nothing written; the message does not say which input); an invalid email
   * address is an error of its item only (207 `…WithErrors`).
   */
  upsertByEmail(inputs: ReadonlyArray<{ id: string; idProperty?: string; properties: PropertiesInput }>, source: ChangeSource): { status: number; body: unknown } {
    if (inputs.length === 0) throw validation('No inputs were provided');
    if (inputs.length > CRM_BATCH_MAX) throw validation(`Batch input cannot be larger than ${CRM_BATCH_MAX} inputs (got ${inputs.length})`);
    const other = inputs.find((i) => i.idProperty !== 'email');
    if (other !== undefined) throw validation(`idProperty ${other.idProperty ?? '(none)'} is not supported by the simulator's upsert; use email`);
    const seen = new Map<string, number>();
    for (const input of inputs) seen.set(normEmail(input.id), (seen.get(normEmail(input.id)) ?? 0) + 1);
    const duplicates = [...seen].filter(([, n]) => n > 1).map(([email]) => email);
    if (duplicates.length > 0) throw validation(`Duplicate IDs found in batch input: [${duplicates.join(', ')}]. IDs must be unique`, { context: { ids: duplicates } });
    const values = this.#checkProperties(inputs.map((i) => Object.fromEntries(Object.entries(i.properties).filter(([name]) => name !== 'email'))));
    const startedAt = this.#now();
    const results: unknown[] = [];
    const errors: unknown[] = [];
    inputs.forEach((input, i) => {
      const email = input.id.trim();
      if (!isEmail(email)) {
        const problem: PropertyProblem = { isValid: false, message: `Email address ${email} is invalid`, error: 'INVALID_EMAIL', name: 'email' };
        errors.push({ status: 'error', category: 'VALIDATION_ERROR', message: problemsMessage([problem]), context: { ids: [email] }, links: {}, errors: [] });
        return;
      }
      let contact = this.contactByEmail(email);
      const created = contact === undefined;
      contact ??= this.#create(email);
      this.#write(contact, values[i]!, source, created);
      const shown = Object.fromEntries([...values[i]!.keys(), 'email', ...SYSTEM].map((name) => [name, contact.properties.get(name) ?? null]));
      results.push({ ...this.wire(contact, []), properties: shown, new: created });
    });
    const body = { status: 'COMPLETE', results, startedAt, completedAt: this.#now(), ...(errors.length > 0 ? { numErrors: errors.length, errors } : {}) };
    return { status: errors.length > 0 ? 207 : 200, body };
  }

  /** `POST /crm/v3/objects/contacts/batch/read`: by email (`idProperty: email`) or by record id. */
  batchRead(inputs: ReadonlyArray<{ id: string }>, idProperty: string | undefined, properties: readonly string[]): { status: number; body: unknown } {
    if (inputs.length > CRM_BATCH_MAX) throw validation(`Batch input cannot be larger than ${CRM_BATCH_MAX} inputs (got ${inputs.length})`);
    if (idProperty !== undefined && idProperty !== 'email' && idProperty !== 'hs_object_id') throw validation(`idProperty ${idProperty} is not a unique-value property the simulator knows`);
    const startedAt = this.#now();
    const results: unknown[] = [];
    const missing: string[] = [];
    const shownIds = new Set<string>();
    for (const { id } of inputs) {
      const contact = idProperty === 'email' ? this.contactByEmail(id) : this.contacts.get(id.trim());
      if (contact === undefined) missing.push(id);
      else if (!shownIds.has(contact.id)) {
        shownIds.add(contact.id);
        results.push(this.wire(contact, properties));
      }
    }
    const errors = missing.length === 0 ? [] : [{ status: 'error', category: 'OBJECT_NOT_FOUND', message: 'Could not get some CONTACT objects, they may be deleted or not exist. Check that ids are valid.', context: { ids: missing }, links: {}, errors: [] }];
    return { status: errors.length > 0 ? 207 : 200, body: { status: 'COMPLETE', results, startedAt, completedAt: this.#now(), ...(errors.length > 0 ? { numErrors: 1, errors } : {}) } };
  }

  /** SimplePublicObject: the requested properties (null when unset) plus the ones HubSpot always adds. */
  wire(contact: Contact, properties: readonly string[]): { id: string; properties: Record<string, string | null>; createdAt: string; updatedAt: string; archived: false } {
    const names = new Set([...(properties.length === 0 ? ['email', 'firstname', 'lastname'] : properties), ...SYSTEM]);
    return {
      id: contact.id,
      properties: Object.fromEntries([...names].map((name) => [name, contact.properties.get(name) ?? null])),
      createdAt: contact.createdAt,
      updatedAt: contact.updatedAt,
      archived: false,
    };
  }

  /**
   * `POST /crm/v3/objects/contacts/search` (hubspot.md §5): filterGroups (OR of ANDs; ≤ 5 groups, ≤ 6 filters each,
   * ≤ 18 in all), one sort, limit ≤ 200 (default 10), `after` an offset; a query pages through at most 10,000
   * results (`after` ≥ 10,000 is refused). `total` counts every match.
   */
  search(request: SearchRequest): unknown {
    const groups = request.filterGroups ?? [];
    if (groups.length > 5) throw validation(`Too many filter groups (${groups.length}); the maximum is 5`);
    if (groups.some((g) => g.filters.length > 6)) throw validation('Too many filters in a filter group; the maximum is 6');
    if (groups.reduce((n, g) => n + g.filters.length, 0) > 18) throw validation('Too many filters; the maximum is 18 across all filter groups');
    if ((request.sorts ?? []).length > 1) throw validation('Only one sort is supported');
    const limit = request.limit ?? 10;
    if (!Number.isInteger(limit) || limit < 1 || limit > SEARCH_PAGE_MAX) throw validation(`limit must be between 1 and ${SEARCH_PAGE_MAX} (got ${limit})`);
    const offset = request.after === undefined || request.after === '' ? 0 : Number(request.after);
    if (!Number.isInteger(offset) || offset < 0) throw validation(`after ${request.after} is not a paging cursor of this search`);
    if (offset >= SEARCH_RESULT_CAP) throw validation(`The search cannot page past ${SEARCH_RESULT_CAP} results (after=${offset}); narrow the filters instead`);
    for (const f of groups.flatMap((g) => g.filters)) {
      if (!this.properties.has(f.propertyName)) throw validation(`There was a problem with the request: property ${f.propertyName} does not exist`);
    }
    const query = request.query?.trim().toLowerCase() ?? '';
    let matches = [...this.contacts.values()].filter(
      (c) =>
        (groups.length === 0 || groups.some((g) => g.filters.every((f) => this.#matches(c, f)))) &&
        (query === '' || ['email', 'firstname', 'lastname', 'phone', 'company'].some((p) => (c.properties.get(p) ?? '').toLowerCase().includes(query))),
    );
    const sort = request.sorts?.[0];
    const byId = (a: Contact, b: Contact) => Number(a.id) - Number(b.id);
    if (sort !== undefined) {
      const definition = this.properties.get(sort.propertyName);
      if (definition === undefined) throw validation(`There was a problem with the request: cannot sort on unknown property ${sort.propertyName}`);
      const sign = sort.direction === 'DESCENDING' ? -1 : 1;
      matches = matches.sort((a, b) => sign * compareValues(definition, a.properties.get(sort.propertyName), b.properties.get(sort.propertyName)) || byId(a, b));
    } else {
      matches = matches.sort(byId);
    }
    const page = matches.slice(offset, offset + limit);
    const next = offset + limit < matches.length ? String(offset + limit) : undefined;
    return {
      total: matches.length,
      results: page.map((c) => this.wire(c, request.properties ?? [])),
      ...(next !== undefined ? { paging: { next: { after: next, link: `?after=${next}` } } } : {}),
    };
  }

  #matches(contact: Contact, filter: SearchFilter): boolean {
    const definition = this.properties.get(filter.propertyName)!;
    const value = contact.properties.get(filter.propertyName);
    const cmp = (other: string | undefined) => compareValues(definition, value, other);
    switch (filter.operator) {
      case 'HAS_PROPERTY':
        return value !== undefined;
      case 'NOT_HAS_PROPERTY':
        return value === undefined;
      case 'EQ':
        return value !== undefined && cmp(filter.value) === 0;
      case 'NEQ':
        return value === undefined || cmp(filter.value) !== 0;
      case 'LT':
        return value !== undefined && cmp(filter.value) < 0;
      case 'LTE':
        return value !== undefined && cmp(filter.value) <= 0;
      case 'GT':
        return value !== undefined && cmp(filter.value) > 0;
      case 'GTE':
        return value !== undefined && cmp(filter.value) >= 0;
      case 'BETWEEN':
        return value !== undefined && cmp(filter.value) >= 0 && cmp(filter.highValue) <= 0;
      case 'IN':
        return value !== undefined && (filter.values ?? []).some((v) => cmp(v) === 0);
      case 'NOT_IN':
        return value === undefined || !(filter.values ?? []).some((v) => cmp(v) === 0);
      case 'CONTAINS_TOKEN':
      case 'NOT_CONTAINS_TOKEN': {
        const pattern = new RegExp(`^${(filter.value ?? '').toLowerCase().replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`);
        const hit = value !== undefined && value.toLowerCase().split(/[\s@.;]+/).concat(value.toLowerCase()).some((token) => pattern.test(token));
        return filter.operator === 'CONTAINS_TOKEN' ? hit : !hit;
      }
      default:
        throw validation(`Unknown filter operator ${String(filter.operator)}`);
    }
  }

  /**
   * Merge `mergedId` into `primaryId` (the primary keeps its id: `newObjectId` = primary): its empty properties take
   * the merged contact's values, the merged contact's addresses become additional emails of the primary, list
   * memberships are united, and the merged record goes away. One `contact.merge` event, plus property changes.
   */
  merge(primaryId: string, mergedId: string, source: ChangeSource): Contact {
    if (primaryId === mergedId) throw validation('A contact cannot be merged into itself');
    const primary = this.contact(primaryId);
    const merged = this.contact(mergedId);
    const moved = new Map<string, string>();
    for (const [name, value] of merged.properties) {
      if (SYSTEM.has(name) || name === 'email' || name === 'hs_additional_emails') continue;
      if (!primary.properties.has(name)) moved.set(name, value);
    }
    const addresses = [merged.properties.get('email'), ...(merged.properties.get('hs_additional_emails') ?? '').split(';'), ...(primary.properties.get('hs_additional_emails') ?? '').split(';')].filter(
      (e): e is string => e !== undefined && e !== '',
    );
    for (const address of addresses) this.emailIndex.set(address, primary.id);
    const numberOfPropertiesMoved = moved.size;
    if (addresses.length > 0) moved.set('hs_additional_emails', [...new Set(addresses)].join(';'));
    for (const list of this.lists.values()) {
      const at = list.members.get(merged.id);
      if (at === undefined) continue;
      list.members.delete(merged.id);
      if (!list.members.has(primary.id)) list.members.set(primary.id, at);
    }
    this.contacts.delete(merged.id);
    const now = this.#ctx.clock.now();
    this.#ctx.emit(this.id, {
      subscriptionType: 'contact.merge',
      objectId: Number(primary.id),
      occurredAt: now.getTime(),
      primaryObjectId: Number(primary.id),
      mergedObjectIds: [Number(merged.id)],
      newObjectId: Number(primary.id),
      numberOfPropertiesMoved,
      changeSource: source.changeSource,
      ...(source.sourceId !== undefined ? { sourceId: source.sourceId } : {}),
    });
    this.#write(primary, moved, source, false);
    return primary;
  }

  /**
   * Delete a contact: `contact.deletion`; a GDPR (privacy) deletion sends `contact.privacyDeletion` too (hubspot.md
   * §1.2) and also erases the subscription statuses of its addresses (the caller does that part).
   */
  deleteContact(id: string, source: ChangeSource, privacy: boolean): string[] {
    const contact = this.contact(id);
    const addresses = [...this.emailIndex].filter(([, owner]) => owner === id).map(([email]) => email);
    for (const address of addresses) this.emailIndex.delete(address);
    for (const list of this.lists.values()) list.members.delete(id);
    this.contacts.delete(id);
    const base = {
      objectId: Number(contact.id),
      occurredAt: this.#ctx.clock.now().getTime(),
      changeSource: source.changeSource,
      ...(source.sourceId !== undefined ? { sourceId: source.sourceId } : {}),
    };
    if (privacy) this.#ctx.emit(this.id, { ...base, subscriptionType: 'contact.privacyDeletion', changeFlag: 'DELETED' });
    this.#ctx.emit(this.id, { ...base, subscriptionType: 'contact.deletion', changeFlag: 'DELETED' });
    return addresses;
  }

  // ------------------------------------------------------------------ property groups and definitions

  group(name: string): PropertyGroup {
    const group = this.groups.get(name);
    if (group === undefined) throw notFound(`Unable to find property group ${name}`);
    return group;
  }

  createGroup(input: { name: string; label: string; displayOrder?: number }): PropertyGroup {
    if (!/^[a-z][a-z0-9_]{0,99}$/.test(input.name)) throw validation(`Property group name ${input.name} is invalid: lower case letters, digits and underscores, starting with a letter`);
    if (this.groups.has(input.name)) throw conflict(`A property group named '${input.name}' already exists.`);
    const group = { name: input.name, label: input.label, displayOrder: input.displayOrder ?? -1 };
    this.groups.set(group.name, group);
    return group;
  }

  property(name: string): PropertyDefinition {
    const definition = this.properties.get(name);
    if (definition === undefined) throw notFound(`Unable to find property ${name}`);
    return definition;
  }

  createProperty(input: PropertyInput): PropertyDefinition {
    if (!/^[a-z][a-z0-9_]{0,99}$/.test(input.name)) throw validation(`Property name ${input.name} is invalid: lower case letters, digits and underscores, starting with a letter`);
    if (this.properties.has(input.name)) throw conflict(`Property named '${input.name}' already exists.`, 'OBJECT_ALREADY_EXISTS');
    this.#checkDefinition(input.type, input.fieldType, input.groupName, input.options);
    const now = this.#now();
    const definition: PropertyDefinition = {
      name: input.name,
      label: input.label,
      type: input.type,
      fieldType: input.fieldType,
      description: input.description ?? '',
      groupName: input.groupName,
      options: (input.options ?? []).map((o, i) => ({ label: o.label, value: o.value, displayOrder: o.displayOrder ?? i, hidden: o.hidden ?? false })),
      displayOrder: input.displayOrder ?? -1,
      hasUniqueValue: input.hasUniqueValue ?? false,
      hidden: input.hidden ?? false,
      formField: input.formField ?? false,
      readOnlyDefinition: false,
      readOnlyValue: false,
      createdAt: now,
      updatedAt: now,
    };
    this.properties.set(definition.name, definition);
    return definition;
  }

  updateProperty(name: string, input: Partial<Omit<PropertyInput, 'name' | 'type' | 'hasUniqueValue'>> & { type?: string }): PropertyDefinition {
    const definition = this.property(name);
    if (definition.readOnlyDefinition) throw validation(`Property ${name} is a HubSpot default property; its definition cannot be changed`);
    const type = input.type ?? definition.type;
    this.#checkDefinition(type, input.fieldType ?? definition.fieldType, input.groupName ?? definition.groupName, input.options ?? definition.options);
    Object.assign(definition, {
      ...(input.label !== undefined ? { label: input.label } : {}),
      ...(input.description !== undefined ? { description: input.description } : {}),
      ...(input.groupName !== undefined ? { groupName: input.groupName } : {}),
      ...(input.fieldType !== undefined ? { fieldType: input.fieldType } : {}),
      ...(input.displayOrder !== undefined ? { displayOrder: input.displayOrder } : {}),
      ...(input.hidden !== undefined ? { hidden: input.hidden } : {}),
      ...(input.formField !== undefined ? { formField: input.formField } : {}),
      ...(input.options !== undefined ? { options: input.options.map((o, i) => ({ label: o.label, value: o.value, displayOrder: o.displayOrder ?? i, hidden: o.hidden ?? false })) } : {}),
      type,
      updatedAt: this.#now(),
    });
    return definition;
  }

  #checkDefinition(type: string, fieldType: string, groupName: string, opts: ReadonlyArray<{ value: string }> | undefined): void {
    const fields = TYPES_AND_FIELDS[type];
    if (fields === undefined) throw validation(`Property type ${type} is not one of ${Object.keys(TYPES_AND_FIELDS).join(', ')}`);
    if (!fields.includes(fieldType)) throw validation(`fieldType ${fieldType} is not valid for a property of type ${type} (one of ${fields.join(', ')})`);
    if (!this.groups.has(groupName)) throw validation(`Property group ${groupName} does not exist`);
    const values = (opts ?? []).map((o) => o.value);
    const repeated = values.find((v, i) => values.indexOf(v) !== i);
    if (repeated !== undefined) throw validation(`Option value ${repeated} appears more than once`);
    if (type !== 'enumeration' && type !== 'bool' && values.length > 0) throw validation(`Options are only allowed on enumeration properties, not ${type}`);
  }

  propertyWire(definition: PropertyDefinition): Record<string, unknown> {
    return {
      name: definition.name,
      label: definition.label,
      type: definition.type,
      fieldType: definition.fieldType,
      description: definition.description,
      groupName: definition.groupName,
      options: definition.options,
      displayOrder: definition.displayOrder,
      calculated: false,
      externalOptions: false,
      hasUniqueValue: definition.hasUniqueValue,
      hidden: definition.hidden,
      formField: definition.formField,
      createdAt: definition.createdAt,
      updatedAt: definition.updatedAt,
      archived: false,
      modificationMetadata: { archivable: !definition.readOnlyDefinition, readOnlyDefinition: definition.readOnlyDefinition, readOnlyValue: definition.readOnlyValue },
    };
  }

  // ------------------------------------------------------------------ lists

  listByName(objectTypeId: string, name: string): List {
    const list = [...this.lists.values()].find((l) => l.objectTypeId === objectTypeId && l.name.toLowerCase() === name.toLowerCase());
    if (list === undefined) throw notFound(`List does not exist with name ${name} and object type ${objectTypeId}`);
    return list;
  }

  list(listId: string): List {
    const list = this.lists.get(listId);
    if (list === undefined) throw notFound(`List ${listId} does not exist`);
    return list;
  }

  createList(input: { name: string; objectTypeId: string; processingType: string }): List {
    if (!['MANUAL', 'SNAPSHOT', 'DYNAMIC'].includes(input.processingType)) throw validation(`processingType ${input.processingType} is not one of MANUAL, SNAPSHOT, DYNAMIC`);
    if (input.processingType === 'DYNAMIC') throw validation('A DYNAMIC list needs a filterBranch (not supported by the simulator)');
    if (input.name.trim() === '') throw validation('List name must not be empty');
    if ([...this.lists.values()].some((l) => l.name.toLowerCase() === input.name.toLowerCase())) throw conflict(`A list named ${input.name} already exists`);
    const now = this.#now();
    const list: List = { listId: this.#ctx.nextListId(), name: input.name, objectTypeId: input.objectTypeId, processingType: input.processingType, createdAt: now, updatedAt: now, listVersion: 1, members: new Map() };
    this.lists.set(list.listId, list);
    return list;
  }

  /** Only MANUAL and SNAPSHOT lists take manual membership changes (hubspot.md §5). Cap UNVERIFIED: none here. */
  changeMembership(listId: string, add: readonly string[], remove: readonly string[]): { recordsIdsAdded: string[]; recordIdsRemoved: string[]; recordIdsMissing: string[] } {
    const list = this.list(listId);
    if (list.processingType !== 'MANUAL' && list.processingType !== 'SNAPSHOT') {
      throw validation(`List ${listId} is ${list.processingType}: only MANUAL and SNAPSHOT lists can have records added or removed`);
    }
    const now = this.#now();
    const added: string[] = [];
    const removed: string[] = [];
    const missing: string[] = [];
    for (const id of remove) {
      if (!this.contacts.has(id)) missing.push(id);
      else if (list.members.delete(id)) removed.push(id);
    }
    for (const id of add) {
      if (!this.contacts.has(id)) missing.push(id);
      else if (!list.members.has(id)) {
        list.members.set(id, now);
        added.push(id);
      }
    }
    if (added.length + removed.length > 0) {
      list.updatedAt = now;
      list.listVersion++;
    }
    return { recordsIdsAdded: added, recordIdsRemoved: removed, recordIdsMissing: [...new Set(missing)] };
  }

  listWire(list: List): Record<string, unknown> {
    return {
      listId: list.listId,
      name: list.name,
      objectTypeId: list.objectTypeId,
      processingType: list.processingType,
      processingStatus: 'COMPLETE',
      listVersion: list.listVersion,
      createdAt: list.createdAt,
      updatedAt: list.updatedAt,
      filtersUpdatedAt: list.createdAt,
      size: list.members.size,
    };
  }
}

export interface SearchFilter {
  readonly propertyName: string;
  readonly operator: string;
  readonly value?: string;
  readonly highValue?: string;
  readonly values?: readonly string[];
}

export interface SearchRequest {
  readonly filterGroups?: ReadonlyArray<{ readonly filters: readonly SearchFilter[] }>;
  readonly sorts?: ReadonlyArray<{ readonly propertyName: string; readonly direction?: string }>;
  readonly properties?: readonly string[];
  readonly limit?: number;
  readonly after?: string;
  readonly query?: string;
}

export interface PropertyInput {
  readonly name: string;
  readonly label: string;
  readonly type: string;
  readonly fieldType: string;
  readonly groupName: string;
  readonly description?: string;
  readonly options?: ReadonlyArray<{ label: string; value: string; displayOrder?: number; hidden?: boolean }>;
  readonly displayOrder?: number;
  readonly hasUniqueValue?: boolean;
  readonly hidden?: boolean;
  readonly formField?: boolean;
}

/** Order of two stored values of one property (numbers and times numerically, the rest as text, case-insensitive). */
function compareValues(definition: PropertyDefinition, a: string | undefined, b: string | undefined): number {
  if (a === undefined || b === undefined) return a === b ? 0 : a === undefined ? -1 : 1;
  if (definition.type === 'number' || definition.type === 'datetime' || definition.type === 'date') {
    const num = (v: string) => (/^-?\d+(\.\d+)?$/.test(v) ? Number(v) : Date.parse(v));
    const x = num(a);
    const y = num(b);
    if (!Number.isNaN(x) && !Number.isNaN(y)) return x - y;
  }
  return a.toLowerCase().localeCompare(b.toLowerCase());
}

