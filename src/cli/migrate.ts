import { loadDatabaseUrl } from '../config.js';
import { parseCommandLine } from './args.js';
import { databaseName } from '../db/client.js';
import { migrateDatabase } from '../db/migrate.js';

parseCommandLine(
  'npm run db:migrate',
  { options: {} },
  'creates the database named in DATABASE_URL if missing and applies the drizzle/ migrations (idempotent)',
);

try {
  const databaseUrl = loadDatabaseUrl();
  await migrateDatabase(databaseUrl);
  console.error(`migrations applied to database ${databaseName(databaseUrl)}`);
} catch (error) {
  console.error(`migration failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
}
