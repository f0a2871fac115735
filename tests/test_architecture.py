"""Pins the package's layering: every module has a layer, imports only go down and name modules
that exist, no import cycles, the engine names no paper feature, and importing the whole package
defines no absl flag.

Static checks parse the sources with `ast` (nothing is imported); only the last test imports the
package, in a subprocess.
"""

from __future__ import annotations

import ast
import io
import json
import os
import pathlib
import subprocess
import sys
import textwrap
import tokenize

REPO = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = 'ascjax'
PACKAGE_DIR = REPO / PACKAGE

# The layer map, lowest first. A module may import modules of its own layer or lower ones only.
# Layer of a module: the longest matching prefix (the name itself or prefix + '.'), except that the
# root package and every `*.__main__` module are entry points.
ENTRY_POINTS = 'entry points'
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    # data, features and metrics: audio, layout, tau, synthesize, scenes, devices, datasets, ...
    ('data', ('ascjax.data', 'ascjax.features', 'ascjax.evaluation', 'ascjax.logs')),
    # Flax models: bcresnet, norms, layers, convert, unet.
    ('models', ('ascjax.models',)),
    # training primitives: compress (prune, qat, distill), augment (spec, translate).
    ('primitives', ('ascjax.compress', 'ascjax.augment')),
    # the generic engine: state, step, loop, checkpoint, mesh, optim, progress (not __main__).
    ('engine', ('ascjax.train',)),
    # a run: opens a workdir.
    ('run', ('ascjax.run',)),
    # tasks built on the engine, and the PyTorch reference.
    ('tasks', ('ascjax.tasks', 'ascjax.torch_reference')),
    # programs: the root package, every *.__main__, sweep, predict.
    (ENTRY_POINTS, ('ascjax.sweep', 'ascjax.predict')),
)
LAYER_NAMES = tuple(name for name, _ in LAYERS)

# Words the engine must not name: the paper's features live in primitives and tasks.
PAPER_WORDS = ('translator', 'translate', 'teacher', 'distill', 'global_freq', 'freqnorm', 'prune',
               'qat', 'quant', 'mixup', 'resnorm')


# ------------------------------------------------------------------------------------------------
# Helpers.

def module_name(path: pathlib.Path) -> str:
    """Dotted module name of a .py file under the repo root (`a/b/__init__.py` -> `a.b`)."""
    parts = list(path.relative_to(REPO).with_suffix('').parts)
    if parts[-1] == '__init__':
        parts.pop()
    return '.'.join(parts)


def package_modules() -> dict[str, pathlib.Path]:
    """Every module of the package, found on the file system: {dotted name: path}."""
    return {module_name(p): p for p in sorted(PACKAGE_DIR.rglob('*.py'))
            if '__pycache__' not in p.parts}


def is_package(path: pathlib.Path) -> bool:
    return path.name == '__init__.py'


def layer_of(module: str) -> int | None:
    """Index into LAYERS of a module's layer, or None when it has none."""
    if module == PACKAGE or module.rsplit('.', 1)[-1] == '__main__':
        return LAYER_NAMES.index(ENTRY_POINTS)
    best, best_len = None, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + '.')) and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    return best


def describe(module: str) -> str:
    layer = layer_of(module)
    return f'{module} ({LAYER_NAMES[layer] if layer is not None else "no layer"})'


def parse(path: pathlib.Path) -> ast.Module:
    return ast.parse(path.read_text(encoding='utf-8'), filename=str(path))


def raw_imports(module: str, path: pathlib.Path):
    """(base, name, line) of every import in `module`'s source (functions, `if __name__`,
    try/except included): `import a.b` -> ('a.b', None), `from a import b` -> ('a', 'b'), with
    relative imports resolved against the module's package."""
    package = module if is_package(path) else module.rpartition('.')[0]
    for node in ast.walk(parse(path)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split('.')
                if node.level > 1:
                    base_parts = base_parts[:-(node.level - 1)]
                base = '.'.join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ''
            for alias in node.names:
                yield base, alias.name, node.lineno


def in_package(name: str) -> bool:
    return name == PACKAGE or name.startswith(PACKAGE + '.')


def import_edges(module: str, path: pathlib.Path, known: set[str]) -> dict[str, list[int]]:
    """{package module imported: line numbers}. `from a import b` goes to `a.b` when that is a
    module file, else to `a`."""
    edges: dict[str, list[int]] = {}
    for base, name, line in raw_imports(module, path):
        target = base
        if name is not None and name != '*' and f'{base}.{name}' in known:
            target = f'{base}.{name}'
        if in_package(target):
            edges.setdefault(target, []).append(line)
    return {t: sorted(set(numbers)) for t, numbers in edges.items()}


def top_level_names(path: pathlib.Path) -> set[str] | None:
    """Names a module binds at import time (outside functions and classes), or None when they
    cannot be known statically (a `*` import or a module `__getattr__`)."""
    names: set[str] = set()
    todo = list(parse(path).body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if node.name == '__getattr__':
                return None
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if alias.name == '*':
                    return None
                names.add(alias.asname or alias.name.split('.')[0])
        else:
            for child in ast.walk(node):
                if isinstance(child, ast.Name) and isinstance(child.ctx, ast.Store):
                    names.add(child.id)
            if isinstance(node, (ast.If, ast.Try, ast.With, ast.For, ast.While)):
                todo.extend(n for n in ast.iter_child_nodes(node) if isinstance(n, ast.stmt))
    return names


def import_edges_by_module() -> dict[str, dict[str, list[int]]]:
    """{module: {imported package module: lines}}, self-imports dropped, no implicit edges to
    parent packages."""
    modules = package_modules()
    known = set(modules)
    graph = {}
    for module, path in modules.items():
        edges = import_edges(module, path, known)
        edges.pop(module, None)
        graph[module] = edges
    return graph


def import_graph() -> dict[str, set[str]]:
    """{module: package modules it imports}."""
    return {m: set(edges) for m, edges in import_edges_by_module().items()}


def lines(numbers: list[int]) -> str:
    return f'line{"s" if len(numbers) > 1 else ""} {", ".join(map(str, numbers))}'


def strongly_connected_components(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (no recursion limit)."""
    index_of, low, on_stack, stack, components = {}, {}, set(), [], []
    counter = 0
    nodes = sorted(set(graph) | {t for ts in graph.values() for t in ts})
    for root in nodes:
        if root in index_of:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index_of[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index_of:
                    index_of[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index_of[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index_of[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(sorted(component))
    return components


def docstring_spans(tree: ast.Module) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """(start, end) positions of the module, class and function docstrings."""
    spans = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                    and isinstance(body[0].value.value, str)):
                doc = body[0].value
                spans.append(((doc.lineno, doc.col_offset), (doc.end_lineno, doc.end_col_offset)))
    return spans


def code_tokens(path: pathlib.Path):
    """(line, text) of every token of the source but comments and docstrings."""
    source = path.read_text(encoding='utf-8')
    spans = docstring_spans(ast.parse(source))
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            continue
        if token.type == tokenize.STRING and any(start <= token.start and token.end <= end
                                                 for start, end in spans):
            continue
        yield token.start[0], token.string


# ------------------------------------------------------------------------------------------------
# Tests.

def test_every_module_has_a_layer():
    """Every module is placed in LAYERS deliberately."""
    modules = package_modules()
    assert modules, f'no modules found under {PACKAGE_DIR}'
    unplaced = sorted(m for m in modules if layer_of(m) is None)
    assert not unplaced, ('modules with no layer (add their prefix to LAYERS in '
                          'tests/test_architecture.py):\n  ' + '\n  '.join(unplaced))


def test_imports_only_go_down():
    """No module imports a module of a higher layer."""
    offending = []
    for importer, edges in sorted(import_edges_by_module().items()):
        importer_layer = layer_of(importer)
        if importer_layer is None:
            continue  # reported by test_every_module_has_a_layer
        for target, numbers in sorted(edges.items()):
            target_layer = layer_of(target)
            if target_layer is not None and target_layer > importer_layer:
                offending.append(f'{describe(importer)} -> {describe(target)}  [{lines(numbers)}]')
    assert not offending, (f'{len(offending)} import(s) go up the layers '
                           f'({" < ".join(LAYER_NAMES)}):\n  ' + '\n  '.join(offending))


def test_package_imports_exist():
    """Every import of the package names a module file that exists, and `from m import n` a name
    `m` defines when `m.n` is no module (no stale import left by a move; lazy imports included)."""
    modules = package_modules()
    missing = set()
    for importer, path in sorted(modules.items()):
        for base, name, line in raw_imports(importer, path):
            if not in_package(base) or (name and f'{base}.{name}' in modules):
                continue
            if base not in modules:
                namespace = PACKAGE_DIR.parent.joinpath(*base.split('.')).is_dir()
                if not namespace:
                    missing.add((importer, base, 'no such module', line))
                elif name not in (None, '*'):  # a folder without __init__.py: submodules only
                    missing.add((importer, f'{base}.{name}', 'no such module', line))
            elif name not in (None, '*'):
                bound = top_level_names(modules[base])
                if bound is not None and name not in bound:
                    missing.add((importer, f'{base}.{name}', f'no module, nor a name in {base}',
                                 line))
    grouped: dict[tuple[str, str, str], list[int]] = {}
    for importer, target, why, line in missing:
        grouped.setdefault((importer, target, why), []).append(line)
    report = [f'{importer} -> {target} ({why})  [{lines(sorted(numbers))}]'
              for (importer, target, why), numbers in sorted(grouped.items())]
    assert not report, (f'{len(report)} import(s) of the package that do not resolve:\n  '
                        + '\n  '.join(report))


def test_no_import_cycles():
    """The module import graph is acyclic (self-imports aside)."""
    cycles = [c for c in strongly_connected_components(import_graph()) if len(c) > 1]
    assert not cycles, (f'{len(cycles)} import cycle(s):\n  '
                        + '\n  '.join(' <-> '.join(c) for c in sorted(cycles)))


def test_engine_names_no_paper_feature():
    """The engine's code (comments and docstrings aside) names none of the paper's features."""
    engine = LAYER_NAMES.index('engine')
    files = [p for m, p in package_modules().items()
             if layer_of(m) == engine and not m.endswith('.__main__')]
    assert files, 'no engine modules found'
    hits = []
    for path in sorted(files):
        for line, text in code_tokens(path):
            lowered = text.lower()
            for word in PAPER_WORDS:
                hit = f'{path.relative_to(REPO)}:{line}:{word}'
                if word in lowered and hit not in hits:
                    hits.append(hit)
    assert not hits, (f'the engine names paper features ({len(hits)} hit(s)); move them to '
                      'primitives or tasks:\n  ' + '\n  '.join(hits))


# Run in a fresh interpreter: imports a probe module that defines a flag (to check how absl keys
# flags_by_module_dict), then every module, and prints a JSON report as its last line.
_IMPORT_ALL = textwrap.dedent('''
    import importlib, importlib.util, json, os, sys
    from absl import flags

    probe_dir, package_dir, names = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    sys.path.insert(0, probe_dir)
    import _ascjax_flag_probe
    probe_keys = [k for k, fs in flags.FLAGS.flags_by_module_dict().items()
                  if any(f.name == 'ascjax_flag_probe' for f in fs)]

    def ours(key):
        key = str(key)
        return key == 'ascjax' or key.startswith('ascjax.') or os.path.abspath(key).startswith(
            package_dir + os.sep)

    have_torch = importlib.util.find_spec('torch') is not None
    errors, defined, skipped = {}, {}, []
    for name in names:
        if not have_torch and (name == 'ascjax.torch_reference'
                               or name.startswith('ascjax.torch_reference.')):
            skipped.append(name)
            continue
        before = {k: {f.name for f in fs} for k, fs in flags.FLAGS.flags_by_module_dict().items()}
        try:
            importlib.import_module(name)
        except BaseException as e:  # DuplicateFlagError, SystemExit, anything
            errors[name] = f'{type(e).__name__}: {e}'.strip()[:2000]
        for key, fs in flags.FLAGS.flags_by_module_dict().items():
            new = sorted({f.name for f in fs} - before.get(key, set()))
            if new and ours(key):
                defined.setdefault(str(key), {})[name] = new
    print(json.dumps(dict(probe_keys=probe_keys, errors=errors, defined=defined, skipped=skipped,
                          have_torch=have_torch)))
''')


def test_all_modules_import_together(tmp_path):
    """Every module imports in one interpreter, without DuplicateFlagError, and none defines an
    absl flag at import time (flags belong in `main()` / `__main__`)."""
    (tmp_path / '_ascjax_flag_probe.py').write_text(
        "from absl import flags\nflags.DEFINE_string('ascjax_flag_probe', None, 'probe')\n")
    names = sorted(m for m in package_modules() if not m.endswith('.__main__'))
    env = dict(os.environ, JAX_PLATFORMS='cpu', TF_CPP_MIN_LOG_LEVEL='2',
               TF_ENABLE_ONEDNN_OPTS='0')
    proc = subprocess.run(
        [sys.executable, '-c', _IMPORT_ALL, str(tmp_path), str(PACKAGE_DIR), json.dumps(names)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (f'import subprocess failed:\n{proc.stdout[-4000:]}\n'
                                  f'{proc.stderr[-4000:]}')
    report = json.loads(proc.stdout.strip().splitlines()[-1])

    # The detector keys flags by the defining module's __name__; if absl changes that, say so.
    assert report['probe_keys'] == ['_ascjax_flag_probe'], (
        f"absl keyed the probe's flag by {report['probe_keys']!r}, not its module name: "
        'update this test')

    problems = []
    for name, error in sorted(report['errors'].items()):
        problems.append(f'import {name} failed: {error}')
    for key, by_import in sorted(report['defined'].items()):
        for name, flag_names in sorted(by_import.items()):
            via = '' if name == key else f' (first imported via {name})'
            problems.append(f'{key} defines absl flag(s) {flag_names} at import{via}')
    assert not problems, (f'importing the package together ({len(names) - len(report["skipped"])} '
                          f'modules; skipped {report["skipped"]}):\n  ' + '\n  '.join(problems))
