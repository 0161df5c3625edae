//! Structure checks the test command runs before the build: what the compiler does not catch.
//!
//! - wh-proxy's top-level modules form layers: the graph of `crate::<module>` references
//!   between them has no cycle (a submodule counts as its top-level module; comments and
//!   doc links are not references).
//! - `Cargo.lock` holds no crate we replaced for being unmaintained, and one version of each
//!   crate that must not be doubled (two tungstenites, two rustls).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Crates replaced for good; each with why.
const BANNED: &[(&str, &str)] = &[
    ("serde_yaml", "deprecated and unmaintained; the proxy parses YAML with serde-saphyr"),
    ("rustls-pemfile", "unmaintained (RUSTSEC-2025-0134); use rustls-pki-types' PemObject"),
];

/// Crates of which the tree may hold one version only.
const SINGLE: &[&str] = &["tungstenite", "rustls", "tokio-rustls", "hyper", "ring"];

/// Runs every check from the workspace root.
pub(crate) fn check(root: &Path) -> Result<(), String> {
    let graph = module_graph(&root.join("proxy/src"))?;
    if let Some(cycle) = find_cycle(&graph) {
        return Err(format!(
            "wh-proxy's modules form a cycle: {} (see proxy/src/lib.rs for the layers)",
            cycle.join(" → ")
        ));
    }
    let lock =
        std::fs::read_to_string(root.join("Cargo.lock")).map_err(|e| format!("Cargo.lock: {e}"))?;
    check_lock(&lock)
}

/// Package name → versions, from a `Cargo.lock`.
fn locked_versions(lock: &str) -> BTreeMap<&str, BTreeSet<&str>> {
    let mut versions: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut name = None;
    for line in lock.lines() {
        if let Some(n) = line.strip_prefix("name = ") {
            name = Some(n.trim_matches('"'));
        } else if let (Some(v), Some(n)) = (line.strip_prefix("version = "), name.take()) {
            versions.entry(n).or_default().insert(v.trim_matches('"'));
        }
    }
    versions
}

fn check_lock(lock: &str) -> Result<(), String> {
    let versions = locked_versions(lock);
    let mut problems = Vec::new();
    for (name, why) in BANNED {
        if versions.contains_key(name) {
            problems.push(format!("{name} is in Cargo.lock: {why}"));
        }
    }
    for name in SINGLE {
        if let Some(v) = versions.get(name).filter(|v| v.len() > 1) {
            let list: Vec<_> = v.iter().copied().collect();
            problems.push(format!("{name} is locked at {} versions: {}", v.len(), list.join(", ")));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// Top-level module → the top-level modules it refers to, for the crate rooted at `src`.
fn module_graph(src: &Path) -> Result<BTreeMap<String, BTreeSet<String>>, String> {
    let mut files = Vec::new();
    collect_rs(src, &mut files).map_err(|e| format!("{}: {e}", src.display()))?;
    let module_of = |path: &Path| -> Option<String> {
        let rel = path.strip_prefix(src).ok()?;
        let first = rel.components().next()?.as_os_str().to_str()?;
        let name = first.strip_suffix(".rs").unwrap_or(first);
        (!matches!(name, "lib" | "main")).then(|| name.to_owned())
    };
    let modules: BTreeSet<String> = files.iter().filter_map(|f| module_of(f)).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> =
        modules.iter().map(|m| (m.clone(), BTreeSet::new())).collect();
    for file in &files {
        let Some(module) = module_of(file) else { continue };
        let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
        for referenced in crate_references(&text) {
            if referenced != module && modules.contains(&referenced) {
                graph.entry(module.clone()).or_default().insert(referenced);
            }
        }
    }
    Ok(graph)
}

fn collect_rs(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_rs(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// The first segment of every `crate::…` path in `text` outside comments, `crate::{a, b::c}`
/// groups included.
fn crate_references(text: &str) -> BTreeSet<String> {
    let mut refs = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect()
    };
    for line in text.lines() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        // A trailing comment (`" //"`; a URL's `://` has no space before it).
        let code = code.split(" //").next().unwrap_or(code);
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            // `wh_http::crate::…` cannot occur; a preceding identifier character means another
            // word ending in "crate".
            let before = rest[..at].chars().next_back();
            rest = &rest[at + "crate::".len()..];
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            if let Some(group) = rest.strip_prefix('{') {
                let mut depth = 0usize;
                let mut start = true;
                for (i, c) in group.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => start = true,
                        c if start && !c.is_whitespace() => {
                            start = false;
                            let name = ident(&group[i..]);
                            if !name.is_empty() && name != "self" {
                                refs.insert(name);
                            }
                        }
                        _ => {}
                    }
                }
            } else {
                let name = ident(rest);
                if !name.is_empty() {
                    refs.insert(name);
                }
            }
        }
    }
    refs
}

/// One cycle of `graph` (its modules in order, the first repeated at the end), if any.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done,
    }
    fn visit<'g>(
        node: &'g str,
        graph: &'g BTreeMap<String, BTreeSet<String>>,
        marks: &mut BTreeMap<&'g str, Mark>,
        path: &mut Vec<&'g str>,
    ) -> Option<Vec<String>> {
        marks.insert(node, Mark::OnPath);
        path.push(node);
        for next in graph.get(node).into_iter().flatten() {
            match marks.get(next.as_str()).copied().unwrap_or(Mark::New) {
                Mark::OnPath => {
                    let from = path.iter().position(|n| *n == next.as_str()).unwrap_or(0);
                    let mut cycle: Vec<String> =
                        path[from..].iter().map(|s| s.to_string()).collect();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                Mark::New => {
                    if let Some(c) = visit(next, graph, marks, path) {
                        return Some(c);
                    }
                }
                Mark::Done => {}
            }
        }
        path.pop();
        marks.insert(node, Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for node in graph.keys() {
        if marks.get(node.as_str()).copied().unwrap_or(Mark::New) == Mark::New {
            if let Some(c) = visit(node, graph, &mut marks, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(&str, &str)]) -> BTreeMap<String, BTreeSet<String>> {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in edges {
            g.entry(a.to_string()).or_default().insert(b.to_string());
            g.entry(b.to_string()).or_default();
        }
        g
    }

    #[test]
    fn references_are_found_in_paths_and_groups_but_not_in_comments() {
        let text = "use crate::body::RespBody;\nuse crate::{table::Table, util};\n\
                    //! see [`crate::forward`]\n    /// [`crate::admin`]\n\
                    let x = crate::service::monotonic_ms(); // crate::health\n\
                    use crate::upstream::{self, Lease};\nuse wh_http::conn;\n";
        let refs: Vec<_> = crate_references(text).into_iter().collect();
        assert_eq!(refs, ["body", "service", "table", "upstream", "util"]);
    }

    #[test]
    fn cycles_are_found_and_layers_pass() {
        assert_eq!(find_cycle(&graph(&[("a", "b"), ("b", "c"), ("a", "c")])), None);
        let cycle = find_cycle(&graph(&[("a", "b"), ("b", "c"), ("c", "a"), ("d", "a")]));
        assert_eq!(cycle.unwrap(), ["a", "b", "c", "a"]);
    }

    #[test]
    fn the_lock_check_names_banned_and_doubled_crates() {
        let lock = "[[package]]\nname = \"serde_yaml\"\nversion = \"0.9.34\"\n\n\
                    [[package]]\nname = \"tungstenite\"\nversion = \"0.28.0\"\n\n\
                    [[package]]\nname = \"tungstenite\"\nversion = \"0.29.0\"\n";
        let err = check_lock(lock).unwrap_err();
        assert!(err.contains("serde_yaml is in Cargo.lock"), "{err}");
        assert!(err.contains("tungstenite is locked at 2 versions: 0.28.0, 0.29.0"), "{err}");
        assert!(check_lock("[[package]]\nname = \"tungstenite\"\nversion = \"0.29.0\"\n").is_ok());
    }

    #[test]
    fn this_workspace_passes() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        check(&root).unwrap();
    }
}
