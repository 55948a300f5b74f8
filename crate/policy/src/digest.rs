//! Digests that name what was enforced: `sha256:<hex>` of bytes, and of an effective policy
//! (the certificate's `policy.digest`, `ward explain`'s and the browser's `explain().digest`).

use sha2::{Digest, Sha256};

use crate::CompiledPolicy;

/// `sha256:<hex>` of `parts`, each preceded by its length as a little-endian `u64` (so that
/// `["ab", "c"]` and `["a", "bc"]` differ).
pub fn sha256_hex(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    sha256_text(&h.finalize())
}

/// The `sha256:<hex>` text of a SHA-256 digest computed elsewhere (e.g. by the browser's
/// SubtleCrypto over the bytes [`sha256_hex`] hashes).
pub fn sha256_text(digest: &[u8]) -> String {
    let mut s = String::from("sha256:");
    for b in digest {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Digest of an effective policy: every rule's id, severity, state (enabled or not), scope
/// and pattern, in order. Two policies with the same digest enforce the same rules. Computed
/// once per policy (every certificate names it).
pub fn policy_digest(policy: &CompiledPolicy) -> String {
    policy
        .digest
        .get_or_init(|| compute_policy_digest(policy))
        .clone()
}

/// [`policy_digest`] from the rules.
fn compute_policy_digest(policy: &CompiledPolicy) -> String {
    let mut text = String::new();
    for r in policy.rules() {
        text.push_str(&format!(
            "{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{:?}\u{1e}",
            r.id,
            r.severity.as_str(),
            r.enabled,
            r.scope.as_str(),
            r.pattern
        ));
    }
    sha256_hex(&[text.as_bytes()])
}
