/**
 * Whether a public URL answers.
 *
 * @module
 */
import { errorMessage } from "../errors.ts";

/**
 * Checks a public URL with HEAD (GET of one byte when HEAD is refused).
 * Returns undefined when it answers 2xx, else the reason.
 *
 * @example
 * ```ts ignore
 * import { checkUrl } from "./check_url.ts";
 * await checkUrl("https://cdn.example.com/css/a.css", 10_000); // undefined, or "HTTP 404"
 * ```
 */
export async function checkUrl(url: string, timeoutMs: number): Promise<string | undefined> {
  const attempt = async (method: "HEAD" | "GET") => {
    const res = await fetch(url, {
      method,
      redirect: "follow",
      signal: AbortSignal.timeout(timeoutMs),
      ...(method === "GET" ? { headers: { Range: "bytes=0-0" } } : {}),
    });
    await res.body?.cancel().catch(() => {});
    return res.status;
  };
  try {
    let status = await attempt("HEAD");
    if (status === 405 || status === 501) status = await attempt("GET");
    return status >= 200 && status < 300 ? undefined : `HTTP ${status}`;
  } catch (e) {
    const err = e as Error;
    if (err.name === "TimeoutError") return `no answer within ${timeoutMs / 1000} s`;
    const cause = (err as { cause?: unknown }).cause;
    return cause ? `${err.message}: ${errorMessage(cause)}` : err.message;
  }
}
