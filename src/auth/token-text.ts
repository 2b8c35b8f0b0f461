// Checks on a token's text that JSON.parse and base64url decoding would let through: each allows
// two texts to mean one thing, or one text to mean two things to two parsers.

/**
 * The first member name that appears twice in one object of this JSON text (at any depth), or
 * undefined. JSON.parse keeps the last of duplicates, other parsers the first: an identity
 * provider and this service could read different tenants from one token (RFC 7519 §4 lets a
 * verifier refuse such tokens). Expects text JSON.parse accepted.
 */
export function duplicateMemberName(json: string): string | undefined {
  // One frame per open container: an object's names so far, or null for an array.
  const frames: ({ names: Set<string>; awaitingName: boolean } | null)[] = [];
  for (let i = 0; i < json.length; i += 1) {
    const c = json[i];
    if (c === '"') {
      let end = i + 1;
      while (end < json.length && json[end] !== '"') end += json[end] === '\\' ? 2 : 1;
      const frame = frames.at(-1);
      if (frame !== undefined && frame !== null && frame.awaitingName) {
        // Decoded, so that "tenant\u005fid" and "tenant_id" are the same name.
        const name = JSON.parse(json.slice(i, end + 1)) as string;
        if (frame.names.has(name)) return name;
        frame.names.add(name);
        frame.awaitingName = false;
      }
      i = end;
    } else if (c === '{') {
      frames.push({ names: new Set(), awaitingName: true });
    } else if (c === '[') {
      frames.push(null);
    } else if (c === '}' || c === ']') {
      frames.pop();
    } else if (c === ',') {
      const frame = frames.at(-1);
      if (frame !== undefined && frame !== null) frame.awaitingName = true;
    }
  }
  return undefined;
}

/**
 * Whether a base64url segment is the one encoding of its bytes: the last character of a segment
 * carries bits the decoder drops, so several texts decode to the same signature. A token text is
 * a cache and log key here; one signature must have one spelling.
 */
export function isCanonicalBase64url(segment: string): boolean {
  return Buffer.from(segment, 'base64url').toString('base64url') === segment;
}

/**
 * Why a token's text (not yet verified) is refused before its signature is checked: a signature
 * spelled more than one way, a segment that is not JSON, a member named twice. Undefined if none.
 */
export function tokenTextProblem(token: string): string | undefined {
  const [headerText = '', payloadText = '', signature = ''] = token.split('.');
  if (!isCanonicalBase64url(signature)) return 'token signature is not canonical base64url';
  for (const segment of [headerText, payloadText]) {
    const json = Buffer.from(segment, 'base64url').toString('utf8');
    // The scan below reads member names with JSON.parse: text that is not JSON is a malformed
    // token, not an error of the service.
    try {
      JSON.parse(json);
    } catch {
      return 'malformed token';
    }
    const duplicate = duplicateMemberName(json);
    if (duplicate !== undefined) return `token names "${duplicate}" twice`;
  }
  return undefined;
}
