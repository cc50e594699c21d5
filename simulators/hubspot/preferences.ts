/**
 * A portal's email subscription statuses (communication preferences, hubspot.md §3), keyed by email address (not
 * by contact: they survive a contact's deletion), each with its legal basis and explanation.
 *
 * The model, including the simulator's choices where HubSpot's behaviour is UNVERIFIED (hubspot.md §9.2):
 * - per type: SUBSCRIBED, UNSUBSCRIBED (opted out) or NOT_SPECIFIED; portal-wide "opted out of all email";
 * - v3 `subscribe` refuses a type the contact opted out of: 400 VALIDATION_ERROR naming the rule (exact body
 *   UNVERIFIED); when only "opted out of all" is set it answers 200 NOT_SUBSCRIBED from PORTAL_WIDE_STATUS and
 *   changes nothing; setting what is already set answers 400 "… is already subscribed/unsubscribed …";
 * - v4 writes may re-subscribe (`RESUBSCRIBE_OCCURRED`), also out of "opted out of all", which they clear;
 * - "unsubscribe from all" also marks every SUBSCRIBED type UNSUBSCRIBED, so a later re-subscribe to one type
 *   does not bring the others back;
 * - a subscribe needs `legalBasis` and `legalBasisExplanation` when the portal's GDPR settings are on;
 * - every change writes the contact's `hs_email_optout_<id>` / `hs_email_optout` (so `lastmodifieddate` moves and
 *   a search finds it); HubSpot sends no webhook for subscription changes (hubspot.md §1.2).
 */
import { validation } from './errors';
import { isEmail, normEmail, type Portal } from './portal';
import type { ChangeSource, SimulatorClock, SubscriptionTypeOptions } from './types';

/** hubspot.md §3.2. */
export const LEGAL_BASES = [
  'LEGITIMATE_INTEREST_PQL',
  'LEGITIMATE_INTEREST_CLIENT',
  'LEGITIMATE_INTEREST_OTHER',
  'PERFORMANCE_OF_CONTRACT',
  'CONSENT_WITH_NOTICE',
  'NON_GDPR',
  'PROCESS_AND_STORE',
] as const;

export type StatusState = 'SUBSCRIBED' | 'UNSUBSCRIBED' | 'NOT_SPECIFIED';
export const STATUS_STATES: readonly StatusState[] = ['SUBSCRIBED', 'UNSUBSCRIBED', 'NOT_SPECIFIED'];

export interface StatusRecord {
  readonly status: StatusState;
  readonly legalBasis: string | null;
  readonly legalBasisExplanation: string | null;
  /** How it was set (`Public API`, `Unsubscribe link`, `Form submission`, …). */
  readonly source: string;
  readonly timestamp: string;
}

interface EmailPreferences {
  readonly types: Map<string, StatusRecord>;
  portalWide: StatusRecord | null;
}

export interface SubscriptionType {
  readonly id: string;
  readonly name: string;
  readonly description: string;
  readonly purpose: string;
  readonly isActive: boolean;
  readonly businessUnitId: number;
  readonly createdAt: string;
}

/** Max inputs of a v4 batch call. UNVERIFIED (hubspot.md §9.5); the app sends 100. */
export const V4_BATCH_MAX = 100;

export type SetReason = 'RESUBSCRIBE_OCCURRED' | 'NO_STATUS_CHANGE' | 'REQUESTED_CHANGE_OCCURRED' | 'UNSUBSCRIBE_FROM_ALL_OCCURRED';

export interface StatusChange {
  readonly subscriptionId: string;
  readonly statusState: StatusState;
  readonly legalBasis?: string | null;
  readonly legalBasisExplanation?: string | null;
}

export const SOURCES = { api: 'Public API', link: 'Unsubscribe link', form: 'Form submission' } as const;

export class CommunicationPreferences {
  readonly types: readonly SubscriptionType[];
  readonly byEmail = new Map<string, EmailPreferences>();
  readonly #portal: Portal;
  readonly #clock: SimulatorClock;

  constructor(portal: Portal, types: readonly SubscriptionTypeOptions[], clock: SimulatorClock) {
    this.#portal = portal;
    this.#clock = clock;
    const createdAt = clock.now().toISOString();
    this.types = types.map((t) => {
      if (!/^\d+$/.test(String(t.id))) throw new TypeError(`subscription type id ${String(t.id)} must be numeric`);
      return {
        id: String(t.id),
        name: t.name,
        description: t.description ?? '',
        purpose: t.purpose ?? 'Marketing',
        isActive: t.isActive ?? true,
        businessUnitId: t.businessUnitId ?? 0,
        createdAt,
      };
    });
  }

  #now(): string {
    return this.#clock.now().toISOString();
  }

  type(id: string | number): SubscriptionType {
    const type = this.types.find((t) => t.id === String(id).trim());
    if (type === undefined) throw validation(`Subscription ${String(id)} does not exist in portal ${this.#portal.id}`);
    return type;
  }

  #prefs(email: string): EmailPreferences {
    const key = normEmail(email);
    let prefs = this.byEmail.get(key);
    if (prefs === undefined) {
      prefs = { types: new Map(), portalWide: null };
      this.byEmail.set(key, prefs);
    }
    return prefs;
  }

  #peek(email: string): EmailPreferences | undefined {
    return this.byEmail.get(normEmail(email));
  }

  #checkEmail(email: string): string {
    const trimmed = email.trim();
    if (!isEmail(trimmed)) throw validation(`Invalid email address: ${email}`);
    return trimmed;
  }

  #checkBasis(change: { statusState: StatusState; legalBasis?: string | null; legalBasisExplanation?: string | null }): void {
    if (change.legalBasis != null && !(LEGAL_BASES as readonly string[]).includes(change.legalBasis)) {
      throw validation(`legalBasis ${change.legalBasis} is not one of ${LEGAL_BASES.join(', ')}`);
    }
    if (change.statusState !== 'SUBSCRIBED' || !this.#portal.gdpr) return;
    const missing = [change.legalBasis == null && 'legalBasis', (change.legalBasisExplanation ?? '').trim() === '' && 'legalBasisExplanation'].filter((m): m is string => m !== false);
    if (missing.length > 0) throw validation(`${missing.join(' and ')} required: the data privacy (GDPR) settings of portal ${this.#portal.id} are on`);
  }

  /** One type's status changes, and the contact's opt-out property with it. */
  #set(email: string, typeId: string, status: StatusState, basis: { legalBasis?: string | null; legalBasisExplanation?: string | null }, source: string, by: ChangeSource): void {
    const record: StatusRecord = { status, legalBasis: basis.legalBasis ?? null, legalBasisExplanation: basis.legalBasisExplanation ?? null, source, timestamp: this.#now() };
    this.#prefs(email).types.set(typeId, record);
    this.#portal.touchByEmail(email, { [`hs_email_optout_${typeId}`]: status === 'UNSUBSCRIBED' ? 'true' : status === 'SUBSCRIBED' ? 'false' : '' }, by);
  }

  #setWide(email: string, status: StatusState, source: string, by: ChangeSource): void {
    this.#prefs(email).portalWide = { status, legalBasis: null, legalBasisExplanation: null, source, timestamp: this.#now() };
    this.#portal.touchByEmail(email, { hs_email_optout: status === 'UNSUBSCRIBED' ? 'true' : 'false' }, by);
  }

  #optedOutOfAll(email: string): boolean {
    return this.#peek(email)?.portalWide?.status === 'UNSUBSCRIBED';
  }

  // ------------------------------------------------------------------ the core operations

  /**
   * A status change as v4 makes it (and the contact's own acts: links, forms). Re-subscribes, also out of "opted
   * out of all" (cleared then). Answers the reason HubSpot reports.
   */
  change(email: string, change: StatusChange, source: string, by: ChangeSource): SetReason {
    const address = this.#checkEmail(email);
    const type = this.type(change.subscriptionId);
    this.#checkBasis(change);
    const before = this.#peek(address)?.types.get(type.id)?.status ?? 'NOT_SPECIFIED';
    const wideOut = this.#optedOutOfAll(address);
    if (change.statusState === 'SUBSCRIBED' && wideOut) this.#setWide(address, 'SUBSCRIBED', source, by);
    else if (before === change.statusState) return 'NO_STATUS_CHANGE';
    this.#set(address, type.id, change.statusState, change, source, by);
    return change.statusState === 'SUBSCRIBED' && (before === 'UNSUBSCRIBED' || wideOut) ? 'RESUBSCRIBE_OCCURRED' : 'REQUESTED_CHANGE_OCCURRED';
  }

  /** "Unsubscribe from all email" (v4 unsubscribe-all, the footer link): every SUBSCRIBED type becomes UNSUBSCRIBED too. */
  unsubscribeAll(email: string, source: string, by: ChangeSource): void {
    const address = this.#checkEmail(email);
    for (const [typeId, record] of this.#prefs(address).types) {
      if (record.status === 'SUBSCRIBED') this.#set(address, typeId, 'UNSUBSCRIBED', {}, source, by);
    }
    this.#setWide(address, 'UNSUBSCRIBED', source, by);
  }

  /** A GDPR deletion erases the addresses' statuses. */
  erase(emails: readonly string[]): void {
    for (const email of emails) this.byEmail.delete(normEmail(email));
  }

  // ------------------------------------------------------------------ v3

  definitionsV3(): unknown {
    return {
      subscriptionDefinitions: this.types.map((t) => ({
        id: t.id,
        name: t.name,
        description: t.description,
        purpose: t.purpose,
        communicationMethod: 'Email',
        isActive: t.isActive,
        isDefault: false,
        isInternal: false,
        businessUnitId: t.businessUnitId,
        createdAt: t.createdAt,
        updatedAt: t.createdAt,
      })),
    };
  }

  #v3Wire(email: string, type: SubscriptionType): Record<string, unknown> {
    const record = this.#peek(email)?.types.get(type.id);
    const wide = this.#optedOutOfAll(email);
    return {
      id: type.id,
      name: type.name,
      description: type.description,
      status: !wide && record?.status === 'SUBSCRIBED' ? 'SUBSCRIBED' : 'NOT_SUBSCRIBED',
      sourceOfStatus: wide ? 'PORTAL_WIDE_STATUS' : 'SUBSCRIPTION_STATUS',
      brandId: null,
      preferenceGroupName: null,
      legalBasis: record?.legalBasis ?? null,
      legalBasisExplanation: record?.legalBasisExplanation ?? null,
    };
  }

  v3Status(email: string): unknown {
    const address = this.#checkEmail(email);
    return { recipient: address, subscriptionStatuses: this.types.filter((t) => t.isActive).map((t) => this.#v3Wire(address, t)) };
  }

  /** `POST /communication-preferences/v3/subscribe`: never re-subscribes a contact who opted out. */
  v3Subscribe(input: { emailAddress: string; subscriptionId: string; legalBasis?: string | null; legalBasisExplanation?: string | null }, by: ChangeSource): unknown {
    const address = this.#checkEmail(input.emailAddress);
    const type = this.type(input.subscriptionId);
    this.#checkBasis({ ...input, statusState: 'SUBSCRIBED' });
    const record = this.#peek(address)?.types.get(type.id);
    if (record?.status === 'UNSUBSCRIBED') {
      throw validation(
        `${address} has opted out of subscription ${type.id} (${type.name}) and cannot be resubscribed through this API: ` +
          'the v3 subscribe API does not resubscribe contacts who opted out; only the contact may, e.g. through a form or the v4 API at their request',
      );
    }
    if (this.#optedOutOfAll(address)) return this.#v3Wire(address, type);
    if (record?.status === 'SUBSCRIBED') throw validation(`${address} is already subscribed to subscription ${type.id}`);
    this.#set(address, type.id, 'SUBSCRIBED', input, SOURCES.api, by);
    return this.#v3Wire(address, type);
  }

  v3Unsubscribe(input: { emailAddress: string; subscriptionId: string; legalBasis?: string | null; legalBasisExplanation?: string | null }, by: ChangeSource): unknown {
    const address = this.#checkEmail(input.emailAddress);
    const type = this.type(input.subscriptionId);
    this.#checkBasis({ ...input, statusState: 'UNSUBSCRIBED' });
    if (this.#peek(address)?.types.get(type.id)?.status === 'UNSUBSCRIBED') throw validation(`${address} is already unsubscribed from subscription ${type.id}`);
    this.#set(address, type.id, 'UNSUBSCRIBED', input, SOURCES.api, by);
    return this.#v3Wire(address, type);
  }

  // ------------------------------------------------------------------ v4

  definitionsV4(): unknown {
    const now = this.#now();
    return {
      status: 'COMPLETE',
      results: this.types.map((t) => ({
        id: Number(t.id),
        name: t.name,
        description: t.description,
        purpose: t.purpose,
        communicationMethod: 'Email',
        isActive: t.isActive,
        isDefault: false,
        isInternal: false,
        businessUnitId: t.businessUnitId,
        createdAt: t.createdAt,
        updatedAt: t.createdAt,
      })),
      startedAt: now,
      completedAt: now,
    };
  }

  statusWire(email: string, type: SubscriptionType, reason?: SetReason): Record<string, unknown> {
    const record = this.#peek(email)?.types.get(type.id);
    return {
      channel: 'EMAIL',
      subscriberIdString: email,
      subscriptionId: Number(type.id),
      status: record?.status ?? 'NOT_SPECIFIED',
      source: record?.source ?? null,
      legalBasis: record?.legalBasis ?? null,
      legalBasisExplanation: record?.legalBasisExplanation ?? null,
      timestamp: record?.timestamp ?? null,
      businessUnitId: type.businessUnitId,
      ...(reason !== undefined ? { setStatusSuccessReason: reason } : {}),
    };
  }

  wideWire(email: string): Record<string, unknown> {
    const wide = this.#peek(email)?.portalWide;
    return { channel: 'EMAIL', subscriberIdString: email, wideStatusType: 'PORTAL_WIDE', status: wide?.status ?? 'NOT_SPECIFIED', timestamp: wide?.timestamp ?? null, businessUnitId: 0 };
  }

  #action(results: unknown[], errors: unknown[] = []): { status: number; body: unknown } {
    const now = this.#now();
    return { status: errors.length > 0 ? 207 : 200, body: { status: 'COMPLETE', results, startedAt: now, completedAt: now, ...(errors.length > 0 ? { numErrors: errors.length, errors } : {}) } };
  }

  v4Statuses(email: string): { status: number; body: unknown } {
    const address = this.#checkEmail(email);
    return this.#action(this.types.map((t) => this.statusWire(address, t)));
  }

  v4Set(email: string, change: StatusChange, by: ChangeSource): { status: number; body: unknown } {
    const address = this.#checkEmail(email);
    const reason = this.change(address, change, SOURCES.api, by);
    return this.#action([this.statusWire(address, this.type(change.subscriptionId), reason)]);
  }

  v4Wide(email: string): { status: number; body: unknown } {
    return this.#action([this.wideWire(this.#checkEmail(email))]);
  }

  /** `POST …/v4/statuses/{email}/unsubscribe-all`: an empty answer unless `verbose` (then every type's status). */
  v4UnsubscribeAll(email: string, verbose: boolean, by: ChangeSource): { status: number; body: unknown } {
    const address = this.#checkEmail(email);
    this.unsubscribeAll(address, SOURCES.api, by);
    if (!verbose) return { status: 204, body: undefined };
    return this.#action(this.types.map((t) => this.statusWire(address, t, 'UNSUBSCRIBE_FROM_ALL_OCCURRED')));
  }

  #checkBatch(n: number): void {
    if (n === 0) throw validation('No inputs were provided');
    if (n > V4_BATCH_MAX) throw validation(`Batch input cannot be larger than ${V4_BATCH_MAX} inputs (got ${n})`);
  }

  v4BatchRead(emails: readonly string[]): { status: number; body: unknown } {
    this.#checkBatch(emails.length);
    return this.#action(emails.map((e) => ({ subscriberIdString: e, statuses: this.types.map((t) => this.statusWire(e.trim(), t)) })));
  }

  v4BatchWideRead(emails: readonly string[]): { status: number; body: unknown } {
    this.#checkBatch(emails.length);
    return this.#action(emails.map((e) => ({ subscriberIdString: e, wideStatuses: this.#optedOutOfAll(e) ? [this.wideWire(e.trim())] : [] })));
  }

  v4BatchWrite(inputs: ReadonlyArray<StatusChange & { subscriberIdString: string; channel: string }>, by: ChangeSource): { status: number; body: unknown } {
    this.#checkBatch(inputs.length);
    const results: unknown[] = [];
    const errors: unknown[] = [];
    for (const input of inputs) {
      try {
        if (input.channel !== 'EMAIL') throw validation(`channel ${input.channel} is not supported; only EMAIL`);
        const reason = this.change(input.subscriberIdString, input, SOURCES.api, by);
        results.push(this.statusWire(input.subscriberIdString.trim(), this.type(input.subscriptionId), reason));
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        errors.push({ status: 'error', category: 'VALIDATION_ERROR', message: `${input.subscriberIdString}: ${message}`, context: { subscriberIdString: [input.subscriberIdString] } });
      }
    }
    return this.#action(results, errors);
  }

  v4BatchUnsubscribeAll(emails: readonly string[], by: ChangeSource): { status: number; body: unknown } {
    this.#checkBatch(emails.length);
    for (const e of emails) this.unsubscribeAll(e, SOURCES.api, by);
    return this.#action(emails.map((e) => ({ subscriberIdString: e, wideStatuses: [this.wideWire(e.trim())] })));
  }

  // ------------------------------------------------------------------ state

  snapshot(): unknown[] {
    return [...this.byEmail].map(([email, prefs]) => ({
      email,
      optedOutOfAll: prefs.portalWide?.status === 'UNSUBSCRIBED',
      portalWide: prefs.portalWide,
      statuses: [...prefs.types].map(([subscriptionId, record]) => ({ subscriptionId, name: this.types.find((t) => t.id === subscriptionId)?.name ?? null, ...record })),
    }));
  }
}
