//! Distributions over one position's logits: exclusions, temperature, the chosen token and
//! the confidence measures of the strategies, without materialising more than needed.

use crate::request::{GenerateRequest, Strategy};
use crate::rng::Rng;

/// `exp(x)` for `x <= 0` (`0` below `-80`, which is also what `-inf` and NaN give), within
/// about 2 ulp of the exact value. Plain IEEE single-precision arithmetic and integer bit
/// operations only, no library call and no branch: the same bits on every platform (the
/// native build and wasm sample the same tokens from the same logits), and loops over a row
/// of logits vectorise. Cody–Waite range reduction, then Cephes' `expf` polynomial on
/// `[-ln 2 / 2, ln 2 / 2]`.
#[inline]
pub(crate) fn exp_nonpos(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 · 2^23: adding it rounds to an integer (round to nearest) kept in the low bits.
    const SHIFTER: f32 = 12_582_912.0;
    let keep = x > -80.0; // false for -inf and NaN too
    let x = if keep { x.min(0.0) } else { -80.0 };
    let t = x * LOG2E + SHIFTER;
    let k = t - SHIFTER;
    let ki = (t.to_bits() as i32).wrapping_sub(SHIFTER.to_bits() as i32);
    let r = x - k * LN2_HI - k * LN2_LO;
    let p = 1.987_569_2e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5; // Cephes: 5.0000001e-1, which is 0.5 in f32
    let e = p * (r * r) + r + 1.0;
    // 2^k for k in [-116, 0]: the exponent field directly.
    let scale = f32::from_bits(((ki + 127) as u32) << 23);
    if keep {
        e * scale
    } else {
        0.0
    }
}

/// Summary of a softmax over one row (excluded entries are `-inf` in the row).
#[derive(Clone, Copy, Debug)]
pub(crate) struct RowDist {
    /// Max of the scaled logits.
    pub m: f32,
    /// Sum of `exp(z - m)` over the row.
    pub s: f64,
    /// Sum of `exp(z - m) * (z - m)` (for the entropy).
    pub sz: f64,
    /// The most likely token and its scaled logit.
    pub top: Option<(u32, f32)>,
    /// The second most likely token's scaled logit.
    pub second: f32,
    /// 1 / temperature.
    pub inv_t: f32,
}

impl RowDist {
    /// The softmax of `row / t`.
    pub fn of(row: &[f32], t: f32) -> RowDist {
        let inv_t = 1.0 / t;
        let mut m = f32::NEG_INFINITY;
        let mut top: Option<(u32, f32)> = None;
        let mut second = f32::NEG_INFINITY;
        for (i, &x) in row.iter().enumerate() {
            let z = x * inv_t;
            if z > m {
                if m > second {
                    second = m;
                }
                m = z;
                top = Some((i as u32, z));
            } else if z > second {
                second = z;
            }
        }
        let (mut s, mut sz) = (0.0f64, 0.0f64);
        if m.is_finite() {
            (s, sz) = lane_sums(row, inv_t, m);
        } else {
            top = None;
        }
        RowDist {
            m,
            s,
            sz,
            top,
            second,
            inv_t,
        }
    }

    /// Probability of a token whose raw logit is `x`.
    pub fn prob(&self, x: f32) -> f32 {
        if self.s <= 0.0 {
            return 0.0;
        }
        (exp_nonpos(x * self.inv_t - self.m) as f64 / self.s) as f32
    }

    /// Entropy in nats.
    pub fn entropy(&self) -> f64 {
        if self.s <= 0.0 {
            return 0.0;
        }
        self.s.ln() - self.sz / self.s
    }

    /// Probability of the most likely token minus that of the second.
    pub fn margin(&self) -> f32 {
        let p1 = self
            .top
            .map(|(_, z)| self.prob(z / self.inv_t))
            .unwrap_or(0.0);
        let p2 = if self.second.is_finite() {
            (exp_nonpos(self.second - self.m) as f64 / self.s) as f32
        } else {
            0.0
        };
        p1 - p2
    }
}

/// Picks a token from `row` (excluded entries `-inf`): the most likely at temperature 0,
/// else a sample after top-k / top-p filtering. `None` when every entry is excluded.
pub(crate) fn pick(row: &[f32], d: &RowDist, req: &GenerateRequest, rng: &mut Rng) -> Option<u32> {
    let (top, _) = d.top?;
    if req.temperature <= 0.0 {
        return Some(top);
    }
    let u = rng.uniform();
    if req.top_k == 0 && req.top_p >= 1.0 {
        let target = u * d.s;
        let mut acc = 0.0f64;
        let mut last = top;
        for (i, &x) in row.iter().enumerate() {
            let dz = x * d.inv_t - d.m;
            if dz > -80.0 {
                acc += exp_nonpos(dz) as f64;
                last = i as u32;
                if acc >= target {
                    return Some(i as u32);
                }
            }
        }
        return Some(last);
    }
    let mut cands: Vec<(f32, u32)> = row
        .iter()
        .enumerate()
        .filter(|(_, x)| x.is_finite())
        .map(|(i, &x)| (d.prob(x), i as u32))
        .collect();
    cands.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    if req.top_k > 0 {
        cands.truncate(req.top_k);
    }
    if req.top_p < 1.0 {
        let mut acc = 0.0f32;
        let mut keep = cands.len();
        for (k, c) in cands.iter().enumerate() {
            acc += c.0;
            if acc >= req.top_p {
                keep = k + 1;
                break;
            }
        }
        cands.truncate(keep.max(1));
    }
    let total: f64 = cands.iter().map(|c| c.0 as f64).sum();
    let target = u * total;
    let mut acc = 0.0f64;
    for c in &cands {
        acc += c.0 as f64;
        if acc >= target {
            return Some(c.1);
        }
    }
    cands.last().map(|c| c.1)
}

/// The strategy's confidence of choosing `token` (larger: commit earlier).
pub(crate) fn confidence(
    strategy: Strategy,
    row: &[f32],
    d: &RowDist,
    token: u32,
    rng: &mut Rng,
) -> f64 {
    match strategy {
        Strategy::LowConfidence | Strategy::Threshold => d.prob(row[token as usize]) as f64,
        Strategy::Entropy => -d.entropy(),
        Strategy::Margin => d.margin() as f64,
        Strategy::Random => rng.uniform(),
    }
}

/// `log Σ exp(row)` (natural log), over finite entries.
pub(crate) fn logsumexp(row: &[f32]) -> f32 {
    let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !m.is_finite() {
        return m;
    }
    let (s, _) = lane_sums(row, 1.0, m);
    m + s.ln() as f32
}

/// `Σ e` and `Σ e·d` over `row`, with `d = x·inv_t − m` and `e = exp(d)` (`m` finite, at
/// least every `x·inv_t`), in eight lanes of partial sums so that the loop vectorises, the
/// same sums in the same order wherever it runs (native and wasm give the same bits).
/// Excluded entries (`-inf`) contribute exactly 0 (their `d` is `-inf` and `e` is 0;
/// `0 · -inf` is avoided by clamping `d` for the product).
#[inline]
fn lane_sums(row: &[f32], inv_t: f32, m: f32) -> (f64, f64) {
    let (mut s8, mut z8) = ([0.0f64; 8], [0.0f64; 8]);
    let mut chunks = row.chunks_exact(8);
    for c in &mut chunks {
        for k in 0..8 {
            let d = c[k] * inv_t - m;
            let e = exp_nonpos(d);
            s8[k] += e as f64;
            z8[k] += (e * d.max(-80.0)) as f64;
        }
    }
    for &x in chunks.remainder() {
        let d = x * inv_t - m;
        let e = exp_nonpos(d);
        s8[0] += e as f64;
        z8[0] += (e * d.max(-80.0)) as f64;
    }
    (s8.iter().sum(), z8.iter().sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_nonpos_is_close_to_exp_and_zero_where_excluded() {
        let mut worst = 0.0f64;
        let mut x = 0.0f32;
        while x > -80.0 {
            let want = (x as f64).exp();
            let got = exp_nonpos(x) as f64;
            worst = worst.max(((got - want) / want).abs());
            x -= 0.000_731;
        }
        assert!(worst < 4e-7, "worst relative error {worst}");
        assert_eq!(exp_nonpos(0.0), 1.0);
        for x in [-80.0f32, -100.0, f32::NEG_INFINITY, f32::NAN, -f32::MAX] {
            assert_eq!(exp_nonpos(x), 0.0, "{x}");
        }
        // Above 0 it is exp(0): callers only pass `z - max`.
        assert_eq!(exp_nonpos(1e-3), 1.0);
    }

    #[test]
    fn softmax_summary_matches_direct_computation() {
        let row = [1.0f32, 3.0, f32::NEG_INFINITY, 2.0];
        let d = RowDist::of(&row, 1.0);
        let z: f64 = row
            .iter()
            .filter(|x| x.is_finite())
            .map(|&x| (x as f64).exp())
            .sum();
        let p: Vec<f64> = row.iter().map(|&x| (x as f64).exp() / z).collect();
        assert!((d.prob(3.0) as f64 - p[1]).abs() < 1e-6);
        let h: f64 = -p
            .iter()
            .filter(|&&q| q > 0.0)
            .map(|q| q * q.ln())
            .sum::<f64>();
        assert!((d.entropy() - h).abs() < 1e-6, "{} vs {h}", d.entropy());
        assert!((d.margin() as f64 - (p[1] - p[3])).abs() < 1e-6);
        assert_eq!(d.top.unwrap().0, 1);
        assert!((logsumexp(&row) as f64 - z.ln()).abs() < 1e-5);
        let all_out = [f32::NEG_INFINITY; 3];
        let d = RowDist::of(&all_out, 1.0);
        let mut rng = Rng::new(1);
        assert_eq!(
            pick(&all_out, &d, &GenerateRequest::default(), &mut rng),
            None
        );
    }

    #[test]
    fn sampling_respects_top_k_and_exclusions() {
        let row = [0.0f32, 0.1, f32::NEG_INFINITY, 0.2, 5.0];
        let d = RowDist::of(&row, 1.0);
        let req = GenerateRequest {
            temperature: 1.0,
            top_k: 2,
            ..Default::default()
        };
        let mut rng = Rng::new(7);
        for _ in 0..200 {
            let t = pick(&row, &d, &req, &mut rng).unwrap();
            assert!(t == 4 || t == 3, "{t}");
        }
        let req = GenerateRequest {
            temperature: 1.0,
            ..Default::default()
        };
        for _ in 0..200 {
            assert_ne!(pick(&row, &d, &req, &mut rng), Some(2));
        }
    }
}
