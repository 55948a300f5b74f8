/**
 * `@ward/secure-codegen`: importing this module registers `<secure-codegen>`.
 *
 * ```html
 * <script type="module" src="/secure-codegen/secure-codegen.js"></script>
 * <secure-codegen model="/models/ward-tiny-code/" policy="/policies/python/pack.yaml"
 *   prompt="import subprocess&#10;def run(cmd):&#10;    return <|hole:12|>"></secure-codegen>
 * ```
 *
 * The worker (`worker.js`) and the wasm package (`wasm/`) are loaded from next to this module.
 *
 * @module
 */

import { SecureCodegen } from "./element/secure-codegen.component.js";

export { SecureCodegen, OBSERVED, parsePolicyAttribute, defaultWasmBase } from "./element/secure-codegen.component.js";
export type { DoneDetail, SecureCodegenEventMap } from "./element/secure-codegen.component.js";
export { WardClient, WardError } from "./client.js";
export type { GenerationHandle, InitOptions, GenerateOptions, WorkerLike } from "./client.js";
export * from "./protocol.js";

/** The tag name. */
export const TAG = "secure-codegen";

if (typeof customElements !== "undefined" && !customElements.get(TAG)) {
  customElements.define(TAG, SecureCodegen);
}
