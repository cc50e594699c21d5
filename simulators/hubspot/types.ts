/** Shapes shared by the simulator's parts. */

/** Wall-clock time of the simulated platform (`{ now(): Date }`, structurally the app's Clock). */
export interface SimulatorClock {
  now(): Date;
}

export const systemClock: SimulatorClock = { now: () => new Date() };

/** Who made a change, as HubSpot reports it in webhook events (hubspot.md §1.1 `changeSource`, `sourceId`). */
export interface ChangeSource {
  readonly changeSource: string;
  readonly sourceId?: string;
}

/** A webhook event before the dispatcher numbers it (eventId, subscriptionId, portalId, appId, attemptNumber). */
export interface EventDraft {
  readonly subscriptionType: string;
  readonly objectId: number;
  readonly occurredAt: number;
  readonly propertyName?: string;
  readonly propertyValue?: string;
  readonly changeSource?: string;
  readonly sourceId?: string;
  readonly changeFlag?: string;
  readonly primaryObjectId?: number;
  readonly mergedObjectIds?: number[];
  readonly newObjectId?: number;
  readonly numberOfPropertiesMoved?: number;
}

/** A subscription type (communication preference definition) of a portal. */
export interface SubscriptionTypeOptions {
  /** Numeric id (v3 answers it as a string, v4 as a number). */
  readonly id: string | number;
  readonly name: string;
  readonly description?: string;
  /** Default "Marketing". */
  readonly purpose?: string;
  /** Default true. */
  readonly isActive?: boolean;
  /** Default 0 (the portal's default business unit). */
  readonly businessUnitId?: number;
}

export interface PortalOptions {
  readonly portalId: string | number;
  /** A Bearer token the portal accepts from the start (does not expire). */
  readonly accessToken: string;
  /** The portal's refresh token (`POST /oauth/v1/token` grant_type=refresh_token). */
  readonly refreshToken: string;
  readonly subscriptionTypes?: readonly SubscriptionTypeOptions[];
  /**
   * Scopes granted to the app in this portal. Default the app's required scopes (manifest.json `hubspot.scopes`);
   * the v4 batch endpoints need `communication_preferences.statuses.batch.read|write` (Marketing Hub Enterprise).
   */
  readonly scopes?: readonly string[];
  /**
   * The portal's data-privacy (GDPR) settings are on: a subscribe needs `legalBasis` and `legalBasisExplanation`
   * (hubspot.md §3.1). Default true.
   */
  readonly gdpr?: boolean;
  /** Default `portal-<id>.hubspot.sim`. */
  readonly hubDomain?: string;
}
