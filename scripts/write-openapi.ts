// Writes openapi.yaml from the route declarations (the single source). `--check` fails when the
// committed file is stale instead of writing it.
import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { renderOpenApiYaml } from '../src/openapi-document.js';
import { parseCommandLine } from '../src/cli/args.js';

const target = fileURLToPath(new URL('../openapi.yaml', import.meta.url));
const rendered = await renderOpenApiYaml();
const { values } = parseCommandLine(
  'npm run openapi --',
  { options: { check: { type: 'boolean' } } },
  'writes openapi.yaml from the route declarations; --check only says whether the committed one is stale (exit 1)',
);
if (values.check === true) {
  const committed = await readFile(target, 'utf8').catch(() => '');
  if (committed !== rendered) {
    console.error('openapi.yaml is stale: run `npm run openapi` and commit the result');
    process.exitCode = 1;
  }
} else {
  await writeFile(target, rendered);
  console.error(`wrote ${target}`);
}
