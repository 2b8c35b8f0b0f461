// The OpenAPI document as YAML, built from an app that is assembled but never connects or listens.
import { stringify } from 'yaml';
import { buildApp } from './app.js';
import { loadConfig } from './config.js';

export async function renderOpenApiYaml(): Promise<string> {
  const app = await buildApp(
    loadConfig({
      DATABASE_URL: 'mysql://openapi@127.0.0.1:1/openapi',
      JWT_SECRET: 'openapi-document-only-secret-0123456789abcdef',
      LOG_LEVEL: 'silent',
    }),
  );
  try {
    const header = '# Generated from the route declarations by `npm run openapi`; do not edit by hand.\n';
    return header + stringify(app.openapiDocument(), { lineWidth: 0, aliasDuplicateObjects: false });
  } finally {
    await app.close();
  }
}
