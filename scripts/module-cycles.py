#!/usr/bin/env python3
"""Find import circles between the modules (files) of each Chorus crate.

An import circle is a set of two or more files of one crate that, following
"file A refers to an item of module B" edges, can all reach one another.  Such
a knot means none of its files can be read, tested or moved on its own; CI runs
this script so that new circles are refused (exit status 1).

How to run (from the workspace root; python3 only, no cargo, no third-party
packages):

    python3 scripts/module-cycles.py                  # every crate under crates/
    python3 scripts/module-cycles.py --crate chorus-docs
    python3 scripts/module-cycles.py --graph          # also print the module graph
    python3 scripts/module-cycles.py --root DIR       # another checkout / snapshot
    python3 scripts/module-cycles.py --allow FILE     # accept the circles listed in FILE

Output: one line per crate, `NAME: N modules, no import circle`, or for each
circle `NAME: import circle of K modules: a, b, c` followed by the edges inside
the circle, each with one `file:line` where the reference was found.
With --graph, every crate's edges are printed first, layer by layer: a module
only depends on modules in lower layers, or on members of its own circle.
Exit status: 1 if any circle was found that the allow file does not list, 0
otherwise (2 on usage errors, or an unreadable or malformed allow file).

Allow file (--allow FILE; by default there is none, so every circle counts):
accepted circles, one per line, `crate-name: mod_a, mod_b, ...`, the module list
as the script prints it (order and spacing do not matter), `#` starts a comment.
A circle that matches a line exactly (same crate, same set of modules) is
printed with `(allowed)` and does not make the exit status 1; a circle that has
gained or lost a module no longer matches and fails again.  Lines that match no
circle of a checked crate are reported on stderr, so the file can be shrunk as
circles are broken.  It lets CI be switched on before every circle is fixed and
shows what is left.

What is a node
--------------
Every `.rs` file under `crates/<crate>/src/`, except test code: files named
`tests.rs`, anything under a `tests/` directory inside src, files declared by
`#[cfg(test)] mod x;`, and files carrying `#![cfg(test)]`.  The module path of
a file is `crate` for src/lib.rs and src/main.rs, `a` for src/a.rs or
src/a/mod.rs, `a::b` for src/a/b.rs, and so on.

What is an edge
---------------
File A -> module B when A's (non-test) code refers to an item of B:

  1. Private `use` declarations, brace trees expanded (`use crate::{a::X,
     b::{self, Y}}` refers to a::X, b and b::Y).  Paths may start with
     `crate::`, `self::`, `super::` (repeated as needed) or, as Rust 2018
     allows, with the name of a child module of A (`use wire::Wire;` in
     cluster.rs means cluster::wire).  Re-exports (`pub use`, `pub(crate) use`,
     `pub(super) use`, any `pub(..)`) are NOT edges by themselves; see below.
  2. Paths written inline anywhere in code (outside comments, strings and
     char literals) that start with `crate::`, `self::`, `super::`, or with
     the name of a child module declared in A (`load::run_actor(..)`).
     `$crate::` inside macros is not a crate path and is ignored.
  3. A name that A re-exports (`pub use b::Name;`) and that A's own code also
     mentions bare (`Name::new()`, `-> Name`, `name(..)`): A -> b, at the first
     mention.  Mentions as `.name`, `x::name`, `mod name`, `fn name`, `let
     name`, `name: ..` do not count.

  `self`/`super` are relative to A's module: in a.rs or a/mod.rs `self` is `a`;
  from a::b, `super` is `a`.  Paths naming another crate (`chorus_core::...`,
  `std::...`, a leading `::`) are ignored.  `mod x;` declarations are NOT
  edges, and an edge from a module to itself is dropped.

  Test code is skipped: an item preceded by `#[cfg(test)]` (an inline
  `mod tests { .. }` block, a test-only fn or `use`) is cut out before
  scanning, by counting braces in the text with comments and literals
  blanked.

Resolving a path to a module: take the longest prefix of the path that is a
known module of the crate.  If the next segment is a name that module imports
(`pub use x::Name;`, `pub use x::{Name, Other as Alias}`, `pub(crate) use ..`,
or a plain private `use`, which its child modules can reach through
`super::Name`), follow that import to the module that defines the name,
repeating a few times.  A glob import (`pub use x::*`) is followed to x when
the module does not define the name itself.  So `use crate::Documents`, where
lib.rs says `pub use registry::{Documents, ..}`, is an edge to `registry`, not
to `crate`.  A name that leads to another crate gives no edge.

Why a re-export is not an edge
------------------------------
A crate root or mod.rs that only re-exports its children is a facade; a parent
that uses its children's items while they use its own is a circle.  `pub use
registry::Documents;` in lib.rs only gives `Documents` a public address: lib.rs
needs nothing from registry for that, and registry may freely `use
crate::DocError` (resolved through the same facade to the module defining it).
Counting such lines would make every child that names a sibling through the
crate root "circular" with the root.  So a re-export line gives no edge from
the module that writes it, but it is still followed when resolving other
modules' paths through it (see below), and once the re-exporting module's own
code uses the name (rule 3 above) it is a use like any other.

Why parent/child references count
---------------------------------
A child module that writes `use super::Thing` (or `super::helper()`) needs its
parent, exactly as it would need any sibling: it cannot be compiled, tested or
moved without it.  When the parent also uses the child (other than by `mod
child;`), the two form a circle like any other, just a short one.  Rust does
not forbid this, but it is the same tangle this check is meant to keep from
growing, so it is reported; move the shared item into its own module (or
into the child) to break it.

Limitations (it is a text scan, not a compiler): macro-generated paths,
names brought in through a `use` alias of a module (`use crate::a as x;
x::f()` counts only the `use` line, which already gives the edge) and
shadowing by inner items are not understood; `#[path]` attributes are not
supported.  Rule 3 is a word search: a bare mention through a local variable
or item of the same name counts, and names brought in by a glob re-export
(`pub use x::*`) are not searched for.
"""

import argparse
import bisect
import os
import re
import sys
from collections import defaultdict

# How many times an import (re-export) is followed before giving up.
MAX_FOLLOW = 6


# --------------------------------------------------------------------------
# Lexing: blank comments and literals so that later regexes only see code.
# --------------------------------------------------------------------------

def blank_non_code(text):
    """Return `text` with comments, string and char literals replaced by spaces.

    Newlines are kept, so offsets and line numbers stay valid.  Handles `//`
    and nested `/* */` comments, "..." strings with escapes (b"", c"" too),
    raw strings r#"..."# (br, cr), and char literals 'x', '\\n', '\\u{..}'
    (b'x' too), telling them apart from lifetimes like 'a.
    """
    out = list(text)
    n = len(text)
    i = 0

    def blank(a, b):
        for k in range(a, b):
            if out[k] != "\n":
                out[k] = " "

    def is_ident(ch):
        return ch.isalnum() or ch == "_"

    while i < n:
        c = text[i]
        nxt = text[i + 1] if i + 1 < n else ""
        if c == "/" and nxt == "/":                      # line comment
            j = text.find("\n", i)
            j = n if j < 0 else j
            blank(i, j)
            i = j
        elif c == "/" and nxt == "*":                    # block comment, nests
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            blank(i, j)
            i = j
        elif c == "r" and (i == 0 or not is_ident(text[i - 1]) or
                           (text[i - 1] in "bc" and (i < 2 or not is_ident(text[i - 2])))) \
                and re.match(r'r#*"', text[i:i + 260]):
            # raw string r"..", r#".."#, br#"..", cr".."; not a raw ident r#foo
            hashes = re.match(r'r(#*)"', text[i:]).group(1)
            end = text.find('"' + hashes, i + 2 + len(hashes))
            end = n if end < 0 else end + 1 + len(hashes)
            blank(i + 1, end)
            i = end
        elif c == '"':                                   # ordinary string
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            blank(i + 1, min(j, n))
            i = j + 1
        elif c == "'":                                   # char literal or lifetime
            if nxt == "\\":                             # '\n', '\'', '\u{..}'
                j = i + 3
                while j < n and text[j] != "'" and text[j] != "\n":
                    j += 1
                blank(i + 1, j)
                i = j + 1
            elif i + 2 < n and text[i + 2] == "'" and nxt != "\n":
                blank(i + 1, i + 2)
                i += 3
            else:                                        # 'a lifetime / 'label
                i += 1
        else:
            i += 1
    return "".join(out)


def blank_range(code, a, b):
    """Replace code[a:b] by spaces, keeping newlines."""
    return code[:a] + re.sub(r"[^\n]", " ", code[a:b]) + code[b:]


def matching_close(code, i, open_ch, close_ch):
    """Index just past the bracket matching code[i] (== open_ch)."""
    depth = 0
    for j in range(i, len(code)):
        if code[j] == open_ch:
            depth += 1
        elif code[j] == close_ch:
            depth -= 1
            if depth == 0:
                return j + 1
    return len(code)


CFG_TEST = re.compile(r"#\s*\[\s*cfg\s*\(\s*test\s*\)\s*\]")


def strip_test_items(code):
    """Cut out every item that follows a `#[cfg(test)]` attribute.

    Returns (code, test_only_file_modules): the names of `#[cfg(test)] mod x;`
    declarations, whose files are test code too.  The item's end is found
    roughly: the first `;` or `,` at bracket depth 0, an unmatched `}`, or the
    closing brace of the first `{ .. }` block (a mod, fn, impl or struct body).
    """
    test_mods = set()
    while True:
        m = CFG_TEST.search(code)
        if not m:
            return code, test_mods
        j = m.end()
        # skip further attributes (#[allow(..)], doc attributes, ...)
        while True:
            while j < len(code) and code[j].isspace():
                j += 1
            if code.startswith("#", j) and code[j + 1:].lstrip().startswith("["):
                j = matching_close(code, code.index("[", j), "[", "]")
            else:
                break
        decl = re.match(r"(?:pub\s*(?:\([^)]*\))?\s*)?mod\s+(\w+)\s*;", code[j:])
        if decl:
            test_mods.add(decl.group(1))
        k, depth = j, 0
        while k < len(code):
            ch = code[k]
            if ch in "([":
                depth += 1
            elif ch in ")]":
                depth -= 1
            elif depth == 0 and ch in ";,":
                k += 1
                break
            elif ch == "}":                              # end of enclosing block
                break
            elif ch == "{":
                k = matching_close(code, k, "{", "}")
                break
            k += 1
        code = blank_range(code, m.start(), k)


# --------------------------------------------------------------------------
# `use` trees
# --------------------------------------------------------------------------

USE_START = re.compile(r"(?<![\w$])use\b(?!\s*<)")   # not `impl Trait + use<'a>`
# `pub` or `pub(..)` right before a `use`: the `use` is a re-export.
REEXPORT_VIS = re.compile(r"(?<![\w$])pub\s*(?:\([^)]*\)\s*)?$")
# A bare mention of a re-exported name in the re-exporting module's own code:
# not a field or method (`.name`), not the tail of a path (`x::name`), not the
# name of a declaration (`mod name;`, `fn name`, `let name`), not a field or
# binding followed by a single `:`.
REEXPORT_MENTION = (r"(?<![\w$.:'])(?<!::\s)"
                    r"(?<!\bmod\s)(?<!\bfn\s)(?<!\blet\s)(?<!\bmut\s)"
                    r"(?<!\bstruct\s)(?<!\benum\s)(?<!\btrait\s)(?<!\btype\s)"
                    r"(?<!\bconst\s)(?<!\bstatic\s)(?<!\bunion\s)"
                    r"%s\b(?!\s*:(?!:))")
USE_TOKEN = re.compile(r"\s*(::|[{},*;]|r#\w+|\w+)")


def parse_use_tree(text, pos):
    """Parse the tree of the `use` starting after `pos`, up to its `;`.

    Returns (leaves, end): leaves are (segments, bound_name, offset) where
    bound_name is the name the import introduces (alias, last segment, or
    '*' for a glob; None for `as _`), and end is the offset after `;`.
    """
    tokens = []
    p = pos
    while True:
        m = USE_TOKEN.match(text, p)
        if not m:
            break
        tokens.append((m.group(1), m.start(1)))
        p = m.end()
        if m.group(1) == ";":
            break
    leaves = []
    k = 0

    def tree(prefix):
        nonlocal k
        segs = list(prefix)
        if k < len(tokens) and tokens[k][0] == "::":       # `use ::extern_crate`
            segs.append("::")
            k += 1
        while k < len(tokens):
            tok, off = tokens[k]
            if tok == "{":
                k += 1
                while k < len(tokens) and tokens[k][0] != "}":
                    if tokens[k][0] == ",":
                        k += 1
                        continue
                    tree(segs)
                k += 1                                       # past '}'
                return
            if tok == "*":
                k += 1
                leaves.append((segs, "*", off))
                return
            if tok in (",", "}", ";"):
                return
            name = tok[2:] if tok.startswith("r#") else tok
            k += 1
            if name == "self" and prefix and len(segs) == len(prefix):
                bound = segs[-1]                             # `{self}` = prefix
            else:
                segs.append(name)
                bound = name
            if k < len(tokens) and tokens[k][0] == "::":
                k += 1
                continue
            if k < len(tokens) and tokens[k][0] == "as":
                bound = tokens[k + 1][0] if k + 1 < len(tokens) else None
                bound = None if bound == "_" else bound
                k += 2
            leaves.append((segs, bound, off))
            return

    tree([])
    return leaves, p


# --------------------------------------------------------------------------
# One crate
# --------------------------------------------------------------------------

class Crate:
    def __init__(self, root, crate_dir):
        self.root = root
        self.dir = crate_dir
        self.name = self._package_name()
        self.src = os.path.join(crate_dir, "src")
        self.files = {}        # module path (tuple) -> file path
        self.code = {}         # module path -> code with comments/literals/tests blanked
        self.lines = {}        # module path -> newline offsets, for line numbers
        self.imports = {}      # module path -> {bound name: absolute segments or None}
        self.globs = {}        # module path -> [absolute segments]
        self.edges = {}        # (from module, to module) -> "file:line" of one example
        self._load()
        self._collect_imports()
        self._collect_edges()

    def _package_name(self):
        try:
            with open(os.path.join(self.dir, "Cargo.toml"), encoding="utf-8") as f:
                in_package = False
                for line in f:
                    line = line.strip()
                    if line.startswith("["):
                        in_package = line == "[package]"
                    m = re.match(r'name\s*=\s*"([^"]+)"', line)
                    if in_package and m:
                        return m.group(1)
        except OSError:
            pass
        return os.path.basename(self.dir)

    # -- files and module paths ---------------------------------------------

    def _load(self):
        found = {}
        for dirpath, dirnames, filenames in os.walk(self.src):
            rel_dir = os.path.relpath(dirpath, self.src)
            parts = [] if rel_dir == "." else rel_dir.split(os.sep)
            if "tests" in parts:
                continue
            for fn in filenames:
                if not fn.endswith(".rs") or fn == "tests.rs":
                    continue
                stem = fn[:-3]
                if not parts and stem in ("lib", "main"):
                    module = ()
                elif stem == "mod":
                    module = tuple(parts)
                else:
                    module = tuple(parts) + (stem,)
                if module == () and () in found and stem == "main":
                    continue            # a crate with lib.rs and main.rs: keep lib
                found[module] = os.path.join(dirpath, fn)
        test_only = set()
        for module, path in found.items():
            with open(path, encoding="utf-8") as f:
                code = blank_non_code(f.read())
            if re.search(r"#\s*!\s*\[\s*cfg\s*\(\s*test\s*\)\s*\]", code):
                test_only.add(module)
                continue
            code, test_mods = strip_test_items(code)
            test_only.update(module + (name,) for name in test_mods)
            self.code[module] = code
            self.lines[module] = [i for i, ch in enumerate(code) if ch == "\n"]
        for module, path in found.items():
            if not any(module[:len(t)] == t for t in test_only):
                self.files[module] = path
        self.code = {m: c for m, c in self.code.items() if m in self.files}

    def display(self, module):
        return "::".join(module) if module else "crate"

    def where(self, module, offset):
        line = bisect.bisect_left(self.lines[module], offset) + 1
        return "%s:%d" % (os.path.relpath(self.files[module], self.root), line)

    # -- path resolution ----------------------------------------------------

    def absolute(self, module, segs):
        """Turn a path written in `module` into crate-absolute segments.

        Returns None when it does not point into this crate (another crate,
        std, a local item such as an enum, ...).
        """
        if not segs or segs[0] == "::":
            return None
        head = segs[0]
        if head == "crate":
            base, rest = (), segs[1:]
        elif head in ("self", "super"):
            base, rest = module, segs
            while rest and rest[0] in ("self", "super"):
                if rest[0] == "super":
                    if not base:
                        return None
                    base = base[:-1]
                rest = rest[1:]
        elif module + (head,) in self.files:            # child module (Rust 2018)
            base, rest = module, segs
        else:
            return None
        return list(base) + list(rest)

    def locate(self, segs, depth=0):
        """Module that defines the item named by absolute path `segs`, or None."""
        cur = ()
        i = 0
        while i < len(segs) and cur + (segs[i],) in self.files:
            cur += (segs[i],)
            i += 1
        if i == len(segs) or depth >= MAX_FOLLOW:
            return cur
        name = segs[i]
        imports = self.imports.get(cur, {})
        if name in imports:
            target = imports[name]
            if target is None:                          # import from another crate
                return None
            return self.locate(target + list(segs[i + 1:]), depth + 1)
        if name != "*" and self.globs.get(cur) and not self.defines(cur, name):
            for target in self.globs[cur]:
                found = self.locate(target + [name] + list(segs[i + 1:]), depth + 1)
                if found is not None and found != tuple(target):
                    return found
            target = self.globs[cur][0]
            return self.locate(target, depth + 1)
        return cur

    def defines(self, module, name):
        pattern = (r"\b(?:fn|struct|enum|trait|type|const|static|union|mod|macro_rules!)\s+"
                   + re.escape(name) + r"\b")
        return re.search(pattern, self.code[module]) is not None

    # -- imports and edges --------------------------------------------------

    def _uses(self, module):
        """Yield (segments, bound name, offset, start, end, reexport) of each
        `use` leaf; reexport is True for `pub use` / `pub(..) use`."""
        code = self.code[module]
        for m in USE_START.finditer(code):
            leaves, end = parse_use_tree(code, m.end())
            vis = REEXPORT_VIS.search(code, max(0, m.start() - 200), m.start())
            reexport = vis is not None
            start = vis.start() if vis else m.start()
            for segs, bound, off in leaves:
                yield segs, bound, off, start, end, reexport

    def _collect_imports(self):
        """Record, per module, which names its `use` declarations bring in."""
        for module in self.files:
            imports, globs = {}, []
            for segs, bound, _, _, _, _ in self._uses(module):
                target = self.absolute(module, segs)
                if bound == "*":
                    if target is not None:
                        globs.append(target)
                elif bound is not None:
                    imports[bound] = target
            self.imports[module] = imports
            self.globs[module] = globs

    def _add_edge(self, module, target, offset):
        if target is None or target == module:
            return
        key = (module, target)
        if key not in self.edges:
            self.edges[key] = self.where(module, offset)

    def _collect_edges(self):
        for module in self.files:
            code = self.code[module]
            spans, reexported = [], []
            for segs, bound, off, start, end, reexport in self._uses(module):
                spans.append((start, end))
                target = self.absolute(module, segs)
                if target is None:
                    continue
                if reexport:                            # a facade, not a use
                    if bound not in (None, "*"):
                        reexported.append((bound, target))
                    continue
                self._add_edge(module, self.locate(target), off)
            for start, end in spans:                    # don't scan `use` twice
                code = blank_range(code, start, end)
            # `pub(in crate::a)` names a module for visibility, not an item
            code = re.sub(r"pub\s*\(\s*in\s[^)]*\)", lambda m: " " * len(m.group()), code)
            # A re-exported name that the module's own code also mentions is used.
            for bound, target in reexported:
                m = re.compile(REEXPORT_MENTION % re.escape(bound)).search(code)
                if m:
                    self._add_edge(module, self.locate(target), m.start())
            children = [c[-1] for c in self.files if c[:-1] == module and len(c) == len(module) + 1]
            heads = ["crate", "self", "super"] + children
            inline = re.compile(
                r"(?<![\w$.:])(?:%s)(?:\s*::\s*(?:r#)?\w+)+" % "|".join(map(re.escape, heads)))
            for m in inline.finditer(code):
                segs = [s.strip().replace("r#", "") for s in m.group().split("::")]
                target = self.absolute(module, segs)
                if target is not None:
                    self._add_edge(module, self.locate(target), m.start())

    # -- graph analysis -----------------------------------------------------

    def graph(self):
        out = defaultdict(set)
        for a, b in self.edges:
            out[a].add(b)
        return out

    def sccs(self):
        """Tarjan's algorithm, iterative.  Components come out sinks first."""
        graph = self.graph()
        nodes = sorted(self.files)
        index, low, on_stack = {}, {}, set()
        stack, result, counter = [], [], 0
        for root in nodes:
            if root in index:
                continue
            work = [(root, iter(sorted(graph[root])))]
            index[root] = low[root] = counter
            counter += 1
            stack.append(root)
            on_stack.add(root)
            while work:
                node, children = work[-1]
                advanced = False
                for child in children:
                    if child not in index:
                        index[child] = low[child] = counter
                        counter += 1
                        stack.append(child)
                        on_stack.add(child)
                        work.append((child, iter(sorted(graph[child]))))
                        advanced = True
                        break
                    if child in on_stack:
                        low[node] = min(low[node], index[child])
                if advanced:
                    continue
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == node:
                            break
                    result.append(sorted(comp))
        return result


# --------------------------------------------------------------------------
# Reports
# --------------------------------------------------------------------------

def print_graph(crate, comps):
    """Every module's edges, by layer: layer 0 depends on nothing in the crate."""
    graph = crate.graph()
    comp_of = {m: i for i, comp in enumerate(comps) for m in comp}
    layer = {}
    for i, comp in enumerate(comps):            # Tarjan yields sinks first
        deps = {comp_of[b] for m in comp for b in graph[m]} - {i}
        layer[i] = 1 + max((layer[d] for d in deps), default=-1)
    circle_no = {}
    for i, comp in enumerate(sorted((c for c in comps if len(c) > 1), key=lambda c: c[0])):
        for m in comp:
            circle_no[m] = i + 1
    print("%s: module graph (%d modules, %d edges)" % (crate.name, len(crate.files), len(crate.edges)))
    for n in range(max(layer.values(), default=-1) + 1):
        print("  layer %d" % n)
        members = sorted(m for i, comp in enumerate(comps) if layer[i] == n for m in comp)
        for m in members:
            mark = "  [circle %d]" % circle_no[m] if m in circle_no else ""
            deps = ", ".join(crate.display(b) for b in sorted(graph[m])) or "-"
            print("    %s -> %s%s" % (crate.display(m), deps, mark))
    print()


def read_allow(path):
    """Parse an allow file: {(crate name, frozenset of module names): line number}."""
    allowed = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            name, sep, modules = line.partition(":")
            members = frozenset(m.strip() for m in modules.split(",") if m.strip())
            if not sep or not name.strip() or len(members) < 2:
                raise ValueError("%s:%d: expected `crate-name: mod_a, mod_b, ...`"
                                 % (path, number))
            allowed[(name.strip(), members)] = number
    return allowed


def report(crate, comps, allowed):
    """Print the crate's circles; return (any circle not allowed, allow keys used)."""
    circles = sorted((c for c in comps if len(c) > 1), key=lambda c: c[0])
    if not circles:
        print("%s: %d modules, no import circle" % (crate.name, len(crate.files)))
        return False, set()
    failed, used = False, set()
    for comp in circles:
        members = set(comp)
        names = [crate.display(m) for m in comp]
        key = (crate.name, frozenset(names))
        mark = ""
        if key in allowed:
            used.add(key)
            mark = " (allowed)"
        else:
            failed = True
        print("%s: import circle of %d modules%s: %s"
              % (crate.name, len(comp), mark, ", ".join(names)))
        for (a, b), where in sorted(crate.edges.items()):
            if a in members and b in members:
                print("    %s -> %s  (%s)" % (crate.display(a), crate.display(b), where))
    return failed, used


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(
        description="Find import circles between the modules of each crate under crates/.")
    parser.add_argument("--crate", help="check only this crate (package or directory name)")
    parser.add_argument("--graph", action="store_true",
                        help="print every module's edges, in layered order")
    parser.add_argument("--root", default=os.path.dirname(here),
                        help="workspace root (default: the parent of scripts/)")
    parser.add_argument("--allow", metavar="FILE",
                        help="file of accepted circles, `crate-name: mod_a, mod_b, ...` a line")
    args = parser.parse_args()
    allowed = {}
    if args.allow:
        try:
            allowed = read_allow(args.allow)
        except (OSError, ValueError) as e:
            parser.error("--allow: %s" % e)

    crates_dir = os.path.join(args.root, "crates")
    dirs = sorted(os.path.join(crates_dir, d) for d in os.listdir(crates_dir)
                  if os.path.isdir(os.path.join(crates_dir, d, "src")))
    crates = [Crate(args.root, d) for d in dirs]
    if args.crate:
        crates = [c for c in crates if args.crate in (c.name, os.path.basename(c.dir))]
        if not crates:
            parser.error("no crate named %r under %s" % (args.crate, crates_dir))

    any_circle, used = False, set()
    results = [(c, c.sccs()) for c in crates]
    if args.graph:
        for crate, comps in results:
            print_graph(crate, comps)
    for crate, comps in results:
        failed, keys = report(crate, comps, allowed)
        any_circle |= failed
        used |= keys
    checked = {c.name for c in crates}
    for (name, members), number in sorted(allowed.items(), key=lambda kv: kv[1]):
        if name in checked and (name, members) not in used:
            print("%s:%d: allowed circle not found (remove the line?): %s: %s"
                  % (args.allow, number, name, ", ".join(sorted(members))), file=sys.stderr)
    return 1 if any_circle else 0


if __name__ == "__main__":
    sys.exit(main())
