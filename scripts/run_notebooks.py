"""Execute the example notebooks in place with a Jupyter kernel, so that they are committed
with the outputs of a real run (``pip install -e ".[notebooks]"``).

    python scripts/run_notebooks.py examples/image.ipynb [examples/speech.ipynb]

Each runs top to bottom in its own folder (as Jupyter does), with its default parameters.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def main(paths: list[str]) -> int:
    for name in paths:
        path = Path(name)
        nb = nbformat.read(path, as_version=4)
        NotebookClient(nb, timeout=3600, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
        nbformat.write(nb, path)
        print(f"{path}: executed, {path.stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
