/**
 * OpenStack Swift / Rackspace Cloud Files authentication: v1 (tempauth,
 * Rackspace's legacy auth), v2 (Keystone v2 with Rackspace API keys or
 * passwords) and v3 (Keystone v3 password auth). Returns a token, the
 * object-store URL of the chosen region and, when the catalog has one, the
 * CDN management URL.
 *
 * @module
 */
import { ClassifiedError, errorMessage } from "../errors.ts";
import { redact } from "../log.ts";
import { callSignal } from "./_common.ts";

/** Rackspace's identity endpoints, the defaults for auth versions 1 and 2. */
export const RACKSPACE_AUTH_V1 = "https://identity.api.rackspacecloud.com/v1.0";
/** Rackspace's Keystone v2 endpoint. */
export const RACKSPACE_AUTH_V2 = "https://identity.api.rackspacecloud.com/v2.0";

/** Everything needed to log in. */
export interface SwiftAuthOptions {
  version: "1" | "2" | "3";
  authUrl: string;
  username: string;
  apiKey?: string;
  password?: string;
  tenantId?: string;
  tenantName?: string;
  userDomain?: string;
  projectDomain?: string;
  region?: string;
  /** Which catalog URL to use: `public` (default) or `internal` (Rackspace ServiceNet). */
  endpointType: "public" | "internal" | "admin";
  /** Server name for messages. */
  server: string;
  timeoutMs: number;
  client?: Deno.HttpClient;
}

/** A logged-in session. */
export interface SwiftSession {
  token: string;
  /** Object-store URL of the account, without a trailing slash. */
  storageUrl: string;
  /** CDN management URL (Rackspace), when known. */
  cdnUrl?: string;
  /** When the token expires (ms since the epoch), when the server says. */
  expiresAt?: number;
}

interface CatalogEndpoint {
  region?: string;
  region_id?: string;
  publicURL?: string;
  internalURL?: string;
  adminURL?: string;
  interface?: string;
  url?: string;
}

interface CatalogEntry {
  type?: string;
  name?: string;
  endpoints?: CatalogEndpoint[];
}

function fail(o: SwiftAuthOptions, text: string, cause?: unknown): ClassifiedError {
  return new ClassifiedError(
    redact(`Cannot log in to server "${o.server}" at "${o.authUrl}": ${text}`),
    "server",
    {
      cause,
    },
  );
}

async function call(
  o: SwiftAuthOptions,
  url: string,
  init: RequestInit,
  signal: AbortSignal,
): Promise<Response> {
  const sig = callSignal(signal, o.timeoutMs);
  try {
    return await fetch(url, { ...init, signal: sig, ...(o.client ? { client: o.client } : {}) });
  } catch (err) {
    if (signal.aborted) {
      throw new ClassifiedError(`Cannot log in to server "${o.server}": cancelled`, "retry");
    }
    if (sig.aborted) throw fail(o, `no answer within ${o.timeoutMs / 1000} s`, err);
    throw fail(o, errorMessage(err), err);
  }
}

async function refused(o: SwiftAuthOptions, res: Response): Promise<ClassifiedError> {
  const text = (await res.text().catch(() => "")).replace(/\s+/g, " ").trim().slice(0, 200);
  const why = res.status === 401 || res.status === 403
    ? "the credentials were refused"
    : `the identity service answered HTTP ${res.status}`;
  return fail(o, `${why} (HTTP ${res.status}${text ? `: ${text}` : ""})`);
}

/** Logs in and returns a session; every failure is a "server" {@linkcode ClassifiedError}. */
export async function swiftLogin(o: SwiftAuthOptions, signal: AbortSignal): Promise<SwiftSession> {
  switch (o.version) {
    case "1":
      return await loginV1(o, signal);
    case "2":
      return await loginV2(o, signal);
    case "3":
      return await loginV3(o, signal);
  }
}

async function loginV1(o: SwiftAuthOptions, signal: AbortSignal): Promise<SwiftSession> {
  const res = await call(o, o.authUrl, {
    method: "GET",
    headers: { "X-Auth-User": o.username, "X-Auth-Key": o.apiKey ?? o.password ?? "" },
  }, signal);
  if (!res.ok) throw await refused(o, res);
  await res.body?.cancel();
  const token = res.headers.get("x-auth-token") ?? res.headers.get("x-storage-token");
  const storageUrl = res.headers.get("x-storage-url");
  if (!token || !storageUrl) throw fail(o, "the answer has no X-Auth-Token or X-Storage-Url");
  const session: SwiftSession = { token, storageUrl: storageUrl.replace(/\/+$/, "") };
  const cdn = res.headers.get("x-cdn-management-url");
  if (cdn) session.cdnUrl = cdn.replace(/\/+$/, "");
  const ttl = Number(res.headers.get("x-auth-token-expires"));
  if (Number.isFinite(ttl) && ttl > 0) session.expiresAt = Date.now() + ttl * 1000;
  return session;
}

function v2Url(authUrl: string): string {
  const u = authUrl.replace(/\/+$/, "");
  return u.endsWith("/tokens") ? u : `${u}/tokens`;
}

function v3Url(authUrl: string): string {
  const u = authUrl.replace(/\/+$/, "");
  if (u.endsWith("/auth/tokens")) return u;
  return /\/v3$/.test(u) ? `${u}/auth/tokens` : `${u}/v3/auth/tokens`;
}

async function loginV2(o: SwiftAuthOptions, signal: AbortSignal): Promise<SwiftSession> {
  const auth: Record<string, unknown> = o.apiKey
    ? { "RAX-KSKEY:apiKeyCredentials": { username: o.username, apiKey: o.apiKey } }
    : { passwordCredentials: { username: o.username, password: o.password ?? "" } };
  if (o.tenantId) auth.tenantId = o.tenantId;
  else if (o.tenantName) auth.tenantName = o.tenantName;
  const res = await call(o, v2Url(o.authUrl), {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify({ auth }),
  }, signal);
  if (!res.ok) throw await refused(o, res);
  let body: {
    access?: {
      token?: { id?: string; expires?: string };
      serviceCatalog?: CatalogEntry[];
      user?: Record<string, unknown>;
    };
  };
  try {
    body = await res.json();
  } catch (err) {
    throw fail(o, "the answer is not JSON", err);
  }
  const token = body.access?.token?.id;
  if (!token) throw fail(o, "the answer has no access.token.id");
  const catalog = body.access?.serviceCatalog ?? [];
  const defaultRegion = body.access?.user?.["RAX-AUTH:defaultRegion"];
  const region = o.region ??
    (typeof defaultRegion === "string" && defaultRegion ? defaultRegion : undefined);
  const key = o.endpointType === "internal"
    ? "internalURL"
    : o.endpointType === "admin"
    ? "adminURL"
    : "publicURL";
  const storageUrl = pick(o, catalog, "object-store", region, (e) => e[key]);
  const session: SwiftSession = { token, storageUrl };
  const cdn = pickOptional(catalog, "rax:object-cdn", region, (e) => e.publicURL);
  if (cdn) session.cdnUrl = cdn;
  const exp = Date.parse(body.access?.token?.expires ?? "");
  if (Number.isFinite(exp)) session.expiresAt = exp;
  return session;
}

async function loginV3(o: SwiftAuthOptions, signal: AbortSignal): Promise<SwiftSession> {
  const identity = {
    methods: ["password"],
    password: {
      user: {
        name: o.username,
        domain: { name: o.userDomain ?? "Default" },
        password: o.password ?? o.apiKey ?? "",
      },
    },
  };
  const auth: Record<string, unknown> = { identity };
  if (o.tenantId) auth.scope = { project: { id: o.tenantId } };
  else if (o.tenantName) {
    auth.scope = {
      project: { name: o.tenantName, domain: { name: o.projectDomain ?? "Default" } },
    };
  }
  const res = await call(o, v3Url(o.authUrl), {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify({ auth }),
  }, signal);
  if (!res.ok) throw await refused(o, res);
  const token = res.headers.get("x-subject-token");
  let body: { token?: { expires_at?: string; catalog?: CatalogEntry[] } };
  try {
    body = await res.json();
  } catch (err) {
    throw fail(o, "the answer is not JSON", err);
  }
  if (!token) throw fail(o, "the answer has no X-Subject-Token header");
  const catalog = body.token?.catalog ?? [];
  const storageUrl = pick(
    o,
    catalog,
    "object-store",
    o.region,
    (e) => (e.interface ?? "public") === o.endpointType ? e.url : undefined,
  );
  const session: SwiftSession = { token, storageUrl };
  const cdn = pickOptional(
    catalog,
    "rax:object-cdn",
    o.region,
    (e) => (e.interface ?? "public") === "public" ? e.url : undefined,
  );
  if (cdn) session.cdnUrl = cdn;
  const exp = Date.parse(body.token?.expires_at ?? "");
  if (Number.isFinite(exp)) session.expiresAt = exp;
  return session;
}

function candidates(
  catalog: CatalogEntry[],
  type: string,
  region: string | undefined,
  url: (e: CatalogEndpoint) => string | undefined,
): { urls: string[]; regions: string[] } {
  const endpoints = catalog.filter((c) => c.type === type).flatMap((c) => c.endpoints ?? []);
  const regions = [...new Set(endpoints.map((e) => e.region ?? e.region_id ?? "").filter(Boolean))];
  const want = region?.toLowerCase();
  const urls = endpoints
    .filter((e) => !want || (e.region ?? e.region_id ?? "").toLowerCase() === want)
    .map(url)
    .filter((u): u is string => !!u)
    .map((u) => u.replace(/\/+$/, ""));
  return { urls, regions };
}

function pick(
  o: SwiftAuthOptions,
  catalog: CatalogEntry[],
  type: string,
  region: string | undefined,
  url: (e: CatalogEndpoint) => string | undefined,
): string {
  const { urls, regions } = candidates(catalog, type, region, url);
  if (urls[0]) return urls[0];
  if (regions.length === 0) throw fail(o, `the service catalog has no "${type}" service`);
  throw fail(
    o,
    `the service catalog has no ${o.endpointType} "${type}" endpoint${
      region ? ` in region "${region}"` : ""
    } (regions: ${regions.map((r) => `"${r}"`).join(", ")})`,
  );
}

function pickOptional(
  catalog: CatalogEntry[],
  type: string,
  region: string | undefined,
  url: (e: CatalogEndpoint) => string | undefined,
): string | undefined {
  return candidates(catalog, type, region, url).urls[0];
}
