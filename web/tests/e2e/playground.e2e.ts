/**
 * End-to-end tests of the playground and the docs demo in headless Chromium (Debian's), with
 * every request outside 127.0.0.1 aborted and recorded, and the server's CSP report endpoint
 * read at the end. Tests that need the wasm package are skipped, saying so, while crate/web
 * is not built; tests that need its generator are skipped while the build is policy-only.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Page } from "playwright-core";
import { ARTEFACTS, chromiumAvailable, CHROMIUM, Harness, startHarness } from "./browser.js";

const DIST = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..", "..", "dist");
const GLUE = path.join(DIST, "playground", "wasm", "ward_web.js");
const hasWasm = existsSync(GLUE);
const hasGenerator = hasWasm && /\bGenerator\b/.test(readFileSync(GLUE, "utf8"));

if (!chromiumAvailable()) throw new Error(`${CHROMIUM} is missing: apt-get install chromium (the tests never download a browser)`);
if (!existsSync(path.join(DIST, "playground", "index.html"))) throw new Error(`${DIST}/playground is missing: run npm run build first`);
if (!hasWasm) console.warn(`[e2e] ${GLUE} is missing: the wasm package is not built, so the tests that need it are skipped`);
else if (!hasGenerator) console.warn("[e2e] the wasm package has no Generator (policy-only build): generation tests are skipped");

let h: Harness;
const cspConsole: string[] = [];

beforeAll(async () => {
  mkdirSync(ARTEFACTS, { recursive: true });
  h = await startHarness();
});

afterAll(async () => {
  await h?.close();
});

async function open(urlPath = ""): Promise<Page> {
  const page = await h.newPage();
  page.on("console", (m) => {
    if (/Content Security Policy|Content-Security-Policy/i.test(m.text())) cspConsole.push(m.text());
  });
  await page.addInitScript(() => {
    (window as unknown as { __csp: string[] }).__csp = [];
    document.addEventListener("securitypolicyviolation", (e) => (window as unknown as { __csp: string[] }).__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  await page.goto(h.url + urlPath);
  return page;
}

async function waitState(page: Page, states: string[], timeout = 120_000): Promise<string> {
  await page.waitForFunction((s) => s.includes(document.body.dataset.state ?? ""), states, { timeout });
  return (await page.evaluate(() => document.body.dataset.state)) as string;
}

/**
 * Replaces an editor's text the way a user pasting does: a `paste` event with the text on the
 * clipboard (CodeMirror handles it; typing newlines through `insertText` would make Chromium
 * insert styled <div>s into the contenteditable, which the CSP then reports).
 */
async function paste(page: Page, editor: string, text: string): Promise<void> {
  const content = page.locator(`${editor} .cm-content`);
  await content.click();
  await page.keyboard.press("Control+A");
  await content.evaluate((el, t) => {
    const dt = new DataTransfer();
    dt.setData("text/plain", t);
    el.dispatchEvent(new ClipboardEvent("paste", { clipboardData: dt, bubbles: true, cancelable: true }));
  }, text);
}

/**
 * Waits until the model folder opened from disk (the default model's folder, so its name
 * alone does not tell the loads apart: `data-source` "files") is loaded and the page ready.
 */
async function folderModelReady(page: Page): Promise<void> {
  await page.waitForFunction(
    () => {
      const name = document.getElementById("model-name");
      return name?.textContent === "model: ward-tiny-code" && name.dataset.source === "files" && document.body.dataset.state === "ready";
    },
    undefined,
    { timeout: 120_000 },
  );
}

async function pickExample(page: Page, id: string): Promise<void> {
  await page.selectOption("#example", id);
}

describe("playground shell", () => {
  it("serves the CSP as a header and a meta tag", async () => {
    const res = await fetch(h.url);
    const header = res.headers.get("content-security-policy") ?? "";
    expect(header).toContain("script-src 'self' 'wasm-unsafe-eval'");
    expect(header).toContain("connect-src 'self'");
    const html = await res.text();
    expect(html).toMatch(/<meta http-equiv="Content-Security-Policy" content="[^"]*script-src 'self' 'wasm-unsafe-eval'; connect-src 'self'/);
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/); // no inline script
  });

  it("loads, and says what the wasm provides (or clearly that it is not built)", async () => {
    const page = await open();
    const state = await waitState(page, ["ready", "error"]);
    if (!hasWasm) {
      expect(state).toBe("error");
      await expect(page.locator("#gen-status").textContent()).resolves.toContain("the wasm package is not built");
    } else if (hasGenerator) {
      expect(state, (await page.locator("#gen-status").textContent()) ?? "").toBe("ready");
      await expect(page.locator("#backend").textContent()).resolves.toMatch(/WebGPU|CPU/);
    }
    await page.screenshot({ path: path.join(ARTEFACTS, "playground-loaded.png"), fullPage: true });
    await page.close();
  });
});

describe("bring your own model", () => {
  it("a folder without the model files is refused, naming what is missing", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "ward-byo-"));
    const folder = path.join(dir, "my-model");
    mkdirSync(folder);
    writeFileSync(path.join(folder, "config.json"), "{}");
    const page = await open();
    await waitState(page, ["ready", "error"]);
    await page.setInputFiles("#model-folder", folder);
    await page.waitForFunction(() => /lacks/.test(document.getElementById("gen-status")?.textContent ?? ""));
    await expect(page.locator("#gen-status").textContent()).resolves.toBe(
      "The folder my-model lacks model.safetensors, tokenizer.json (a Hugging Face model folder holds config.json, model.safetensors and tokenizer.json).",
    );
    await page.close();
  });

  it.skipIf(!hasWasm)("a broken model folder gets an error naming the file and the field", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "ward-byo-"));
    const folder = path.join(dir, "broken-model");
    mkdirSync(folder);
    writeFileSync(path.join(folder, "config.json"), JSON.stringify({ hidden_size: 8, num_hidden_layers: 1, num_attention_heads: 1 }));
    writeFileSync(path.join(folder, "model.safetensors"), Buffer.alloc(64));
    writeFileSync(path.join(folder, "tokenizer.json"), "{}");
    const page = await open();
    await waitState(page, ["ready", "error"]);
    await page.setInputFiles("#model-folder", folder);
    // Wait for the error itself: the status names the folder earlier too ("Reading the model
    // folder broken-model…"), then says "Loading…", then gives the error.
    await page.waitForFunction(() => /broken-model\/config\.json/.test(document.getElementById("gen-status")?.textContent ?? ""), undefined, { timeout: 60_000 });
    await expect(page.locator("#gen-status").textContent()).resolves.toBe("broken-model/config.json: field `vocab_size` is missing or not a number");
    await page.close();
  });

  it.skipIf(!hasGenerator)("a model folder opened from disk loads and generates, nothing uploaded", async () => {
    const page = await open();
    await waitState(page, ["ready"]);
    const before = h.outside.length;
    await page.setInputFiles("#model-folder", path.resolve(DIST, "..", "..", "models", "ward-tiny-code"));
    await folderModelReady(page);
    await page.click("#generate");
    expect(await waitState(page, ["done", "error"])).toBe("done");
    expect(h.outside.slice(before)).toEqual([]);
    await page.close();
  });
});

describe("bring your own model, while a generation runs", () => {
  it.skipIf(!hasGenerator)("choosing a folder stops the generation, loads the folder, and the next generation completes", async () => {
    const page = await open();
    await waitState(page, ["ready"]);
    await page.click("#generate");
    await waitState(page, ["generating", "done"]);
    await page.setInputFiles("#model-folder", path.resolve(DIST, "..", "..", "models", "ward-tiny-code"));
    // Generate is disabled from the moment the folder is chosen until it has loaded.
    await expect(page.locator("#generate").isDisabled()).resolves.toBe(true);
    await folderModelReady(page);
    await page.click("#generate");
    expect(await waitState(page, ["done", "error"])).toBe("done");
    await page.close();
  });
});

describe.skipIf(!hasWasm)("policy in the browser (wasm)", () => {
  it("lists the python pack's rules and highlights check findings in pasted code", async () => {
    const page = await open();
    await waitState(page, ["ready", "error"]);
    await page.waitForFunction(() => document.querySelectorAll("#rules li").length > 10);
    // The python pack came from its precompiled artefact (the build's `ward compile-policy`),
    // not from a compile in the worker.
    const effective = (await page.locator("#effective").textContent()) ?? "";
    expect(effective, effective).toContain("loaded from the precompiled artefact");
    expect(effective).not.toContain("artefact not used");
    // And its token rows for the default model from the lift artefact beside it
    // (`pack.ward-tiny-code.wardlift`), not lifted in the worker.
    expect(effective, effective).toContain("token rows loaded from the lift artefact");
    // The effective policy's digest, the one the certificate names.
    await expect(page.locator("#policy-digest").textContent()).resolves.toMatch(/^sha256:[0-9a-f]{64}$/);
    // Paste insecure code into the editor: the finding is listed and underlined.
    await paste(page, "#prompt-editor", "import os\nos.system(user_input)\n");
    await page.waitForFunction(() => document.getElementById("prompt-findings")?.dataset.count === "1");
    await expect(page.locator("#prompt-findings").textContent()).resolves.toContain("python.os-system");
    await expect(page.locator("#prompt-editor .cm-lintRange-error").count()).resolves.toBeGreaterThan(0);
    await page.close();
  });

  it("a second visit works offline (service worker + Cache API)", async () => {
    const page = await open();
    await page.waitForFunction(() => document.querySelectorAll("#rules li").length > 10, undefined, { timeout: 60_000 });
    // Let the service worker take control, so the shell is cached.
    await page.waitForFunction(() => navigator.serviceWorker?.controller !== null, undefined, { timeout: 30_000 }).catch(() => page.reload());
    await page.reload();
    await page.waitForFunction(() => document.querySelectorAll("#rules li").length > 10, undefined, { timeout: 60_000 });
    await page.context().setOffline(true);
    try {
      await page.reload();
      await page.waitForFunction(() => document.querySelectorAll("#rules li").length > 10, undefined, { timeout: 60_000 });
      await paste(page, "#prompt-editor", "import os\nos.system(cmd)\n");
      await page.waitForFunction(() => document.getElementById("prompt-findings")?.dataset.count === "1");
    } finally {
      await page.context().setOffline(false);
    }
    await page.close();
  });

  it("shows a custom rule's compile error at its line and column", async () => {
    const page = await open();
    await waitState(page, ["ready", "error"]);
    await page.locator("summary", { hasText: "Custom rule" }).click();
    await paste(page, "#yaml-editor", "rules:\n  - id: custom.lookahead\n    message: x\n    severity: ERROR\n    languages: [python]\n    pattern-regex: 'foo(?=bar)'\n");
    await page.click("#apply-yaml");
    await page.waitForFunction(() => /Compile error/.test(document.getElementById("yaml-status")?.textContent ?? ""));
    const msg = (await page.locator("#yaml-status").textContent()) ?? "";
    expect(msg).toContain("custom.lookahead");
    expect(msg).toMatch(/line 6, column \d+/);
    // The error stays marked in the editor after the previous policy is restored.
    await page.waitForTimeout(500);
    await expect(page.locator("#yaml-editor .cm-lintRange-error").count()).resolves.toBe(1);
    await expect(page.locator("#yaml-editor .cm-lint-marker-error").count()).resolves.toBe(1);
    await page.close();
  });
});

describe.skipIf(!hasGenerator)("generation in the browser (wasm generator)", () => {
  it("generates an example with the policy: result and a certificate with zero findings", async () => {
    const page = await open();
    await waitState(page, ["ready"]);
    await pickExample(page, "command-injection");
    await page.click("#generate");
    // Mid-generation screenshot: as soon as the first step is on screen.
    await page.waitForFunction(() => document.querySelectorAll("#canvas-enforced .committed").length > 0 || document.body.dataset.state === "done", undefined, { timeout: 120_000 });
    await page.screenshot({ path: path.join(ARTEFACTS, "playground-mid-generation.png"), fullPage: true });
    await waitState(page, ["done", "error"]);
    expect(await page.evaluate(() => document.body.dataset.state)).toBe("done");
    expect(await page.locator("#certificate").getAttribute("data-verdict")).toBe("clean");
    expect(await page.locator("#certificate").getAttribute("data-findings")).toBe("0");
    await expect(page.locator("#canvas-enforced .mask").count()).resolves.toBe(0);
    await page.screenshot({ path: path.join(ARTEFACTS, "playground-after-generation.png"), fullPage: true });
    // The adversarial model (on by default) wants `os.system(cmd)`: the policy blocked it, and
    // each blocked place is a focusable mark whose tooltip names the rule and its CWE.
    const mark = page.locator("#canvas-enforced .blocked").first();
    await mark.focus();
    await expect(page.locator("#tip-enforced").isVisible()).resolves.toBe(true);
    await expect(page.locator("#tip-enforced").textContent()).resolves.toMatch(/python\.os-system.*CWE-78.*Probability mass removed/s);
    // Replay: step 0 shows every hole masked again.
    await page.locator("#slider").fill("0");
    await expect(page.locator("#canvas-enforced .mask").count()).resolves.toBeGreaterThan(0);
    // SARIF download.
    const [dl] = await Promise.all([page.waitForEvent("download"), page.click("#download-sarif")]);
    const sarif = JSON.parse(readFileSync((await dl.path()) as string, "utf8"));
    expect(sarif.version).toBe("2.1.0");
    await page.close();
  });

  it("the backend indicator follows the choice: WebGPU (SwiftShader here) or the CPU", async () => {
    const page = await open();
    await waitState(page, ["ready"]);
    await page.selectOption("#backend-choice", "cpu");
    await page.waitForFunction(() => document.getElementById("backend")?.dataset.backend === "cpu" && document.body.dataset.state === "ready", undefined, { timeout: 120_000 });
    await page.selectOption("#backend-choice", "webgpu");
    await waitState(page, ["ready", "error"]);
    const text = (await page.locator("#backend").textContent()) ?? "";
    const status = (await page.locator("#gen-status").textContent()) ?? "";
    // Either WebGPU with the adapter's name, or an error that says why there is none.
    expect(text.startsWith("WebGPU ·") || /WebGPU|adapter/i.test(status), `${text} / ${status}`).toBe(true);
    await page.close();
  });

  it("side by side: no policy vs enforced with the same seed, the difference reported", async () => {
    const page = await open();
    await waitState(page, ["ready"]);
    await pickExample(page, "command-injection");
    await page.check('input[name="mode"][value="both"]');
    await page.click("#generate");
    await waitState(page, ["done", "error"], 170_000);
    const diff = page.locator("#diff");
    await expect(diff.isVisible()).resolves.toBe(true);
    expect(await diff.getAttribute("data-findings-enforced")).toBe("0");
    expect(Number(await diff.getAttribute("data-findings-none"))).toBeGreaterThan(0);
    expect(await diff.getAttribute("data-differs")).toBe("true");
    const text = (await diff.textContent()) ?? "";
    expect(text).toMatch(/No policy: \d+ findings? \(python\.os-system/);
    expect(text).toMatch(/Enforced: 0 findings/);
    await page.screenshot({ path: path.join(ARTEFACTS, "playground-side-by-side.png"), fullPage: true });
    await page.close();
  });

  it("Stop works mid-generation", async () => {
    const page = await open();
    await waitState(page, ["ready"]);
    await paste(page, "#prompt-editor", "def handler(request):\n    <|hole:96|>\n");
    await page.fill("#steps", "96");
    await page.click("#generate");
    await page.waitForFunction(() => document.querySelectorAll("#canvas-enforced .committed").length > 0, undefined, { timeout: 120_000 });
    await page.click("#stop");
    expect(await waitState(page, ["stopped", "done", "error"])).toBe("stopped");
    await expect(page.locator("#canvas-enforced .mask").count()).resolves.toBeGreaterThan(0);
    await page.close();
  });

  it("a pasted custom rule is enforced on the next run", async () => {
    const page = await open();
    await waitState(page, ["ready"]);
    await pickExample(page, "weak-hash");
    // Forbid whatever the model wrote first, by a custom rule on its text.
    await page.click("#generate");
    await waitState(page, ["done"]);
    const first = (await page.locator("#canvas-enforced").textContent()) ?? "";
    const body = first.split("hashlib.")[1] ?? "";
    const word = /^\w+/.exec(body)?.[0];
    expect(word, `the model wrote an identifier after hashlib. (got ${JSON.stringify(body)})`).toBeTruthy();
    await page.locator("summary", { hasText: "Custom rule" }).click();
    await paste(page, "#yaml-editor", `rules:\n  - id: custom.no-${word}\n    message: not this one\n    severity: ERROR\n    languages: [python]\n    pattern-regex: 'hashlib\\.${word}\\b'\n`);
    await page.click("#apply-yaml");
    await page.waitForFunction(() => /Compiled/.test(document.getElementById("yaml-status")?.textContent ?? ""));
    await page.click("#generate");
    await waitState(page, ["done", "error"]);
    const second = (await page.locator("#canvas-enforced").textContent()) ?? "";
    expect(second).not.toMatch(new RegExp(`hashlib\\.${word}\\b`));
    expect(await page.locator("#certificate").getAttribute("data-findings")).toBe("0");
    await page.close();
  });

});

describe.skipIf(!hasWasm)("docs demo (wasm)", () => {
  it("works with every request outside 127.0.0.1 aborted, and offline on a second visit", async () => {
    const before = h.outside.length;
    const page = await open("demo/");
    const run = async () => {
      await page.locator("#demo-shell").locator("button", { hasText: "Generate" }).click();
      if (hasGenerator) {
        await page.waitForFunction(() => Number(document.body.dataset.done ?? 0) >= 1, undefined, { timeout: 120_000 });
        await expect(page.locator("#log").textContent()).resolves.toMatch(/done \(#demo-shell\): \d+ steps, verdict clean, 0 findings/);
      } else {
        // Policy-only wasm: every asset loads, then the element says the generator is missing.
        await page.waitForFunction(() => /error \(#demo-shell\)/.test(document.getElementById("log")?.textContent ?? ""), undefined, { timeout: 120_000 });
        await expect(page.locator("#log").textContent()).resolves.toContain("has no `Generator`");
      }
    };
    await run();
    await page.screenshot({ path: path.join(ARTEFACTS, "demo-after-generate.png"), fullPage: true });
    expect(h.outside.slice(before)).toEqual([]);
    // Second visit with the network cut: the service worker and the Cache API serve everything.
    await page.waitForFunction(() => navigator.serviceWorker?.controller !== null, undefined, { timeout: 30_000 }).catch(() => undefined);
    await page.reload();
    await page.context().setOffline(true);
    try {
      await page.reload();
      await run();
    } finally {
      await page.context().setOffline(false);
    }
    await page.close();
  });
});

describe("security of the pages", () => {
  it("no request left 127.0.0.1 and the CSP was never violated", async () => {
    // The demo page without generating, so this holds even without the wasm.
    const page = await open("demo/");
    await page.waitForTimeout(1500);
    const inPage = await page.evaluate(() => (window as unknown as { __csp: string[] }).__csp);
    expect(inPage).toEqual([]);
    await page.close();
    expect(h.outside).toEqual([]);
    expect(cspConsole).toEqual([]);
    expect(h.reports).toEqual([]);
  });
});
