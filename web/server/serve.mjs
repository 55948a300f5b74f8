#!/usr/bin/env node
// The playground's server: static files from web/dist with a strict Content-Security-Policy,
// ETags (so the worker's Cache API copies revalidate with a 304), and a CSP report endpoint
// that the browser tests read. Binds to 127.0.0.1 only. No dependencies beyond Node.
//
//   node web/server/serve.mjs [--root DIR] [--port N] [--host H] [--quiet]
//   PORT (default 8080), HOST (default 127.0.0.1)
//
// Routes: /demo/… → DIR/demo, /__csp-report (POST: a report; GET: the reports received),
// everything else → DIR/playground.

import { createServer } from "node:http";
import { createReadStream, promises as fs } from "node:fs";
import { createHash } from "node:crypto";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** The policy sent as a header; the pages carry the same as a meta tag (minus the
 * directives a meta tag cannot hold: frame-ancestors, report-uri). */
export const CSP = [
  "default-src 'self'",
  "script-src 'self' 'wasm-unsafe-eval'",
  "connect-src 'self'",
  "worker-src 'self'",
  "style-src 'self'",
  "img-src 'self' data: blob:",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'self'",
  "form-action 'none'",
  "frame-ancestors 'none'",
  "report-uri /__csp-report",
].join("; ");

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".map": "application/json",
  ".wasm": "application/wasm",
  ".yaml": "text/yaml; charset=utf-8",
  ".yml": "text/yaml; charset=utf-8",
  ".safetensors": "application/octet-stream",
  ".bin": "application/octet-stream",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".txt": "text/plain; charset=utf-8",
  ".md": "text/markdown; charset=utf-8",
  ".d.ts": "text/plain; charset=utf-8",
};

function typeOf(file) {
  const ext = path.extname(file).toLowerCase();
  return TYPES[ext] ?? "application/octet-stream";
}

function securityHeaders(res) {
  res.setHeader("Content-Security-Policy", CSP);
  res.setHeader("X-Content-Type-Options", "nosniff");
  res.setHeader("Referrer-Policy", "no-referrer");
  res.setHeader("Cross-Origin-Opener-Policy", "same-origin");
  res.setHeader("Cross-Origin-Embedder-Policy", "require-corp");
  res.setHeader("Cross-Origin-Resource-Policy", "same-origin");
}

/** Maps a URL path to a file under `root`, or null when it escapes it. */
function resolveFile(root, urlPath) {
  let p;
  try {
    p = decodeURIComponent(urlPath);
  } catch {
    return null;
  }
  if (p.includes("\0")) return null;
  const full = path.resolve(root, "." + path.posix.normalize("/" + p));
  if (full !== root && !full.startsWith(root + path.sep)) return null;
  return full;
}

/**
 * Starts the server. Returns `{ server, url, reports, close }`; `reports` collects the CSP
 * violation reports the browser posted.
 */
export async function startServer({ root, port = 8080, host = "127.0.0.1", quiet = false } = {}) {
  const distRoot = path.resolve(root ?? path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "dist"));
  const sites = [
    { prefix: "/demo/", dir: path.join(distRoot, "demo") },
    { prefix: "/", dir: path.join(distRoot, "playground") },
  ];
  for (const s of sites) {
    try {
      await fs.access(path.join(s.dir, "index.html"));
    } catch {
      throw new Error(`${path.join(s.dir, "index.html")} is missing: build the web app first (make web, or npm --prefix web run build)`);
    }
  }
  const reports = [];
  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    securityHeaders(res);
    if (url.pathname === "/__csp-report") {
      if (req.method === "POST") {
        let body = "";
        req.setEncoding("utf8");
        req.on("data", (c) => {
          if (body.length < 65536) body += c;
        });
        req.on("end", () => {
          try {
            reports.push(JSON.parse(body));
          } catch {
            reports.push({ raw: body });
          }
          if (!quiet) console.error(`CSP violation report: ${body.slice(0, 500)}`);
          res.writeHead(204).end();
        });
        return;
      }
      res.writeHead(200, { "Content-Type": "application/json" }).end(JSON.stringify(reports));
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { Allow: "GET, HEAD" }).end();
      return;
    }
    if (url.pathname === "/demo") {
      res.writeHead(301, { Location: "/demo/" }).end();
      return;
    }
    const site = sites.find((s) => url.pathname.startsWith(s.prefix));
    let file = resolveFile(site.dir, url.pathname.slice(site.prefix.length - 1));
    if (!file) {
      res.writeHead(400).end("bad path");
      return;
    }
    let st;
    try {
      st = await fs.stat(file);
      if (st.isDirectory()) {
        file = path.join(file, "index.html");
        st = await fs.stat(file);
      }
    } catch {
      res.writeHead(404, { "Content-Type": "text/plain; charset=utf-8" }).end(`not found: ${url.pathname}`);
      return;
    }
    const etag = `"${createHash("sha1").update(`${st.size}-${st.mtimeMs}-${file}`).digest("hex").slice(0, 20)}"`;
    res.setHeader("ETag", etag);
    res.setHeader("Last-Modified", st.mtime.toUTCString());
    res.setHeader("Cache-Control", "no-cache");
    if (req.headers["if-none-match"] === etag) {
      res.writeHead(304).end();
      return;
    }
    res.setHeader("Content-Type", typeOf(file));
    res.setHeader("Content-Length", String(st.size));
    res.writeHead(200);
    if (req.method === "HEAD") {
      res.end();
      return;
    }
    createReadStream(file).pipe(res);
  });
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, resolve);
  });
  const addr = server.address();
  const url = `http://${host}:${addr.port}/`;
  return {
    server,
    url,
    reports,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--root") out.root = argv[++i];
    else if (a === "--port") out.port = Number(argv[++i]);
    else if (a === "--host") out.host = argv[++i];
    else if (a === "--quiet") out.quiet = true;
    else throw new Error(`unknown argument ${a} (expected --root DIR, --port N, --host H, --quiet)`);
  }
  return out;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    const args = parseArgs(process.argv.slice(2));
    const port = args.port ?? Number(process.env.PORT ?? 8080);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`PORT must be a port number, got ${JSON.stringify(process.env.PORT)}`);
    const { url } = await startServer({ ...args, port, host: args.host ?? process.env.HOST ?? "127.0.0.1" });
    console.log(`Ward playground: ${url}`);
    console.log(`Docs demo:       ${url}demo/`);
    console.log("(Ctrl-C to stop)");
  } catch (e) {
    console.error(`ward web server: ${e.message}`);
    process.exit(2);
  }
}
