import { loadDatabaseUrl } from '../config.js';
import { databaseName } from '../db/client.js';
import { migrateDatabase } from '../db/migrate.js';

try {
  const databaseUrl = loadDatabaseUrl();
  await migrateDatabase(databaseUrl);
  console.error(`migrations applied to database ${databaseName(databaseUrl)}`);
} catch (error) {
  console.error(`migration failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
}
