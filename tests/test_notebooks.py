"""The example notebooks execute, top to bottom, on tiny synthetic data (``SMOKE = True``).

They are run by a small runner here rather than by a Jupyter kernel (nbclient + ipykernel):
the notebooks are plain Python over the vqkit API (no magics, no widgets), so executing their
code cells in order in one namespace is what a kernel would do, without adding a kernel, ZeroMQ
and a dozen packages to the test dependencies, or a kernel start per notebook. Like papermill,
the runner executes the cell tagged ``parameters`` and then an injected cell that overrides
its values (``SMOKE = True``). Without IPython, ``IPython.display`` is replaced by a stub whose
``display`` and ``Audio`` record what they were given.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NOTEBOOKS = ["image.ipynb", "speech.ipynb"]


def read_notebook(path: Path) -> dict:
    """Load an nbformat-4 notebook and check the structure this runner relies on."""
    nb = json.loads(path.read_text())
    assert nb.get("nbformat") == 4 and nb.get("nbformat_minor", 0) >= 5, path
    for i, cell in enumerate(nb["cells"]):
        assert cell["cell_type"] in ("code", "markdown", "raw"), (path, i)
        assert isinstance(cell.get("id"), str) and isinstance(cell.get("metadata"), dict)
    return nb


def source(cell: dict) -> str:
    src = cell["source"]
    return src if isinstance(src, str) else "".join(src)


def ipython_display_stub(shown: list) -> types.ModuleType:
    mod = types.ModuleType("IPython.display")

    def display(*objs, **kwargs):
        shown.extend(objs)

    class Audio:
        def __init__(self, data=None, rate=None, **kwargs):
            self.data, self.rate = data, rate

    mod.display, mod.Audio = display, Audio
    return mod


def run_notebook(path: Path, parameters: dict, workdir: Path) -> dict:
    """Execute the code cells of ``path`` in one namespace, in ``workdir``; return it."""
    nb = read_notebook(path)
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    tagged = [i for i, c in enumerate(code) if "parameters" in c["metadata"].get("tags", [])]
    assert tagged == [0], f"{path.name}: the first code cell must be tagged 'parameters'"
    injected = "\n".join(f"{k} = {v!r}" for k, v in parameters.items())
    cells = [source(code[0]), injected] + [source(c) for c in code[1:]]
    namespace: dict = {"__name__": "__main__"}
    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        for i, src in enumerate(cells):
            lines = [ln for ln in src.splitlines() if ln.lstrip().startswith(("%", "!"))]
            assert not lines, f"{path.name}: magics are not run here: {lines}"
            try:
                exec(compile(src, f"{path.name}[code cell {i}]", "exec"), namespace)
            except Exception as e:
                raise AssertionError(f"{path.name}, code cell {i} failed: {e!r}\n{src}") from e
    finally:
        os.chdir(cwd)
        import matplotlib.pyplot as plt

        plt.close("all")
    return namespace


@pytest.fixture
def notebook_env(tmp_path, monkeypatch):
    monkeypatch.setenv("VQKIT_DATA", str(tmp_path / "vqkit-data"))  # no downloads, no caches
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the notebooks' temp folders land here
    shown: list = []
    # Whether or not IPython is installed, display() records what it is given, so that what the
    # notebooks show is checked everywhere.
    ipython = types.ModuleType("IPython")
    ipython.version_info = (9, 0)  # matplotlib asks when it makes a canvas ...
    ipython.get_ipython = lambda: None  # ... and pyplot whether it runs in a shell
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    monkeypatch.setitem(sys.modules, "IPython.display", ipython_display_stub(shown))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    return shown


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_in_smoke_mode(name, tmp_path, notebook_env):
    ns = run_notebook(EXAMPLES / name, {"SMOKE": True}, tmp_path)
    run = Path(ns["RUN"])
    assert run.is_relative_to(tmp_path)
    assert (run / "report.html").stat().st_size > 10_000
    assert (run / "eval.json").is_file()
    assert ns["code_file"].rate() > 0
    if name == "speech.ipynb":
        assert len(notebook_env) == 3  # three audio players, each with real audio
        assert all(a.rate == 16000 and len(a.data) > 1000 for a in notebook_env)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebooks_are_committed_with_the_outputs_of_one_real_run(name):
    """A reader on GitHub sees every figure and number: each code cell that prints or plots has
    its output, from one top-to-bottom execution (counts 1, 2, 3, ...), with no error, no
    smoke-run leftovers, and the file kept small."""
    path = EXAMPLES / name
    nb = read_notebook(path)
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert [c["execution_count"] for c in code] == list(range(1, len(code) + 1)), path.name
    for i, cell in enumerate(code):
        outputs = cell["outputs"]
        assert all(o["output_type"] != "error" for o in outputs), (path.name, i)
        if re.search(r"\b(print|plt\.show|display)\(", source(cell)):
            assert outputs, f"{path.name} code cell {i} shows nothing"
    shown = json.dumps([c["outputs"] for c in code])
    assert "vqkit-nb-" not in shown  # not the outputs of a SMOKE run (its temp folders)
    assert shown.count('"image/png"') >= 2
    assert path.stat().st_size < 400_000


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_defaults_are_the_real_run(name):
    nb = read_notebook(EXAMPLES / name)
    params = source(next(c for c in nb["cells"] if c["cell_type"] == "code"))
    ns: dict = {}
    exec(params, ns)
    assert ns["SMOKE"] is False and ns["PRESET"] in ("cifar10", "l2arctic")
    # Jupyter runs a notebook in its folder: the default is the project's ../shared/data
    shared = EXAMPLES.parent.parent / "shared" / "data"
    expected = shared if name == "image.ipynb" else shared / "fsdd-l2arctic-layout"
    assert (EXAMPLES / ns["DATA"]).resolve() == expected.resolve()


def test_vqkit_leaves_the_matplotlib_backend_alone(tmp_path):
    """Importing vqkit (and drawing its figures) never switches the backend: a notebook keeps
    its inline plots."""
    code = ("import matplotlib; matplotlib.use('svg'); import vqkit.figures.curves, "
            "vqkit.figures.images, vqkit.figures.report, vqkit.figures.speech, "
            "vqkit.reports, vqkit.evaluation.evaluate; "
            "from vqkit.figures.images import plot_originals_over_reconstructions as plot; "
            "import numpy as np; x = np.zeros((4, 8, 8, 3), np.uint8); "
            "plot(x, x, 'grid.png'); print(matplotlib.get_backend())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tmp_path, check=True)
    assert out.stdout.strip() == "svg", out.stderr
    assert (tmp_path / "grid.png").stat().st_size > 100


# Numbers the notebooks' prose quotes, and the preset field each must equal.
PROSE_NUMBERS = [
    (r"(\d+) kHz", lambda c: c.audio.sample_rate / 1000),
    (r"(\d+) mel bands", lambda c: c.audio.n_mels),
    (r"\(hop (\d+)\)", lambda c: c.audio.hop_length),
    (r"(\d+)-frame", lambda c: c.audio.crop_frames),
    (r"(\d+)x(\d+) grid of code", lambda c: 32 // 2 ** c.model.num_downsamples),
    (r"(\d+) codes\b", lambda c: c.quantizer.codebook_size),
]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_the_prose_quotes_the_presets_numbers(name):
    from vqkit.config import get_preset

    nb = read_notebook(EXAMPLES / name)
    ns: dict = {}
    exec(source(next(c for c in nb["cells"] if c["cell_type"] == "code")), ns)
    cfg = get_preset(ns["PRESET"])
    prose = " ".join(source(c) for c in nb["cells"] if c["cell_type"] == "markdown")
    checked = 0
    for pattern, value in PROSE_NUMBERS:
        for m in re.finditer(pattern, prose.replace("\n", " ")):
            for quoted in m.groups():
                assert float(quoted) == value(cfg), f"{name}: {m.group(0)!r} vs the preset"
                checked += 1
    assert checked >= 2, f"{name}: the prose quotes no preset numbers"
