"""Smoke runs of every benchmark script on tiny synthetic data, so none can rot unseen; each
checks the numbers its JSON holds, not only that it ran."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
from conftest import make_cifar_dir

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
TINY_IMAGE = ["--set", "model.hidden_channels=16", "--set", "model.residual_channels=8",
              "--set", "model.dim=8", "--set", "quantizer.codebook_size=32",
              "--set", "train.warmup_steps=0"]


@pytest.fixture
def bench_modules(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(BENCH))
    monkeypatch.setenv("VQKIT_DATA", str(tmp_path / "vqkit-data"))
    yield
    for name in ("speech", "speech_cache", "notebook_reference", "cifar10", "quantizers",
                 "threads", "image_folder", "codec", "prior_samples"):
        sys.modules.pop(name, None)


def test_cifar10_benchmark_measures_every_contender(bench_modules, tmp_path):
    import cifar10

    root = make_cifar_dir(tmp_path / "data", n_per_batch=16).parent
    out = tmp_path / "cifar10.json"
    assert cifar10.main(["--data", str(root), "--epochs", "1", "--rounds", "1",
                         "--throughput-steps", "2", "--batch-size", "8", *TINY_IMAGE,
                         "--json", str(out), "--work", str(tmp_path / "work")]) == 0
    res = json.loads(out.read_text())
    assert res["train_images"] == 64 and res["val_images"] == 16
    c = res["contenders"]
    assert set(c) == {"notebook", "cifar10-seed", "cifar10"}
    assert c["notebook"]["throughput_ratio"] == 1.0 and c["notebook"]["psnr_gain_db"] == 0.0
    for m in c.values():
        assert m["images_per_s"] > 0 and m["flops_per_image"] > 0 and m["n_images"] == 16
        assert 5 < m["psnr"] < 60 and 0 < m["codebook_usage"] <= 1
        assert m["bits_per_image"] == 64 * math.log2(m["codebook_size"])
    # the shrunk vqkit models cost far fewer FLOPs than the full-size notebook model
    assert c["cifar10"]["flops_ratio"] < 0.2


def test_quantizers_benchmark_trains_the_variants_asked_for(bench_modules, tmp_path):
    import quantizers

    root = make_cifar_dir(tmp_path / "data", n_per_batch=16).parent
    out = tmp_path / "quantizers.json"
    assert quantizers.main(["--data", str(root), "--epochs", "1", "--only", "fsq [8,8,8]",
                            "--only", "rvq x2", *TINY_IMAGE, "--json", str(out),
                            "--work", str(tmp_path / "work")]) == 0
    res = json.loads(out.read_text())
    assert res["train_images"] == 64
    v = res["variants"]
    assert set(v) == {"fsq [8,8,8] (512 codes)", "rvq x2 (ema, k-means, restart)"}
    assert v["fsq [8,8,8] (512 codes)"]["bits_per_image"] == 64 * 9
    assert v["rvq x2 (ema, k-means, restart)"]["bits_per_image"] == 64 * 2 * 5  # 32 codes
    for m in v.values():
        assert 5 < m["psnr"] < 60 and 0 < m["codebook_usage"] <= 1 and m["n_images"] == 16


def test_speech_benchmark_trains_and_evaluates_every_contender(bench_modules, tmp_path):
    import speech
    from test_speech_training import write_corpus

    corpus = write_corpus(tmp_path / "corpus")
    out = tmp_path / "speech.json"
    rc = speech.main(["--data", str(corpus), "--train-speakers", "AAA,BBB", "--test-speaker",
                      "CCC", "--minutes", "0.01", "--contenders", "notebook,l2arctic",
                      "--skip-cache", "--work", str(tmp_path / "work"), "--json", str(out),
                      "--set", "audio.griffin_lim_iters=4"])
    assert rc == 0
    res = json.loads(out.read_text())["results"]
    assert set(res) == {"notebook", "l2arctic"}
    for r in res.values():
        assert r["steps"] >= 1 and r["n_utterances"] == 4 and r["stoi_groups"] >= 1
        assert 0 < r["codebook_usage"] <= 1 and r["mel_mse"] > 0
        # barely trained: intelligibility far below the Griffin-Lim ceiling of the true mel
        assert 0 <= r["stoi"] < r["stoi_oracle"] and r["stoi_oracle"] > 0.5


def test_speech_benchmark_sweeps_the_stages_of_the_codec(bench_modules, tmp_path, capsys):
    import speech
    from test_speech_training import write_corpus

    corpus = write_corpus(tmp_path / "corpus")
    out = tmp_path / "speech.json"
    assert speech.main(["--data", str(corpus), "--train-speakers", "AAA,BBB", "--test-speaker",
                        "CCC", "--minutes", "0.01", "--contenders", "l2arctic,l2arctic-codec",
                        "--skip-cache", "--work", str(tmp_path / "work"), "--json", str(out),
                        "--set", "audio.griffin_lim_iters=2", "--set", "model.hidden_channels=16",
                        "--set", "model.residual_channels=8"]) == 0
    res = json.loads(out.read_text())["results"]
    assert "rate_curve" not in res["l2arctic"]  # no quantizer dropout: one rate
    curve = res["l2arctic-codec"]["rate_curve"]
    assert [c["stages"] for c in curve] == list(range(1, 19))
    assert [c["bitrate_bps"] for c in curve] == [125.0 * n for n in range(1, 19)]
    table = capsys.readouterr().out.splitlines()
    assert sum(line.startswith("l2arctic-codec") for line in table) == 1 + 18  # + the summary


def test_speech_cache_benchmark_times_both_methods(bench_modules, tmp_path):
    pytest.importorskip("librosa")
    import speech_cache
    from test_speech_training import write_corpus

    corpus = write_corpus(tmp_path / "corpus")
    out = tmp_path / "cache.json"
    assert speech_cache.main(["--data", str(corpus), "--json", str(out),
                              "--workdir", str(tmp_path / "work")]) == 0
    res = json.loads(out.read_text())
    assert res["files"] == 12
    for key in ("notebook_s", "vqkit_1worker_s", "vqkit_2workers_s", "vqkit_rerun_s"):
        assert res[key] > 0, key


def test_threads_benchmark_measures_alone_and_beside_a_rival(bench_modules, tmp_path):
    import threads

    data = make_cifar_dir(tmp_path / "cifar")
    out = tmp_path / "threads.json"
    assert threads.main(["--data", str(data), "--steps", "2", "--rounds", "1",
                         "--policies", "1thread,passive", "--head-start", "0.5",
                         "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert set(result["policies"]) == {"1thread", "passive"}
    for m in result["policies"].values():
        assert m["alone"] > 0 and m["contended"] > 0
        assert math.isclose(m["contended_over_alone"], m["contended"] / m["alone"])


def test_image_folder_benchmark_compares_folder_and_pickle(bench_modules, tmp_path):
    import image_folder

    sys.path.insert(0, str(BENCH.parent / "scripts"))
    import make_image_folder

    sys.path.pop(0)
    make_cifar_dir(tmp_path / "d", n_per_batch=16)
    make_image_folder.main([str(tmp_path / "d" / "cifar-10-batches-py"), str(tmp_path / "png"),
                            "--workers", "1"])
    out = tmp_path / "b.json"
    assert image_folder.main(["--pickle", str(tmp_path / "d"), "--folder", str(tmp_path / "png"),
                              "--steps", "2", "--rounds", "1", "--json", str(out), *TINY_IMAGE,
                              "--set", "train.batch_size=8"]) == 0
    res = json.loads(out.read_text())
    assert res["n_train"] == {"pickle": 64, "folder": 64}
    assert res["ratio_folder_to_pickle"] > 0 and math.isfinite(res["ratio_folder_to_pickle"])


def test_codec_benchmark_puts_vqkit_beside_jpeg_and_webp(bench_modules, tmp_path, cifar_root,
                                                         tiny_image_config):
    import codec
    from test_compress import train_tiny_runs

    vq, prior, _ = train_tiny_runs(tmp_path, cifar_root, tiny_image_config)
    out, png = tmp_path / "codec.json", tmp_path / "rd.png"
    assert codec.main(["--run", str(vq), "--prior", str(prior), "--n", "6", "--qualities",
                       "10,90", "--json", str(out), "--plot", str(png)]) == 0
    pts = json.loads(out.read_text())["points"]
    assert [p["codec"] for p in pts] == ["jpeg", "jpeg", "webp", "webp", "vqkit+prior",
                                         "vqkit+unigram"]
    for p in pts:
        assert 0 < p["bpp_payload"] < p["bpp_file"] and 5 < p["psnr"] < 60
    jpeg = [p for p in pts if p["codec"] == "jpeg"]
    assert jpeg[0]["bpp_payload"] < jpeg[1]["bpp_payload"] and jpeg[0]["psnr"] < jpeg[1]["psnr"]
    # both vqkit files hold the same codes: the same reconstruction
    assert pts[4]["psnr"] == pts[5]["psnr"] and pts[4]["raw_bpp"] == 64 * 5 / 1024
    assert png.stat().st_size > 0


def test_codec_benchmark_speech_rows_rate_against_stoi(bench_modules, tmp_path, capsys):
    import codec
    from test_prior import prior_config
    from test_speech_prior import tiny_speech_run
    from test_speech_training import write_corpus

    from vqkit.training.train import train

    # 12 utterances: too few for the hash split's val part, so speaker splits
    run = tiny_speech_run(tmp_path, write_corpus(tmp_path / "corpus"))
    train(prior_config(run, epochs=1), tmp_path / "prior", progress=False)
    out = tmp_path / "codec-speech.json"
    assert codec.main(["--run", str(run), "--prior", str(tmp_path / "prior"), "--split",
                       "speakers:CCC", "--n", "4", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["task"] == "speech" and res["n_utterances"] == 4 and res["identical_decodes"]
    rows = {p["codec"]: p for p in res["points"]}
    assert set(rows) == {"vqkit raw", "vqkit+prior", "vqkit+unigram"}
    assert rows["vqkit raw"]["bits_per_code"] == 4  # 16 codes per stage
    # untrained model: the coded rates stay near the raw rate, and the file adds its header
    for name in ("vqkit+prior", "vqkit+unigram"):
        assert 0 < rows[name]["bps_payload"] < 1.2 * rows["vqkit raw"]["bps_payload"]
        assert rows[name]["bps_file"] > rows[name]["bps_payload"]
        assert 0 <= rows[name]["stoi"] <= 1 and rows[name]["stoi_oracle"] > 0
    assert "vqkit+prior" in capsys.readouterr().out


def test_prior_samples_benchmark_classifies_conditional_samples(bench_modules, tmp_path, capsys):
    import prior_samples
    from test_prior import prior_config
    from test_speech_prior import tiny_speech_run, write_transcripts
    from test_speech_training import write_corpus

    from vqkit.training.train import train

    corpus = write_corpus(tmp_path / "corpus")
    write_transcripts(corpus)
    pcfg = prior_config(tiny_speech_run(tmp_path, corpus), epochs=1)
    pcfg.prior.speech_classes = "transcript"
    train(pcfg, tmp_path / "prior", progress=False)
    out = tmp_path / "s.json"
    assert prior_samples.main(["--prior", str(tmp_path / "prior"), "--n-per-class", "2",
                               "--seconds", "0.2", "--train-split", "speakers:AAA,BBB",
                               "--split", "speakers:CCC", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["classes"] == ["no", "yes"] and res["real_items"] == 4
    assert 0 <= res["sample_accuracy"] <= 1 and set(res["per_class"]) == {"no", "yes"}
    assert "asked class" in capsys.readouterr().out
