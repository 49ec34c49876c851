"""Scoring an archive into a run folder (``python -m lrclr predict ... --out FOLDER/``): two gloo
processes under torchrun write what one process writes, byte for byte, and what ``--out FILE.csv``
writes; a run killed mid-way resumes scoring only its missing chunks; a resume of other inputs,
findings or model is refused."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lrclr.batch.run_folder import RunPlan, assign_chunks
from lrclr.cli import main
from lrclr.model.config import tiny_config
from lrclr.model.lrclr_model import LRCLRModel
from tests.support.images import encode
from tests.support.paths import REPO_ROOT, TEST_DATA

FINDINGS = "Cardiomegaly,Effusion,pleural thickening"
BROKEN = {"truncated_siim_20k.dcm": "truncated or damaged", "notes.png": "not a PNG, JPEG or DICOM"}


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    torch.manual_seed(0)
    return LRCLRModel(tiny_config()).eval().save_pretrained(tmp_path_factory.mktemp("tiny") / "tiny-model")


def _film(seed: int, width: int, height: int) -> bytes:
    """A smooth gray image of its own size and content (letterboxes differ from image to image)."""
    rng = np.random.default_rng(seed)
    small = rng.random((max(2, height // 16), max(2, width // 16)))
    image = Image.fromarray((small * 255).astype(np.uint8), mode="L").resize((width, height), Image.BILINEAR)
    return encode(image, "PNG")


def _write_studies(folder: Path, names: list[str], seed: int = 0) -> None:
    """Generated PNGs, except the names of the fixtures in tests/data (two DICOMs and BROKEN)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        if (TEST_DATA / name).is_file():
            shutil.copy(TEST_DATA / name, folder / name)
        else:
            (folder / name).write_bytes(_film(seed + i, 96 + 13 * i, 128 - 3 * i))


def _predict(args: list, *, processes: int = 1, env: dict | None = None, **popen) -> subprocess.CompletedProcess:
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)] if processes > 1 else []
    command = [sys.executable, *launcher, "-m", "lrclr", "predict", *map(str, args)]
    return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}, **popen)


@pytest.mark.slow  # 55 s on 2 busy cores: three runs of 20 files, one under torchrun
def test_two_gloo_processes_write_the_bytes_one_process_and_a_csv_file_run_write(model_folder, tmp_path):
    study = tmp_path / "study"
    _write_studies(study, [*(f"case-{i:02d}.png" for i in range(16)), "siim_pneumothorax_example.dcm",
                           "monochrome1_example.dcm", *BROKEN])
    archive = tmp_path / "studies.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for path in sorted(study.iterdir()):
            out.write(path, f"2024/{path.name}")
    common = [archive, "--model", model_folder, "--findings", FINDINGS, "--batch-size", "2", "--device", "cpu"]
    folder_args = ["--chunk-size", "4", "--threads", "1", "--parquet"]
    one = _predict([*common, "--out", f"{tmp_path / 'one'}/", *folder_args])
    assert one.returncode == 0, one.stderr
    two = _predict([*common, "--out", f"{tmp_path / 'two'}/", *folder_args, "--workers", "2"], processes=2)
    assert two.returncode == 0, two.stderr
    csv_file = _predict([*common, "--out", tmp_path / "plain.csv"])
    assert csv_file.returncode == 0, csv_file.stderr

    merged = (tmp_path / "two" / "predictions.csv").read_bytes()
    assert merged == (tmp_path / "one" / "predictions.csv").read_bytes() == (tmp_path / "plain.csv").read_bytes()
    assert (tmp_path / "two" / "predictions.parquet").read_bytes() == (tmp_path / "one" / "predictions.parquet").read_bytes()
    # Both ranks scored: chunks 1, 3, 5 by rank 0 and 2, 4 by rank 1 (20 files, 4 per chunk).
    assert "rank 0: chunk 5 of 5 written" in two.stderr and "rank 1: chunk 4 of 5 written" in two.stderr
    assert "18 scored, 2 failed" in two.stderr

    header, *rows = list(csv.reader(io.StringIO(merged.decode(), newline="")))
    assert len(rows) == 20 and header == ["image", "Cardiomegaly", "Effusion", "pleural thickening",
                                          "not a chest film because", "error"]
    errors = {row[0]: row[-1] for row in rows if row[-1]}
    assert set(errors) == set(BROKEN)
    for name, reason in BROKEN.items():
        assert reason in errors[name]
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "two" / "predictions.parquet").to_pylist()
    assert [row["image"] for row in table] == [row[0] for row in rows]
    assert f"{table[0]['Cardiomegaly']:.6f}" == rows[0][1] and table[0]["error"] == ""
    assert table[[row["image"] for row in table].index("notes.png")]["Effusion"] is None


def test_a_killed_run_resumes_scoring_only_its_missing_chunks(model_folder, tmp_path):
    """A named pipe among the inputs holds rank 0 inside its third chunk until the test kills the
    whole run (launcher, ranks and loader workers: one process group), so the kill lands at a known
    point: rank 0 has written chunks 1 and 3, rank 1 all of its own (2, 4, 6, 8, 10)."""
    first, last = tmp_path / "a", tmp_path / "c"
    _write_studies(first, [*(f"a-{i}.png" for i in range(8)), "truncated_siim_20k.dcm"])
    _write_studies(last, [*(f"c-{i}.png" for i in range(9)), "notes.png"], seed=50)
    held_back = _film(99, 140, 120)
    pipe = tmp_path / "b" / "held-back.png"
    pipe.parent.mkdir()
    os.mkfifo(pipe)
    out = tmp_path / "run"
    common = ["--model", model_folder, "--findings", FINDINGS, "--device", "cpu", "--batch-size", "2"]
    # One thread per rank, as the reference run below has: a CPU's last digits depend on it.
    args = [first, pipe, last, *common, "--chunk-size", "2", "--threads", "1", "--out", f"{out}/"]
    log = tmp_path / "killed.log"
    with open(log, "w") as stderr:
        launcher = subprocess.Popen(
            [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
             "-m", "lrclr", "predict", *map(str, args)],
            cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"})
    expected = {0, 1, 2, 3, 5, 7, 9}  # chunk indices (the log counts from 1)
    deadline = time.monotonic() + 240
    while _parts(out) != expected and launcher.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    _kill_job(launcher.pid)
    launcher.wait(timeout=60)
    assert _parts(out) == expected, log.read_text()[-3000:]
    assert not (out / "predictions.csv").exists()
    before = {path.name: (path.stat().st_ino, path.stat().st_mtime_ns) for path in (out / "parts").glob("*.csv")}

    # Blocks until the resumed run opens the pipe; a daemon, so a failed resume cannot hang pytest.
    feeder = threading.Thread(target=lambda: pipe.write_bytes(held_back), daemon=True)
    feeder.start()
    resumed = _predict(args, processes=2)
    feeder.join(timeout=60)
    assert resumed.returncode == 0, resumed.stderr
    assert "10 chunks of 2, 7 done before" in resumed.stderr
    assert _parts(out) == set(range(10))
    assert {name: (path.stat().st_ino, path.stat().st_mtime_ns) for name, path in
            ((p.name, p) for p in (out / "parts").glob("*.csv")) if name in before} == before  # not rewritten
    sessions = json.loads((out / "manifest.json").read_text())["sessions"]
    assert [(s["chunks_done_before"], s["chunks_to_score"]) for s in sessions] == [(0, 10), (7, 3)]

    (tmp_path / "b2").mkdir()
    (tmp_path / "b2" / "held-back.png").write_bytes(held_back)
    reference = _predict([first, tmp_path / "b2" / "held-back.png", last, *common, "--out", tmp_path / "one.csv"])
    assert reference.returncode == 0, reference.stderr
    assert (out / "predictions.csv").read_bytes() == (tmp_path / "one.csv").read_bytes()
    assert "18 scored, 2 failed" in resumed.stderr


def _kill_job(launcher: int) -> None:
    """SIGKILL the launcher and every rank with its loader workers, as a scheduler ends a job.
    torchrun starts each rank in a session of its own, so the launcher's group alone would leave
    the ranks running."""
    ranks = [int(stat.split()[0]) for stat in (_read(path) for path in Path("/proc").glob("[0-9]*/stat"))
             if stat and int(stat.rsplit(")", 1)[1].split()[1]) == launcher]
    for pid in [*ranks, launcher]:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:  # already gone
            pass


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:  # a process that ended while /proc was read
        return ""


def _parts(out: Path) -> set[int]:
    return {int(p.stem.split("-")[1]) for p in (out / "parts").glob("chunk-*.csv")} if (out / "parts").is_dir() else set()


def test_a_resume_with_other_inputs_findings_or_model_is_refused(model_folder, tmp_path, capsys):
    study = tmp_path / "study"
    _write_studies(study, [f"case-{i}.png" for i in range(5)])
    out = f"{tmp_path / 'run'}/"
    base = ["predict", str(study), "--model", str(model_folder), "--findings", FINDINGS, "--device", "cpu",
            "--batch-size", "2", "--chunk-size", "2", "--threads", str(torch.get_num_threads()), "--workers", "0"]
    assert main([*base, "--out", out]) == 0
    merged = (tmp_path / "run" / "predictions.csv").read_bytes()
    parts = sorted((tmp_path / "run" / "parts").glob("*.csv"))
    stamps = [p.stat().st_mtime_ns for p in parts]
    capsys.readouterr()

    (study / "case-9.png").write_bytes(_film(9, 100, 100))
    assert main([*base, "--out", out]) == 2
    message = capsys.readouterr().err
    assert "holds another run, so it is not resumed" in message and "the run has 5 files" in message
    assert "this command 6 files" in message and "Traceback" not in message
    (study / "case-9.png").unlink()

    assert main([*base[:5], "Cardiomegaly", *base[6:], "--out", out]) == 2
    assert "--findings: the run has ('Cardiomegaly', 'Effusion', 'pleural thickening'), this command ('Cardiomegaly',)" \
        in capsys.readouterr().err
    torch.manual_seed(1)
    other = LRCLRModel(tiny_config()).eval().save_pretrained(tmp_path / "other-model")
    assert main([*base[:3], str(other), *base[4:], "--out", out]) == 2
    assert "--model: the run has model tiny-model" in capsys.readouterr().err
    assert main([*base, "--batch-size", "1", "--out", out]) == 2  # another batching: other last digits
    assert "--batch-size: the run has 2, this command 1" in capsys.readouterr().err

    # The same run again: nothing is rescored; a deleted part is the only chunk scored.
    parts[1].unlink()
    assert main(["merge", str(tmp_path / "run")]) == 2
    assert "1 of 3 chunks have no part yet (chunks 1)" in capsys.readouterr().err
    assert main([*base, "--out", out]) == 0
    assert "3 chunks of 2, 2 done before; this process scores 1" in capsys.readouterr().err
    assert [p.stat().st_mtime_ns for p in (parts[0], parts[2])] == [stamps[0], stamps[2]]
    assert (tmp_path / "run" / "predictions.csv").read_bytes() == merged
    assert main(["merge", str(tmp_path / "run")]) == 0 and (tmp_path / "run" / "predictions.csv").read_bytes() == merged
    parts[2].write_bytes(parts[0].read_bytes())  # a part that is not its chunk's (2 rows where 1 belongs)
    assert main(["merge", str(tmp_path / "run")]) == 2
    assert "chunk-000002.csv is not this run's part for chunk 2 (2 rows, 1 expected)" in capsys.readouterr().err
    assert (tmp_path / "run" / "predictions.csv").read_bytes() == merged  # the merged file is left as it was
    assert not list((tmp_path / "run").glob(".*.tmp"))


def test_folder_options_are_refused_where_they_do_not_apply(model_folder, tmp_path, capsys, monkeypatch):
    study = tmp_path / "study"
    _write_studies(study, ["case.png"])
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("not a run")
    base = ["predict", str(study), "--model", str(model_folder), "--device", "cpu"]
    assert main([*base, "--out", str(tmp_path / "p.csv"), "--parquet", "--workers", "0"]) == 2
    assert "--workers, --parquet apply only when --out is a folder" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "notes")]) == 2  # an existing folder is a run folder
    assert "is not empty and holds no archive run" in capsys.readouterr().err
    assert main([*base, "--out", f"{tmp_path / 'run'}/", "--batch-size", "3", "--chunk-size", "4"]) == 2
    assert "--chunk-size (4) must be a positive multiple of --batch-size (3)" in capsys.readouterr().err
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main([*base, "--out", str(tmp_path / "p.csv")]) == 2
    assert "under torchrun each process writes part files into a folder" in capsys.readouterr().err


def test_a_chunk_s_batches_do_not_depend_on_the_number_of_processes():
    plan = RunPlan(23, "", False, "m", "", ("Effusion",), chunk_size=6, batch_size=3, precision="float32", parquet=False)
    assert plan.chunks == 4 and list(plan.chunk_range(3)) == [18, 19, 20, 21, 22]
    everything = plan.batches(range(plan.chunks))
    assert everything[-2:] == [[18, 19, 20], [21, 22]]
    for world in (1, 2, 3, 5):
        shares = [assign_chunks(range(plan.chunks), rank, world) for rank in range(world)]
        assert sorted(c for share in shares for c in share) == list(range(plan.chunks))
        assert sorted(b for share in shares for b in plan.batches(share)) == everything
    # A resume shares out the missing chunks, not the original assignment: both ranks get work.
    assert [assign_chunks([1, 3, 5, 7], rank, 2) for rank in (0, 1)] == [[1, 5], [3, 7]]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_folder_run_on_a_gpu_gives_the_cpus_probabilities(tmp_path):
    """Where a GPU is present: pinned, non-blocking copies and the loader workers change no result
    beyond float32's GPU-CPU difference (within 5e-6, README "GPU"), and no error or gate text."""
    from lrclr.bundled import DEFAULT_DEMO_DIR, DEFAULT_MODEL_DIR

    common = ["predict", str(DEFAULT_DEMO_DIR), str(TEST_DATA), "--model", str(DEFAULT_MODEL_DIR), "--batch-size", "8"]
    assert main([*common, "--device", "cuda", "--out", f"{tmp_path / 'gpu'}/", "--workers", "2"]) == 0
    assert main([*common, "--device", "cpu", "--out", str(tmp_path / "cpu.csv")]) == 0
    gpu, cpu = ([row for row in csv.reader(open(path, newline="", encoding="utf-8"))]
                for path in (tmp_path / "gpu" / "predictions.csv", tmp_path / "cpu.csv"))
    assert gpu[0] == cpu[0] and len(gpu) == len(cpu) == 42
    for g, c in zip(gpu[1:], cpu[1:]):
        assert g[0] == c[0] and g[-2:] == c[-2:]  # name, gate, error
        numbers = [(float(a), float(b)) for a, b in zip(g[1:15], c[1:15]) if a and b]
        assert all(abs(a - b) <= 2e-5 for a, b in numbers), (g[0], numbers)
