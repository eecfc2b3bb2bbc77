//! The modules depend one way: server -> registry -> encoding -> metrics ->
//! (number, error). This test reads the sources and fails when a lower module
//! names a higher one (in a `use`, a path or a doc link alike).

use std::path::{Path, PathBuf};

/// Each layer, from the bottom, with the source paths it holds.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "number",
        &[
            "src/number.rs",
            "src/error.rs",
            "src/gzip.rs",
            "src/negotiate.rs",
        ],
    ),
    ("metrics", &["src/metrics"]),
    ("encoding", &["src/encoding"]),
    ("registry", &["src/registry.rs", "src/process.rs"]),
    ("server", &["src/server", "src/tiny.rs"]),
];

/// The paths by which code names each layer's modules.
fn names_of(layer: &str) -> &'static [&'static str] {
    match layer {
        "number" => &["crate::number"],
        "metrics" => &["crate::metrics"],
        "encoding" => &["crate::encoding"],
        "registry" => &["crate::registry", "crate::process", "crate::Registry"],
        "server" => &["crate::server", "crate::tiny", "crate::Exporter"],
        _ => unreachable!(),
    }
}

fn rust_files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            rust_files(&entry.unwrap().path(), out);
        }
    } else if path.extension().is_some_and(|e| e == "rs") {
        out.push(path.to_owned());
    }
}

/// The lines of `text` (a file of the layer at `level`) that name a higher layer.
fn upward(text: &str, level: usize) -> Vec<String> {
    let mut found = Vec::new();
    for (higher, _) in &LAYERS[level + 1..] {
        for name in names_of(higher) {
            for (n, line) in text.lines().enumerate() {
                let hit = line.match_indices(name).any(|(i, _)| {
                    // A whole path segment: `crate::metrics` is not `crate::metricsx`.
                    !line[i + name.len()..].starts_with(|c: char| c.is_alphanumeric() || c == '_')
                });
                if hit {
                    found.push(format!("{}: names {higher}: {}", n + 1, line.trim()));
                }
            }
        }
    }
    found
}

#[test]
fn no_module_names_one_above_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    let mut wrong = Vec::new();
    for (level, (layer, paths)) in LAYERS.iter().enumerate() {
        let mut files = Vec::new();
        for p in *paths {
            rust_files(&root.join(p), &mut files);
        }
        assert!(!files.is_empty(), "no sources for layer {layer}");
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            checked += 1;
            for line in upward(&text, level) {
                wrong.push(format!(
                    "{}:{line}",
                    file.strip_prefix(root).unwrap().display()
                ));
            }
        }
    }
    assert!(checked >= 15, "only {checked} files read");
    assert!(
        wrong.is_empty(),
        "imports that run upwards:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_check_sees_an_upward_import_and_nothing_else() {
    let metrics = 1;
    assert_eq!(upward("use crate::encoding::LabelNames;", metrics).len(), 1);
    assert_eq!(
        upward("/// See [`Registry`](crate::Registry).", metrics).len(),
        1
    );
    assert!(upward("use crate::number::MAX_EXACT;\nuse crate::Error;", metrics).is_empty());
    assert!(upward("use crate::encodingx::Thing;", metrics).is_empty());
}
