/**
 * The demo story (issue 6 §5), run against a sandbox over real HTTP: things happen in the simulated store and
 * portal, signed webhooks and workflow calls reach the app, and the story waits until each effect is visible on
 * the other side (or a step's time runs out), printing a timeline with ✓ or ✗ per step. The end-to-end suite runs
 * the same story with assertions (test/e2e/story.test.ts).
 */
import { sql } from 'kysely';
import type { Sandbox } from './sandbox';
import { DEMO_SUBSCRIPTION_TYPES } from './sandbox';

export interface StepResult {
  readonly step: string;
  readonly ok: boolean;
  readonly detail: string;
}

export interface StoryOptions {
  /** Printed as each step ends. */
  readonly print?: (line: string) => void;
  /** How long a step waits for its effect (ms). Default 20 s. */
  readonly stepTimeoutMs?: number;
}

interface GateAnswer {
  readonly allowed: boolean;
  readonly reason: string;
  readonly basis: string | null;
  readonly evidence: readonly string[];
  readonly jurisdiction: { readonly row: string };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Poll `probe` until it returns a value that is not undefined, or time runs out (then undefined). */
async function until<T>(probe: () => Promise<T | undefined> | T | undefined, timeoutMs: number): Promise<T | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) return undefined;
    await sleep(100);
  }
}

interface HubspotStatusRecord {
  readonly subscriptionId: string;
  readonly status: string;
  readonly legalBasis?: string | null;
  readonly legalBasisExplanation?: string | null;
}

export async function runStory(sandbox: Sandbox, options: StoryOptions = {}): Promise<StepResult[]> {
  const print = options.print ?? (() => undefined);
  const timeoutMs = options.stepTimeoutMs ?? 20_000;
  const { shopify, hubspot, shop, portalId } = sandbox;
  const results: StepResult[] = [];
  const record = (step: string, ok: boolean, detail: string): void => {
    results.push({ step, ok, detail });
    print(`${ok ? '✓' : '✗'} ${step}\n    ${detail.split('\n').join('\n    ')}`);
  };

  const gate = async (recipient: Record<string, string>, categories: string[]): Promise<GateAnswer> => {
    const response = await fetch(`${sandbox.appUrl}/api/v1/gate/check?explain=1`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${sandbox.apiKey}` },
      body: JSON.stringify({ channel: 'email', categories, recipients: [recipient] }),
    });
    const body = (await response.json()) as { results: GateAnswer[] };
    return body.results[0]!;
  };
  const describe = (answer: GateAnswer): string =>
    `${answer.allowed ? 'allowed' : 'blocked'} (${answer.reason}, basis ${answer.basis ?? 'none'}, law.md row ${answer.jurisdiction.row}, evidence ${answer.evidence.join(', ') || 'none'})`;
  const hubspotStatus = (email: string, typeId: string): HubspotStatusRecord | undefined => {
    const portal = hubspot.state().portals.find((p) => p.portalId === portalId);
    const entry = (portal?.subscriptions as Array<{ email: string; statuses: HubspotStatusRecord[] }> | undefined)?.find((s) => s.email === email);
    return entry?.statuses.find((s) => String(s.subscriptionId) === typeId);
  };
  const hubspotContactId = (email: string): string | undefined => hubspot.state().portals.find((p) => p.portalId === portalId)?.contacts.find((c) => c.email === email)?.id;
  const outboxCount = async (operation: string, subjectEmail: string, where: string = ''): Promise<number> => {
    const rows = await sql<{ n: number }>`
      select count(*) as n from outbox o
      join subject_identity i on i.tenant_id = o.tenant_id and i.subject_id = o.subject_id and i.kind = 'email' and i.value = ${subjectEmail}
      where o.tenant_id = ${sandbox.tenant.id} and o.operation = ${operation} ${sql.raw(where)}`.execute(sandbox.runtime.store.db);
    return Number(rows.rows[0]?.n ?? 0);
  };

  // Products of the demo shop (products/create webhooks go to the app's catalog cache).
  const shoes = shopify.createProduct(shop, { title: 'Trail running shoes', productType: 'Running shoes', vendor: 'Acme', category: { id: 'aa-8-1', fullName: 'Apparel & Accessories > Shoes > Athletic Shoes' } });
  const insurance = shopify.createProduct(shop, { title: 'Travel insurance', productType: 'Insurance', vendor: 'Acme Cover' });
  const giftCard = shopify.createProduct(shop, { title: 'Gift card', vendor: 'Acme' });
  void insurance;

  // 1. An NL customer ticks the marketing box at checkout.
  {
    const email = 'anna@example.nl';
    shopify.createOrder(shop, { email, firstName: 'Anna', billingAddress: { country: 'NL' }, lineItems: [{ productId: giftCard.id }], acceptsEmailMarketing: true });
    const status = await until(() => {
      const s = hubspotStatus(email, DEMO_SUBSCRIPTION_TYPES.newsletter);
      return s?.status === 'SUBSCRIBED' ? s : undefined;
    }, timeoutMs);
    const answer = await gate({ email }, []);
    record(
      'An NL customer ticks the box at checkout → subscribed in HubSpot with CONSENT_WITH_NOTICE',
      status?.legalBasis === 'CONSENT_WITH_NOTICE' && answer.allowed && answer.reason === 'consent',
      `HubSpot newsletter: ${status ? `${status.status}, ${status.legalBasis}, "${status.legalBasisExplanation ?? ''}"` : 'no status'}\ngate email: ${describe(answer)}`,
    );
  }

  // 2. A DE customer with a single opt-in and no confirmation.
  {
    const email = 'dieter@example.de';
    const customer = shopify.createCustomer(shop, { email, firstName: 'Dieter', country: 'DE' });
    shopify.setEmailMarketing(shop, customer.id, { subscribed: true, optInLevel: 'SINGLE_OPT_IN' });
    const answer = await until(async () => {
      const a = await gate({ email }, []);
      return a.reason === 'double_opt_in_missing' ? a : undefined;
    }, timeoutMs);
    const status = hubspotStatus(email, DEMO_SUBSCRIPTION_TYPES.newsletter);
    record(
      'A DE customer with a single opt-in and no confirmation → blocked for email (double opt-in expected)',
      answer !== undefined && !answer.allowed && status?.status !== 'SUBSCRIBED',
      `gate email: ${answer ? describe(answer) : 'no answer in time'}\nHubSpot newsletter: ${status?.status ?? 'not subscribed (never written while the gate blocks)'}`,
    );
  }

  // 3. An NL customer without consent pays for running shoes.
  const bram = 'bram@example.nl';
  {
    shopify.createOrder(shop, { email: bram, firstName: 'Bram', billingAddress: { country: 'NL' }, lineItems: [{ productId: shoes.id }], acceptsEmailMarketing: false });
    const status = await until(() => {
      const s = hubspotStatus(bram, DEMO_SUBSCRIPTION_TYPES.footwear);
      return s?.status === 'SUBSCRIBED' ? s : undefined;
    }, timeoutMs);
    const footwear = await gate({ email: bram }, ['footwear']);
    const insuranceAnswer = await gate({ email: bram }, ['insurance']);
    const newsletter = hubspotStatus(bram, DEMO_SUBSCRIPTION_TYPES.newsletter);
    record(
      'An NL customer without consent pays for running shoes → soft opt-in for footwear (LEGITIMATE_INTEREST_CLIENT)',
      status?.legalBasis === 'LEGITIMATE_INTEREST_CLIENT' && footwear.allowed && footwear.reason === 'soft_opt_in' && !insuranceAnswer.allowed && newsletter?.status !== 'SUBSCRIBED',
      `HubSpot footwear offers: ${status ? `${status.status}, ${status.legalBasis}` : 'no status'}; newsletter: ${newsletter?.status ?? 'not subscribed'}\n` +
        `gate footwear campaign: ${describe(footwear)}\ngate insurance campaign: ${describe(insuranceAnswer)}`,
    );
  }

  // 4. That customer unsubscribes in HubSpot; the merchant's workflow records it through the app's action.
  {
    const contactId = await until(() => hubspotContactId(bram), timeoutMs);
    const hubspotWritesBefore = hubspot.requests().filter((r) => r.method === 'POST' && r.path.includes('/communication-preferences/')).length;
    hubspot.unsubscribeViaLink(portalId, bram);
    const call = contactId
      ? await hubspot.callWorkflowAction({ portalId, contactId, action: 'record-consent-change', inputFields: { channel: 'email', status: 'NOT_SUBSCRIBED', source: 'preferences_page' }, properties: ['email'] })
      : null;
    const customer = await until(() => {
      const c = shopify.state().shops.find((s) => s.domain === shop)?.customers.find((x) => x.email === bram);
      return c?.emailMarketingConsent.state === 'UNSUBSCRIBED' ? c : undefined;
    }, timeoutMs);
    const answer = await gate({ email: bram }, ['footwear']);
    await sleep(2500); // room for a ping-pong to show, if there were one (the dispatcher polls every second)
    const shopifyWrites = await outboxCount('shopify.consent', bram);
    const hubspotWritesAfter = hubspot.requests().filter((r) => r.method === 'POST' && r.path.includes('/communication-preferences/')).length - hubspotWritesBefore;
    record(
      'The customer unsubscribes in HubSpot → UNSUBSCRIBED in Shopify, gate blocks footwear, no ping-pong write',
      call?.status === 200 && customer !== undefined && !answer.allowed && shopifyWrites === 1 && hubspotWritesAfter === 0,
      `workflow action "Record consent change": HTTP ${call?.status ?? 'not called (no HubSpot contact)'} ${JSON.stringify(call?.body ?? null)}\n` +
        `Shopify email consent: ${customer?.emailMarketingConsent.state ?? 'unchanged'}\ngate footwear campaign: ${describe(answer)}\n` +
        `writes since: ${shopifyWrites} to Shopify, ${hubspotWritesAfter} subscription writes to HubSpot`,
    );
  }

  // 5. A backfill afterwards re-subscribes nobody.
  {
    const subscribingBefore = await outboxCount('hubspot.subscription', bram, ` and o.payload like '%"subscribed":true%'`);
    const shopifySubscribingBefore = await outboxCount('shopify.consent', bram, ` and o.payload like '%"SUBSCRIBED"%'`);
    const { runBackfill } = await import('../src/sync/backfill');
    const { backfillDeps, createPlatformPorts } = await import('../src/main');
    const deps = backfillDeps(sandbox.runtime, createPlatformPorts(sandbox.runtime));
    const outcome = await runBackfill(deps, sandbox.tenant, { restart: true });
    await sleep(2500);
    const subscribingAfter = await outboxCount('hubspot.subscription', bram, ` and o.payload like '%"subscribed":true%'`);
    const shopifySubscribingAfter = await outboxCount('shopify.consent', bram, ` and o.payload like '%"SUBSCRIBED"%'`);
    const answer = await gate({ email: bram }, ['footwear']);
    const customer = shopify.state().shops.find((s) => s.domain === shop)?.customers.find((x) => x.email === bram);
    record(
      'A backfill afterwards re-subscribes nobody',
      subscribingAfter === subscribingBefore && shopifySubscribingAfter === shopifySubscribingBefore && !answer.allowed && customer?.emailMarketingConsent.state === 'UNSUBSCRIBED',
      `backfill: ${JSON.stringify(outcome)}\nsubscribing writes owed: HubSpot ${subscribingAfter - subscribingBefore}, Shopify ${shopifySubscribingAfter - shopifySubscribingBefore}\n` +
        `gate footwear campaign: ${describe(answer)}`,
    );
  }

  // 6. The gate's decisions for everyone, with reasons and evidence.
  {
    const people = ['anna@example.nl', 'dieter@example.de', bram];
    const lines: string[] = [];
    for (const email of people) {
      for (const categories of [['footwear'], ['insurance']]) lines.push(`${email} / ${categories.join(',')}: ${describe(await gate({ email }, categories))}`);
    }
    record('Gate decisions, with reasons and evidence', lines.length === 6, lines.join('\n'));
  }
  return results;
}
