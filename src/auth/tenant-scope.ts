// The tenant scope is the only way into a tenant-scoped repository. Only one module may ever
// create scopes: the first (and only allowed) call to `claimTenantScopeIssuer` is made by the auth
// plugin when it loads, after which any other caller gets an error. Repositories assert that the
// scope they receive was issued that way, so a hand-made `{ sellerId }` fails at compile time
// (private constructor) and at run time (not in the issued set).
const issued = new WeakSet<TenantScope>();
const SELLER_ID = /^[0-9a-f]{32}$/;
let issuerClaimed = false;

export class TenantScope {
  readonly sellerId: string;

  private constructor(sellerId: string) {
    this.sellerId = sellerId;
    Object.freeze(this);
  }

  static #create(sellerId: string): TenantScope {
    if (!SELLER_ID.test(sellerId)) throw new TypeError('seller id must be 32 lowercase hex characters');
    const scope = new TenantScope(sellerId);
    issued.add(scope);
    return scope;
  }

  static claimIssuer(): (sellerId: string) => TenantScope {
    if (issuerClaimed) throw new Error('the tenant scope issuer belongs to the auth plugin');
    issuerClaimed = true;
    return (sellerId) => TenantScope.#create(sellerId);
  }
}

export function isSellerId(value: unknown): value is string {
  return typeof value === 'string' && SELLER_ID.test(value);
}

/** Returns the seller id of a scope issued by the auth plugin; throws for anything else. */
export function sellerIdOf(scope: TenantScope): string {
  if (!issued.has(scope)) throw new TypeError('tenant scope was not issued by the auth plugin');
  return scope.sellerId;
}
