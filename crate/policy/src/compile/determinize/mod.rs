//! Phase 1: the subset construction over *threads* that turns one rule's (or several
//! alternatives') NFAs into a DFA in product with the Python lexer ([`Builder`]), with
//! interned threads and memoised thread steps, and the raw automaton it yields ([`Raw`]).

use rustc_hash::FxHashMap;

use super::context::{ctx_of, mark_look_boundaries, CTX_LF, CTX_START, CTX_WORD, EOI};
use super::dominance::Dominance;
use super::intern::SetTable;
use super::{AltInfo, PolicyConfig};
use crate::clock::Instant;
use crate::error::{CompileError, Deadline, ErrorKind};
use crate::lexer::{self, view, LexTable, Scope};
use crate::module::{RuleIndex, StateId};
use crate::nfa::{self, Arena, LookNeeds, NfaId};
use crate::pack::RuleScope;

mod threads;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct Thread {
    pub(super) alt: u32,
    pub(super) a: NfaId,
    pub(super) b: u32,
}

/// A slow thread step's outcome ([`Builder::step_into`]; the next threads are left in its
/// ids buffer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Step {
    Match,
    Next,
}

/// The length that marks a memoised step as a match in [`Builder::steps`].
const STEP_MATCH: u32 = u32::MAX;

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct Key {
    pub(super) lex: u16,
    pub(super) ctx: u8,
    /// Interned thread set (index into `Raw::tsets`).
    pub(super) ts: u32,
}

pub(super) struct Builder<'a> {
    pub(super) arena: &'a Arena,
    pub(super) alts: &'a [AltInfo],
    pub(super) config: &'a PolicyConfig,
    pub(super) deadline: Deadline,
    /// NFA states visited by slow thread steps since the clock was last read.
    pub(super) work: usize,
    /// Thread ids held by `steps`, and NFA states held by `bsets` (for the memory limit).
    pub(super) bset_items: usize,
    pub(super) lex: &'static LexTable,
    pub(super) bsets: Vec<Vec<NfaId>>,
    pub(super) bset_ids: FxHashMap<Vec<NfaId>, u32>,
    /// Interned threads (thread id → thread) and their ids.
    pub(super) threads: Vec<Thread>,
    pub(super) thread_ids: FxHashMap<Thread, u32>,
    /// Per thread id: offset of its step memo in `memo` (`ctx index × (classes + 1)`
    /// entries, the last class being the end of text; `u32::MAX` = not computed).
    pub(super) memo_off: Vec<u32>,
    pub(super) memo: Vec<u32>,
    /// Per alternative: its own byte classes, class count, and context-value index.
    pub(super) alt_class: Vec<[u8; 256]>,
    pub(super) alt_nc: Vec<u32>,
    pub(super) alt_ctx: Vec<[u8; 8]>,
    pub(super) alt_nctx: Vec<u32>,
    /// Per alternative: one byte of each of its classes.
    pub(super) alt_reps: Vec<Vec<u8>>,
    /// Per alternative: its NFA states (the most one closure can visit).
    pub(super) alt_work: Vec<usize>,
    /// Per thread id and context (`tid * 8 + ctx`): 0 unknown, 1 no, 2 the thread matches
    /// whatever comes next (every byte, and the end of text).
    pub(super) doomed: Vec<u8>,
    /// Per thread id: 0 unknown, 1 its next step ignores the look-behind context, 2 it may not.
    pub(super) thread_ctx: Vec<u8>,
    /// Per memoised thread step: the offset and length of its next threads in
    /// `step_next` (interned thread ids), or length [`STEP_MATCH`] when the thread matched.
    pub(super) steps: Vec<(u32, u32)>,
    pub(super) step_next: Vec<u32>,
    pub(super) seen: nfa::Scratch,
    /// Closures that no assertion can reach, so the same in every context, once computed:
    /// keyed by `(u32::MAX, state)` for a positive thread state, by `(alternative,
    /// exclusion set)` for an exclusion search; the value is (matched, closed states).
    pub(super) closures: FxHashMap<(u32, u32), (bool, Vec<NfaId>)>,
    /// NFA states held by `closures` (at most [`MAX_CACHED_CLOSURE_STATES`]: the cache
    /// only saves time, so past that closures are computed again rather than counted
    /// against the build limit).
    pub(super) closure_items: usize,
    /// Buffers of the slow thread step, kept between steps so it allocates only its result.
    pub(super) step_bufs: [Vec<NfaId>; 5],
    /// Per alternative: its dominance relation once computed (`Some(None)`: too large).
    pub(super) dom: Vec<Option<Option<Dominance>>>,
}

/// A DFA straight out of the subset construction.
pub(super) struct Raw {
    pub(super) rules: Vec<RuleIndex>,
    pub(super) classes: [u8; 256],
    pub(super) reps: Vec<u8>,
    /// Per state (index 0 = violated).
    pub(super) states: Vec<Key>,
    /// Interned thread sets (of thread ids), indexed by `Key::ts`.
    pub(super) tsets: SetTable,
    pub(super) trans: Vec<StateId>,
    pub(super) clean_end: Vec<bool>,
    pub(super) end_rules: Vec<Vec<RuleIndex>>,
    /// Per transition (parallel to `trans`): 0, or `k` when it violates the rules
    /// `viol_sets[k - 1]` (`u16`: a build's rule sets are subsets of its few rules).
    pub(super) viol: Vec<u16>,
    pub(super) viol_sets: Vec<Vec<RuleIndex>>,
    pub(super) reset: Vec<StateId>,
    pub(super) start: StateId,
}

/// A violation id as the tables store it (`u16`), or a size-limit error past that.
pub(super) fn viol_id16(v: u32) -> Result<u16, CompileError> {
    u16::try_from(v).map_err(|_| {
        CompileError::new(
            ErrorKind::SizeLimit,
            format!(
                "the automaton attributes its violations to more than {} distinct sets of rules",
                u16::MAX
            ),
        )
    })
}

/// Most NFA states one builder keeps in its cache of context-free closures (4 MiB).
const MAX_CACHED_CLOSURE_STATES: usize = 1 << 20;

/// The look-behind bits that `scope: code` threads read: the state's own, or those after the
/// space or line end that the code view read instead of the raw previous byte.
#[inline]
fn code_ctx(behind: u8, ctx: u8) -> u8 {
    match behind {
        view::BEHIND_SPACE => 0,
        view::BEHIND_NEWLINE => CTX_LF,
        _ => ctx,
    }
}

impl<'a> Builder<'a> {
    pub(super) fn new(
        arena: &'a Arena,
        alts: &'a [AltInfo],
        config: &'a PolicyConfig,
        t0: Instant,
    ) -> Self {
        let mut b = Builder {
            arena,
            alts,
            config,
            deadline: Deadline::new(t0, config.max_compile_time),
            work: 0,
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
            step_next: Vec::new(),
            seen: nfa::Scratch::default(),
            closures: FxHashMap::default(),
            closure_items: 0,
            step_bufs: Default::default(),
            dom: (0..alts.len()).map(|_| None).collect(),
        };
        b.bsets.push(Vec::new());
        b.bset_ids.insert(Vec::new(), 0);
        b
    }

    /// Whether memoised step `si` is a match.
    #[inline]
    pub(super) fn step_matched(&self, si: usize) -> bool {
        self.steps[si].1 == STEP_MATCH
    }

    /// Working memory of this builder's own tables, in bytes (an estimate within a small
    /// factor: hash tables are counted by their entries).
    pub(super) fn used_bytes(&self) -> usize {
        self.memo.len() * 4
            + self.threads.len() * 32
            + self.step_next.len() * 4
            + self.steps.len() * 8
            + self.bset_items * 8
            + self.bsets.len() * 48
            + self.doomed.len()
            + self.thread_ctx.len()
    }

    /// A size-limit error if this builder's tables and `extra` bytes more exceed
    /// [`PolicyConfig::max_build_bytes`].
    pub(super) fn check_bytes(&self, extra: usize) -> Result<(), CompileError> {
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

    /// Subset construction for the given alternatives. `with_reset` adds, for every state,
    /// the state with the same lexer and context but no threads (for reporting).
    pub(super) fn build(&mut self, alt_ids: &[u32], with_reset: bool) -> Result<Raw, CompileError> {
        let mut needs = LookNeeds::default();
        let mut needs_lex = false;
        // Some alternative reads the code view (comments and continuations as spaces).
        let mut has_view = false;
        let mut split = [false; 256];
        split[255] = true;
        let mut rules: Vec<RuleIndex> = Vec::new();
        for &a in alt_ids {
            let alt = &self.alts[a as usize];
            needs = needs.union(alt.needs);
            needs_lex |= alt.scope != RuleScope::Any;
            has_view |= alt.scope == RuleScope::Code;
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
        // Thread sets as the steps produce them (before pruning), and the interned pruned
        // set each one becomes.
        let mut pre_sets = SetTable::new();
        let mut pre_out: Vec<u32> = vec![0];
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
        // What the lexer does at each (lexer state, class), looked up once per build instead
        // of per transition: the next lexer state, the injection of the byte's scope, the
        // code view's reading, and whether a start thread may read the context after it.
        #[derive(Clone, Copy)]
        struct LexCell {
            next: u16,
            inj: u8,
            view: u8,
            start_ctx: bool,
        }
        let lexer = self.lex;
        let mut lex_cells: Vec<LexCell> = Vec::with_capacity(nlex * nc);
        for lex in 0..nlex as u16 {
            for &rep in &reps {
                let (scope, next, view) = if needs_lex {
                    let view = if has_view { lexer.view_at(lex, rep) } else { 0 };
                    (lexer.scope_at(lex, rep), lexer.next(lex, rep), view)
                } else {
                    (Scope::Code, 0, 0)
                };
                lex_cells.push(LexCell {
                    next,
                    inj: inj_of_scope[scope as usize] as u8,
                    view,
                    start_ctx: lex_scopes[next as usize] & start_ctx_scopes != 0,
                });
            }
        }
        let rep_ctx: Vec<u8> = reps.iter().map(|&rep| ctx_after(rep)).collect();
        // Classes that every alternative reads as the same class of its own step the threads
        // alike (the lexer splits classes the patterns do not): each class's first such
        // class, whose memo entry serves it too.
        let tclass: Vec<usize> = (0..nc)
            .map(|ci| {
                (0..ci)
                    .find(|&cj| {
                        alt_ids.iter().all(|&a| {
                            let classes = &self.alt_class[a as usize];
                            classes[reps[cj] as usize] == classes[reps[ci] as usize]
                        })
                    })
                    .unwrap_or(ci)
            })
            .collect();
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
        // Transitions at bytes that the code view reads differently (comments, continuations,
        // `\r`, form feeds: rare), memoised by (thread set, view, injection, context, class).
        let mut vmemo: FxHashMap<(u32, u32), u32> = FxHashMap::default();
        let code_alt: Vec<bool> = self
            .alts
            .iter()
            .map(|a| a.scope == RuleScope::Code)
            .collect();
        let mut viol_sets: Vec<Vec<RuleIndex>> = Vec::new();
        let mut viol_ids: FxHashMap<Vec<RuleIndex>, u32> = FxHashMap::default();
        let mut trans: Vec<StateId> = Vec::with_capacity(nc * 2048);
        trans.resize(nc, StateId::VIOLATED); // violated row
        let mut viol: Vec<u16> = Vec::with_capacity(nc * 2048);
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
            let behind = if has_view { self.lex.behind(lex) } else { 0 };
            for &t in tsets.get(ts) {
                let tctx = if code_alt[self.threads[t as usize].alt as usize] {
                    code_ctx(behind, ctx)
                } else {
                    ctx
                };
                let si = self.step_thread(t, tctx, EOI)?;
                if self.step_matched(si) {
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
            // Per injection: the context index that keys the memo, and the memo row.
            let mut mcx_of = [0usize; 3];
            let mut mrow_of = [0usize; 3];
            for inj in 0..nscope {
                mcx_of[inj] = if ts_ctx[ts as usize] || inj_ctx[inj] {
                    cx
                } else {
                    0
                };
                mrow_of[inj] = ts as usize * tstride + (inj * nctx + mcx_of[inj]) * nc;
            }
            let cells = &lex_cells[lex as usize * nc..(lex as usize + 1) * nc];
            // The state's rows, filled in place.
            let base = trans.len();
            trans.resize(base + nc, StateId::VIOLATED);
            viol.resize(base + nc, 0);
            let rows = trans[base..].iter_mut().zip(&mut viol[base..]);
            for (ci, (((&rep, cell), &after), (t_out, v_out))) in
                reps.iter().zip(cells).zip(&rep_ctx).zip(rows).enumerate()
            {
                let inj = cell.inj as usize;
                let vk = cell.view;
                let mslot = mrow_of[inj] + ci;
                let vslot = |mcx: usize| {
                    (
                        ts,
                        ((vk as usize * nscope + inj) * nctx + mcx) as u32 * nc as u32 + ci as u32,
                    )
                };
                let tslot = mrow_of[inj] + tclass[ci];
                let mut out = if vk == 0 {
                    match tmemo[mslot] {
                        UNKNOWN => tmemo[tslot],
                        known => known,
                    }
                } else {
                    vmemo.get(&vslot(mcx_of[inj])).copied().unwrap_or(UNKNOWN)
                };
                if out == UNKNOWN {
                    threads.clear();
                    threads.extend_from_slice(tsets.get(ts));
                    threads.extend(inj_sets[inj].iter().map(|&k| starts[k as usize]));
                    next_threads.clear();
                    violated.clear();
                    self.tick(threads.len())?;
                    let (vbyte, vctx) = (view::apply(vk, rep), code_ctx(view::behind(vk), ctx));
                    for &t in &threads {
                        let si = if vk != 0 && code_alt[self.threads[t as usize].alt as usize] {
                            self.step_thread(t, vctx, vbyte as u16)?
                        } else {
                            self.step_thread(t, ctx, rep as u16)?
                        };
                        match self.steps[si] {
                            (_, STEP_MATCH) => {
                                let r = self.alts[self.threads[t as usize].alt as usize].rule;
                                if !violated.contains(&r) {
                                    violated.push(r);
                                }
                            }
                            (at, len) => next_threads.extend_from_slice(
                                &self.step_next[at as usize..(at + len) as usize],
                            ),
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
                        // Many steps reach the same threads: prune and intern each distinct
                        // set once (pruning depends on the set alone).
                        let (pid, pnew) = pre_sets.intern(&next_threads);
                        if pnew {
                            self.prune(&mut next_threads)?;
                            let (id, new) = tsets.intern(&next_threads);
                            if new {
                                let needs = next_threads.iter().any(|&t| self.thread_needs_ctx(t));
                                ts_ctx.push(needs);
                                tmemo.resize(tmemo.len() + tstride, UNKNOWN);
                                ids.resize(ids.len() + istride, 0);
                            }
                            pre_out.push(id);
                        }
                        pre_out[pid as usize]
                    };
                    if vk == 0 {
                        tmemo[tslot] = out;
                    } else {
                        vmemo.insert(vslot(mcx_of[inj]), out);
                    }
                }
                if vk == 0 {
                    tmemo[mslot] = out;
                }
                if out & VIOL_BIT != 0 {
                    *v_out = viol_id16(out & !VIOL_BIT)?;
                } else {
                    let nts = out;
                    let nlex = cell.next;
                    let octx = if ts_ctx[nts as usize] || cell.start_ctx {
                        after
                    } else {
                        0
                    };
                    // A thread that completes whatever comes next makes the state dead:
                    // violate here instead of building it (enforced modules only; the
                    // reporting DFAs must report the match where it ends).
                    if !with_reset {
                        let nb = if has_view { self.lex.behind(nlex) } else { 0 };
                        let ds = (nts as usize * nctx + ctx_index[octx as usize] as usize) * 3
                            + nb as usize;
                        if ts_doomed.len() <= ds {
                            ts_doomed.resize((nts as usize + 1) * nctx * 3, u32::MAX);
                        }
                        if ts_doomed[ds] == u32::MAX {
                            let mut rs: Vec<RuleIndex> = Vec::new();
                            for &t in tsets.get(nts) {
                                let tctx = if code_alt[self.threads[t as usize].alt as usize] {
                                    code_ctx(nb, octx)
                                } else {
                                    octx
                                };
                                if self.is_doomed(t, tctx)? {
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
                            *v_out = viol_id16(ts_doomed[ds])?;
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
                    *t_out = StateId(id);
                }
            }
            if states.len() > max_states {
                return Err(CompileError::new(
                    ErrorKind::StateLimit,
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
                    + vmemo.len() * 16
                    + tsets.bytes()
                    + pre_sets.bytes()
                    + pre_out.len() * 4
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
    pub(super) fn nc(&self) -> usize {
        self.reps.len()
    }
}
