// Load shedding at the door. Under overload the cost of refusing a request decides whether the
// server survives: at 4x its capacity a server whose 503 costs a quarter of a real answer spends
// all its CPU refusing. Refusing through Fastify (routing, request logger, hooks, error handler,
// problem serializer) cost ~115 µs per 503 here against ~470 µs per answer; a pre-built 503
// written from the raw `http` handler costs ~18 µs (BENCHMARKS.md, "Overload"). So the gate
// wraps the HTTP server's request handler and answers before Fastify sees the request.
//
// What to admit is an AIMD controller fed by samples: while the loop lags (mean delay over its
// limit) or the process uses more CPU than its limit allows, the admitted fraction shrinks in proportion to the
// excess; once the loop is quiet again it grows back step by step. Refusing a fraction, rather
// than everything for a whole sample, keeps the server busy at what it can do without the
// all-or-nothing oscillation that lets a backlog build between samples.
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { corsHeadersFor } from './cors-headers.js';
import { CpuUsageMeter } from './cpu-budget.js';
import { PROBLEM_CONTENT_TYPE, problemBody } from './problem.js';
import { REQUEST_ID_HEADER, requestIdOf } from './request-id.js';

export const PRESSURE_SIGNALS = ['eventLoopDelay', 'cpu', 'inFlight', 'dbQueue'] as const;
export type PressureSignal = (typeof PRESSURE_SIGNALS)[number];

export interface PressureLimits {
  /** Mean event-loop delay over a sample above which requests are shed; 0 = not checked. */
  maxEventLoopDelayMs: number;
  /**
   * CPU used over a sample, as a fraction of the cores this process may use (its cgroup quota
   * when set), above which requests are shed; 0 = not checked. Event-loop utilisation would be the
   * obvious signal but reads low under a CPU quota: time spent throttled inside epoll counts as idle.
   */
  maxCpuUtilization: number;
  /** Requests being answered at once above which new ones are refused; 0 = no limit. */
  maxInFlight: number;
  retryAfterSeconds: number;
  /** Origins allowed by CORS: a refused browser request must still be readable by its page. */
  corsOrigins: readonly string[];
  /** The headers CORS exposes to an allowed origin's scripts (Retry-After among them). */
  corsExposedHeaders?: readonly string[];
  /** The headers every response carries (security headers, Cache-Control), refusals included. */
  responseHeaders?: Readonly<Record<string, string>>;
}

/** Never refused: an overloaded replica is alive, and its readiness is the balancer's business. */
const NEVER_SHED = ['/healthz', '/readyz'];
const SAMPLE_INTERVAL_MS = 100;

/** The health routes as the router matches them: a trailing slash and a query string included. */
function isHealthRoute(url: string | undefined): boolean {
  if (url === undefined) return false;
  const query = url.indexOf('?');
  let path = query === -1 ? url : url.slice(0, query);
  // The router decodes the path (/%68ealthz is /healthz): so does this check.
  if (path.includes('%')) {
    try {
      path = decodeURIComponent(path);
    } catch {
      return false;
    }
  }
  return NEVER_SHED.some((health) => path === health || path === `${health}/`);
}
const HISTOGRAM_RESOLUTION_MS = 10;
/** Admitted fraction regained per quiet sample: full service one second after the loop calms. */
const ADMISSION_STEP_UP = 0.1;
/** Below this the gate refuses everything: a trickle admitted into a stalled loop only waits. */
const ADMISSION_FLOOR = 0.02;
/** The process's own CPU over a sample (share of a core) below which its loop's lag is not its own. */
const MIN_OWN_CPU_SHARE_FOR_LAG = 0.5;

export class PressureGate {
  /** Fraction of requests admitted, 0–1. */
  private admitted = 1;
  private inFlight = 0;
  private signal: PressureSignal | undefined;
  private histogram: IntervalHistogram | undefined;
  private timer: NodeJS.Timeout | undefined;
  private cpu: CpuUsageMeter | undefined;
  private readonly body: string;
  private readonly enabled: boolean;
  /** Called once per refused request, with the signal that caused the refusal. */
  onShed: (signal: PressureSignal) => void = () => undefined;
  /**
   * Whether the database pool's wait queue is full: a request admitted now would be refused by
   * the pool anyway, after routing, authentication and the rest, which under overload is CPU the
   * admitted requests need. Set by the app once its database exists.
   */
  databaseQueueFull: () => boolean = () => false;

  constructor(private readonly limits: PressureLimits) {
    this.enabled = limits.maxEventLoopDelayMs > 0 || limits.maxCpuUtilization > 0;
    // The same document the errors plugin writes for a 503 (RFC 9457), built once.
    this.body = JSON.stringify(
      problemBody('unavailable', 503, 'the service is overloaded; retry after the delay in Retry-After'),
    );
  }

  get admittedFraction(): number {
    return this.admitted;
  }

  /** Starts sampling. Called once the app is ready: samples taken while it builds say nothing. */
  start(): void {
    if (!this.enabled || this.timer !== undefined) return;
    this.histogram = monitorEventLoopDelay({ resolution: HISTOGRAM_RESOLUTION_MS });
    this.histogram.enable();
    this.cpu = new CpuUsageMeter();
    this.timer = setInterval(() => this.sample(), SAMPLE_INTERVAL_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    this.histogram?.disable();
    this.histogram = undefined;
    this.cpu = undefined;
    this.admitted = 1;
  }

  /** One control step; public so that a test can drive it without waiting for the timer. */
  sample(): void {
    const histogram = this.histogram;
    if (histogram === undefined) return;
    // A mean with no samples is NaN: the loop was too busy to record any, the worst case.
    const mean = histogram.count === 0 ? Number.POSITIVE_INFINITY : histogram.mean / 1e6;
    const delayMs = Math.max(0, mean - HISTOGRAM_RESOLUTION_MS);
    histogram.reset();
    const cpu = this.cpu?.utilization() ?? 0;
    // The loop lags because of this process's own work only if the process worked: a loop that
    // lags while the process sits nearly idle waits for a CPU other processes hold (a busy
    // machine), and refusing requests frees nothing (an audit on a machine at load 8 saw 44 % of
    // a lone client's requests refused). A share of one core, or of the quota when it is less.
    const cores = this.cpu?.availableCores ?? 1;
    const ownShare = (cpu * cores) / Math.min(1, cores);
    const lagIsOwn = ownShare >= MIN_OWN_CPU_SHARE_FOR_LAG;

    const { maxEventLoopDelayMs, maxCpuUtilization } = this.limits;
    const delayExcess = maxEventLoopDelayMs > 0 && lagIsOwn && delayMs > maxEventLoopDelayMs ? maxEventLoopDelayMs / delayMs : 1;
    const cpuExcess = maxCpuUtilization > 0 && cpu > maxCpuUtilization ? maxCpuUtilization / cpu : 1;
    if (delayExcess < 1 || cpuExcess < 1) {
      this.signal = delayExcess <= cpuExcess ? 'eventLoopDelay' : 'cpu';
      // Shrink by the excess (a loop twice over its limit admits at most half), and always by some.
      const next = this.admitted * Math.min(0.9, delayExcess, cpuExcess);
      this.admitted = next < ADMISSION_FLOOR ? 0 : next;
    } else {
      this.admitted = Math.min(1, this.admitted + ADMISSION_STEP_UP);
    }
  }

  /** Wraps the HTTP server's handler: refused requests never reach Fastify. */
  guard(handler: RequestListener): RequestListener {
    return (request, response) => {
      const limit = this.limits.maxInFlight;
      const refusal: PressureSignal | undefined =
        limit > 0 && this.inFlight >= limit
          ? 'inFlight'
          : !this.admits()
            ? (this.signal ?? 'eventLoopDelay')
            : this.databaseQueueFull()
              ? 'dbQueue'
              : undefined;
      if (refusal !== undefined && !isHealthRoute(request.url)) {
        this.refuse(request, response, refusal);
        return;
      }
      if (limit > 0) {
        this.inFlight += 1;
        // The response's 'close' comes once it is answered or its connection dies, except for a
        // response queued behind another on a connection that dies (pipelining): then only the
        // request closes. Either frees the slot, once.
        let released = false;
        const release = (): void => {
          if (released) return;
          released = true;
          this.inFlight -= 1;
        };
        response.once('close', release);
        request.once('close', release);
      }
      handler(request, response);
    };
  }

  private admits(): boolean {
    if (this.admitted >= 1) return true;
    return this.admitted > 0 && Math.random() < this.admitted;
  }

  private refuse(request: IncomingMessage, response: ServerResponse, signal: PressureSignal): void {
    this.onShed(signal);
    const headers: Record<string, string | number> = {
      ...this.limits.responseHeaders,
      'content-type': `${PROBLEM_CONTENT_TYPE}; charset=utf-8`,
      'content-length': Buffer.byteLength(this.body),
      'retry-after': String(this.limits.retryAfterSeconds),
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      // Fastify never sees this request: the id is made here, by the same rule as genReqId.
      [REQUEST_ID_HEADER]: requestIdOf(request),
    };
    Object.assign(headers, corsHeadersFor(request.headers.origin, this.limits.corsOrigins, this.limits.corsExposedHeaders ?? []));
    // The request body (if any) is not read: ask the client to close rather than parse it.
    if (request.headers['content-length'] !== undefined || request.headers['transfer-encoding'] !== undefined) {
      headers.connection = 'close';
    }
    response.writeHead(503, headers);
    response.end(this.body);
  }
}
