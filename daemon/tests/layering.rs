//! The daemon's data flows one way (ARCHITECTURE.md): its top-level modules import each
//! other without a cycle, and each imports only modules of lower layers than its own. The
//! imports are read from the sources (`crate::` and `super::` paths outside test modules),
//! so a new backward import fails this test with the files that make it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, lowest first. A module imports only modules of lower layers; modules of one
/// layer do not import each other.
const LAYERS: &[&[&str]] = &[
    // Leaves: what everything may use.
    &[
        "domain", "clock", "logging", "metrics", "process", "settings", "leases",
    ],
    &["events", "outbound", "auth"],
    &["store"],
    &["idempotency"],
    // The engines the use cases drive.
    &["plugins", "server"],
    // The plugin kit: a plugin host of its own, for `paygated plugin test | record`.
    &["merchants", "plugin_kit"],
    &["monitor"],
    // The use cases, then what runs above them.
    &["payments"],
    &[
        "notices",
        "janitor",
        "webhooks",
        "archiving",
        "control",
        "reconciliation",
    ],
    // The file that configures them all, the composition root, the API, the process.
    &["config"],
    &["app"],
    &["api"],
    &["serve", "fuzzing"],
    &["cli"],
    // Test support (compiled for unit tests only).
    &["testkit"],
];

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`None` for the crate root files).
fn module_of(file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src_dir()).unwrap();
    let first = relative
        .components()
        .next()?
        .as_os_str()
        .to_str()?
        .to_owned();
    match first.strip_suffix(".rs") {
        Some("lib" | "main") => None,
        Some(name) => Some(name.to_owned()),
        None => Some(first),
    }
}

/// The source without comments and without its `#[cfg(test)]` modules.
fn code_of(text: &str) -> String {
    let mut code = String::new();
    let mut skip_depth: Option<i32> = None;
    let mut depth = 0i32;
    let mut pending_test = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("//") {
            continue;
        }
        if trimmed.starts_with("#[cfg(test)]") {
            pending_test = true;
            continue;
        }
        let opens = line.matches('{').count() as i32;
        let closes = line.matches('}').count() as i32;
        if pending_test && skip_depth.is_none() {
            pending_test = false;
            if trimmed.starts_with("mod ") && opens > 0 {
                skip_depth = Some(depth);
                depth += opens - closes;
                continue;
            }
        }
        depth += opens - closes;
        if let Some(at) = skip_depth {
            if depth <= at {
                skip_depth = None;
            }
            continue;
        }
        code.push_str(line);
        code.push('\n');
    }
    code
}

fn ident_at(text: &str) -> String {
    text.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// The top-level modules `code` names through `crate::` paths (grouped imports included).
fn crate_imports(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a::x, b}`: every name at the group's first level.
            let mut depth = 0;
            let mut start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if start && !c.is_whitespace() => {
                        start = false;
                        found.insert(ident_at(&group[i..]));
                    }
                    _ => {}
                }
            }
        } else {
            found.insert(ident_at(rest));
        }
    }
    found.retain(|m| !m.is_empty());
    found
}

/// Module -> (imported module -> files that import it).
fn import_graph() -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let mut files = Vec::new();
    rust_files(&src_dir(), &mut files);
    let mut graph: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for file in files {
        let Some(module) = module_of(&file) else {
            continue;
        };
        let code = code_of(&std::fs::read_to_string(&file).unwrap());
        let mut imports = crate_imports(&code);
        // `super::x` in a top-level file (`src/foo.rs`) names the crate root's `x`.
        if file.parent() == Some(src_dir().as_path()) {
            for (at, _) in code.match_indices("super::") {
                imports.insert(ident_at(&code[at + "super::".len()..]));
            }
        }
        let shown = file.strip_prefix(src_dir()).unwrap().display().to_string();
        let edges = graph.entry(module.clone()).or_default();
        for import in imports {
            if import != module && import != "self" {
                edges.entry(import).or_default().insert(shown.clone());
            }
        }
    }
    graph
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

#[test]
fn every_top_level_module_has_a_layer() {
    let graph = import_graph();
    let missing: Vec<&String> = graph.keys().filter(|m| layer_of(m).is_none()).collect();
    assert!(
        missing.is_empty(),
        "modules without a layer in tests/layering.rs: {missing:?}"
    );
}

#[test]
fn imports_go_only_to_lower_layers() {
    let graph = import_graph();
    let mut wrong = Vec::new();
    for (module, edges) in &graph {
        let Some(own) = layer_of(module) else {
            continue;
        };
        for (import, files) in edges {
            let Some(theirs) = layer_of(import) else {
                continue;
            };
            if theirs >= own {
                wrong.push(format!("{module} -> {import} (in {files:?})"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layering:\n{}",
        wrong.join("\n")
    );
}

/// Independent of the layer table: no set of modules imports each other in a circle.
#[test]
fn no_import_cycle_between_top_level_modules() {
    let graph = import_graph();
    // Tarjan's strongly connected components.
    struct Walk<'a> {
        graph: &'a BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        components: Vec<Vec<&'a str>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, node: &'a str) {
            let n = self.index.len();
            self.index.insert(node, n);
            self.low.insert(node, n);
            self.stack.push(node);
            self.on_stack.insert(node);
            if let Some(edges) = self.graph.get(node) {
                for next in edges.keys() {
                    let next = next.as_str();
                    if !self.index.contains_key(next) {
                        self.visit(next);
                        let low = self.low[node].min(self.low[next]);
                        self.low.insert(node, low);
                    } else if self.on_stack.contains(next) {
                        let low = self.low[node].min(self.index[next]);
                        self.low.insert(node, low);
                    }
                }
            }
            if self.low[node] == self.index[node] {
                let mut component = Vec::new();
                while let Some(top) = self.stack.pop() {
                    self.on_stack.remove(top);
                    component.push(top);
                    if top == node {
                        break;
                    }
                }
                self.components.push(component);
            }
        }
    }
    let mut walk = Walk {
        graph: &graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        components: Vec::new(),
    };
    for node in graph.keys() {
        if !walk.index.contains_key(node.as_str()) {
            walk.visit(node);
        }
    }
    let cycles: Vec<String> = walk
        .components
        .iter()
        .filter(|c| c.len() > 1)
        .map(|c| {
            let members: BTreeSet<&str> = c.iter().copied().collect();
            let edges: Vec<String> = members
                .iter()
                .flat_map(|m| {
                    graph[*m]
                        .iter()
                        .filter(|(to, _)| members.contains(to.as_str()))
                        .map(move |(to, files)| format!("  {m} -> {to}: {files:?}"))
                })
                .collect();
            format!("cycle {members:?}:\n{}", edges.join("\n"))
        })
        .collect();
    assert!(cycles.is_empty(), "{}", cycles.join("\n"));
}

/// The reader itself: a test module's imports do not count, grouped imports do.
#[test]
fn the_import_reader_sees_grouped_imports_and_skips_tests() {
    let code = code_of(
        "use crate::{a::X, b};\n// crate::commented\nfn f() { crate::c::g(); }\n#[cfg(test)]\nmod tests {\n    use crate::d;\n}\nuse crate::e;\n",
    );
    let imports = crate_imports(&code);
    assert_eq!(
        imports,
        ["a", "b", "c", "e"].iter().map(|s| s.to_string()).collect()
    );
}
