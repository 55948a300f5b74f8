//! The compiler: enforced rules → automaton modules (byte DFAs in product with the Python
//! lexer), merged under a state budget; plus one reporting DFA per rule for
//! [`CompiledPolicy::check`].
//!
//! Construction is a subset construction over *threads*. A thread is one attempt to match
//! one alternative of one rule, started at some position: its NFA state for the positive
//! regex, and (for `pattern-not-regex`) the set of exclusion-NFA states searched since the
//! thread started. A DFA state is (lexer state, look-behind bits, set of threads). Threads
//! are independent of each other, so they are interned and each thread's step is memoised
//! in a dense table; a state's transitions are memoised per (thread set, scope, context,
//! byte class), so the lexer product costs table lookups.
//!
//! The pipeline (independent rules and modules run on worker threads where there are any):
//! 1. every enforced rule alone, with reset states (the same DFA is its reporting DFA),
//!    each with a fresh builder so the output does not depend on scheduling; threads with
//!    equivalent NFA states (mutual dominance) are one thread;
//! 2. states that cannot reach a clean end become the violated state (attributed to the
//!    rules pending there);
//! 3. runs of rules are grouped while an estimate of the merged size stays under budget
//!    (scoped rules grow about additively, unscoped ones are estimated by the product);
//! 4. each group is the product of its rules' automata (halved if it exceeds the budget
//!    after all), cut again, and reduced by merging states with equal outputs and
//!    successors until nothing changes: sound, and within a few percent of minimal on the
//!    shipped packs (a test measures it against exact minimisation).
//!
//! Reported-only rules get their reporting DFA on first use.
//!
//! One file per concept: this one holds the configuration, the builder (the pipeline above)
//! and the compiled policy; [`determinize`] the subset construction (phase 1), [`dominance`]
//! the preorder between threads, [`live`] co-reachability and the enforced form (phase 2),
//! [`product`](mod@product) the product of a group (phase 4), [`reduce`] the row-merging
//! reduction and the modules it yields, [`report`] the reporting DFAs, [`context`] the
//! look-around context of a position, [`intern`] and [`par`] an interning table and a
//! parallel map.

mod artefact;
mod context;
mod determinize;
mod dominance;
mod intern;
mod live;
mod par;
mod product;
mod reduce;
mod report;

pub use artefact::{artefact_sources, ArtefactSources, ARTEFACT_FORMAT};

use std::path::Path;
use std::time::Duration;

use crate::clock::Instant;

use self::determinize::Builder;
use self::par::par_map;
use self::product::product;
use self::reduce::Pruned;
use self::report::{ReportDfa, ReportParts, ReportSource};
use crate::error::{CompileError, Deadline};
use crate::module::{Module, RuleIndex};
use crate::nfa::{self, Arena, LookNeeds, NfaId};
use crate::pack::{EffectivePolicy, Rule, RuleScope};

/// Limits and options of the compiler.
#[derive(Clone, Debug)]
pub struct PolicyConfig {
    /// Most DFA states in one module (and in one rule's own DFA).
    pub max_states: usize,
    /// Most bytes of transition table in one module.
    pub max_module_bytes: usize,
    /// Most bytes of working memory while one rule's or one module's automaton is built
    /// (thread tables, step memos, interned sets), like regex-automata's
    /// `determinize_size_limit`: a pattern with a huge NFA fails with a size-limit error
    /// instead of exhausting memory. The shipped packs need under 1 MiB.
    pub max_build_bytes: usize,
    /// Most wall time for the whole compilation; and, once more, for all the reporting DFAs
    /// that [`CompiledPolicy::check`] builds on first use together (past it, the remaining
    /// rules are scanned by the regex engine, with the same findings).
    pub max_compile_time: Duration,
    /// Merge several enforced rules into one module while it stays under `max_states`.
    pub merge: bool,
    /// Worker threads for independent rules and modules (0 = one per core, at most 8).
    /// Ignored on targets without threads (wasm32), where the compiler runs on one.
    pub threads: usize,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            max_states: 4096,
            max_module_bytes: 16 << 20,
            max_build_bytes: 64 << 20,
            max_compile_time: Duration::from_secs(10),
            merge: true,
            threads: 0,
        }
    }
}

/// Builds a [`CompiledPolicy`] with a [`PolicyConfig`].
#[derive(Clone, Debug, Default)]
pub struct PolicyBuilder {
    config: PolicyConfig,
}

/// Statistics of one module.
#[derive(Clone, Debug)]
pub struct ModuleStats {
    /// Rule ids in the module.
    pub rules: Vec<String>,
    /// DFA states (after dead-state removal and minimisation).
    pub states: usize,
    /// Byte equivalence classes.
    pub classes: usize,
    /// Table memory in bytes.
    pub memory_bytes: usize,
}

impl ModuleStats {
    /// The statistics of `m`, whose rule indices point into `rules`.
    pub(crate) fn of(m: &Module, rules: &[Rule]) -> ModuleStats {
        ModuleStats {
            rules: m
                .rules
                .iter()
                .map(|&i| rules[i as usize].id.clone())
                .collect(),
            states: m.num_states(),
            classes: m.num_classes(),
            memory_bytes: m.memory_bytes(),
        }
    }
}

/// Statistics of a compilation (`ward explain --stats`).
#[derive(Clone, Debug)]
pub struct CompileStats {
    /// Per enforced module.
    pub modules: Vec<ModuleStats>,
    /// Wall time of the compilation (parsing, the enforced modules and the span finder; the
    /// per-rule reporting DFAs are built later, on first use by [`CompiledPolicy::check`]).
    pub compile_time: Duration,
    /// Part of `compile_time` spent parsing the regexes into NFAs (the rest builds, merges
    /// and minimises the enforced modules).
    pub parse_time: Duration,
    /// Memory of the enforced modules' tables, in bytes.
    pub memory_bytes: usize,
}

/// A compiled policy: the effective rules, the enforced modules, and the checkers.
#[derive(Clone, Debug)]
pub struct CompiledPolicy {
    pub(crate) name: String,
    pub(crate) effective: EffectivePolicy,
    pub(crate) rules: Vec<Rule>,
    pub(crate) modules: Vec<Module>,
    pub(crate) report: std::sync::Arc<ReportSource>,
    pub(crate) stats: CompileStats,
    pub(crate) span_finder: std::sync::Arc<crate::span::SpanFinder>,
    /// [`crate::digest::policy_digest`], computed on first use (the rules never change).
    pub(crate) digest: std::sync::OnceLock<String>,
}

impl CompiledPolicy {
    /// The pack's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The enabled rules; a [`RuleIndex`] indexes this slice.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The enforced modules (rules with an enforced severity only).
    pub fn modules(&self) -> &[Module] {
        &self.modules
    }

    /// The effective policy this was compiled from (disabled rules included).
    pub fn effective(&self) -> &EffectivePolicy {
        &self.effective
    }

    /// Compilation statistics.
    pub fn stats(&self) -> &CompileStats {
        &self.stats
    }

    /// The rule at `index`.
    pub fn rule(&self, index: RuleIndex) -> &Rule {
        &self.rules[index as usize]
    }

    /// States of each rule's own reporting DFA, by rule index (0: the rule is too large for
    /// a reporting DFA and `check` uses the regex engine for it). Builds every reporting DFA
    /// not built yet.
    pub fn reporting_states(&self) -> Vec<usize> {
        (0..self.rules.len())
            .map(|ri| self.report.get(ri).map_or(0, |r| r.dfa.num_states()))
            .collect()
    }

    /// Memory of the reporting DFAs built so far, in bytes.
    pub fn reporting_memory_bytes(&self) -> usize {
        self.report
            .dfas
            .iter()
            .filter_map(|d| d.get().and_then(|r| r.as_ref()))
            .map(|r| r.dfa.memory_bytes() + r.reset.len() * 4)
            .sum()
    }

    /// The index of the rule with this id.
    pub fn rule_index(&self, id: &str) -> Option<RuleIndex> {
        self.rules
            .iter()
            .position(|r| r.id == id)
            .map(|i| i as RuleIndex)
    }
}

impl PolicyBuilder {
    /// A builder with the default limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// Use this configuration.
    pub fn config(mut self, config: PolicyConfig) -> Self {
        self.config = config;
        self
    }

    /// Set the state budget per module.
    pub fn max_states(mut self, n: usize) -> Self {
        self.config.max_states = n;
        self
    }

    /// Set the compile time limit.
    pub fn max_compile_time(mut self, d: Duration) -> Self {
        self.config.max_compile_time = d;
        self
    }

    /// Load the pack at `path` (file or folder), resolve it and compile it.
    pub fn compile_path(&self, path: impl AsRef<Path>) -> Result<CompiledPolicy, CompileError> {
        let eff = EffectivePolicy::load(path)?;
        self.compile(&eff)
    }

    /// Parse a pack from YAML text and compile it (`name` is used in errors).
    pub fn compile_str(&self, yaml: &str, name: &str) -> Result<CompiledPolicy, CompileError> {
        let eff = EffectivePolicy::from_str(yaml, name)?;
        self.compile(&eff)
    }

    /// Compile a resolved policy.
    pub fn compile(&self, eff: &EffectivePolicy) -> Result<CompiledPolicy, CompileError> {
        // The pack's own `max-states:` is the module budget wherever it is compiled.
        if let Some(n) = eff.max_states {
            if n != self.config.max_states {
                let mut b = self.clone();
                b.config.max_states = n;
                return b.compile(eff);
            }
        }
        let t0 = Instant::now();
        let deadline = Deadline::new(t0, self.config.max_compile_time);
        let rules: Vec<Rule> = eff.rules.iter().filter(|r| r.enabled).cloned().collect();
        let mut arena = Arena::default();
        let mut alts: Vec<AltInfo> = Vec::new();
        let mut rule_alts: Vec<Vec<u32>> = Vec::new();
        for (ri, rule) in rules.iter().enumerate() {
            let mut mine = Vec::new();
            for alt in rule.pattern.alternatives() {
                let a = compile_regex(&mut arena, &alt.regex, rule, &deadline)?;
                let mut nots = Vec::new();
                for n in &alt.not {
                    nots.push(compile_regex(&mut arena, n, rule, &deadline)?);
                }
                let mut needs = a.needs;
                let mut ranges = vec![a.range.clone()];
                for n in &nots {
                    needs = needs.union(n.needs);
                    ranges.push(n.range.clone());
                }
                mine.push(alts.len() as u32);
                alts.push(AltInfo {
                    rule: ri as RuleIndex,
                    scope: rule.scope,
                    a_start: a.start,
                    not_starts: nots.iter().map(|n| n.start).collect(),
                    needs,
                    ranges,
                });
            }
            rule_alts.push(mine);
        }
        let parse_time = t0.elapsed();
        let workers = self.config.workers();
        // The enforced modules (phases 1–4 of the module docs).
        let build_modules = || -> Result<_, CompileError> {
            let enforced: Vec<usize> = (0..rules.len())
                .filter(|&i| rules[i].severity.enforced())
                .collect();
            let report_cells: Vec<std::sync::OnceLock<Option<ReportDfa>>> = (0..rules.len())
                .map(|_| std::sync::OnceLock::new())
                .collect();
            let mut report_parts: Vec<std::sync::Mutex<Option<ReportParts>>> = (0..rules.len())
                .map(|_| std::sync::Mutex::new(None))
                .collect();

            // 1. Every enforced rule alone. Built with reset states, the same automaton is the
            //    rule's reporting DFA; its size drives the merge decisions below.
            struct Alone {
                report: Option<ReportParts>,
                size: usize,
                idle: usize,
                pruned: Pruned,
            }
            // Largest NFAs first (a proxy for the work), so the workers finish together.
            let mut by_size = enforced.clone();
            by_size.sort_by_key(|&ri| {
                std::cmp::Reverse(
                    rule_alts[ri]
                        .iter()
                        .flat_map(|&a| alts[a as usize].ranges.iter())
                        .map(|r| r.len())
                        .sum::<usize>(),
                )
            });
            let alone: Vec<Result<Alone, CompileError>> = par_map(&by_size, workers, |&ri| {
                // A fresh builder per rule: what a rule compiles to must not depend on
                // which rules the same worker compiled before it (interning order), so
                // the output is the same whatever the scheduling. Rules share no
                // threads, so little memoisation is lost.
                let b = &mut Builder::new(&arena, &alts, &self.config, t0);
                let (raw, with_report) = match b.build(&rule_alts[ri], true) {
                    Ok(raw) => (raw, true),
                    // The reset states can tip a rule over the budget: try without them
                    // (the rule is then reported by the regex engine).
                    Err(e) if e.is_size_limit_exceeded() => (
                        b.build(&rule_alts[ri], false).map_err(|e| {
                            self.budget_error(e, &arena, &alts, &rule_alts[ri], &rules[ri], t0)
                        })?,
                        false,
                    ),
                    Err(e) => return Err(rule_error(e, &rules[ri])),
                };
                let size = raw.states.len();
                let idle = raw.states.iter().filter(|k| k.ts == 0).count();
                let (pruned, parts) = raw.enforced(b).map_err(|e| rule_error(e, &rules[ri]))?;
                let report = with_report.then_some(parts);
                Ok(Alone {
                    size,
                    idle,
                    report,
                    pruned,
                })
            });
            let mut alone_of: Vec<Option<Alone>> = (0..rules.len()).map(|_| None).collect();
            for (&ri, res) in by_size.iter().zip(alone) {
                let mut a = res?;
                match a.report.take() {
                    Some(parts) => {
                        report_parts[ri] = std::sync::Mutex::new(Some(parts));
                    }
                    None => {
                        let _ = report_cells[ri].set(None);
                    }
                }
                alone_of[ri] = Some(a);
            }

            // 2. Merge runs of rules (in pack order, grouped by lexer need) while the estimated
            //    size stays in budget.
            let budget = self.config.max_states;
            let mut chunks: Vec<Vec<usize>> = Vec::new();
            for group in [true, false] {
                let members: Vec<usize> = enforced
                    .iter()
                    .copied()
                    .filter(|&i| (rules[i].scope != RuleScope::Any) == group)
                    .collect();
                let mut current: Vec<usize> = Vec::new();
                let mut est = 0usize;
                for &ri in &members {
                    let a = alone_of[ri].as_ref().expect("built above");
                    // Scoped rules share the lexer states, and their DFAs grow about additively
                    // when merged (the states where no thread is pending are shared), sometimes
                    // up to 1.7× that. Unscoped ones (secrets) keep threads alive over long
                    // stretches of text: estimate them by the product of the sizes. A merge
                    // costs a product and its reduction; measured on the python pack, 2/5 of
                    // the budget gives 22 modules of 24 237 states in all and compiles about
                    // 15 % faster than 3/5 (18 modules, 26 539 states: the larger products
                    // grow faster than the modules they save).
                    let (grown, fits) = if group {
                        let g = est + a.size.saturating_sub(a.idle);
                        (g, g * 5 <= budget * 2)
                    } else {
                        let g = est.saturating_mul(a.size);
                        (g, g <= budget * 4)
                    };
                    if self.config.merge && !current.is_empty() && fits {
                        current.push(ri);
                        est = grown;
                    } else {
                        if !current.is_empty() {
                            chunks.push(std::mem::take(&mut current));
                        }
                        current.push(ri);
                        est = a.size;
                    }
                }
                if !current.is_empty() {
                    chunks.push(current);
                }
            }

            // 3. Each group's module is the product of its rules' reduced automata (halved if
            //    it exceeds the budget after all), reduced again.
            let parts_of: Vec<Vec<Pruned>> = chunks
                .iter()
                .map(|c| {
                    c.iter()
                        .map(|&ri| alone_of[ri].take().expect("one chunk per rule").pruned)
                        .collect()
                })
                .collect();
            drop(alone_of);
            // Largest jobs first, so the workers finish together; results in pack order. (A
            // single rule only becomes a module; a product costs about its parts' sizes.)
            let cost = |parts: &[Pruned]| -> usize {
                match parts {
                    [_] => 0,
                    _ => parts.iter().map(|p| p.lex.len() * p.nc).sum(),
                }
            };
            let mut order: Vec<usize> = (0..parts_of.len()).collect();
            order.sort_by_key(|&k| std::cmp::Reverse(cost(&parts_of[k])));
            let jobs: Vec<std::sync::Mutex<Vec<Pruned>>> =
                parts_of.into_iter().map(std::sync::Mutex::new).collect();
            let done: Vec<Result<Vec<Module>, CompileError>> = par_map(&order, workers, |&k| {
                let parts = jobs[k]
                    .lock()
                    .map(|mut j| std::mem::take(&mut *j))
                    .unwrap_or_default();
                let mut out = Vec::new();
                let mut stack = vec![parts];
                while let Some(mut parts) = stack.pop() {
                    if parts.len() == 1 {
                        out.push(parts.pop().expect("one part").into_module());
                        continue;
                    }
                    match product(&parts, &self.config, &deadline)
                        .and_then(|p| p.minimize(&deadline))
                    {
                        Ok(m) => out.push(m),
                        Err(e) if e.is_size_limit_exceeded() => {
                            let right = parts.split_off(parts.len() / 2);
                            stack.push(right);
                            stack.push(parts);
                        }
                        Err(e) => return Err(merge_error(e, &parts, &rules)),
                    }
                }
                Ok(out)
            });
            let mut built: Vec<Option<Result<Vec<Module>, CompileError>>> =
                (0..jobs.len()).map(|_| None).collect();
            for (&k, r) in order.iter().zip(done) {
                built[k] = Some(r);
            }
            let mut modules = Vec::new();
            for r in built.into_iter().flatten() {
                modules.extend(r?);
            }
            Ok((modules, report_cells, report_parts))
        };
        // The span finder is independent of the modules: with worker threads it is built
        // alongside them.
        let (built, span_finder) = if workers > 1 {
            std::thread::scope(|scope| {
                let finder = std::thread::Builder::new()
                    .spawn_scoped(scope, || crate::span::SpanFinder::build(&rules))
                    .ok();
                let built = build_modules();
                let finder = match finder {
                    Some(h) => h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
                    None => crate::span::SpanFinder::build(&rules),
                };
                (built, finder)
            })
        } else {
            (build_modules(), crate::span::SpanFinder::build(&rules))
        };
        let (modules, report_cells, report_parts) = built?;
        let span_finder = std::sync::Arc::new(span_finder?);
        let compile_time = t0.elapsed();
        let module_stats = modules
            .iter()
            .map(|m| ModuleStats::of(m, &rules))
            .collect::<Vec<_>>();
        let memory_bytes = modules.iter().map(|m| m.memory_bytes()).sum::<usize>();
        let report = std::sync::Arc::new(ReportSource {
            dfas: report_cells,
            parts: report_parts,
            arena,
            alts,
            rule_alts,
            config: self.config.clone(),
            spent_ns: std::sync::atomic::AtomicU64::new(0),
        });
        Ok(CompiledPolicy {
            name: eff.name.clone(),
            effective: eff.clone(),
            rules,
            modules,
            report,
            stats: CompileStats {
                modules: module_stats,
                compile_time,
                parse_time,
                memory_bytes,
            },
            span_finder,
            digest: std::sync::OnceLock::new(),
        })
    }
}

impl PolicyConfig {
    /// Worker threads the compiler uses.
    fn workers(&self) -> usize {
        if cfg!(target_arch = "wasm32") {
            return 1;
        }
        match self.threads {
            0 => std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                .min(8),
            n => n,
        }
    }
}

/// How far past the budget [`PolicyBuilder::budget_error`] measures a rule's need.
const MEASURE_FACTOR: usize = 16;

impl PolicyBuilder {
    /// A rule's own automaton exceeded the state budget: measure what it needs (building it
    /// again with up to [`MEASURE_FACTOR`] times the budget) and say what to change: the
    /// pack's `max-states:`, or the counted repetitions of its patterns (with their columns).
    /// Other errors get the rule's id and place only.
    fn budget_error(
        &self,
        e: CompileError,
        arena: &Arena,
        alts: &[AltInfo],
        alt_ids: &[u32],
        rule: &Rule,
        t0: Instant,
    ) -> CompileError {
        let budget = self.config.max_states;
        if !e.is_state_limit_exceeded() {
            return rule_error(e, rule);
        }
        let mut config = self.config.clone();
        config.max_states = budget.saturating_mul(MEASURE_FACTOR);
        let need = match Builder::new(arena, alts, &config, t0).build(alt_ids, false) {
            Ok(raw) => format!(
                "needs {} states, more than the module budget of {budget} states: set `max-states: {}` or more in the pack to accept it (its table is then about {} KiB in the guard), or",
                raw.states.len(),
                raw.states.len(),
                raw.trans.len() * 4 / 1024
            ),
            Err(_) => format!(
                "needs more than {} states (measured up to {MEASURE_FACTOR} times the module budget of {budget} states), too many for the guard:",
                config.max_states
            ),
        };
        let mut reps: Vec<nfa::Counted> = rule
            .pattern
            .alternatives()
            .iter()
            .flat_map(|a| std::iter::once(&a.regex).chain(a.not.iter()))
            .flat_map(|p| nfa::counted_repetitions(p))
            .collect();
        reps.sort_by_key(|c| std::cmp::Reverse(c.count));
        let mut seen = std::collections::HashSet::new();
        reps.retain(|c| seen.insert((c.text.clone(), c.column)));
        reps.truncate(3);
        let named = if reps.is_empty() {
            "narrow the gaps (`.*`, `[^)]*`) in the pattern: each position a candidate match can be at, for every candidate that overlaps another, is a state".to_string()
        } else {
            let list: Vec<String> = reps
                .iter()
                .map(|c| {
                    let then = c
                        .then_assertion
                        .as_ref()
                        .map(|a| format!(", followed by `{a}`, which keeps every overlapping candidate alive until it holds: drop it, or keep the repeated class to word bytes"))
                        .unwrap_or_default();
                    format!("`{}` at column {} ({} positions{then})", c.text, c.column, c.count)
                })
                .collect();
            format!(
                "shorten its counted repetitions: {}; each position of a counted repetition is a state for every candidate match that overlaps another, so they multiply with the gaps before them",
                list.join("; ")
            )
        };
        rule_error(
            CompileError::new(e.kind().clone(), format!("the automaton {need} {named}")),
            rule,
        )
    }
}

/// Name the rules being merged in an error of the merge phase.
fn merge_error(e: CompileError, parts: &[Pruned], rules: &[Rule]) -> CompileError {
    let ids: Vec<&str> = parts
        .iter()
        .flat_map(|p| p.rules.iter())
        .map(|&r| rules[r as usize].id.as_str())
        .collect();
    CompileError::new(
        e.kind().clone(),
        format!("{} (merging the rules {})", e.message(), ids.join(", ")),
    )
}

/// Attach the rule's id, file and line to an error.
fn rule_error(e: CompileError, r: &Rule) -> CompileError {
    let e = e.for_rule(&r.id).in_file(&r.source);
    match r.line {
        Some(l) => e.at(l, 1),
        None => e,
    }
}

struct CompiledRegex {
    start: NfaId,
    needs: LookNeeds,
    range: std::ops::Range<NfaId>,
}

fn compile_regex(
    arena: &mut Arena,
    pattern: &str,
    rule: &Rule,
    deadline: &Deadline,
) -> Result<CompiledRegex, CompileError> {
    let located = |e: CompileError| {
        let mut e = e.for_rule(&rule.id).in_file(&rule.source);
        if let (Some(col), Ok(text)) = (e.column(), std::fs::read_to_string(&rule.source)) {
            if let Some((l, c)) = crate::pack::locate_in_file(&text, pattern, col) {
                let mut fresh = CompileError::new(e.kind().clone(), e.message().to_string())
                    .for_rule(&rule.id)
                    .in_file(&rule.source)
                    .at(l, c);
                std::mem::swap(&mut e, &mut fresh);
            }
        }
        e
    };
    let hir = nfa::parse(pattern).map_err(located)?;
    let lo = arena.states.len() as NfaId;
    let c = arena.compile(&hir, deadline).map_err(located)?;
    let hi = arena.states.len() as NfaId;
    Ok(CompiledRegex {
        start: c.start,
        needs: c.needs,
        range: lo..hi,
    })
}

struct AltInfo {
    rule: RuleIndex,
    scope: RuleScope,
    a_start: NfaId,
    not_starts: Vec<NfaId>,
    needs: LookNeeds,
    ranges: Vec<std::ops::Range<NfaId>>,
}
