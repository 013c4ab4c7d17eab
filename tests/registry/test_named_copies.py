"""Two local copies of a named dataset share run ids (ids leave data.data_dir out), and a named dataset records no
data_identity: a finished paper-scale run on a partial copy (ImageNet class folders of 2,003 images) was skipped as
done by `run` on the full copy, and the report averaged it with full runs. final.json's `train_split_images` now
tells the copies apart: `run` refuses such a run before anything starts."""
from __future__ import annotations

import re
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fake_train import counting_train, write_fake_final
from registry import get_experiment
from registry.__main__ import main, select
from registry.launch import execute_run, require_same_images
from registry.overrides import parse_overrides
from registry.store import RunStore
from simclr_core.data import catalog, feed
from simclr_core.validation import ConfigError

CLASSES = ("n01440764", "n01443537", "n01484850")
RUN = "normalize+0.1-*"


@pytest.fixture(autouse=True)
def three_class_imagenet(tmp_path, monkeypatch):
    """ImageNet's catalog entry with 3 classes instead of 1000, so that a tree the tests can make meets it."""
    monkeypatch.setitem(catalog._SPECS, "imagenet", replace(catalog.dataset_spec("imagenet"), num_classes=3))
    monkeypatch.setenv("SIMCLR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("SIMCLR_DATA_DIR", raising=False)


def imagenet_copy(root: Path, per_class: int) -> Path:
    """ILSVRC's layout, `per_class` training images and 2 validation images per class."""
    for split, count in (("train", per_class), ("val", 2)):
        for c, name in enumerate(CLASSES):
            (root / split / name).mkdir(parents=True)
            for i in range(count):
                Image.fromarray(np.full((32, 32, 3), 40 * c + i, np.uint8)).save(root / split / name / f"{i}.JPEG")
    return root


def words(folder: Path, *more: str) -> tuple[str, ...]:
    return ("data.dataset=imagenet", f"data.data_dir={folder}", "data.image_size=32", "data.train_limit=none",
            "data.test_limit=none", *more)


def smoke_run(folder: Path, *more: str):
    runs = get_experiment("temperature_norm").runs("smoke", parse_overrides(list(words(folder, *more))))
    return select(runs, [RUN])[0]


def finished_run(results: Path, folder: Path, recorded: dict, *more: str):
    """The run RUN of temperature_norm at smoke scale on `folder`, finished (fake training) with `recorded` in its
    final.json."""
    run = smoke_run(folder, *more)
    assert execute_run(run, results, counting_train).state == "done"
    final = RunStore(results).final(run.run_id)
    write_fake_final(results / run.run_id, {**final, **recorded})
    return run


def call_run(monkeypatch, capsys, results: Path, folder: Path, *more: str) -> tuple[int, str, str]:
    monkeypatch.setenv("SIMCLR_RESULTS_DIR", str(results))
    code = main(["run", "temperature_norm", "--scale", "smoke", "--only", RUN, *words(folder, *more)])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def trained_on(folder: Path, images: int) -> dict:
    return {"data_loader": "resident", "data_source": f"imagefolder {folder}/train split 'train'",
            "train_split_images": images, "train_split_classes": 3, "unreadable_images": 0}


def test_a_finished_run_of_a_partial_copy_is_refused_naming_both_counts_and_the_ways_out(tmp_path, monkeypatch,
                                                                                          capsys):
    partial, full = imagenet_copy(tmp_path / "partial", 2), imagenet_copy(tmp_path / "full", 5)
    run = finished_run(tmp_path / "results", full, trained_on(partial, 6))
    before = (tmp_path / "results" / run.run_id / "final.json").read_text()
    code, out, err = call_run(monkeypatch, capsys, tmp_path / "results", full)
    assert code == 2 and err.splitlines()[-1] == (
        f"error: {run.run_id} is done, but on 6 training images (imagefolder {partial}/train split 'train'), and "
        f"data.data_dir={full} holds 15: run ids leave the data folder out (a path of one machine), so the runs of "
        "two copies of imagenet share them. Keep each copy's runs in a results folder of its own (--results-dir DIR), "
        "or train them again on these images with --redo. No run was started.")
    assert len(err.splitlines()) == 1
    assert (tmp_path / "results" / run.run_id / "final.json").read_text() == before
    # sweeps refuse it too, without --redo (a sweep has none)
    with pytest.raises(ConfigError, match=r"holds 15: .* \(--results-dir DIR\)\. No run was started\.$"):
        require_same_images([run], RunStore(tmp_path / "results"), again="")


def test_the_count_compared_is_the_one_data_train_limit_keeps(tmp_path, monkeypatch, capsys):
    full, partial = imagenet_copy(tmp_path / "full", 5), imagenet_copy(tmp_path / "partial", 2)
    limit = ("data.loader=resident", "data.train_limit=8")
    run = finished_run(tmp_path / "results", full, trained_on(full, 8), *limit)
    code, out, err = call_run(monkeypatch, capsys, tmp_path / "results", full, *limit)
    assert code == 0 and "summary: 1 skipped" in out, err
    code, out, err = call_run(monkeypatch, capsys, tmp_path / "results", partial, *limit)
    assert code == 2 and err.splitlines()[-1].startswith(
        f"error: {run.run_id} is done, but on 8 training images (imagefolder {full}/train split 'train'), and "
        f"data.data_dir={partial} holds 6: "), err
    other = finished_run(tmp_path / "more", full, trained_on(full, 8), "data.loader=resident", "data.train_limit=12")
    with pytest.raises(ConfigError, match=re.escape(f"{other.run_id} is done, but on 8 training images (imagefolder "
                                                    f"{full}/train split 'train'), and data.data_dir={full} holds 15, "
                                                    "of which data.train_limit=12 keeps 12: ")):
        require_same_images([other], RunStore(tmp_path / "more"))


def test_a_run_of_a_copy_with_as_many_images_is_this_ones(tmp_path, monkeypatch, capsys):
    """The same images elsewhere (another machine's path, parquet instead of folders) count the same."""
    full = imagenet_copy(tmp_path / "full", 5)
    finished_run(tmp_path / "results", full, trained_on(tmp_path / "elsewhere", 15))
    code, out, err = call_run(monkeypatch, capsys, tmp_path / "results", full)
    assert code == 0 and "summary: 1 skipped" in out, err
    for name in CLASSES:                                      # the same folder, now partial: refused
        shutil.rmtree(full / "train" / name)
        (full / "train" / name).mkdir()
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(full / "train" / name / "0.JPEG")
    feed._local_split_sizes.cache_clear()            # a folder is listed once per process
    code, out, err = call_run(monkeypatch, capsys, tmp_path / "results", full)
    assert code == 2 and "is done, but on 15 training images" in err and "holds 3:" in err, err


def test_images_the_resident_path_could_not_decode_count_as_held(tmp_path):
    """train_split_images leaves out the resident path's unreadable images: the copy held them all the same."""
    full = imagenet_copy(tmp_path / "full", 5)
    run = finished_run(tmp_path / "results", full, {**trained_on(full, 13), "unreadable_images": 2})
    require_same_images([run], RunStore(tmp_path / "results"))
    write_fake_final(tmp_path / "results" / run.run_id, {**trained_on(full, 13), "data_loader": "stream",
                                                         "unreadable_images": 2})
    with pytest.raises(ConfigError, match="is done, but on 13 training images"):
        require_same_images([run], RunStore(tmp_path / "results"))


def test_a_run_recorded_before_final_json_counted_its_images_is_not_refused(tmp_path, monkeypatch, capsys):
    full = imagenet_copy(tmp_path / "full", 5)
    run = finished_run(tmp_path / "results", full, trained_on(full, 6))
    final = RunStore(tmp_path / "results").final(run.run_id)
    with pytest.raises(ConfigError, match="is done, but on 6 training images"):
        require_same_images([run], RunStore(tmp_path / "results"))
    write_fake_final(tmp_path / "results" / run.run_id,
                     {k: v for k, v in final.items() if k not in ("train_split_images", "train_split_classes")})
    code, out, err = call_run(monkeypatch, capsys, tmp_path / "results", full)
    assert code == 0 and "summary: 1 skipped" in out, err


@pytest.mark.parametrize("where", ["absent", "hub"])
def test_data_not_local_here_is_not_checked(tmp_path, monkeypatch, where):
    """Not found here (require_data names that) or on the Hub: nothing here to count, so nothing is refused."""
    full = imagenet_copy(tmp_path / "full", 5)
    run = finished_run(tmp_path / "results", full, trained_on(full, 6))
    with pytest.raises(ConfigError, match="is done, but on 6 training images"):
        require_same_images([run], RunStore(tmp_path / "results"))
    if where == "absent":
        shutil.rmtree(full)
        feed._local_split_sizes.cache_clear()        # a folder is listed once per process
    else:
        from simclr_core.data.locate import locate_source

        hub = replace(locate_source(catalog.dataset_spec("imagenet"), str(full), "train"), kind="hub")
        monkeypatch.setattr(feed, "locate_source", lambda *a, **k: hub)
        feed._local_split_sizes.cache_clear()
    require_same_images([run], RunStore(tmp_path / "results"))
