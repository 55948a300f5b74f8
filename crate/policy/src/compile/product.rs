//! Phase 4: the product of a group's pruned automata, one module that violates when any
//! part does, with the states that cannot reach a clean end together cut.

use rustc_hash::FxHashMap;

use super::determinize::viol_id16;
use super::intern::SetTable;
use super::live::co_reachable;
use super::reduce::Pruned;
use super::PolicyConfig;
use crate::error::{CompileError, Deadline, ErrorKind};
use crate::module::{RuleIndex, StateId};

/// The product of pruned automata of several rules: one module that violates when any of
/// them does (scoped parts all track the same lexer, so only consistent pairs of states are
/// reached). States from which the parts cannot reach a clean end together are cut, their
/// incoming transitions attributed to all the parts' rules. Fails with a size-limit error
/// past `max_states`.
#[allow(clippy::needless_range_loop)] // `c` indexes every part's class table
pub(super) fn product(
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
    // Reserve rows for the state budget up front, so the tables are not copied as they grow;
    // the reservation is capped at 4096 rows (a larger `max-states` only grows the tables as
    // needed: the cap limits the up-front capacity, not the states). Untouched capacity costs
    // no memory.
    let rows = (config.max_states + 1).min(4096) * nc;
    let mut trans: Vec<StateId> = Vec::with_capacity(rows);
    trans.resize(nc, StateId::VIOLATED);
    let mut viol: Vec<u16> = Vec::with_capacity(rows);
    viol.resize(nc, 0);
    let mut clean_end = vec![false];
    let mut end_rules: Vec<Vec<RuleIndex>> = vec![Vec::new()];
    let mut lex: Vec<u16> = vec![u16::MAX];
    if !start.contains(&0) {
        tuples.intern(&start);
    }
    let mut key = vec![0u32; k];
    // The tuple of the last class of the current state that led to one, and its id.
    let mut prev_key = vec![0u32; k];
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
        let mut prev_id = u32::MAX;
        for c in 0..nc {
            let mut violating = 0usize;
            let mut single = (0usize, 0u32);
            // Whether the tuple is the previous class's (compared part by part as it is
            // read, instead of a slice comparison afterwards).
            let mut same = prev_id != u32::MAX;
            for (j, p) in parts.iter().enumerate() {
                let st = cur[j] as usize;
                let slot = st * p.nc + pclass[j][c];
                let t = p.trans[slot];
                if t == StateId::VIOLATED {
                    violating += 1;
                    single = (j, p.viol[slot] as u32);
                }
                same &= t.0 == prev_key[j];
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
                viol.push(viol_id16(v)?);
                continue;
            }
            // Neighbouring classes often lead to the same tuple: intern it once.
            let id = if same {
                prev_id
            } else {
                let (id, _) = tuples.intern(&key);
                prev_key.copy_from_slice(&key);
                prev_id = id;
                id
            };
            trans.push(StateId(id));
            viol.push(0);
        }
        if tuples.len() > config.max_states + 1 {
            return Err(CompileError::new(
                ErrorKind::StateLimit,
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
                    viol[st * nc + c] = viol_id16(v)?;
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
