//! Loading a pack and resolving its hierarchy (`extends`, `disable`, overrides), from the
//! disk or from an in-memory map of files.

use super::parse::*;
use super::*;

/// `path` with `.` dropped and `a/..` folded, without touching the file system (for the
/// in-memory file map, whose keys are relative paths such as `python/pack.yaml`).
pub(super) fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out: Vec<Component> = Vec::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.last(), Some(Component::Normal(_))) => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out.iter().collect()
}

impl EffectivePolicy {
    /// Load the pack at `path` (a pack file or a folder with `pack.yaml`) and resolve its
    /// hierarchy.
    pub fn load(path: impl AsRef<Path>) -> Result<EffectivePolicy, CompileError> {
        let file = pack_file(path.as_ref());
        let mut loader = Loader::default();
        let (name, rules) = loader.resolve(&file)?;
        finish(name, loader.order, rules, &file, loader.max_states)
    }

    /// Load the pack `top` from an in-memory map of file name → YAML text and resolve its
    /// hierarchy there, without a file system (the browser passes the files it fetched).
    ///
    /// Names are relative paths with `/`, e.g. `python/pack.yaml` and `base/pack.yaml`;
    /// `top` and `extends` entries name a file or a folder holding `pack.yaml`, and `extends`
    /// is resolved relative to the extending file's folder, as on disk. A name that is not in
    /// the map is an error naming it and the files that were given.
    ///
    /// ```
    /// use std::collections::BTreeMap;
    /// let mut files = BTreeMap::new();
    /// files.insert("base/pack.yaml".to_string(), "pack: base\nrules:\n  - id: no-eval\n    message: m\n    severity: ERROR\n    languages: [python]\n    pattern-regex: 'eval\\('\n".to_string());
    /// files.insert("app/pack.yaml".to_string(), "pack: app\nextends: [../base]\nseverity: { no-eval: WARNING }\n".to_string());
    /// let eff = ward_policy::EffectivePolicy::from_files(&files, "app").unwrap();
    /// assert_eq!(eff.name, "app");
    /// assert_eq!(eff.rules[0].severity, ward_policy::Severity::Warning);
    /// ```
    pub fn from_files(
        files: &BTreeMap<String, String>,
        top: &str,
    ) -> Result<EffectivePolicy, CompileError> {
        let mem: BTreeMap<PathBuf, String> = files
            .iter()
            .map(|(k, v)| (normalize(Path::new(k)), v.clone()))
            .collect();
        let mut loader = Loader {
            memory: Some(mem),
            ..Loader::default()
        };
        let file = loader.pack_file(Path::new(top));
        let (name, rules) = loader.resolve(&file)?;
        finish(name, loader.order, rules, &file, loader.max_states)
    }

    /// Parse a pack from a string; `extends` paths are relative to the current directory.
    pub fn from_str(yaml: &str, name: &str) -> Result<EffectivePolicy, CompileError> {
        let mut loader = Loader::default();
        let path = PathBuf::from(name);
        let pf = parse_pack(yaml, &path)?;
        let (n, rules) = loader.resolve_parsed(pf, Path::new("."))?;
        finish(n, loader.order, rules, &path, loader.max_states)
    }

    /// The enabled rules.
    pub fn enabled(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter().filter(|r| r.enabled)
    }

    /// The load warnings of the enabled rules, one line each, naming the rule and where it
    /// is defined: `rule `ID` (FILE:LINE): WARNING`.
    pub fn warnings(&self) -> Vec<String> {
        self.enabled()
            .flat_map(|r| {
                let at = format!(
                    "{}{}",
                    r.source.display(),
                    r.line.map(|l| format!(":{l}")).unwrap_or_default()
                );
                r.warnings
                    .iter()
                    .map(move |w| format!("rule `{}` ({at}): {w}", r.id))
            })
            .collect()
    }
}

pub(super) fn finish(
    name: String,
    files: Vec<PathBuf>,
    rules: Vec<Rule>,
    top: &Path,
    max_states: Option<usize>,
) -> Result<EffectivePolicy, CompileError> {
    if !rules.iter().any(|r| r.enabled) {
        return Err(CompileError::new(
            ErrorKind::EmptyPack,
            "the pack has no enabled rules (after extends and disable)",
        )
        .in_file(top));
    }
    Ok(EffectivePolicy {
        name,
        files,
        rules,
        max_states,
    })
}

#[derive(Default)]
pub(super) struct Loader {
    /// The first `max-states:` met, the top pack's before its bases'.
    max_states: Option<usize>,
    stack: Vec<PathBuf>,
    done: HashMap<PathBuf, (String, Vec<Rule>)>,
    order: Vec<PathBuf>,
    /// Pack files by normalized name, when loading from memory instead of the disk.
    memory: Option<BTreeMap<PathBuf, String>>,
}

impl Loader {
    /// A pack file or a folder with `pack.yaml`, on disk or in the memory map.
    pub(super) fn pack_file(&self, path: &Path) -> PathBuf {
        match &self.memory {
            None => pack_file(path),
            Some(files) => {
                let p = normalize(path);
                if files.contains_key(&p) {
                    p
                } else {
                    p.join("pack.yaml")
                }
            }
        }
    }

    /// The file's identity: its canonical path on disk, its normalized name in memory.
    pub(super) fn canonical(&self, file: &Path) -> Result<PathBuf, CompileError> {
        match &self.memory {
            None => file.canonicalize().map_err(|e| {
                CompileError::new(ErrorKind::Io, format!("cannot read pack: {e}")).in_file(file)
            }),
            Some(files) => {
                let p = normalize(file);
                if files.contains_key(&p) {
                    Ok(p)
                } else {
                    let names: Vec<String> =
                        files.keys().map(|k| k.display().to_string()).collect();
                    Err(CompileError::new(
                        ErrorKind::Io,
                        format!(
                            "cannot read pack: no file `{}` among the given files ({})",
                            p.display(),
                            if names.is_empty() {
                                "none".to_string()
                            } else {
                                names.join(", ")
                            }
                        ),
                    )
                    .in_file(file))
                }
            }
        }
    }

    pub(super) fn read(&self, canon: &Path, file: &Path) -> Result<String, CompileError> {
        match &self.memory {
            None => std::fs::read_to_string(canon).map_err(|e| {
                CompileError::new(ErrorKind::Io, format!("cannot read pack: {e}")).in_file(file)
            }),
            Some(files) => Ok(files.get(canon).cloned().unwrap_or_default()),
        }
    }

    pub(super) fn resolve(&mut self, file: &Path) -> Result<(String, Vec<Rule>), CompileError> {
        let canon = self.canonical(file)?;
        if let Some(i) = self.stack.iter().position(|p| *p == canon) {
            let cycle: Vec<String> = self.stack[i..]
                .iter()
                .chain(std::iter::once(&canon))
                .map(|p| p.display().to_string())
                .collect();
            return Err(CompileError::new(
                ErrorKind::Cycle,
                format!("`extends` cycle: {}", cycle.join(" → ")),
            )
            .in_file(file));
        }
        if let Some(done) = self.done.get(&canon) {
            return Ok(done.clone());
        }
        let text = self.read(&canon, file)?;
        let pf = parse_pack(&text, file)?;
        self.stack.push(canon.clone());
        let dir = canon.parent().unwrap_or(Path::new(".")).to_path_buf();
        let res = self.resolve_parsed(pf, &dir);
        self.stack.pop();
        let res = res?;
        self.done.insert(canon, res.clone());
        Ok(res)
    }

    pub(super) fn resolve_parsed(
        &mut self,
        pf: PackFile,
        dir: &Path,
    ) -> Result<(String, Vec<Rule>), CompileError> {
        if self.max_states.is_none() {
            self.max_states = pf.max_states;
        }
        let mut rules: Vec<Rule> = Vec::new();
        let mut seen_files: HashSet<PathBuf> = HashSet::new();
        for ext in &pf.extends {
            let target = self.pack_file(&dir.join(ext));
            let key = self.canonical(&target).unwrap_or(target.clone());
            if !seen_files.insert(key) {
                continue;
            }
            let (_, ext_rules) = self.resolve(&target).map_err(|e| e.in_file(&pf.path))?;
            for r in ext_rules {
                if let Some(prev) = rules.iter().find(|x| x.id == r.id) {
                    if prev.source == r.source {
                        continue; // the same rule reached twice (diamond)
                    }
                    return Err(duplicate(&r.id, &prev.source, &r.source));
                }
                rules.push(r);
            }
        }
        let path_s = pf.path.display().to_string();
        for id in &pf.disable {
            match rules
                .iter_mut()
                .chain(std::iter::empty())
                .find(|r| r.id == *id)
            {
                Some(r) => {
                    r.enabled = false;
                    r.history.push(format!("disabled by {path_s}"));
                }
                None => {
                    if pf.rules.iter().any(|r| r.id == *id) {
                        continue;
                    }
                    return Err(unknown_rule(id, "disable", &pf.path, &rules));
                }
            }
        }
        for (id, sev) in &pf.severity {
            match rules.iter_mut().find(|r| r.id == *id) {
                Some(r) => {
                    r.history
                        .push(format!("severity {} → {} by {path_s}", r.severity, sev));
                    r.severity = *sev;
                }
                None => {
                    if pf.rules.iter().any(|r| r.id == *id) {
                        continue;
                    }
                    return Err(unknown_rule(id, "severity", &pf.path, &rules));
                }
            }
        }
        for mut r in pf.rules {
            if let Some(prev) = rules.iter().find(|x| x.id == r.id) {
                return Err(duplicate(&r.id, &prev.source, &r.source));
            }
            if pf.disable.contains(&r.id) {
                r.enabled = false;
                r.history.push(format!("disabled by {path_s}"));
            }
            if let Some((_, sev)) = pf.severity.iter().find(|(id, _)| *id == r.id) {
                r.history
                    .push(format!("severity {} → {} by {path_s}", r.severity, sev));
                r.severity = *sev;
            }
            rules.push(r);
        }
        if !self.order.contains(&pf.path) {
            self.order.push(pf.path.clone());
        }
        Ok((pf.name, rules))
    }
}

pub(super) fn duplicate(id: &str, a: &Path, b: &Path) -> CompileError {
    CompileError::new(
        ErrorKind::DuplicateId,
        format!(
            "duplicate rule id `{id}`: defined in {} and in {}",
            a.display(),
            b.display()
        ),
    )
    .in_file(b)
    .for_rule(id)
}

pub(super) fn unknown_rule(id: &str, what: &str, file: &Path, rules: &[Rule]) -> CompileError {
    let ids: Vec<&str> = rules.iter().map(|r| r.id.as_str()).collect();
    let hint = suggest(id, &ids)
        .map(|s| format!(" (did you mean `{s}`?)"))
        .unwrap_or_default();
    CompileError::new(
        ErrorKind::UnknownRule,
        format!("`{what}` names unknown rule `{id}`{hint}"),
    )
    .in_file(file)
}

impl EffectivePolicy {
    /// Load several packs and combine them in order, as if one pack extended all of them.
    /// A rule id defined by two different files is an error naming both.
    pub fn load_all(paths: &[impl AsRef<Path>]) -> Result<EffectivePolicy, CompileError> {
        if paths.len() == 1 {
            return Self::load(paths[0].as_ref());
        }
        let mut loader = Loader::default();
        let mut rules: Vec<Rule> = Vec::new();
        let mut names = Vec::new();
        for p in paths {
            let file = pack_file(p.as_ref());
            let (name, rs) = loader.resolve(&file)?;
            names.push(name);
            for r in rs {
                if let Some(prev) = rules.iter().find(|x| x.id == r.id) {
                    if prev.source == r.source {
                        continue;
                    }
                    return Err(duplicate(&r.id, &prev.source, &r.source));
                }
                rules.push(r);
            }
        }
        let top = paths
            .last()
            .map(|p| pack_file(p.as_ref()))
            .unwrap_or_default();
        finish(
            names.join("+"),
            loader.order,
            rules,
            &top,
            loader.max_states,
        )
    }
}
