// `npm audit --omit=dev` for CI: fails on any high or critical advisory. When the registry's
// audit service cannot be reached (some networks answer its POST with 405), it says so loudly
// and does not fail the build, since no finding was reported either way.
import { spawnSync } from 'node:child_process';

const run = spawnSync('npm', ['audit', '--omit=dev', '--json'], { encoding: 'utf8' });
let report: { metadata?: { vulnerabilities?: Record<string, number> }; vulnerabilities?: Record<string, { severity: string }>; message?: string; statusCode?: number };
try {
  report = JSON.parse(run.stdout) as typeof report;
} catch {
  console.error(`npm audit gave no JSON report (exit ${run.status}):\n${run.stderr}`);
  process.exit(1);
}
const counts = report.metadata?.vulnerabilities;
if (counts === undefined) {
  console.error(`WARNING: npm audit could not query the advisory service (${report.statusCode ?? '?'} ${report.message ?? ''}); no audit result.`);
  process.exit(0);
}
const serious = Object.entries(report.vulnerabilities ?? {}).filter(([, v]) => v.severity === 'high' || v.severity === 'critical');
console.error(`npm audit --omit=dev: ${JSON.stringify(counts)}`);
if (serious.length > 0) {
  console.error(`high or critical advisories in production dependencies: ${serious.map(([name, v]) => `${name} (${v.severity})`).join(', ')}`);
  process.exit(1);
}
