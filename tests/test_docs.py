"""The documentation cannot rot: every command and code block shown in the README and in
``docs/`` is checked against the code, and the site builds with ``mkdocs build --strict``.

- Every ``dnabird`` command line in a shell block is parsed by the real argument parser
  (:func:`dnabird.cli.build_parser`; nothing runs). ``pretrain`` and ``finetune`` lines are
  run with ``--print-config``, which loads and checks their config and overrides without
  training. The cheap ones (``--help``, ``env``) run for real.
- ``make`` targets exist in the Makefile; ``benchmarks/*`` scripts exist and know the options
  shown; ``python -c`` code compiles.
- Every Python block compiles, and its ``dnabird`` imports resolve; blocks marked
  ``<!-- docs-test: run -->`` run, in a temporary folder. JSON blocks parse.
- Relative links of the Markdown files outside the site (README, CONTRIBUTING) resolve.
- The site builds strictly (broken links, docstrings mkdocstrings cannot render), and the
  configuration reference lists every field of every config dataclass. Skipped only when
  mkdocs is not installed, never under CI (``CI`` set), which installs the ``docs`` extra.
- The attention-scaling figure is drawn by ``benchmarks/plots.py`` from the stored JSON.

The expensive commands shown (preprocess, pretrain, fine-tune, predict ...) are run by the
tests each workflow page names, and by the demo.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import importlib
import importlib.util
import io
import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from dnabird.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(
    [ROOT / "README.md", ROOT / "CONTRIBUTING.md", ROOT / "ARCHITECTURE.md", *DOCS.rglob("*.md")]
)
SHELL = {"", "bash", "sh", "shell", "console"}
RUN_MARK = "<!-- docs-test: run -->"
SCALING_JSON = sorted((ROOT / "benchmarks" / "results").glob("attention_cpu*.json"))
SCALING_PNG = DOCS / "images" / "attention_scaling.png"


@dataclass
class Block:
    page: Path
    line: int
    lang: str
    text: str
    run: bool

    def __str__(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def code_blocks(page: Path) -> list[Block]:
    """Fenced blocks of ``page`` (``` or ~~~, indented inside list items too), dedented."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        opening = re.match(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)", lines[i])
        if not opening:
            i += 1
            continue
        indent, fence, lang = opening.groups()
        start, i = i, i + 1
        body = []
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i][len(indent) :] if lines[i].startswith(indent) else lines[i])
            i += 1
        marked = start > 0 and lines[start - 1].strip() == RUN_MARK
        blocks.append(Block(page, start + 1, lang.lower(), "\n".join(body), marked))
        i += 1
    return blocks


BLOCKS = [block for page in PAGES for block in code_blocks(page)]


def shell_commands(block: Block) -> list[tuple[str, list[str]]]:
    """``(command line, output lines)`` of a shell block: in a transcript the ``$ `` lines,
    each with the lines it printed; else every line that is not a comment, without output.
    ``\\`` continuations are joined."""
    lines = block.text.splitlines()
    transcript = any(line.startswith("$ ") for line in lines)
    commands, current, continuing = [], "", False
    for line in lines:
        if continuing:
            current += " " + line.strip()
        elif transcript and line.startswith("$ "):
            current = line[2:]
        elif not transcript and line.strip() and not line.lstrip().startswith("#"):
            current = line.strip()
        else:
            if transcript and commands:
                commands[-1][1].append(line)
            continue
        continuing = current.endswith("\\")
        if continuing:
            current = current[:-1]
        else:
            commands.append((current, []))
    return commands


def simple_commands(line: str) -> list[list[str]]:
    """The simple commands of a shell line (split at ``;``, ``&&``, ``||``, ``|``), comments
    dropped, leading ``VAR=value`` assignments dropped."""
    line = line.replace("$(which dnabird)", "dnabird")
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    commands, words = [], []
    for token in lexer:
        if token in (";", "&&", "||", "|", "&"):
            commands.append(words)
            words = []
        else:
            words.append(token)
    commands.append(words)
    result = []
    for words in commands:
        while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
            words = words[1:]
        if words:
            result.append(words)
    return result


def dnabird_args(words: list[str]) -> list[str] | None:
    """The arguments after ``dnabird`` (also under srun, torchrun or a .venv path)."""
    for i, word in enumerate(words):
        if Path(word).name == "dnabird":
            return words[i + 1 :]
    return None


COMMANDS = [
    (block, words, output)
    for block in BLOCKS
    if block.lang in SHELL
    for line, output in shell_commands(block)
    for words in simple_commands(line)
]
DNABIRD = [
    (block, args, output)
    for block, words, output in COMMANDS
    if (args := dnabird_args(words)) is not None
]


def _error_shown(output: list[str]) -> str | None:
    """The ``dnabird: error: ...`` line a transcript shows for a command, if any."""
    return next((line for line in output if line.startswith("dnabird: error:")), None)


def _id(item) -> str:
    block, words = item[:2]
    return f"{block} {' '.join(words)[:60]}"


def test_the_pages_show_commands():
    assert len(PAGES) >= 15
    assert len(DNABIRD) >= 60  # the workflow pages lost their commands?
    assert {_subcommand(args) for _, args, _ in DNABIRD} >= {
        "preprocess",
        "train-tokenizer",
        "tokenize",
        "pretrain",
        "evaluate-mlm",
        "finetune",
        "evaluate",
        "make-dataset",
        "predict",
        "variant-effect",
        "ism",
        "embed",
        "fetch-genome",
        "demo",
    }


def _parse(args: list[str]) -> tuple[int, str]:
    """Parse with the real parser; (exit status, stderr). ``--help`` exits 0."""
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        try:
            build_parser().parse_args(args)
        except SystemExit as stop:
            return int(stop.code or 0), stderr.getvalue()
    return 0, ""


@pytest.mark.parametrize("item", DNABIRD, ids=[_id(i) for i in DNABIRD])
def test_dnabird_command_lines_parse(item):
    block, args, _ = item
    status, error = _parse(args)
    assert status == 0, f"{block}: dnabird {shlex.join(args)}\n{error}"


def _subcommand(args: list[str]) -> str | None:
    return next((a for a in args if not a.startswith("-")), None)


CONFIG_LINES = [
    item
    for item in DNABIRD
    if _subcommand(item[1]) in ("pretrain", "finetune") and "--help" not in item[1]
]


@pytest.mark.parametrize("item", CONFIG_LINES, ids=[_id(i) for i in CONFIG_LINES])
def test_training_command_configs_load(item, monkeypatch, capsys):
    """The config and every override shown are valid (``--print-config``: checked, not run);
    a line whose transcript shows an error fails with exactly that error."""
    block, args, output = item
    monkeypatch.chdir(ROOT)  # configs named by path (pipelines/...) are relative to the root
    extra = [] if "--print-config" in args else ["--print-config"]
    status = main([*args, *extra])
    captured = capsys.readouterr()
    shown = _error_shown(output)
    if shown:
        assert status == 2 and captured.err.strip() == shown, f"{block}: {captured.err}"
        return
    assert status == 0, f"{block}: dnabird {shlex.join(args)}\n{captured.err}"
    assert captured.out.startswith("out: ")


CHEAP = sorted(
    {
        tuple(args)
        for _, args, _ in DNABIRD
        if args in (["--help"], ["env"], ["--version"]) or args[-1:] == ["--help"]
    }
)


@pytest.mark.parametrize("args", CHEAP, ids=[" ".join(a) for a in CHEAP])
def test_cheap_commands_run(args, capsys):
    try:
        status = main(list(args))
    except SystemExit as stop:  # --help and --version exit through argparse
        status = stop.code or 0
    assert status == 0
    assert capsys.readouterr().out.strip()


def test_cheap_commands_are_shown():
    assert ("--help",) in CHEAP and ("env",) in CHEAP


MAKEFILE = (ROOT / "Makefile").read_text(encoding="utf-8")
MAKE_LINES = [(block, words) for block, words, _ in COMMANDS if words[0] == "make"]


@pytest.mark.parametrize("item", MAKE_LINES, ids=[_id(i) for i in MAKE_LINES])
def test_make_targets_exist(item):
    block, words = item
    for target in [w for w in words[1:] if not w.startswith("-") and "=" not in w]:
        assert re.search(rf"^{re.escape(target)}:", MAKEFILE, re.M), f"{block}: make {target}"


def _script(words: list[str]) -> str | None:
    return next((w for w in words if w.startswith("benchmarks/")), None)


SCRIPT_LINES = [(block, words) for block, words, _ in COMMANDS if _script(words)]


@pytest.mark.parametrize("item", SCRIPT_LINES, ids=[_id(i) for i in SCRIPT_LINES])
def test_benchmark_scripts_and_options_exist(item):
    block, words = item
    script = ROOT / _script(words)
    assert script.is_file(), f"{block}: no {script.relative_to(ROOT)}"
    source = script.read_text(encoding="utf-8")
    after = words[words.index(_script(words)) + 1 :]
    for option in [w for w in after if w.startswith("--")]:
        assert f'"{option}"' in source or option in source, f"{block}: {script.name} {option}"


def _python_source(block: Block) -> str:
    """A block's Python: doctest sessions (``>>>``) keep only their input lines."""
    lines = block.text.splitlines()
    if any(line.startswith(">>> ") for line in lines):
        return "\n".join(line[4:] for line in lines if line.startswith((">>> ", "... ")))
    return block.text


PYTHON = [block for block in BLOCKS if block.lang in ("python", "py", "pycon")]
PYTHON_C = [
    (block, words[words.index("-c") + 1])
    for block, words, _ in COMMANDS
    if Path(words[0]).name.startswith("python") and "-c" in words
]


def _check_imports(source: str, where: str) -> None:
    """``dnabird`` imports resolve to real names (other packages: only when installed)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            names, module = [a.name for a in node.names], node.module
        elif isinstance(node, ast.Import):
            names, module = [], None
            for alias in node.names:
                if alias.name.split(".")[0] == "dnabird":
                    importlib.import_module(alias.name)
            continue
        else:
            continue
        if module.split(".")[0] != "dnabird" and importlib.util.find_spec(module) is None:
            continue
        imported = importlib.import_module(module)
        for name in names:
            assert hasattr(imported, name), f"{where}: {module} has no {name}"


@pytest.mark.parametrize("block", PYTHON, ids=[str(b) for b in PYTHON])
def test_python_blocks_compile_and_import(block):
    source = _python_source(block)
    compile(source, str(block), "exec")
    _check_imports(source, str(block))


@pytest.mark.parametrize("item", PYTHON_C, ids=[_id((b, [c])) for b, c in PYTHON_C])
def test_python_c_code_compiles(item):
    block, code = item
    compile(code, str(block), "exec")
    _check_imports(code, str(block))


RUNNABLE = [block for block in PYTHON if block.run]


def test_runnable_blocks_are_marked():
    assert {b.page.name for b in RUNNABLE} >= {"python-api.md", "attention.md"}


@pytest.mark.parametrize("block", RUNNABLE, ids=[str(b) for b in RUNNABLE])
def test_marked_python_blocks_run(block, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exec(compile(block.text, str(block), "exec"), {"__name__": "__docs__"})


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.lang == "json"], ids=lambda b: str(b))
def test_json_blocks_parse(block):
    json.loads(block.text)


def test_yaml_excerpt_is_the_packaged_config():
    """The YAML shown on the configs page is the top of the packaged tiny config."""
    (shown,) = [b for b in BLOCKS if b.lang == "yaml" and b.page.name == "configs.md"]
    packaged = (ROOT / "pipelines" / "pretrain_tiny.yaml").read_text(encoding="utf-8")
    assert shown.text.strip() in packaged


@pytest.mark.parametrize("page", ["README.md", "CONTRIBUTING.md"])
def test_links_outside_the_site_resolve(page):
    text = (ROOT / page).read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)", text) + re.findall(r'src="([^"]+)"', text)
    local = [t for t in targets if "://" not in t]
    assert local
    for target in local:
        assert (ROOT / target).exists(), f"{page}: link to {target}"


REPO_PATH = re.compile(
    r"`((?:benchmarks|pipelines|tests|dnabird|notebooks|docs|data_manifests)/[\w./*-]*)"
)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_repository_paths_named_exist(page):
    """Files and folders of this repository named in `code` exist (a page naming a renamed
    test or config fails here). ``<...>`` placeholders are not matched; ``*`` globs."""
    for match in REPO_PATH.finditer(page.read_text(encoding="utf-8")):
        path = match.group(1).rstrip(".")
        if path.endswith("/mybackend.py"):  # the developer page's example of a new file
            continue
        found = list(ROOT.glob(path)) if "*" in path else (ROOT / path).exists()
        assert found, f"{page.relative_to(ROOT)} names {path}, which does not exist"


def test_readme_is_a_front_door():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 170


# ------------------------------------------------------------------------------ the site
def _mkdocs_available() -> bool:
    if importlib.util.find_spec("mkdocs") and importlib.util.find_spec("mkdocstrings"):
        return True
    if os.environ.get("CI"):
        pytest.fail("mkdocs is not installed: CI installs the docs extra (make test)")
    pytest.skip("mkdocs not installed (pip install -e '.[docs]')")
    return False


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    _mkdocs_available()
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def test_site_builds_strictly(site):
    assert (site / "index.html").is_file()
    assert (site / "images" / "attention_scaling.png").is_file()
    assert not list(site.rglob("hooks.py"))


def _config_classes() -> list[type]:
    """The classes rendered on the configuration reference page."""
    text = (DOCS / "reference" / "config.md").read_text(encoding="utf-8")
    paths = re.findall(r"^::: ([\w.]+)", text, re.M)
    return [
        getattr(importlib.import_module(p.rsplit(".", 1)[0]), p.rsplit(".", 1)[1]) for p in paths
    ]


def _documented_dataclasses() -> set[str]:
    """``module.Class`` of every dataclass decorated with ``document_fields``."""
    found = set()
    for path in (ROOT / "dnabird").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and any(
                isinstance(d, ast.Name) and d.id == "document_fields" for d in node.decorator_list
            ):
                module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
                found.add(f"{module}.{node.name}")
    return found


def test_config_reference_lists_every_field(site):
    html = (site / "reference" / "config" / "index.html").read_text(encoding="utf-8")
    classes = _config_classes()
    assert len(classes) >= 12
    for cls in classes:
        path = f"{cls.__module__}.{cls.__qualname__}"
        own = vars(cls).get("__annotations__", {})  # inherited ones: on the base's entry
        for field in [f for f in dataclasses.fields(cls) if f.name in own]:
            assert f'id="{path}.{field.name}"' in html, f"{path}.{field.name} not in the reference"
    shown = {f"{c.__module__}.{c.__qualname__}" for c in classes}
    api = (DOCS / "reference" / "api.md").read_text(encoding="utf-8")
    missing = {name for name in _documented_dataclasses() - shown if f"::: {name}" not in api}
    assert not missing, f"config dataclasses missing from docs/reference: {sorted(missing)}"


def test_field_docstrings_are_rendered(site):
    html = (site / "reference" / "config" / "index.html").read_text(encoding="utf-8")
    assert "Peak learning rate (the BigBird paper: 1e-4)." in html
    assert ":class:" not in html  # Sphinx roles are shown as code (docs/hooks.py)


# ---------------------------------------------------------------------------- the figure
def _plots():
    spec = importlib.util.spec_from_file_location("docs_plots", ROOT / "benchmarks" / "plots.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_scaling_figure_is_drawn_from_the_stored_json(tmp_path):
    import matplotlib.image

    assert SCALING_JSON, "benchmarks/results/attention_cpu*.json is missing"
    plots = _plots()
    metas, results = plots.load_results(SCALING_JSON)
    contenders = {name for r in results for name in r["median_s"]}
    assert {"ours-blocked", "hf-block-sparse", "dense-sdpa"} <= contenders
    out = plots.plot_attention(SCALING_JSON, tmp_path / "scaling.png")
    drawn, committed = matplotlib.image.imread(out), matplotlib.image.imread(SCALING_PNG)
    assert drawn.shape == committed.shape
    for meta in metas:  # the picture says where and when it was measured
        assert meta["date"] and meta["machine"]


def test_merging_results_keeps_the_later_measurement(tmp_path):
    plots = _plots()
    row = {"what": "attention", "mode": "fwd", "block_size": 64, "length": 1024}
    first = {"meta": {}, "results": [{**row, "median_s": {"a": 1.0, "b": 2.0}}]}
    second = {"meta": {}, "results": [{**row, "median_s": {"b": 3.0}, "peak_bytes": {"b": 9}}]}
    paths = []
    for i, data in enumerate((first, second)):
        paths.append(tmp_path / f"{i}.json")
        paths[-1].write_text(json.dumps(data))
    _, (merged,) = plots.load_results(paths)
    assert merged["median_s"] == {"a": 1.0, "b": 3.0} and merged["peak_bytes"] == {"b": 9}
    assert plots.slope([1, 2, 4], [1.0, 4.0, 16.0]) == pytest.approx(2.0)


def test_shell_parsing_helpers():
    block = Block(
        ROOT / "README.md",
        1,
        "",
        textwrap.dedent(
            """\
            $ D=x; dnabird -q preprocess a.fa \\
                  --out c/   # comment
            output line
            $ srun -N 2 $(which dnabird) pretrain --config tiny 'data.val_chromosomes=[chr21]'"""
        ),
        False,
    )
    lines = shell_commands(block)
    assert [output for _, output in lines] == [["output line"], []]
    commands = [c for line, _ in lines for c in simple_commands(line)]
    assert [dnabird_args(c) for c in commands] == [
        ["-q", "preprocess", "a.fa", "--out", "c/"],
        ["pretrain", "--config", "tiny", "data.val_chromosomes=[chr21]"],
    ]
