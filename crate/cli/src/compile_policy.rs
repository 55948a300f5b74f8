//! `ward compile-policy`: compile a pack once and write its precompiled artefact
//! (`CompiledPolicy::to_artefact`, `*.wardpol`), which the browser loads instead of compiling,
//! and optionally the policy's token rows for one tokenizer (`TokenPolicy::rows_artefact`,
//! `*.wardlift`), which it loads instead of lifting.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Args;
use ward_policy::{CompiledPolicy, EffectivePolicy, PolicyBuilder};

/// `ward compile-policy [--policy PACK] --out FILE [--lift-tokenizer JSON --lift-out FILE]`
#[derive(Args, Debug)]
pub struct CompilePolicyArgs {
    /// The pack (a folder with `pack.yaml`, or a pack file); default `policies/python`.
    #[arg(long = "policy", value_name = "PACK")]
    policy: Option<PathBuf>,
    /// Where to write the artefact.
    #[arg(long = "out", short = 'o', value_name = "FILE")]
    out: PathBuf,
    /// Also lift the compiled policy to this tokenizer (`tokenizer.json`) and write its token
    /// rows as a lift artefact (`--lift-out`), which the browser loads instead of building
    /// the rows (`Generator.prepareWithRows`).
    #[arg(long = "lift-tokenizer", value_name = "JSON", requires = "lift_out")]
    lift_tokenizer: Option<PathBuf>,
    /// Where to write the lift artefact (with `--lift-tokenizer`).
    #[arg(long = "lift-out", value_name = "FILE", requires = "lift_tokenizer")]
    lift_out: Option<PathBuf>,
}

/// The pack files of `eff` keyed by their path relative to the folder that holds them all
/// (with `/`), and the top pack's key.
fn pack_files(
    eff: &EffectivePolicy,
    top: &Path,
) -> Result<(BTreeMap<String, String>, String), String> {
    let abs = |p: &Path| std::fs::canonicalize(p).map_err(|e| format!("{}: {e}", p.display()));
    let paths: Vec<PathBuf> = eff.files.iter().map(|p| abs(p)).collect::<Result<_, _>>()?;
    let top = abs(top)?;
    let mut root = top.parent().map(Path::to_path_buf).unwrap_or_default();
    while !paths.iter().all(|p| p.starts_with(&root)) {
        if !root.pop() {
            break;
        }
    }
    let key = |p: &Path| -> Result<String, String> {
        let rel = p
            .strip_prefix(&root)
            .map_err(|_| format!("{}: outside {}", p.display(), root.display()))?;
        let parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        Ok(parts.join("/"))
    };
    let mut files = BTreeMap::new();
    for p in &paths {
        let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
        files.insert(key(p)?, text);
    }
    Ok((files, key(&top)?))
}

/// Runs `ward compile-policy`: exit 0 when the artefact was written.
pub fn run_compile_policy(args: &CompilePolicyArgs) -> Result<u8, String> {
    let pack = args.policy.clone().unwrap_or_else(crate::default_policy);
    let top = if pack.is_dir() {
        pack.join("pack.yaml")
    } else {
        pack.clone()
    };
    let eff = EffectivePolicy::load(&pack).map_err(|e| e.to_string())?;
    let (files, top_key) = pack_files(&eff, &top)?;
    // Compile from the same in-memory files the artefact stores, so that loading it (which
    // resolves them again) sees exactly what was compiled.
    let eff = EffectivePolicy::from_files(&files, &top_key).map_err(|e| e.to_string())?;
    let policy = PolicyBuilder::new()
        .compile(&eff)
        .map_err(|e| e.to_string())?;
    let bytes = policy.to_artefact(&files, &top_key);
    // Round trip before writing: an artefact that does not load is never written.
    let back = CompiledPolicy::from_artefact(&bytes).map_err(|e| e.to_string())?;
    if back.to_artefact(&files, &top_key) != bytes {
        return Err("the artefact does not round-trip (a bug)".into());
    }
    std::fs::write(&args.out, &bytes).map_err(|e| format!("{}: {e}", args.out.display()))?;
    eprintln!(
        "ward: wrote {} ({} bytes; pack `{}`, {} files, {} enabled rules)",
        args.out.display(),
        bytes.len(),
        eff.name,
        files.len(),
        eff.enabled().count()
    );
    if let (Some(tok), Some(out)) = (&args.lift_tokenizer, &args.lift_out) {
        write_lift(back, tok, out)?;
    }
    Ok(0)
}

/// Lifts `policy` (as loaded from its artefact, so with the modules the browser gets) to the
/// tokenizer `tok` and writes the rows to `out`, after checking that they load back.
fn write_lift(policy: CompiledPolicy, tok: &Path, out: &Path) -> Result<(), String> {
    use std::sync::Arc;
    use ward_guard::TokenPolicy;
    let text = std::fs::read_to_string(tok).map_err(|e| format!("{}: {e}", tok.display()))?;
    let vocab = Arc::new(
        ward_guard::vocab::from_tokenizer_json(&text)
            .map_err(|e| format!("{}: {e}", tok.display()))?,
    );
    let policy = Arc::new(policy);
    let t = std::time::Instant::now();
    let tp = TokenPolicy::new(policy.clone(), vocab.clone());
    tp.prefill(0);
    let bytes = tp.rows_artefact();
    let lift_ms = t.elapsed().as_secs_f64() * 1e3;
    let back = TokenPolicy::new(policy, vocab);
    back.load_rows_artefact(&bytes)
        .map_err(|e| format!("the lift artefact does not load back (a bug): {e}"))?;
    if back.rows_artefact() != bytes {
        return Err("the lift artefact does not round-trip (a bug)".into());
    }
    std::fs::write(out, &bytes).map_err(|e| format!("{}: {e}", out.display()))?;
    eprintln!(
        "ward: wrote {} ({} bytes; the token rows of {} modules for {} ({} tokens), lifted in {lift_ms:.0} ms)",
        out.display(),
        bytes.len(),
        tp.num_modules(),
        tok.display(),
        tp.vocab().len()
    );
    Ok(())
}
