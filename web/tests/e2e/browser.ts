/**
 * Browser harness for the end-to-end tests: Debian's Chromium through playwright-core (never a
 * downloaded browser), a fresh profile per launch, the server of `server/serve.mjs` on an
 * ephemeral 127.0.0.1 port, and a recorder of every request outside 127.0.0.1 (which is
 * aborted).
 */
import { mkdtempSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
// @ts-expect-error: plain ESM script without types
import { startServer } from "../../server/serve.mjs";

/** Chromium as Debian ships it (`apt-get install chromium`). */
export const CHROMIUM = process.env.WARD_CHROMIUM ?? "/usr/bin/chromium";

/** The flags DEVELOPERS.md asks for (no background traffic, WebGPU on SwiftShader). */
export const CHROMIUM_FLAGS = [
  "--enable-unsafe-webgpu", // WebGPU on SwiftShader: headless Chromium here gets a "google swiftshader" adapter
  "--no-sandbox",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
  "--disable-quic",
  "--disable-default-apps",
];

/** Where screenshots go (git-ignored). */
export const ARTEFACTS = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..", "..", "test-artifacts");

export interface Harness {
  url: string;
  browser: Browser;
  context: BrowserContext;
  /** Requests that went (or tried to go) outside 127.0.0.1. */
  outside: string[];
  /** CSP reports the server received. */
  reports: unknown[];
  newPage(): Promise<Page>;
  close(): Promise<void>;
}

export function chromiumAvailable(): boolean {
  return existsSync(CHROMIUM);
}

export async function startHarness(): Promise<Harness> {
  const server = await startServer({ port: 0, quiet: true });
  const userDataDir = mkdtempSync(path.join(tmpdir(), "ward-chromium-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_FLAGS,
    viewport: { width: 1500, height: 1000 },
    acceptDownloads: true,
  });
  const outside: string[] = [];
  await context.route("**/*", (route) => {
    const u = new URL(route.request().url());
    if (u.protocol === "data:" || u.protocol === "blob:") return route.continue();
    if (u.hostname !== "127.0.0.1") {
      outside.push(u.href);
      return route.abort("blockedbyclient");
    }
    return route.continue();
  });
  // Service workers bypass page routes in Chromium; count their traffic too.
  context.on("request", (req) => {
    const u = new URL(req.url());
    if ((u.protocol === "http:" || u.protocol === "https:" || u.protocol === "ws:" || u.protocol === "wss:") && u.hostname !== "127.0.0.1" && !outside.includes(u.href)) outside.push(u.href);
  });
  return {
    url: server.url,
    browser: context.browser() as Browser,
    context,
    outside,
    reports: server.reports,
    newPage: () => context.newPage(),
    close: async () => {
      await context.close();
      await server.close();
      rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}
