//! The shape of `src/`, checked: layers as folders that import only
//! downwards, modules without an import cycle, and files and functions
//! short enough to read. docs/design.md describes the layers.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::harness::examples;

/// The layers of `src/`, from the bottom up: each may import only itself
/// and those before it.
const LAYERS: [&str; 10] = [
    "base", "cli", "config", "model", "error", "ledger", "remote", "data", "pipeline", "commands",
];

/// No source file longer than this (lines), tests included.
const MAX_FILE: usize = 500;
/// No function longer than this (lines).
const MAX_FN: usize = 120;

fn src() -> PathBuf {
    examples().join("../src")
}

/// Every `.rs` file under `src/`, with its path relative to `src/`.
fn sources(src: &Path) -> Vec<(PathBuf, String)> {
    let mut found = Vec::new();
    let mut todo = vec![src.to_path_buf()];
    while let Some(path) = todo.pop() {
        if path.is_dir() {
            todo.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            found.push((path.strip_prefix(src).unwrap().to_path_buf(), text));
        }
    }
    found.sort();
    found
}

/// The module a file belongs to, as `layer::module` (`layer` for the
/// layer's own `mod.rs`), or `None` for `main.rs` and `lib.rs`.
fn module_of(rel: &Path) -> Option<String> {
    let parts: Vec<String> = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    match parts.as_slice() {
        [one] if one == "main" || one == "lib" => None,
        [layer] => Some(layer.clone()),
        [layer, m, ..] if m == "mod" => Some(layer.clone()),
        [layer, m, ..] => Some(format!("{layer}::{m}")),
        [] => None,
    }
}

/// The paths a file names through `crate::…` outside its tests, each as
/// its first two segments (`remote::site`); groups (`crate::remote::{host,
/// site}`) are opened.
fn imports(text: &str) -> BTreeSet<String> {
    let code = text.split("#[cfg(test)]").next().unwrap();
    let mut names = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        let path: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        let mut paths = vec![path.clone()];
        if let Some(group) = rest[path.len()..].strip_prefix('{') {
            let mut depth = 0;
            let end = group
                .char_indices()
                .find(|&(_, c)| {
                    depth += i32::from(c == '{') - i32::from(c == '}');
                    depth < 0
                })
                .map_or(group.len(), |(at, _)| at);
            paths = group[..end]
                .split(',')
                .map(|item| format!("{path}{}", item.trim()))
                .collect();
        }
        for path in paths {
            let segments: Vec<&str> = path
                .split("::")
                .map(|s| s.trim_matches(|c: char| !c.is_alphanumeric() && c != '_'))
                .filter(|s| !s.is_empty() && *s != "self")
                .collect();
            match segments.as_slice() {
                [] => {}
                [one] => {
                    names.insert(one.to_string());
                }
                [a, b, ..] => {
                    names.insert(format!("{a}::{b}"));
                }
            }
        }
    }
    names
}

/// Each module of `src/` and the modules it imports.
fn import_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (rel, text) in sources(src) {
        let Some(module) = module_of(&rel) else {
            continue;
        };
        let names = graph.entry(module.clone()).or_default();
        names.extend(imports(&text));
        names.remove(&module);
    }
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    for names in graph.values_mut() {
        *names = names
            .iter()
            .map(|n| {
                if modules.contains(n) {
                    n.clone()
                } else {
                    n.split("::").next().unwrap().to_string()
                }
            })
            .filter(|n| modules.contains(n))
            .collect();
    }
    graph
}

fn layer(module: &str) -> usize {
    let top = module.split("::").next().unwrap();
    LAYERS
        .iter()
        .position(|l| *l == top)
        .unwrap_or_else(|| panic!("`{module}` is in no layer: add its folder to LAYERS"))
}

/// A path of imports from `from` back to itself, if there is one.
fn cycle_through(graph: &BTreeMap<String, BTreeSet<String>>, from: &str) -> Option<Vec<String>> {
    let mut stack = vec![(from.to_string(), vec![from.to_string()])];
    let mut seen = BTreeSet::new();
    while let Some((at, path)) = stack.pop() {
        for next in graph.get(&at).into_iter().flatten() {
            if next == from {
                let mut cycle = path.clone();
                cycle.push(from.to_string());
                return Some(cycle);
            }
            if seen.insert(next.clone()) {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.push((next.clone(), longer));
            }
        }
    }
    None
}

/// Imports that go up a layer, as `from → to`.
fn upward(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let mut found = Vec::new();
    for (module, names) in graph {
        for name in names {
            if layer(name) > layer(module) {
                found.push(format!("{module} → {name}"));
            }
        }
    }
    found
}

#[test]
fn every_layer_imports_only_the_layers_below_it() {
    let graph = import_graph(&src());
    assert!(graph.len() > 40, "{:?}", graph.keys());
    assert!(
        graph["pipeline::deploy"].contains("remote::site"),
        "the graph is read: {:?}",
        graph["pipeline::deploy"]
    );
    let found = upward(&graph);
    assert!(
        found.is_empty(),
        "imports up a layer:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_modules_of_src_import_each_other_without_a_cycle() {
    let graph = import_graph(&src());
    let cycles: Vec<String> = graph
        .keys()
        .filter_map(|m| cycle_through(&graph, m))
        .map(|c| c.join(" → "))
        .collect();
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn an_upward_import_and_a_cycle_are_found_when_there_are_some() {
    let mut graph = BTreeMap::new();
    graph.insert(
        "base::a".to_string(),
        BTreeSet::from(["remote::b".to_string()]),
    );
    graph.insert(
        "remote::b".to_string(),
        BTreeSet::from(["data::c".to_string()]),
    );
    graph.insert(
        "data::c".to_string(),
        BTreeSet::from(["base::a".to_string()]),
    );
    graph.insert(
        "commands::d".to_string(),
        BTreeSet::from(["base::a".to_string()]),
    );
    assert_eq!(
        cycle_through(&graph, "base::a").unwrap(),
        ["base::a", "remote::b", "data::c", "base::a"]
    );
    assert_eq!(cycle_through(&graph, "commands::d"), None);
    assert_eq!(
        upward(&graph),
        ["base::a → remote::b", "remote::b → data::c"]
    );
    let text = "use crate::remote::{host, site};\nuse crate::error::Error;\n#[cfg(test)]\nuse crate::commands::x;";
    assert_eq!(
        imports(text).into_iter().collect::<Vec<_>>(),
        ["error::Error", "remote::host", "remote::site"]
    );
}

/// The functions of a file longer than `MAX_FN` lines, as `name (lines)`.
fn long_functions(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        let mut head = trimmed;
        for word in ["pub(crate) ", "pub(super) ", "pub ", "const ", "async "] {
            head = head.strip_prefix(word).unwrap_or(head);
        }
        let is_fn = head.starts_with("fn ");
        if !is_fn || trimmed.ends_with(';') {
            continue;
        }
        let close = format!("{}}}", " ".repeat(indent));
        let Some(len) = lines[i..].iter().position(|l| *l == close) else {
            continue;
        };
        if len + 1 > MAX_FN {
            let name: String = trimmed
                .split("fn ")
                .nth(1)
                .unwrap()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            found.push(format!("{name} ({} lines)", len + 1));
        }
    }
    found
}

#[test]
fn no_file_and_no_function_is_too_long_to_read() {
    let mut found = Vec::new();
    for (rel, text) in sources(&src()) {
        let lines = text.lines().count();
        if lines > MAX_FILE {
            found.push(format!("{}: {lines} lines", rel.display()));
        }
        for f in long_functions(&text) {
            found.push(format!("{}: fn {f}", rel.display()));
        }
    }
    assert!(found.is_empty(), "too long:\n{}", found.join("\n"));
}

#[test]
fn a_long_function_is_found_when_there_is_one() {
    let body = "    x();\n".repeat(MAX_FN);
    let plain = format!("fn big() {{\n{body}}}\n");
    let nested = format!("    pub(super) async fn big() {{\n{body}    }}\n");
    let short = format!("fn small() {{\n{}}}\n", "    x();\n".repeat(MAX_FN - 2));
    let expected = [format!("big ({} lines)", MAX_FN + 2)];
    assert_eq!(long_functions(&plain), expected);
    assert_eq!(long_functions(&nested), expected);
    assert_eq!(long_functions(&short), Vec::<String>::new());
}

/// The warnings given to the printer as text made on the spot, not as an
/// `error::Warning` (worded once and pinned by a snapshot).
fn loose_warnings(text: &str) -> Vec<String> {
    let squeezed: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    squeezed
        .match_indices(".warn(")
        .map(|(at, _)| squeezed[at + 6..].trim_start())
        .filter(|rest| {
            rest.starts_with('&') || rest.starts_with('"') || rest.starts_with("format!")
        })
        .map(|rest| {
            rest.split_inclusive(';')
                .next()
                .unwrap_or(rest)
                .chars()
                .take(60)
                .collect()
        })
        .collect()
}

#[test]
fn every_warning_is_worded_in_error_warning() {
    let found: Vec<String> = sources(&src())
        .iter()
        .flat_map(|(rel, text)| {
            loose_warnings(text)
                .into_iter()
                .map(move |w| format!("{}: warn({w}", rel.display()))
        })
        .collect();
    assert!(
        found.is_empty(),
        "make these `error::Warning`s:\n{}",
        found.join("\n")
    );
    let loose = "printer.warn(\n    &format!(\"could not {x}\"));\np.warn(Warning::Interrupted);";
    assert_eq!(loose_warnings(loose), ["&format!(\"could not {x}\"));"]);
}

/// The places in `text` (outside its tests) that format a value with
/// `Debug` (`{:?}`, `{e:?}`, `{:#?}`): a library's `Debug` text is no
/// message for a user.
fn debug_formats(text: &str) -> Vec<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or(text);
    code.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .filter(|l| l.contains(":?}") || l.contains(":#?}"))
        .map(|l| l.trim().to_string())
        .collect()
}

#[test]
fn no_message_shows_a_value_s_debug_text() {
    let mut found = Vec::new();
    for (rel, text) in sources(&src()) {
        if rel.starts_with("error/tests") {
            continue;
        }
        for line in debug_formats(&text) {
            found.push(format!("{}: {line}", rel.display()));
        }
    }
    assert!(
        found.is_empty(),
        "Debug formatting in messages:\n{}",
        found.join("\n")
    );
    // It finds one when there is one, and not in tests.
    let sample = "fn f(e: E) -> String {\n    format!(\"failed: {e:?}\")\n}\n#[cfg(test)]\nmod tests { fn t() { assert!(x, \"{y:?}\"); } }\n";
    assert_eq!(debug_formats(sample), ["format!(\"failed: {e:?}\")"]);
}
