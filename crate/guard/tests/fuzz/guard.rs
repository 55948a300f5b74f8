//! The check of the `guard` fuzz target (`crate/guard/fuzz`), shared with the regression test
//! that replays its findings (`tests/fuzz_findings.rs`). The guard runs on the real python
//! pack and the shipped model's vocabulary.
//!
//! Input: parts separated by NUL bytes. Part 0 is the prompt text, part 1 is one byte for
//! the number of holes (1 to 32) followed by the suffix text (both tokenized greedily, a
//! text that cannot be tokenized counts as empty), and each further part is one operation:
//! a kind byte, a position byte and an argument (commit the argument's tokens at consecutive
//! positions, commit the first allowed token, commit a token id, uncommit, snapshot, restore).
//!
//! Checked: no panic; `Guard::new` fails only with an error; a commit succeeds exactly when
//! the position is a hole and `allows` says yes; masks and `allows` agree with the masks of a
//! fresh guard over the same committed canvas; a canvas completed with allowed tokens
//! violates no enforced rule (by the policy's own checker).

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use ward_guard::{Canvas, Guard, GuardError, Slot, TokenPolicy};
use ward_policy::PolicyBuilder;

/// The repository root (found above this crate, so the check runs from the fuzz crate too).
fn repo() -> PathBuf {
    let mut dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    while !dir.join("policies/python").is_dir() {
        assert!(
            dir.pop(),
            "no policies/python above {}",
            env!("CARGO_MANIFEST_DIR")
        );
    }
    dir
}

/// The python pack lifted to the shipped model's vocabulary (built once per process).
pub fn token_policy() -> &'static Arc<TokenPolicy> {
    static TP: OnceLock<Arc<TokenPolicy>> = OnceLock::new();
    TP.get_or_init(|| {
        let root = repo();
        // A generous time limit: the fixture is not under test, and sanitizer builds on a
        // busy machine compile far slower than the default limit allows.
        let policy = PolicyBuilder::new()
            .max_compile_time(std::time::Duration::from_secs(600))
            .compile_path(root.join("policies/python"))
            .unwrap_or_else(|e| panic!("{e}"));
        let path = root.join("models/ward-tiny-code/tokenizer.json");
        let json =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let vocab = ward_guard::vocab::from_tokenizer_json(&json)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Arc::new(TokenPolicy::new(Arc::new(policy), Arc::new(vocab)))
    })
}

/// Longest canvas tried (longer inputs are cut).
const MAX_LEN: usize = 96;

/// One fuzz input (see the module docs).
pub fn run(data: &[u8]) {
    let tp = token_policy();
    let v = tp.vocab();
    let tok = |text: &[u8]| v.tokenize_greedy(text).unwrap_or_default();
    let mut parts = data.split(|&b| b == 0);
    let mut prefix = tok(parts.next().unwrap_or(&[]));
    let (holes, suffix) = match parts.next().and_then(|p| p.split_first()) {
        Some((&h, rest)) => (1 + h as usize % 32, tok(rest)),
        None => (8, Vec::new()),
    };
    prefix.truncate(MAX_LEN - holes);
    let mut suffix = suffix;
    suffix.truncate(MAX_LEN - holes - prefix.len());
    let canvas = Canvas::infill(&prefix, holes, &suffix);
    let mut g = match Guard::new(tp.clone(), &canvas) {
        Ok(g) => g,
        Err(e) => {
            // The prompt itself violates a rule (or leaves no safe completion): a clean error.
            assert!(
                matches!(
                    e,
                    GuardError::CanvasViolates { .. } | GuardError::NoSafeCompletion { .. }
                ),
                "{e}"
            );
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    let mut rng = Rng(data.len() as u64 * 0x9E37_79B9 + 1);
    let mut snap = None;
    for op in parts {
        let Some((&kind, rest)) = op.split_first() else {
            continue;
        };
        let (pos, arg) = match rest.split_first() {
            Some((&p, arg)) => (p as usize % g.len(), arg),
            None => (0, &[][..]),
        };
        match kind % 6 {
            0 | 1 => {
                for (j, t) in tok(arg).into_iter().enumerate() {
                    if pos + j < g.len() {
                        commit_checked(&mut g, pos + j, t);
                    }
                }
            }
            2 => {
                if let Some(t) = pick_allowed(&g, pos, &mut rng) {
                    commit_checked(&mut g, pos, t);
                }
            }
            3 => {
                let t = arg
                    .iter()
                    .fold(0u32, |a, &b| a.wrapping_mul(256) ^ b as u32);
                commit_checked(&mut g, pos, t % (v.len() as u32 + 8));
            }
            4 => {
                let was = g.slot(pos);
                let r = g.uncommit(pos);
                assert_eq!(r.is_ok(), matches!(was, Some(Slot::Committed(_))), "{r:?}");
            }
            _ => match (&snap, kind & 0x80 != 0) {
                (Some(s), true) => g.restore(s).expect("a snapshot of this guard"),
                _ => snap = Some(g.snapshot()),
            },
        }
    }
    same_as_fresh(&g, tp);
    // Complete the canvas with allowed tokens; across modules a hole may have none (a
    // conflict, which the sampler resolves by remasking), and then the text stays open.
    for p in g.holes() {
        match pick_allowed(&g, p, &mut rng) {
            Some(t) => commit_checked(&mut g, p, t),
            None => return,
        }
    }
    let text = g.text();
    assert!(
        tp.policy().is_clean_enforced(&text),
        "a completed canvas violates: {:?}",
        String::from_utf8_lossy(&text)
    );
}

/// Commits `t` at `p` and checks that it succeeded exactly when it was allowed.
fn commit_checked(g: &mut Guard, p: usize, t: u32) {
    let hole = g.is_hole(p);
    let allowed = g.allows(p, t);
    match g.commit(p, t) {
        Ok(()) => assert!(hole && allowed, "committed {t} at {p}"),
        Err(GuardError::Forbidden { .. }) => assert!(hole && !allowed, "{t} at {p} refused"),
        Err(e) => assert!(
            !hole || t as usize >= g.token_policy().vocab().len(),
            "{t} at {p}: {e}"
        ),
    }
}

/// An allowed token at hole `p`, chosen by `rng`, or `None` when there is none.
fn pick_allowed(g: &Guard, p: usize, rng: &mut Rng) -> Option<u32> {
    let mask = g.mask_unchecked(p).ok()?;
    let n = mask.count_allowed();
    if n == 0 {
        return None;
    }
    let k = rng.below(n);
    return mask.iter_allowed().nth(k);
}

/// The masks of `g` equal those of a fresh guard over its committed canvas.
fn same_as_fresh(g: &Guard, tp: &Arc<TokenPolicy>) {
    let slots: Vec<Slot> = (0..g.len()).map(|p| g.slot(p).expect("in range")).collect();
    let fresh = Guard::new(tp.clone(), &Canvas::from_slots(slots))
        .unwrap_or_else(|e| panic!("the committed canvas has no safe completion: {e}"));
    let vlen = tp.vocab().len() as u32;
    for p in g.holes() {
        let m = g.mask_unchecked(p).expect("a hole");
        assert_eq!(m, fresh.mask_unchecked(p).expect("a hole"), "mask at {p}");
        for t in (0..vlen).step_by(61) {
            assert_eq!(g.allows(p, t), m.contains(t), "allows({p}, {t})");
        }
    }
}

/// A small deterministic RNG (xorshift64*).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) % n as u64) as usize
    }
}
