// Mints tokens the way an identity provider would, for tests and the demo.
import { createSigner } from 'fast-jwt';

export const TEST_JWT_SECRET = 'test-secret-that-is-at-least-32-bytes-long!!';

export interface TokenOptions {
  sellerId?: string;
  scope?: string;
  claims?: Record<string, unknown>;
  expiresInSeconds?: number;
  secret?: string;
}

export function mintToken(options: TokenOptions = {}): string {
  const sign = createSigner({ key: options.secret ?? TEST_JWT_SECRET, algorithm: 'HS256' });
  const now = Math.floor(Date.now() / 1000);
  return sign({
    sub: options.sellerId === undefined ? 'service-account' : `seller:${options.sellerId}`,
    ...(options.sellerId === undefined ? {} : { tenant_id: options.sellerId }),
    scope: options.scope ?? 'order-items:read',
    iat: now,
    exp: now + (options.expiresInSeconds ?? 600),
    ...options.claims,
  });
}

export const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });
