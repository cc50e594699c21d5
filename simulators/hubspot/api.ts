/**
 * The HubSpot API endpoints the simulator serves (the ones connectors/hubspot calls, plus their obvious siblings),
 * as a table: method, path, the scopes any of which grants it, whether it is a search (own limit, hubspot.md §5),
 * and a handler from the parsed request to HubSpot's answer. Bodies are checked with the shapes of the v13 models;
 * a body that does not fit answers 400 VALIDATION_ERROR "Invalid input JSON …" like HubSpot.
 */
import { z } from 'zod';
import { notFound, validation } from './errors';
import type { Portal } from './portal';
import { STATUS_STATES, type CommunicationPreferences } from './preferences';
import type { ChangeSource } from './types';

export interface ApiRequest {
  readonly portal: Portal;
  readonly preferences: CommunicationPreferences;
  readonly params: Readonly<Record<string, string>>;
  readonly query: Readonly<Record<string, string | undefined>>;
  readonly body: unknown;
  /** Who the app is, as HubSpot records its writes (`changeSource`/`sourceId` of the webhooks they cause). */
  readonly appSource: ChangeSource;
}

export interface ApiAnswer {
  readonly status: number;
  readonly body?: unknown;
}

export interface ApiRoute {
  readonly method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  readonly path: string;
  /** Any one of these grants the call (403 MISSING_SCOPES otherwise). */
  readonly scopes: readonly string[];
  readonly search?: boolean;
  readonly handle: (request: ApiRequest) => ApiAnswer;
}

function parse<T extends z.ZodType>(schema: T, body: unknown): z.infer<T> {
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  const issues = result.error.issues.slice(0, 10).map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`);
  throw validation(`Invalid input JSON: ${issues.join('; ')}`);
}

const ok = (body: unknown, status = 200): ApiAnswer => ({ status, body });

const SCOPES = {
  contactsRead: ['crm.objects.contacts.read', 'crm.objects.contacts.write'],
  contactsWrite: ['crm.objects.contacts.write'],
  schemaRead: ['crm.schemas.contacts.read', 'crm.schemas.contacts.write', 'crm.objects.contacts.read'],
  schemaWrite: ['crm.schemas.contacts.write'],
  listsRead: ['crm.lists.read', 'crm.lists.write'],
  listsWrite: ['crm.lists.write'],
  prefsRead: ['communication_preferences.read', 'communication_preferences.read_write'],
  prefsWrite: ['communication_preferences.write', 'communication_preferences.read_write'],
  batchRead: ['communication_preferences.statuses.batch.read'],
  batchWrite: ['communication_preferences.statuses.batch.write'],
} as const;

const propertyValue = z.union([z.string(), z.number(), z.boolean(), z.null()]);
const idString = z.union([z.string(), z.number()]).transform(String);

const upsertBody = z.object({
  inputs: z.array(z.object({ id: z.string().min(1), idProperty: z.string().optional(), properties: z.record(z.string(), propertyValue) })),
});
const batchReadBody = z.object({
  inputs: z.array(z.object({ id: idString })),
  idProperty: z.string().optional(),
  properties: z.array(z.string()).default([]),
  propertiesWithHistory: z.array(z.string()).optional(),
});
const filter = z.object({
  propertyName: z.string(),
  operator: z.string(),
  value: idString.optional(),
  highValue: idString.optional(),
  values: z.array(idString).optional(),
});
const searchBody = z.object({
  filterGroups: z.array(z.object({ filters: z.array(filter) })).optional(),
  sorts: z.array(z.union([z.object({ propertyName: z.string(), direction: z.enum(['ASCENDING', 'DESCENDING']).optional() }), z.string().transform((propertyName) => ({ propertyName }))])).optional(),
  properties: z.array(z.string()).optional(),
  limit: z.number().int().optional(),
  after: idString.optional(),
  query: z.string().optional(),
});
const groupBody = z.object({ name: z.string(), label: z.string().min(1), displayOrder: z.number().int().optional() });
const optionBody = z.object({ label: z.string(), value: z.string(), displayOrder: z.number().int().optional(), hidden: z.boolean().optional(), description: z.string().optional() });
const propertyBody = z.object({
  name: z.string(),
  label: z.string().min(1),
  type: z.string(),
  fieldType: z.string(),
  groupName: z.string(),
  description: z.string().optional(),
  options: z.array(optionBody).optional(),
  displayOrder: z.number().int().optional(),
  hasUniqueValue: z.boolean().optional(),
  hidden: z.boolean().optional(),
  formField: z.boolean().optional(),
});
const propertyPatch = propertyBody.omit({ name: true, hasUniqueValue: true }).partial();
const listBody = z.object({ name: z.string(), objectTypeId: z.string(), processingType: z.string() });
const membershipBody = z.object({ recordIdsToAdd: z.array(idString).default([]), recordIdsToRemove: z.array(idString).default([]) });
const idArray = z.array(idString);
const legalBasis = z.string().nullish();
const v3Body = z.object({ emailAddress: z.string(), subscriptionId: idString, legalBasis, legalBasisExplanation: z.string().nullish() });
const statusState = z.enum(STATUS_STATES as [string, ...string[]]).transform((s) => s as (typeof STATUS_STATES)[number]);
const v4Body = z.object({ channel: z.string(), statusState, subscriptionId: idString, legalBasis, legalBasisExplanation: z.string().nullish() });
const v4BatchWrite = z.object({ inputs: z.array(v4Body.extend({ subscriberIdString: z.string() })) });
const emailInputs = z.object({ inputs: z.array(z.string()) });

function channelQuery(query: ApiRequest['query']): void {
  if (query.channel === undefined) throw validation('channel is required (EMAIL)');
  if (query.channel !== 'EMAIL') throw validation(`channel ${query.channel} is not supported; only EMAIL (hubspot.md §3.1)`);
}

function channelBody(channel: string): void {
  if (channel !== 'EMAIL') throw validation(`channel ${channel} is not supported; only EMAIL`);
}

export const API_ROUTES: readonly ApiRoute[] = [
  // ---------------------------------------------------------------- contacts
  {
    method: 'POST',
    path: '/crm/v3/objects/contacts/batch/upsert',
    scopes: SCOPES.contactsWrite,
    handle: (r) => r.portal.upsertByEmail(parse(upsertBody, r.body).inputs, r.appSource),
  },
  {
    method: 'POST',
    path: '/crm/v3/objects/contacts/batch/read',
    scopes: SCOPES.contactsRead,
    handle: (r) => {
      const body = parse(batchReadBody, r.body);
      return r.portal.batchRead(body.inputs, body.idProperty, body.properties);
    },
  },
  {
    method: 'POST',
    path: '/crm/v3/objects/contacts/search',
    scopes: SCOPES.contactsRead,
    search: true,
    handle: (r) => ok(r.portal.search(parse(searchBody, r.body))),
  },
  {
    method: 'GET',
    path: '/crm/v3/objects/contacts/:contactId',
    scopes: SCOPES.contactsRead,
    handle: (r) => {
      const id = r.params.contactId!;
      const contact = r.query.idProperty === 'email' ? r.portal.contactByEmail(id) : r.portal.contacts.get(id);
      if (contact === undefined) throw notFound(`resource not found: contact ${id} does not exist`);
      return ok(r.portal.wire(contact, (r.query.properties ?? '').split(',').filter((p) => p !== '')));
    },
  },
  // ---------------------------------------------------------------- properties
  {
    method: 'GET',
    path: '/crm/v3/properties/contacts/groups',
    scopes: SCOPES.schemaRead,
    handle: (r) => ok({ results: [...r.portal.groups.values()].map((g) => ({ ...g, archived: false })) }),
  },
  {
    method: 'GET',
    path: '/crm/v3/properties/contacts/groups/:groupName',
    scopes: SCOPES.schemaRead,
    handle: (r) => ok({ ...r.portal.group(r.params.groupName!), archived: false }),
  },
  {
    method: 'POST',
    path: '/crm/v3/properties/contacts/groups',
    scopes: SCOPES.schemaWrite,
    handle: (r) => ok({ ...r.portal.createGroup(parse(groupBody, r.body)), archived: false }, 201),
  },
  {
    method: 'GET',
    path: '/crm/v3/properties/contacts',
    scopes: SCOPES.schemaRead,
    handle: (r) => ok({ results: [...r.portal.properties.values()].map((p) => r.portal.propertyWire(p)) }),
  },
  {
    method: 'GET',
    path: '/crm/v3/properties/contacts/:propertyName',
    scopes: SCOPES.schemaRead,
    handle: (r) => ok(r.portal.propertyWire(r.portal.property(r.params.propertyName!))),
  },
  {
    method: 'POST',
    path: '/crm/v3/properties/contacts',
    scopes: SCOPES.schemaWrite,
    handle: (r) => ok(r.portal.propertyWire(r.portal.createProperty(parse(propertyBody, r.body))), 201),
  },
  {
    method: 'PATCH',
    path: '/crm/v3/properties/contacts/:propertyName',
    scopes: SCOPES.schemaWrite,
    handle: (r) => ok(r.portal.propertyWire(r.portal.updateProperty(r.params.propertyName!, parse(propertyPatch, r.body)))),
  },
  // ---------------------------------------------------------------- lists
  {
    method: 'GET',
    path: '/crm/v3/lists/object-type-id/:objectTypeId/name/:listName',
    scopes: SCOPES.listsRead,
    handle: (r) => ok({ list: r.portal.listWire(r.portal.listByName(r.params.objectTypeId!, r.params.listName!)) }),
  },
  {
    method: 'POST',
    path: '/crm/v3/lists',
    scopes: SCOPES.listsWrite,
    handle: (r) => ok({ list: r.portal.listWire(r.portal.createList(parse(listBody, r.body))) }),
  },
  {
    method: 'GET',
    path: '/crm/v3/lists/:listId',
    scopes: SCOPES.listsRead,
    handle: (r) => ok({ list: r.portal.listWire(r.portal.list(r.params.listId!)) }),
  },
  {
    method: 'GET',
    path: '/crm/v3/lists/:listId/memberships',
    scopes: SCOPES.listsRead,
    handle: (r) => {
      const members = [...r.portal.list(r.params.listId!).members].map(([recordId, membershipTimestamp]) => ({ recordId, membershipTimestamp }));
      return ok({ results: members, total: members.length });
    },
  },
  {
    method: 'PUT',
    path: '/crm/v3/lists/:listId/memberships/add-and-remove',
    scopes: SCOPES.listsWrite,
    handle: (r) => {
      const body = parse(membershipBody, r.body);
      return ok(r.portal.changeMembership(r.params.listId!, body.recordIdsToAdd, body.recordIdsToRemove));
    },
  },
  {
    method: 'PUT',
    path: '/crm/v3/lists/:listId/memberships/add',
    scopes: SCOPES.listsWrite,
    handle: (r) => ok(r.portal.changeMembership(r.params.listId!, parse(idArray, r.body), [])),
  },
  {
    method: 'PUT',
    path: '/crm/v3/lists/:listId/memberships/remove',
    scopes: SCOPES.listsWrite,
    handle: (r) => ok(r.portal.changeMembership(r.params.listId!, [], parse(idArray, r.body))),
  },
  // ---------------------------------------------------------------- communication preferences v3
  {
    method: 'GET',
    path: '/communication-preferences/v3/definitions',
    scopes: SCOPES.prefsRead,
    handle: (r) => ok(r.preferences.definitionsV3()),
  },
  {
    method: 'GET',
    path: '/communication-preferences/v3/status/email/:email',
    scopes: SCOPES.prefsRead,
    handle: (r) => ok(r.preferences.v3Status(r.params.email!)),
  },
  {
    method: 'POST',
    path: '/communication-preferences/v3/subscribe',
    scopes: SCOPES.prefsWrite,
    handle: (r) => ok(r.preferences.v3Subscribe(parse(v3Body, r.body), r.appSource)),
  },
  {
    method: 'POST',
    path: '/communication-preferences/v3/unsubscribe',
    scopes: SCOPES.prefsWrite,
    handle: (r) => ok(r.preferences.v3Unsubscribe(parse(v3Body, r.body), r.appSource)),
  },
  // ---------------------------------------------------------------- communication preferences v4 (batch first: `batch` is no email)
  {
    method: 'GET',
    path: '/communication-preferences/v4/definitions',
    scopes: SCOPES.prefsRead,
    handle: (r) => ok(r.preferences.definitionsV4()),
  },
  {
    method: 'POST',
    path: '/communication-preferences/v4/statuses/batch/read',
    scopes: SCOPES.batchRead,
    handle: (r) => {
      channelQuery(r.query);
      return r.preferences.v4BatchRead(parse(emailInputs, r.body).inputs);
    },
  },
  {
    method: 'POST',
    path: '/communication-preferences/v4/statuses/batch/write',
    scopes: SCOPES.batchWrite,
    handle: (r) => r.preferences.v4BatchWrite(parse(v4BatchWrite, r.body).inputs, r.appSource),
  },
  {
    method: 'POST',
    path: '/communication-preferences/v4/statuses/batch/unsubscribe-all/read',
    scopes: SCOPES.batchRead,
    handle: (r) => {
      channelQuery(r.query);
      return r.preferences.v4BatchWideRead(parse(emailInputs, r.body).inputs);
    },
  },
  {
    method: 'POST',
    path: '/communication-preferences/v4/statuses/batch/unsubscribe-all',
    scopes: SCOPES.batchWrite,
    handle: (r) => {
      channelQuery(r.query);
      return r.preferences.v4BatchUnsubscribeAll(parse(emailInputs, r.body).inputs, r.appSource);
    },
  },
  {
    method: 'GET',
    path: '/communication-preferences/v4/statuses/:email',
    scopes: SCOPES.prefsRead,
    handle: (r) => {
      channelQuery(r.query);
      return r.preferences.v4Statuses(r.params.email!);
    },
  },
  {
    method: 'POST',
    path: '/communication-preferences/v4/statuses/:email',
    scopes: SCOPES.prefsWrite,
    handle: (r) => {
      const body = parse(v4Body, r.body);
      channelBody(body.channel);
      return r.preferences.v4Set(r.params.email!, body, r.appSource);
    },
  },
  {
    method: 'GET',
    path: '/communication-preferences/v4/statuses/:email/unsubscribe-all',
    scopes: SCOPES.prefsRead,
    handle: (r) => {
      channelQuery(r.query);
      return r.preferences.v4Wide(r.params.email!);
    },
  },
  {
    method: 'POST',
    path: '/communication-preferences/v4/statuses/:email/unsubscribe-all',
    scopes: SCOPES.prefsWrite,
    handle: (r) => {
      channelQuery(r.query);
      return r.preferences.v4UnsubscribeAll(r.params.email!, r.query.verbose === 'true', r.appSource);
    },
  },
];

