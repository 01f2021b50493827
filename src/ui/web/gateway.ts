/**
 * The dashboard's only ways to the cluster: the JSON gateway of the member that served the
 * page (POST /v3/..., etcd's JSON: bytes as base64, 64-bit integers as strings), and the
 * members' GET /ui/api/status. With auth on, the token from the login form goes in the
 * Authorization header, as the gateway takes it.
 */
import type { UiHistory, UiStatus } from '../api.js';
import { UI_HISTORY_PATH, UI_STATUS_PATH } from '../api.js';

/** A gateway or status call taking longer than this is abandoned (the member is slow or gone). */
export const CALL_TIMEOUT_MS = 5_000;
/** A status call to a member is abandoned sooner: the cluster page refreshes every second. */
export const STATUS_TIMEOUT_MS = 2_000;

const TOKEN_KEY = 'flotilla.token';
let token: string | null = sessionStorage.getItem(TOKEN_KEY);
const authListeners: (() => void)[] = [];

export function authToken(): string | null {
  return token;
}

export function setToken(t: string | null): void {
  token = t;
  if (t) sessionStorage.setItem(TOKEN_KEY, t);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** Called when a call was refused for want of a (valid) token: the page shows its login form. */
export function onAuthNeeded(f: () => void): void {
  authListeners.push(f);
}

export class GatewayError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const AUTH_REFUSALS = ['user name is empty', 'invalid auth token', 'authentication failed'];

/** A refusal for want of a token asks for a login, unless the call went out with a token since replaced (a login meanwhile). */
function checkAuth(status: number, message: string, sentWith: string | null): void {
  if (sentWith !== token) return;
  if (status === 401 || AUTH_REFUSALS.some((s) => message.includes(s))) for (const f of authListeners) f();
}

function headers(): Record<string, string> {
  const h: Record<string, string> = { 'content-type': 'application/json' };
  if (token) h['authorization'] = token;
  return h;
}

/** One unary gateway call: `path` after /v3/ (e.g. 'kv/range'), the request as etcd's JSON. */
export async function call<T>(path: string, body: unknown): Promise<T> {
  const sentWith = token;
  let r: Response;
  try {
    r = await fetch(`/v3/${path}`, { method: 'POST', headers: headers(), body: JSON.stringify(body), signal: AbortSignal.timeout(CALL_TIMEOUT_MS) });
  } catch (e) {
    throw new GatewayError(0, `the member did not answer: ${(e as Error).message}`);
  }
  const text = await r.text();
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new GatewayError(r.status, `not JSON (HTTP ${r.status}): ${text.slice(0, 200)}`);
  }
  if (!r.ok) {
    const msg = String(json['message'] ?? json['error'] ?? `HTTP ${r.status}`);
    checkAuth(r.status, msg, sentWith);
    throw new GatewayError(r.status, msg);
  }
  return json as T;
}

/**
 * A streaming gateway call (watch): each `{"result": ...}` line to `onResult`; resolves when
 * the stream ends (the member closed it or went away), rejects on an error line or status.
 */
export async function stream(path: string, body: unknown, onResult: (r: Record<string, unknown>) => void, signal: AbortSignal): Promise<void> {
  const sentWith = token;
  const r = await fetch(`/v3/${path}`, { method: 'POST', headers: headers(), body: JSON.stringify(body), signal });
  if (!r.ok || !r.body) {
    const text = await r.text();
    let msg = `HTTP ${r.status}`;
    try {
      const j = JSON.parse(text) as Record<string, unknown>;
      msg = String(j['message'] ?? j['error'] ?? msg);
    } catch {
      // keep the status
    }
    checkAuth(r.status, msg, sentWith);
    throw new GatewayError(r.status, msg);
  }
  const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line.trim() === '') continue;
      const j = JSON.parse(line) as Record<string, unknown>;
      if (j['error']) {
        const e = j['error'] as { message?: string };
        throw new GatewayError(200, String(e.message ?? 'stream error'));
      }
      if (j['result']) onResult(j['result'] as Record<string, unknown>);
    }
    // A line never ends: a broken stream, not something to hold on to.
    if (buf.length > 16 * 1024 * 1024) throw new GatewayError(200, 'a watch line over 16 MiB');
  }
}

/** GET of one of a member's dashboard JSON paths at `base` ('' = the one that served the page). */
async function memberJson<T>(base: string, path: string): Promise<T> {
  const sentWith = token;
  const h: Record<string, string> = {};
  if (token) h['authorization'] = token;
  const r = await fetch(`${base}${path}`, { headers: h, signal: AbortSignal.timeout(STATUS_TIMEOUT_MS) });
  if (!r.ok) {
    const t = await r.text();
    let msg = `HTTP ${r.status}`;
    try {
      msg = String((JSON.parse(t) as { error?: string }).error ?? msg);
    } catch {
      // keep the status
    }
    if (base === '') checkAuth(r.status, msg, sentWith);
    throw new GatewayError(r.status, msg);
  }
  return (await r.json()) as T;
}

/** GET /ui/api/status of the member at `base` ('' = the one that served the page). */
export function memberStatus(base: string): Promise<UiStatus> {
  return memberJson<UiStatus>(base, UI_STATUS_PATH);
}

/** GET /ui/api/history of the member at `base`: its chart samples that ended after `sinceMs`. */
export function memberHistory(base: string, sinceMs: number): Promise<UiHistory> {
  return memberJson<UiHistory>(base, `${UI_HISTORY_PATH}?since=${Math.max(0, Math.floor(sinceMs))}`);
}

// etcd's JSON carries bytes as base64; keys and values are shown as UTF-8 text where they are.
export function b64(s: string): string {
  return bytesToB64(new TextEncoder().encode(s));
}

export function bytesToB64(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i += 0x8000) s += String.fromCharCode(...b.subarray(i, i + 0x8000));
  return btoa(s);
}

export function fromB64(s: string | undefined): Uint8Array {
  if (!s) return new Uint8Array(0);
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

const strict = new TextDecoder('utf-8', { fatal: true });
/** Bytes as text when they are UTF-8 without control characters (but tab and newlines), else null. */
export function asText(b: Uint8Array): string | null {
  try {
    const s = strict.decode(b);
    // eslint-disable-next-line no-control-regex
    return /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.test(s) ? null : s;
  } catch {
    return null;
  }
}

export function hex(b: Uint8Array): string {
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(' ');
}

/** A key for display: its text, or its bytes in hex. */
export function showBytes(b64s: string | undefined): string {
  const b = fromB64(b64s);
  return asText(b) ?? `0x ${hex(b)}`;
}
