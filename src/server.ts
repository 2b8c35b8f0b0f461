// Reads the configuration, builds the app, listens; on SIGTERM/SIGINT drains and exits.
//
// Shutdown sequence (docs/reliability.md): readiness turns 503 and responses carry
// `Connection: close`; for SHUTDOWN_DRAIN_DELAY_MS the replica keeps serving while load balancers
// notice; then the listeners close (new connections are refused, idle keep-alive sockets closed),
// in-flight requests finish, the pool closes, and the process exits 0. Past SHUTDOWN_DEADLINE_MS
// (counted from the signal) it exits 1 whatever is still running; a second signal exits 1 at once.
import closeWithGrace from 'close-with-grace';
import { buildApp } from './app.js';
import { ConfigError, loadConfig, type Config } from './config.js';

let config: Config;
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
const { drainDelayMs, deadlineMs } = config.shutdown;
closeWithGrace(
  {
    delay: deadlineMs,
    logger: { error: (message: unknown) => app.log.error(message) },
    onTimeout: (delay) => app.log.error({ deadlineMs: delay }, 'shutdown deadline passed; exiting with in-flight work abandoned'),
  },
  async ({ signal, err }) => {
    if (err !== undefined) app.log.error({ err }, 'shutting down after an error');
    else app.log.info({ signal, drainDelayMs, deadlineMs }, 'shutting down: readiness now fails');
    // Readiness fails first so a load balancer stops routing here, then in-flight requests finish.
    app.draining = true;
    if (drainDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, drainDelayMs));
    app.log.info('closing listeners; waiting for in-flight requests');
    await app.close();
    app.log.info('shutdown complete');
  },
);

try {
  await app.listen({ host: config.host, port: config.port });
  const metricsPort = await app.listenMetrics(config.metricsHost, config.metricsPort);
  app.log.info(`metrics listening at http://${config.metricsHost}:${metricsPort}/metrics`);
} catch (error) {
  app.log.fatal({ err: error }, 'cannot listen');
  await app.close().catch(() => undefined);
  process.exit(1);
}
