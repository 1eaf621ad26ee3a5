//! The modules of `src/` depend one way: each may use only the modules
//! below it (see `docs/architecture.md`, "Layers"). This test reads the
//! sources and fails on a `crate::` path that climbs, or on a module it does
//! not know (a new module gets its place here and in the document).

use std::path::Path;

/// From the bottom up. A module may use itself and the modules before it.
const LAYERS: &[&str] = &[
    "format",
    "metrics",
    "store",
    "manifest",
    "error",
    "waiters",
    "mem",
    "read",
    "shared",
    "gc",
    "compactor",
    "l0",
    "wal",
    "db",
];

fn rank(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| *layer == module)
}

/// The production code of a file: its unit tests (a `#[cfg(test)] mod` at
/// the end) may use anything, and comments are not imports.
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let end = text.find("#[cfg(test)]\nmod ").unwrap_or(text.len());
    text[..end]
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim_start().starts_with("//"))
}

/// The top-level modules a line names through `crate::`; a root re-export
/// (`crate::Db`) counts as the top layer, since the root exports from it.
fn used_modules(line: &str) -> Vec<String> {
    line.match_indices("crate::")
        .filter(|(at, _)| !line[..*at].ends_with(|c: char| c.is_alphanumeric() || c == '_'))
        .map(|(at, prefix)| {
            let rest = &line[at + prefix.len()..];
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if name.starts_with(|c: char| c.is_uppercase()) {
                "db".to_owned()
            } else {
                name
            }
        })
        .collect()
}

fn rust_files(dir: &Path, found: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
}

#[test]
fn no_module_imports_a_module_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut climbs = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).expect("under src");
        let module = relative
            .components()
            .next()
            .and_then(|first| first.as_os_str().to_str())
            .map(|first| first.trim_end_matches(".rs").to_owned())
            .expect("module name");
        // The root and the hidden `internals` module re-export from every layer.
        if module == "lib" || module == "internals" {
            continue;
        }
        let Some(own) = rank(&module) else {
            climbs.push(format!(
                "{}: module `{module}` has no layer in tests/layers.rs",
                relative.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).expect("read source");
        for (number, line) in code_lines(&text) {
            for used in used_modules(line) {
                match rank(&used) {
                    Some(other) if other < own || used == module => {}
                    _ => climbs.push(format!(
                        "{}:{}: `{module}` uses `crate::{used}`",
                        relative.display(),
                        number + 1
                    )),
                }
            }
        }
    }
    assert!(climbs.is_empty(), "imports against the layers:\n{}", climbs.join("\n"));
}

#[test]
fn the_checker_sees_a_climbing_import() {
    assert_eq!(used_modules("use crate::db::options::DbOptions;"), ["db"]);
    assert_eq!(used_modules("let x = crate::DbOptions::default();"), ["db"]);
    assert_eq!(
        used_modules("use talus_actors::crate_name; use crate::store::{Op, Store};"),
        ["store"]
    );
    let text = "use crate::store::Op;\n// crate::db in a comment\n#[cfg(test)]\nfn helper() {}\n#[cfg(test)]\nmod tests {\nuse crate::db::Db;\n}\n";
    let lines: Vec<_> = code_lines(text).map(|(_, line)| line).collect();
    assert_eq!(lines, ["use crate::store::Op;", "#[cfg(test)]", "fn helper() {}"]);
}
