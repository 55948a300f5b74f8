//! The compiler: enforced rules → automaton modules (byte DFAs in product with the Python
//! lexer), merged greedily under a state budget; plus one reporting DFA per rule for
//! [`CompiledPolicy::check`].
//!
//! Construction is a subset construction over *threads*. A thread is one attempt to match
//! one alternative of one rule, started at some position: its NFA state for the positive
//! regex, and (for `pattern-not-regex`) the set of exclusion-NFA states searched since the
//! thread started. A DFA state is (lexer state, look-behind bits, set of threads). Threads
//! are independent of each other, so a thread's step is memoised and shared by every module
//! built from the same policy.

use rustc_hash::FxHashMap as HashMap;

use rustc_hash::FxHashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::{CompileError, ErrorKind};
use crate::lexer::{self, LexTable};
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
    /// Most wall time for the whole compilation.
    pub max_compile_time: Duration,
    /// Merge several enforced rules into one module while it stays under `max_states`.
    pub merge: bool,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            max_states: 4096,
            max_module_bytes: 16 << 20,
            max_compile_time: Duration::from_secs(10),
            merge: true,
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
    /// States of each rule's own reporting DFA, by rule index (0: the rule is too large for
    /// a reporting DFA and `check` uses the regex engine for it).
    pub rule_states: Vec<usize>,
    /// Wall time of the compilation.
    pub compile_time: Duration,
    /// Part of `compile_time` spent on parsing and the per-rule reporting DFAs (the rest
    /// builds, merges and minimises the enforced modules).
    pub report_time: Duration,
    /// Total memory of all tables (modules and reporting DFAs), in bytes.
    pub memory_bytes: usize,
}

/// A rule's reporting DFA: absorbing on a match, with a reset state per state.
#[derive(Clone, Debug)]
pub(crate) struct ReportDfa {
    pub(crate) dfa: Module,
    pub(crate) reset: Vec<StateId>,
}

/// A compiled policy: the effective rules, the enforced modules, and the checkers.
#[derive(Clone, Debug)]
pub struct CompiledPolicy {
    pub(crate) name: String,
    pub(crate) effective: EffectivePolicy,
    pub(crate) rules: Vec<Rule>,
    pub(crate) modules: Vec<Module>,
    pub(crate) report: Vec<Option<ReportDfa>>,
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

    fn lexer_states(&self) -> usize {
        lexer::table().scopes.len()
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
        let rules: Vec<Rule> = eff.rules.iter().filter(|r| r.enabled).cloned().collect();
        let mut arena = Arena::default();
        let mut alts: Vec<AltInfo> = Vec::new();
        let mut rule_alts: Vec<Vec<u32>> = Vec::new();
        for (ri, rule) in rules.iter().enumerate() {
            let mut mine = Vec::new();
            for alt in rule.pattern.alternatives() {
                let a = compile_regex(&mut arena, &alt.regex, rule)?;
                let mut nots = Vec::new();
                for n in &alt.not {
                    nots.push(compile_regex(&mut arena, n, rule)?);
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
        let mut b = Builder::new(&arena, &alts, &self.config, t0);

        // One reporting DFA per rule (all severities).
        let mut report = Vec::with_capacity(rules.len());
        let mut rule_states = Vec::with_capacity(rules.len());
        for (ri, r) in rules.iter().enumerate() {
            match b.build(&rule_alts[ri], true) {
                Ok(raw) => {
                    rule_states.push(raw.states.len());
                    let (dfa, reset) = raw.into_report();
                    report.push(Some(ReportDfa { dfa, reset }));
                }
                // A rule whose reporting DFA is too large is reported by the regex engine
                // instead; enforced rules must still fit in a module (checked below).
                Err(e) if e.is_size_limit_exceeded() => {
                    rule_states.push(0);
                    report.push(None);
                }
                Err(e) => return Err(rule_error(e, r)),
            }
        }

        let report_time = t0.elapsed();
        // Enforced modules, merged greedily under the budget, grouped by lexer need.
        let enforced: Vec<usize> = (0..rules.len())
            .filter(|&i| rules[i].severity.enforced())
            .collect();
        let mut modules = Vec::new();
        for group in [true, false] {
            let members: Vec<usize> = enforced
                .iter()
                .copied()
                .filter(|&i| (rules[i].scope != RuleScope::Any) == group)
                .collect();
            let mut current: Vec<usize> = Vec::new();
            let mut current_raw: Option<Raw> = None;
            for &ri in &members {
                // Skip merge trials that are very likely to blow the budget: the merged DFA is
                // roughly the product of the parts (divided by the shared lexer states).
                let likely_fits = current_raw.as_ref().is_some_and(|cur| {
                    let lexdiv = if group { self.lexer_states() } else { 1 };
                    let est =
                        cur.states.len() as f64 * rule_states[ri].max(1) as f64 / lexdiv as f64;
                    est <= 4.0 * self.config.max_states as f64
                });
                if self.config.merge && likely_fits {
                    let mut trial = current.clone();
                    trial.push(ri);
                    let trial_alts: Vec<u32> = trial
                        .iter()
                        .flat_map(|&i| rule_alts[i].iter().copied())
                        .collect();
                    match b.build(&trial_alts, false) {
                        Ok(raw) => {
                            current = trial;
                            current_raw = Some(raw);
                            continue;
                        }
                        Err(e) if e.is_size_limit_exceeded() => {}
                        Err(e) => return Err(e),
                    }
                }
                if let Some(raw) = current_raw.take() {
                    modules.push(raw.into_enforced(&mut b));
                }
                let raw = b
                    .build(&rule_alts[ri], false)
                    .map_err(|e| rule_error(e, &rules[ri]))?;
                current = vec![ri];
                current_raw = Some(raw);
            }
            if let Some(raw) = current_raw.take() {
                modules.push(raw.into_enforced(&mut b));
            }
        }

        let span_finder = std::sync::Arc::new(crate::regex_check::SpanFinder::build(&rules)?);
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
        let memory_bytes = modules.iter().map(|m| m.memory_bytes()).sum::<usize>()
            + report
                .iter()
                .flatten()
                .map(|r| r.dfa.memory_bytes() + r.reset.len() * 4)
                .sum::<usize>();
        Ok(CompiledPolicy {
            name: eff.name.clone(),
            effective: eff.clone(),
            rules,
            modules,
            report,
            stats: CompileStats {
                modules: module_stats,
                rule_states,
                compile_time,
                report_time,
                memory_bytes,
            },
            span_finder,
        })
    }
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
    let c = arena.compile(&hir).map_err(located)?;
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
    Next(Vec<Thread>),
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
    t0: Instant,
    lex: &'static LexTable,
    bsets: Vec<Vec<NfaId>>,
    bset_ids: FxHashMap<Vec<NfaId>, u32>,
    memo: FxHashMap<(Thread, u8, u16), u32>,
    steps: Vec<Step>,
    seen: nfa::Scratch,
    dom: FxHashMap<u32, Option<Dominance>>,
}

/// The simulation preorder of one alternative's positive NFA: `q2 ≼ q1` when every way
/// the thread at `q2` can complete a match, the thread at `q1` completes one at the same
/// byte or earlier. A dominated thread can be dropped from a state without changing when a
/// violation happens, which keeps counted patterns such as `AKIA[0-9A-Z]{16}` small.
struct Dominance {
    lo: NfaId,
    n: usize,
    rel: Vec<bool>,
}

impl Dominance {
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
    /// Interned thread sets, indexed by `Key::ts`.
    tsets: Vec<Vec<Thread>>,
    trans: Vec<StateId>,
    clean_end: Vec<bool>,
    end_rules: Vec<Vec<RuleIndex>>,
    attribution: HashMap<(StateId, u8), Vec<RuleIndex>>,
    reset: Vec<StateId>,
    start: StateId,
}

impl<'a> Builder<'a> {
    fn new(arena: &'a Arena, alts: &'a [AltInfo], config: &'a PolicyConfig, t0: Instant) -> Self {
        let mut b = Builder {
            arena,
            alts,
            config,
            t0,
            lex: lexer::table(),
            bsets: Vec::new(),
            bset_ids: FxHashMap::default(),
            memo: FxHashMap::default(),
            steps: Vec::new(),
            seen: nfa::Scratch::default(),
            dom: FxHashMap::default(),
        };
        b.intern(Vec::new());
        b
    }

    fn intern(&mut self, set: Vec<NfaId>) -> u32 {
        if let Some(&id) = self.bset_ids.get(&set) {
            return id;
        }
        let id = self.bsets.len() as u32;
        self.bsets.push(set.clone());
        self.bset_ids.insert(set, id);
        id
    }

    /// One thread's step in context `ctx` before byte `next` (or the end of text).
    fn step_thread(&mut self, t: Thread, ctx: u8, next: u16) -> usize {
        if let Some(&s) = self.memo.get(&(t, ctx, next)) {
            return s as usize;
        }
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
                self.intern(bnext)
            } else {
                0
            };
            Step::Next(
                anext
                    .into_iter()
                    .map(|a| Thread {
                        alt: t.alt,
                        a,
                        b: bid,
                    })
                    .collect(),
            )
        };
        let idx = self.steps.len();
        self.steps.push(result);
        self.memo.insert((t, ctx, next), idx as u32);
        idx
    }

    fn dominance(&mut self, alt: u32) -> Option<&Dominance> {
        if !self.dom.contains_key(&alt) {
            let d = self.compute_dominance(alt);
            self.dom.insert(alt, d);
        }
        self.dom.get(&alt).and_then(|d| d.as_ref())
    }

    fn compute_dominance(&mut self, alt: u32) -> Option<Dominance> {
        let info = &self.alts[alt as usize];
        let range = info.ranges[0].clone();
        let n = (range.end - range.start) as usize;
        if n == 0 {
            return None;
        }
        let lo = range.start;
        // Threads only ever sit on the start state or on targets of consuming states.
        let mut is_thread = vec![false; n];
        is_thread[(info.a_start - lo) as usize] = true;
        for id in range.clone() {
            match &self.arena.states[id as usize] {
                nfa::NState::Range { next, .. } | nfa::NState::Ranges { next, .. } => {
                    if (lo..range.end).contains(next) {
                        is_thread[(*next - lo) as usize] = true;
                    }
                }
                _ => {}
            }
        }
        let tstates: Vec<usize> = (0..n).filter(|&i| is_thread[i]).collect();
        let m = tstates.len();
        if m > MAX_DOMINANCE_STATES {
            return None;
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
        for b in 0..255usize {
            if split[b] {
                nexts.push(b as u16 + 1);
            }
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
            for (bi, &bits) in ctx_bits.iter().enumerate() {
                for (ni, &nx) in nexts.iter().enumerate() {
                    let c = ctx_of(bits, nx);
                    let ci = bi * nexts.len() + ni;
                    let mt = nfa::closure(
                        self.arena,
                        &[lo + q as NfaId],
                        &c,
                        &mut closed,
                        &mut self.seen,
                    );
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
        // expand to the full range for lookups
        let mut full = vec![false; n * n];
        for (i2, &q2) in tstates.iter().enumerate() {
            for (i1, &q1) in tstates.iter().enumerate() {
                full[q2 * n + q1] = rel[i2 * m + i1];
            }
        }
        Some(Dominance { lo, n, rel: full })
    }

    /// Drop threads dominated by another thread of the same alternative: `t2` is dominated
    /// by `t1` when `t2.a ≼ t1.a` and `t1`'s exclusion set is a subset of `t2`'s (so `t1`
    /// matches no later than `t2` and is killed only when `t2` is too).
    fn prune(&mut self, threads: &mut Vec<Thread>) {
        if threads.len() < 2 {
            return;
        }
        let mut keep = vec![true; threads.len()];
        let mut any = false;
        for i in 0..threads.len() {
            let t2 = threads[i];
            for j in 0..threads.len() {
                if i == j || !keep[j] {
                    continue;
                }
                let t1 = threads[j];
                if t1.alt != t2.alt {
                    continue;
                }
                if self.dominance(t2.alt).is_none() {
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
            threads.retain(|_| *k.next().unwrap());
        }
    }

    /// `t1` dominates `t2` (same alternative).
    fn dominates(&self, t1: Thread, t2: Thread) -> bool {
        let Some(Some(d)) = self.dom.get(&t2.alt) else {
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

        let mut states: Vec<Key> = vec![Key {
            lex: u16::MAX,
            ctx: 0,
            ts: 0,
        }]; // 0 = violated
            // Thread sets are interned; a transition's thread part depends only on (thread set,
            // scope, context, byte class), not on the full lexer state, so it is memoised.
        let mut tsets: Vec<Vec<Thread>> = vec![Vec::new()];
        let mut ts_ids: FxHashMap<Vec<Thread>, u32> = FxHashMap::default();
        ts_ids.insert(Vec::new(), 0);
        let mut ids: FxHashMap<(u16, u8, u32), StateId> = FxHashMap::default();
        let start_ctx = (CTX_LF | CTX_START) & ctx_mask;
        ids.insert((0, start_ctx, 0), StateId(1));
        states.push(Key {
            lex: 0,
            ctx: start_ctx,
            ts: 0,
        });
        #[derive(Clone, Copy)]
        enum Out {
            Next(u32),
            Violated(u32),
        }
        let mut tmemo: FxHashMap<(u32, u8, u8, u8), Out> = FxHashMap::default();
        let mut viol_sets: Vec<Vec<RuleIndex>> = Vec::new();
        let mut trans: Vec<StateId> = vec![StateId::VIOLATED; nc]; // violated row
        let mut attribution = HashMap::default();
        let mut clean_end = vec![false];
        let mut end_rules = vec![Vec::new()];
        let mut reset = vec![StateId::VIOLATED];
        let max_states = self.config.max_states;
        let mut i = 1;
        let mut threads: Vec<Thread> = Vec::new();
        let mut next_threads: Vec<Thread> = Vec::new();
        while i < states.len() {
            if i % 64 == 0 && self.t0.elapsed() > self.config.max_compile_time {
                return Err(CompileError::new(
                    ErrorKind::TimeLimit,
                    format!(
                        "compilation exceeded the time limit of {:?}",
                        self.config.max_compile_time
                    ),
                ));
            }
            let Key { lex, ctx, ts } = states[i];
            // end of text
            let mut er = Vec::new();
            for k in 0..tsets[ts as usize].len() {
                let t = tsets[ts as usize][k];
                let si = self.step_thread(t, ctx, EOI);
                if let Step::Match = self.steps[si] {
                    let r = self.alts[t.alt as usize].rule;
                    if !er.contains(&r) {
                        er.push(r);
                    }
                }
            }
            clean_end.push(er.is_empty());
            end_rules.push(er);
            if with_reset {
                let id = *ids.entry((lex, ctx, 0)).or_insert_with(|| {
                    states.push(Key { lex, ctx, ts: 0 });
                    StateId((states.len() - 1) as u32)
                });
                reset.push(id);
            }
            for (ci, &rep) in reps.iter().enumerate() {
                let scope = self.lex.scope_at(lex, rep);
                let mk = (ts, scope as u8, ctx, ci as u8);
                let out = match tmemo.get(&mk) {
                    Some(&o) => o,
                    None => {
                        threads.clear();
                        threads.extend(tsets[ts as usize].iter().copied());
                        for &a in alt_ids {
                            let alt = &self.alts[a as usize];
                            if alt.scope.admits(scope) {
                                threads.push(Thread {
                                    alt: a,
                                    a: alt.a_start,
                                    b: 0,
                                });
                            }
                        }
                        next_threads.clear();
                        let mut violated: Vec<RuleIndex> = Vec::new();
                        for &t in &threads {
                            let si = self.step_thread(t, ctx, rep as u16);
                            match &self.steps[si] {
                                Step::Match => {
                                    let r = self.alts[t.alt as usize].rule;
                                    if !violated.contains(&r) {
                                        violated.push(r);
                                    }
                                }
                                Step::Next(v) => next_threads.extend_from_slice(v),
                            }
                        }
                        let o = if !violated.is_empty() {
                            violated.sort_unstable();
                            viol_sets.push(violated);
                            Out::Violated((viol_sets.len() - 1) as u32)
                        } else {
                            next_threads.sort_unstable();
                            next_threads.dedup();
                            let mut nt = std::mem::take(&mut next_threads);
                            self.prune(&mut nt);
                            let id = match ts_ids.get(&nt) {
                                Some(&id) => {
                                    next_threads = nt;
                                    id
                                }
                                None => {
                                    let id = tsets.len() as u32;
                                    tsets.push(nt.clone());
                                    ts_ids.insert(nt, id);
                                    id
                                }
                            };
                            Out::Next(id)
                        };
                        tmemo.insert(mk, o);
                        o
                    }
                };
                let target = match out {
                    Out::Violated(v) => {
                        attribution
                            .insert((StateId(i as u32), ci as u8), viol_sets[v as usize].clone());
                        StateId::VIOLATED
                    }
                    Out::Next(nts) => {
                        let nlex = if needs_lex {
                            self.lex.next(lex, rep)
                        } else {
                            0
                        };
                        let nctx = ctx_after(rep);
                        *ids.entry((nlex, nctx, nts)).or_insert_with(|| {
                            states.push(Key {
                                lex: nlex,
                                ctx: nctx,
                                ts: nts,
                            });
                            StateId((states.len() - 1) as u32)
                        })
                    }
                };
                trans.push(target);
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
            attribution,
            reset,
            start: StateId(1),
        })
    }
}

/// Hopcroft's partition refinement. States `1..n` with `live[s]` are minimised; state 0
/// and dead states map to block 0. `key`/`same` define the initial partition.
fn hopcroft(
    n: usize,
    nc: usize,
    trans: &[StateId],
    live: &[bool],
    key: impl Fn(usize) -> u64,
    same: impl Fn(usize, usize) -> bool,
) -> Vec<u32> {
    // initial partition
    let mut block_of = vec![0u32; n];
    let mut blocks: Vec<Vec<u32>> = vec![Vec::new()]; // block 0: violated
    {
        let mut by_key: FxHashMap<u64, Vec<u32>> = FxHashMap::default();
        for s in 1..n {
            if !live[s] {
                continue;
            }
            let k = key(s);
            let cands = by_key.entry(k).or_default();
            let mut found = None;
            for &bid in cands.iter() {
                if same(blocks[bid as usize][0] as usize, s) {
                    found = Some(bid);
                    break;
                }
            }
            let bid = match found {
                Some(b) => b,
                None => {
                    blocks.push(Vec::new());
                    let b = (blocks.len() - 1) as u32;
                    cands.push(b);
                    b
                }
            };
            blocks[bid as usize].push(s as u32);
            block_of[s] = bid;
        }
    }
    // inverse transitions (CSR per class)
    let mut counts = vec![0u32; nc * n + 1];
    for s in 1..n {
        if !live[s] {
            continue;
        }
        for c in 0..nc {
            let t = trans[s * nc + c].as_usize();
            if t != 0 {
                counts[c * n + t + 1] += 1;
            }
        }
    }
    for i in 1..counts.len() {
        counts[i] += counts[i - 1];
    }
    let mut fill = counts.clone();
    let mut preds = vec![0u32; counts[nc * n] as usize];
    for s in 1..n {
        if !live[s] {
            continue;
        }
        for c in 0..nc {
            let t = trans[s * nc + c].as_usize();
            if t != 0 {
                let slot = &mut fill[c * n + t];
                preds[*slot as usize] = s as u32;
                *slot += 1;
            }
        }
    }
    let mut in_work = vec![true; blocks.len()];
    in_work[0] = false;
    let mut work: Vec<u32> = (1..blocks.len() as u32).collect();
    let mut mark = vec![false; n];
    let mut touched: Vec<u32> = Vec::new();
    let mut marked_in: Vec<Vec<u32>> = vec![Vec::new(); blocks.len()];
    while let Some(sp) = work.pop() {
        in_work[sp as usize] = false;
        let splitter = blocks[sp as usize].clone();
        for c in 0..nc {
            touched.clear();
            for &t in &splitter {
                let (lo, hi) = (
                    counts[c * n + t as usize] as usize,
                    counts[c * n + t as usize + 1] as usize,
                );
                for &p in &preds[lo..hi] {
                    if !mark[p as usize] {
                        mark[p as usize] = true;
                        let b = block_of[p as usize];
                        if marked_in[b as usize].is_empty() {
                            touched.push(b);
                        }
                        marked_in[b as usize].push(p);
                    }
                }
            }
            for &b in &touched {
                let inside = std::mem::take(&mut marked_in[b as usize]);
                if inside.len() == blocks[b as usize].len() {
                    for &p in &inside {
                        mark[p as usize] = false;
                    }
                    continue;
                }
                // split b into inside (new block) and the rest (keeps id b)
                let newb = blocks.len() as u32;
                let rest: Vec<u32> = blocks[b as usize]
                    .iter()
                    .copied()
                    .filter(|&s| !mark[s as usize])
                    .collect();
                for &p in &inside {
                    mark[p as usize] = false;
                }
                for &p in &inside {
                    block_of[p as usize] = newb;
                }
                let in_len = inside.len();
                blocks[b as usize] = rest;
                blocks.push(inside);
                in_work.push(false);
                marked_in.push(Vec::new());
                if in_work[b as usize] || in_len <= blocks[b as usize].len() {
                    work.push(newb);
                    in_work[newb as usize] = true;
                } else {
                    work.push(b);
                    in_work[b as usize] = true;
                }
            }
        }
    }
    // renumber blocks densely in order of first state (block 0 stays 0)
    let mut renum = vec![u32::MAX; blocks.len()];
    renum[0] = 0;
    let mut next = 1u32;
    let mut out = vec![0u32; n];
    for s in 1..n {
        if !live[s] {
            continue;
        }
        let b = block_of[s] as usize;
        if renum[b] == u32::MAX {
            renum[b] = next;
            next += 1;
        }
        out[s] = renum[b];
    }
    out
}

impl Raw {
    fn nc(&self) -> usize {
        self.reps.len()
    }

    fn to_end_map(end_rules: &[Vec<RuleIndex>]) -> HashMap<StateId, Vec<RuleIndex>> {
        end_rules
            .iter()
            .enumerate()
            .filter(|(_, v)| !v.is_empty())
            .map(|(i, v)| (StateId(i as u32), v.clone()))
            .collect()
    }

    /// The reporting form: no minimisation, reset states kept.
    fn into_report(self) -> (Module, Vec<StateId>) {
        let num_classes = self.nc();
        let m = Module {
            rules: self.rules,
            classes: self.classes,
            num_classes,
            trans: self.trans,
            start: self.start,
            clean_end: self.clean_end,
            attribution: self.attribution,
            end_attribution: Self::to_end_map(&self.end_rules),
        };
        (m, self.reset)
    }

    /// The enforced form: states that cannot reach a clean end are merged into the violated
    /// state (so every other state has a clean completion), then the DFA is minimised.
    fn into_enforced(self, b: &mut Builder<'_>) -> Module {
        let n = self.states.len();
        let nc = self.nc();
        // co-reachability to a clean end
        let mut rev: Vec<Vec<u32>> = vec![Vec::new(); n];
        for s in 1..n {
            for c in 0..nc {
                let t = self.trans[s * nc + c].as_usize();
                if t != 0 {
                    rev[t].push(s as u32);
                }
            }
        }
        let mut live = vec![false; n];
        let mut stack: Vec<usize> = (1..n).filter(|&s| self.clean_end[s]).collect();
        for &s in &stack {
            live[s] = true;
        }
        while let Some(s) = stack.pop() {
            for &p in &rev[s] {
                if !live[p as usize] {
                    live[p as usize] = true;
                    stack.push(p as usize);
                }
            }
        }
        // attribution for transitions into dead states: the rules pending in the dead state
        let mut pending: FxHashMap<usize, Vec<RuleIndex>> = FxHashMap::default();
        let mut attribution = self.attribution.clone();
        let mut trans = self.trans.clone();
        for s in 1..n {
            if !live[s] {
                continue;
            }
            for c in 0..nc {
                let t = trans[s * nc + c].as_usize();
                if t != 0 && !live[t] {
                    let rules = pending.entry(t).or_insert_with(|| {
                        let mut rs: Vec<RuleIndex> = Vec::new();
                        for next in [b'a' as u16, b' ' as u16, b'\n' as u16, b'(' as u16, EOI] {
                            for &th in &self.tsets[self.states[t].ts as usize] {
                                let si = b.step_thread(th, self.states[t].ctx, next);
                                if let Step::Match = b.steps[si] {
                                    let r = b.alts[th.alt as usize].rule;
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
                        rs
                    });
                    attribution.insert((StateId(s as u32), c as u8), rules.clone());
                    trans[s * nc + c] = StateId::VIOLATED;
                }
            }
        }
        // Hopcroft minimisation over live states (block 0 = violated, never split). The
        // initial partition separates end behaviour and the attribution of transitions into
        // the violated state, so merged states name the same rules.
        let block = hopcroft(
            n,
            nc,
            &trans,
            &live,
            |s| {
                let att: Vec<Option<&Vec<RuleIndex>>> = (0..nc)
                    .map(|c| attribution.get(&(StateId(s as u32), c as u8)))
                    .collect();
                let mut h = rustc_hash::FxHasher::default();
                use std::hash::{Hash, Hasher};
                (self.clean_end[s], &self.end_rules[s], att).hash(&mut h);
                h.finish()
            },
            |s1, s2| {
                self.clean_end[s1] == self.clean_end[s2]
                    && self.end_rules[s1] == self.end_rules[s2]
                    && (0..nc).all(|c| {
                        attribution.get(&(StateId(s1 as u32), c as u8))
                            == attribution.get(&(StateId(s2 as u32), c as u8))
                    })
            },
        );
        let nblocks = block.iter().copied().max().unwrap_or(0) as usize + 1;
        let mut rep_of = vec![usize::MAX; nblocks];
        for s in 1..n {
            if live[s] && rep_of[block[s] as usize] == usize::MAX {
                rep_of[block[s] as usize] = s;
            }
        }
        let mut new_trans = vec![StateId::VIOLATED; nblocks * nc];
        let mut clean_end = vec![false; nblocks];
        let mut end_attr = HashMap::default();
        let mut new_attr = HashMap::default();
        for blk in 1..nblocks {
            let s = rep_of[blk];
            clean_end[blk] = self.clean_end[s];
            if !self.end_rules[s].is_empty() {
                end_attr.insert(StateId(blk as u32), self.end_rules[s].clone());
            }
            for c in 0..nc {
                let t = trans[s * nc + c].as_usize();
                new_trans[blk * nc + c] = StateId(block[t]);
                if let Some(a) = attribution.get(&(StateId(s as u32), c as u8)) {
                    new_attr.insert((StateId(blk as u32), c as u8), a.clone());
                }
            }
        }
        let start = if live[self.start.as_usize()] {
            StateId(block[self.start.as_usize()])
        } else {
            StateId::VIOLATED
        };
        Module {
            rules: self.rules,
            classes: self.classes,
            num_classes: nc,
            trans: new_trans,
            start,
            clean_end,
            attribution: new_attr,
            end_attribution: end_attr,
        }
    }
}
