"""Which wheels a free-threaded target installs, best first."""

from __future__ import annotations

import pytest

from ftaudit.errors import UsageError
from ftaudit.model import Target
from ftaudit.targets import (
    best_tag_rank,
    parse_platforms,
    parse_targets,
    supported_tags,
    targets_for_requires_python,
)

T313, T314, T315 = (Target(major=3, minor=m) for m in (13, 14, 15))


def test_parse_targets_forms() -> None:
    assert parse_targets("3.14t") == (T314,)
    assert parse_targets("cp313t, 3.15t,3.14t") == (T313, T314, T315)
    assert parse_targets("all") == (T313, T314, T315)
    with pytest.raises(UsageError):
        parse_targets("3.12t")
    with pytest.raises(UsageError):
        parse_targets(",")


def test_requires_python_limits_default_targets() -> None:
    assert targets_for_requires_python(">=3.14") == (T314, T315)
    assert targets_for_requires_python("<3.14") == (T313,)
    assert targets_for_requires_python(None) == (T313, T314, T315)


@pytest.mark.parametrize("target", [T313, T314])
def test_abi3_and_gil_wheels_do_not_install_before_abi3t(target: Target) -> None:
    tags = set(supported_tags(target, "linux-x86_64"))
    v = f"{target.major}{target.minor}"
    assert f"cp{v}-cp{v}t-manylinux_2_17_x86_64" in tags
    assert f"cp{v}-cp{v}-manylinux_2_17_x86_64" not in tags
    assert "cp39-abi3-manylinux_2_17_x86_64" not in tags
    assert "py3-none-any" in tags


def test_abi3t_installs_on_315t() -> None:
    tags = supported_tags(T315, "linux-x86_64")
    assert "cp315-abi3t-manylinux_2_28_x86_64" in tags
    assert "cp315-abi3-manylinux_2_28_x86_64" not in tags


def test_specific_wheels_beat_generic_ones() -> None:
    specific = best_tag_rank(["cp314-cp314t-manylinux_2_28_x86_64"], T314, "linux-x86_64")
    generic = best_tag_rank(["py3-none-any"], T314, "linux-x86_64")
    assert specific is not None and generic is not None and specific < generic
    assert best_tag_rank(["cp314-cp314t-win_amd64"], T314, "linux-x86_64") is None


def test_other_platforms() -> None:
    assert "cp314-cp314t-win_amd64" in supported_tags(T314, "windows-amd64")
    mac = supported_tags(T314, "macos-arm64")
    assert "cp314-cp314t-macosx_11_0_arm64" in mac
    assert "cp314-cp314t-macosx_11_0_universal2" in mac
    assert "cp314-cp314t-manylinux2014_aarch64" in supported_tags(T314, "linux-aarch64")
    assert parse_platforms("all")[0] == "linux-x86_64"
    with pytest.raises(UsageError):
        parse_platforms("beos-ppc")


def test_which_extension_files_a_target_loads() -> None:
    from ftaudit.targets import extension_loadable

    assert extension_loadable("bson/_cbson.cpython-313t-x86_64-linux-gnu.so", T313)
    assert not extension_loadable("bson/_cbson.cpython-313-x86_64-linux-gnu.so", T313)
    assert not extension_loadable("bson/_cbson.cpython-310-x86_64-linux-gnu.so", T313)
    assert not extension_loadable("bson/_cbson.cpython-313t-x86_64-linux-gnu.so", T314)
    assert extension_loadable("pkg/_x.cp313t-win_amd64.pyd", T313)
    assert extension_loadable("pkg/_x.cpython-313t-darwin.so", T313)
    assert not extension_loadable("pkg/_x.abi3.so", T314)
    assert extension_loadable("pkg/_x.abi3t.so", T315) and not extension_loadable(
        "pkg/_x.abi3t.so", T314
    )
    assert extension_loadable("pkg/_x.so", T313) and extension_loadable("pkg/_x.pyd", T313)
