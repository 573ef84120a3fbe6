use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module graph: top-level module of `src/` -> modules it names through `crate::`.
type Graph = BTreeMap<String, BTreeSet<String>>;

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

/// The top-level module a file of `src/` belongs to (`store` for
/// `src/store/commit.rs`), or `None` for the crate roots.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let first = file.strip_prefix(src).unwrap().components().next()?;
    let name = first.as_os_str().to_str()?.trim_end_matches(".rs");
    (!matches!(name, "lib" | "main")).then(|| name.to_owned())
}

/// Every `crate::<module>` named in `code`, comments and test modules excluded.
fn referenced_modules(code: &str) -> BTreeSet<String> {
    let code = code.split("#[cfg(test)]").next().unwrap_or_default();
    let code: String = code
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut found = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        // `use crate::{a, b::c}` names several.
        let rest = &code[i + "crate::".len()..];
        let names: Vec<&str> = match rest.strip_prefix('{') {
            Some(group) => group[..group.find('}').unwrap_or(group.len())]
                .split(',')
                .collect(),
            None => vec![rest],
        };
        for name in names {
            let ident: String = name
                .trim()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !ident.is_empty() {
                found.insert(ident);
            }
        }
    }
    found
}

fn graph_of(src: &Path) -> Graph {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut graph = Graph::new();
    for file in files {
        let Some(module) = module_of(src, &file) else {
            continue;
        };
        let code = std::fs::read_to_string(&file).unwrap();
        let edges = graph.entry(module.clone()).or_default();
        edges.extend(
            referenced_modules(&code)
                .into_iter()
                .filter(|m| *m != module),
        );
    }
    graph
}

/// One cycle, as `a -> b -> a`, if there is any.
fn find_cycle(graph: &Graph) -> Option<String> {
    fn visit(
        node: &str,
        graph: &Graph,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<String> {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut cycle = path[start..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle.join(" -> "));
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_modules_of_src_import_each_other_without_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = graph_of(&src);
    let edges: usize = graph.values().map(BTreeSet::len).sum();
    assert!(
        graph.len() >= 10 && edges >= 10,
        "the scan found too little: {graph:?}"
    );
    assert!(
        graph["routes"].contains("state"),
        "routes read the shared state: {graph:?}"
    );
    if let Some(cycle) = find_cycle(&graph) {
        panic!("import cycle between modules of src/: {cycle}\nfull graph: {graph:#?}");
    }
}

/// Every module `start` reaches through `crate::` imports, itself included.
fn reachable(graph: &Graph, start: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::from([start.to_owned()]);
    let mut todo = vec![start.to_owned()];
    while let Some(module) = todo.pop() {
        for next in graph.get(&module).into_iter().flatten() {
            if seen.insert(next.clone()) {
                todo.push(next.clone());
            }
        }
    }
    seen
}

#[test]
fn the_storage_core_depends_on_nothing_http() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = graph_of(&src);
    let reached = reachable(&graph, "store");
    for http in [
        "routes",
        "middleware",
        "state",
        "startup",
        "shutdown",
        "metrics",
        "cluster",
        "page",
        "telemetry",
        "traces",
    ] {
        assert!(!reached.contains(http), "store reaches {http}: {reached:?}");
    }
    for module in &reached {
        let mut files = Vec::new();
        let dir = src.join(module);
        if dir.is_dir() {
            rust_files(&dir, &mut files);
        } else {
            files.push(src.join(format!("{module}.rs")));
        }
        for file in files {
            let code = std::fs::read_to_string(&file).unwrap();
            let uses_actix = code
                .lines()
                .filter(|line| !line.trim_start().starts_with("//"))
                .any(|line| line.contains("actix_web::") || line.contains("use actix"));
            assert!(
                !uses_actix,
                "store reaches {} which uses actix",
                file.display()
            );
        }
    }
}

#[test]
fn the_cycle_check_finds_a_planted_cycle() {
    let mut graph = Graph::new();
    for (from, to) in [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")] {
        graph.entry(from.into()).or_default().insert(to.into());
    }
    assert_eq!(find_cycle(&graph).as_deref(), Some("a -> b -> c -> a"));
    graph.get_mut("c").unwrap().remove("a");
    assert_eq!(find_cycle(&graph), None);
}

#[test]
fn grouped_and_nested_imports_are_all_seen() {
    let code = "use crate::{a, b::C};\nuse crate::c::d;\n/// [`x`](crate::x)\nfn f() { crate::e::g(); }\n#[cfg(test)]\nuse crate::z;";
    let found: Vec<_> = referenced_modules(code).into_iter().collect();
    assert_eq!(found, ["a", "b", "c", "e"]);
}

/// The modules in the order the table of `src/lib.rs` lists them.
fn documented_order(src: &Path) -> Vec<String> {
    std::fs::read_to_string(src.join("lib.rs"))
        .unwrap()
        .lines()
        .filter_map(|line| line.strip_prefix("//! | "))
        .filter_map(|row| row.split(" |").next())
        .map(|cell| {
            cell.trim_matches(|c| matches!(c, '[' | ']' | '`'))
                .to_owned()
        })
        .filter(|name| name != "module" && !name.starts_with("---"))
        .collect()
}

/// Every import that points up the documented order, or at a module the
/// order does not list.
fn order_problems(order: &[String], graph: &Graph) -> Vec<String> {
    let place = |module: &str| order.iter().position(|m| m == module);
    let mut problems = Vec::new();
    for (module, uses) in graph {
        let Some(at) = place(module) else {
            problems.push(format!("{module} is not in the table of src/lib.rs"));
            continue;
        };
        for used in uses {
            if place(used).is_none_or(|below| below <= at) {
                problems.push(format!("{module} uses {used}, which is not below it"));
            }
        }
    }
    problems
}

#[test]
fn each_module_uses_only_modules_below_it_in_the_crate_table() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let order = documented_order(&src);
    assert!(order.len() >= 10, "the table lists too little: {order:?}");
    let problems = order_problems(&order, &graph_of(&src));
    assert!(
        problems.is_empty(),
        "src/lib.rs says dependencies point down its table:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_order_check_finds_an_import_pointing_up() {
    let order: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
    let mut graph = Graph::new();
    graph.entry("a".into()).or_default().insert("c".into());
    assert!(order_problems(&order, &graph).is_empty());
    graph.entry("c".into()).or_default().insert("b".into());
    assert_eq!(
        order_problems(&order, &graph),
        ["c uses b, which is not below it"]
    );
}
