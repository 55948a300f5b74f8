//! Compiled automaton modules: byte-level "has a violation" DFAs.
//!
//! A [`Module`] is a deterministic automaton over bytes for one or several
//! enforced rules, already in product with the Python lexical automaton, so
//! scopes are part of its states. State [`StateId::VIOLATED`] is absorbing:
//! once a rule's pattern has completed (in its scope), every continuation
//! stays violated. Every other state can still reach a clean end by *some*
//! byte string (dead states are merged into the violated one at compile time).
//!
//! Some patterns end in a look-ahead assertion (`\b`, `$`): whether they
//! match depends on the next byte or the end of the text. Such a pending match
//! is resolved by the next transition, or at the end of the text by
//! [`Module::is_clean_end`].
//!
//! # Example
//! ```
//! use ward_policy::{PolicyBuilder, StateId};
//! let yaml = r#"
//! pack: demo
//! rules:
//!   - id: no-eval
//!     message: do not call eval
//!     severity: ERROR
//!     languages: [python]
//!     metadata: { cwe: "CWE-95" }
//!     pattern-regex: '\beval\s*\('
//! "#;
//! let policy = PolicyBuilder::new().compile_str(yaml, "demo.yaml").unwrap();
//! let m = &policy.modules()[0];
//! let mut s = m.start();
//! for &b in b"x = eval(" { s = m.next(s, b); }
//! assert!(m.is_violated(s));
//! let mut s = m.start();
//! for &b in b"# eval(" { s = m.next(s, b); }
//! assert!(!m.is_violated(s) && m.is_clean_end(s));
//! ```

use rustc_hash::FxHashMap as HashMap;

/// Identifier of a DFA state inside one [`Module`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[repr(transparent)]
pub struct StateId(pub u32);

impl StateId {
    /// The absorbing violated state, the same in every module.
    pub const VIOLATED: StateId = StateId(0);

    /// The id as an index into per-state tables.
    #[inline]
    pub fn as_usize(self) -> usize {
        self.0 as usize
    }
}

/// Index of a rule in [`crate::CompiledPolicy::rules`].
pub type RuleIndex = u32;

/// One compiled automaton module: a byte DFA with an absorbing violated state.
#[derive(Clone, Debug)]
pub struct Module {
    /// Rules (indices into the policy's rule list) enforced by this module.
    pub(crate) rules: Vec<RuleIndex>,
    /// Byte → equivalence class.
    pub(crate) classes: [u8; 256],
    /// Number of byte classes.
    pub(crate) num_classes: usize,
    /// Transition table, `num_states * num_classes`, row-major by state.
    pub(crate) trans: Vec<StateId>,
    /// Start state.
    pub(crate) start: StateId,
    /// Per state: ending the text here is clean (no pending match completes at the end).
    pub(crate) clean_end: Vec<bool>,
    /// Per transition (parallel to `trans`): 0, or `k` when it enters the violated state
    /// because the rules `viol_sets[k - 1]` completed there (`u16`: half the memory of the
    /// transitions; a module with more distinct rule sets is refused at compile time).
    pub(crate) viol: Vec<u16>,
    /// The distinct rule sets of `viol`.
    pub(crate) viol_sets: Vec<Vec<RuleIndex>>,
    /// Per state: rules whose pending match completes if the text ends here.
    pub(crate) end_attribution: HashMap<StateId, Vec<RuleIndex>>,
}

impl Module {
    /// The start state (beginning of the text, in code scope).
    #[inline]
    pub fn start(&self) -> StateId {
        self.start
    }

    /// The state after reading `byte` in state `s`.
    #[inline]
    pub fn next(&self, s: StateId, byte: u8) -> StateId {
        self.trans[s.as_usize() * self.num_classes + self.classes[byte as usize] as usize]
    }

    /// The state after reading any byte of class `class` in state `s`.
    #[inline]
    pub fn next_class(&self, s: StateId, class: u8) -> StateId {
        self.trans[s.as_usize() * self.num_classes + class as usize]
    }

    /// The state after reading all of `bytes` from `s`.
    #[inline]
    pub fn run(&self, mut s: StateId, bytes: &[u8]) -> StateId {
        for &b in bytes {
            if s == StateId::VIOLATED {
                break;
            }
            s = self.next(s, b);
        }
        s
    }

    /// True for the absorbing violated state.
    #[inline]
    pub fn is_violated(&self, s: StateId) -> bool {
        s == StateId::VIOLATED
    }

    /// True when a text ending in state `s` violates none of this module's rules.
    #[inline]
    pub fn is_clean_end(&self, s: StateId) -> bool {
        self.clean_end[s.as_usize()]
    }

    /// The byte → class map (bytes of one class behave identically in every state).
    #[inline]
    pub fn byte_classes(&self) -> &[u8; 256] {
        &self.classes
    }

    /// Number of byte equivalence classes.
    #[inline]
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// Number of states, including the violated state.
    #[inline]
    pub fn num_states(&self) -> usize {
        self.clean_end.len()
    }

    /// The rules (indices into the policy's rules) this module enforces.
    pub fn rules(&self) -> &[RuleIndex] {
        &self.rules
    }

    /// Rules whose pattern completes on the transition from `s` by `byte`
    /// (empty unless that transition enters the violated state).
    pub fn violation_rules(&self, s: StateId, byte: u8) -> &[RuleIndex] {
        self.class_violation_rules(s, self.classes[byte as usize])
    }

    /// Rules whose pattern completes on the transition from `s` by byte class `class`
    /// (empty for a state or class outside the tables).
    pub(crate) fn class_violation_rules(&self, s: StateId, class: u8) -> &[RuleIndex] {
        let at = s.as_usize() * self.num_classes + class as usize;
        match self.viol.get(at).copied().unwrap_or(0) {
            0 => &[],
            k => &self.viol_sets[k as usize - 1],
        }
    }

    /// The attributed transitions in (state, class) order: `(state, class, rules)`.
    pub(crate) fn attributions(&self) -> impl Iterator<Item = (StateId, u8, &[RuleIndex])> {
        let nc = self.num_classes;
        self.viol
            .iter()
            .enumerate()
            .filter(|(_, &v)| v != 0)
            .map(move |(k, &v)| {
                (
                    StateId((k / nc) as u32),
                    (k % nc) as u8,
                    self.viol_sets[v as usize - 1].as_slice(),
                )
            })
    }

    /// Rules whose pending match completes if the text ends in state `s`.
    pub fn end_violation_rules(&self, s: StateId) -> &[RuleIndex] {
        self.end_attribution
            .get(&s)
            .map(|v| v.as_slice())
            .unwrap_or(&[])
    }

    /// A 64-bit fingerprint of everything the module decides (rules, byte classes,
    /// transitions, start, clean ends, attributions): two modules with the same fingerprint
    /// are, barring a hash collision, the same automaton with the same state numbering. Used
    /// to bind data derived from a module's states (the guard's precomputed token rows) to
    /// exactly that module. Not cryptographic ([`crate::digest::Fingerprint`]); about a
    /// millisecond for the python pack's modules.
    pub fn fingerprint(&self) -> u64 {
        let mut h = crate::digest::Fingerprint::new();
        h.word(self.rules.len() as u64);
        for &r in &self.rules {
            h.word(r as u64);
        }
        for c in self.classes.chunks(8) {
            h.word(u64::from_le_bytes(c.try_into().expect("256 = 32 × 8")));
        }
        h.word(self.num_classes as u64);
        h.word(self.trans.len() as u64);
        for pair in self.trans.chunks(2) {
            h.word(pair[0].0 as u64 | (pair.get(1).map_or(u32::MAX, |s| s.0) as u64) << 32);
        }
        h.word(self.start.0 as u64);
        h.word(self.clean_end.len() as u64);
        for c in self.clean_end.chunks(64) {
            h.word(
                c.iter()
                    .enumerate()
                    .fold(0u64, |w, (i, &b)| w | (b as u64) << i),
            );
        }
        h.word(self.attributions().count() as u64);
        for (st, c, rules) in self.attributions() {
            h.word((st.0 as u64) << 8 | c as u64);
            h.word(rules.len() as u64);
            rules.iter().for_each(|&r| h.word(r as u64));
        }
        let mut end: Vec<_> = self.end_attribution.iter().collect();
        end.sort_by_key(|(k, _)| **k);
        h.word(end.len() as u64);
        for (st, rules) in end {
            h.word(st.0 as u64);
            h.word(rules.len() as u64);
            rules.iter().for_each(|&r| h.word(r as u64));
        }
        h.finish()
    }

    /// Approximate heap memory of the tables, in bytes.
    pub fn memory_bytes(&self) -> usize {
        self.trans.len() * 4
            + self.clean_end.len()
            + self.viol.len() * 2
            + self
                .viol_sets
                .iter()
                .map(|v| 24 + v.len() * 4)
                .sum::<usize>()
            + self.end_attribution.len() * 40
            + self.rules.len() * 4
            + 256
    }
}
