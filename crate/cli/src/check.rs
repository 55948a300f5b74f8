//! `ward check` and `ward explain`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use serde_json::{json, Value};
use ward_policy::{CompiledPolicy, EffectivePolicy, Finding, PolicyBuilder};

/// Output formats of `ward check`.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Format {
    /// Human-readable lines.
    Text,
    /// A JSON array of findings.
    Json,
    /// SARIF 2.1.0 (GitHub code scanning).
    Sarif,
}

/// Arguments of `ward check`.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Policy pack (folder with pack.yaml, or a pack file); repeat to combine packs.
    #[arg(long = "policy", value_name = "PACK")]
    policy: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Files or folders to scan (folders: every *.py file below, hidden folders skipped).
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
}

/// Arguments of `ward explain`.
#[derive(Args, Debug)]
pub struct ExplainArgs {
    /// Policy pack (folder with pack.yaml, or a pack file); repeat to combine packs.
    #[arg(long = "policy", value_name = "PACK")]
    policy: Vec<PathBuf>,
    /// Also compile and print modules, states, memory and compile time.
    #[arg(long)]
    stats: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// State budget per module (default: the compiler's default).
    #[arg(long, value_name = "N")]
    max_states: Option<usize>,
}

fn policies(given: &[PathBuf]) -> Vec<PathBuf> {
    if given.is_empty() {
        vec![crate::default_policy()]
    } else {
        given.to_vec()
    }
}

/// Print the policy's load warnings on standard error, one `ward: warning: ` line each.
fn warn(eff: &EffectivePolicy) {
    for w in eff.warnings() {
        eprintln!("ward: warning: {w}");
    }
}

pub(crate) fn compile(given: &[PathBuf]) -> Result<CompiledPolicy, String> {
    let eff = EffectivePolicy::load_all(&policies(given)).map_err(|e| e.to_string())?;
    warn(&eff);
    PolicyBuilder::new()
        .compile(&eff)
        .map_err(|e| e.to_string())
}

fn collect(path: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.is_file() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    let mut entries: Vec<_> = std::fs::read_dir(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') {
            continue;
        }
        if p.is_dir() {
            collect(&p, out)?;
        } else if p.extension().is_some_and(|e| e == "py" || e == "pyi") {
            out.push(p);
        }
    }
    Ok(())
}

/// Run `ward check`; returns the exit code.
pub fn run_check(args: &CheckArgs) -> Result<u8, String> {
    let policy = compile(&args.policy)?;
    let mut files = Vec::new();
    for p in &args.paths {
        collect(p, &mut files)?;
    }
    let mut all: Vec<(PathBuf, Vec<u8>, Vec<Finding>)> = Vec::new();
    for f in files {
        let text = std::fs::read(&f).map_err(|e| format!("{}: {e}", f.display()))?;
        // A rule's `paths: include/exclude` select the files it applies to (as given).
        let rel = f.to_string_lossy().replace('\\', "/");
        let findings: Vec<Finding> = policy
            .check(&text)
            .into_iter()
            .filter(|x| policy.rule(x.rule).applies_to_path(&rel))
            .collect();
        all.push((f, text, findings));
    }
    let total: usize = all.iter().map(|(_, _, f)| f.len()).sum();
    let out = match args.format {
        Format::Text => text_report(&all, total),
        Format::Json => serde_json::to_string_pretty(&json_report(&all)).unwrap() + "\n",
        Format::Sarif => serde_json::to_string_pretty(&sarif_of(&policy, &all)).unwrap() + "\n",
    };
    emit(&out);
    Ok(if total == 0 { 0 } else { 1 })
}

fn text_report(all: &[(PathBuf, Vec<u8>, Vec<Finding>)], total: usize) -> String {
    let mut s = String::new();
    for (path, text, findings) in all {
        for f in findings {
            let cwe = f
                .cwe
                .first()
                .map(|c| c.split(':').next().unwrap_or(c).trim().to_string())
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "{}:{}:{}: {} {} [{}] {}",
                path.display(),
                f.line,
                f.column,
                f.severity,
                f.rule_id,
                cwe,
                f.message.trim()
            );
            let line = text.split(|&b| b == b'\n').nth(f.line - 1).unwrap_or(&[]);
            let _ = writeln!(s, "    {}", String::from_utf8_lossy(line).trim_end());
        }
    }
    let files = all.len();
    let _ = writeln!(s, "{total} finding(s) in {files} file(s)");
    s
}

fn sarif_of(policy: &CompiledPolicy, all: &[(PathBuf, Vec<u8>, Vec<Finding>)]) -> Value {
    let files: Vec<ward_policy::sarif::SarifFile<'_>> = all
        .iter()
        .map(|(path, text, findings)| ward_policy::sarif::SarifFile {
            uri: path.to_string_lossy().into_owned(),
            text,
            findings,
        })
        .collect();
    ward_policy::sarif::sarif_log(policy, &files, |_| None)
}

fn json_report(all: &[(PathBuf, Vec<u8>, Vec<Finding>)]) -> Value {
    let mut v = Vec::new();
    for (path, _, findings) in all {
        for f in findings {
            v.push(json!({
                "path": path.display().to_string(),
                "rule_id": f.rule_id,
                "severity": f.severity.as_str(),
                "enforced": f.enforced,
                "cwe": f.cwe,
                "message": f.message.trim(),
                "start": f.start,
                "end": f.end,
                "line": f.line,
                "column": f.column,
                "end_line": f.end_pos.line,
                "end_column": f.end_pos.column,
            }));
        }
    }
    Value::Array(v)
}

/// Run `ward explain`.
pub fn run_explain(args: &ExplainArgs) -> Result<u8, String> {
    let eff = EffectivePolicy::load_all(&policies(&args.policy)).map_err(|e| e.to_string())?;
    warn(&eff);
    let mut builder = PolicyBuilder::new();
    if let Some(n) = args.max_states {
        builder = builder.max_states(n);
    }
    // Always compiled, so that explain reports every error check would (a regex that does
    // not parse or translate, a rule over the state budget); the statistics only with --stats.
    let compiled = builder.compile(&eff).map_err(|e| e.to_string())?;
    // The certificate's policy digest: the same rules enforced give the same digest.
    let digest = ward_policy::digest::policy_digest(&compiled);
    let compiled = args.stats.then_some(compiled);
    if args.json {
        let stats = compiled.as_ref().map(stats_json);
        let v = ward_policy::explain::explain_json(&eff, &digest, stats);
        emit(&(serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"));
        return Ok(0);
    }
    let mut s = String::new();
    let _ = writeln!(
        s,
        "pack {} — policy digest {digest} — resolved from (bases first):",
        eff.name
    );
    for f in &eff.files {
        let _ = writeln!(s, "  {}", f.display());
    }
    let enforced = eff.rules.iter().filter(|r| r.enforced()).count();
    let reported = eff
        .rules
        .iter()
        .filter(|r| r.enabled && !r.enforced())
        .count();
    let disabled = eff.rules.iter().filter(|r| !r.enabled).count();
    let _ = writeln!(
        s,
        "{enforced} enforced, {reported} reported only, {disabled} disabled\n"
    );
    for r in &eff.rules {
        let state = if !r.enabled {
            "disabled"
        } else if r.enforced() {
            "enforced"
        } else {
            "reported"
        };
        let _ = writeln!(
            s,
            "{} [{} {}] scope={}",
            r.id,
            r.severity,
            state,
            r.scope.as_str()
        );
        let _ = writeln!(
            s,
            "    from {}{}",
            r.source.display(),
            r.line.map(|l| format!(":{l}")).unwrap_or_default()
        );
        for h in &r.history {
            let _ = writeln!(s, "    {h}");
        }
        for w in &r.warnings {
            let _ = writeln!(s, "    warning: {w}");
        }
        if !r.cwe.is_empty() {
            let _ = writeln!(s, "    {}", r.cwe.join("; "));
        }
        for a in r.pattern.alternatives() {
            let _ = writeln!(s, "    match  {}", a.regex);
            for n in &a.not {
                let _ = writeln!(s, "    unless {n}");
            }
        }
    }
    if let Some(c) = &compiled {
        let st = c.stats();
        let _ = writeln!(
            s,
            "\nstats: {} enforced module(s), compiled in {:.1} ms ({:.1} ms parsing, {:.1} ms modules and span finder), {} KiB of tables",
            st.modules.len(),
            st.compile_time.as_secs_f64() * 1e3,
            st.parse_time.as_secs_f64() * 1e3,
            (st.compile_time - st.parse_time).as_secs_f64() * 1e3,
            st.memory_bytes / 1024
        );
        for (i, m) in st.modules.iter().enumerate() {
            let _ = writeln!(
                s,
                "  module {i}: {} states, {} byte classes, {} KiB, rules: {}",
                m.states,
                m.classes,
                m.memory_bytes / 1024,
                m.rules.join(", ")
            );
        }
        let t = std::time::Instant::now();
        let rule_states = c.reporting_states();
        let _ = writeln!(
            s,
            "  per-rule reporting DFAs for `ward check` (states; built on first use, all {} of them in {:.1} ms, {} KiB; 0 = scanned by the regex engine):",
            rule_states.len(),
            t.elapsed().as_secs_f64() * 1e3,
            c.reporting_memory_bytes() / 1024
        );
        for (r, n) in c.rules().iter().zip(&rule_states) {
            let _ = writeln!(s, "    {:>6}  {}", n, r.id);
        }
    }
    emit(&s);
    Ok(0)
}

fn stats_json(c: &CompiledPolicy) -> Value {
    let ms = c.stats().compile_time.as_secs_f64() * 1e3;
    ward_policy::explain::stats_json(c, ms)
}

/// Write `text` to standard output. A closed pipe (`ward check … | head`) is not an error:
/// the reader has what it wanted, so the rest is dropped quietly. Any other write error ends
/// the process with exit status 2 and the cause on standard error.
pub(crate) fn emit(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => {
            eprintln!("ward: error: cannot write the output: {e}");
            std::process::exit(2);
        }
    }
}
