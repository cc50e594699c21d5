/** The HubSpot simulator (issue 6 §2); see README.md in this folder. */
export {
  BATCH_SCOPES,
  DEFAULT_SCOPES,
  startHubspotSimulator,
  type ContactView,
  type FaultOptions,
  type HubspotSimulator,
  type HubspotSimulatorOptions,
  type PortalState,
  type QueuedFault,
  type RequestRecord,
  type SimulatorCounters,
  type SimulatorState,
} from './server';
export { ACTION_PATHS, type WorkflowActionCall, type WorkflowActionResult } from './actions';
export { DEFAULT_WEBHOOK_SUBSCRIPTIONS, type WebhookDelivery, type WebhookEvent, type WebhookSettings, type WebhookSubscription } from './webhooks';
export { LEGAL_BASES } from './preferences';
export type { ChangeSource, PortalOptions, SimulatorClock, SubscriptionTypeOptions } from './types';
