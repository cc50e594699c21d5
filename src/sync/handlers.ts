/**
 * Outbox handlers of the sync (issue 5): each turns a chunk of outbox rows (src/sync/policy.ts operations) into
 * platform calls through the ports, and reports one outcome per row. Platform records are found at dispatch
 * time from the subject's identities (an email for HubSpot, the customer id for Shopify); a subject without one
 * has nothing to write on that platform and its row is done with a note. Successful consent writes are logged
 * for echo suppression (src/sync/echo.ts) before their rows are marked done.
 */
import type { OutboxHandler } from '../outbox/dispatcher';
import type { OutboxRow } from '../outbox/outbox';
import type { Clock, Logger } from '../ports';
import type { Store } from '../store/database';
import * as writeLog from '../store/sync-write.repository';
import { findTenantById, type Tenant } from '../tenants/tenants';
import { EMPTY_STATE } from '../domain/consent';
import { loadFacts, stateKey, type SubjectFacts } from '../gate/facts';
import { contactStateOf } from './contact-state';
import { hubspotSubscriptionFingerprint, shopifyConsentFingerprint } from './echo';
import { SYNC_OPERATIONS, type HubspotContactPayload, type HubspotSubscriptionPayload, type ShopifyConsentPayload } from './policy';
import type { HubspotPort, HubspotProvisioning, ItemOutcome, ShopifyConsentPort, ShopifyConsentWrite, SubscriptionWrite } from './ports';

export interface SyncHandlerDeps {
  readonly store: Store;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly hubspot: HubspotPort;
  readonly shopify: ShopifyConsentPort;
}

/** HubSpot CRM batch size (hubspot.md §5); Shopify has no batch consent mutation, so smaller chunks. */
const HUBSPOT_BATCH = 100;
const SHOPIFY_BATCH = 25;

function identityValue(facts: SubjectFacts | undefined, kind: string): string | undefined {
  return facts?.identities.find((i) => i.kind === kind)?.value;
}

/** Every row gets one outcome; rows not reached by a call are reported with the same outcome as their group. */
function fanOut(rows: readonly OutboxRow[], keyOf: (row: OutboxRow) => string, outcomes: Map<string, ItemOutcome>): ItemOutcome[] {
  return rows.map((row) => {
    const outcome = outcomes.get(keyOf(row));
    return outcome === undefined ? { key: row.id, ok: false, error: 'no outcome from the platform call', retryable: true } : { ...outcome, key: row.id };
  });
}

async function activeTenant(store: Store, tenantId: string): Promise<Tenant | null> {
  const tenant = await findTenantById(store, tenantId);
  return tenant !== undefined && tenant.status === 'active' ? tenant : null;
}

const inactive = (rows: readonly OutboxRow[]): ItemOutcome[] => rows.map((r) => ({ key: r.id, ok: false, error: 'tenant is not active (uninstalled or removed)', retryable: false }));

export function syncHandlers(deps: SyncHandlerDeps): OutboxHandler[] {
  const { store } = deps;
  // Provisioning is idempotent but costs several calls: once per tenant per process, retried after a failure.
  const provisioned = new Map<string, Promise<HubspotProvisioning>>();
  const provisioningOf = (tenant: Tenant): Promise<HubspotProvisioning> => {
    let found = provisioned.get(tenant.id);
    if (found === undefined) {
      found = deps.hubspot.provision(tenant);
      provisioned.set(tenant.id, found);
      found.catch(() => provisioned.delete(tenant.id));
    }
    return found;
  };
  const now = (): string => deps.clock.now().toISOString();

  const hubspotContact: OutboxHandler = {
    platform: 'hubspot',
    operation: SYNC_OPERATIONS.hubspotContact,
    maxBatch: HUBSPOT_BATCH,
    async handle(tenantId, rows) {
      const tenant = await activeTenant(store, tenantId);
      if (tenant === null) return inactive(rows);
      const subjectIds = [...new Set(rows.map((r) => (r.payload as HubspotContactPayload).subjectId))];
      const facts = await loadFacts(store, tenantId, subjectIds);
      const outcomes = new Map<string, ItemOutcome>();
      const writes: Array<{ subjectId: string; email: string; properties: Readonly<Record<string, string>>; suppressed: boolean; contactId: string | undefined }> = [];
      for (const subjectId of subjectIds) {
        const subject = facts.get(subjectId);
        const email = identityValue(subject, 'email');
        if (subject === undefined || email === undefined) {
          outcomes.set(subjectId, { key: subjectId, ok: true, note: 'no email known: nothing to write in HubSpot' });
          continue;
        }
        const state = contactStateOf(subject, tenant.settings, now());
        writes.push({ subjectId, email, properties: state.properties, suppressed: state.suppressed, contactId: identityValue(subject, 'hubspot_contact') });
      }
      if (writes.length > 0) {
        const { suppressionListId } = await provisioningOf(tenant);
        for (const outcome of await deps.hubspot.upsertContactProperties(tenant, writes.map((w) => ({ key: w.subjectId, email: w.email, properties: w.properties })))) outcomes.set(outcome.key, outcome);
        const written = writes.filter((w) => outcomes.get(w.subjectId)?.ok === true);
        const missingIds = written.filter((w) => w.contactId === undefined).map((w) => w.email);
        const idsByEmail = missingIds.length > 0 ? await deps.hubspot.contactIdsByEmail(tenant, missingIds) : new Map<string, string>();
        const idOf = (w: (typeof writes)[number]) => w.contactId ?? idsByEmail.get(w.email);
        const add = written.filter((w) => w.suppressed).map(idOf).filter((id): id is string => id !== undefined);
        const remove = written.filter((w) => !w.suppressed).map(idOf).filter((id): id is string => id !== undefined);
        if (add.length > 0 || remove.length > 0) await deps.hubspot.setListMembership(tenant, { listId: suppressionListId, add, remove });
      }
      return fanOut(rows, (r) => (r.payload as HubspotContactPayload).subjectId, outcomes);
    },
  };

  /**
   * One write per row to the platform record named by the subject's `identityKind` identity; a subject without one
   * has nothing to write (done, with a note). Successful writes are logged for echo suppression.
   */
  async function writeThrough<P extends { subjectId: string }, W extends { key: string }>(
    tenantId: string,
    rows: readonly OutboxRow[],
    spec: {
      identityKind: 'email' | 'shopify_customer';
      missing: string;
      toWrite: (rowId: string, payload: P, identity: string) => W;
      /** A reason not to write this row now (done, with the reason as its note), or null. */
      holdBack?: (payload: P, subject: SubjectFacts, tenant: Tenant) => string | null;
      send: (tenant: Tenant, writes: readonly W[]) => Promise<ItemOutcome[]>;
      fingerprint: (write: W) => string;
    },
  ): Promise<ItemOutcome[]> {
    const tenant = await activeTenant(store, tenantId);
    if (tenant === null) return inactive(rows);
    const facts = await loadFacts(store, tenantId, [...new Set(rows.map((r) => (r.payload as P).subjectId))]);
    const outcomes: ItemOutcome[] = [];
    const writes: W[] = [];
    for (const row of rows) {
      const payload = row.payload as P;
      const subject = facts.get(payload.subjectId);
      const identity = identityValue(subject, spec.identityKind);
      const held = subject !== undefined && spec.holdBack ? spec.holdBack(payload, subject, tenant) : null;
      if (identity === undefined) outcomes.push({ key: row.id, ok: true, note: spec.missing });
      else if (held !== null) outcomes.push({ key: row.id, ok: true, note: held });
      else writes.push(spec.toWrite(row.id, payload, identity));
    }
    if (writes.length > 0) {
      const results = await spec.send(tenant, writes);
      const done = new Set(results.filter((r) => r.ok).map((r) => r.key));
      await writeLog.recordWrites(store.db, tenantId, writes.filter((w) => done.has(w.key)).map(spec.fingerprint), now());
      outcomes.push(...results);
    }
    return outcomes;
  }

  const hubspotSubscription: OutboxHandler = {
    platform: 'hubspot',
    operation: SYNC_OPERATIONS.hubspotSubscription,
    maxBatch: HUBSPOT_BATCH,
    handle: (tenantId, rows) =>
      writeThrough<HubspotSubscriptionPayload, SubscriptionWrite>(tenantId, rows, {
        identityKind: 'email',
        missing: 'no email known: no HubSpot subscription to set',
        toWrite: (key, p, email) => ({ key, email, subscriptionTypeId: p.subscriptionTypeId, subscribed: p.subscribed, legalBasis: p.legalBasis, legalBasisExplanation: p.legalBasisExplanation, freshAffirmativeAct: p.freshAffirmativeAct }),
        // Retries can deliver an older write after a newer one: send only what the current state still says.
        holdBack: (p, subject, tenant) => {
          const state = subject.states.get(stateKey('email', p.purpose ?? '*')) ?? subject.states.get(stateKey('email', '*')) ?? EMPTY_STATE;
          if (!p.subscribed) return state.status === 'granted' ? `superseded: consent was granted again since (${state.grantedAt})` : null;
          if (p.legalBasis === 'CONSENT_WITH_NOTICE' && !(state.status === 'granted' && state.basis === 'consent')) return `superseded: the consent is ${state.status} now`;
          if (p.legalBasis === 'LEGITIMATE_INTEREST_CLIENT' && (state.softOptInEnded || state.status === 'withdrawn' || state.status === 'erased')) return 'superseded: the soft opt-in has ended';
          // HubSpot sends marketing email to whoever is SUBSCRIBED: subscribe only while the gate allows it now (e.g.
          // not a single opt-in where double opt-in is expected; the confirmation's own write subscribes later).
          return contactStateOf(subject, tenant.settings, now()).suppressed ? 'not subscribed in HubSpot: the send gate blocks this contact for email now' : null;
        },
        send: (tenant, writes) => deps.hubspot.setSubscriptions(tenant, writes),
        fingerprint: (w) => hubspotSubscriptionFingerprint(w.email, w.subscriptionTypeId, w.subscribed),
      }),
  };

  const shopifyConsent: OutboxHandler = {
    platform: 'shopify',
    operation: SYNC_OPERATIONS.shopifyConsent,
    maxBatch: SHOPIFY_BATCH,
    handle: (tenantId, rows) =>
      writeThrough<ShopifyConsentPayload, ShopifyConsentWrite>(tenantId, rows, {
        identityKind: 'shopify_customer',
        missing: 'no Shopify customer known: nothing to write in Shopify',
        toWrite: (key, p, customerId) => ({ key, customerId, channel: p.channel, state: p.state, optInLevel: p.optInLevel, consentUpdatedAt: p.consentUpdatedAt }),
        // Retries can deliver an older write after a newer one: send only what the current state still says.
        holdBack: (p, subject) => {
          const state = subject.states.get(stateKey(p.channel, '*')) ?? EMPTY_STATE;
          const granted = state.status === 'granted' && state.basis === 'consent';
          if (p.state === 'SUBSCRIBED' && !granted) return `superseded: the ${p.channel} consent is ${state.status} now`;
          if (p.state === 'UNSUBSCRIBED' && granted) return `superseded: ${p.channel} consent was granted again since (${state.grantedAt})`;
          return null;
        },
        send: (tenant, writes) => deps.shopify.updateConsent(tenant, writes),
        fingerprint: (w) => shopifyConsentFingerprint(w.customerId, w.channel, w.state, w.consentUpdatedAt),
      }),
  };

  return [hubspotContact, hubspotSubscription, shopifyConsent];
}
