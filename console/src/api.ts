// The public HTTP API, called with the token the user signed in with. The token lives
// in sessionStorage (gone when the tab closes), goes only into the Authorization
// header, and is never put in a URL or logged.

const KEY = "cacheplane.console.session";

/** Who is signed in, and where they look. */
export interface Session {
  token: string;
  project: string;
  region: string;
}

export function session(): Session | null {
  try {
    const s = JSON.parse(sessionStorage.getItem(KEY) ?? "null");
    return s && s.token && s.project && s.region ? (s as Session) : null;
  } catch {
    return null;
  }
}

export function saveSession(s: Session): void {
  sessionStorage.setItem(KEY, JSON.stringify(s));
}

export function clearSession(): void {
  sessionStorage.removeItem(KEY);
}

/** An error answer: its status, message, and the fields it names. */
export class ApiError extends Error {
  constructor(
    readonly httpStatus: number,
    readonly status: string,
    message: string,
    readonly fields: Map<string, string>,
  ) {
    super(message);
  }
}

interface Violation {
  field?: string;
  description?: string;
}

function fieldsOf(details: unknown): Map<string, string> {
  const out = new Map<string, string>();
  if (!Array.isArray(details)) return out;
  for (const d of details as { fieldViolations?: Violation[]; field?: string; description?: string }[]) {
    for (const v of d.fieldViolations ?? [{ field: d.field, description: d.description }]) {
      if (v.field) out.set(v.field, v.description ?? "");
    }
  }
  return out;
}

/** Called when a token is refused: the app signs the user out. */
let onUnauthenticated: () => void = () => {};
export function whenUnauthenticated(f: () => void): void {
  onUnauthenticated = f;
}

/** Calls `method path` (query in `query`) with the session's token; throws ApiError. */
export async function call<T>(
  method: string,
  path: string,
  opts: { body?: unknown; query?: Record<string, string | undefined>; token?: string } = {},
): Promise<T> {
  const token = opts.token ?? session()?.token;
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(opts.query ?? {})) {
    if (v !== undefined && v !== "") url.searchParams.set(k, v);
  }
  const headers: Record<string, string> = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (opts.body !== undefined) headers["Content-Type"] = "application/json";
  let res: Response;
  try {
    res = await fetch(url, {
      method,
      headers,
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      cache: "no-store",
      credentials: "omit",
    });
  } catch {
    throw new ApiError(0, "UNAVAILABLE", "The API cannot be reached.", new Map());
  }
  const text = await res.text();
  let json: unknown = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!res.ok) {
    const e = (json as { error?: { status?: string; message?: string; details?: unknown } })?.error;
    const err = new ApiError(res.status, e?.status ?? `HTTP ${res.status}`, e?.message ?? res.statusText, fieldsOf(e?.details));
    if (res.status === 401 && !opts.token) onUnauthenticated();
    throw err;
  }
  return json as T;
}

/** `/v1/projects/P/locations/R` of the session. */
export function loc(): string {
  const s = session();
  return `/v1/projects/${encodeURIComponent(s?.project ?? "")}/locations/${encodeURIComponent(s?.region ?? "")}`;
}

/** `/v1/projects/P` of the session. */
export function proj(): string {
  return `/v1/projects/${encodeURIComponent(session()?.project ?? "")}`;
}

/** A fresh requestId, so a retried request makes one operation. */
export function requestId(): string {
  return crypto.randomUUID();
}

// The resources the console shows (the fields it uses; openapi.yaml has them all).

export interface Node {
  id: string;
  zone: string;
  role: string;
  address: string;
  port: number;
  state: string;
}

export interface Instance {
  name: string;
  displayName: string;
  tier: string;
  memorySizeGb: number;
  replicaCount: number;
  readReplicasMode: string;
  locationId: string;
  alternativeLocationId?: string;
  currentLocationId?: string;
  redisVersion: string;
  redisConfigs: Record<string, string>;
  authorizedNetwork: string;
  reservedIpRange: string;
  host: string;
  port: number;
  readEndpoint?: string;
  readEndpointPort?: number;
  authEnabled: boolean;
  transitEncryptionMode: string;
  state: string;
  statusMessage: string;
  nodes: Node[];
  labels: Record<string, string>;
  createTime: string;
  etag: string;
}

export interface Operation {
  name: string;
  done: boolean;
  metadata: { verb: string; target: string; createTime: string; endTime?: string; progress: number; statusDetail: string };
  error?: { code: number; message: string; status?: string };
  response?: unknown;
}

export interface TierInfo {
  tier: string;
  description: string;
  minMemorySizeGb: number;
  maxMemorySizeGb: number;
  minReplicaCount: number;
  maxReplicaCount: number;
  automaticFailover: boolean;
}

export interface Region {
  regionId: string;
  zones: string[];
}

export interface Network {
  name: string;
  ipRange: string;
  description: string;
  createTime: string;
}

export interface Connector {
  name: string;
  network: string;
  ipCidrRange: string;
  state: string;
  host?: string;
  namespace?: string;
  createTime: string;
}

/** The last segment of a resource name. */
export function shortName(name: string): string {
  return name.slice(name.lastIndexOf("/") + 1);
}
