// The OpenAPI document as YAML, built from an app that is assembled but never connects or listens.
import { Document, isScalar, visit } from 'yaml';
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
    const document = new Document(app.openapiDocument(), { aliasDuplicateObjects: false });
    // YAML 1.1 loaders (PyYAML, js-yaml's default schema) read an unquoted 2017-09-13T08:59:02Z as
    // a timestamp, not the string the schema says: such values are quoted.
    visit(document, {
      Scalar(_key, node) {
        if (isScalar(node) && typeof node.value === 'string' && /^\d{4}-\d{2}-\d{2}/.test(node.value)) node.type = 'QUOTE_DOUBLE';
      },
    });
    return header + document.toString({ lineWidth: 0 });
  } finally {
    await app.close();
  }
}
