import { Writable } from 'node:stream';
// Shared by the black-box security tests: a listening app on a random loopback port, raw JWT
// crafting (so a test can produce tokens no well-behaved library would), and small HTTP helpers.
import { createHmac, createPrivateKey, sign, type KeyObject } from 'node:crypto';
import { constants } from 'node:crypto';
import nodeHttp from 'node:http';
import { expect } from 'vitest';

export const PROBLEM = 'application/problem+json';

export { listen } from '../helpers/app.js';

export interface HttpResult {
  status: number;
  headers: Headers;
  text: string;
  json: unknown;
  ms: number;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

export async function http(url: string, init: RequestInit = {}): Promise<HttpResult> {
  const started = performance.now();
  const response = await fetch(url, init);
  const text = await response.text();
  const ms = performance.now() - started;
  return { status: response.status, headers: response.headers, text, json: parseJson(text), ms };
}

/** A GET with Host and exactly these header fields, repeated names kept (fetch would join them into one). */
export function rawGet(url: string, rawHeaders: string[]): Promise<HttpResult> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const request = nodeHttp.request(url, { method: 'GET', agent: false, headers: ['Host', new URL(url).host, ...rawHeaders] }, (response) => {
      let text = '';
      response.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
      response.on('end', () => {
        const headers = new Headers();
        for (const [name, value] of Object.entries(response.headers)) if (typeof value === 'string') headers.set(name, value);
        resolve({ status: response.statusCode ?? 0, headers, text, json: parseJson(text), ms: performance.now() - started });
      });
    });
    request.on('error', reject).end();
  });
}

export const auth = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });

const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');

export type Signer =
  | { kind: 'none' }
  | { kind: 'hmac'; bits: 256 | 384 | 512; key: string | Buffer }
  | { kind: 'rsa'; bits: 256 | 384 | 512; key: KeyObject | string; pss?: boolean }
  | { kind: 'ec'; bits: 256 | 384 | 512; key: KeyObject | string }
  | { kind: 'raw'; signature: string };

/** Builds a compact JWS with exactly the given header and payload: nothing is added or checked. */
export function craft(header: Record<string, unknown>, payload: Record<string, unknown>, signer: Signer): string {
  const input = `${b64(header)}.${b64(payload)}`;
  let signature: string;
  switch (signer.kind) {
    case 'none':
      signature = '';
      break;
    case 'raw':
      signature = signer.signature;
      break;
    case 'hmac':
      signature = createHmac(`sha${signer.bits}`, signer.key).update(input).digest('base64url');
      break;
    case 'rsa': {
      const key = typeof signer.key === 'string' ? createPrivateKey(signer.key) : signer.key;
      signature = sign(`sha${signer.bits}`, Buffer.from(input), {
        key,
        ...(signer.pss === true ? { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: signer.bits / 8 } : {}),
      }).toString('base64url');
      break;
    }
    case 'ec': {
      const key = typeof signer.key === 'string' ? createPrivateKey(signer.key) : signer.key;
      signature = sign(`sha${signer.bits}`, Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' }).toString('base64url');
      break;
    }
  }
  return `${input}.${signature}`;
}

export const nowSeconds = (): number => Math.floor(Date.now() / 1000);

/** Standard claims of a valid seller token; spread and override in each case. */
export function sellerClaims(sellerId: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const now = nowSeconds();
  return { sub: `seller:${sellerId}`, tenant_id: sellerId, scope: 'order-items:read', iat: now, exp: now + 600, ...extra };
}

/** A 401 that is problem+json with the Bearer challenge and carries no data. */
export function expectUnauthorized(result: HttpResult, label = ''): void {
  expect(result.status, `${label}: ${result.text}`).toBe(401);
  expect(result.headers.get('content-type') ?? '', label).toContain(PROBLEM);
  expect(result.headers.get('www-authenticate') ?? '', label).toMatch(/^Bearer\b/);
  const body = result.json as Record<string, unknown>;
  expect(body.status, label).toBe(401);
  expect(body.type, label).toMatch(/unauthorized$/);
  expect(body).not.toHaveProperty('items');
  expect(result.text).not.toMatch(/sellerId|orderId/);
}

export function expectProblem(result: HttpResult, status: number, label = ''): Record<string, unknown> {
  expect(result.status, `${label}: ${result.text}`).toBe(status);
  expect(result.headers.get('content-type') ?? '', label).toContain(PROBLEM);
  const body = result.json as Record<string, unknown>;
  expect(body.status, label).toBe(status);
  expect(typeof body.title, label).toBe('string');
  expect(typeof body.type, label).toBe('string');
  return body;
}

/** A log destination that keeps what the app writes: `text()` is every line so far. */
export function logCapture(): { stream: Writable; text: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  return { stream, text: () => chunks.join('') };
}
