// The only place that reads the environment. Everything else receives a typed, frozen Config.
import { createPublicKey } from 'node:crypto';
import { z } from 'zod';
import { READ_MODELS, type ReadModelName } from './modules/order-items/read-models.js';

export const DEFAULT_DATABASE_URL = 'mysql://root@127.0.0.1:3306/order_items';

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

// Numbers are written in decimal: Number() would also read '' (as 0: PORT= listened on a random
// port), ' 8', '0x10' and '1e3'.
const wholeNumber = z.string().regex(/^\d{1,15}$/, 'must be a whole number in decimal digits').transform(Number);
const decimalNumber = z.string().regex(/^\d{1,15}(?:\.\d{1,15})?$/, 'must be a decimal number such as 0.7').transform(Number);
const port = wholeNumber.pipe(z.number().int().min(0).max(65535));
const positiveInt = (max = Number.MAX_SAFE_INTEGER) => wholeNumber.pipe(z.number().int().positive().max(max));
const optionalText = z
  .string()
  .optional()
  .transform((value) => (value === undefined || value.trim() === '' ? undefined : value));

// An issuer or audience given as blanks, or padded with them, is a mistake: read as unset (as
// empty is) it would silently turn the check off, and padded it matches no token.
const enforcedClaimValue = z
  .string()
  .optional()
  .refine((value) => value === undefined || value === '' || (value.trim() !== '' && value.trim() === value), 'must not be blank nor start or end with white space (leave it empty or unset to not check this claim)')
  .transform((value) => (value === '' ? undefined : value));

/** localhost, 127.0.0.0/8, ::1 and IPv4-mapped 127/8, as the WHATWG URL parser writes hostnames. */
function isLoopbackHost(hostname: string): boolean {
  return (
    hostname === 'localhost' ||
    /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname) ||
    hostname === '[::1]' ||
    /^\[::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}\]$/.test(hostname)
  );
}

// Lower case, no user info, no path: what a browser serializes as an Origin.
const ORIGIN_SHAPE = /^[a-z][a-z0-9+.-]*:\/\/[^/?#\s*@A-Z]+$/;

/**
 * An Origin header's value: scheme://host[:port]. For http(s) it must also be the URL's own
 * origin (lower case, no default port), since browsers send it so. Other schemes (capacitor://,
 * tauri://, chrome-extension://) have an opaque URL origin, and only their shape is checked.
 */
function isExactOrigin(origin: string): boolean {
  if (!ORIGIN_SHAPE.test(origin)) return false;
  if (!/^https?:/.test(origin)) return true;
  try {
    return new URL(origin).origin === origin;
  } catch {
    return false;
  }
}

/** Each allowed origin exactly as a browser sends it: scheme://host[:port], nothing else. */
const corsOrigins = z
  .string()
  .default('')
  .transform((value) => value.split(',').map((origin) => origin.trim()).filter((origin) => origin !== ''))
  .superRefine((origins, ctx) => {
    for (const origin of origins) {
      if (!isExactOrigin(origin)) {
        ctx.addIssue({
          code: 'custom',
          message: `"${origin}" is not an origin as browsers send it: list each as scheme://host[:port] in lower case (no "*", path, trailing slash, user info or default port such as :443)`,
        });
      }
    }
  });

const mysqlUrl = z
  .string()
  .default(DEFAULT_DATABASE_URL)
  .refine((value) => {
    try {
      const url = new URL(value);
      return (url.protocol === 'mysql:' || url.protocol === 'mariadb:') && url.pathname.length > 1;
    } catch {
      return false;
    }
  }, 'must be a mysql://user:password@host:port/database URL');

const envSchema = z
  .object({
    DATABASE_URL: mysqlUrl,
    HOST: z.string().min(1).default('127.0.0.1'),
    PORT: port.default(3000),
    METRICS_HOST: z.string().min(1).default('127.0.0.1'),
    METRICS_PORT: port.default(9464),
    LOG_LEVEL: z.enum(LOG_LEVELS).default('info'),

    JWT_SECRET: optionalText,
    // An env file often holds a PEM on one line with its line breaks written as \n.
    JWT_PUBLIC_KEY: optionalText.transform((pem) =>
      pem !== undefined && !pem.includes('\n') && pem.includes('\\n') ? pem.replaceAll('\\r\\n', '\n').replaceAll('\\n', '\n') : pem,
    ),
    JWT_JWKS_URL: optionalText.pipe(
      z
        .url({ protocol: /^https?$/ })
        // The keys that decide who is who: over plain HTTP anyone on the path could swap them.
        // zod runs a refinement even after z.url() failed: an unparsable value is left to z.url()'s message.
        .refine((url) => !URL.canParse(url) || new URL(url).protocol === 'https:' || isLoopbackHost(new URL(url).hostname), 'must use https (http only for a loopback host)')
        .optional(),
    ),
    // How long a fetched key set is used before it is fetched again: a key the identity provider
    // removes stops being trusted within this time (plus the 60 s a verified token is reused).
    JWT_JWKS_MAX_AGE_SECONDS: positiveInt(86_400).default(300),
    JWT_ISSUER: enforcedClaimValue,
    JWT_AUDIENCE: enforcedClaimValue,
    // A padded claim name matches no claim: every seller token would be refused.
    JWT_TENANT_CLAIM: z
      .string()
      .regex(/^\S+$/, 'must be a claim name, without white space')
      .default('tenant_id'),
    CURSOR_SECRET: optionalText,
    JWT_CLOCK_TOLERANCE_SECONDS: wholeNumber.pipe(z.number().int().min(0).max(30)).default(5),

    // wide: measured faster than star in the list, deep page, order and mixed scenarios, and within
    // the noise of it or faster in get and summary (which both read the daily totals): BENCHMARKS.md.
    READ_MODEL: z.enum(READ_MODELS).default('wide'),
    DB_POOL_SIZE: positiveInt(500).default(10),
    DB_QUERY_TIMEOUT_MS: positiveInt().default(2000),
    // Below the 250 ms latency SLO: a request that cannot get a connection in time is better
    // refused (503, Retry-After) than answered too late for every request queued behind it.
    DB_ACQUIRE_TIMEOUT_MS: positiveInt().default(200),
    // Waiters beyond this many are refused at once (503) instead of queueing.
    DB_QUEUE_LIMIT: positiveInt(100_000).default(100),
    // Must stay under the server's wait_timeout (and any proxy idle cut); checked at startup.
    DB_IDLE_TIMEOUT_MS: positiveInt().default(60_000),

    // Graceful shutdown: readiness fails, then SHUTDOWN_DRAIN_DELAY_MS of normal service while
    // load balancers notice, then in-flight requests finish; past the deadline the process exits 1.
    SHUTDOWN_DRAIN_DELAY_MS: wholeNumber.default(0),
    SHUTDOWN_DEADLINE_MS: positiveInt().default(10_000),
    // Load shedding (503 + Retry-After) when the event loop lags; 0 disables the check.
    LOAD_SHED_MAX_EVENT_LOOP_DELAY_MS: wholeNumber.default(200),
    // CPU use, as a fraction (0-1) of the cores the process may use (its cgroup quota when set),
    // above which requests are shed; 0 disables the check.
    LOAD_SHED_MAX_CPU_UTILIZATION: decimalNumber.pipe(z.number().min(0).max(1)).default(0.7),
    // Requests in progress at once above which new ones are refused; 0 disables the limit.
    LOAD_SHED_MAX_IN_FLIGHT: wholeNumber.default(0),
    LOAD_SHED_RETRY_AFTER_SECONDS: positiveInt(3600).default(2),

    FRESHNESS_CACHE_MS: wholeNumber.default(1000),
    PIPELINE_METRICS_REFRESH_MS: positiveInt().default(15000),
    SLO_FRESHNESS_SECONDS: positiveInt().default(900),

    SUMMARY_MAX_RANGE_DAYS: positiveInt().default(731),
    RATE_LIMIT_MAX: positiveInt().default(600),
    RATE_LIMIT_WINDOW_MS: positiveInt().default(60000),
    CORS_ORIGINS: corsOrigins,
    BODY_LIMIT_BYTES: positiveInt().default(16384),
    REQUEST_TIMEOUT_MS: positiveInt().default(10000),
  })
  .superRefine((env, ctx) => {
    const keys = [env.JWT_SECRET, env.JWT_PUBLIC_KEY, env.JWT_JWKS_URL].filter((k) => k !== undefined);
    if (keys.length !== 1) {
      ctx.addIssue({
        code: 'custom',
        path: ['JWT_SECRET'],
        message: 'set exactly one of JWT_SECRET, JWT_PUBLIC_KEY or JWT_JWKS_URL',
      });
    }
    if (env.JWT_SECRET !== undefined) {
      if (Buffer.byteLength(env.JWT_SECRET, 'utf8') < 32) {
        ctx.addIssue({ code: 'custom', path: ['JWT_SECRET'], message: 'must be at least 32 bytes' });
      }
      // A PEM given as an HMAC secret is the classic algorithm-confusion setup: refuse any PEM
      // armour (SPKI, PKCS#1 "RSA PUBLIC KEY", certificates), wherever it starts in the value.
      if (/-{5}\s*BEGIN[ A-Z0-9]*-{5}/i.test(env.JWT_SECRET)) {
        ctx.addIssue({ code: 'custom', path: ['JWT_SECRET'], message: 'looks like a PEM key; use JWT_PUBLIC_KEY' });
      }
    }
    if (env.CURSOR_SECRET !== undefined && Buffer.byteLength(env.CURSOR_SECRET, 'utf8') < 32) {
      ctx.addIssue({ code: 'custom', path: ['CURSOR_SECRET'], message: 'must be at least 32 bytes' });
    }
    if (env.SHUTDOWN_DEADLINE_MS <= env.SHUTDOWN_DRAIN_DELAY_MS) {
      ctx.addIssue({
        code: 'custom',
        path: ['SHUTDOWN_DEADLINE_MS'],
        message: 'must be greater than SHUTDOWN_DRAIN_DELAY_MS (in-flight requests need time to finish)',
      });
    }
    if (env.JWT_PUBLIC_KEY !== undefined) {
      const problem = publicKeyProblem(env.JWT_PUBLIC_KEY.trim());
      if (problem !== undefined) ctx.addIssue({ code: 'custom', path: ['JWT_PUBLIC_KEY'], message: problem });
    }
  });

/** Why a PEM cannot verify tokens here (the algorithm follows from the key: RS256 or ES256). */
function publicKeyProblem(pem: string): string | undefined {
  const expected = 'must be an SPKI PEM ("-----BEGIN PUBLIC KEY-----") of an RSA or P-256 EC key';
  if (!/^-----BEGIN PUBLIC KEY-----/.test(pem)) return expected;
  let key: ReturnType<typeof createPublicKey>;
  try {
    key = createPublicKey(pem);
  } catch {
    return `${expected}; this one cannot be read (a cut or altered key?)`;
  }
  if (key.asymmetricKeyType === 'rsa') return undefined;
  if (key.asymmetricKeyType === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    return curve === 'prime256v1' || curve === 'P-256' ? undefined : `EC curve ${String(curve)} is not supported (use P-256 for ES256)`;
  }
  return `${String(key.asymmetricKeyType)} keys are not supported: ${expected}`;
}

export type JwtKeyConfig =
  | { kind: 'secret'; secret: string }
  | { kind: 'public-key'; pem: string }
  | { kind: 'jwks'; url: string; maxAgeMs: number };

export interface Config {
  readonly databaseUrl: string;
  readonly host: string;
  readonly port: number;
  readonly metricsHost: string;
  readonly metricsPort: number;
  readonly logLevel: (typeof LOG_LEVELS)[number];
  readonly jwt: {
    readonly key: JwtKeyConfig;
    readonly issuer: string | undefined;
    readonly audience: string | undefined;
    readonly tenantClaim: string;
    readonly clockToleranceSeconds: number;
  };
  /** Where order items are read from: the star schema or the wide table. */
  readonly readModel: ReadModelName;
  readonly db: {
    readonly poolSize: number;
    readonly queryTimeoutMs: number;
    readonly acquireTimeoutMs: number;
    readonly queueLimit: number;
    readonly idleTimeoutMs: number;
  };
  readonly shutdown: { readonly drainDelayMs: number; readonly deadlineMs: number };
  readonly loadShedding: {
    /** 0 = off. */
    readonly maxEventLoopDelayMs: number;
    /** 0 = off. */
    readonly maxCpuUtilization: number;
    /** 0 = off. */
    readonly maxInFlight: number;
    readonly retryAfterSeconds: number;
  };
  /** Signs pagination cursors; undefined means a random key per process (single instance only). */
  readonly cursorSecret: string | undefined;
  readonly freshnessCacheMs: number;
  readonly pipelineMetricsRefreshMs: number;
  readonly sloFreshnessSeconds: number;
  readonly summaryMaxRangeDays: number;
  readonly rateLimit: { readonly max: number; readonly windowMs: number };
  readonly corsOrigins: readonly string[];
  readonly bodyLimitBytes: number;
  readonly requestTimeoutMs: number;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => `  ${issue.path.join('.') || '(env)'}: ${issue.message}`);
    throw new ConfigError(`Invalid configuration:\n${lines.join('\n')}`);
  }
  const e = parsed.data;
  const key: JwtKeyConfig =
    e.JWT_SECRET !== undefined
      ? { kind: 'secret', secret: e.JWT_SECRET }
      : e.JWT_PUBLIC_KEY !== undefined
        ? { kind: 'public-key', pem: e.JWT_PUBLIC_KEY.trim() }
        : { kind: 'jwks', url: e.JWT_JWKS_URL as string, maxAgeMs: e.JWT_JWKS_MAX_AGE_SECONDS * 1000 };
  return deepFreeze({
    databaseUrl: e.DATABASE_URL,
    host: e.HOST,
    port: e.PORT,
    metricsHost: e.METRICS_HOST,
    metricsPort: e.METRICS_PORT,
    logLevel: e.LOG_LEVEL,
    jwt: {
      key,
      issuer: e.JWT_ISSUER,
      audience: e.JWT_AUDIENCE,
      tenantClaim: e.JWT_TENANT_CLAIM,
      clockToleranceSeconds: e.JWT_CLOCK_TOLERANCE_SECONDS,
    },
    readModel: e.READ_MODEL,
    db: {
      poolSize: e.DB_POOL_SIZE,
      queryTimeoutMs: e.DB_QUERY_TIMEOUT_MS,
      acquireTimeoutMs: e.DB_ACQUIRE_TIMEOUT_MS,
      queueLimit: e.DB_QUEUE_LIMIT,
      idleTimeoutMs: e.DB_IDLE_TIMEOUT_MS,
    },
    shutdown: { drainDelayMs: e.SHUTDOWN_DRAIN_DELAY_MS, deadlineMs: e.SHUTDOWN_DEADLINE_MS },
    loadShedding: {
      maxEventLoopDelayMs: e.LOAD_SHED_MAX_EVENT_LOOP_DELAY_MS,
      maxCpuUtilization: e.LOAD_SHED_MAX_CPU_UTILIZATION,
      maxInFlight: e.LOAD_SHED_MAX_IN_FLIGHT,
      retryAfterSeconds: e.LOAD_SHED_RETRY_AFTER_SECONDS,
    },
    cursorSecret: e.CURSOR_SECRET ?? e.JWT_SECRET,
    freshnessCacheMs: e.FRESHNESS_CACHE_MS,
    pipelineMetricsRefreshMs: e.PIPELINE_METRICS_REFRESH_MS,
    sloFreshnessSeconds: e.SLO_FRESHNESS_SECONDS,
    summaryMaxRangeDays: e.SUMMARY_MAX_RANGE_DAYS,
    rateLimit: { max: e.RATE_LIMIT_MAX, windowMs: e.RATE_LIMIT_WINDOW_MS },
    corsOrigins: e.CORS_ORIGINS,
    bodyLimitBytes: e.BODY_LIMIT_BYTES,
    requestTimeoutMs: e.REQUEST_TIMEOUT_MS,
  });
}

/** Database settings alone, for the CLIs (migrate, loader) that need no JWT key. */
export function loadDatabaseUrl(env: Record<string, string | undefined> = process.env): string {
  const parsed = mysqlUrl.safeParse(env.DATABASE_URL);
  if (!parsed.success) {
    throw new ConfigError(`Invalid configuration:\n  DATABASE_URL: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  }
  return parsed.data;
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object') {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}
