//! Precomputed token rows (the lift artefact): every module's rows of a [`TokenPolicy`] in a
//! versioned, checksummed binary form, bound to exactly the modules and the vocabulary they
//! were built for, so that a caller that ships the rows with the policy (the browser, where
//! the bulk lift runs on one thread and cold) loads them instead of building them.
//!
//! Layout: magic `WARDLIFT`, format version (`u32`), flags (`u32`, 0), payload length
//! (`u64`), checksum of the payload (`u64`, `ward_policy::digest::Fingerprint`) — all little-endian —
//! then the payload: the vocabulary's fingerprint and size, the number of modules, and per
//! module its fingerprint, its number of states and every state's row (the live states one
//! token reaches, as ascending deltas; the violating token ranges of the trie order, as gaps
//! and lengths; whether end tokens violate; the rules completed, in walk order), all as
//! LEB128 varints. What can be derived (the bitsets, the violating count, the inverse index)
//! is rebuilt on load. The same rows always give the same bytes.

use super::*;

/// The artefact's magic bytes.
const MAGIC: &[u8; 8] = b"WARDLIFT";

/// Format version of the lift artefact; bumped whenever the rows' layout or meaning changes.
pub const LIFT_FORMAT_VERSION: u32 = 1;

/// Header bytes before the payload.
const HEADER: usize = 8 + 4 + 4 + 8 + 8;

/// Checksum of `bytes`: their [`ward_policy::digest::Fingerprint`], seeded with the length.
fn checksum(bytes: &[u8]) -> u64 {
    let mut h = ward_policy::digest::Fingerprint::seeded(bytes.len() as u64);
    h.bytes(bytes);
    h.finish()
}

/// Why a lift artefact was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiftArtefactError(pub String);

impl std::fmt::Display for LiftArtefactError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "lift artefact: {}", self.0)
    }
}

impl std::error::Error for LiftArtefactError {}

fn bad(msg: impl Into<String>) -> LiftArtefactError {
    LiftArtefactError(msg.into())
}

fn put(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A reader over the payload, every read bounds-checked.
struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn u64_le(&mut self) -> Result<u64, LiftArtefactError> {
        let s = self
            .b
            .get(self.at..self.at + 8)
            .ok_or_else(|| bad(format!("truncated at payload byte {}", self.at)))?;
        self.at += 8;
        Ok(u64::from_le_bytes(s.try_into().expect("8 bytes")))
    }

    fn var(&mut self) -> Result<u64, LiftArtefactError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self
                .b
                .get(self.at)
                .ok_or_else(|| bad(format!("truncated at payload byte {}", self.at)))?;
            self.at += 1;
            v |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(bad(format!("varint too long at payload byte {}", self.at)))
    }

    /// A varint that must be at most `max` (`what` names it in the error).
    fn bounded(&mut self, max: u64, what: &dyn Fn() -> String) -> Result<u64, LiftArtefactError> {
        let at = self.at;
        let v = self.var()?;
        if v > max {
            return Err(bad(format!(
                "{} is {v}, more than {max} (payload byte {at})",
                what()
            )));
        }
        Ok(v)
    }
}

impl TokenPolicy {
    /// The lift artefact of this token policy: every module's token rows (filled now if
    /// they are not yet), bound to these modules and this vocabulary. Load it with
    /// [`TokenPolicy::load_rows_artefact`] into a token policy of the same compiled policy
    /// and vocabulary.
    pub fn rows_artefact(&self) -> Vec<u8> {
        let mut p = Vec::new();
        p.extend_from_slice(&self.vocab.fingerprint().to_le_bytes());
        put(&mut p, self.vocab.len() as u64);
        put(&mut p, self.lifts.len() as u64);
        for mi in 0..self.lifts.len() {
            p.extend_from_slice(&self.module(mi).fingerprint().to_le_bytes());
            let rows = self.rows(mi);
            put(&mut p, rows.len() as u64);
            for row in rows {
                put(&mut p, row.any.len() as u64);
                let mut prev = 0u32;
                for (k, &s) in row.any.iter().enumerate() {
                    put(&mut p, if k == 0 { s } else { s - prev - 1 } as u64);
                    prev = s;
                }
                put(&mut p, row.viol_ranges.len() as u64);
                let mut end = 0u32;
                for &(a, b) in &row.viol_ranges {
                    put(&mut p, (a - end) as u64);
                    put(&mut p, (b - a) as u64);
                    end = b;
                }
                p.push(row.viol_end as u8);
                put(&mut p, row.viol_rules.len() as u64);
                for &r in &row.viol_rules {
                    put(&mut p, r as u64);
                }
            }
        }
        let mut out = Vec::with_capacity(HEADER + p.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&LIFT_FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(p.len() as u64).to_le_bytes());
        out.extend_from_slice(&checksum(&p).to_le_bytes());
        out.extend_from_slice(&p);
        out
    }

    /// Installs the token rows of a lift artefact ([`TokenPolicy::rows_artefact`]) instead of
    /// building them: every module whose rows are not filled yet gets the artefact's rows
    /// (the same rows the bulk lift builds). Refused, with the reason and changing nothing,
    /// when the artefact is not one (magic), has another format version, is truncated or
    /// corrupt (checksum), was built for another vocabulary or other modules (another
    /// policy, or the same policy compiled by another version of the compiler), or holds a
    /// row that does not fit its module. Returns the number of modules whose rows it filled.
    pub fn load_rows_artefact(&self, bytes: &[u8]) -> Result<usize, LiftArtefactError> {
        if bytes.len() < HEADER || &bytes[..8] != MAGIC {
            return Err(bad("not a lift artefact (no WARDLIFT header)"));
        }
        let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().expect("4"));
        let u64_at = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().expect("8"));
        let version = u32_at(8);
        if version != LIFT_FORMAT_VERSION {
            return Err(bad(format!(
                "format version {version}, this build reads version {LIFT_FORMAT_VERSION}: rebuild it with this version of ward"
            )));
        }
        let len = u64_at(16);
        let payload = &bytes[HEADER..];
        if payload.len() as u64 != len {
            return Err(bad(format!(
                "the payload has {} bytes, the header says {len} (truncated or padded)",
                payload.len()
            )));
        }
        if checksum(payload) != u64_at(24) {
            return Err(bad("checksum mismatch: the artefact is corrupt"));
        }
        let mut r = Reader { b: payload, at: 0 };
        if r.u64_le()? != self.vocab.fingerprint() {
            return Err(bad(
                "built for another vocabulary (tokenizer): rebuild it for this tokenizer",
            ));
        }
        let vlen = r.var()?;
        if vlen != self.vocab.len() as u64 {
            return Err(bad(format!(
                "built for a vocabulary of {vlen} tokens, this one has {}",
                self.vocab.len()
            )));
        }
        let nm = r.var()?;
        if nm != self.lifts.len() as u64 {
            return Err(bad(format!(
                "built for {nm} modules, this policy has {}: rebuild it for this policy",
                self.lifts.len()
            )));
        }
        let n_rules = self.policy.rules().len() as u64;
        let n_order = self.trie.order.len() as u64;
        let mut all = Vec::with_capacity(self.lifts.len());
        for mi in 0..self.lifts.len() {
            if r.u64_le()? != self.module(mi).fingerprint() {
                return Err(bad(format!(
                    "module {mi} differs from the one the artefact was built for (another policy, or another compiler version): rebuild it for this policy"
                )));
            }
            let l = &self.lifts[mi];
            let ns = l.num_states;
            let n = r.var()?;
            if n != ns as u64 {
                return Err(bad(format!(
                    "module {mi} has {n} rows, the module has {ns} states"
                )));
            }
            let mut rows = Vec::with_capacity(ns);
            for q in 0..ns {
                let at = |what: &str| format!("module {mi}, state {q}: {what}");
                let na = r.bounded(ns as u64 + 1, &|| at("the number of successors"))?;
                let mut any = Vec::with_capacity(na as usize);
                let mut any_bits = vec![0u64; l.words];
                let mut next = 0u64;
                for _ in 0..na {
                    let s = next + r.bounded(ns as u64, &|| at("a successor"))?;
                    if s > ns as u64 {
                        return Err(bad(at("a successor beyond the end pseudo-state")));
                    }
                    any.push(s as u32);
                    states::insert(&mut any_bits, s as usize);
                    next = s + 1;
                }
                let nr = r.bounded(n_order, &|| at("the number of violating ranges"))?;
                let mut viol_ranges = Vec::with_capacity(nr as usize);
                let mut end = 0u64;
                for _ in 0..nr {
                    let a = end + r.bounded(n_order, &|| at("a range's gap"))?;
                    let b = a + r.bounded(n_order, &|| at("a range's length"))?;
                    if b > n_order || b == a {
                        return Err(bad(at("a violating range outside the token order")));
                    }
                    viol_ranges.push((a as u32, b as u32));
                    end = b;
                }
                let viol_end = match payload.get(r.at) {
                    Some(0) => false,
                    Some(1) => true,
                    _ => return Err(bad(at("a bad end flag"))),
                };
                r.at += 1;
                let nrules = r.bounded(n_rules, &|| at("the number of rules"))?;
                let mut viol_rules = Vec::with_capacity(nrules as usize);
                for _ in 0..nrules {
                    viol_rules.push(r.bounded(n_rules - 1, &|| at("a rule index"))? as RuleIndex);
                }
                rows.push(StateRow::new(
                    any,
                    any_bits,
                    viol_ranges,
                    viol_end,
                    viol_rules,
                    self.end_tokens.len(),
                ));
            }
            all.push(rows);
        }
        if r.at != payload.len() {
            return Err(bad(format!(
                "{} bytes after the last module",
                payload.len() - r.at
            )));
        }
        let mut filled = 0;
        for (mi, rows) in all.into_iter().enumerate() {
            if self.install_rows(mi, rows) {
                filled += 1;
            }
        }
        Ok(filled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lift::tests::{assert_same_rows, python_and_8k};
    use crate::{Canvas, Guard, Slot};

    /// Rows loaded from the artefact equal the rows the bulk lift builds, with every index,
    /// and a guard over them gives the same masks; the bytes are deterministic.
    #[test]
    fn rows_round_trip_on_the_python_pack() {
        let (policy, vocab) = python_and_8k();
        let built = TokenPolicy::new(policy.clone(), vocab.clone());
        let bytes = built.rows_artefact();
        let loaded = TokenPolicy::new(policy.clone(), vocab.clone());
        assert_eq!(loaded.load_rows_artefact(&bytes), Ok(loaded.num_modules()));
        assert_eq!(loaded.stats().lifted_states, built.stats().lifted_states);
        assert_same_rows(&built, &loaded);
        assert_eq!(
            loaded.rows_artefact(),
            bytes,
            "the same rows give the same bytes"
        );
        // Loading into rows already filled changes nothing.
        assert_eq!(loaded.load_rows_artefact(&bytes), Ok(0));
        let (a, b) = (Arc::new(built), Arc::new(loaded));
        let tok = |s: &str| a.vocab().tokenize_greedy(s.as_bytes()).expect("spellable");
        for (pre, holes, post) in [
            ("import subprocess\nsubprocess.run(cmd, ", 6, ")\n"),
            ("import pickle\ndata = pickle.", 4, "\n"),
            ("def f(x):\n    ", 12, "\n    return x\n"),
        ] {
            let mut slots: Vec<Slot> = tok(pre).into_iter().map(Slot::Fixed).collect();
            slots.extend(std::iter::repeat_n(Slot::Hole, holes));
            slots.extend(tok(post).into_iter().map(Slot::Fixed));
            let canvas = Canvas::from_slots(slots);
            let (ga, gb) = (
                Guard::new(a.clone(), &canvas).unwrap(),
                Guard::new(b.clone(), &canvas).unwrap(),
            );
            for h in ga.holes() {
                assert_eq!(
                    ga.mask(h).unwrap(),
                    gb.mask(h).unwrap(),
                    "{pre:?}, hole {h}"
                );
            }
        }
    }

    /// Random corruption that passes the checksum (recomputed after the change, as a
    /// tampered file would) never panics the loader, and what it refuses installs nothing.
    #[test]
    fn tampered_payloads_never_panic() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
        let policy = Arc::new(
            ward_policy::PolicyBuilder::new()
                .compile_path(format!("{root}/policies/base"))
                .unwrap(),
        );
        let json = std::fs::read_to_string(format!("{root}/models/ward-tiny-code/tokenizer.json"))
            .unwrap();
        let vocab = Arc::new(crate::vocab::from_tokenizer_json(&json).unwrap());
        let good = TokenPolicy::new(policy.clone(), vocab.clone()).rows_artefact();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let (mut refused, mut loaded) = (0, 0);
        for case in 0..300 {
            let mut v = good.clone();
            match case % 3 {
                // Flip bytes after the fingerprints of the header part of the payload.
                0 | 1 => {
                    for _ in 0..1 + next() % 4 {
                        let k = HEADER + 19 + (next() as usize % (v.len() - HEADER - 19));
                        v[k] = next() as u8;
                    }
                }
                // Cut the payload short.
                _ => v.truncate(HEADER + 19 + (next() as usize % (v.len() - HEADER - 19))),
            }
            let len = (v.len() - HEADER) as u64;
            v[16..24].copy_from_slice(&len.to_le_bytes());
            let c = checksum(&v[HEADER..]);
            v[24..32].copy_from_slice(&c.to_le_bytes());
            let tp = TokenPolicy::new(policy.clone(), vocab.clone());
            match tp.load_rows_artefact(&v) {
                Ok(_) => loaded += 1,
                Err(_) => {
                    refused += 1;
                    assert!(tp.stats().lifted_states.iter().all(|&n| n == 0));
                }
            }
        }
        assert!(refused > 150, "{refused} refused, {loaded} loaded");
    }

    /// Every kind of bad artefact is refused with its reason, and nothing is installed.
    #[test]
    fn bad_artefacts_are_refused_with_the_reason() {
        let (policy, vocab) = python_and_8k();
        let good = TokenPolicy::new(policy.clone(), vocab.clone()).rows_artefact();
        let fresh = || TokenPolicy::new(policy.clone(), vocab.clone());
        let refuse = |bytes: &[u8], want: &str| {
            let tp = fresh();
            let e = tp.load_rows_artefact(bytes).unwrap_err();
            assert!(e.to_string().contains(want), "{e} (wanted {want:?})");
            assert!(
                tp.stats().lifted_states.iter().all(|&n| n == 0),
                "{e}: rows installed"
            );
        };
        refuse(b"", "not a lift artefact");
        refuse(&good[..20], "not a lift artefact");
        let mut v = good.clone();
        v[8] = 9;
        refuse(&v, "format version 9");
        refuse(&good[..good.len() - 1], "truncated or padded");
        let mut v = good.clone();
        let k = v.len() / 2;
        v[k] ^= 0x10;
        refuse(&v, "checksum mismatch");
        // Another vocabulary.
        let other = Arc::new(
            Vocab::from_token_bytes(
                &(0..300u32)
                    .map(|i| format!("t{i}").into_bytes())
                    .collect::<Vec<_>>(),
            )
            .unwrap(),
        );
        let e = TokenPolicy::new(policy.clone(), other)
            .load_rows_artefact(&good)
            .unwrap_err();
        assert!(e.to_string().contains("another vocabulary"), "{e}");
        // Another policy (the base pack alone).
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
        let base = ward_policy::PolicyBuilder::new()
            .compile_path(format!("{root}/policies/base"))
            .unwrap();
        let e = TokenPolicy::new(Arc::new(base), vocab.clone())
            .load_rows_artefact(&good)
            .unwrap_err();
        assert!(e.to_string().contains("rebuild it for this policy"), "{e}");
        // A payload that passes the checksum but holds a successor beyond its module: the
        // checksum recomputed over a tampered row.
        let mut v = good.clone();
        let at = HEADER + 8 + 2 + 1 + 8 + 2; // first module's first row: its successor count
        v[at] = 0x7f;
        let c = checksum(&v[HEADER..]);
        v[24..32].copy_from_slice(&c.to_le_bytes());
        refuse(&v, "module 0");
    }
}
