"""Which files of an image folder are read as images: image suffixes (TIFF too), not hidden files or folders (macOS's
._ and .DS_Store files, .ipynb_checkpoints), folder links followed; the files not read are one warning."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest
from PIL import Image

from image_rows import random_arrays
from simclr_core.config import DataConfig
from simclr_core.data import folder_memo
from simclr_core.data.encoded import open_encoded

pytestmark = pytest.mark.usefixtures("isolated_data_caches")


def _save(path: Path, seed: int, fmt: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(random_arrays(1, seed)[0]).save(path, format=fmt)


def _awkward_folder(root: Path) -> Path:
    """train/cat: 0.png, 1.tif, notes.txt, .DS_Store, ._0.png (AppleDouble), .ipynb_checkpoints/0.png, more -> a
    folder elsewhere holding 2.png; train/dog: 0.jpg."""
    cat = root / "train" / "cat"
    _save(cat / "0.png", 0)
    _save(cat / "1.tif", 1, "TIFF")
    (cat / "notes.txt").write_text("labelled by hand")
    (cat / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (cat / "._0.png").write_bytes(b"\0\5\26\7" + bytes(60))            # not a PNG: it would be unreadable
    _save(cat / ".ipynb_checkpoints" / "0.png", 3)
    _save(root / "elsewhere" / "2.png", 4)
    os.symlink(root / "elsewhere", cat / "more")
    _save(root / "train" / "dog" / "0.jpg", 5, "JPEG")
    return root


def test_images_are_files_of_image_suffixes_outside_hidden_names_and_links_are_followed(tmp_path):
    root = _awkward_folder(tmp_path / "photos")
    cfg = DataConfig(dataset="imagefolder", data_dir=str(root))
    message = (r"^in the class folders of \S+/train, 2 hidden files, 1 .txt file and 1 hidden folder \(e.g. "
               r"\S+/train/cat/.DS_Store\) are not read: images are files ending in .jpg, .jpeg, .png, .webp, .bmp, "
               r".gif, .tif, .tiff, not hidden")
    with pytest.warns(UserWarning, match=message):
        split = open_encoded(cfg, "train")
    names = [os.path.relpath(p, root / "train") for p in split.paths]
    assert names == ["cat/0.png", "cat/1.tif", "cat/more/2.png", "dog/0.jpg"] and split.labels.tolist() == [0, 0, 0, 1]
    folder_memo.forget()
    with pytest.warns(UserWarning, match=message):                  # from the index kept on disk: told again
        assert open_encoded(cfg, "train").paths == split.paths


def test_a_folder_of_images_only_is_read_without_a_warning(tmp_path):
    root = tmp_path / "photos"
    for i, cls in enumerate(("cat", "dog")):
        _save(root / "train" / cls / f"{i}.png", i)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(open_encoded(DataConfig(dataset="imagefolder", data_dir=str(root)), "train")) == 2


def test_files_beside_the_images_of_a_folder_without_labels_are_told(tmp_path):
    root = tmp_path / "photos"
    for i in range(3):
        _save(root / "train" / f"{i}.png", i)
    (root / "train" / "captions.csv").write_text("0.png,a cat\n")
    with pytest.warns(UserWarning, match=r"^in \S+/train, 1 .csv file \(e.g. \S+/train/captions.csv\) is not read"):
        split = open_encoded(DataConfig(dataset="imagefolder", data_dir=str(root)), "train")
    assert len(split) == 3 and split.num_classes == 0


def test_the_resident_path_decodes_the_same_images(tmp_path):
    from simclr_core.data import load_images

    root = _awkward_folder(tmp_path / "photos")
    cfg = DataConfig(dataset="imagefolder", data_dir=str(root), loader="resident", image_size=16, train_limit=None)
    with pytest.warns(UserWarning, match=r"2 hidden files, 1 .txt file and 1 hidden folder"):
        images = load_images(cfg, "train")
    assert images.labels.tolist() == [0, 0, 0, 1] and images.images.shape == (4, 3, 16, 16)
    expected = [random_arrays(1, seed)[0] for seed in (0, 1, 4)]               # 0.png, 1.tif, more/2.png
    assert all((images.images[i].permute(1, 2, 0).numpy() == expected[i]).all() for i in range(3))


def test_folder_links_back_into_the_dataset_are_not_followed_and_are_told(tmp_path):
    """A link up to the split (a cycle) or across to another class folder would read images twice, under the
    wrong class's label; a link to a folder outside the dataset is followed (above)."""
    root = tmp_path / "photos"
    for i, cls in enumerate(("cat", "dog")):
        _save(root / "train" / cls / f"{i}.png", i)
    os.symlink("..", root / "train" / "cat" / "up")
    os.symlink(root / "train" / "cat", root / "train" / "dog" / "cats")
    cfg = DataConfig(dataset="imagefolder", data_dir=str(root))
    with pytest.warns(UserWarning, match=r"2 cyclic or cross-class folder links \(e.g. \S+/train/cat/up\) are not read"):
        split = open_encoded(cfg, "train")
    assert [os.path.relpath(p, root / "train") for p in split.paths] == ["cat/0.png", "dog/1.png"]
    assert split.labels.tolist() == [0, 1]
    from simclr_core.data.locate import folder_files
    assert len(folder_files(root)) == 2                       # what fingerprints the folder: no cycle either


def test_a_file_name_that_is_not_utf8_and_a_dangling_link_still_identify_the_folder(tmp_path):
    """Archives made on old systems hold Latin-1 names; a link whose target is gone is still a listed name. Neither
    may stop the record of which images a run read (data_identity), which tells two folders' runs apart."""
    from simclr_core.data.feed import data_identity
    from simclr_core.data.locate import locate_source
    from simclr_core.data.catalog import dataset_spec

    identities = []
    for name, extra in (("a", b"caf\xe9.png"), ("b", b"gone.png")):
        root = tmp_path / name
        _save(root / "train" / "cat" / "0.png", 0)
        path = os.path.join(os.fsencode(root / "train" / "cat"), extra)
        if name == "a":
            _save(Path(os.fsdecode(path)), 1)
        else:
            os.symlink(b"nowhere.png", path)
        cfg = DataConfig(dataset="imagefolder", data_dir=str(root))
        source = locate_source(dataset_spec("imagefolder"), str(root), "train")
        assert source.fingerprint() and source.content_identity()
        identities.append(data_identity(cfg))
    assert None not in identities and identities[0] != identities[1]
