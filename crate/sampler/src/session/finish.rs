//! The finished text and the certificate (the independent re-scan).

use super::*;

impl Session {
    /// The text bytes of `range` of the canvas (committed and fixed tokens; the text stops
    /// at an end token).
    pub(super) fn bytes_of(&self, range: Range<usize>) -> (Vec<u8>, bool) {
        let mut out = Vec::new();
        for p in range {
            match self.slots[p] {
                Pos::Fixed(t) | Pos::Token(t) => match self.vocab.kind(t) {
                    TokenKind::End => return (out, true),
                    _ => out.extend_from_slice(self.vocab.bytes(t)),
                },
                Pos::Ended => {
                    if self.guard.is_none() || self.req.end_in_holes {
                        return (out, true);
                    }
                }
                Pos::Hole | Pos::Pad => {}
            }
        }
        (out, false)
    }

    /// The finished text and the certificate. Fails before the generation is finished.
    pub fn result(&mut self) -> Result<GenerationResult> {
        if !self.done {
            return Err(SamplerError::request(
                "result",
                "the generation is not finished (call step until it returns None)",
            ));
        }
        let (bytes, _) = self.bytes_of(0..self.slots.len());
        let mut holes = Vec::new();
        let mut ended = false;
        for r in &self.hole_ranges {
            if ended {
                holes.push(String::new());
                continue;
            }
            let (b, e) = self.bytes_of(r.clone());
            ended = e;
            holes.push(String::from_utf8_lossy(&b).into_owned());
        }
        let findings: Vec<CertFinding> = self
            .policy
            .as_ref()
            .map(|p| {
                rescan(p, &bytes)
                    .iter()
                    .map(CertFinding::from_finding)
                    .collect()
            })
            .unwrap_or_default();
        let policy_info = match (&self.policy, self.tp_used) {
            (Some(p), true) => Some(PolicyInfo {
                name: p.name().to_string(),
                digest: policy_digest(p),
                enforced_rules: p
                    .rules()
                    .iter()
                    .filter(|r| r.enforced())
                    .map(|r| {
                        let t = self.tally.get(&r.id).cloned().unwrap_or_default();
                        EnforcedRule {
                            id: r.id.clone(),
                            severity: r.severity.as_str().to_string(),
                            message: r.message.trim().to_string(),
                            cwe: r.cwe.clone(),
                            blocked_candidates: t.count,
                            blocked_mass: t.mass,
                        }
                    })
                    .collect(),
                reported_rules: p
                    .rules()
                    .iter()
                    .filter(|r| r.enabled && !r.enforced())
                    .map(|r| r.id.clone())
                    .collect(),
            }),
            _ => None,
        };
        let certificate = Certificate {
            format: CERTIFICATE_FORMAT.into(),
            policy: policy_info,
            scanned_with: self
                .policy
                .as_ref()
                .map(|p| format!("{} ({})", p.name(), policy_digest(p))),
            model: self.model.clone(),
            request: self.req.clone(),
            seed: self.req.seed,
            blocked_total: self.blocked_total,
            blocked_mass: self.blocked_mass,
            remasks: self.remasks,
            findings,
            enforced_findings: 0,
            verdict: String::new(),
        }
        .finish();
        let tokens = self
            .slots
            .iter()
            .filter(|p| matches!(p, Pos::Token(_)))
            .count();
        let mean_logprob = if self.logprobs.is_empty() {
            0.0
        } else {
            self.logprobs.values().map(|&x| x as f64).sum::<f64>() / self.logprobs.len() as f64
        };
        Ok(GenerationResult {
            kind: "result".into(),
            text: String::from_utf8_lossy(&bytes).into_owned(),
            bytes,
            holes,
            tokens,
            steps: self.step,
            forward_passes: self.forward_passes,
            blocked_candidates: self.blocked_total,
            remasks: self.remasks,
            mean_logprob,
            timings: Timings {
                total_ms: self.now() - self.t0,
                model_ms: self.model_ms,
                guard_ms: self.guard_ms,
                guard_parallel_ms: self.guard_parallel_ms,
            },
            certificate,
        })
    }
}
