// Drops test databases that an interrupted run left behind hours ago, so the server does not
// fill up; recent ones may belong to a run still going on beside this one.
import mysql from 'mysql2/promise';
import { SERVER_URL } from './database.js';

export default async function setup(): Promise<void> {
  const admin = await mysql.createConnection({ uri: SERVER_URL });
  try {
    const [rows] = await admin.query<mysql.RowDataPacket[]>(
      `SELECT TABLE_SCHEMA AS name FROM information_schema.TABLES
        WHERE TABLE_SCHEMA LIKE 'oi\\_test\\_%' AND TABLE_NAME = '__drizzle_migrations'
          AND CREATE_TIME < NOW() - INTERVAL 2 HOUR`,
    );
    for (const row of rows) {
      await admin.query(`DROP DATABASE IF EXISTS \`${String(row.name)}\``);
    }
  } finally {
    await admin.end();
  }
}
