"""The HTML report: contents, self-containedness, and rendering in headless Chromium.

The browser test drives Debian's Chromium over the DevTools protocol on a pipe
(``--remote-debugging-pipe``: JSON messages on file descriptors 3 and 4), so it needs no
websocket client and no Python package beyond the standard library. It is skipped when no
Chromium is installed, except in CI (``CI`` set), where it must run: install it with
``scripts/install-system-deps.sh``.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import html
import io
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import soundfile as sf
import torch
from conftest import make_cifar_dir
from PIL import Image

from vqkit.cli import main
from vqkit.config import apply_overrides, get_preset
from vqkit.data.cifar10 import load_cifar10
from vqkit.data.images import ImageData
from vqkit.data.speech import load_speech_data
from vqkit.errors import VQKitError
from vqkit.evaluation.artifacts import read_evaluation
from vqkit.evaluation.evaluate import evaluate
from vqkit.figures.images import image_grid
from vqkit.models import load_model
from vqkit.quantizers.stats import histogram_summary
from vqkit.reports import gather, render, write_report
from vqkit.reports.page import fmt
from vqkit.reports.read import codebook_shape
from vqkit.training import tensorboard as tb
from vqkit.training.tensorboard import TensorBoardWriter, make_writer
from vqkit.training.train import train

# ---------------------------------------------------------------------------------------------
# A headless Chromium driven over the DevTools protocol on a pipe


def find_chromium() -> str | None:
    for name in (os.environ.get("VQKIT_CHROMIUM"), "chromium", "chromium-browser",
                 "google-chrome", "google-chrome-stable"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _high_fd(fd: int) -> int:
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return high


class Browser:
    """Just enough of the DevTools protocol to load a page, evaluate script and screenshot."""

    def __init__(self, executable: str, timeout_s: float = 60.0) -> None:
        self.timeout_s = timeout_s
        self.profile = tempfile.mkdtemp(prefix="vqkit-chromium-")
        to_r, self._to_w = os.pipe()  # we write commands, Chromium reads them on fd 3
        self._from_r, from_w = os.pipe()  # Chromium writes replies on fd 4, we read them
        # Move the child's ends above 9 so that the redirections below cannot clobber them.
        to_r, from_w = (_high_fd(fd) for fd in (to_r, from_w))
        args = [executable, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--mute-audio",
                "--disable-dev-shm-usage", "--hide-scrollbars",
                f"--user-data-dir={self.profile}", "--remote-debugging-pipe", "about:blank"]
        self.stderr = open(Path(self.profile) / "stderr.txt", "w+b")  # noqa: SIM115
        def child_fds() -> None:  # in the child: the pipe ends on fds 3 and 4
            os.dup2(to_r, 3)
            os.dup2(from_w, 4)

        # close_fds=False: it would close fds 3 and 4 after preexec_fn; Python's own fds are
        # not inheritable anyway.
        self.proc = subprocess.Popen(
            args, preexec_fn=child_fds, close_fds=False, stdin=subprocess.DEVNULL,
            stdout=self.stderr, stderr=self.stderr)
        os.close(to_r)
        os.close(from_w)
        self._next_id = 0
        self._replies: queue.Queue = queue.Queue()
        self.events: list[dict] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        buf = b""
        while True:
            chunk = os.read(self._from_r, 1 << 20)
            if not chunk:
                self._replies.put(None)
                return
            buf += chunk
            *messages, buf = buf.split(b"\0")
            for m in messages:
                self._replies.put(json.loads(m))

    def _next_message(self, deadline: float, waiting_for: str) -> dict:
        """The next message from Chromium; TimeoutError after ``deadline``, RuntimeError if it
        exited."""
        try:
            message = self._replies.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            raise TimeoutError(f"{waiting_for}; {self.log()}") from None
        if message is None:
            raise RuntimeError(f"Chromium exited; {self.log()}")
        return message

    def call(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._next_id += 1
        msg: dict = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout_s
        while True:
            reply = self._next_message(deadline, f"{method}: no reply from Chromium")
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str, session: str) -> dict:
        deadline = time.monotonic() + self.timeout_s
        seen = 0
        while True:
            for e in self.events[seen:]:
                if e.get("method") == method and e.get("sessionId") == session:
                    return e
            seen = len(self.events)
            self.events.append(self._next_message(deadline, f"waiting for {method}"))

    def log(self) -> str:
        self.stderr.flush()
        self.stderr.seek(0)
        return "Chromium stderr tail: " + self.stderr.read().decode(errors="replace")[-2000:]

    def close(self) -> None:
        with contextlib.suppress(Exception):  # it may be gone already
            self.call("Browser.close")
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_w)
        self.stderr.close()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# Waits for every <audio> to load its metadata (or fail) and every <img> to decode, then
# reports what the page holds.
PAGE_CHECKS = """(async () => {
  const audios = [...document.querySelectorAll('audio')];
  const settle = a => a.readyState >= 1 ? null : new Promise(done => {
    a.addEventListener('loadedmetadata', done, {once: true});
    a.addEventListener('error', done, {once: true});
    setTimeout(done, 15000);
  });
  await Promise.all(audios.map(settle));
  const imgs = [...document.images];
  await Promise.all(imgs.map(i => i.decode().catch(() => null)));
  const refs = [...document.querySelectorAll('[src],[href],[srcset]')].map(
    e => e.getAttribute('src') || e.getAttribute('srcset') || e.getAttribute('href'));
  return {
    title: document.title,
    background: getComputedStyle(document.body).backgroundColor,
    images: imgs.map(i => ({alt: i.alt, width: i.naturalWidth, height: i.naturalHeight,
                            src: i.currentSrc.slice(0, 22)})),
    audios: audios.map(a => ({duration: a.duration, error: a.error ? a.error.code : null})),
    external: refs.filter(u => !u.startsWith('data:') && !u.startsWith('#')),
    height: document.documentElement.scrollHeight,
  };
})()"""


def render_page(browser: Browser, page: Path, *, dark: bool = False, width: int = 1280,
                screenshot: Path | None = None) -> dict:
    """Open ``page``, run :data:`PAGE_CHECKS`, optionally save a full-page screenshot; returns
    the checks plus ``errors`` (console errors, exceptions, failed loads) and ``requests``
    (every URL the page asked for that is not a data: URI or the page itself)."""
    target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
    s = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    for domain in ("Page", "Runtime", "Log", "Network"):
        browser.call(f"{domain}.enable", session=s)
    browser.call("Emulation.setDeviceMetricsOverride",
                 {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False},
                 session=s)
    browser.call("Emulation.setEmulatedMedia", {"features": [
        {"name": "prefers-color-scheme", "value": "dark" if dark else "light"}]}, session=s)
    first = len(browser.events)
    browser.call("Page.navigate", {"url": page.resolve().as_uri()}, session=s)
    browser.wait_event("Page.loadEventFired", s)
    res = browser.call("Runtime.evaluate", {"expression": PAGE_CHECKS, "awaitPromise": True,
                                            "returnByValue": True}, session=s)
    if "exceptionDetails" in res:
        raise RuntimeError(f"page checks failed: {res['exceptionDetails']}")
    checks = res["result"]["value"]
    if screenshot is not None:
        shot = browser.call("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": checks["height"], "scale": 1}},
            session=s)
        screenshot.write_bytes(base64.b64decode(shot["data"]))
    events = [e for e in browser.events[first:] if e.get("sessionId") == s]
    errors = []
    for e in events:
        p = e.get("params", {})
        if e.get("method") == "Runtime.exceptionThrown":
            errors.append(p["exceptionDetails"].get("text", "exception"))
        elif e.get("method") == "Runtime.consoleAPICalled" and p.get("type") in ("error",
                                                                                  "assert"):
            errors.append(" ".join(str(a.get("value", a.get("description", "")))
                                   for a in p.get("args", [])))
        elif e.get("method") == "Log.entryAdded" and p["entry"].get("level") == "error":
            errors.append(p["entry"].get("text", ""))
    page_url = page.resolve().as_uri()
    requests = [e["params"]["request"]["url"] for e in events
                if e.get("method") == "Network.requestWillBeSent"]
    checks["errors"] = errors
    checks["requests"] = [u for u in requests if not u.startswith("data:") and u != page_url]
    browser.call("Target.closeTarget", {"targetId": target})
    return checks


# ---------------------------------------------------------------------------------------------
# Runs to report on


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    """A tiny image run (2 epochs) with an evaluation, its data in the official format."""
    tmp = tmp_path_factory.mktemp("image")
    make_cifar_dir(tmp / "data")
    cfg = get_preset("cifar10")
    cfg.model.hidden_channels, cfg.model.residual_channels, cfg.model.dim = 16, 8, 8
    cfg.quantizer.codebook_size = 32
    t = cfg.train
    t.batch_size, t.epochs, t.log_every_steps, t.warmup_steps = 8, 2, 1, 0
    cfg.data.root = str(tmp / "data")
    run = tmp / "run"
    train(cfg, run, progress=False)
    evaluate(run, json_path=run / "eval.json")
    return run


@pytest.fixture(scope="module")
def image_report(image_run):
    assert main(["report", str(image_run)]) == 0
    return image_run / "report.html"


@pytest.fixture(scope="module")
def speech_run(tmp_path_factory):
    """A tiny speech run: 3 speakers x 2 synthetic tones, 1 epoch, speaker CCC held out."""
    tmp_path = tmp_path_factory.mktemp("speech")
    mp = pytest.MonkeyPatch()
    mp.setenv("VQKIT_DATA", str(tmp_path / "vqkit-data"))
    sr = 8000
    for s, spk in enumerate(("AAA", "BBB", "CCC")):
        (tmp_path / "data" / spk / "wav").mkdir(parents=True)
        for u in range(2):
            t = np.arange(int((0.4 + 0.3 * u) * sr)) / sr
            y = 0.3 * np.sin(2 * np.pi * (120 + 60 * s + 30 * u) * (t + t**2))
            sf.write(tmp_path / "data" / spk / "wav" / f"utt_{u}.wav", y.astype(np.float32), sr)
    cfg = get_preset("l2arctic")
    apply_overrides(cfg, ["model.hidden_channels=16", "model.residual_channels=8",
                          "model.dim=8", "quantizer.codebook_size=16", "audio.n_mels=32",
                          "audio.griffin_lim_iters=8", "train.batch_size=4", "train.epochs=1",
                          "train.warmup_steps=0", "train.log_every_steps=1",
                          "data.train_split=speakers:AAA,BBB", "data.val_split=speakers:CCC"])
    cfg.data.root = str(tmp_path / "data")
    train(cfg, tmp_path / "run", progress=False)
    yield tmp_path / "run"
    mp.undo()


@pytest.fixture(scope="module")
def speech_report(speech_run):
    evaluate(speech_run, split="speakers:CCC")
    return write_report(speech_run)


# ---------------------------------------------------------------------------------------------
# Contents


DATA_URI = re.compile(r'(?:src|srcset)="data:([a-z]+/[a-z0-9.+-]+);base64,([A-Za-z0-9+/=]+)"')
PIXEL_IMG = re.compile(r'<img class="pixel" src="data:image/png;base64,([A-Za-z0-9+/=]+)"')
NOTE = "run <code>vqkit evaluate RUN</code> to add samples and the code histogram"


def embedded(page: str) -> list[tuple[str, bytes]]:
    return [(mime, base64.b64decode(b64, validate=True)) for mime, b64 in DATA_URI.findall(page)]


def section(page: str, ident: str) -> str:
    start = page.index(f'<section id="{ident}">')
    return page[start:page.index("</section>", start)]


def kpi(page: str, label: str) -> str:
    """The value shown above ``label`` in a KPI tile."""
    m = re.search(r'<div class="v">([^<]*)</div><div class="k">' + re.escape(label) + "</div>",
                  page)
    assert m, label
    return html.unescape(m.group(1))


def test_image_report_is_one_self_contained_page(image_report):
    page = image_report.read_text()
    for ident in ("summary", "evaluation", "training", "codebook", "samples", "config"):
        assert f'id="{ident}"' in page
    # every resource is embedded; nothing refers outside the page
    assert not re.search(r'(?:src|href|srcset)="(?!data:|#)', page)
    assert "<script" not in page and "prefers-color-scheme: dark" in page
    blobs = embedded(page)
    assert all(mime == "image/png" and data.startswith(b"\x89PNG") for mime, data in blobs)
    # loss, usage and histogram figures in two themes, the sample grid, the run's PNGs
    saved = len(list(image_report.parent.glob("*.png")))
    assert saved >= 2 and len(blobs) == 3 * 2 + 1 + saved
    assert "codebook_size" in page and "psnr" in page and "bits/pixel" in page
    assert NOTE not in page


def test_image_report_shows_the_evaluation_artifacts(image_run, image_report):
    page = image_report.read_text()
    ev = read_evaluation(image_run / "eval" / "val")
    ck = ev.checkpoint
    where = f"split &#x27;val&#x27;, best checkpoint (step {ck['step']}, epoch {ck['epoch']}), "
    assert where + "eval/val" in page
    # eval.json repeats eval/val's metrics: one column, not two
    assert section(page, "evaluation").count("<th>split ") == 1
    # the histogram numbers are those of the saved histogram and of evaluate's metrics
    counts = ev.code_counts
    codebook = section(page, "codebook")
    assert kpi(codebook, "codes used") == f"{int((counts > 0).sum())} / 32"
    assert kpi(codebook, "perplexity") == fmt(ev.metrics["perplexity"])
    assert kpi(codebook, "codebook usage") == fmt(ev.metrics["codebook_usage"])
    assert kpi(codebook, "codes counted") == fmt(int(counts.sum())) == "1,024"
    assert "Every code of the split (16 images)" in codebook
    assert kpi(page, "bits/pixel") == fmt(ev.metrics["bits_per_pixel"]) == "0.3125"
    assert kpi(page, "PSNR (dB) (val)") == fmt(ev.metrics["psnr"])
    # the sample grid is the saved samples, each row of originals over its reconstructions
    (b64,) = PIXEL_IMG.findall(section(page, "samples"))
    with Image.open(io.BytesIO(base64.b64decode(b64))) as im:
        shown = np.asarray(im)
    s = ev.samples
    assert np.array_equal(shown, image_grid(s.originals, 8, under=s.reconstructions, scale=4,
                                            gap=4, pair_gap=16, fill=0.5))
    assert shown.shape == (2 * (2 * 128 + 4) + 16, 8 * 128 + 7 * 4, 3)
    assert np.array_equal(shown[:128, :128], s.originals[0].repeat(4, 0).repeat(4, 1))
    assert np.array_equal(shown[132:260, 132:260], s.reconstructions[1].repeat(4, 0).repeat(4, 1))


def test_speech_report_plays_what_vqkit_reconstruct_writes(speech_run, speech_report, tmp_path):
    page = speech_report.read_text()
    blobs = embedded(page)
    wavs = [data for mime, data in blobs if mime == "audio/wav"]
    assert len(wavs) == 2 * 3 and all(w.startswith(b"RIFF") for w in wavs)
    assert "CCC/utt_0" in page and "CCC/utt_1" in page and "Griffin-Lim of the true mel" in page
    assert "bits/s" in page and "split &#x27;speakers:CCC&#x27;, best checkpoint" in page
    assert "rvq, 16 codes x 2 stages" in page
    # two spectrograms per utterance, three themed figures, the run's PNGs
    saved = len(list(speech_report.parent.glob("*.png")))
    assert sum(mime == "image/png" for mime, _ in blobs) == 2 * 2 + 3 * 2 + saved
    # the players hold, as 16-bit PCM, the original and the two WAVs vqkit reconstruct writes
    src = [speech_run.parent / "data" / "CCC" / "wav" / f"utt_{u}.wav" for u in range(2)]
    assert main(["reconstruct", str(speech_run), *map(str, src), "--out",
                 str(tmp_path / "rec")]) == 0
    ev = read_evaluation(speech_run / "eval" / "speakers-CCC")
    for i, path in enumerate(src):
        original, oracle, recon = (sf.read(io.BytesIO(w), dtype="float32")[0]
                                   for w in wavs[3 * i:3 * i + 3])
        theirs = {"oracle": f"{path.stem}.griffinlim.wav", "reconstruction": f"{path.stem}.wav"}
        for kind, shown in (("oracle", oracle), ("reconstruction", recon)):
            y, _ = sf.read(tmp_path / "rec" / theirs[kind], dtype="float32")
            assert shown.shape == y.shape
            assert np.abs(shown - np.clip(y, -1, 1)).max() <= 1 / 32768, (i, kind)
        assert np.abs(original - ev.samples[i].audio["original"]).max() <= 1 / 32768
    assert kpi(section(page, "codebook"), "codes counted per stage") == fmt(
        int(ev.code_counts[0].sum()))


def test_report_without_an_evaluation_says_how_to_add_one(image_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(image_run, run, ignore=shutil.ignore_patterns("eval", "eval*.json"))
    page = render(gather(run))
    for ident in ("evaluation", "codebook", "samples"):
        assert NOTE in section(page, ident)
    assert "<picture>" in section(page, "training")  # curves from metrics.jsonl
    assert 'class="pixel"' not in page and "code frequencies" not in page
    assert kpi(page, "bits/pixel") == "0.3125"  # from the config: 5 bits per 4 x 4 pixels
    # an unreadable evaluation folder is left out with its reason
    (run / "eval" / "val").mkdir(parents=True)
    (run / "eval" / "val" / "metrics.json").write_text('{"format_version": 99}')
    page = render(gather(run))
    assert "Left out:" in page and "evaluation format 99" in page and NOTE in page


def test_report_on_a_run_written_by_the_previous_vqkit(tmp_path, capsys):
    run = tmp_path / "legacy"
    shutil.copytree(Path(__file__).parent / "data" / "legacy_run_v1", run)
    # what `vqkit evaluate --json RUN/eval.json` wrote before evaluation folders existed
    legacy = {"run": str(run), "split": "val", "checkpoint": "best", "mse": 0.0625,
              "psnr": 12.5, "perplexity": 3.5, "codebook_usage": 0.25}
    (run / "eval.json").write_text(json.dumps(legacy))
    assert main(["report", str(run)]) == 0
    page = (run / "report.html").read_text()
    assert "12.5" in section(page, "evaluation") and "eval.json" in page
    assert NOTE in section(page, "codebook") and NOTE in section(page, "samples")
    assert "best checkpoint: epoch 1, step 8" in page and kpi(page, "bits/pixel") == "0.3125"
    assert kpi(page, "PSNR (dB) (val)") == "12.5"
    # evaluated now (its config has no data root), the run gets a histogram and samples
    make_cifar_dir(tmp_path / "cifar")
    evaluate(run, data=str(tmp_path / "cifar"), split="val")
    capsys.readouterr()
    assert main(["report", str(run)]) == 0
    assert "report.html" in capsys.readouterr().out
    page = (run / "report.html").read_text()
    ev = read_evaluation(run / "eval" / "val")
    assert ev.checkpoint == {"name": "best", "step": 8, "epoch": 1}
    assert NOTE not in page and "eval/val" in page and 'class="pixel"' in page
    assert section(page, "evaluation").count("<th>split ") == 2  # eval/val and eval.json
    assert kpi(section(page, "codebook"), "codes used") == (
        f"{int((ev.code_counts > 0).sum())} / 32")


def test_report_loads_no_weights(image_run, tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("vqkit report loaded weights")

    monkeypatch.setattr(torch.nn.Module, "load_state_dict", refuse)
    monkeypatch.setattr(safetensors.torch, "load_file", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    assert main(["report", str(image_run), "--out", str(tmp_path / "r.html")]) == 0
    assert 'class="pixel"' in (tmp_path / "r.html").read_text()
    # and, in a fresh interpreter, imports neither the models nor checkpoint loading
    code = ("import sys; from vqkit.cli import main; "
            f"assert main(['report', {str(image_run)!r}, '--out', {str(tmp_path / 's.html')!r}])"
            " == 0; print(sorted(m for m in sys.modules if m.startswith('vqkit.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    modules = eval(out.strip().splitlines()[-1])
    assert "vqkit.reports.page" in modules
    assert not [m for m in modules if m.startswith(("vqkit.models", "vqkit.checkpoint",
                                                    "vqkit.training"))], modules


def test_report_errors_are_one_line(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "nope" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    with pytest.raises(VQKitError, match="config.json"):
        write_report(tmp_path / "empty")
    with pytest.raises(SystemExit):  # options of the live report are gone
        main(["report", str(tmp_path / "empty"), "--no-samples"])


def test_codebook_shape_of_a_saved_config():
    assert codebook_shape({"quantizer": {"kind": "fsq", "levels": [8, 5, 5, 5]}}) == (1000, 1)
    assert codebook_shape({"quantizer": {"kind": "rvq", "codebook_size": 512,
                                         "num_quantizers": 4}}) == (512, 4)
    assert codebook_shape({"quantizer": {"kind": "vq", "codebook_size": 512,
                                         "num_quantizers": 4}}) == (512, 1)


def test_formatting():
    assert fmt(1234567) == "1,234,567" and fmt(0.000012) == "1.200e-05"
    assert fmt(3.14159265) == "3.1416" and fmt(0.123456) == "0.1235"
    assert histogram_summary(np.array([[1, 1, 0, 0]]))["perplexity"] == pytest.approx(2.0)


def test_image_grid_puts_each_row_of_originals_above_its_reconstructions():
    rng = np.random.default_rng(0)
    orig = rng.integers(0, 256, size=(4, 2, 3, 3), dtype=np.uint8)  # (N, H, W, C)
    rec = rng.integers(0, 256, size=(4, 2, 3, 3), dtype=np.uint8)
    grid = image_grid(orig, 3, under=rec, scale=2, gap=1, pair_gap=3, fill=0.5)
    # 2 pairs of rows of 2 * 2 px + 1 gap, 3 px apart; 3 columns of 3 * 2 px, 1 px apart
    assert grid.dtype == np.uint8 and grid.shape == (2 * (4 + 1 + 4) + 3, 3 * 6 + 2, 3)
    expected = np.full_like(grid, 128)
    for i in range(4):
        r, k = divmod(i, 3)
        top, left = r * (9 + 3), k * (6 + 1)
        expected[top:top + 4, left:left + 6] = orig[i].repeat(2, 0).repeat(2, 1)
        expected[top + 5:top + 9, left:left + 6] = rec[i].repeat(2, 0).repeat(2, 1)
    assert np.array_equal(grid, expected)
    # TensorBoard's call: originals and reconstructions stacked, one row each, white 1 px gaps
    both = np.concatenate([orig, rec]).astype(np.float32) / 255
    tb = image_grid(both, ncols=4)
    assert tb.dtype == np.float32 and tb.shape == (2 * (2 + 1) - 1, 4 * (3 + 1) - 1, 3)
    assert np.array_equal(tb, image_grid(both[:4], 4, under=both[4:]))
    assert np.array_equal(tb[3:, 4:7], both[5]) and (tb[2] == 1).all() and (tb[:, 3] == 1).all()


# ---------------------------------------------------------------------------------------------
# In a browser


@pytest.fixture(scope="module")
def browser():
    exe = find_chromium()
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("CI: Chromium is required for the browser test; run "
                        "scripts/install-system-deps.sh")
        pytest.skip("no Chromium installed (scripts/install-system-deps.sh installs it)")
    with Browser(exe) as b:
        yield b


def _assert_rendered(checks: dict, n_audio: int) -> None:
    assert not checks["errors"], checks["errors"]
    assert not checks["requests"] and not checks["external"], checks
    assert checks["images"] and all(i["width"] > 0 and i["height"] > 0
                                    for i in checks["images"]), checks["images"]
    assert len(checks["audios"]) == n_audio
    assert all(a["error"] is None and a["duration"] > 0 for a in checks["audios"]), checks


def _save_screenshot(shot: Path) -> None:
    """Keep screenshots for CI artifacts when VQKIT_SCREENSHOT_DIR is set."""
    dest = os.environ.get("VQKIT_SCREENSHOT_DIR")
    if dest:
        Path(dest).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(dest) / shot.name)


@pytest.mark.parametrize("dark", [False, True], ids=["light", "dark"])
def test_image_report_renders_in_chromium(browser, image_report, tmp_path, dark):
    shot = tmp_path / f"report-image-{'dark' if dark else 'light'}.png"
    checks = render_page(browser, image_report, dark=dark, screenshot=shot)
    _assert_rendered(checks, n_audio=0)
    saved = len(list(image_report.parent.glob("*.png")))
    assert len(checks["images"]) == 3 + 1 + saved  # themed figures, sample grid, saved PNGs
    assert (checks["background"] == "rgb(21, 23, 27)") == dark, checks["background"]
    _check_screenshot(shot, dark)
    _save_screenshot(shot)


def test_speech_report_renders_in_chromium(browser, speech_report, tmp_path):
    shot = tmp_path / "report-speech.png"
    checks = render_page(browser, speech_report, screenshot=shot)
    _assert_rendered(checks, n_audio=6)
    _check_screenshot(shot, dark=False)
    _save_screenshot(shot)


def _check_screenshot(shot: Path, dark: bool) -> None:
    with Image.open(shot) as im:
        assert im.width == 1280 and im.height > 900
        px = np.asarray(im.convert("L"), dtype=np.float32)
    assert px.std() > 10  # something was drawn, not a blank page
    corner = px[:20, :20].mean()  # page background
    assert (corner < 60) if dark else (corner > 200)


# ---------------------------------------------------------------------------------------------
# TensorBoard


def test_tensorboard_missing_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard -> ImportError
    with pytest.raises(VQKitError, match=r"vqkit\[tensorboard\]"):
        tb.make_writer(tmp_path)


class FakeSummaryWriter:
    """Records calls with SummaryWriter's signatures."""

    def __init__(self):
        self.calls: list[tuple] = []

    def add_scalar(self, tag, value, step):
        self.calls.append(("scalar", tag, value, step))

    def add_image(self, tag, img, step, dataformats="CHW"):
        self.calls.append(("image", tag, img, step, dataformats))

    def add_audio(self, tag, snd, step, sample_rate=44100):
        self.calls.append(("audio", tag, snd, step, sample_rate))

    def flush(self):
        pass

    def close(self):
        self.calls.append(("close",))


def test_tensorboard_writer_converts_images_audio_and_logs_samples(image_run, tmp_path):
    fake = FakeSummaryWriter()
    w = TensorBoardWriter(tmp_path / "tb", backend=fake)
    w.add_scalar("train/loss", torch.tensor(0.5), 3)
    w.add_image("a", np.random.rand(3, 8, 10), 1)  # CHW float
    w.add_image("b", np.zeros((8, 10), dtype=np.uint8), 1)  # grey
    w.add_audio("c", np.full(100, 2.0), 2, sample_rate=8000)
    model, cfg = load_model(image_run)
    images, _ = load_cifar10(cfg.data.root, "val")
    w.log_samples(model, ImageData(images), cfg, step=7, n=4)
    w.close()
    assert fake.calls[0] == ("scalar", "train/loss", 0.5, 3)
    for call in fake.calls[1:3]:
        assert call[2].dtype == np.uint8 and call[2].shape == (8, 10, 3) and call[4] == "HWC"
    audio = fake.calls[3]
    assert audio[2].shape == (1, 100) and float(audio[2].max()) == 1.0 and audio[4] == 8000
    grid = fake.calls[4]
    assert grid[1] == "val/originals_over_reconstructions" and grid[3] == 7
    assert grid[2].shape == (2 * 33 - 1, 4 * 33 - 1, 3)  # originals row over reconstructions
    assert fake.calls[-1] == ("close",) and not model.training


def test_tensorboard_logs_speech_mels_and_audio(speech_run):
    model, cfg = load_model(speech_run)
    fake = FakeSummaryWriter()
    mp = pytest.MonkeyPatch()
    mp.setenv("VQKIT_DATA", str(speech_run.parent / "vqkit-data"))
    try:
        val = load_speech_data(cfg, cfg.data.val_split, training=False)
    finally:
        mp.undo()
    TensorBoardWriter(speech_run / "tb", backend=fake).log_samples(model, val, cfg, step=3)
    (image, tag, mel, _, _), (audio, atag, snd, _, sr) = fake.calls
    assert tag == "val/mel_original_over_reconstruction" and mel.shape[0] == 2 * 32
    assert atag == "val/reconstruction" and snd.shape[0] == 1 and sr == 16000


def test_tensorboard_writes_event_files(tmp_path):
    pytest.importorskip("tensorboard", reason="optional: pip install 'vqkit[tensorboard]'")
    w = make_writer(tmp_path)
    w.add_scalar("x", 1.0, 0)
    w.add_image("img", np.random.rand(4, 4, 3), 0)
    w.add_audio("snd", np.zeros(800), 0, sample_rate=8000)
    w.close()
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
