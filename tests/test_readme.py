"""The README's commands are the ones CI runs."""

import re
import shlex
from pathlib import Path

from conftest import make_cifar_dir

from vqkit.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    return re.findall(r"```bash\n(.+?)\n```", (ROOT / "README.md").read_text())


def test_readme_opens_with_setup_and_test_commands():
    main_job, tests = readme_commands()[:2]
    assert "pip install -c constraints.txt -e ." in main_job and "vqkit train image" in main_job
    assert "pytest" in tests


def test_ci_runs_the_readme_test_command():
    assert readme_commands()[1] in (ROOT / ".ci" / "run").read_text()


def test_torch_is_pinned_to_the_cpu_build():
    assert "torch==2.13.0" in (ROOT / "constraints.txt").read_text()


def readme_blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.+?)\n```", (ROOT / "README.md").read_text(), flags=re.S)


def vqkit_commands() -> list[list[str]]:
    """Every ``vqkit ...`` command in the README's bash blocks and inline code, as argv lists
    (a table's ``a\\|b`` alternatives take the first)."""
    commands = []
    text = (ROOT / "README.md").read_text()
    # inline commands with arguments (`vqkit evaluate` alone names a command in prose)
    inline = re.findall(r"(?<!`)`(vqkit [\w-]+ [^`]+)`(?!`)", text)
    for block in readme_blocks("bash") + [re.sub(r"\\\|\w+", "", c).replace("\n", " ")
                                           for c in inline]:
        text = block.replace("\\\n", " ")
        for line in text.splitlines():
            line = line.split(" #", 1)[0]
            for part in re.split(r"&&|;|\|\|", line):
                words = shlex.split(part)
                while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
                    words = words[1:]  # VAR=value prefixes
                if words[:1] == ["vqkit"]:
                    commands.append(words[1:])
                elif words[:3] == ["python", "-m", "vqkit"]:
                    commands.append(words[3:])
    return commands


def test_every_vqkit_command_in_the_readme_parses():
    commands = vqkit_commands()
    assert len(commands) >= 5
    parser = build_parser()
    for argv in commands:
        try:
            args = parser.parse_args(argv)
        except SystemExit:
            raise AssertionError(f"README: `vqkit {' '.join(argv)}` does not parse") from None
        assert callable(args.func)


def test_the_main_job_evaluates_even_when_training_is_stopped():
    """`;` after the training: a user who presses Ctrl-C still gets the evaluation."""
    main_job = readme_commands()[0]
    assert re.search(r"vqkit train [^;&]* --max-minutes \d+; vqkit evaluate", main_job), main_job


def test_the_readme_python_blocks_run_verbatim_and_again(tmp_path, monkeypatch, capsys):
    """The API snippet runs as written (``../shared/data`` is a tiny synthetic CIFAR-10 here)
    and can be run a second time."""
    blocks = readme_blocks("python")
    assert blocks
    make_cifar_dir(tmp_path / "shared" / "data")
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    monkeypatch.setenv("VQKIT_DATA", str(tmp_path / "cache"))  # never a download
    for attempt in range(2):
        for i, block in enumerate(blocks):
            try:
                exec(compile(block, f"README.md python block {i}", "exec"), {})
            except Exception as e:
                raise AssertionError(f"run {attempt + 1}, block {i}: {e!r}") from e
    out = capsys.readouterr().out
    assert out.count("torch.Size([8, 8, 8])") == 2, out
