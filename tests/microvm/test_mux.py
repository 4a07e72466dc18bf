"""The multiplexed streams between the host's relay and the guest role, and the relay's
copy-out into the host's workspace: bounded, and confined to the workspace."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sandbox_tool.engines.vm.relay import _CopyOut
from sandbox_tool.runner import mux


def test_frames_survive_any_split() -> None:
    stream = b"".join(
        [mux.encode(mux.STDOUT, b"hello"), mux.encode(mux.CONTROL), mux.encode_json(mux.EXIT, {})]
    )
    for cut in range(1, len(stream)):
        decoder = mux.Decoder(mux.TO_HOST)
        frames = decoder.feed(stream[:cut]) + decoder.feed(stream[cut:])
        assert frames == [(mux.STDOUT, b"hello"), (mux.CONTROL, b""), (mux.EXIT, b"{}")]
        assert decoder.pending == 0


def test_an_oversized_frame_is_refused_before_its_body() -> None:
    decoder = mux.Decoder(mux.TO_HOST, max_payload=10)
    with pytest.raises(mux.MuxError, match="11 bytes"):
        decoder.feed(mux.HEADER.pack(mux.STDOUT, 11))  # no body sent: nothing is buffered


def test_a_tag_from_the_wrong_side_is_refused() -> None:
    with pytest.raises(mux.MuxError, match="unknown frame tag"):
        mux.Decoder(mux.TO_HOST).feed(mux.encode(mux.KILL))  # the guest never sends K


def test_data_is_cut_in_chunks_and_empty_data_sends_nothing() -> None:
    frames = list(mux.chunks(mux.CHANNEL, b"x" * (mux.CHUNK + 1)))
    assert [len(f) for f in frames] == [mux.HEADER.size + mux.CHUNK, mux.HEADER.size + 1]
    assert list(mux.chunks(mux.CHANNEL, b"")) == []  # an empty frame would end the stream


def test_a_file_arrives_whole(tmp_path: Path) -> None:
    sink = mux.FileSink()
    target = tmp_path / "f"
    data = os.urandom(3 * mux.CHUNK + 5)
    frames = mux.Decoder(mux.TO_HOST).feed(b"".join(mux.file_frames("work/f", data)))
    for tag, payload in frames:
        if tag == mux.FILE:
            sink.header(payload, lambda path, size: os.open(target, os.O_WRONLY | os.O_CREAT))
        else:
            sink.data(payload)
    assert target.read_bytes() == data and not sink.open


def test_a_file_cannot_carry_more_than_it_announced() -> None:
    sink = mux.FileSink()
    sink.header(json.dumps({"path": "work/f", "size": 2}).encode(), lambda p, s: None)
    with pytest.raises(mux.MuxError, match="more file bytes"):
        sink.data(b"abc")


def _workspace(tmp_path: Path) -> dict[str, str]:
    paths = {name: str(tmp_path / name) for name in ("work", "tmp", "meta")}
    for path in paths.values():
        os.mkdir(path)
    return paths


@pytest.mark.parametrize("path", ["/etc/passwd", "work/../../x", "tmp/x", "meta", "x/y"])
def test_the_copy_out_stays_in_the_workspace(tmp_path: Path, path: str) -> None:
    copy_out = _CopyOut(_workspace(tmp_path), 100)  # type: ignore[arg-type]
    with pytest.raises(mux.MuxError, match="outside the workspace"):
        copy_out.open(path, 1)


def test_the_copy_out_keeps_to_its_budget_and_says_so(tmp_path: Path) -> None:
    paths = _workspace(tmp_path)
    copy_out = _CopyOut(paths, 10)  # type: ignore[arg-type]
    fd = copy_out.open("work/sub/a.txt", 8)
    assert fd is not None
    os.close(fd)
    assert (tmp_path / "work" / "sub" / "a.txt").exists()
    assert copy_out.open("work/b.txt", 3) is None  # 8 + 3 > 10
    copy_out.finish()
    summary = json.loads((tmp_path / "meta" / ".scratch.json").read_text())
    assert "budget" in summary["reason"]


def test_a_changed_input_replaces_the_read_only_copy_never_through_a_link(tmp_path: Path) -> None:
    paths = _workspace(tmp_path)
    exposed = tmp_path / "work" / "in.csv"
    exposed.write_text("old")
    exposed.chmod(0o444)
    (tmp_path / "outside").write_text("host")
    (tmp_path / "work" / "link").symlink_to(tmp_path / "outside")
    copy_out = _CopyOut(paths, 100)  # type: ignore[arg-type]
    for name in ("in.csv", "link"):
        fd = copy_out.open(f"work/{name}", 3)
        assert fd is not None
        os.write(fd, b"new")
        os.close(fd)
    assert exposed.read_text() == "new"
    assert (tmp_path / "outside").read_text() == "host"  # the link was replaced, not followed
