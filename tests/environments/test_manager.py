"""Building, sharing and cleaning up environments, offline from a local wheel directory
(the index is a closed loopback port). Each environment here is one small package."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sandbox_tool import PackageInstallFailed, PackageNotAllowed, PackageNotFound
from sandbox_tool.environments import EnvironmentManager
from tests.environments.conftest import LOCAL, NEEDS_UV, ManagerFactory, Recorder, closed_index

pytestmark = NEEDS_UV
ROOT = Path(__file__).resolve().parents[2]


def test_a_fresh_environment_is_built_offline_from_the_wheel_directory(
    manager_factory: ManagerFactory,
) -> None:
    manager = manager_factory()
    env = manager.ensure_sync(["Tiny_Dist"])
    # what is imported first has its bytecode (runners start with -B, read-only)
    assert list(env.path.glob("lib/python3*/site-packages/tinymod/__pycache__/*.pyc"))
    progress = manager.progress
    assert isinstance(progress, Recorder)
    assert any("cannot be reached" in n for n in progress.said("notice"))
    assert env.packages == {"tiny-dist": "1.0"}
    assert env.imports["tiny-dist"] == ("tinymod",)
    assert env.path.parent == manager.root / "envs" and env.path.name == env.key
    out = subprocess.run([env.python, "-c", "import tinymod; print(tinymod.VALUE)"],
                         capture_output=True, text=True, check=True)  # fmt: skip
    assert out.stdout.strip() == "42"
    assert list((manager.root / "building").iterdir()) == []
    # readable by every user: a root caller's sandbox runs as an unprivileged uid
    for path in [env.path, *env.path.rglob("*")]:
        if not path.is_symlink():
            assert path.stat().st_mode & stat.S_IROTH, path


def test_the_same_set_is_shared_and_never_rebuilt(manager_factory: ManagerFactory) -> None:
    root = manager_factory().root
    first = manager_factory(root=root)
    env = first.ensure_sync(["other-dist"])
    assert env.packages == {"other-dist": "2.0", "tiny-dist": "1.0"}
    again = manager_factory(root=root)  # another manager (as another process would)
    assert again.ensure_sync(["other-dist"]) == env
    assert isinstance(again.progress, Recorder) and again.progress.said("begin") == []
    # a different request that resolves to the same packages gets the same environment
    assert again.ensure_sync(["other-dist==2.0", "tiny-dist"]).path == env.path
    assert sorted(p.name for p in (root / "envs").iterdir()) == [env.key]


def test_two_processes_building_the_same_set_build_it_once(
    manager_factory: ManagerFactory, wheels: Path, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    script = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(ROOT)!r})
        from sandbox_tool.environments import EnvironmentManager, InstallPolicy
        from tests.environments.conftest import Recorder
        progress = Recorder()
        manager = EnvironmentManager(root={str(root)!r}, base=(), find_links=[{str(wheels)!r}],
            policy=InstallPolicy.only(["tiny-dist"]), index_url={closed_index()!r},
            cache_dir={str(tmp_path / "cache")!r}, progress=progress)
        env = manager.ensure_sync(["tiny-dist"])
        print(json.dumps({{"path": str(env.path), "built": len(progress.said("begin"))}}))
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
             for _ in range(2)]  # fmt: skip
    answers = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert answers[0]["path"] == answers[1]["path"]
    assert sorted(a["built"] for a in answers) == [0, 1]
    assert len(list((root / "envs").iterdir())) == 1


def test_a_package_missing_offline_is_named_with_where_it_was_looked_for(
    manager_factory: ManagerFactory, wheels: Path
) -> None:
    manager = manager_factory(policy=manager_factory().policy.allowing("not-here"))
    with pytest.raises(PackageNotFound) as info:
        manager.ensure_sync(["not-here"])
    assert info.value.package == "not-here"
    message = info.value.message
    assert "not available offline" in message
    assert str(wheels) in message and "uv's cache" in message
    # nothing half-built is left, nor used
    assert list((manager.root / "building").iterdir()) == []
    assert not (manager.root / "envs").exists() or list((manager.root / "envs").iterdir()) == []


def test_a_package_that_is_not_allowed_is_refused_before_anything_runs(
    manager_factory: ManagerFactory,
) -> None:
    manager = manager_factory()
    with pytest.raises(PackageNotAllowed, match="not on the list") as info:
        manager.ensure_sync(["tiny-dist", "requests"])
    assert info.value.package == "requests"
    assert not (manager.root / "building").exists()


def test_a_source_only_package_is_not_built_unless_the_policy_says_so(
    manager_factory: ManagerFactory,
) -> None:
    with pytest.raises(PackageInstallFailed) as info:
        manager_factory().ensure_sync(["source-only"])
    assert info.value.package == "source-only"
    assert "no wheel" in info.value.message and "source_builds=True" in info.value.message


def test_pip_builds_when_asked_and_says_it_is_the_slower_fallback(
    manager_factory: ManagerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sandbox_tool.environments.installers as installers

    monkeypatch.setattr(installers, "find_uv", lambda: None)
    manager = manager_factory()
    env = manager.ensure_sync(["tiny-dist"])
    assert env.installer.startswith("pip ")
    assert isinstance(manager.progress, Recorder)
    assert any("uv is not installed" in n and "pip" in n for n in manager.progress.said("notice"))
    out = subprocess.run([env.python, "-c", "import tinymod"], capture_output=True, check=False)
    assert out.returncode == 0


def test_a_half_built_environment_is_never_used_and_prune_removes_it(
    manager_factory: ManagerFactory,
) -> None:
    manager = manager_factory()
    env = manager.ensure_sync(["tiny-dist"])
    # a build a killed process left behind, and a set file naming an environment now gone
    leftover = manager.root / "building" / "0123456789abcdef.deadbeef"
    (leftover / "bin").mkdir(parents=True)
    (manager.root / "sets" / "feedfacefeedface.json").write_text('{"env": "gone", "requested": []}')
    assert [e.key for e in manager.environments()] == [env.key]
    report = manager.prune(older_than_days=0)
    assert report.builds == [leftover.name] and report.sets == ["feedfacefeedface"]
    assert report.in_use == [env.key] and report.environments == []  # this process holds it
    assert not leftover.exists() and env.path.is_dir()


def test_remove_leaves_an_environment_in_use_unless_forced(manager_factory: ManagerFactory) -> None:
    user = manager_factory()
    env = user.ensure_sync(["tiny-dist"])
    other = manager_factory(root=user.root)
    assert other.remove(env.key) is False and env.path.is_dir()
    user.close()  # no process uses it any more
    assert other.remove(env.key[:6]) is True
    assert not env.path.exists() and other.environments() == []
    # asking again rebuilds it: the set no longer points at it
    assert manager_factory(root=user.root).ensure_sync(["tiny-dist"]).packages == env.packages


def test_prune_removes_environments_unused_for_long(manager_factory: ManagerFactory) -> None:
    manager = manager_factory()
    env = manager.ensure_sync(["tiny-dist"])
    manager.close()
    old = 1_000_000_000
    os.utime(manager.root / "used" / env.key, (old, old))
    assert EnvironmentManager(root=manager.root).prune(30, dry_run=True).environments == [env.key]
    assert env.path.is_dir()
    assert EnvironmentManager(root=manager.root).prune(30).environments == [env.key]
    assert not env.path.exists()


def test_local_packages_are_all_allowed_here() -> None:
    assert LOCAL == ["tiny-dist", "other-dist", "source-only", "iniconfig"]
