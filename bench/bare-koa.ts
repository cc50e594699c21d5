/**
 * The baseline of `npm run bench:ingest`: a bare Koa app whose one endpoint only answers 200, run as its own
 * process exactly like the real server, so the ratio measures what verification and the durable inbox cost.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import Koa from 'koa';

const app = new Koa();
app.use((ctx) => {
  ctx.status = 200;
  ctx.body = { status: 'accepted' };
});
const server = http.createServer(app.callback());
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`listening on http://127.0.0.1:${(server.address() as AddressInfo).port}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
