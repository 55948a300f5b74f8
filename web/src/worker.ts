/**
 * The Ward Web Worker: owns the wasm module, the assets and the generation loop. The page
 * talks to it only through the messages of `protocol.ts` (see `client.ts`).
 *
 * @module
 */

import { WorkerCore } from "./worker/core.js";
import { loadWasmEngine } from "./worker/wasm-engine.js";
import type { WorkerReport } from "./protocol.js";

declare const self: DedicatedWorkerGlobalScope;

const core = new WorkerCore(
  {
    origin: self.location.origin,
    base: self.location.href,
    fetch: (input, init) => fetch(input, init),
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  },
  loadWasmEngine,
  (report: WorkerReport, transfer?: Transferable[]) => self.postMessage(report, transfer ?? []),
);

self.addEventListener("message", (ev: MessageEvent) => {
  void core.handle(ev.data);
});
