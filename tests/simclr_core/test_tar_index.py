"""The tar header reader behind the WebDataset index, against Python's tarfile on archives tarfile writes."""
import gzip
import io
import tarfile

import pytest

from image_rows import tar_shard
from simclr_core.data.tar_index import BLOCK, _number, index_tar, tar_members
from simclr_core.validation import ConfigError


def add_file(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))


def awkward_archive(path, fmt: int) -> None:
    """Members that take each kind of header: short, long (> 100 and > 255 bytes: ustar prefix, GNU 'L' or pax
    records), non-ASCII names, an empty file, a directory, a symlink, a pax global header, sizes on and off the
    512-byte blocks."""
    long_dir = "d" * 120
    with tarfile.open(path, "w", format=fmt, pax_headers={"comment": "global"} if fmt == tarfile.PAX_FORMAT
                      else None) as archive:
        directory = tarfile.TarInfo("images")
        directory.type = tarfile.DIRTYPE
        archive.addfile(directory)
        add_file(archive, "images/0001.jpg", b"\xff\xd8" + bytes(range(256)) * 3)
        add_file(archive, "images/0001.cls", b"7\n")
        add_file(archive, f"{long_dir}/0002.png", b"p" * BLOCK)
        add_file(archive, f"{long_dir}/0002.cls", b"3")
        if fmt != tarfile.USTAR_FORMAT:                      # ustar cannot store these names
            add_file(archive, "x" * 300 + ".jpg", b"long")
            add_file(archive, "chats/été-ü.jpg", b"accents")
        link = tarfile.TarInfo("images/alias.jpg")
        link.type, link.linkname = tarfile.SYMTYPE, "0001.jpg"
        archive.addfile(link)
        add_file(archive, "images/empty.txt", b"")


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT],
                         ids=["ustar", "gnu", "pax"])
def test_members_names_offsets_and_sizes_equal_tarfiles(tmp_path, fmt):
    path = tmp_path / "shard.tar"
    awkward_archive(path, fmt)
    with tarfile.open(path) as archive:
        expected = [(m.name, m.offset_data, m.size) for m in archive if m.isfile()]
    with open(path, "rb") as handle:
        found = list(tar_members(handle, str(path)))
    assert found == expected and len(found) >= 5
    data = path.read_bytes()
    assert data[found[0][1]:found[0][1] + found[0][2]] == b"\xff\xd8" + bytes(range(256)) * 3


def test_the_index_pairs_each_image_with_its_label_in_key_order(tmp_path):
    path = tmp_path / "train-000000.tar"
    with tarfile.open(path, "w") as archive:
        for key, label in (("b", 2), ("a", 0), ("c", 1)):
            add_file(archive, f"{key}.cls", f"{label}\n".encode())
            add_file(archive, f"{key}.JPG", key.encode() * 10)
    index = index_tar([str(path)])
    assert index["members"].tolist() == [b"a.JPG", b"b.JPG", b"c.JPG"]
    assert index["labels"].tolist() == [0, 2, 1] and index["shard"].tolist() == [0, 0, 0]
    data = path.read_bytes()
    assert [data[o:o + s] for o, s in zip(index["offset"], index["size"])] == [b"a" * 10, b"b" * 10, b"c" * 10]


def test_what_the_index_does_not_read_is_listed_a_second_image_and_a_sample_without_one(tmp_path):
    path = tmp_path / "train-000000.tar"
    with tarfile.open(path, "w") as archive:
        add_file(archive, "a.png", b"first")
        add_file(archive, "a.cls", b"1")
        add_file(archive, "a.jpg", b"second")
        add_file(archive, "b.jpg", b"only")
        add_file(archive, "b.cls", b"0")
        add_file(archive, "c.heic", b"a format not read")
        add_file(archive, "c.cls", b"2")
        add_file(archive, "d.json", b"{}")                    # a sample's other fields, beside its image, are fine
        add_file(archive, "d.jpg", b"image")
    index = index_tar([str(path)])
    assert index["members"].tolist() == [b"a.png", b"b.jpg", b"d.jpg"] and index["labels"].tolist() == [1, 0, -1]
    assert index["left_out"].tolist() == [f"a.jpg in {path}: sample 'a' holds a.png already".encode(),
                                          f"sample 'c' in {path} has no image member (c.heic, c.cls)".encode()]
    data = path.read_bytes()
    assert data[index["offset"][0]:index["offset"][0] + index["size"][0]] == b"first"


def test_hidden_members_are_left_out_not_taken_for_samples(tmp_path):
    """macOS's tar adds ._x.png beside x.png (AppleDouble metadata, no image): it was a sample without a .cls,
    an error in a labelled shard, and an image that failed to decode in an unlabelled one. A ./ prefix is no
    hidden name."""
    path = tar_shard(tmp_path / "train-000000.tar", {"./s0.png": b"image", "./s0.cls": b"1",
                                                      "./._s0.png": b"\0\5\26\7", ".ipynb_checkpoints/s1.png": b"stale"})
    index = index_tar([str(path)])
    assert index["members"].tolist() == [b"./s0.png"] and index["labels"].tolist() == [1]
    assert index["left_out"].tolist() == [f"./._s0.png in {path}: a hidden member (as macOS's ._ files)".encode(),
                                          f".ipynb_checkpoints/s1.png in {path}: a hidden member (as macOS's ._ "
                                          "files)".encode()]


def test_sizes_of_8_gib_and_more_are_read_from_gnus_base_256_field():
    assert _number(b"\x80" + (9 << 30).to_bytes(11, "big"), "shard.tar", 0) == 9 << 30
    assert _number(b"00000001750\0", "shard.tar", 0) == 0o1750


def small_shard(path) -> bytes:
    with tarfile.open(path, "w") as archive:
        for i in range(3):
            add_file(archive, f"{i}.jpg", bytes(700))
            add_file(archive, f"{i}.cls", b"0")
    return path.read_bytes()


def test_a_compressed_shard_is_named_with_how_to_decompress_it(tmp_path):
    data = small_shard(tmp_path / "plain.tar")
    (tmp_path / "train-000000.tar").write_bytes(gzip.compress(data))
    with pytest.raises(ConfigError, match=r"train-000000.tar is a gzip-compressed file: .* `gunzip -c` it"):
        index_tar([str(tmp_path / "train-000000.tar")])


def test_a_truncated_shard_is_named_not_indexed_past_its_end(tmp_path):
    data = small_shard(tmp_path / "shard.tar")
    # Each 700-byte image takes a header and 2 blocks, each label a header and 1 block: the second image's header
    # lies at byte 2560 and its data from 3072. Cut inside that data:
    (tmp_path / "shard.tar").write_bytes(data[:3072 + 100])
    with pytest.raises(ConfigError, match=r"shard.tar ends inside its member at byte 2560 .* is truncated"):
        index_tar([str(tmp_path / "shard.tar")])


def test_a_damaged_header_and_a_file_that_is_no_tar_are_named(tmp_path):
    data = bytearray(small_shard(tmp_path / "shard.tar"))
    data[1536 + 10] ^= 0xFF                              # the name in the second member's header (0.cls)
    (tmp_path / "shard.tar").write_bytes(bytes(data))
    with pytest.raises(ConfigError, match=r"shard.tar: the member header at byte 1536 is damaged"):
        index_tar([str(tmp_path / "shard.tar")])
    (tmp_path / "notes.tar").write_bytes(b"these are notes, not an archive\n" * 40)
    with pytest.raises(ConfigError, match=r"notes.tar is not a tar archive"):
        index_tar([str(tmp_path / "notes.tar")])


def with_checksum(header: bytearray) -> bytearray:
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    return header


def test_gnu_headers_fields_after_the_magic_are_not_read_as_a_name_prefix(tmp_path):
    # GNU tar keeps access and change times where POSIX ustar keeps the name's prefix (bytes 345-500).
    path = tmp_path / "gnu.tar"
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as archive:
        add_file(archive, "0001.jpg", b"jpeg")
    data = bytearray(path.read_bytes())
    assert data[257:265] == b"ustar  \0"
    data[345:357] = b"14716615240\0"                                     # an atime
    data[:BLOCK] = with_checksum(data[:BLOCK])
    path.write_bytes(bytes(data))
    with open(path, "rb") as handle:                 # (Python's tarfile reads the time as a directory here)
        assert [name for name, _, _ in tar_members(handle, str(path))] == ["0001.jpg"]


def test_a_damaged_pax_header_is_named(tmp_path):
    path = tmp_path / "pax.tar"
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as archive:
        add_file(archive, "é" * 60 + ".jpg", b"jpeg")                    # a pax record carries the name
    data = bytearray(path.read_bytes())
    assert data[156:157] == b"x"
    record = data.index(b" path=", BLOCK)
    data[BLOCK:record] = b"x" * (record - BLOCK)                          # the record's length: not a number
    path.write_bytes(bytes(data))
    with pytest.raises(ConfigError, match=r"pax.tar: the pax header at byte 0 is damaged"):
        index_tar([str(path)])
