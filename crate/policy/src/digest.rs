//! Digests that name what was enforced: `sha256:<hex>` of bytes, and of an effective policy
//! (the certificate's `policy.digest`, `ward explain`'s and the browser's `explain().digest`);
//! and a fast non-cryptographic [`Fingerprint`] for binding derived data (the guard's token
//! rows) to exactly what it was derived from.

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

/// A fast 64-bit fingerprint (word-wise FNV-1a style mixing with a rotation): about a word a
/// nanosecond. Not cryptographic: it tells data apart from other data by accident, not from
/// an adversary (`Module::fingerprint`, the guard's `Vocab::fingerprint` and its lift
/// artefact's checksum).
#[derive(Clone, Debug)]
pub struct Fingerprint(u64);

impl Default for Fingerprint {
    fn default() -> Self {
        Fingerprint::new()
    }
}

impl Fingerprint {
    /// FNV-1a's 64-bit offset basis.
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

    /// A fingerprint of nothing yet.
    pub fn new() -> Fingerprint {
        Fingerprint(Self::OFFSET)
    }

    /// A fingerprint of nothing yet, its start state mixed with `seed` (a length, say).
    pub fn seeded(seed: u64) -> Fingerprint {
        Fingerprint(Self::OFFSET ^ seed)
    }

    /// Mixes in one word.
    #[inline]
    pub fn word(&mut self, w: u64) {
        self.0 = (self.0 ^ w)
            .wrapping_mul(0x0000_0100_0000_01b3)
            .rotate_left(29);
    }

    /// Mixes in `bytes` as little-endian 8-byte words, the last one zero-padded (the length
    /// is not mixed in: callers that need it add it as a word or a seed).
    pub fn bytes(&mut self, bytes: &[u8]) {
        for c in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..c.len()].copy_from_slice(c);
            self.word(u64::from_le_bytes(b));
        }
    }

    /// The fingerprint.
    pub fn finish(&self) -> u64 {
        self.0
    }
}
