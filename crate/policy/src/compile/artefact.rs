//! Precompiled policy artefacts: a versioned, checksummed binary form of a
//! [`CompiledPolicy`] (its pack files, the enforced modules and every rule's reporting DFA),
//! loaded instead of compiling (the browser's start-up path).
//!
//! Layout (little-endian): a 32-byte header — magic `WARDPOL\0`, format version (`u32`),
//! flags (`u32`, 0), payload length (`u64`), FNV-1a-64 checksum of the payload (`u64`) —
//! then the payload: the ward-policy version that wrote it, the top pack and the pack files
//! (name → text, resolved again on load so rules keep their messages, metadata and lines),
//! the enabled rule ids (checked against that resolution), the modules and the reporting
//! DFAs. The same policy always gives the same bytes. A different format version, a bad checksum, truncation or
//! trailing bytes are errors that say which.
//!
//! ```
//! use std::collections::BTreeMap;
//! use ward_policy::{CompiledPolicy, EffectivePolicy, PolicyBuilder};
//! let mut files = BTreeMap::new();
//! files.insert("p.yaml".to_string(), "pack: p\nrules:\n  - id: no-eval\n    message: m\n    severity: ERROR\n    languages: [python]\n    pattern-regex: 'eval\\('\n".to_string());
//! let eff = EffectivePolicy::from_files(&files, "p.yaml").unwrap();
//! let policy = PolicyBuilder::new().compile(&eff).unwrap();
//! let bytes = policy.to_artefact(&files, "p.yaml");
//! let loaded = CompiledPolicy::from_artefact(&bytes).unwrap();
//! assert_eq!(loaded.check(b"x = eval(y)").len(), 1);
//! ```

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;

use super::report::{ReportDfa, ReportSource};
use super::{CompileStats, CompiledPolicy, ModuleStats, PolicyConfig};
use crate::error::{CompileError, ErrorKind};
use crate::module::{Module, RuleIndex, StateId};
use crate::nfa::Arena;
use crate::pack::EffectivePolicy;

/// The artefact format version this build reads and writes (2: code rules read the code
/// view, so modules compiled by version 1 enforce another meaning).
pub const ARTEFACT_FORMAT: u32 = 2;
const MAGIC: &[u8; 8] = b"WARDPOL\0";
const HEADER: usize = 32;

fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn err(msg: impl Into<String>) -> CompileError {
    CompileError::new(
        ErrorKind::BadValue,
        format!("policy artefact: {}", msg.into()),
    )
}

struct W(Vec<u8>);

impl W {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn len(&mut self, n: usize) {
        self.u32(n as u32);
    }
    fn str(&mut self, s: &str) {
        self.len(s.len());
        self.0.extend_from_slice(s.as_bytes());
    }
    fn u32s(&mut self, v: impl ExactSizeIterator<Item = u32>) {
        self.len(v.len());
        for x in v {
            self.u32(x);
        }
    }
    fn module(&mut self, m: &Module) {
        self.module_with(m, &[]);
    }
    /// A module with `extra` attribution entries after its own (for the loader's tests).
    fn module_with(&mut self, m: &Module, extra: &[(u32, u8, &[RuleIndex])]) {
        self.u32s(m.rules.iter().copied());
        self.0.extend_from_slice(&m.classes);
        self.len(m.num_classes);
        self.u32s(m.trans.iter().map(|s| s.0));
        self.u32(m.start.0);
        self.len(m.clean_end.len());
        self.0.extend(m.clean_end.iter().map(|&b| b as u8));
        self.len(m.attributions().count() + extra.len());
        let extra = extra.iter().map(|&(s, c, r)| (StateId(s), c, r));
        for (s, c, rules) in m.attributions().chain(extra) {
            self.u32(s.0);
            self.u8(c);
            self.u32s(rules.iter().copied());
        }
        let mut end: Vec<_> = m.end_attribution.iter().collect();
        end.sort_by_key(|(k, _)| **k);
        self.len(end.len());
        for (s, rules) in end {
            self.u32(s.0);
            self.u32s(rules.iter().copied());
        }
    }
}

struct R<'a> {
    b: &'a [u8],
    at: usize,
}

impl R<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], CompileError> {
        if self.b.len() - self.at < n {
            return Err(err(format!("truncated at byte {} of the payload", self.at)));
        }
        let s = &self.b[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, CompileError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, CompileError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().unwrap_or([0; 4]),
        ))
    }
    fn len(&mut self) -> Result<usize, CompileError> {
        let n = self.u32()? as usize;
        // Every element takes at least one byte: a length past the end is corrupt (and must
        // not allocate).
        if n > self.b.len() - self.at {
            return Err(err(format!(
                "length {n} at byte {} runs past the end",
                self.at - 4
            )));
        }
        Ok(n)
    }
    fn str(&mut self) -> Result<String, CompileError> {
        let n = self.len()?;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| err("a string is not UTF-8"))
    }
    fn u32s(&mut self) -> Result<Vec<u32>, CompileError> {
        let n = self.len()?;
        (0..n).map(|_| self.u32()).collect()
    }
    fn module(&mut self, n_rules: usize) -> Result<Module, CompileError> {
        let rules = self.u32s()?;
        let mut classes = [0u8; 256];
        classes.copy_from_slice(self.take(256)?);
        let num_classes = self.len()?;
        let trans: Vec<StateId> = self.u32s()?.into_iter().map(StateId).collect();
        let start = StateId(self.u32()?);
        let n_states = self.len()?;
        let clean_end: Vec<bool> = self.take(n_states)?.iter().map(|&b| b != 0).collect();
        // The attributed transitions, into a dense table of violation ids (rule sets
        // interned); one outside the tables makes them inconsistent.
        let mut viol = vec![0u16; trans.len()];
        let mut viol_sets: Vec<Vec<RuleIndex>> = Vec::new();
        let mut viol_ids: FxHashMap<Vec<RuleIndex>, u16> = FxHashMap::default();
        let mut in_range = true;
        for _ in 0..self.len()? {
            let s = self.u32()? as usize;
            let c = self.u8()? as usize;
            let rules = self.u32s()?;
            if s >= n_states || c >= num_classes || trans.len() != n_states * num_classes {
                in_range = false;
                continue;
            }
            let id = match viol_ids.get(&rules) {
                Some(&id) => id,
                None if viol_sets.len() < u16::MAX as usize => {
                    viol_sets.push(rules.clone());
                    viol_ids.insert(rules, viol_sets.len() as u16);
                    viol_sets.len() as u16
                }
                None => {
                    in_range = false;
                    continue;
                }
            };
            viol[s * num_classes + c] = id;
        }
        let mut end_attribution = FxHashMap::default();
        for _ in 0..self.len()? {
            let s = StateId(self.u32()?);
            end_attribution.insert(s, self.u32s()?);
        }
        // Structural checks, so that a corrupt table cannot index out of bounds later.
        let ok = num_classes > 0
            && num_classes <= 256
            && n_states > 0
            && trans.len() == n_states * num_classes
            && classes.iter().all(|&c| (c as usize) < num_classes)
            && (start.0 as usize) < n_states
            && trans.iter().all(|s| (s.0 as usize) < n_states)
            && rules.iter().all(|&r| (r as usize) < n_rules)
            && in_range
            && viol_sets
                .iter()
                .chain(end_attribution.values())
                .flatten()
                .all(|&r| (r as usize) < n_rules);
        if !ok {
            return Err(err("a module's tables are inconsistent"));
        }
        Ok(Module {
            rules,
            classes,
            num_classes,
            trans,
            start,
            clean_end,
            viol,
            viol_sets,
            end_attribution,
        })
    }
}

impl CompiledPolicy {
    /// The artefact of this policy. `files` and `top` must be what it was compiled from
    /// (with [`EffectivePolicy::from_files`]); every reporting DFA is built now so that the
    /// loaded policy never compiles.
    pub fn to_artefact(&self, files: &BTreeMap<String, String>, top: &str) -> Vec<u8> {
        let mut w = W(Vec::new());
        w.str(env!("CARGO_PKG_VERSION"));
        w.str(top);
        w.len(files.len());
        for (k, v) in files {
            w.str(k);
            w.str(v);
        }
        w.len(self.rules.len());
        for r in &self.rules {
            w.str(&r.id);
        }
        w.len(self.modules.len());
        for m in &self.modules {
            w.module(m);
        }
        w.len(self.rules.len());
        for ri in 0..self.rules.len() {
            match self.report.get(ri) {
                Some(rd) => {
                    w.u8(1);
                    w.module(&rd.dfa);
                    w.u32s(rd.reset.iter().map(|s| s.0));
                }
                None => w.u8(0),
            }
        }
        let payload = w.0;
        let mut out = Vec::with_capacity(HEADER + payload.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&ARTEFACT_FORMAT.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        out.extend_from_slice(&fnv1a64(&payload).to_le_bytes());
        out.extend_from_slice(&payload);
        out
    }

    /// Loads an artefact written by [`CompiledPolicy::to_artefact`] (by this format version)
    /// without compiling: the pack files are resolved again (YAML only), the tables are read.
    pub fn from_artefact(bytes: &[u8]) -> Result<CompiledPolicy, CompileError> {
        let t0 = crate::clock::Instant::now();
        let payload = checked_payload(bytes)?;
        let mut r = R { b: payload, at: 0 };
        let ArtefactSources { top, files, .. } = read_sources(&mut r)?;
        let n_rules = r.len()?;
        let ids: Vec<String> = (0..n_rules).map(|_| r.str()).collect::<Result<_, _>>()?;
        let eff = EffectivePolicy::from_files(&files, &top)?;
        let rules: Vec<_> = eff.rules.iter().filter(|r| r.enabled).cloned().collect();
        if rules.iter().map(|r| &r.id).ne(ids.iter()) {
            return Err(err(
                "its rules do not match its pack files (written by another version?)",
            ));
        }
        let n_mod = r.len()?;
        let modules: Vec<Module> = (0..n_mod)
            .map(|_| r.module(n_rules))
            .collect::<Result<_, _>>()?;
        if r.len()? != n_rules {
            return Err(err("the reporting DFAs do not match the rules"));
        }
        let mut dfas = Vec::with_capacity(n_rules);
        let mut parts = Vec::with_capacity(n_rules);
        for _ in 0..n_rules {
            let cell = std::sync::OnceLock::new();
            if r.u8()? == 1 {
                let dfa = r.module(n_rules)?;
                let reset: Vec<StateId> = r.u32s()?.into_iter().map(StateId).collect();
                if reset.len() != dfa.num_states()
                    || reset.iter().any(|s| s.as_usize() >= dfa.num_states())
                {
                    return Err(err("a reporting DFA's reset table is inconsistent"));
                }
                let _ = cell.set(Some(ReportDfa { dfa, reset }));
            } else {
                let _ = cell.set(None);
            }
            dfas.push(cell);
            parts.push(std::sync::Mutex::new(None));
        }
        if r.at != payload.len() {
            return Err(err(format!("{} trailing bytes", payload.len() - r.at)));
        }
        let span_finder = std::sync::Arc::new(crate::span::SpanFinder::build(&rules)?);
        let module_stats = modules.iter().map(|m| ModuleStats::of(m, &rules)).collect();
        let memory_bytes = modules.iter().map(|m| m.memory_bytes()).sum();
        Ok(CompiledPolicy {
            name: eff.name.clone(),
            effective: eff,
            rules,
            modules,
            report: std::sync::Arc::new(ReportSource {
                arena: Arena::default(),
                alts: Vec::new(),
                rule_alts: vec![Vec::new(); n_rules],
                config: PolicyConfig::default(),
                dfas,
                parts,
                spent_ns: std::sync::atomic::AtomicU64::new(0),
            }),
            stats: CompileStats {
                modules: module_stats,
                compile_time: t0.elapsed(),
                parse_time: std::time::Duration::ZERO,
                memory_bytes,
            },
            span_finder,
            digest: std::sync::OnceLock::new(),
        })
    }
}

/// What an artefact was compiled from: the top pack and the pack files (name → text), as given
/// to [`CompiledPolicy::to_artefact`], and the ward-policy version that wrote it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArtefactSources {
    /// The ward-policy version that wrote the artefact.
    pub writer: String,
    /// The top pack's file name (a key of `files`).
    pub top: String,
    /// The pack files, name → text.
    pub files: BTreeMap<String, String>,
}

impl ArtefactSources {
    /// Whether these are the pack files `files` with top `top`, up to a common folder prefix
    /// (`ward compile-policy` keys files relative to the folder that holds them all, such as
    /// `python/pack.yaml`; a web page names them by URL path, such as
    /// `policies/python/pack.yaml`): the same texts at the same relative paths, and no other
    /// file. The error names the first difference.
    pub fn matches(&self, files: &BTreeMap<String, String>, top: &str) -> Result<(), String> {
        let prefix = top
            .strip_suffix(self.top.as_str())
            .filter(|p| p.is_empty() || p.ends_with('/'))
            .ok_or_else(|| format!("its top pack is `{}`, not `{top}`", self.top))?;
        for (k, v) in &self.files {
            let name = format!("{prefix}{k}");
            match files.get(&name) {
                None => {
                    return Err(format!(
                        "it was compiled with `{name}`, which is not among the given files"
                    ))
                }
                Some(text) if text != v => {
                    return Err(format!("`{name}` has changed since it was compiled"))
                }
                Some(_) => {}
            }
        }
        if let Some(extra) = files.keys().find(|k| {
            k.strip_prefix(prefix)
                .is_none_or(|rel| !self.files.contains_key(rel))
        }) {
            return Err(format!(
                "`{extra}` is not among the files it was compiled from"
            ));
        }
        Ok(())
    }
}

/// Reads what an artefact was compiled from, without loading its tables (the header, format
/// version and checksum are checked as by [`CompiledPolicy::from_artefact`]): a caller with
/// pack files in hand uses it to tell whether a precompiled artefact is theirs.
pub fn artefact_sources(bytes: &[u8]) -> Result<ArtefactSources, CompileError> {
    let payload = checked_payload(bytes)?;
    read_sources(&mut R { b: payload, at: 0 })
}

/// The payload of an artefact whose header, format version, length and checksum are right.
fn checked_payload(bytes: &[u8]) -> Result<&[u8], CompileError> {
    if bytes.len() < HEADER || &bytes[..8] != MAGIC {
        return Err(err("not a Ward policy artefact (no `WARDPOL` header)"));
    }
    let word = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap_or([0; 4]));
    let format = word(8);
    if format != ARTEFACT_FORMAT {
        return Err(err(format!(
            "format version {format}, but this build of ward-policy ({}) reads version {ARTEFACT_FORMAT}: rebuild it with `ward compile-policy`",
            env!("CARGO_PKG_VERSION")
        )));
    }
    let len = u64::from_le_bytes(bytes[16..24].try_into().unwrap_or([0; 8]));
    let sum = u64::from_le_bytes(bytes[24..32].try_into().unwrap_or([0; 8]));
    let payload = &bytes[HEADER..];
    if payload.len() as u64 != len {
        return Err(err(format!(
            "the header says {len} payload bytes, the artefact has {} (truncated or padded)",
            payload.len()
        )));
    }
    if fnv1a64(payload) != sum {
        return Err(err("checksum mismatch: the artefact is corrupt"));
    }
    Ok(payload)
}

/// The writer, top and files at the start of a payload.
fn read_sources(r: &mut R<'_>) -> Result<ArtefactSources, CompileError> {
    let writer = r.str()?;
    let top = r.str()?;
    let mut files = BTreeMap::new();
    for _ in 0..r.len()? {
        let k = r.str()?;
        files.insert(k, r.str()?);
    }
    Ok(ArtefactSources { writer, top, files })
}

/// The rule index type is `u32` in the format.
const _: fn(RuleIndex) -> u32 = |r| r;

#[cfg(test)]
mod tests {
    use super::*;

    /// A module's bytes as the writer lays them out, with an extra attribution entry.
    fn module_bytes(m: &Module, extra: Option<(u32, u8)>) -> Vec<u8> {
        let mut w = W(Vec::new());
        match extra {
            Some((s, c)) => w.module_with(m, &[(s, c, &[0])]),
            None => w.module(m),
        }
        w.0
    }

    #[test]
    fn modules_round_trip_and_attributions_outside_the_tables_are_refused() {
        let yaml = "pack: t\nrules:\n  - id: no-eval\n    message: m\n    severity: ERROR\n    languages: [python]\n    pattern-regex: 'eval\\('\n";
        let p = crate::PolicyBuilder::new()
            .compile_str(yaml, "t.yaml")
            .expect("compiles");
        let m = &p.modules()[0];
        assert!(
            m.attributions().count() > 0,
            "a violating transition is attributed"
        );
        let back = R {
            b: &module_bytes(m, None),
            at: 0,
        }
        .module(1)
        .expect("reads back");
        assert_eq!(back.fingerprint(), m.fingerprint());
        for (s, c) in [
            (m.num_states() as u32, 0u8),
            (0, m.num_classes() as u8),
            (u32::MAX, 255),
        ] {
            let e = R {
                b: &module_bytes(m, Some((s, c))),
                at: 0,
            }
            .module(1)
            .expect_err("an attribution outside the tables is refused");
            assert!(e.to_string().contains("inconsistent"), "{e}");
        }
    }
}
