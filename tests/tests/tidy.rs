//! Tidy checks over the workspace's own Rust sources: plain tests that read files, no build.
//!
//! - **Import cycles in `node/src` and `client/src`** (each crate on its own). Every file of a
//!   library is a module (`foo.rs` and `foo/mod.rs` are `foo`, `a/b.rs` is `a::b`, `lib.rs` is
//!   `crate`). Each `use` item (also `pub use`, `pub(crate) use`, grouped and multi-line forms,
//!   `use super::..`/`use self::..` and paths relative to a child module), and each path written
//!   out in code (`crate::a::f(..)`, `super::b::T`), adds an edge to the
//!   deepest module file along the imported path: items inside a file belong to that file's
//!   module. Self-edges are dropped. Test modules kept in their own files (`tests/` folders) and
//!   the other crate roots (`main.rs`, `bin/`) are left out; `use` items in inline modules
//!   (`mod tests { .. }`) count, resolved from there. The check counts the modules that sit in a
//!   cycle: members of a strongly connected component (Tarjan) with more than one module.
//! - **Function length.** Every `fn` item with a body (free functions, methods, nested fns; not
//!   closures) in the scanned sources, measured from the line with `fn` to the line of its closing
//!   brace. Braces are matched on the source with comments, string, raw string and char literals
//!   blanked out. The check counts functions longer than [`LONG_FUNCTION_LINES`].
//! - **Line width.** Lines longer than [`WIDE_LINE_COLS`] columns (chars, not bytes).
//! - **One test layout.** No unit-test file outside a `tests/` folder (`tests.rs`, `*_tests.rs`,
//!   `tests_*.rs`) and no `#[path]` that does not point into one (ARCHITECTURE.md, "Tests").
//! - **Planted bugs still apply.** Every `sim/mutants/*.patch` passes `git apply --check`.
//!
//! The scanned sources are every `.rs` file under [`SCANNED_DIRS`] (production and test code
//! alike; `vendor/` and `target/` skipped).
//!
//! **Ratchet.** Each count has a `MAX_*` constant holding today's number. A test fails when its
//! count goes above the constant (fix what you added: the message lists the offenders), and also
//! when it goes below (lower the constant to the new count, which the message gives), so the
//! numbers only ever go down.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Modules of [`CYCLE_CHECKED_CRATES`] allowed to sit in an import cycle.
const MAX_MODULES_IN_CYCLES: usize = 0;
/// The library crates whose `src` the import-cycle check reads, each on its own.
const CYCLE_CHECKED_CRATES: &[&str] = &["client", "node"];
/// Functions allowed to be longer than [`LONG_FUNCTION_LINES`].
const MAX_LONG_FUNCTIONS: usize = 76;
/// Lines allowed to be wider than [`WIDE_LINE_COLS`].
const MAX_WIDE_LINES: usize = 143;

const LONG_FUNCTION_LINES: usize = 70;
const WIDE_LINE_COLS: usize = 100;
/// How many offenders a failure lists.
const MAX_LISTED: usize = 30;

/// Directories (relative to the workspace root) whose `.rs` files the length and width checks
/// read; missing ones are skipped.
const SCANNED_DIRS: &[&str] = &[
    "core/src",
    "node/src",
    "client/src",
    "sim/src",
    "fuzz/src",
    "fuzz/fuzz_targets",
    "tests/src",
    "jepsen/src",
];

/// Module name (`a::b`; the crate root is `crate`) to the names of the modules it imports.
type Graph = BTreeMap<String, BTreeSet<String>>;

// ---------------------------------------------------------------------------------------------
// Files

fn workspace_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn read_source(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Every `.rs` file under `dir`, sorted, skipping `vendor/` and `target/`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()));
    let mut paths: Vec<PathBuf> = entries
        .map(|entry| {
            entry
                .unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()))
                .path()
        })
        .collect();
    paths.sort();
    for path in paths {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if path.is_dir() {
            if name != "vendor" && name != "target" {
                rust_files(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

/// The files the length and width checks read, as (path relative to the root, contents).
fn scanned_sources() -> Vec<(String, String)> {
    let root = workspace_root();
    let mut files = Vec::new();
    for dir in SCANNED_DIRS {
        let dir = root.join(dir);
        if dir.is_dir() {
            rust_files(&dir, &mut files);
        }
    }
    files
        .iter()
        .map(|path| (relative(&root, path), read_source(path)))
        .collect()
}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/")
}

// ---------------------------------------------------------------------------------------------
// Lexing: blank out comments and literals

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The chars of `src` with comments and string, raw string and char literals replaced by spaces
/// (newlines kept), so that braces, `fn`, `mod` and `use` are only ever seen in code. The result
/// has as many chars as `src`, line for line.
fn mask(src: &str) -> Vec<char> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = chars.clone();
    let mut i = 0;
    while i < chars.len() {
        match literal_end(&chars, i) {
            Some(end) => {
                for c in &mut out[i..end] {
                    if *c != '\n' {
                        *c = ' ';
                    }
                }
                i = end.max(i + 1);
            }
            None => i += 1,
        }
    }
    out
}

/// If a comment or a string or char literal starts at `i`, the index just past its end.
fn literal_end(s: &[char], i: usize) -> Option<usize> {
    let at = |k: usize| s.get(k).copied().unwrap_or('\0');
    let after_ident = i > 0 && is_ident(s[i - 1]);
    match at(i) {
        '/' if at(i + 1) == '/' => Some((i..s.len()).find(|&k| s[k] == '\n').unwrap_or(s.len())),
        '/' if at(i + 1) == '*' => Some(block_comment_end(s, i)),
        '"' => Some(string_end(s, i + 1)),
        '\'' => char_end(s, i),
        'r' | 'b' | 'c' if !after_ident => prefixed_literal_end(s, i),
        _ => None,
    }
}

/// End of a (nested) block comment opening at `i`.
fn block_comment_end(s: &[char], i: usize) -> usize {
    let mut depth = 0;
    let mut k = i;
    while k < s.len() {
        let pair = (s[k], s.get(k + 1).copied().unwrap_or('\0'));
        if pair == ('/', '*') {
            depth += 1;
            k += 2;
        } else if pair == ('*', '/') {
            depth -= 1;
            k += 2;
            if depth == 0 {
                return k;
            }
        } else {
            k += 1;
        }
    }
    s.len()
}

/// End of a string whose contents start at `k` (just past the opening quote).
fn string_end(s: &[char], mut k: usize) -> usize {
    while k < s.len() {
        match s[k] {
            '\\' => k += 2,
            '"' => return k + 1,
            _ => k += 1,
        }
    }
    s.len()
}

/// End of a char literal at `i`, or None when the quote starts a lifetime or label.
fn char_end(s: &[char], i: usize) -> Option<usize> {
    let at = |k: usize| s.get(k).copied().unwrap_or('\0');
    if at(i + 1) == '\\' {
        let close = (i + 3..s.len()).find(|&k| s[k] == '\'')?;
        Some(close + 1)
    } else if at(i + 1) != '\'' && at(i + 2) == '\'' {
        Some(i + 3)
    } else {
        None
    }
}

/// End of a literal with a prefix at `i`: `r"…"`, `r#"…"#`, `b"…"`, `br"…"`, `c"…"`, `b'…'`.
fn prefixed_literal_end(s: &[char], i: usize) -> Option<usize> {
    let at = |k: usize| s.get(k).copied().unwrap_or('\0');
    let mut k = i;
    if at(k) == 'b' || at(k) == 'c' {
        k += 1;
    }
    if at(k) == 'r' {
        return raw_string_end(s, k + 1);
    }
    match at(k) {
        '"' if k > i => Some(string_end(s, k + 1)),
        '\'' if k > i && s[i] == 'b' => char_end(s, k),
        _ => None,
    }
}

/// End of a raw string whose hashes (if any) start at `k`, just past the `r`.
fn raw_string_end(s: &[char], mut k: usize) -> Option<usize> {
    let hashes = s[k.min(s.len())..]
        .iter()
        .take_while(|&&c| c == '#')
        .count();
    k += hashes;
    if s.get(k) != Some(&'"') {
        return None;
    }
    k += 1;
    while k < s.len() {
        let closes = s[k] == '"' && (1..=hashes).all(|h| s.get(k + h) == Some(&'#'));
        if closes {
            return Some(k + 1 + hashes);
        }
        k += 1;
    }
    Some(s.len())
}

/// Whether the keyword or identifier `word` stands on its own at `i` in `code`.
fn word_at(code: &[char], i: usize, word: &str) -> bool {
    let len = word.chars().count();
    let matches = code.len() >= i + len && code[i..i + len].iter().copied().eq(word.chars());
    let before = i > 0 && is_ident(code[i - 1]);
    let after = code.get(i + len).is_some_and(|&c| is_ident(c));
    matches && !before && !after
}

/// The identifier after `k` (skipping whitespace), and the index just past it.
fn ident_after(code: &[char], k: usize) -> Option<(String, usize)> {
    let start = (k..code.len()).find(|&j| !code[j].is_whitespace())?;
    if !(code[start].is_alphabetic() || code[start] == '_') {
        return None;
    }
    let end = (start..code.len())
        .find(|&j| !is_ident(code[j]))
        .unwrap_or(code.len());
    Some((code[start..end].iter().collect(), end))
}

/// 1-based line of each char index.
fn line_numbers(code: &[char]) -> Vec<usize> {
    let mut line = 1;
    let mut lines = Vec::with_capacity(code.len());
    for &c in code {
        lines.push(line);
        if c == '\n' {
            line += 1;
        }
    }
    lines
}

// ---------------------------------------------------------------------------------------------
// Function length

#[derive(Debug, PartialEq)]
struct Function {
    name: String,
    /// 1-based line of the `fn` keyword.
    line: usize,
    /// Lines from the `fn` line to the closing brace's, both included.
    lines: usize,
}

/// Every `fn` with a body in `src`, nested ones included.
fn functions(src: &str) -> Vec<Function> {
    let code = mask(src);
    let line = line_numbers(&code);
    let mut found = Vec::new();
    for at in 0..code.len() {
        if !word_at(&code, at, "fn") {
            continue;
        }
        let Some((name, after)) = ident_after(&code, at + 2) else {
            continue;
        };
        let Some(open) = body_open(&code, after) else {
            continue;
        };
        let Some(close) = matching_close(&code, open) else {
            continue;
        };
        found.push(Function {
            name,
            line: line[at],
            lines: line[close] - line[at] + 1,
        });
    }
    found
}

/// The `{` opening the body of a function whose signature continues at `k`, or None for a
/// declaration without a body (`fn f();`).
fn body_open(code: &[char], k: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (j, &c) in code.iter().enumerate().skip(k) {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth = depth.saturating_sub(1),
            '{' if depth == 0 => return Some(j),
            ';' | '}' if depth == 0 => return None,
            _ => {}
        }
    }
    None
}

/// The `}` matching the `{` at `open`.
fn matching_close(code: &[char], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (j, &c) in code.iter().enumerate().skip(open) {
        if c == '{' {
            depth += 1;
        } else if c == '}' {
            depth -= 1;
            if depth == 0 {
                return Some(j);
            }
        }
    }
    None
}

/// `path:line name (N lines)` for the longest functions above the limit, longest first.
fn long_functions(sources: &[(String, String)]) -> Vec<(usize, String)> {
    let mut long = Vec::new();
    for (path, src) in sources {
        for f in functions(src)
            .into_iter()
            .filter(|f| f.lines > LONG_FUNCTION_LINES)
        {
            long.push((
                f.lines,
                format!("{path}:{} {} ({} lines)", f.line, f.name, f.lines),
            ));
        }
    }
    long.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    long
}

// ---------------------------------------------------------------------------------------------
// Line width

/// `path:line (N cols)` for every line wider than the limit.
fn wide_lines(sources: &[(String, String)]) -> Vec<String> {
    let mut wide = Vec::new();
    for (path, src) in sources {
        for (n, line) in src.lines().enumerate() {
            let cols = line.chars().count();
            if cols > WIDE_LINE_COLS {
                wide.push(format!("{path}:{} ({cols} cols)", n + 1));
            }
        }
    }
    wide
}

// ---------------------------------------------------------------------------------------------
// `use` items

/// Every `use` item of `src` as (path of the inline modules it sits in, its use tree text).
fn use_items(src: &str) -> Vec<(Vec<String>, String)> {
    let code = mask(src);
    let mut items = Vec::new();
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut pending_mod = None;
    let mut depth = 0;
    let mut i = 0;
    while i < code.len() {
        match code[i] {
            '{' => {
                depth += 1;
                if let Some(name) = pending_mod.take() {
                    inline.push((name, depth));
                }
            }
            '}' => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth -= 1;
            }
            _ if word_at(&code, i, "mod") => pending_mod = inline_mod_name(&code, i + 3),
            _ if word_at(&code, i, "use") => {
                let end = (i..code.len())
                    .find(|&k| code[k] == ';')
                    .unwrap_or(code.len());
                let names = inline.iter().map(|(name, _)| name.clone()).collect();
                items.push((names, code[i + 3..end].iter().collect()));
                i = end;
            }
            // A path written out in code (`crate::a::b::f(..)`, `super::x::Y`) imports as
            // surely as a `use` item does.
            _ if (word_at(&code, i, "crate") || word_at(&code, i, "super"))
                && !(i >= 2 && code[i - 2] == ':' && code[i - 1] == ':') =>
            {
                let end = inline_path_end(&code, i);
                if end > i + 5 {
                    let names = inline.iter().map(|(name, _)| name.clone()).collect();
                    items.push((names, code[i..end].iter().collect()));
                    i = end - 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    items
}

/// The end of a path `word(::ident)*` starting at `start` (a `crate` or `super` word): the index
/// after its last identifier, or `start` when no `::ident` follows.
fn inline_path_end(code: &[char], start: usize) -> usize {
    let mut k = start;
    while k < code.len() && is_ident(code[k]) {
        k += 1;
    }
    let mut end = start;
    while k + 2 < code.len() && code[k] == ':' && code[k + 1] == ':' && is_ident(code[k + 2]) {
        k += 2;
        while k < code.len() && is_ident(code[k]) {
            k += 1;
        }
        end = k;
    }
    end
}

/// The name of an inline module (`mod name {`) whose name follows `k`; None for `mod name;`.
fn inline_mod_name(code: &[char], k: usize) -> Option<String> {
    let (name, after) = ident_after(code, k)?;
    let next = (after..code.len()).find(|&j| !code[j].is_whitespace())?;
    (code[next] == '{').then_some(name)
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Sep,
    Open,
    Close,
    Comma,
    Star,
}

fn use_tokens(tree: &str) -> Vec<Token> {
    let chars: Vec<char> = tree.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let token = match c {
            ':' if chars.get(i + 1) == Some(&':') => {
                i += 1;
                Some(Token::Sep)
            }
            '{' => Some(Token::Open),
            '}' => Some(Token::Close),
            ',' => Some(Token::Comma),
            '*' => Some(Token::Star),
            _ if is_ident(c) => {
                let end = (i..chars.len())
                    .find(|&j| !is_ident(chars[j]))
                    .unwrap_or(chars.len());
                let name = chars[i..end].iter().collect();
                i = end - 1;
                Some(Token::Ident(name))
            }
            _ => None,
        };
        tokens.extend(token);
        i += 1;
    }
    tokens
}

/// Expands a use tree (`crate::a::{b, c::d as e, f::*}`) into the full paths it imports.
/// Renames are dropped, a glob imports its prefix, and `self` in a group means the group's path.
fn expand_use_tree(tree: &str) -> Vec<Vec<String>> {
    let mut parser = UseParser {
        tokens: use_tokens(tree),
        pos: 0,
        out: Vec::new(),
    };
    parser.tree(Vec::new());
    parser.out
}

struct UseParser {
    tokens: Vec<Token>,
    pos: usize,
    out: Vec<Vec<String>>,
}

impl UseParser {
    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        token
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    /// One use tree under `path`.
    fn tree(&mut self, mut path: Vec<String>) {
        loop {
            match self.next() {
                Some(Token::Ident(name)) if name == "self" && !path.is_empty() => {}
                Some(Token::Ident(name)) => path.push(name),
                Some(Token::Star) => break,
                Some(Token::Open) => return self.group(path),
                Some(Token::Sep) => continue,
                _ => {
                    self.pos -= 1;
                    break;
                }
            }
            match self.peek() {
                Some(Token::Sep) => self.pos += 1,
                Some(Token::Ident(word)) if word == "as" => {
                    self.pos += 2;
                    break;
                }
                _ => break,
            }
        }
        if !path.is_empty() {
            self.out.push(path);
        }
    }

    /// The trees of a `{...}` group whose `{` was just read, through its `}`.
    fn group(&mut self, path: Vec<String>) {
        while !matches!(self.peek(), Some(Token::Close) | None) {
            self.tree(path.clone());
            if self.peek() == Some(&Token::Comma) {
                self.pos += 1;
            }
        }
        self.pos += 1;
    }
}

// ---------------------------------------------------------------------------------------------
// Module graph

/// The module of a file under `node/src` (given relative to it), or None for another crate root.
fn module_of(rel: &str) -> Option<Vec<String>> {
    if rel == "main.rs" || rel.starts_with("bin/") {
        return None;
    }
    let stem = rel.strip_suffix(".rs")?;
    let mut path: Vec<String> = stem.split('/').map(str::to_string).collect();
    if path == ["lib"] || path.last().is_some_and(|last| last == "mod") {
        path.pop();
    }
    Some(path)
}

/// Test modules in their own files stay out of the graph.
fn is_excluded(rel: &str) -> bool {
    let parts: Vec<&str> = rel.split('/').collect();
    let file = parts.last().copied().unwrap_or_default();
    let in_tests_dir = parts[..parts.len() - 1].contains(&"tests");
    file == "tests.rs" || file.ends_with("_tests.rs") || in_tests_dir
}

/// The module a use path imports from, seen from module `here` (the file's module plus any
/// inline modules): the deepest module file along the path. None for other crates.
fn resolve(
    path: &[String],
    here: &[String],
    modules: &BTreeSet<Vec<String>>,
) -> Option<Vec<String>> {
    let first = path.first()?.as_str();
    let mut full = match first {
        "crate" => path[1..].to_vec(),
        "super" | "self" => relative_path(path, here)?,
        _ => {
            let mut child = here.to_vec();
            child.push(first.to_string());
            if !modules.contains(&child) {
                return None;
            }
            here.iter().chain(path).cloned().collect()
        }
    };
    while !modules.contains(&full) {
        full.pop()?;
    }
    Some(full)
}

/// A path starting with `super` or `self`, made absolute from module `here`.
fn relative_path(path: &[String], here: &[String]) -> Option<Vec<String>> {
    let mut base = here.to_vec();
    let mut rest = path;
    while let Some(first) = rest.first() {
        match first.as_str() {
            "super" => {
                base.pop()?;
            }
            "self" => {}
            _ => break,
        }
        rest = &rest[1..];
    }
    base.extend(rest.iter().cloned());
    Some(base)
}

fn module_name(path: &[String]) -> String {
    if path.is_empty() {
        "crate".to_string()
    } else {
        path.join("::")
    }
}

/// Adds the edges of one file (module `from`, contents `src`) to `graph`; targets outside
/// `nodes` (other crates, left-out modules) and self-edges are dropped.
fn add_edges(
    graph: &mut Graph,
    from: &[String],
    src: &str,
    modules: &BTreeSet<Vec<String>>,
    nodes: &BTreeSet<Vec<String>>,
) {
    let edges = graph.entry(module_name(from)).or_default();
    for (inline, tree) in use_items(src) {
        let here: Vec<String> = from.iter().chain(&inline).cloned().collect();
        for path in expand_use_tree(&tree) {
            let Some(to) = resolve(&path, &here, modules) else {
                continue;
            };
            if to != from && nodes.contains(&to) {
                edges.insert(module_name(&to));
            }
        }
    }
}

/// The import graph of a crate's sources, given as (path relative to its `src`, contents).
fn module_graph(files: &[(String, String)]) -> Graph {
    let mut modules = BTreeSet::new();
    let mut nodes = BTreeSet::new();
    for (rel, _) in files {
        let Some(module) = module_of(rel) else {
            continue;
        };
        if !is_excluded(rel) {
            nodes.insert(module.clone());
        }
        modules.insert(module);
    }
    let mut graph = Graph::new();
    for (rel, src) in files {
        match module_of(rel) {
            Some(module) if nodes.contains(&module) && !is_excluded(rel) => {
                add_edges(&mut graph, &module, src, &modules, &nodes)
            }
            _ => {}
        }
    }
    graph
}

/// The sources of one crate's library (`<krate>/src`), relative to that directory.
fn crate_sources(krate: &str) -> Vec<(String, String)> {
    let src = workspace_root().join(krate).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files
        .iter()
        .map(|path| (relative(&src, path), read_source(path)))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Strongly connected components (Tarjan)

struct Tarjan<'g> {
    graph: &'g Graph,
    next_index: usize,
    index: BTreeMap<&'g str, usize>,
    low: BTreeMap<&'g str, usize>,
    stack: Vec<&'g str>,
    on_stack: BTreeSet<&'g str>,
    sccs: Vec<Vec<String>>,
}

impl<'g> Tarjan<'g> {
    fn visit(&mut self, v: &'g str) {
        self.index.insert(v, self.next_index);
        self.low.insert(v, self.next_index);
        self.next_index += 1;
        self.stack.push(v);
        self.on_stack.insert(v);
        let graph = self.graph;
        for w in graph.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !self.index.contains_key(w) {
                self.visit(w);
                let low = self.low[v].min(self.low[w]);
                self.low.insert(v, low);
            } else if self.on_stack.contains(w) {
                let low = self.low[v].min(self.index[w]);
                self.low.insert(v, low);
            }
        }
        if self.low[v] == self.index[v] {
            self.pop_component(v);
        }
    }

    fn pop_component(&mut self, root: &str) {
        let mut scc = Vec::new();
        while let Some(w) = self.stack.pop() {
            self.on_stack.remove(w);
            scc.push(w.to_string());
            if w == root {
                break;
            }
        }
        scc.sort();
        self.sccs.push(scc);
    }
}

/// The components of more than one module (the import cycles), each sorted, in order of their
/// first member.
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    let mut tarjan = Tarjan {
        graph,
        next_index: 0,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        sccs: Vec::new(),
    };
    for v in graph.keys() {
        if !tarjan.index.contains_key(v.as_str()) {
            tarjan.visit(v);
        }
    }
    let mut cycles: Vec<Vec<String>> = tarjan.sccs.into_iter().filter(|s| s.len() > 1).collect();
    cycles.sort();
    cycles
}

/// Each cycle's members, and for each member its edges inside the cycle.
fn describe_cycles(graph: &Graph, cycles: &[Vec<String>]) -> String {
    let mut out = String::new();
    for scc in cycles {
        out += &format!("cycle of {} modules: {}\n", scc.len(), scc.join(", "));
        for member in scc {
            let inside: Vec<&str> = graph[member]
                .iter()
                .filter(|to| scc.contains(to))
                .map(String::as_str)
                .collect();
            out += &format!("    {member} -> {}\n", inside.join(", "));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The ratchet

/// Fails when `count` differs from the constant `name` = `max`: above, the offenders must go;
/// below, the constant must come down.
fn ratchet(what: &str, count: usize, name: &str, max: usize, report: &str) {
    assert!(
        count <= max,
        "{count} {what}, more than {name} = {max} allows; fix the new ones:\n{report}"
    );
    assert!(
        count >= max,
        "{count} {what}, fewer than {name} = {max}: good, now lower {name} to {count} in \
         tests/tests/tidy.rs so it stays down.\n{report}"
    );
}

fn listing(lines: impl IntoIterator<Item = String>, total: usize) -> String {
    let mut out: String = lines
        .into_iter()
        .take(MAX_LISTED)
        .map(|l| l + "\n")
        .collect();
    if total > MAX_LISTED {
        out += &format!("... and {} more\n", total - MAX_LISTED);
    }
    out
}

#[test]
fn import_cycles() {
    let mut count = 0;
    let mut report = String::new();
    for krate in CYCLE_CHECKED_CRATES {
        let graph = module_graph(&crate_sources(krate));
        let cycles = cycles(&graph);
        count += cycles.iter().map(Vec::len).sum::<usize>();
        if !cycles.is_empty() {
            report += &format!("{krate}/src:\n{}", describe_cycles(&graph, &cycles));
        }
    }
    let what = format!(
        "modules of {} in import cycles",
        CYCLE_CHECKED_CRATES.join(", ")
    );
    ratchet(
        &what,
        count,
        "MAX_MODULES_IN_CYCLES",
        MAX_MODULES_IN_CYCLES,
        &report,
    );
}

#[test]
fn function_length() {
    let long = long_functions(&scanned_sources());
    let report = listing(long.iter().map(|(_, l)| l.clone()), long.len());
    let what = format!("functions longer than {LONG_FUNCTION_LINES} lines");
    ratchet(
        &what,
        long.len(),
        "MAX_LONG_FUNCTIONS",
        MAX_LONG_FUNCTIONS,
        &report,
    );
}

#[test]
fn line_width() {
    let wide = wide_lines(&scanned_sources());
    let report = listing(wide.iter().cloned(), wide.len());
    let what = format!("lines wider than {WIDE_LINE_COLS} columns");
    ratchet(&what, wide.len(), "MAX_WIDE_LINES", MAX_WIDE_LINES, &report);
}

/// Where [`one_test_layout`] finds a unit-test file or `#[path]` outside the layout of
/// ARCHITECTURE.md ("Tests"): `tests.rs`, `*_tests.rs` and `tests_*.rs` files, and `#[path]`
/// attributes that do not point into the directory's `tests/` folder.
fn test_layout_offenders(sources: &[(String, String)]) -> Vec<String> {
    let mut out = Vec::new();
    for (rel, src) in sources {
        let file = rel.rsplit('/').next().unwrap_or_default();
        let stem = file.strip_suffix(".rs").unwrap_or(file);
        if stem == "tests" || stem.ends_with("_tests") || stem.starts_with("tests_") {
            out.push(format!("{rel}: a test file outside a tests/ folder"));
        }
        for (n, line) in src.lines().enumerate() {
            let line = line.trim();
            if let Some(rest) = line.strip_prefix("#[path = \"")
                && !rest.starts_with("tests/")
            {
                out.push(format!("{rel}:{}: {line}", n + 1));
            }
        }
    }
    out
}

#[test]
fn one_test_layout() {
    let offenders = test_layout_offenders(&scanned_sources());
    assert!(
        offenders.is_empty(),
        "unit tests go inline (`mod tests {{ .. }}`) or in the directory's tests/ folder \
         (ARCHITECTURE.md, \"Tests\"):\n{}",
        offenders.join("\n")
    );
}

#[test]
fn test_layout_offenders_are_found() {
    let file = |rel: &str, src: &str| (rel.to_string(), src.to_string());
    let bad = [
        file("core/src/log/tests.rs", ""),
        file("core/src/log/segment_tests.rs", ""),
        file("core/src/log/tests_epochs.rs", ""),
        file(
            "core/src/log/segment.rs",
            "#[cfg(test)]\n#[path = \"segment_t.rs\"]\nmod tests;",
        ),
    ];
    assert_eq!(test_layout_offenders(&bad).len(), 4);
    let good = [
        file("core/src/log/tests/mod.rs", "mod epochs;"),
        file("core/src/log/tests/epochs.rs", ""),
        file(
            "core/src/log/segment.rs",
            "#[cfg(test)]\n#[path = \"tests/segment.rs\"]\nmod tests;",
        ),
        file("core/src/log/index.rs", "#[cfg(test)]\nmod tests {\n}"),
    ];
    assert!(test_layout_offenders(&good).is_empty());
}

// ---------------------------------------------------------------------------------------------
// Tests of the parsers

fn paths(names: &[&str]) -> BTreeSet<Vec<String>> {
    let split = |n: &&str| {
        if n.is_empty() {
            Vec::new()
        } else {
            n.split("::").map(str::to_string).collect()
        }
    };
    names.iter().map(split).collect()
}

/// Edges out of module `from` in a crate made of `modules`, where `from`'s file is `src`.
fn edges_of(from: &str, src: &str, modules: &[&str]) -> Vec<String> {
    let modules = paths(modules);
    let from = paths(&[from]).into_iter().next().unwrap_or_default();
    let mut graph = Graph::new();
    add_edges(&mut graph, &from, src, &modules, &modules);
    graph
        .remove(&module_name(&from))
        .unwrap_or_default()
        .into_iter()
        .collect()
}

#[test]
fn grouped_multi_line_use_points_at_module_files() {
    let src = "pub(crate) use crate::{\n    a::{b, c},\n    d::{self, Item as Other},\n};\n";
    assert_eq!(
        edges_of("x", src, &["", "a", "a::b", "d", "x"]),
        ["a", "a::b", "d"]
    );
    assert_eq!(
        edges_of("x", src, &["", "a", "a::b", "a::c", "d", "x"]),
        ["a::b", "a::c", "d"]
    );
    let trailing = "use crate::{a::*, d::e::f,};";
    assert_eq!(edges_of("x", trailing, &["", "a", "d", "x"]), ["a", "d"]);
}

#[test]
fn use_super_self_and_child_paths_resolve_from_the_file() {
    let modules = ["", "a", "a::b", "a::c", "a::c::d", "e"];
    assert_eq!(
        edges_of("a::b", "pub use super::c::Item;", &modules),
        ["a::c"]
    );
    assert_eq!(edges_of("a::b", "use super::super::e::f;", &modules), ["e"]);
    assert_eq!(
        edges_of("a", "use c::d::Thing;\nuse self::b::X;", &modules),
        ["a::b", "a::c::d"]
    );
    assert_eq!(
        edges_of("a", "use std::fmt;\nuse strata_core::log;", &modules),
        [""; 0]
    );
    let inline = "mod tests {\n    use super::*;\n    use super::b;\n}\nuse crate::e;";
    assert_eq!(edges_of("a", inline, &modules), ["a::b", "e"]);
    let commented = "// use crate::e;\nconst S: &str = \"use crate::e;\";";
    assert_eq!(edges_of("a", commented, &modules), [""; 0]);
}

#[test]
fn paths_written_out_in_code_are_imports_too() {
    let modules = ["", "a", "a::b", "a::c", "a::c::d", "e"];
    let call = "fn f() { crate::e::g(1); }";
    assert_eq!(edges_of("a::b", call, &modules), ["e"]);
    let relative = "fn f() -> super::c::d::T { todo!() }";
    assert_eq!(edges_of("a::b", relative, &modules), ["a::c::d"]);
    let not_paths = "pub(crate) fn f() {}\npub(super) struct S;\nfn g() { x::crate_y(); }";
    assert_eq!(edges_of("a::b", not_paths, &modules), [""; 0]);
}

#[test]
fn module_files_and_exclusions() {
    let module = |rel: &str| module_of(rel).map(|p| module_name(&p));
    assert_eq!(module("lib.rs").as_deref(), Some("crate"));
    assert_eq!(module("foo.rs").as_deref(), Some("foo"));
    assert_eq!(module("foo/mod.rs").as_deref(), Some("foo"));
    assert_eq!(module("a/b.rs").as_deref(), Some("a::b"));
    assert_eq!(module("main.rs"), None);
    assert_eq!(module("bin/tool.rs"), None);
    assert!(is_excluded("partition_tests.rs") && is_excluded("group/tests.rs"));
    assert!(is_excluded("a/tests/helpers.rs"));
    assert!(!is_excluded("broker.rs") && !is_excluded("group/mod.rs"));
}

#[test]
fn brace_matching_skips_strings_chars_and_comments() {
    let src = r####"fn tricky<'a>(x: &'a str) -> [u8; 2] {
    let s = "}}} \" {";
    let r = r#"}"# ;
    let rr = r##"}"# }"##;
    let b = b"}";
    let c = '}';
    let d = '\'';
    let e = b'{';
    // }
    /* } /* nested } */ still comment } */
    'outer: loop { break 'outer; }
    [0; 2]
}
fn after() {}
"####;
    let found = functions(src);
    assert_eq!(
        found[0],
        Function {
            name: "tricky".into(),
            line: 1,
            lines: 13
        }
    );
    assert_eq!(
        found[1],
        Function {
            name: "after".into(),
            line: 14,
            lines: 1
        }
    );
    assert_eq!(found.len(), 2);
}

#[test]
fn functions_are_found_nested_and_bodiless_ones_skipped() {
    let src = "trait T {\n    fn declared(&self);\n    fn default(&self) {}\n}\n\
               fn outer(f: fn(u8) -> u8) {\n    fn inner() {\n    }\n    let c = |x| { x };\n}\n";
    let found: Vec<(String, usize, usize)> = functions(src)
        .into_iter()
        .map(|f| (f.name, f.line, f.lines))
        .collect();
    let expected = [("default", 3, 1), ("outer", 5, 5), ("inner", 6, 2)];
    let expected: Vec<(String, usize, usize)> = expected
        .iter()
        .map(|&(n, l, c)| (n.to_string(), l, c))
        .collect();
    assert_eq!(found, expected);
}

fn graph_of(edges: &[(&str, &str)]) -> Graph {
    let mut graph = Graph::new();
    for &(from, to) in edges {
        graph
            .entry(from.to_string())
            .or_default()
            .insert(to.to_string());
        graph.entry(to.to_string()).or_default();
    }
    graph
}

#[test]
fn three_module_cycle_is_found_and_a_chain_is_not() {
    let cyclic = graph_of(&[("a", "b"), ("b", "c"), ("c", "a"), ("d", "a"), ("c", "e")]);
    assert_eq!(cycles(&cyclic), [["a", "b", "c"]]);
    let report = describe_cycles(&cyclic, &cycles(&cyclic));
    assert!(
        report.contains("cycle of 3 modules: a, b, c\n    a -> b\n"),
        "{report}"
    );
    assert!(report.contains("    c -> a\n"), "{report}");
    let chain = graph_of(&[("a", "b"), ("b", "c"), ("a", "c"), ("d", "a")]);
    assert!(cycles(&chain).is_empty());
}

#[test]
fn wide_lines_count_chars_not_bytes() {
    let ascii = "x".repeat(WIDE_LINE_COLS + 1);
    let accented = "é".repeat(WIDE_LINE_COLS);
    let src = format!("{ascii}\n{accented}\nshort\n");
    assert_eq!(wide_lines(&[("f.rs".into(), src)]), ["f.rs:1 (101 cols)"]);
}

#[test]
fn this_file_stays_within_its_own_limits() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tidy.rs");
    let sources = [(
        "tests/tests/tidy.rs".to_string(),
        read_source(Path::new(path)),
    )];
    let long = long_functions(&sources);
    assert!(long.is_empty(), "{long:?}");
    let wide = wide_lines(&sources);
    assert!(wide.is_empty(), "{wide:?}");
}

/// Every planted bug of `sim/mutants/` still applies to the tree (`git apply --check`): a patch
/// that stopped applying hides the check it stands for. Re-cut with `sim/mutants/make.py`.
#[test]
fn planted_bugs_still_apply() {
    let root = workspace_root();
    let dir = root.join("sim/mutants");
    let mut patches: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| {
            e.unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
                .path()
        })
        .filter(|p| p.extension().is_some_and(|x| x == "patch"))
        .collect();
    patches.sort();
    assert!(
        !patches.is_empty(),
        "no planted bugs under {}",
        dir.display()
    );
    let stale: Vec<String> = patches
        .iter()
        .filter(|p| {
            let checked = std::process::Command::new("git")
                .arg("apply")
                .arg("--check")
                .arg(p)
                .current_dir(&root)
                .output()
                .unwrap_or_else(|e| panic!("running git apply --check: {e}"));
            !checked.status.success()
        })
        .map(|p| p.display().to_string())
        .collect();
    assert!(
        stale.is_empty(),
        "planted bugs that no longer apply (re-cut them): {stale:#?}"
    );
}
