#!/usr/bin/env node
// Builds web/dist:
//   dist/lib/          the npm package's browser build (tsc; no bundler, no runtime deps),
//                      with the wasm package in dist/lib/wasm/ when it is built
//   dist/playground/   the playground (Vite), plus wasm/, models/, policies/, sw.js
//   dist/demo/         the offline docs demo: a static page that loads the element from
//                      ./secure-codegen/ exactly as a documentation site would
//
// Inputs (environment):
//   WARD_WASM_DIR   folder of the wasm-bindgen output (ward_web.js, ward_web_bg.wasm);
//                   default: the first of crate/web/pkg-model (the build with the generator,
//                   crate/web/scripts/build.sh --model) and crate/web/pkg (policy and guard only)
//   WARD_MODEL_DIR  default model folder (default: models/ward-tiny-code)
//   WARD_POLICIES   policy packs folder (default: policies)
//   WARD_COMPILE_POLICY  a `ward` binary (the Makefile builds the policy-only CLI): each pack
//                   is precompiled with `ward compile-policy` into policies/<pack>/pack.wardpol
//                   (and its token rows for the default model into pack.<model>.wardlift),
//                   which the worker loads instead of compiling in wasm (seconds saved at
//                   start); without it the packs are compiled in the browser
// A missing wasm package is not fatal: the pages then say "the wasm package is not built".

import { execFileSync } from "node:child_process";
import { promises as fs, existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const web = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const repo = path.resolve(web, "..");
const dist = path.join(web, "dist");
const bin = (name) => path.join(web, "node_modules", ".bin", name);

function log(msg) {
  console.log(`[web build] ${msg}`);
}

function run(cmd, args) {
  execFileSync(cmd, args, { cwd: web, stdio: "inherit" });
}

async function copyFile(from, to) {
  await fs.mkdir(path.dirname(to), { recursive: true });
  await fs.copyFile(from, to);
}

async function copyDir(from, to, filter = () => true) {
  await fs.mkdir(to, { recursive: true });
  for (const ent of await fs.readdir(from, { withFileTypes: true })) {
    const a = path.join(from, ent.name);
    const b = path.join(to, ent.name);
    if (!filter(a, ent)) continue;
    if (ent.isDirectory()) await copyDir(a, b, filter);
    else if (ent.isFile()) await copyFile(a, b);
  }
}

async function listFiles(dir, base = dir) {
  const out = [];
  for (const ent of await fs.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, ent.name);
    if (ent.isDirectory()) out.push(...(await listFiles(p, base)));
    else out.push(path.relative(base, p).split(path.sep).join("/"));
  }
  return out;
}

function findWasm() {
  const candidates = [
    process.env.WARD_WASM_DIR,
    path.join(repo, "crate", "web", "pkg-model"),
    path.join(repo, "crate", "web", "pkg"),
  ].filter(Boolean);
  for (const c of candidates) {
    if (existsSync(path.join(c, "ward_web.js")) && existsSync(path.join(c, "ward_web_bg.wasm"))) return c;
  }
  return null;
}

/**
 * `ward compile-policy` of every pack folder into `out/<pack>/pack.wardpol`, when
 * WARD_COMPILE_POLICY names a `ward` binary; returns the folder, or null.
 */
async function compilePolicies(policies, out) {
  const ward = process.env.WARD_COMPILE_POLICY;
  if (!ward) {
    log("WARD_COMPILE_POLICY not set: no precompiled policy artefacts (the browser compiles the packs)");
    return null;
  }
  for (const pack of await fs.readdir(policies, { withFileTypes: true })) {
    if (!pack.isDirectory() || !existsSync(path.join(policies, pack.name, "pack.yaml"))) continue;
    const file = path.join(out, pack.name, "pack.wardpol");
    await fs.mkdir(path.dirname(file), { recursive: true });
    // And the pack's token rows for the default model's tokenizer (the lift artefact the
    // worker loads instead of lifting: `pack.<model>.wardlift`).
    const modelDir = path.resolve(repo, process.env.WARD_MODEL_DIR ?? "models/ward-tiny-code");
    const lift = path.join(out, pack.name, `pack.${path.basename(modelDir)}.wardlift`);
    execFileSync(
      ward,
      ["compile-policy", "--policy", path.join(policies, pack.name), "-o", file, "--lift-tokenizer", path.join(modelDir, "tokenizer.json"), "--lift-out", lift],
      { stdio: "inherit" },
    );
  }
  return out;
}

/** Files a site serves: the wasm package, the default model, the policy packs and their artefacts. */
async function addAssets(site, wasmDir, artefacts) {
  if (wasmDir) await copyDir(wasmDir, path.join(site, "wasm"), (p, ent) => ent.isDirectory() || /\.(js|wasm|d\.ts)$/.test(p));
  const modelDir = path.resolve(repo, process.env.WARD_MODEL_DIR ?? "models/ward-tiny-code");
  const modelName = path.basename(modelDir);
  for (const f of ["config.json", "model.safetensors", "tokenizer.json"]) {
    const src = path.join(modelDir, f);
    if (!existsSync(src)) throw new Error(`default model file ${src} is missing (set WARD_MODEL_DIR to a model folder)`);
    await copyFile(src, path.join(site, "models", modelName, f));
  }
  const policies = path.resolve(repo, process.env.WARD_POLICIES ?? "policies");
  for (const pack of await fs.readdir(policies, { withFileTypes: true })) {
    if (!pack.isDirectory() || !existsSync(path.join(policies, pack.name, "pack.yaml"))) continue;
    const dir = path.join(policies, pack.name);
    for (const f of await fs.readdir(dir)) {
      if (/\.ya?ml$/.test(f)) await copyFile(path.join(dir, f), path.join(site, "policies", pack.name, f));
    }
    const artefact = artefacts && path.join(artefacts, pack.name, "pack.wardpol");
    if (artefact && existsSync(artefact)) await copyFile(artefact, path.join(site, "policies", pack.name, "pack.wardpol"));
    const lift = artefacts && path.join(artefacts, pack.name, `pack.${modelName}.wardlift`);
    if (lift && existsSync(lift)) await copyFile(lift, path.join(site, "policies", pack.name, `pack.${modelName}.wardlift`));
  }
}

/** sw.js and its precache list (the shell: HTML, JS, CSS; not the big assets). */
async function addServiceWorker(site) {
  await copyFile(path.join(dist, "lib", "sw.js"), path.join(site, "sw.js"));
  const files = (await listFiles(site)).filter((f) => /\.(html|js|css)$/.test(f) && f !== "sw.js" && !f.startsWith("models/") && !f.endsWith(".d.ts"));
  const list = ["./", ...files.filter((f) => f !== "index.html").map((f) => `./${f}`)];
  await fs.writeFile(path.join(site, "precache.json"), JSON.stringify(list, null, 1) + "\n");
}

async function main() {
  await fs.rm(dist, { recursive: true, force: true });
  log("package (tsc → dist/lib)");
  run(bin("tsc"), ["-p", "tsconfig.lib.json"]);
  log("playground (vite → dist/playground)");
  run(bin("vite"), ["build", "--logLevel", "warn"]);

  const wasmDir = findWasm();
  if (wasmDir) log(`wasm package: ${path.relative(repo, wasmDir) || wasmDir}`);
  else log("wasm package not found (crate/web not built): the pages will say so; run `make wasm` first");

  const lib = path.join(dist, "lib");
  if (wasmDir) await copyDir(wasmDir, path.join(lib, "wasm"), (p, ent) => ent.isDirectory() || /\.(js|wasm|d\.ts)$/.test(p));

  log("policy artefacts (ward compile-policy → dist/.artefacts)");
  const policies = path.resolve(repo, process.env.WARD_POLICIES ?? "policies");
  const artefacts = await compilePolicies(policies, path.join(dist, ".artefacts"));

  const playground = path.join(dist, "playground");
  await addAssets(playground, wasmDir, artefacts);
  await addServiceWorker(playground);

  log("docs demo (static → dist/demo)");
  const demo = path.join(dist, "demo");
  await copyDir(path.join(web, "demo"), demo, (p) => !p.endsWith(".md"));
  await copyDir(lib, path.join(demo, "secure-codegen"), (p, ent) => ent.isDirectory() || !/\.(d\.ts|map)$/.test(p));
  await addAssets(demo, null, artefacts);
  await addServiceWorker(demo);
  log(`done: ${path.relative(repo, dist)}/{lib,playground,demo}`);
}

main().catch((e) => {
  console.error(`[web build] failed: ${e.message}`);
  process.exit(1);
});
