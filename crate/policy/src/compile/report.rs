//! The per-rule reporting DFAs of [`CompiledPolicy::check`](crate::CompiledPolicy::check):
//! the tables of enforced rules kept as built, the others built on first use.

use super::determinize::{Builder, Raw};
use super::reduce::module_from_tables;
use super::{AltInfo, PolicyConfig};
use crate::clock::Instant;
use crate::module::{Module, RuleIndex, StateId};
use crate::nfa::Arena;

/// A rule's reporting DFA: absorbing on a match, with a reset state per state.
#[derive(Clone, Debug)]
pub(crate) struct ReportDfa {
    pub(crate) dfa: Module,
    pub(crate) reset: Vec<StateId>,
}

/// A reporting DFA's tables, kept as built until first use (the sparse attribution maps of a
/// [`Module`] are made then).
pub(super) struct ReportParts {
    pub(super) rules: Vec<RuleIndex>,
    pub(super) classes: [u8; 256],
    pub(super) nc: usize,
    pub(super) trans: Vec<StateId>,
    pub(super) start: StateId,
    pub(super) clean_end: Vec<bool>,
    pub(super) end_rules: Vec<Vec<RuleIndex>>,
    pub(super) viol: Vec<u16>,
    pub(super) viol_sets: Vec<Vec<RuleIndex>>,
    pub(super) reset: Vec<StateId>,
}

impl ReportParts {
    pub(super) fn into_dfa(self) -> ReportDfa {
        ReportDfa {
            dfa: module_from_tables(
                self.rules,
                self.classes,
                self.nc,
                self.trans,
                self.start,
                self.clean_end,
                &self.end_rules,
                self.viol,
                self.viol_sets,
            ),
            reset: self.reset,
        }
    }
}

/// What the per-rule reporting DFAs are built from, on first use (most `check` calls need
/// only a few of them: a rule whose module stays quiet on a text is skipped).
pub(crate) struct ReportSource {
    pub(super) arena: Arena,
    pub(super) alts: Vec<AltInfo>,
    pub(super) rule_alts: Vec<Vec<u32>>,
    pub(super) config: PolicyConfig,
    pub(super) dfas: Vec<std::sync::OnceLock<Option<ReportDfa>>>,
    /// Tables already built (enforced rules), taken on first use.
    pub(super) parts: Vec<std::sync::Mutex<Option<ReportParts>>>,
    /// Nanoseconds spent building reporting DFAs so far: together they get one
    /// [`PolicyConfig::max_compile_time`], so a pack of slow rules cannot make `check` take
    /// that long once per rule.
    pub(super) spent_ns: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for ReportSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReportSource")
            .field("rules", &self.rule_alts.len())
            .field(
                "built",
                &self.dfas.iter().filter(|d| d.get().is_some()).count(),
            )
            .finish()
    }
}

impl ReportSource {
    /// Rule `ri`'s reporting DFA (built now if needed), or `None` when it exceeds the
    /// limits (or the time left to all reporting DFAs) and the rule is scanned by the regex
    /// engine instead, with the same findings.
    pub(crate) fn get(&self, ri: usize) -> Option<&ReportDfa> {
        self.dfas[ri]
            .get_or_init(|| {
                if let Some(p) = self.parts[ri].lock().ok().and_then(|mut p| p.take()) {
                    return Some(p.into_dfa());
                }
                use std::sync::atomic::Ordering;
                let spent = std::time::Duration::from_nanos(self.spent_ns.load(Ordering::Relaxed));
                let left = self.config.max_compile_time.saturating_sub(spent);
                if left.is_zero() {
                    return None;
                }
                let config = PolicyConfig {
                    max_compile_time: left,
                    ..self.config.clone()
                };
                let t0 = Instant::now();
                let mut b = Builder::new(&self.arena, &self.alts, &config, t0);
                let dfa = b
                    .build(&self.rule_alts[ri], true)
                    .ok()
                    .map(|raw| raw.into_report().into_dfa());
                let took = u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX);
                self.spent_ns.fetch_add(took, Ordering::Relaxed);
                dfa
            })
            .as_ref()
    }
}

impl Raw {
    /// The reporting form (no reduction, reset states kept), as tables.
    pub(super) fn into_report(self) -> ReportParts {
        ReportParts {
            nc: self.nc(),
            rules: self.rules,
            classes: self.classes,
            trans: self.trans,
            start: self.start,
            clean_end: self.clean_end,
            end_rules: self.end_rules,
            viol: self.viol,
            viol_sets: self.viol_sets,
            reset: self.reset,
        }
    }
}
