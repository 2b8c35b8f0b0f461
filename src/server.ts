// Reads the configuration, builds the app, listens; on SIGTERM/SIGINT drains and exits.
import closeWithGrace from 'close-with-grace';
import { buildApp } from './app.js';
import { ConfigError, loadConfig } from './config.js';

const SHUTDOWN_DEADLINE_MS = 10_000;
const DRAIN_DELAY_MS = Number(process.env.SHUTDOWN_DRAIN_DELAY_MS ?? 0);

let config;
try {
  config = loadConfig();
} catch (error) {
  if (error instanceof ConfigError) {
    console.error(error.message);
    process.exit(1);
  }
  throw error;
}

const app = await buildApp(config);
closeWithGrace({ delay: SHUTDOWN_DEADLINE_MS }, async ({ signal, err }) => {
  if (err !== undefined) app.log.error({ err }, 'shutting down after an error');
  else app.log.info({ signal }, 'shutting down');
  // Readiness fails first so a load balancer stops routing here, then in-flight requests finish.
  app.draining = true;
  if (DRAIN_DELAY_MS > 0) await new Promise((resolve) => setTimeout(resolve, DRAIN_DELAY_MS));
  await app.close();
});

await app.listen({ host: config.host, port: config.port });
const metricsPort = await app.listenMetrics(config.metricsHost, config.metricsPort);
app.log.info(`metrics listening at http://${config.metricsHost}:${metricsPort}/metrics`);
