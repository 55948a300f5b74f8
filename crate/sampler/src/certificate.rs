//! The certificate: what was enforced, what was blocked, and the independent re-scan of the
//! finished text; as JSON and as SARIF 2.1.0.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use ward_policy::{CompiledPolicy, Finding, RegexChecker};

use crate::request::GenerateRequest;

/// Format tag of the certificate.
pub const CERTIFICATE_FORMAT: &str = "ward-certificate/1";

pub use ward_policy::digest::{policy_digest, sha256_hex};

/// Which model generated the text.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// A name (the model folder's name, or the source's description).
    pub name: String,
    /// `sha256:` of its config and weights (empty when not known, e.g. a test source).
    pub digest: String,
    /// Logits per position.
    pub vocab_size: usize,
}

/// An enforced rule and what generation blocked for it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EnforcedRule {
    /// Rule id.
    pub id: String,
    /// Severity.
    pub severity: String,
    /// Message.
    pub message: String,
    /// CWE entries.
    pub cwe: Vec<String>,
    /// Blocked candidates attributed to this rule (reported in step events).
    pub blocked_candidates: usize,
    /// Their probability mass, summed.
    pub blocked_mass: f64,
}

/// The policy part of a certificate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PolicyInfo {
    /// Name of the top pack.
    pub name: String,
    /// [`policy_digest`].
    pub digest: String,
    /// The enforced rules (severity ERROR, CRITICAL or HIGH, enabled).
    pub enforced_rules: Vec<EnforcedRule>,
    /// Ids of the enabled rules that are only reported.
    pub reported_rules: Vec<String>,
}

/// A finding of the final re-scan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CertFinding {
    /// Rule id.
    pub rule_id: String,
    /// Rule message.
    pub message: String,
    /// Severity.
    pub severity: String,
    /// Whether the rule is enforced during generation.
    pub enforced: bool,
    /// CWE entries.
    pub cwe: Vec<String>,
    /// Byte span start in the text.
    pub start: usize,
    /// Byte span end.
    pub end: usize,
    /// 1-based line.
    pub line: usize,
    /// 1-based byte column.
    pub column: usize,
}

impl CertFinding {
    /// From a policy finding.
    pub fn from_finding(f: &Finding) -> Self {
        CertFinding {
            rule_id: f.rule_id.clone(),
            message: f.message.trim().to_string(),
            severity: f.severity.as_str().to_string(),
            enforced: f.enforced,
            cwe: f.cwe.clone(),
            start: f.start,
            end: f.end,
            line: f.line,
            column: f.column,
        }
    }
}

/// The certificate of one generation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Certificate {
    /// [`CERTIFICATE_FORMAT`].
    pub format: String,
    /// The enforced policy (None when generation was unconstrained).
    pub policy: Option<PolicyInfo>,
    /// Name and digest of the policy the final text was re-scanned with.
    pub scanned_with: Option<String>,
    /// The model.
    pub model: ModelInfo,
    /// The request as given.
    pub request: GenerateRequest,
    /// The seed.
    pub seed: u64,
    /// Blocked candidates reported, in all.
    pub blocked_total: usize,
    /// Their probability mass, summed.
    pub blocked_mass: f64,
    /// Remasks.
    pub remasks: usize,
    /// Findings of the re-scan by `ward-policy`'s independent regex checker (every enabled
    /// rule: enforced and reported).
    pub findings: Vec<CertFinding>,
    /// Findings of enforced rules: always 0 when the policy was enforced (otherwise Ward has
    /// a bug and `ward generate` exits 3).
    pub enforced_findings: usize,
    /// `clean` (no finding at all) or `findings`.
    pub verdict: String,
}

/// Re-scans `text` with the independent checker of `policy`.
pub fn rescan(policy: &CompiledPolicy, text: &[u8]) -> Vec<Finding> {
    RegexChecker::new(policy).check(text)
}

impl Certificate {
    /// Counts the enforced findings and sets the verdict.
    pub(crate) fn finish(mut self) -> Self {
        self.enforced_findings = self.findings.iter().filter(|f| f.enforced).count();
        self.verdict = if self.findings.is_empty() {
            "clean".into()
        } else {
            "findings".into()
        };
        self
    }

    /// True when the policy was enforced and the re-scan found a violation of an enforced
    /// rule (a bug).
    pub fn is_violated(&self) -> bool {
        self.policy.is_some() && self.enforced_findings > 0
    }

    /// SARIF 2.1.0: findings of the re-scan as results (on `uri`), every rule as rule
    /// metadata, enforced rules with their blocked counts and mass in `properties`, and the
    /// certificate's summary in the run's `properties`.
    pub fn to_sarif(&self, policy: &CompiledPolicy, text: &[u8], uri: &str) -> Value {
        let findings = rescan(policy, text);
        let files = [ward_policy::sarif::SarifFile {
            uri: uri.to_string(),
            text,
            findings: &findings,
        }];
        let enforced = self.policy.as_ref().map(|p| &p.enforced_rules);
        let mut log = ward_policy::sarif::sarif_log(policy, &files, |r| {
            let e = enforced?.iter().find(|e| e.id == r.id)?;
            Some(json!({
                "ward-blocked-candidates": e.blocked_candidates,
                "ward-blocked-mass": e.blocked_mass,
            }))
        });
        if let Some(run) = log["runs"].get_mut(0) {
            run["properties"] = json!({
                "ward-certificate": CERTIFICATE_FORMAT,
                "ward-policy-digest": self.policy.as_ref().map(|p| p.digest.clone()),
                "ward-model-digest": self.model.digest,
                "ward-seed": self.seed,
                "ward-remasks": self.remasks,
                "ward-blocked-total": self.blocked_total,
                "ward-enforced-findings": self.enforced_findings,
                "ward-verdict": self.verdict,
            });
        }
        log
    }
}
