// Requests Node's HTTP parser refuses before Fastify sees them (Fastify's clientErrorHandler):
// written on a raw socket, since no HTTP client sends them. The answer must be a complete HTTP/1.1
// problem+json response that closes the connection, with the headers of every other response.
import net from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTestApp, GENERATED_REQUEST_ID, STANDARD_RESPONSE_HEADERS } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { SELLERS, seedMarketplace } from '../helpers/fixtures.js';
import { mintToken } from '../helpers/tokens.js';
import { auth, http, listen, logCapture, PROBLEM } from './support.js';

const UUID = GENERATED_REQUEST_ID;

let db: TestDatabase;
let app: FastifyInstance;
let base: string;
let port: number;

beforeAll(async () => {
  db = await createTestDatabase('sec_client_errors');
  await seedMarketplace(db.pool, 4);
  app = await buildTestApp(db.url);
  base = await listen(app);
  port = Number(new URL(base).port);
});
afterAll(async () => {
  await app?.close();
  await db?.drop();
});

interface RawResponse {
  statusLine: string;
  status: number;
  headers: Map<string, string>;
  /** The body as the response framed it (Content-Length bytes). */
  body: string;
  /** Whatever arrived after those bytes: must be nothing. */
  trailing: string;
  /** The server closed the connection. */
  closed: boolean;
}

/** Writes `raw` on a fresh connection and reads until the server closes it. */
function exchange(raw: string | Buffer, toPort = port): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(toPort, '127.0.0.1');
    const chunks: Buffer[] = [];
    let closed = false;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no close after ${Buffer.concat(chunks).toString('latin1')}`));
    }, 5_000);
    socket.on('connect', () => socket.write(raw));
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    // A reset after the answer (unread request bytes) still delivered the answer.
    socket.on('error', () => undefined);
    socket.on('close', () => {
      closed = true;
      clearTimeout(timer);
      const data = Buffer.concat(chunks);
      const split = data.indexOf('\r\n\r\n');
      if (split === -1) {
        reject(new Error(`no complete response head: ${JSON.stringify(data.toString('latin1'))}`));
        return;
      }
      const [statusLine = '', ...lines] = data.subarray(0, split).toString('latin1').split('\r\n');
      const headers = new Map<string, string>();
      for (const line of lines) {
        const colon = line.indexOf(':');
        headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
      }
      const length = Number(headers.get('content-length'));
      const rest = data.subarray(split + 4);
      resolve({
        statusLine,
        status: Number(statusLine.split(' ')[1]),
        headers,
        body: rest.subarray(0, length).toString('utf8'),
        trailing: rest.subarray(length).toString('latin1'),
        closed,
      });
    });
  });
}

/** Everything the server sends on a fresh connection for `raw`, until it closes. */
function rawText(raw: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(raw));
    let data = '';
    socket.on('data', (chunk: Buffer) => (data += chunk.toString('latin1')));
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(data));
    setTimeout(() => reject(new Error(`no close: ${data}`)), 5_000).unref();
  });
}

/** The headers a routed response carries, from a real request. */
async function routedHeaders(): Promise<Headers> {
  const routed = await http(`${base}/v1/order-items?limit=1`, { headers: auth(mintToken({ sellerId: SELLERS.alpha })) });
  expect(routed.status).toBe(200);
  return routed.headers;
}

function expectProblemResponse(response: RawResponse, status: number, slug: string, routed: Headers): void {
  expect(response.statusLine).toMatch(new RegExp(`^HTTP/1\\.1 ${status} [A-Za-z]`));
  expect(response.status).toBe(status);
  expect(response.headers.get('content-type')).toMatch(new RegExp(`^${PROBLEM.replace('+', '\\+')}`));
  expect(response.headers.get('connection')).toBe('close');
  // Content-Length is exact: the declared bytes are the whole JSON document and nothing follows.
  expect(Number(response.headers.get('content-length'))).toBe(Buffer.byteLength(response.body));
  expect(response.trailing).toBe('');
  expect(response.closed).toBe(true);
  expect(JSON.parse(response.body)).toEqual({
    type: `https://order-items-api.dev/problems/${slug}`,
    title: expect.any(String),
    status,
    detail: expect.any(String),
  });
  expect(response.body).not.toMatch(/Client Error|"error"|"message"/);
  expect(response.headers.get('x-request-id')).toMatch(UUID);
  for (const name of STANDARD_RESPONSE_HEADERS) {
    expect(response.headers.get(name), name).toBe(routed.get(name));
  }
  expect(response.headers.get('cache-control')).toBe('no-store');
}

describe('requests the HTTP parser refuses → problem+json on the socket, then close', () => {
  it.each([
    ['a malformed header line', 'GET /v1/order-items HTTP/1.1\r\nHost: x\r\nthis is not a header\r\n\r\n'],
    ['Content-Length together with Transfer-Encoding', 'POST /v1/order-items HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
    ['an invalid method', 'FOO /v1/order-items HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['a space in the header name', 'GET / HTTP/1.1\r\nHost: x\r\nBad Name: y\r\n\r\n'],
    ['an invalid HTTP version', 'GET / HTTP/9.9\r\nHost: x\r\n\r\n'],
    ['a bare CR inside a header value', 'GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n'],
  ])('%s → 400', async (_name, raw) => {
    const routed = await routedHeaders();
    expectProblemResponse(await exchange(raw), 400, 'invalid-request', routed);
  });

  it('an HTTP/1.1 request without a Host header → 400 (not Node\'s empty one)', async () => {
    const routed = await routedHeaders();
    expectProblemResponse(await exchange('GET /healthz HTTP/1.1\r\n\r\n'), 400, 'invalid-request', routed);
  });

  it('two Host headers → 400 (RFC 9112 §3.2), whatever the HTTP version', async () => {
    const routed = await routedHeaders();
    expectProblemResponse(await exchange('GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n'), 400, 'invalid-request', routed);
    expectProblemResponse(await exchange('GET /healthz HTTP/1.0\r\nHost: a\r\nhost: a\r\n\r\n'), 400, 'invalid-request', routed);
  });

  it('more header fields than a request may carry → 431, so that no second Authorization or Host hides past the ones Node keeps', async () => {
    const routed = await routedHeaders();
    const [alpha, beta] = [mintToken({ sellerId: SELLERS.alpha }), mintToken({ sellerId: SELLERS.beta })];
    const filler = (n: number): string => 'a:\r\n'.repeat(n);
    const hidden = await exchange(`GET /v1/order-items?limit=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${alpha}\r\n${filler(2500)}Authorization: Bearer ${beta}\r\n\r\n`);
    expectProblemResponse(hidden, 431, 'headers-too-large', routed);
    expectProblemResponse(await exchange(`GET /healthz HTTP/1.1\r\nHost: x\r\n${filler(200)}\r\n`), 431, 'headers-too-large', routed);
    // 200 fields in all is still a request.
    expect(await rawText(`GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${filler(198)}\r\n`)).toMatch(/^HTTP\/1\.1 200 /);
  });

  it('an Expect other than 100-continue → 417 (not Node\'s empty one); 100-continue is still met', async () => {
    const routed = await routedHeaders();
    const token = mintToken({ sellerId: SELLERS.alpha });
    const response = await exchange(`GET /v1/order-items?limit=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nExpect: nonsense\r\n\r\n`);
    expectProblemResponse(response, 417, 'expectation-failed', routed);
    // fetch refuses to send Expect: the interim 100 then the answer, read off the socket.
    const continued = await rawText(`GET /healthz HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`);
    expect(continued).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 OK\r\n/);
  });

  it('CONNECT is routed like any method a path does not serve: 405 with Allow, or 404; then the connection closes', async () => {
    const routed = await routedHeaders();
    const known = await exchange('CONNECT /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    expectProblemResponse(known, 405, 'method-not-allowed', routed);
    expect(known.headers.get('allow')).toBe('GET, HEAD');
    // The authority form a proxy client sends is not a path at all.
    const authority = await exchange('CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n');
    expectProblemResponse(authority, 400, 'invalid-request', routed);
    expect(JSON.parse(authority.body)).toMatchObject({ detail: expect.stringContaining('not a valid path') });
  });

  it('a body that stops short of its Content-Length → 408 at REQUEST_TIMEOUT_MS, through the request already routed', async () => {
    const routed = await routedHeaders();
    const slow = await buildTestApp(db.url, { REQUEST_TIMEOUT_MS: '1000' });
    try {
      const slowPort = Number(new URL(await listen(slow)).port);
      const writer = mintToken({ scope: 'pipeline:write' });
      const head = `PUT /v1/pipeline/batches/short-body/stages/landing HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${writer}\r\nContent-Type: application/json\r\n`;
      const response = await exchange(`${head}Content-Length: 100\r\n\r\n{"status":`, slowPort);
      expectProblemResponse(response, 408, 'request-timeout', routed);
    } finally {
      await slow.close();
    }
  });

  it('a valid request pipelined before a malformed one never gets the malformed one\'s 400 as its answer', async () => {
    for (const broken of ['GET / HTTP/1.1\r\nBad Header Line\r\n\r\n', 'FOO / HTTP/1.1\r\nHost: x\r\n\r\n']) {
      const data = await rawText(`GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n${broken}`);
      // Its own 200 (answered before the parser reached the next bytes), or nothing: a client
      // retries an idempotent request on a closed connection, but cannot tell a foreign answer.
      expect(data === '' || data.startsWith('HTTP/1.1 200 '), JSON.stringify(data.slice(0, 40))).toBe(true);
    }
  });

  it('a CONNECT pipelined behind a request still being answered does not bring the server down; that request keeps its answer', async () => {
    for (let n = 0; n < 5; n += 1) {
      const data = await rawText('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nCONNECT /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
      expect(data, JSON.stringify(data.slice(0, 60))).toMatch(/^HTTP\/1\.1 200 /);
      expect(data.match(/HTTP\/1\.1 \d{3} /g)).toHaveLength(1);
    }
    expect((await http(`${base}/healthz`)).status).toBe(200);
  });

  it('a request that said Connection: close gets its answer even when bytes follow it', async () => {
    const data = await rawText('GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nx');
    expect(data).toMatch(/^HTTP\/1\.1 200 /);
    expect(data.match(/HTTP\/1\.1 \d{3} /g)).toHaveLength(1);
  });

  it('a client resetting a CONNECT before its answer does not bring the server down', async () => {
    for (let n = 0; n < 20; n += 1) {
      await new Promise<void>((resolve) => {
        const socket = net.connect(port, '127.0.0.1', () => {
          socket.write('CONNECT /healthz HTTP/1.1\r\nHost: x\r\n\r\n', () => socket.resetAndDestroy());
        });
        socket.on('error', () => undefined);
        socket.on('close', () => resolve());
      });
    }
    expect((await http(`${base}/healthz`)).status).toBe(200);
  });

  it('a request answered before its body arrived (401 at the door) gets no second answer when that body then stalls', async () => {
    const slow = await buildTestApp(db.url, { REQUEST_TIMEOUT_MS: '1000' });
    try {
      const slowPort = Number(new URL(await listen(slow)).port);
      const data = await new Promise<string>((resolve, reject) => {
        const socket = net.connect(slowPort, '127.0.0.1', () => {
          socket.write('PUT /v1/pipeline/batches/b/stages/landing HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"sta');
        });
        let text = '';
        socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
        socket.on('error', () => undefined);
        socket.on('close', () => resolve(text));
        setTimeout(() => reject(new Error(`no close: ${text}`)), 6_000).unref();
      });
      expect(data.startsWith('HTTP/1.1 401 ')).toBe(true);
      expect(data.match(/HTTP\/1\.1 \d{3} /g)).toHaveLength(1);
    } finally {
      await slow.close();
    }
  });

  it('after a body answered early has arrived whole, a malformed next request on the connection still gets its 400', async () => {
    const data = await new Promise<string>((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1', () => {
        socket.write('PUT /v1/pipeline/batches/b/stages/landing HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n');
      });
      let text = '';
      socket.on('data', (chunk: Buffer) => {
        const first = text === '';
        text += chunk.toString('latin1');
        // The 401 came before the body: now the body, then a request the parser refuses.
        if (first) socket.write('{}FOO / HTTP/1.1\r\nHost: x\r\n\r\n');
      });
      socket.on('error', () => undefined);
      socket.on('close', () => resolve(text));
      setTimeout(() => reject(new Error(`no close: ${text}`)), 5_000).unref();
    });
    expect(data.match(/HTTP\/1\.1 \d{3} /g)).toEqual(['HTTP/1.1 401 ', 'HTTP/1.1 400 ']);
  });

  it('a chunked body with an invalid chunk size → 400 (not a silent close)', async () => {
    const routed = await routedHeaders();
    const writer = mintToken({ scope: 'pipeline:write' });
    const raw = `PUT /v1/pipeline/batches/bad-chunk/stages/landing HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${writer}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n`;
    expectProblemResponse(await exchange(raw), 400, 'invalid-request', routed);
  });

  it('a request head that never completes → 408 at REQUEST_TIMEOUT_MS (not a silent close)', async () => {
    const routed = await routedHeaders();
    const slow = await buildTestApp(db.url, { REQUEST_TIMEOUT_MS: '1000' });
    try {
      const slowPort = Number(new URL(await listen(slow)).port);
      const started = performance.now();
      const response = await exchange('GET /healthz HTTP/1.1\r\nHost: x\r\n', slowPort);
      expectProblemResponse(response, 408, 'request-timeout', routed);
      // Node checks every second: the answer comes between 1 and ~2 s, before the socket's own timeout.
      expect(performance.now() - started).toBeLessThan(2_900);
    } finally {
      await slow.close();
    }
  });

  it('a request head over the header size limit → 431', async () => {
    const routed = await routedHeaders();
    const response = await exchange(`GET /v1/order-items HTTP/1.1\r\nHost: x\r\nX-Padding: ${'a'.repeat(20 * 1024)}\r\n\r\n`);
    expectProblemResponse(response, 431, 'headers-too-large', routed);
  });

  it('each answer has its own request id', async () => {
    const ids = new Set<string>();
    for (let n = 0; n < 3; n += 1) ids.add((await exchange('FOO / HTTP/1.1\r\nHost: x\r\n\r\n')).headers.get('x-request-id') ?? '');
    expect(ids.size).toBe(3);
  });

  it('after a keep-alive response completed, a bad request on the same connection still gets its problem+json', async () => {
    const routed = await routedHeaders();
    const response = await new Promise<string>((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1');
      let data = '';
      let sentBad = false;
      socket.on('connect', () => socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'));
      socket.on('data', (chunk: Buffer) => {
        data += chunk.toString('latin1');
        if (!sentBad && data.includes('"status"')) {
          sentBad = true;
          socket.write('FOO / HTTP/1.1\r\nHost: x\r\n\r\n');
        }
      });
      socket.on('error', () => undefined);
      socket.on('close', () => resolve(data));
      setTimeout(() => reject(new Error(`no close: ${data}`)), 5_000).unref();
    });
    const second = response.indexOf('HTTP/1.1 400');
    expect(response.startsWith('HTTP/1.1 200')).toBe(true);
    expect(second).toBeGreaterThan(0);
    const tail = response.slice(second);
    expect(tail).toMatch(/\r\ncontent-type: application\/problem\+json/);
    expect(tail).toMatch(/\r\nconnection: close\r\n/);
    expect(tail).toContain(`\r\nx-content-type-options: ${routed.get('x-content-type-options')}\r\n`);
  });

  it('the app keeps serving afterwards', async () => {
    await exchange('FOO / HTTP/1.1\r\nHost: x\r\n\r\n');
    expect((await http(`${base}/healthz`)).status).toBe(200);
  });
});

describe('a refused request is logged without its bytes', () => {
  // Node's parser error carries the request as read (`rawPacket`, a byte array): logged as is, it
  // would hold the bearer token, hidden from a text search as numbers.
  it('at debug level, neither the token nor the cookie appears, as text or as bytes', async () => {
    const logs = logCapture();
    const logged = await buildTestApp(db.url, { LOG_LEVEL: 'debug' }, { logStream: logs.stream });
    const loggedPort = Number(new URL(await listen(logged)).port);
    const token = mintToken({ sellerId: SELLERS.alpha });
    const cookie = `session=${'c'.repeat(17 * 1024)}`;
    try {
      const badLine = await exchange(`GET /v1/order-items HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nBad Header: x\r\n\r\n`, loggedPort);
      expect(badLine.status).toBe(400);
      const tooLarge = await exchange(`GET /v1/order-items HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nCookie: ${cookie}\r\n\r\n`, loggedPort);
      expect(tooLarge.status).toBe(431);
    } finally {
      await logged.close();
    }
    const lines = logs.text().split('\n').filter((line) => line !== '');
    const clientErrors = lines.filter((line) => line.includes('"client error"'));
    expect(clientErrors, 'both refusals were logged').toHaveLength(2);
    // Every array of byte values anywhere in the log, decoded, joins the text searched.
    const decodedBytes: string[] = [];
    const collect = (value: unknown): void => {
      if (Array.isArray(value)) {
        if (value.length > 0 && value.every((n) => typeof n === 'number' && Number.isInteger(n) && n >= 0 && n < 256)) {
          decodedBytes.push(Buffer.from(value as number[]).toString('latin1'));
        } else value.forEach(collect);
      } else if (typeof value === 'object' && value !== null) Object.values(value).forEach(collect);
    };
    for (const line of lines) collect(JSON.parse(line));
    const searched = lines.join('\n') + decodedBytes.join('\n');
    const [, payload, signature] = token.split('.') as [string, string, string];
    expect(searched).not.toContain(signature);
    expect(searched).not.toContain(payload);
    expect(searched).not.toContain('c'.repeat(64));
  });
});
