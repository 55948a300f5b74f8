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

use rustc_hash::FxHashMap;
use std::path::Path;
use std::time::Duration;

use crate::clock::Instant;

use crate::error::{CompileError, Deadline, ErrorKind};
use crate::lexer::{self, LexTable, Scope};
use crate::module::{Module, RuleIndex, StateId};
use crate::nfa::{self, Arena, Ctx, LookNeeds, NfaId};
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
    /// Most wall time for the whole compilation.
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

/// A rule's reporting DFA: absorbing on a match, with a reset state per state.
#[derive(Clone, Debug)]
pub(crate) struct ReportDfa {
    pub(crate) dfa: Module,
    pub(crate) reset: Vec<StateId>,
}

/// A reporting DFA's tables, kept as built until first use (the sparse attribution maps of a
/// [`Module`] are made then).
struct ReportParts {
    rules: Vec<RuleIndex>,
    classes: [u8; 256],
    nc: usize,
    trans: Vec<StateId>,
    start: StateId,
    clean_end: Vec<bool>,
    end_rules: Vec<Vec<RuleIndex>>,
    viol: Vec<u32>,
    viol_sets: Vec<Vec<RuleIndex>>,
    reset: Vec<StateId>,
}

impl ReportParts {
    fn into_dfa(self) -> ReportDfa {
        ReportDfa {
            dfa: module_from_tables(
                self.rules,
                self.classes,
                self.nc,
                self.trans,
                self.start,
                self.clean_end,
                &self.end_rules,
                &self.viol,
                &self.viol_sets,
            ),
            reset: self.reset,
        }
    }
}

/// A [`Module`] from dense tables: its sparse attribution maps are made from the
/// per-transition violation ids (`viol`, 0 = none, `k` = `viol_sets[k - 1]`) and the
/// per-state end rules.
#[allow(clippy::too_many_arguments)]
fn module_from_tables(
    rules: Vec<RuleIndex>,
    classes: [u8; 256],
    nc: usize,
    trans: Vec<StateId>,
    start: StateId,
    clean_end: Vec<bool>,
    end_rules: &[Vec<RuleIndex>],
    viol: &[u32],
    viol_sets: &[Vec<RuleIndex>],
) -> Module {
    let attribution = viol
        .iter()
        .enumerate()
        .filter(|(_, &v)| v != 0)
        .map(|(k, &v)| {
            (
                (StateId((k / nc) as u32), (k % nc) as u8),
                viol_sets[v as usize - 1].clone(),
            )
        })
        .collect();
    let end_attribution = end_rules
        .iter()
        .enumerate()
        .filter(|(_, v)| !v.is_empty())
        .map(|(i, v)| (StateId(i as u32), v.clone()))
        .collect();
    Module {
        rules,
        classes,
        num_classes: nc,
        trans,
        start,
        clean_end,
        attribution,
        end_attribution,
    }
}

/// What the per-rule reporting DFAs are built from, on first use (most `check` calls need
/// only a few of them: a rule whose module stays quiet on a text is skipped).
pub(crate) struct ReportSource {
    arena: Arena,
    alts: Vec<AltInfo>,
    rule_alts: Vec<Vec<u32>>,
    config: PolicyConfig,
    dfas: Vec<std::sync::OnceLock<Option<ReportDfa>>>,
    /// Tables already built (enforced rules), taken on first use.
    parts: Vec<std::sync::Mutex<Option<ReportParts>>>,
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
    /// limits and the rule is scanned by the regex engine instead.
    pub(crate) fn get(&self, ri: usize) -> Option<&ReportDfa> {
        self.dfas[ri]
            .get_or_init(|| {
                if let Some(p) = self.parts[ri].lock().ok().and_then(|mut p| p.take()) {
                    return Some(p.into_dfa());
                }
                let mut b = Builder::new(&self.arena, &self.alts, &self.config, Instant::now());
                b.build(&self.rule_alts[ri], true)
                    .ok()
                    .map(|raw| raw.into_report().into_dfa())
            })
            .as_ref()
    }
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
    pub(crate) span_finder: std::sync::Arc<crate::regex_check::SpanFinder>,
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
                        b.build(&rule_alts[ri], false)
                            .map_err(|e| rule_error(e, &rules[ri]))?,
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
                    .spawn_scoped(scope, || crate::regex_check::SpanFinder::build(&rules))
                    .ok();
                let built = build_modules();
                let finder = match finder {
                    Some(h) => h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
                    None => crate::regex_check::SpanFinder::build(&rules),
                };
                (built, finder)
            })
        } else {
            (
                build_modules(),
                crate::regex_check::SpanFinder::build(&rules),
            )
        };
        let (modules, report_cells, report_parts) = built?;
        let span_finder = std::sync::Arc::new(span_finder?);
        let compile_time = t0.elapsed();
        let module_stats = modules
            .iter()
            .map(|m| ModuleStats {
                rules: m
                    .rules
                    .iter()
                    .map(|&i| rules[i as usize].id.clone())
                    .collect(),
                states: m.num_states(),
                classes: m.num_classes(),
                memory_bytes: m.memory_bytes(),
            })
            .collect::<Vec<_>>();
        let memory_bytes = modules.iter().map(|m| m.memory_bytes()).sum::<usize>();
        let report = std::sync::Arc::new(ReportSource {
            dfas: report_cells,
            parts: report_parts,
            arena,
            alts,
            rule_alts,
            config: self.config.clone(),
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

/// `f` over `items` on `workers` threads (items are taken in order as workers become free);
/// results in item order.
fn par_map<T: Sync, R: Send>(items: &[T], workers: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let workers = workers.clamp(1, items.len().max(1));
    if workers == 1 {
        return items.iter().map(f).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut out: Vec<Option<R>> = (0..items.len()).map(|_| None).collect();
    let work = || {
        let mut mine = Vec::new();
        loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if i >= items.len() {
                break;
            }
            mine.push((i, f(&items[i])));
        }
        mine
    };
    let parts: Vec<Vec<(usize, R)>> = std::thread::scope(|scope| {
        // The calling thread is one of the workers, so a thread that cannot be started
        // (resource limits) only means less parallelism.
        let handles: Vec<_> = (1..workers)
            .filter_map(|_| std::thread::Builder::new().spawn_scoped(scope, work).ok())
            .collect();
        let mut parts = vec![work()];
        parts.extend(
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))),
        );
        parts
    });
    for (i, r) in parts.into_iter().flatten() {
        out[i] = Some(r);
    }
    out.into_iter()
        .map(|r| r.expect("every item is processed once"))
        .collect()
}

/// Add the byte-class boundaries that look-around needs: word/non-word bytes for `\b`, and
/// `\n` for multi-line anchors.
fn mark_look_boundaries(needs: LookNeeds, split: &mut [bool; 256]) {
    if needs.word {
        for b in 0..255u8 {
            if nfa::is_word_byte(b) != nfa::is_word_byte(b + 1) {
                split[b as usize] = true;
            }
        }
    }
    if needs.line {
        split[b'\n' as usize] = true;
        split[b'\n' as usize - 1] = true;
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

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Thread {
    alt: u32,
    a: NfaId,
    b: u32,
}

#[derive(Clone, Debug)]
enum Step {
    Match,
    /// The threads after the byte (interned thread ids).
    Next(Vec<u32>),
}

const CTX_WORD: u8 = 1;
const CTX_LF: u8 = 2;
const CTX_START: u8 = 4;
const EOI: u16 = 256;

fn ctx_of(bits: u8, next: u16) -> Ctx {
    Ctx {
        prev_word: bits & CTX_WORD != 0,
        prev_lf: bits & CTX_LF != 0,
        at_start: bits & CTX_START != 0,
        next: if next == EOI { None } else { Some(next as u8) },
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    lex: u16,
    ctx: u8,
    /// Interned thread set (index into `Raw::tsets`).
    ts: u32,
}

struct Builder<'a> {
    arena: &'a Arena,
    alts: &'a [AltInfo],
    config: &'a PolicyConfig,
    deadline: Deadline,
    /// NFA states visited by slow thread steps since the clock was last read.
    work: usize,
    /// Thread ids held by `steps`, and NFA states held by `bsets` (for the memory limit).
    step_items: usize,
    bset_items: usize,
    lex: &'static LexTable,
    bsets: Vec<Vec<NfaId>>,
    bset_ids: FxHashMap<Vec<NfaId>, u32>,
    /// Interned threads (thread id → thread) and their ids.
    threads: Vec<Thread>,
    thread_ids: FxHashMap<Thread, u32>,
    /// Per thread id: offset of its step memo in `memo` (`ctx index × (classes + 1)`
    /// entries, the last class being the end of text; `u32::MAX` = not computed).
    memo_off: Vec<u32>,
    memo: Vec<u32>,
    /// Per alternative: its own byte classes, class count, and context-value index.
    alt_class: Vec<[u8; 256]>,
    alt_nc: Vec<u32>,
    alt_ctx: Vec<[u8; 8]>,
    alt_nctx: Vec<u32>,
    /// Per alternative: one byte of each of its classes.
    alt_reps: Vec<Vec<u8>>,
    /// Per alternative: its NFA states (the most one closure can visit).
    alt_work: Vec<usize>,
    /// Per thread id and context (`tid * 8 + ctx`): 0 unknown, 1 no, 2 the thread matches
    /// whatever comes next (every byte, and the end of text).
    doomed: Vec<u8>,
    /// Per thread id: 0 unknown, 1 its next step ignores the look-behind context, 2 it may not.
    thread_ctx: Vec<u8>,
    steps: Vec<Step>,
    seen: nfa::Scratch,
    /// Per alternative: its dominance relation once computed (`Some(None)`: too large).
    dom: Vec<Option<Option<Dominance>>>,
}

/// The simulation preorder of one alternative's positive NFA: `q2 ≼ q1` when every way
/// the thread at `q2` can complete a match, the thread at `q1` completes one at the same
/// byte or earlier. A dominated thread can be dropped from a state without changing when a
/// violation happens, which keeps counted patterns such as `AKIA[0-9A-Z]{16}` small.
struct Dominance {
    lo: NfaId,
    n: usize,
    rel: Vec<bool>,
    /// Per state (offset from `lo`): the smallest thread state equivalent to it (each
    /// dominates the other), so equivalent threads become one thread.
    canon: Vec<NfaId>,
}

impl Dominance {
    /// The canonical representative of thread state `q`.
    fn canon(&self, q: NfaId) -> NfaId {
        match q.checked_sub(self.lo) {
            Some(k) if (k as usize) < self.n => self.canon[k as usize],
            _ => q,
        }
    }

    fn dominated(&self, q2: NfaId, q1: NfaId) -> bool {
        let (a, b) = ((q2 - self.lo) as usize, (q1 - self.lo) as usize);
        a < self.n && b < self.n && self.rel[a * self.n + b]
    }
}

/// Largest NFA (in states) for which the dominance relation is computed.
const MAX_DOMINANCE_STATES: usize = 300;

/// A DFA straight out of the subset construction.
struct Raw {
    rules: Vec<RuleIndex>,
    classes: [u8; 256],
    reps: Vec<u8>,
    /// Per state (index 0 = violated).
    states: Vec<Key>,
    /// Interned thread sets (of thread ids), indexed by `Key::ts`.
    tsets: SetTable,
    trans: Vec<StateId>,
    clean_end: Vec<bool>,
    end_rules: Vec<Vec<RuleIndex>>,
    /// Per transition (parallel to `trans`): 0, or `k` when it violates the rules
    /// `viol_sets[k - 1]`.
    viol: Vec<u32>,
    viol_sets: Vec<Vec<RuleIndex>>,
    reset: Vec<StateId>,
    start: StateId,
}

impl<'a> Builder<'a> {
    fn new(arena: &'a Arena, alts: &'a [AltInfo], config: &'a PolicyConfig, t0: Instant) -> Self {
        let mut b = Builder {
            arena,
            alts,
            config,
            deadline: Deadline::new(t0, config.max_compile_time),
            work: 0,
            step_items: 0,
            bset_items: 0,
            lex: lexer::table(),
            bsets: Vec::new(),
            bset_ids: FxHashMap::default(),
            threads: Vec::new(),
            thread_ids: FxHashMap::default(),
            memo_off: Vec::new(),
            memo: Vec::new(),
            alt_class: vec![[0; 256]; alts.len()],
            alt_nc: vec![0; alts.len()],
            alt_ctx: vec![[0; 8]; alts.len()],
            alt_nctx: vec![0; alts.len()],
            alt_reps: vec![Vec::new(); alts.len()],
            alt_work: vec![0; alts.len()],
            doomed: Vec::new(),
            thread_ctx: Vec::new(),
            steps: Vec::new(),
            seen: nfa::Scratch::default(),
            dom: (0..alts.len()).map(|_| None).collect(),
        };
        b.bsets.push(Vec::new());
        b.bset_ids.insert(Vec::new(), 0);
        b
    }

    /// Working memory of this builder's own tables, in bytes (an estimate within a small
    /// factor: hash tables are counted by their entries).
    fn used_bytes(&self) -> usize {
        self.memo.len() * 4
            + self.threads.len() * 32
            + self.step_items * 4
            + self.steps.len() * std::mem::size_of::<Step>()
            + self.bset_items * 8
            + self.bsets.len() * 48
            + self.doomed.len()
            + self.thread_ctx.len()
    }

    /// A size-limit error if this builder's tables and `extra` bytes more exceed
    /// [`PolicyConfig::max_build_bytes`].
    fn check_bytes(&self, extra: usize) -> Result<(), CompileError> {
        if self.used_bytes() + extra > self.config.max_build_bytes {
            return Err(CompileError::new(
                ErrorKind::SizeLimit,
                format!(
                    "building the automaton needs more than {} bytes of working memory (the build limit); \
                     shorten counted repetitions or large alternations in the pattern",
                    self.config.max_build_bytes
                ),
            ));
        }
        Ok(())
    }

    /// The byte classes and context values of alternative `a` (computed on first use, so a
    /// builder that serves one rule costs nothing for the others).
    fn ensure_alt(&mut self, a: usize) {
        if self.alt_nc[a] != 0 {
            return;
        }
        let alt = &self.alts[a];
        let mut split = [false; 256];
        split[255] = true;
        for r in &alt.ranges {
            nfa::mark_boundaries(self.arena, r.clone(), &mut split);
        }
        mark_look_boundaries(alt.needs, &mut split);
        let mut classes = [0u8; 256];
        let mut c = 0u32;
        for (byte, class) in classes.iter_mut().enumerate() {
            *class = c as u8;
            if split[byte] && byte < 255 {
                c += 1;
            }
        }
        let mask = (if alt.needs.word { CTX_WORD } else { 0 })
            | (if alt.needs.line { CTX_LF } else { 0 })
            | (if alt.needs.text { CTX_START } else { 0 });
        let mut cidx = [0u8; 8];
        let mut vals: Vec<u8> = Vec::new();
        for (v, slot) in cidx.iter_mut().enumerate() {
            let m = v as u8 & mask;
            *slot = match vals.iter().position(|&x| x == m) {
                Some(k) => k as u8,
                None => {
                    vals.push(m);
                    (vals.len() - 1) as u8
                }
            };
        }
        let mut reps = vec![0u8];
        for byte in 1..256usize {
            if classes[byte] != classes[byte - 1] {
                reps.push(byte as u8);
            }
        }
        self.alt_reps[a] = reps;
        self.alt_work[a] = alt.ranges.iter().map(|r| r.len()).sum::<usize>() + 1;
        self.alt_class[a] = classes;
        self.alt_nc[a] = c + 1;
        self.alt_ctx[a] = cidx;
        self.alt_nctx[a] = vals.len() as u32;
    }

    /// The id of thread `t`.
    fn thread_id(&mut self, t: Thread) -> Result<u32, CompileError> {
        if let Some(&id) = self.thread_ids.get(&t) {
            return Ok(id);
        }
        let a = t.alt as usize;
        self.ensure_alt(a);
        let size = (self.alt_nctx[a] * (self.alt_nc[a] + 1)) as usize;
        self.check_bytes(size * 4)?;
        let id = self.threads.len() as u32;
        self.threads.push(t);
        self.thread_ids.insert(t, id);
        self.memo_off.push(self.memo.len() as u32);
        self.memo.resize(self.memo.len() + size, u32::MAX);
        Ok(id)
    }

    /// The id of exclusion-state set `set`.
    fn intern(&mut self, set: Vec<NfaId>) -> Result<u32, CompileError> {
        if let Some(&id) = self.bset_ids.get(&set) {
            return Ok(id);
        }
        self.check_bytes(set.len() * 8)?;
        let id = self.bsets.len() as u32;
        self.bset_items += set.len();
        self.bsets.push(set.clone());
        self.bset_ids.insert(set, id);
        Ok(id)
    }

    /// Whether thread `tid`'s next step may depend on the look-behind context: some
    /// assertion is reachable by epsilon moves from its positive or exclusion states.
    fn thread_needs_ctx(&mut self, tid: u32) -> bool {
        if let Some(&v) = self.thread_ctx.get(tid as usize) {
            if v != 0 {
                return v == 2;
            }
        }
        let t = self.threads[tid as usize];
        let alt = &self.alts[t.alt as usize];
        let reach = &self.arena.look_reach;
        let needs = reach[t.a as usize]
            || (!alt.not_starts.is_empty()
                && (self.bsets[t.b as usize]
                    .iter()
                    .chain(&alt.not_starts)
                    .any(|&q| reach[q as usize])));
        if self.thread_ctx.len() <= tid as usize {
            self.thread_ctx.resize(tid as usize + 1, 0);
        }
        self.thread_ctx[tid as usize] = if needs { 2 } else { 1 };
        needs
    }

    /// Whether thread `tid` in context `ctx` completes a match whatever comes next (every
    /// byte and the end of text): a state holding it is dead.
    fn is_doomed(&mut self, tid: u32, ctx: u8) -> Result<bool, CompileError> {
        let t = self.threads[tid as usize];
        let a = t.alt as usize;
        let slot = tid as usize * 8 + ctx as usize;
        if self.doomed.len() <= slot {
            self.doomed.resize((tid as usize + 1) * 8, 0);
        }
        if self.doomed[slot] != 0 {
            return Ok(self.doomed[slot] == 2);
        }
        let si = self.step_thread(tid, ctx, EOI)?;
        let mut doomed = matches!(self.steps[si], Step::Match);
        if doomed {
            for k in 0..self.alt_reps[a].len() {
                let rep = self.alt_reps[a][k];
                let si = self.step_thread(tid, ctx, rep as u16)?;
                if !matches!(self.steps[si], Step::Match) {
                    doomed = false;
                    break;
                }
            }
        }
        self.doomed[slot] = if doomed { 2 } else { 1 };
        Ok(doomed)
    }

    /// One thread's step in context `ctx` before byte `next` (or the end of text).
    #[inline]
    fn step_thread(&mut self, tid: u32, ctx: u8, next: u16) -> Result<usize, CompileError> {
        let t = self.threads[tid as usize];
        let a = t.alt as usize;
        let class = if next == EOI {
            self.alt_nc[a]
        } else {
            self.alt_class[a][next as usize] as u32
        };
        let slot = self.memo_off[tid as usize] as usize
            + self.alt_ctx[a][ctx as usize] as usize * (self.alt_nc[a] as usize + 1)
            + class as usize;
        let m = self.memo[slot];
        if m != u32::MAX {
            return Ok(m as usize);
        }
        let idx = self.step_thread_slow(t, ctx, next)?;
        self.memo[slot] = idx as u32;
        Ok(idx)
    }

    /// Read the clock once the slow steps have visited about 64 Ki NFA states since the
    /// last time.
    fn tick(&mut self, work: usize) -> Result<(), CompileError> {
        self.work += work;
        if self.work >= 1 << 16 {
            self.work = 0;
            self.deadline.check()?;
        }
        Ok(())
    }

    fn step_thread_slow(&mut self, t: Thread, ctx: u8, next: u16) -> Result<usize, CompileError> {
        // Each closure visits at most the alternative's NFA states.
        self.tick(self.alt_work[t.alt as usize])?;
        let alt = &self.alts[t.alt as usize];
        let c = ctx_of(ctx, next);
        let mut bclosed = Vec::new();
        let has_not = !alt.not_starts.is_empty();
        let result = 'r: {
            if has_not {
                let mut seeds = self.bsets[t.b as usize].clone();
                seeds.extend(alt.not_starts.iter().copied());
                if nfa::closure(self.arena, &seeds, &c, &mut bclosed, &mut self.seen) {
                    break 'r Step::Next(Vec::new()); // an exclusion matched inside: the thread dies
                }
            }
            let mut aclosed = Vec::new();
            if nfa::closure(self.arena, &[t.a], &c, &mut aclosed, &mut self.seen) {
                break 'r Step::Match;
            }
            let Some(byte) = c.next else {
                break 'r Step::Next(Vec::new());
            };
            let mut anext = Vec::new();
            nfa::step(self.arena, &aclosed, byte, &mut anext);
            if anext.is_empty() {
                break 'r Step::Next(Vec::new());
            }
            let bid = if has_not {
                let mut bnext = Vec::new();
                nfa::step(self.arena, &bclosed, byte, &mut bnext);
                self.intern(bnext)?
            } else {
                0
            };
            // Equivalent thread states become one (smaller DFAs, same behaviour).
            let anext: Vec<NfaId> = match self.dominance(t.alt)? {
                Some(d) => anext.into_iter().map(|a| d.canon(a)).collect(),
                None => anext,
            };
            let mut ids: Vec<u32> = Vec::with_capacity(anext.len());
            for a in anext {
                ids.push(self.thread_id(Thread {
                    alt: t.alt,
                    a,
                    b: bid,
                })?);
            }
            ids.sort_unstable();
            ids.dedup();
            self.check_bytes(ids.len() * 4)?;
            self.step_items += ids.len();
            Step::Next(ids)
        };
        let idx = self.steps.len();
        self.steps.push(result);
        Ok(idx)
    }

    fn dominance(&mut self, alt: u32) -> Result<Option<&Dominance>, CompileError> {
        if self.dom[alt as usize].is_none() {
            let d = self.compute_dominance(alt)?;
            self.dom[alt as usize] = Some(d);
        }
        Ok(self.dom[alt as usize].as_ref().and_then(|d| d.as_ref()))
    }

    fn compute_dominance(&mut self, alt: u32) -> Result<Option<Dominance>, CompileError> {
        let info = &self.alts[alt as usize];
        let range = info.ranges[0].clone();
        let n = (range.end - range.start) as usize;
        if n == 0 {
            return Ok(None);
        }
        let lo = range.start;
        // Threads only ever sit on the start state or on targets of consuming states.
        let mut is_thread = vec![false; n];
        is_thread[(info.a_start - lo) as usize] = true;
        for id in range.clone() {
            match &self.arena.states[id as usize] {
                nfa::NState::Range { next, .. } | nfa::NState::Ranges { next, .. }
                    if (lo..range.end).contains(next) =>
                {
                    is_thread[(*next - lo) as usize] = true;
                }
                _ => {}
            }
        }
        let tstates: Vec<usize> = (0..n).filter(|&i| is_thread[i]).collect();
        let m = tstates.len();
        if m > MAX_DOMINANCE_STATES {
            return Ok(None);
        }
        let mut index = vec![usize::MAX; n];
        for (k, &q) in tstates.iter().enumerate() {
            index[q] = k;
        }
        let mut split = [false; 256];
        split[255] = true;
        nfa::mark_boundaries(self.arena, range.clone(), &mut split);
        let needs = LookNeeds {
            word: info.needs.word,
            line: info.needs.line,
            text: info.needs.text,
        };
        mark_look_boundaries(needs, &mut split);
        let mut nexts: Vec<u16> = vec![0];
        for (b, _) in split.iter().enumerate().take(255).filter(|(_, &sp)| sp) {
            nexts.push(b as u16 + 1);
        }
        nexts.push(EOI);
        let mask = (if needs.word { CTX_WORD } else { 0 })
            | (if needs.line { CTX_LF } else { 0 })
            | (if needs.text { CTX_START } else { 0 });
        let ctx_bits: Vec<u8> = (0..8u8).filter(|b| b & !mask == 0).collect();
        let nctx = ctx_bits.len() * nexts.len();
        let mut matched = vec![false; m * nctx];
        let mut succ: Vec<Vec<u32>> = vec![Vec::new(); m * nctx];
        let mut closed = Vec::new();
        let mut out = Vec::new();
        for (k, &q) in tstates.iter().enumerate() {
            // Without an assertion on the epsilon paths from q, its closure is the same in
            // every context: compute it once.
            let look_free = !self.arena.look_reach[lo as usize + q];
            let free_match = look_free
                && nfa::closure(
                    self.arena,
                    &[lo + q as NfaId],
                    &ctx_of(0, EOI),
                    &mut closed,
                    &mut self.seen,
                );
            for (bi, &bits) in ctx_bits.iter().enumerate() {
                for (ni, &nx) in nexts.iter().enumerate() {
                    self.tick(if look_free { 1 } else { n })?;
                    let c = ctx_of(bits, nx);
                    let ci = bi * nexts.len() + ni;
                    let mt = if look_free {
                        free_match
                    } else {
                        nfa::closure(
                            self.arena,
                            &[lo + q as NfaId],
                            &c,
                            &mut closed,
                            &mut self.seen,
                        )
                    };
                    matched[k * nctx + ci] = mt;
                    if let Some(b) = c.next {
                        nfa::step(self.arena, &closed, b, &mut out);
                        succ[k * nctx + ci] = out
                            .iter()
                            .map(|&r| index[(r - lo) as usize] as u32)
                            .collect();
                    }
                }
            }
        }
        // Contexts that every state treats alike (same match, same successors) are one.
        let (matched, succ, nctx) = {
            let mut seen_sig: FxHashMap<Vec<u32>, ()> = FxHashMap::default();
            let mut keep: Vec<usize> = Vec::new();
            for c in 0..nctx {
                let mut sig: Vec<u32> = Vec::with_capacity(3 * m);
                for k in 0..m {
                    let mut sc = succ[k * nctx + c].clone();
                    sc.sort_unstable();
                    sig.push(matched[k * nctx + c] as u32);
                    sig.push(sc.len() as u32);
                    sig.extend(sc);
                }
                if seen_sig.insert(sig, ()).is_none() {
                    keep.push(c);
                }
            }
            let n2 = keep.len();
            let mut m2 = vec![false; m * n2];
            let mut s2: Vec<Vec<u32>> = vec![Vec::new(); m * n2];
            for k in 0..m {
                for (j, &c) in keep.iter().enumerate() {
                    m2[k * n2 + j] = matched[k * nctx + c];
                    s2[k * n2 + j] = std::mem::take(&mut succ[k * nctx + c]);
                }
            }
            (m2, s2, n2)
        };
        let mut rel = vec![true; m * m];
        for q2 in 0..m {
            for q1 in 0..m {
                if (0..nctx).any(|c| matched[q2 * nctx + c] && !matched[q1 * nctx + c]) {
                    rel[q2 * m + q1] = false;
                }
            }
        }
        let mut changed = true;
        while changed {
            changed = false;
            for q2 in 0..m {
                self.tick(m * nctx)?;
                for q1 in 0..m {
                    if q1 == q2 || !rel[q2 * m + q1] {
                        continue;
                    }
                    let ok = (0..nctx).all(|c| {
                        matched[q1 * nctx + c]
                            || succ[q2 * nctx + c].iter().all(|&r2| {
                                succ[q1 * nctx + c]
                                    .iter()
                                    .any(|&r1| rel[r2 as usize * m + r1 as usize])
                            })
                    });
                    if !ok {
                        rel[q2 * m + q1] = false;
                        changed = true;
                    }
                }
            }
        }
        let mut canon: Vec<NfaId> = (0..n as NfaId).map(|k| lo + k).collect();
        for (i2, &q2) in tstates.iter().enumerate() {
            if let Some(i1) = (0..m).find(|&i1| rel[i2 * m + i1] && rel[i1 * m + i2]) {
                canon[q2] = lo + tstates[i1] as NfaId;
            }
        }
        // expand to the full range for lookups
        let mut full = vec![false; n * n];
        for (i2, &q2) in tstates.iter().enumerate() {
            for (i1, &q1) in tstates.iter().enumerate() {
                full[q2 * n + q1] = rel[i2 * m + i1];
            }
        }
        Ok(Some(Dominance {
            lo,
            n,
            rel: full,
            canon,
        }))
    }

    /// Drop threads dominated by another thread of the same alternative: `t2` is dominated
    /// by `t1` when `t2.a ≼ t1.a` and `t1`'s exclusion set is a subset of `t2`'s (so `t1`
    /// matches no later than `t2` and is killed only when `t2` is too).
    fn prune(&mut self, tids: &mut Vec<u32>) -> Result<(), CompileError> {
        if tids.len() < 2 {
            return Ok(());
        }
        // Only threads of the same alternative can dominate each other.
        let shared = tids.iter().enumerate().any(|(i, &x)| {
            let a = self.threads[x as usize].alt;
            tids[i + 1..]
                .iter()
                .any(|&y| self.threads[y as usize].alt == a)
        });
        if !shared {
            return Ok(());
        }
        let mut keep = vec![true; tids.len()];
        let mut any = false;
        for i in 0..tids.len() {
            self.tick(tids.len())?;
            let t2 = self.threads[tids[i] as usize];
            for j in 0..tids.len() {
                if i == j || !keep[j] {
                    continue;
                }
                let t1 = self.threads[tids[j] as usize];
                if t1.alt != t2.alt {
                    continue;
                }
                if self.dominance(t2.alt)?.is_none() {
                    break;
                }
                if self.dominates(t1, t2)
                    && (!self.dominates(t2, t1) || (t1.a, t1.b) < (t2.a, t2.b))
                {
                    keep[i] = false;
                    any = true;
                    break;
                }
            }
        }
        if any {
            let mut k = keep.iter();
            tids.retain(|_| *k.next().unwrap());
        }
        Ok(())
    }

    /// `t1` dominates `t2` (same alternative).
    fn dominates(&self, t1: Thread, t2: Thread) -> bool {
        let Some(Some(d)) = &self.dom[t2.alt as usize] else {
            return false;
        };
        if !d.dominated(t2.a, t1.a) {
            return false;
        }
        if t1.b == t2.b || t1.b == 0 {
            return true;
        }
        let (b1, b2) = (&self.bsets[t1.b as usize], &self.bsets[t2.b as usize]);
        b1.iter().all(|x| b2.binary_search(x).is_ok())
    }

    /// Subset construction for the given alternatives. `with_reset` adds, for every state,
    /// the state with the same lexer and context but no threads (for reporting).
    fn build(&mut self, alt_ids: &[u32], with_reset: bool) -> Result<Raw, CompileError> {
        let mut needs = LookNeeds::default();
        let mut needs_lex = false;
        let mut split = [false; 256];
        split[255] = true;
        let mut rules: Vec<RuleIndex> = Vec::new();
        for &a in alt_ids {
            let alt = &self.alts[a as usize];
            needs = needs.union(alt.needs);
            needs_lex |= alt.scope != RuleScope::Any;
            for r in &alt.ranges {
                nfa::mark_boundaries(self.arena, r.clone(), &mut split);
            }
            if !rules.contains(&alt.rule) {
                rules.push(alt.rule);
            }
        }
        if needs_lex {
            for (i, s) in self.lex.split.iter().enumerate() {
                split[i] |= *s;
            }
        }
        mark_look_boundaries(needs, &mut split);
        let mut classes = [0u8; 256];
        let mut reps = vec![0u8];
        let mut c = 0u8;
        for b in 0..256usize {
            classes[b] = c;
            if split[b] && b < 255 {
                c += 1;
                reps.push(b as u8 + 1);
            }
        }
        let nc = reps.len();
        let ctx_mask = (if needs.word { CTX_WORD } else { 0 })
            | (if needs.line { CTX_LF } else { 0 })
            | (if needs.text { CTX_START } else { 0 });
        let ctx_after = |b: u8| -> u8 {
            ((if nfa::is_word_byte(b) { CTX_WORD } else { 0 })
                | (if b == b'\n' { CTX_LF } else { 0 }))
                & ctx_mask
        };

        // Context values that can occur, numbered densely.
        // A state's look-behind context matters only if the next step may read it: a
        // pending thread with an assertion ahead, or a start thread with one that the next
        // byte's scope can admit. Elsewhere it is dropped (set to 0), which merges states
        // that differ only there.
        let scope_bit = |sc: Scope| 1u8 << (sc as u8);
        let mut start_ctx_scopes = 0u8;
        for &a in alt_ids {
            let sid = self.thread_id(Thread {
                alt: a,
                a: self.alts[a as usize].a_start,
                b: 0,
            })?;
            if self.thread_needs_ctx(sid) {
                for sc in [Scope::Code, Scope::String, Scope::Comment] {
                    if self.alts[a as usize].scope.admits(sc) {
                        start_ctx_scopes |= scope_bit(sc);
                    }
                }
            }
        }
        let code_only = [scope_bit(Scope::Code)];
        let lex_scopes: &[u8] = if needs_lex {
            &self.lex.next_scopes
        } else {
            &code_only
        };
        let mut ts_ctx: Vec<bool> = vec![false];
        // Per (thread set, context index): u32::MAX unknown, 0 live, else the violation id
        // of the doomed threads' rules.
        let mut ts_doomed: Vec<u32> = Vec::new();
        let mut ctx_index = [u8::MAX; 8];
        let mut nctx = 0usize;
        for v in 0..8u8 {
            if v & !ctx_mask == 0 {
                ctx_index[v as usize] = nctx as u8;
                nctx += 1;
            }
        }
        let nlex = if needs_lex { self.lex.len() } else { 1 };

        let mut states: Vec<Key> = vec![Key {
            lex: u16::MAX,
            ctx: 0,
            ts: 0,
        }]; // 0 = violated
            // Thread sets are interned; a transition's thread part depends only on (thread set,
            // scope, context, byte class), not on the full lexer state, so it is memoised in a
            // dense table (`tmemo`, per thread set), and states are found through a dense table
            // per thread set indexed by (lexer state, context) (`ids`).
        let mut tsets = SetTable::new();
        const UNKNOWN: u32 = u32::MAX;
        const VIOL_BIT: u32 = 1 << 31;
        // The thread that starts each alternative.
        let mut starts: Vec<u32> = Vec::with_capacity(alt_ids.len());
        for &a in alt_ids {
            starts.push(self.thread_id(Thread {
                alt: a,
                a: self.alts[a as usize].a_start,
                b: 0,
            })?);
        }
        // Scopes that admit the same alternatives inject the same start threads: one memo
        // column per injection, and the context only keys the memo where it can matter.
        let mut inj_of_scope = [0usize; 3];
        let mut inj_sets: Vec<Vec<u32>> = Vec::new();
        let mut inj_ctx: Vec<bool> = Vec::new();
        for sc in [Scope::Code, Scope::String, Scope::Comment] {
            let admitted: Vec<u32> = (0..alt_ids.len() as u32)
                .filter(|&k| self.alts[alt_ids[k as usize] as usize].scope.admits(sc))
                .collect();
            inj_of_scope[sc as usize] = match inj_sets.iter().position(|v| *v == admitted) {
                Some(k) => k,
                None => {
                    inj_ctx.push(
                        admitted
                            .iter()
                            .any(|&k| self.thread_needs_ctx(starts[k as usize])),
                    );
                    inj_sets.push(admitted);
                    inj_sets.len() - 1
                }
            };
        }
        let nscope = inj_sets.len();
        let tstride = nscope * nctx * nc;
        let istride = nlex * nctx;
        // Room for typical sizes up front (untouched capacity costs no memory), so the
        // tables are not copied as they grow.
        let mut tmemo: Vec<u32> = Vec::with_capacity(tstride * 512);
        tmemo.resize(tstride, UNKNOWN);
        let mut ids: Vec<u32> = Vec::with_capacity(istride * 512);
        ids.resize(istride, 0); // 0 = no state yet
        let start_ctx = (CTX_LF | CTX_START) & ctx_mask;
        ids[ctx_index[start_ctx as usize] as usize] = 1;
        states.push(Key {
            lex: 0,
            ctx: start_ctx,
            ts: 0,
        });
        let mut viol_sets: Vec<Vec<RuleIndex>> = Vec::new();
        let mut viol_ids: FxHashMap<Vec<RuleIndex>, u32> = FxHashMap::default();
        let mut trans: Vec<StateId> = Vec::with_capacity(nc * 2048);
        trans.resize(nc, StateId::VIOLATED); // violated row
        let mut viol: Vec<u32> = Vec::with_capacity(nc * 2048);
        viol.resize(nc, 0);
        let mut clean_end = vec![false];
        let mut end_rules = vec![Vec::new()];
        let mut reset = vec![StateId::VIOLATED];
        let max_states = self.config.max_states;
        let mut i = 1;
        let mut threads: Vec<u32> = Vec::new();
        let mut next_threads: Vec<u32> = Vec::new();
        let mut violated: Vec<RuleIndex> = Vec::new();
        while i < states.len() {
            if i % 64 == 0 {
                self.deadline.check()?;
            }
            let Key { lex, ctx, ts } = states[i];
            let cx = ctx_index[ctx as usize] as usize;
            // end of text
            let mut er = Vec::new();
            for &t in tsets.get(ts) {
                let si = self.step_thread(t, ctx, EOI)?;
                if let Step::Match = self.steps[si] {
                    let r = self.alts[self.threads[t as usize].alt as usize].rule;
                    if !er.contains(&r) {
                        er.push(r);
                    }
                }
            }
            clean_end.push(er.is_empty());
            end_rules.push(er);
            if with_reset {
                let slot = lex as usize * nctx + cx;
                if ids[slot] == 0 {
                    states.push(Key { lex, ctx, ts: 0 });
                    ids[slot] = (states.len() - 1) as u32;
                }
                reset.push(StateId(ids[slot]));
            }
            for (ci, &rep) in reps.iter().enumerate() {
                let scope = if needs_lex {
                    self.lex.scope_at(lex, rep)
                } else {
                    Scope::Code
                };
                let inj = inj_of_scope[scope as usize];
                let mcx = if ts_ctx[ts as usize] || inj_ctx[inj] {
                    cx
                } else {
                    0
                };
                let mslot = ts as usize * tstride + (inj * nctx + mcx) * nc + ci;
                let mut out = tmemo[mslot];
                if out == UNKNOWN {
                    threads.clear();
                    threads.extend_from_slice(tsets.get(ts));
                    threads.extend(inj_sets[inj].iter().map(|&k| starts[k as usize]));
                    next_threads.clear();
                    violated.clear();
                    self.tick(threads.len())?;
                    for &t in &threads {
                        let si = self.step_thread(t, ctx, rep as u16)?;
                        match &self.steps[si] {
                            Step::Match => {
                                let r = self.alts[self.threads[t as usize].alt as usize].rule;
                                if !violated.contains(&r) {
                                    violated.push(r);
                                }
                            }
                            Step::Next(v) => next_threads.extend_from_slice(v),
                        }
                    }
                    out = if !violated.is_empty() {
                        violated.sort_unstable();
                        let vid = match viol_ids.get(&violated) {
                            Some(&v) => v,
                            None => {
                                viol_sets.push(violated.clone());
                                let v = viol_sets.len() as u32;
                                viol_ids.insert(violated.clone(), v);
                                v
                            }
                        };
                        VIOL_BIT | vid
                    } else {
                        next_threads.sort_unstable();
                        next_threads.dedup();
                        self.prune(&mut next_threads)?;
                        let (id, new) = tsets.intern(&next_threads);
                        if new {
                            let needs = next_threads.iter().any(|&t| self.thread_needs_ctx(t));
                            ts_ctx.push(needs);
                            tmemo.resize(tmemo.len() + tstride, UNKNOWN);
                            ids.resize(ids.len() + istride, 0);
                        }
                        id
                    };
                    tmemo[mslot] = out;
                }
                if out & VIOL_BIT != 0 {
                    viol.push(out & !VIOL_BIT);
                    trans.push(StateId::VIOLATED);
                } else {
                    let nts = out;
                    let nlex = if needs_lex {
                        self.lex.next(lex, rep)
                    } else {
                        0
                    };
                    let octx = if ts_ctx[nts as usize]
                        || lex_scopes[nlex as usize] & start_ctx_scopes != 0
                    {
                        ctx_after(rep)
                    } else {
                        0
                    };
                    // A thread that completes whatever comes next makes the state dead:
                    // violate here instead of building it (enforced modules only; the
                    // reporting DFAs must report the match where it ends).
                    if !with_reset {
                        let ds = nts as usize * nctx + ctx_index[octx as usize] as usize;
                        if ts_doomed.len() <= ds {
                            ts_doomed.resize((nts as usize + 1) * nctx, u32::MAX);
                        }
                        if ts_doomed[ds] == u32::MAX {
                            let mut rs: Vec<RuleIndex> = Vec::new();
                            for &t in tsets.get(nts) {
                                if self.is_doomed(t, octx)? {
                                    let r = self.alts[self.threads[t as usize].alt as usize].rule;
                                    if !rs.contains(&r) {
                                        rs.push(r);
                                    }
                                }
                            }
                            ts_doomed[ds] = if rs.is_empty() {
                                0
                            } else {
                                rs.sort_unstable();
                                match viol_ids.get(&rs) {
                                    Some(&v) => v,
                                    None => {
                                        viol_sets.push(rs.clone());
                                        let v = viol_sets.len() as u32;
                                        viol_ids.insert(rs, v);
                                        v
                                    }
                                }
                            };
                        }
                        if ts_doomed[ds] != 0 {
                            viol.push(ts_doomed[ds]);
                            trans.push(StateId::VIOLATED);
                            continue;
                        }
                    }
                    let slot = nts as usize * istride
                        + nlex as usize * nctx
                        + ctx_index[octx as usize] as usize;
                    let id = if ids[slot] == 0 {
                        states.push(Key {
                            lex: nlex,
                            ctx: octx,
                            ts: nts,
                        });
                        ids[slot] = (states.len() - 1) as u32;
                        ids[slot]
                    } else {
                        ids[slot]
                    };
                    viol.push(0);
                    trans.push(StateId(id));
                }
            }
            if states.len() > max_states {
                return Err(CompileError::new(
                    ErrorKind::SizeLimit,
                    format!("the automaton needs more than {max_states} states (the per-module limit); narrow the gaps (`.*`, `[^)]*`) or counted repetitions in the pattern"),
                ));
            }
            if trans.len() * 4 > self.config.max_module_bytes {
                return Err(CompileError::new(
                    ErrorKind::SizeLimit,
                    format!(
                        "the automaton needs more than {} bytes of tables (the per-module limit)",
                        self.config.max_module_bytes
                    ),
                ));
            }
            self.check_bytes(
                (tmemo.len() + ids.len() + ts_doomed.len() + ts_ctx.len()) * 4
                    + tsets.bytes()
                    + states.len() * std::mem::size_of::<Key>(),
            )?;
            i += 1;
        }
        Ok(Raw {
            tsets,
            rules,
            classes,
            reps,
            states,
            trans,
            clean_end,
            end_rules,
            viol,
            viol_sets,
            reset,
            start: StateId(1),
        })
    }
}

impl Raw {
    fn nc(&self) -> usize {
        self.reps.len()
    }

    /// The reporting form (no reduction, reset states kept), as tables.
    fn into_report(self) -> ReportParts {
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

    /// The enforced form, reduced, and the reporting form. States that cannot reach a clean
    /// end are merged into the violated state (so every other state has a clean completion),
    /// and the transitions into them attributed to the rules pending there. Needs the builder
    /// that made this automaton; the results do not.
    fn enforced(mut self, b: &mut Builder<'_>) -> Result<(Pruned, ReportParts), CompileError> {
        let n = self.states.len();
        let nc = self.nc();
        // States only reset transitions reach are not part of the module.
        let mut reached = vec![false; n];
        let mut stack = vec![self.start.as_usize()];
        reached[self.start.as_usize()] = true;
        while let Some(s) = stack.pop() {
            for &t in &self.trans[s * nc..(s + 1) * nc] {
                if !reached[t.as_usize()] {
                    reached[t.as_usize()] = true;
                    stack.push(t.as_usize());
                }
            }
        }
        let live = co_reachable(n, nc, &self.trans, &self.clean_end, &reached);
        // Transitions into dead states violate, attributed to the rules pending there. They
        // are patched in place for the reduction and restored afterwards: the reporting DFA
        // (the same tables) must report a match where it ends.
        let mut pending: FxHashMap<usize, u32> = FxHashMap::default();
        let mut patches: Vec<(usize, StateId, u32)> = Vec::new();
        for s in 1..n {
            if !live[s] {
                continue;
            }
            for c in 0..nc {
                let t = self.trans[s * nc + c].as_usize();
                if t != 0 && !live[t] {
                    let vid = match pending.get(&t) {
                        Some(&v) => v,
                        None => {
                            let mut rs: Vec<RuleIndex> = Vec::new();
                            for next in [b'a' as u16, b' ' as u16, b'\n' as u16, b'(' as u16, EOI] {
                                for &th in self.tsets.get(self.states[t].ts) {
                                    let si = b.step_thread(th, self.states[t].ctx, next)?;
                                    if let Step::Match = b.steps[si] {
                                        let r = b.alts[b.threads[th as usize].alt as usize].rule;
                                        if !rs.contains(&r) {
                                            rs.push(r);
                                        }
                                    }
                                }
                            }
                            if rs.is_empty() {
                                rs = self.rules.clone();
                            }
                            rs.sort_unstable();
                            let v = match self.viol_sets.iter().position(|v| *v == rs) {
                                Some(k) => k as u32 + 1,
                                None => {
                                    self.viol_sets.push(rs);
                                    self.viol_sets.len() as u32
                                }
                            };
                            pending.insert(t, v);
                            v
                        }
                    };
                    let k = s * nc + c;
                    patches.push((k, self.trans[k], self.viol[k]));
                    self.viol[k] = vid;
                    self.trans[k] = StateId::VIOLATED;
                }
            }
        }
        let lex: Vec<u16> = self.states.iter().map(|k| k.lex).collect();
        let pruned = reduce_tables(
            self.rules.clone(),
            self.classes,
            nc,
            &lex,
            &self.trans,
            &self.viol,
            self.viol_sets.clone(),
            &self.clean_end,
            &self.end_rules,
            &live,
            self.start,
            &b.deadline,
        )?;
        for (k, t, v) in patches {
            self.trans[k] = t;
            self.viol[k] = v;
        }
        let report = self.into_report();
        Ok((pruned, report))
    }
}

/// An automaton after dead-state pruning, ready to be minimised (see [`Raw::prune`]).
struct Pruned {
    rules: Vec<RuleIndex>,
    classes: [u8; 256],
    nc: usize,
    lex: Vec<u16>,
    trans: Vec<StateId>,
    viol: Vec<u32>,
    viol_sets: Vec<Vec<RuleIndex>>,
    clean_end: Vec<bool>,
    end_rules: Vec<Vec<RuleIndex>>,
    live: Vec<bool>,
    start: StateId,
}

/// Which states (among `reached`) can reach a clean end without a violation. Most states
/// are clean ends themselves; the others are settled by depth-first searches: one that
/// finds a live state makes its whole current path live, one that finds none proves every
/// state it visited dead. Past a work budget (pathological graphs) it falls back to a
/// backward search over all reverse edges.
fn co_reachable(
    n: usize,
    nc: usize,
    trans: &[StateId],
    clean_end: &[bool],
    reached: &[bool],
) -> Vec<bool> {
    // 0 unknown, 1 live, 2 dead, 3 on the current search
    let mut st = vec![0u8; n];
    st[0] = 2;
    for s in 1..n {
        if !reached[s] {
            st[s] = 2;
        } else if clean_end[s] {
            st[s] = 1;
        }
    }
    let budget = 8 * n * nc;
    let mut work = 0usize;
    let mut seen: Vec<usize> = Vec::new();
    let mut path: Vec<(usize, usize)> = Vec::new(); // (state, next class to try)
    for s0 in 1..n {
        if st[s0] != 0 {
            continue;
        }
        seen.clear();
        path.clear();
        path.push((s0, 0));
        st[s0] = 3;
        seen.push(s0);
        let mut found = false;
        while let Some(&mut (s, ref mut ci)) = path.last_mut() {
            if *ci == nc {
                path.pop();
                continue;
            }
            let t = trans[s * nc + *ci].as_usize();
            *ci += 1;
            work += 1;
            match st[t] {
                1 => {
                    found = true;
                    break;
                }
                0 => {
                    st[t] = 3;
                    seen.push(t);
                    path.push((t, 0));
                }
                _ => {}
            }
        }
        if found {
            for &x in &seen {
                st[x] = 0;
            }
            for &(x, _) in &path {
                st[x] = 1;
            }
        } else {
            for &x in &seen {
                st[x] = 2;
            }
        }
        if work > budget {
            return co_reachable_backward(n, nc, trans, clean_end, reached);
        }
    }
    st.iter().map(|&x| x == 1).collect()
}

/// [`co_reachable`] by a backward search from the clean ends over all reverse edges.
fn co_reachable_backward(
    n: usize,
    nc: usize,
    trans: &[StateId],
    clean_end: &[bool],
    reached: &[bool],
) -> Vec<bool> {
    let mut rstart = vec![0u32; n + 1];
    for s in 1..n {
        for &t in &trans[s * nc..(s + 1) * nc] {
            rstart[t.as_usize() + 1] += 1;
        }
    }
    for k in 1..=n {
        rstart[k] += rstart[k - 1];
    }
    let mut fill = rstart.clone();
    let mut rev = vec![0u32; rstart[n] as usize];
    for s in 1..n {
        for &t in &trans[s * nc..(s + 1) * nc] {
            let f = &mut fill[t.as_usize()];
            rev[*f as usize] = s as u32;
            *f += 1;
        }
    }
    let mut live = vec![false; n];
    let mut stack: Vec<usize> = (1..n).filter(|&s| clean_end[s] && reached[s]).collect();
    for &s in &stack {
        live[s] = true;
    }
    while let Some(s) = stack.pop() {
        for &p in &rev[rstart[s] as usize..rstart[s + 1] as usize] {
            if !live[p as usize] && reached[p as usize] {
                live[p as usize] = true;
                stack.push(p as usize);
            }
        }
    }
    live
}

/// Interned sequences of `u32` (thread sets as sorted slices, product states as tuples) in
/// one flat arena, found by open addressing: no allocation per sequence and no `memcmp`
/// call per lookup. Sequence 0 is the empty one.
pub(crate) struct SetTable {
    items: Vec<u32>,
    starts: Vec<u32>,
    slots: Vec<u32>,
}

impl SetTable {
    fn new() -> Self {
        let mut t = SetTable {
            items: Vec::new(),
            starts: vec![0],
            slots: vec![u32::MAX; 1 << 10],
        };
        t.intern(&[]);
        t
    }

    /// Number of sets.
    fn len(&self) -> usize {
        self.starts.len() - 1
    }

    /// Memory of the table, in bytes.
    fn bytes(&self) -> usize {
        (self.items.len() + self.starts.len() + self.slots.len()) * 4
    }

    /// Set `id`.
    #[inline]
    fn get(&self, id: u32) -> &[u32] {
        &self.items[self.starts[id as usize] as usize..self.starts[id as usize + 1] as usize]
    }

    #[inline]
    fn hash(key: &[u32]) -> u64 {
        let mut h = key.len() as u64;
        for &x in key {
            h = (h.rotate_left(5) ^ x as u64).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
        h
    }

    /// The id of `key`, and whether it is new.
    fn intern(&mut self, key: &[u32]) -> (u32, bool) {
        let mask = self.slots.len() - 1;
        let mut i = (Self::hash(key) >> 20) as usize & mask;
        loop {
            let id = self.slots[i];
            if id == u32::MAX {
                break;
            }
            let set = self.get(id);
            if set.len() == key.len() && set.iter().zip(key).all(|(a, b)| a == b) {
                return (id, false);
            }
            i = (i + 1) & mask;
        }
        let id = self.len() as u32;
        self.items.extend_from_slice(key);
        self.starts.push(self.items.len() as u32);
        self.slots[i] = id;
        if self.len() * 2 > self.slots.len() {
            let mut slots = vec![u32::MAX; self.slots.len() * 2];
            let mask = slots.len() - 1;
            for id in 0..self.len() as u32 {
                let mut j = (Self::hash(self.get(id)) >> 20) as usize & mask;
                while slots[j] != u32::MAX {
                    j = (j + 1) & mask;
                }
                slots[j] = id;
            }
            self.slots = slots;
        }
        (id, true)
    }
}

/// The product of pruned automata of several rules: one module that violates when any of
/// them does (scoped parts all track the same lexer, so only consistent pairs of states are
/// reached). States from which the parts cannot reach a clean end together are cut, their
/// incoming transitions attributed to all the parts' rules. Fails with a size-limit error
/// past `max_states`.
#[allow(clippy::needless_range_loop)] // `c` indexes every part's class table
fn product(
    parts: &[Pruned],
    config: &PolicyConfig,
    deadline: &Deadline,
) -> Result<Pruned, CompileError> {
    let k = parts.len();
    // Joint byte classes: every boundary of every part.
    let mut classes = [0u8; 256];
    let mut reps = vec![0u8];
    for (b, class) in classes.iter_mut().enumerate().skip(1) {
        if parts.iter().any(|p| p.classes[b] != p.classes[b - 1]) {
            reps.push(b as u8);
        }
        *class = (reps.len() - 1) as u8;
    }
    let nc = reps.len();
    let pclass: Vec<Vec<usize>> = parts
        .iter()
        .map(|p| {
            reps.iter()
                .map(|&r| p.classes[r as usize] as usize)
                .collect()
        })
        .collect();
    let mut rules: Vec<RuleIndex> = parts.iter().flat_map(|p| p.rules.iter().copied()).collect();
    rules.sort_unstable();
    rules.dedup();
    // Product states are the tuples of the parts' states, interned: id 0 (the empty tuple)
    // stands for the violated state, the start tuple is 1.
    let mut tuples = SetTable::new();
    let start: Vec<u32> = parts.iter().map(|p| p.start.0).collect();
    let mut viol_sets: Vec<Vec<RuleIndex>> = Vec::new();
    let mut viol_ids: FxHashMap<Vec<RuleIndex>, u32> = FxHashMap::default();
    let mut intern_viol = |rs: &mut Vec<RuleIndex>| -> u32 {
        rs.sort_unstable();
        rs.dedup();
        if let Some(&v) = viol_ids.get(rs.as_slice()) {
            return v;
        }
        viol_sets.push(rs.clone());
        let v = viol_sets.len() as u32;
        viol_ids.insert(rs.clone(), v);
        v
    };
    let mut trans: Vec<StateId> = vec![StateId::VIOLATED; nc];
    let mut viol: Vec<u32> = vec![0; nc];
    let mut clean_end = vec![false];
    let mut end_rules: Vec<Vec<RuleIndex>> = vec![Vec::new()];
    let mut lex: Vec<u16> = vec![u16::MAX];
    if !start.contains(&0) {
        tuples.intern(&start);
    }
    let mut key = vec![0u32; k];
    let mut cur = vec![0u32; k];
    let mut vr: Vec<RuleIndex> = Vec::new();
    let mut one_part: Vec<Vec<u32>> = parts
        .iter()
        .map(|p| vec![0u32; p.viol_sets.len() + 1])
        .collect();
    let mut i = 1;
    while i < tuples.len() {
        if i % 64 == 0 {
            deadline.check()?;
        }
        cur.copy_from_slice(tuples.get(i as u32));
        let mut ce = true;
        let mut er: Vec<RuleIndex> = Vec::new();
        for (j, p) in parts.iter().enumerate() {
            let st = cur[j] as usize;
            ce &= p.clean_end[st];
            er.extend_from_slice(&p.end_rules[st]);
        }
        er.sort_unstable();
        er.dedup();
        clean_end.push(ce);
        end_rules.push(er);
        lex.push(parts[0].lex[cur[0] as usize]);
        for c in 0..nc {
            let mut violating = 0usize;
            let mut single = (0usize, 0u32);
            for (j, p) in parts.iter().enumerate() {
                let st = cur[j] as usize;
                let slot = st * p.nc + pclass[j][c];
                let t = p.trans[slot];
                if t == StateId::VIOLATED {
                    violating += 1;
                    single = (j, p.viol[slot]);
                }
                key[j] = t.0;
            }
            if violating > 0 {
                // Usually one part violates: its violation ids map to ours once.
                let v = if violating == 1 && single.1 != 0 {
                    let (j, pv) = single;
                    match one_part[j][pv as usize] {
                        0 => {
                            vr.clear();
                            vr.extend_from_slice(&parts[j].viol_sets[pv as usize - 1]);
                            let v = intern_viol(&mut vr);
                            one_part[j][pv as usize] = v;
                            v
                        }
                        v => v,
                    }
                } else {
                    vr.clear();
                    for (j, p) in parts.iter().enumerate() {
                        let st = cur[j] as usize;
                        let slot = st * p.nc + pclass[j][c];
                        if p.trans[slot] == StateId::VIOLATED {
                            match p.viol[slot] {
                                0 => vr.extend_from_slice(&p.rules),
                                v => vr.extend_from_slice(&p.viol_sets[v as usize - 1]),
                            }
                        }
                    }
                    intern_viol(&mut vr)
                };
                trans.push(StateId::VIOLATED);
                viol.push(v);
                continue;
            }
            let (id, _) = tuples.intern(&key);
            trans.push(StateId(id));
            viol.push(0);
        }
        if tuples.len() > config.max_states + 1 {
            return Err(CompileError::new(
                ErrorKind::SizeLimit,
                format!(
                    "the merged automaton needs more than {} states (the per-module limit)",
                    config.max_states
                ),
            ));
        }
        if trans.len() * 4 > config.max_module_bytes {
            return Err(CompileError::new(
                ErrorKind::SizeLimit,
                format!(
                    "the merged automaton needs more than {} bytes of tables (the per-module limit)",
                    config.max_module_bytes
                ),
            ));
        }
        i += 1;
    }
    // Cut states from which no clean end is reachable.
    let n = tuples.len();
    let live = co_reachable(n, nc, &trans, &clean_end, &vec![true; n]);
    if live.iter().skip(1).any(|&l| !l) {
        let mut all = rules.clone();
        let v = intern_viol(&mut all);
        for st in 1..n {
            if !live[st] {
                continue;
            }
            for c in 0..nc {
                let t = trans[st * nc + c].as_usize();
                if t != 0 && !live[t] {
                    trans[st * nc + c] = StateId::VIOLATED;
                    viol[st * nc + c] = v;
                }
            }
        }
    }
    let start = if live[1] {
        StateId(1)
    } else {
        StateId::VIOLATED
    };
    Ok(Pruned {
        rules,
        classes,
        nc,
        lex,
        trans,
        viol,
        viol_sets,
        clean_end,
        end_rules,
        live,
        start,
    })
}

impl Pruned {
    /// Hopcroft minimisation over the live states (block 0 = violated, never split). The
    /// initial partition separates end behaviour and the attribution of transitions into
    /// the violated state, so merged states name the same rules.
    fn minimize(self, deadline: &Deadline) -> Result<Module, CompileError> {
        Ok(self.reduce(deadline)?.into_module())
    }

    /// The quotient by [`merge_equal_rows`]: live states only (0 = violated), each merged
    /// block one state, numbered in order of its first state.
    fn reduce(self, deadline: &Deadline) -> Result<Pruned, CompileError> {
        reduce_tables(
            self.rules,
            self.classes,
            self.nc,
            &self.lex,
            &self.trans,
            &self.viol,
            self.viol_sets,
            &self.clean_end,
            &self.end_rules,
            &self.live,
            self.start,
            deadline,
        )
    }

    /// The module of a reduced automaton.
    fn into_module(self) -> Module {
        module_from_tables(
            self.rules,
            self.classes,
            self.nc,
            self.trans,
            self.start,
            self.clean_end,
            &self.end_rules,
            &self.viol,
            &self.viol_sets,
        )
    }
}

/// The quotient of an automaton's tables by [`merge_equal_rows`]: live states only
/// (0 = violated), each merged block one state, numbered in order of its first state.
#[allow(clippy::too_many_arguments)]
fn reduce_tables(
    rules: Vec<RuleIndex>,
    classes: [u8; 256],
    nc: usize,
    lex_of: &[u16],
    trans: &[StateId],
    viol: &[u32],
    viol_sets: Vec<Vec<RuleIndex>>,
    clean_end_of: &[bool],
    end_rules_of: &[Vec<RuleIndex>],
    live: &[bool],
    start: StateId,
    deadline: &Deadline,
) -> Result<Pruned, CompileError> {
    let n = lex_of.len();
    // End behaviour as small ids, so states compare by integers.
    let mut end_ids: FxHashMap<&Vec<RuleIndex>, u32> = FxHashMap::default();
    let end_id: Vec<u32> = (0..n)
        .map(|s| {
            let k = end_ids.len() as u32;
            *end_ids.entry(&end_rules_of[s]).or_insert(k) * 2 + clean_end_of[s] as u32
        })
        .collect();
    let block = merge_equal_rows(n, nc, trans, live, &end_id, lex_of, viol, deadline)?;
    let nblocks = block.iter().copied().max().unwrap_or(0) as usize + 1;
    let mut rep_of = vec![usize::MAX; nblocks];
    for s in 1..n {
        if live[s] && rep_of[block[s] as usize] == usize::MAX {
            rep_of[block[s] as usize] = s;
        }
    }
    let mut new_trans = vec![StateId::VIOLATED; nblocks * nc];
    let mut new_viol = vec![0u32; nblocks * nc];
    let mut clean_end = vec![false; nblocks];
    let mut end_rules = vec![Vec::new(); nblocks];
    let mut lex = vec![u16::MAX; nblocks];
    for blk in 1..nblocks {
        let s = rep_of[blk];
        clean_end[blk] = clean_end_of[s];
        end_rules[blk] = end_rules_of[s].clone();
        lex[blk] = lex_of[s];
        for c in 0..nc {
            new_trans[blk * nc + c] = StateId(block[trans[s * nc + c].as_usize()]);
            new_viol[blk * nc + c] = viol[s * nc + c];
        }
    }
    let start = if live[start.as_usize()] {
        StateId(block[start.as_usize()])
    } else {
        StateId::VIOLATED
    };
    let mut live = vec![true; nblocks];
    live[0] = false;
    Ok(Pruned {
        rules,
        classes,
        nc,
        lex,
        trans: new_trans,
        viol: new_viol,
        viol_sets,
        clean_end,
        end_rules,
        live,
        start,
    })
}

/// Merge states with the same outputs (end behaviour, lexer state, attribution row) and the
/// same successors, repeatedly, until nothing changes. Every merge is sound (the merged
/// states are bisimilar) but equivalences that only hold around a cycle are not found, so
/// the result can be larger than the minimal DFA. Returns blocks as [`hopcroft`] does.
#[allow(clippy::too_many_arguments)]
fn merge_equal_rows(
    n: usize,
    nc: usize,
    trans: &[StateId],
    live: &[bool],
    end_id: &[u32],
    lex: &[u16],
    viol: &[u32],
    deadline: &Deadline,
) -> Result<Vec<u32>, CompileError> {
    use std::hash::{Hash, Hasher};
    // The outputs of each state as one number.
    let mut out_ids: FxHashMap<(u32, u16, &[u32]), u32> = FxHashMap::default();
    let outputs: Vec<u32> = (0..n)
        .map(|s| {
            let k = out_ids.len() as u32;
            *out_ids
                .entry((end_id[s], lex[s], &viol[s * nc..(s + 1) * nc]))
                .or_insert(k)
        })
        .collect();
    // rep[s]: the representative (smallest state) of s's block; 0 for violated/dead.
    let mut rep: Vec<u32> = (0..n as u32)
        .map(|s| if s == 0 || !live[s as usize] { 0 } else { s })
        .collect();
    let row = |rep: &[u32], s: usize, c: usize| rep[trans[s * nc + c].as_usize()];
    // Per round: hash → first representative with that hash, and a chain through the
    // others (no allocation per state).
    let mut table: FxHashMap<u64, u32> = FxHashMap::default();
    let mut chain: Vec<u32> = vec![0; n];
    loop {
        deadline.check()?;
        table.clear();
        let mut next = rep.clone();
        let mut changed = false;
        for s in 1..n {
            if !live[s] || rep[s] as usize != s {
                continue;
            }
            let mut h = rustc_hash::FxHasher::default();
            outputs[s].hash(&mut h);
            for c in 0..nc {
                row(&rep, s, c).hash(&mut h);
            }
            let same = |r: usize| {
                outputs[r] == outputs[s] && (0..nc).all(|c| row(&rep, r, c) == row(&rep, s, c))
            };
            match table.entry(h.finish()) {
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(s as u32);
                    chain[s] = 0;
                }
                std::collections::hash_map::Entry::Occupied(o) => {
                    let mut r = *o.get() as usize;
                    let found = loop {
                        if same(r) {
                            break Some(r);
                        }
                        if chain[r] == 0 {
                            break None;
                        }
                        r = chain[r] as usize;
                    };
                    match found {
                        Some(r) => {
                            next[s] = r as u32;
                            changed = true;
                        }
                        None => {
                            chain[r] = s as u32;
                            chain[s] = 0;
                        }
                    }
                }
            }
        }
        if !changed {
            break;
        }
        for s in 1..n {
            next[s] = next[next[rep[s] as usize] as usize];
        }
        rep = next;
    }
    let mut renum = vec![u32::MAX; n];
    renum[0] = 0;
    let mut k = 1u32;
    let mut out = vec![0u32; n];
    for s in 1..n {
        if !live[s] {
            continue;
        }
        let r = rep[s] as usize;
        if renum[r] == u32::MAX {
            renum[r] = k;
            k += 1;
        }
        out[s] = renum[r];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    //! Modules are reduced by [`merge_equal_rows`], which can miss equivalences that only
    //! hold around a cycle. Exact minimisation (Valmari and Lehtinen's partition refinement,
    //! about half the compile time when it was the compiler's own) measures how close that
    //! comes on the shipped packs.
    use super::*;

    /// A refinable partition of `0..n` (Valmari and Lehtinen): sets are contiguous ranges of
    /// `elems`; marking moves an element to the front of its set, `split` cuts the marked part
    /// off.
    struct Refinable {
        elems: Vec<u32>,
        loc: Vec<u32>,
        set: Vec<u32>,
        first: Vec<u32>,
        past: Vec<u32>,
        marked: Vec<u32>,
        touched: Vec<u32>,
    }

    impl Refinable {
        /// The partition of `0..group.len()` into the given groups (ids `0..ngroups`, each
        /// used at least once), in group order.
        fn new(group: &[u32], ngroups: usize) -> Refinable {
            let n = group.len();
            let mut first = vec![0u32; ngroups + 1];
            for &g in group {
                first[g as usize + 1] += 1;
            }
            for k in 1..=ngroups {
                first[k] += first[k - 1];
            }
            let past: Vec<u32> = first[1..].to_vec();
            first.truncate(ngroups);
            let mut fill = first.clone();
            let mut elems = vec![0u32; n];
            let mut loc = vec![0u32; n];
            for (e, &g) in group.iter().enumerate() {
                let i = fill[g as usize];
                elems[i as usize] = e as u32;
                loc[e] = i;
                fill[g as usize] += 1;
            }
            Refinable {
                elems,
                loc,
                set: group.to_vec(),
                marked: vec![0; ngroups],
                first,
                past,
                touched: Vec::new(),
            }
        }

        fn len(&self) -> usize {
            self.first.len()
        }

        #[inline]
        fn mark(&mut self, e: u32) {
            let s = self.set[e as usize] as usize;
            let i = self.loc[e as usize];
            let j = self.first[s] + self.marked[s];
            let other = self.elems[j as usize];
            self.elems[i as usize] = other;
            self.loc[other as usize] = i;
            self.elems[j as usize] = e;
            self.loc[e as usize] = j;
            if self.marked[s] == 0 {
                self.touched.push(s as u32);
            }
            self.marked[s] += 1;
        }

        /// Split every touched set into its marked and unmarked parts; the smaller part (the
        /// marked one on a tie) becomes a new set.
        fn split(&mut self) {
            while let Some(s) = self.touched.pop() {
                let s = s as usize;
                let m = self.marked[s];
                let size = self.past[s] - self.first[s];
                self.marked[s] = 0;
                if m == size {
                    continue;
                }
                let z = self.first.len();
                if m <= size - m {
                    self.first.push(self.first[s]);
                    self.past.push(self.first[s] + m);
                    self.first[s] += m;
                } else {
                    self.past.push(self.past[s]);
                    self.first.push(self.first[s] + m);
                    self.past[s] = self.first[s] + m;
                }
                self.marked.push(0);
                for i in self.first[z]..self.past[z] {
                    self.set[self.elems[i as usize] as usize] = z as u32;
                }
            }
        }
    }

    /// DFA minimisation (Valmari and Lehtinen's O(m log n) partition refinement of states and
    /// transitions). States `1..n` with `live[s]` are minimised; state 0 (violated) and dead
    /// states map to block 0. `key`/`same` define the initial partition. Returns each state's
    /// block, numbered densely in order of the block's first state.
    fn hopcroft(
        n: usize,
        nc: usize,
        trans: &[StateId],
        live: &[bool],
        key: impl Fn(usize) -> u64,
        same: impl Fn(usize, usize) -> bool,
    ) -> Vec<u32> {
        // Compact numbering: 0 = violated, then the live states.
        let mut idx = vec![u32::MAX; n];
        let mut states: Vec<u32> = vec![0];
        idx[0] = 0;
        for s in 1..n {
            if live[s] {
                idx[s] = states.len() as u32;
                states.push(s as u32);
            }
        }
        let nn = states.len();
        // Initial partition: group 0 = violated, then by key.
        let mut group = vec![0u32; nn];
        {
            let mut reps: Vec<usize> = Vec::new();
            let mut by_key: FxHashMap<u64, Vec<u32>> = FxHashMap::default();
            for (k, &s) in states.iter().enumerate().skip(1) {
                let s = s as usize;
                let cands = by_key.entry(key(s)).or_default();
                let found = cands
                    .iter()
                    .copied()
                    .find(|&g| same(reps[g as usize - 1], s));
                group[k] = match found {
                    Some(g) => g,
                    None => {
                        reps.push(s);
                        let g = reps.len() as u32;
                        cands.push(g);
                        g
                    }
                };
            }
            let ngroups = reps.len() + 1;
            let mut blocks = Refinable::new(&group, ngroups);
            // Transitions of live states: tail, head (compact numbers); label = index % nc.
            let m = (nn - 1) * nc;
            // (Nested loops rather than `t / nc`: a division per transition costs more than
            // the rest of the setup.)
            let mut head: Vec<u32> = Vec::with_capacity(m);
            let mut tails: Vec<u32> = Vec::with_capacity(m);
            let mut labels: Vec<u32> = Vec::with_capacity(m);
            for (k, &s) in states.iter().enumerate().skip(1) {
                for (c, &h) in trans[s as usize * nc..(s as usize + 1) * nc]
                    .iter()
                    .enumerate()
                {
                    let h = h.as_usize();
                    head.push(if h == 0 { 0 } else { idx[h] });
                    tails.push(k as u32);
                    labels.push(c as u32);
                }
            }
            // Cords: transitions grouped by label.
            let mut cords = Refinable::new(&labels, if m == 0 { 0 } else { nc });
            // Incoming transitions per state (CSR).
            let mut in_first = vec![0u32; nn + 1];
            for &h in &head {
                in_first[h as usize + 1] += 1;
            }
            for k in 1..=nn {
                in_first[k] += in_first[k - 1];
            }
            let mut fill = in_first.clone();
            let mut incoming = vec![0u32; m];
            for (t, &h) in head.iter().enumerate() {
                incoming[fill[h as usize] as usize] = t as u32;
                fill[h as usize] += 1;
            }
            let (mut b, mut c) = (1usize, 0usize);
            while c < cords.len() {
                for i in cords.first[c]..cords.past[c] {
                    let t = cords.elems[i as usize] as usize;
                    blocks.mark(tails[t]);
                }
                blocks.split();
                c += 1;
                while b < blocks.len() {
                    for i in blocks.first[b]..blocks.past[b] {
                        let q = blocks.elems[i as usize] as usize;
                        for j in in_first[q]..in_first[q + 1] {
                            cords.mark(incoming[j as usize]);
                        }
                    }
                    cords.split();
                    b += 1;
                }
            }
            // Dense renumbering in order of first state; the violated state's block is 0.
            let mut renum = vec![u32::MAX; blocks.len()];
            renum[blocks.set[0] as usize] = 0;
            let mut next = 1u32;
            let mut out = vec![0u32; n];
            for (k, &s) in states.iter().enumerate().skip(1) {
                let bl = blocks.set[k] as usize;
                if renum[bl] == u32::MAX {
                    renum[bl] = next;
                    next += 1;
                }
                out[s as usize] = renum[bl];
            }
            out
        }
    }

    fn exact_size(m: &Module) -> usize {
        let n = m.num_states();
        let nc = m.num_classes();
        let live: Vec<bool> = (0..n).map(|s| s != 0).collect();
        let attr = |s: usize| -> Vec<Option<&Vec<RuleIndex>>> {
            (0..nc)
                .map(|c| m.attribution.get(&(StateId(s as u32), c as u8)))
                .collect()
        };
        let block = hopcroft(
            n,
            nc,
            &m.trans,
            &live,
            |s| {
                use std::hash::{Hash, Hasher};
                let mut h = rustc_hash::FxHasher::default();
                (
                    m.clean_end[s],
                    m.end_attribution.get(&StateId(s as u32)),
                    attr(s),
                )
                    .hash(&mut h);
                h.finish()
            },
            |a, b| {
                m.clean_end[a] == m.clean_end[b]
                    && m.end_attribution.get(&StateId(a as u32))
                        == m.end_attribution.get(&StateId(b as u32))
                    && attr(a) == attr(b)
            },
        );
        block.iter().copied().max().unwrap_or(0) as usize + 1
    }

    #[test]
    fn shipped_modules_are_nearly_minimal() {
        // Measured: python 24 237 states against 24 005 minimal (+1.0 %), base 1 188 against
        // 1 146 (+3.7 %); the worst module +21 % (204 states).
        for pack in ["python", "base"] {
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../policies/").to_string() + pack;
            for threads in [1, 2] {
                let p = PolicyBuilder::new()
                    .config(PolicyConfig {
                        threads,
                        ..PolicyConfig::default()
                    })
                    .compile_path(&path)
                    .unwrap();
                let (mut ours, mut exact) = (0, 0);
                for (i, m) in p.modules().iter().enumerate() {
                    let e = exact_size(m);
                    assert!(e <= m.num_states());
                    assert!(
                        m.num_states() * 4 <= e * 5,
                        "{pack} module {i}: {} states, minimal {e}",
                        m.num_states()
                    );
                    ours += m.num_states();
                    exact += e;
                }
                assert!(
                    ours * 100 <= exact * 105,
                    "{pack}: {ours} states, minimal {exact}"
                );
            }
        }
    }
}
