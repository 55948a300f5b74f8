//! `Generator` (feature `model`): the `#[wasm_bindgen]` layer over [`crate::generator`].
//! The WebGPU device is initialised once per page (burn allows one initialisation) and kept.

use std::cell::RefCell;
use std::rc::Rc;

use ward_model::Device;
use ward_sampler::GenerateRequest;
use wasm_bindgen::prelude::*;

use crate::error::{Kind, WebError};
use crate::generator::{forward_async, load_model, BackendReport, GeneratorCore};
use crate::js::{to_js, to_js_error, Policy};

/// The page's WebGPU device: the device, the adapter's description, and whether the adapter
/// is a software one running on the CPU (SwiftShader, lavapipe).
#[derive(Clone)]
struct WebGpu {
    device: Device,
    adapter: String,
    software: bool,
}

thread_local! {
    /// The page's WebGPU device, or why there is none (tried once).
    static WEBGPU: RefCell<Option<Result<WebGpu, String>>> = const { RefCell::new(None) };
}

/// `ward_sampler::certificate::sha256_hex(parts)` computed by the browser's `crypto.subtle`
/// (the same bytes: each part's length as a little-endian `u64`, then the part), or None where
/// there is no SubtleCrypto (an insecure context) or it fails; the caller then hashes in wasm.
/// On a cold page the wasm SHA-256 of the default model's 20 MB took about 1 s (V8 runs it
/// before it is optimised), SubtleCrypto a few tens of milliseconds.
pub async fn subtle_sha256_hex(parts: &[&[u8]]) -> Option<String> {
    use js_sys::{Function, Promise, Reflect, Uint8Array};
    let crypto = Reflect::get(&js_sys::global(), &"crypto".into()).ok()?;
    let subtle = Reflect::get(&crypto, &"subtle".into()).ok()?;
    if subtle.is_undefined() || subtle.is_null() {
        return None;
    }
    let digest: Function = Reflect::get(&subtle, &"digest".into())
        .ok()?
        .dyn_into()
        .ok()?;
    let total: usize = parts.iter().map(|p| 8 + p.len()).sum();
    let buf = Uint8Array::new_with_length(u32::try_from(total).ok()?);
    let mut at = 0u32;
    for p in parts {
        let n = p.len() as u32;
        buf.subarray(at, at + 8)
            .copy_from(&(p.len() as u64).to_le_bytes());
        buf.subarray(at + 8, at + 8 + n).copy_from(p);
        at += 8 + n;
    }
    let promise: Promise = digest
        .call2(&subtle, &"SHA-256".into(), &buf)
        .ok()?
        .dyn_into()
        .ok()?;
    let out = wasm_bindgen_futures::JsFuture::from(promise).await.ok()?;
    Some(ward_policy::digest::sha256_text(
        &Uint8Array::new(&out).to_vec(),
    ))
}

/// The WebGPU device, initialised on first use and kept for the page.
async fn webgpu() -> Result<WebGpu, String> {
    if let Some(r) = WEBGPU.with(|w| w.borrow().clone()) {
        return r;
    }
    let r = match Device::wgpu_options().init_with_setup_async().await {
        Ok((device, setup)) => {
            let info = setup.adapter.get_info();
            // wgpu's `DeviceType::Cpu` (compared by name: ward-web does not name wgpu itself).
            let software = format!("{:?}", info.device_type) == "Cpu";
            // SwiftShader reports an empty name; say what it is instead.
            let adapter = if info.name.is_empty() {
                format!(
                    "unnamed {:?} adapter ({:?}, driver {:?})",
                    info.device_type, info.backend, info.driver
                )
            } else {
                info.name
            };
            Ok(WebGpu {
                device,
                adapter,
                software,
            })
        }
        Err(e) => Err(format!("no WebGPU device: {e}")),
    };
    WEBGPU.with(|w| *w.borrow_mut() = Some(r.clone()));
    r
}

fn js_err(e: WebError) -> JsValue {
    to_js_error(&e)
}

/// A model loaded for generation, step by step. JavaScript owns the loop.
#[wasm_bindgen]
pub struct Generator {
    core: Rc<RefCell<GeneratorCore>>,
    device: Device,
    webgpu: bool,
}

#[wasm_bindgen]
impl Generator {
    /// Loads the model from the bytes of `config.json`, `model.safetensors` and
    /// `tokenizer.json` on `backend`: `"auto"` (WebGPU when an adapter is found, else the
    /// CPU), `"webgpu"` (an error without an adapter) or `"cpu"`. `name` (optional) goes into
    /// the certificate.
    pub async fn create(
        config: Vec<u8>,
        weights: Vec<u8>,
        tokenizer: Vec<u8>,
        backend: String,
        name: Option<String>,
    ) -> Result<Generator, JsValue> {
        crate::clock::install();
        let (device, report) = match backend.as_str() {
            "cpu" => (Device::flex(), BackendReport { backend: "cpu".into(), adapter: None, reason: None }),
            "webgpu" | "auto" => match webgpu().await {
                // A software adapter emulates the GPU on the CPU, far slower than the CPU
                // backend itself (measured in headless Chromium on SwiftShader: about 12 s a
                // step against 0.1 s): `auto` takes the CPU then; `webgpu` still means WebGPU.
                Ok(gpu) if gpu.software && backend == "auto" => (
                    Device::flex(),
                    BackendReport {
                        backend: "cpu".into(),
                        adapter: None,
                        reason: Some(format!(
                            "the WebGPU adapter ({}) is a software one on the CPU, slower than the CPU backend",
                            gpu.adapter
                        )),
                    },
                ),
                Ok(gpu) => (
                    gpu.device,
                    BackendReport { backend: "webgpu".into(), adapter: Some(gpu.adapter), reason: None },
                ),
                Err(reason) if backend == "auto" => {
                    (Device::flex(), BackendReport { backend: "cpu".into(), adapter: None, reason: Some(reason) })
                }
                Err(reason) => return Err(js_err(WebError::new(Kind::Backend, reason))),
            },
            other => {
                return Err(js_err(WebError::argument(format!(
                    "backend `{other}`: expected \"auto\", \"webgpu\" or \"cpu\""
                ))))
            }
        };
        let name = name.unwrap_or_else(|| "model".to_string());
        let digest = subtle_sha256_hex(&[&config, &weights]).await;
        let loaded =
            load_model(&config, weights, &tokenizer, &name, &device, digest).map_err(js_err)?;
        let webgpu = report.backend == "webgpu";
        Ok(Generator {
            core: Rc::new(RefCell::new(GeneratorCore::new(loaded, report))),
            device,
            webgpu,
        })
    }

    /// `{backend: "webgpu" | "cpu", adapter, reason}`.
    pub fn backend(&self) -> Result<JsValue, JsValue> {
        to_js(&self.core.borrow().backend)
    }

    /// Vocabulary size of the model.
    #[wasm_bindgen(getter, js_name = vocabSize)]
    pub fn vocab_size(&self) -> usize {
        self.core.borrow().loaded.info.vocab_size
    }

    /// Starts a generation of `request` (the `GenerateRequest` JSON, snake_case), enforcing
    /// `policy` when `request.enforce` (default true); with `enforce: false` the policy still
    /// re-scans the output for the certificate's findings. `oracle` (optional): hole-fill text
    /// the model is made to prefer (the oracle adversary of `ward generate --oracle-file`).
    /// Returns the `start` event.
    pub fn start(
        &self,
        policy: &Policy,
        request: JsValue,
        oracle: Option<String>,
    ) -> Result<JsValue, JsValue> {
        self.start_with(Some(policy.core().policy.clone()), request, oracle)
    }

    /// Lifts `policy` to this model's vocabulary now (the token rows the first `start` with
    /// it would build), so that the first generation starts without that wait; the web app's
    /// worker calls it once a model and a policy are loaded. Returns the milliseconds taken.
    pub fn prepare(&self, policy: &Policy) -> Result<f64, JsValue> {
        self.core
            .borrow_mut()
            .prepare(Some(policy.core().policy.clone()))
            .map_err(js_err)
    }

    /// Like `prepare`, with the token rows loaded from a lift artefact (`rows`: the bytes of
    /// `ward compile-policy --lift-tokenizer tokenizer.json --lift-out FILE` for this policy
    /// and this model's tokenizer) instead of built: several times faster than building
    /// them. Throws `kind: "artefact"` with the reason when the artefact does not belong to
    /// this policy (or its compiler version) and tokenizer, has another format version or is
    /// corrupt; the generator stays usable. Returns the milliseconds taken.
    #[wasm_bindgen(js_name = prepareWithRows)]
    pub fn prepare_with_rows(&self, policy: &Policy, rows: &[u8]) -> Result<f64, JsValue> {
        self.core
            .borrow_mut()
            .prepare_with_rows(policy.core().policy.clone(), rows)
            .map_err(js_err)
    }

    /// Starts a generation without any policy (`request.enforce` must be false): nothing is
    /// enforced and the certificate has no findings scan. Otherwise as `start`.
    #[wasm_bindgen(js_name = startWithoutPolicy)]
    pub fn start_without_policy(
        &self,
        request: JsValue,
        oracle: Option<String>,
    ) -> Result<JsValue, JsValue> {
        self.start_with(None, request, oracle)
    }

    /// One denoising step: a Promise of the `step` event, or of `undefined` when the
    /// generation is finished or was cancelled.
    pub async fn step(&self) -> Result<JsValue, JsValue> {
        let ev = if self.webgpu {
            let plan = self.core.borrow_mut().plan().map_err(js_err)?;
            let Some((ids, positions)) = plan else {
                // Finished: the result (and its certificate) is made now, as on the CPU.
                self.core.borrow_mut().finish().map_err(js_err)?;
                return Ok(JsValue::UNDEFINED);
            };
            let model = self.core.borrow().loaded.source.model().clone();
            let t0 = crate::clock::now_ms();
            let rows = forward_async(&model, &ids, &positions)
                .await
                .map_err(js_err)?;
            let forward_ms = crate::clock::now_ms() - t0;
            self.core
                .borrow_mut()
                .step_precomputed(ids, positions, rows, forward_ms)
                .map_err(js_err)?
        } else {
            self.core.borrow_mut().step_sync().map_err(js_err)?
        };
        match ev {
            Some(ev) => to_js(&ev),
            None => Ok(JsValue::UNDEFINED),
        }
    }

    /// Cancels the generation in progress: later `step()` calls give `undefined`.
    pub fn cancel(&self) {
        self.core.borrow_mut().cancel();
    }

    /// The finished generation: `{type: "result", text, holes, tokens, steps, …, certificate}`.
    pub fn result(&self) -> Result<JsValue, JsValue> {
        let c = self.core.borrow();
        to_js(c.result().map_err(js_err)?)
    }

    /// The certificate of the finished generation (`format: "ward-certificate/1"`).
    pub fn certificate(&self) -> Result<JsValue, JsValue> {
        let c = self.core.borrow();
        to_js(&c.result().map_err(js_err)?.certificate)
    }

    /// The certificate as SARIF 2.1.0 text.
    pub fn sarif(&self) -> Result<String, JsValue> {
        let v = self.core.borrow().sarif().map_err(js_err)?;
        serde_json::to_string_pretty(&v).map_err(|e| js_err(WebError::argument(e.to_string())))
    }

    /// True while a generation is in progress.
    #[wasm_bindgen(js_name = isRunning)]
    pub fn is_running(&self) -> bool {
        self.core.borrow().is_running()
    }
}

impl Generator {
    fn start_with(
        &self,
        policy: Option<std::sync::Arc<ward_policy::CompiledPolicy>>,
        request: JsValue,
        oracle: Option<String>,
    ) -> Result<JsValue, JsValue> {
        if request.is_undefined() || request.is_null() {
            return Err(js_err(WebError::new(
                Kind::Request,
                "request: expected an object with at least `prompt`",
            )));
        }
        // Through JSON, not serde-wasm-bindgen: that one reads only the known fields of an
        // object, so a misspelt field (`stepz`) would be ignored instead of refused.
        let json = js_sys::JSON::stringify(&request)
            .ok()
            .and_then(|s| s.as_string())
            .ok_or_else(|| {
                js_err(WebError::new(
                    Kind::Request,
                    "request: not representable as JSON",
                ))
            })?;
        let req: GenerateRequest = serde_json::from_str(&json)
            .map_err(|e| js_err(WebError::new(Kind::Request, format!("request: {e}"))))?;
        let ev = self
            .core
            .borrow_mut()
            .start(policy, &req, oracle.as_deref())
            .map_err(js_err)?;
        to_js(&ev)
    }

    /// The device the model runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }
}
