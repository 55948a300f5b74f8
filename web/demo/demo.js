// The docs demo's own script: logs the component's events (they bubble and are composed).
const log = document.getElementById("log");
function line(text) {
  log.textContent += `${text}\n`;
}
let steps = 0;
document.addEventListener("progress", (e) => {
  if (e.detail.done) line(`progress: ${e.detail.asset} ${(e.detail.loaded / 1048576).toFixed(1)} MB (${e.detail.source})`);
});
document.addEventListener("step", () => {
  steps++;
});
document.addEventListener("done", (e) => {
  const c = e.detail.certificate;
  line(`done (#${e.target.id}): ${steps} steps, verdict ${c.verdict}, ${c.findings.length} findings, ${c.blocked_total} blocked, ${e.detail.timings.total_ms.toFixed(0)} ms`);
  steps = 0;
  document.body.dataset.done = String(Number(document.body.dataset.done ?? 0) + 1);
});
document.addEventListener("error", (e) => {
  if (e.detail instanceof Error) line(`error (#${e.target.id}): ${e.detail.message}`);
});
if ("serviceWorker" in navigator) {
  navigator.serviceWorker.register("./sw.js", { type: "module" }).catch((e) => console.warn(`service worker not registered (no offline copy of the page): ${e.message}`));
}
