// Creates (or updates) the two MySQL/MariaDB accounts of the service with least privilege:
//   order_items_api     SELECT on the serving tables; INSERT, UPDATE on etl_batch and
//                       etl_batch_stage only (the API records its own "api" stage, and the
//                       PUT /v1/pipeline/... route creates batches and writes stage reports);
//                       SELECT on __drizzle_migrations (readiness). No DELETE, no DDL,
//                       nothing on other schemas.
//   order_items_loader  SELECT, INSERT, UPDATE, DELETE on the tables it loads. No DDL:
//                       migrations run with the admin account.
// Usage: DATABASE_URL=mysql://admin@host:3306/order_items API_DB_PASSWORD=... LOADER_DB_PASSWORD=... \
//        npx tsx scripts/create-db-users.ts
// Optional: DB_USER_HOST (default '%'), API_DB_USER, LOADER_DB_USER (default names above).
// Idempotent: it resets each account's password and replaces its grants with exactly these.
// An account is one deployment's: the script refuses (and changes no existing account) when an
// account already holds privileges on another database or server-wide ones, or when this admin
// cannot read an existing account's grants, since resetting its password and grants would break
// whatever uses it there. Give each deployment its own API_DB_USER/LOADER_DB_USER.
import { fileURLToPath } from 'node:url';
import mysql from 'mysql2/promise';
import { databaseName, poolOptions } from '../src/db/client.js';
import { parseCommandLine } from '../src/cli/args.js';

export const SERVING_TABLES = [
  'fact_order_item',
  'fact_order',
  'dim_product',
  'dim_customer',
  'dim_seller',
  'dim_date',
  'dim_category_translation',
  'etl_batch',
  'etl_batch_stage',
  'order_item_wide',
  'order_item_daily_summary',
  // The summary reads the days a batch has not recomputed yet from the items.
  'order_item_summary_mark',
] as const;
export const API_WRITE_TABLES = ['etl_batch', 'etl_batch_stage'] as const;
export const LOADER_TABLES = [...SERVING_TABLES, 'etl_rejected_row'] as const;
/** Read-only for both: the API is not ready, and a load refuses, on a database this version has not migrated. */
export const MIGRATION_TABLES = ['__drizzle_migrations'] as const;

export interface DbUsersOptions {
  adminUrl: string;
  apiPassword: string;
  loaderPassword: string;
  host?: string;
  apiUser?: string;
  loaderUser?: string;
}

const ACCOUNT_NAME = /^[A-Za-z0-9_]{1,32}$/;
const HOST = /^[A-Za-z0-9_.%:-]{1,255}$/;

export async function createDbUsers(options: DbUsersOptions): Promise<{ apiUser: string; loaderUser: string; host: string }> {
  const database = databaseName(options.adminUrl);
  const host = options.host ?? '%';
  const apiUser = options.apiUser ?? 'order_items_api';
  const loaderUser = options.loaderUser ?? 'order_items_loader';
  for (const user of [apiUser, loaderUser]) if (!ACCOUNT_NAME.test(user)) throw new Error(`invalid account name ${user}`);
  if (!HOST.test(host)) throw new Error(`invalid host ${host}`);
  for (const [name, password] of [['API_DB_PASSWORD', options.apiPassword], ['LOADER_DB_PASSWORD', options.loaderPassword]] as const) {
    if (password.length < 16) throw new Error(`${name} must be at least 16 characters`);
  }
  const { host: serverHost, port, user, password } = poolOptions(options.adminUrl);
  const connection = await mysql.createConnection({ host: serverHost, port, user, password, database, multipleStatements: false });
  // Identifiers cannot be bound: the database name is validated by databaseName(), the tables
  // come from the constant lists above; account names, host and passwords are escaped values.
  const on = (table: string): string => `\`${database}\`.\`${table}\``;
  try {
    await checkAccountsAreThisDatabases(connection, host, database, [
      [apiUser, options.apiPassword],
      [loaderUser, options.loaderPassword],
    ]);
    const accounts: [string, string, string, [string, readonly string[]][]][] = [
      [apiUser, options.apiPassword, 'api', [['SELECT', [...SERVING_TABLES, ...MIGRATION_TABLES]], ['INSERT, UPDATE', API_WRITE_TABLES]]],
      [loaderUser, options.loaderPassword, 'loader', [['SELECT, INSERT, UPDATE, DELETE', LOADER_TABLES], ['SELECT', MIGRATION_TABLES]]],
    ];
    for (const [account, secret, , grants] of accounts) {
      await connection.query('CREATE USER IF NOT EXISTS ?@? IDENTIFIED BY ?', [account, host, secret]);
      await connection.query('ALTER USER ?@? IDENTIFIED BY ?', [account, host, secret]);
      // Start from nothing so a rerun removes any privilege granted by hand since.
      await connection.query('REVOKE ALL PRIVILEGES, GRANT OPTION FROM ?@?', [account, host]);
      for (const [privileges, tables] of grants) {
        for (const table of tables) await connection.query(`GRANT ${privileges} ON ${on(table)} TO ?@?`, [account, host]);
      }
      // The loader stages each chunk's keys in a session-private MEMORY table for its lookups.
      if (account === loaderUser) await connection.query(`GRANT CREATE TEMPORARY TABLES ON \`${database}\`.* TO ?@?`, [account, host]);
    }
    return { apiUser, loaderUser, host };
  } finally {
    await connection.end();
  }
}

const GRANT_LINE = /^GRANT (.+?) ON (?:(?:PROCEDURE|FUNCTION|PACKAGE(?: BODY)?) )?(\*|`(?:[^`]|``)*`)\.(?:\*|`(?:[^`]|``)*`) TO /;

type AccountState = { kind: 'absent' } | { kind: 'ours' } | { kind: 'unreadable' } | { kind: 'elsewhere'; why: string };

/**
 * What an account holds, from SHOW GRANTS FOR: nothing yet (absent), privileges on `database` only
 * (ours), or something else: privileges on another database or server-wide, a role, a PROXY grant
 * (anything this script would revoke or leave behind without knowing whom it serves).
 */
async function accountState(connection: mysql.Connection, account: string, host: string, database: string): Promise<AccountState> {
  let lines: string[];
  try {
    const [rows] = await connection.query<mysql.RowDataPacket[]>('SHOW GRANTS FOR ?@?', [account, host]);
    lines = rows.map((row) => String(Object.values(row)[0]));
  } catch (error) {
    // 1141: no such account. Anything else: this admin may not read it (no SELECT on `mysql`).
    return (error as { errno?: number }).errno === 1141 ? { kind: 'absent' } : { kind: 'unreadable' };
  }
  const elsewhere = new Set<string>();
  for (const line of lines) {
    const match = GRANT_LINE.exec(line);
    if (match === null) return { kind: 'elsewhere', why: `holds a grant this script does not manage (${line.replace(/ IDENTIFIED BY .*$/, '')})` };
    const [, privileges = '', target = ''] = match;
    if (target === '*') {
      if (privileges.trim().toUpperCase() !== 'USAGE') return { kind: 'elsewhere', why: `holds server-wide privileges (${privileges.trim()} ON *.*)` };
      continue;
    }
    // A grant names a database as a pattern: \_ and \% are the literal characters.
    const schema = target.slice(1, -1).replaceAll('``', '`').replace(/\\([_%\\])/g, '$1');
    if (schema !== database) elsewhere.add(schema);
  }
  if (elsewhere.size > 0) return { kind: 'elsewhere', why: `also has privileges on ${[...elsewhere].sort().map((name) => `\`${name}\``).join(', ')}` };
  return { kind: 'ours' };
}

/**
 * Refuses (throws) before changing anything when an account exists and holds anything beyond
 * `database` (see accountState). An admin without SELECT on the `mysql` database cannot read the
 * grants: an account it can create did not exist and holds nothing; when one of them exists, the
 * accounts this call created are dropped again and the call is refused.
 */
async function checkAccountsAreThisDatabases(
  connection: mysql.Connection,
  host: string,
  database: string,
  accounts: readonly (readonly [account: string, secret: string])[],
): Promise<void> {
  const refuse = (account: string, why: string): never => {
    throw new Error(
      `account ${account}@${host} ${why}: resetting its password and grants would break whatever uses it there; no existing account was changed. ` +
        `Give this database its own accounts (API_DB_USER, LOADER_DB_USER).`,
    );
  };
  const unreadable: (readonly [string, string])[] = [];
  for (const [account, secret] of accounts) {
    const state = await accountState(connection, account, host, database);
    if (state.kind === 'elsewhere') refuse(account, state.why);
    if (state.kind === 'unreadable') unreadable.push([account, secret]);
  }
  const created: string[] = [];
  for (const [account, secret] of unreadable) {
    try {
      await connection.query('CREATE USER ?@? IDENTIFIED BY ?', [account, host, secret]);
      created.push(account);
    } catch (error) {
      for (const done of created) await connection.query('DROP USER ?@?', [done, host]);
      // 1396: it exists, and this admin cannot see what it holds.
      if ((error as { errno?: number }).errno === 1396) {
        refuse(account, 'exists, and this admin account cannot read its grants (SHOW GRANTS FOR needs SELECT on the mysql database) to check that it holds nothing elsewhere');
      }
      throw error;
    }
  }
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  parseCommandLine(
    'npx tsx scripts/create-db-users.ts',
    { options: {} },
    'creates or updates the API and loader accounts with least privilege (docs/security.md). Environment: DATABASE_URL (an admin account), API_DB_PASSWORD, LOADER_DB_PASSWORD (16+ characters); optional DB_USER_HOST, API_DB_USER, LOADER_DB_USER',
  );
  const env = process.env;
  const missing = ['DATABASE_URL', 'API_DB_PASSWORD', 'LOADER_DB_PASSWORD'].filter((name) => (env[name] ?? '') === '');
  if (missing.length > 0) {
    console.error(`missing ${missing.join(', ')}`);
    process.exit(1);
  }
  try {
    const result = await createDbUsers({
      adminUrl: env.DATABASE_URL as string,
      apiPassword: env.API_DB_PASSWORD as string,
      loaderPassword: env.LOADER_DB_PASSWORD as string,
      ...(env.DB_USER_HOST ? { host: env.DB_USER_HOST } : {}),
      ...(env.API_DB_USER ? { apiUser: env.API_DB_USER } : {}),
      ...(env.LOADER_DB_USER ? { loaderUser: env.LOADER_DB_USER } : {}),
    });
    console.log(`accounts ready: '${result.apiUser}'@'${result.host}', '${result.loaderUser}'@'${result.host}' on ${databaseName(env.DATABASE_URL as string)}`);
  } catch (error) {
    // A refusal says why in one line; a stack trace adds nothing for the operator.
    console.error(`error: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  }
}
