"""The image (Dockerfile) without a Docker engine: what its stages install, read from the
Dockerfile's instructions, and what each set of extras pulls in, resolved from the package
metadata of pyproject.toml and of the distributions installed in this environment (the same
wheels `pip wheel` would collect): the default image has neither torch nor the embedded store,
the GPU image (EXTRAS=gnn) installs torch, and the wheels never reach a layer."""

from __future__ import annotations

import re
import shlex
import tomllib
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import pytest
import yaml
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "mevwatch"
pytestmark = pytest.mark.fast


def instructions(path: Path = REPO / "Dockerfile") -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out, buf = [], ""
    for line in path.read_text().splitlines():
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        buf += line.rstrip()
        if buf.endswith("\\"):
            buf = buf[:-1] + " "
            continue
        word, _, rest = buf.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    return out


def stages() -> list[list[tuple[str, str]]]:
    out: list[list[tuple[str, str]]] = []
    for ins in instructions():
        if ins[0] == "FROM":
            out.append([])
        if out:
            out[-1].append(ins)
    return out


def extras_expansion(arg: str, extras: str) -> str:
    """The shell's ${EXTRAS:+[$EXTRAS]} for a given EXTRAS."""
    return arg.replace("${EXTRAS:+[$EXTRAS]}", f"[{extras}]" if extras else "")


def project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def closure(extras: set[str]) -> set[str]:
    """Every distribution `pip install mevwatch[extras]` installs (markers of this platform),
    resolved through the metadata of the installed distributions."""
    env = default_environment()
    todo = [(Requirement(r), "") for r in project()["dependencies"]]
    for e in extras:
        todo += [(Requirement(r), "") for r in project()["optional-dependencies"][e]]
    seen: set[str] = set()
    while todo:
        req, extra = todo.pop()
        if req.marker is not None and not req.marker.evaluate({**env, "extra": extra}):
            continue
        name = canonicalize_name(req.name)
        key = f"{name}[{','.join(sorted(req.extras))}]"
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = distribution(req.name)
        except PackageNotFoundError:
            pytest.fail(f"{req.name} (needed by mevwatch[{','.join(sorted(extras))}]) is not installed here")
        for r in dist.requires or []:
            rr = Requirement(r)
            if rr.marker is None:
                todo.append((rr, ""))
            else:
                for ex in [""] + sorted(req.extras):
                    if rr.marker.evaluate({**env, "extra": ex}):
                        todo.append((rr, ex))
                        break
    return {k.split("[", 1)[0] for k in seen}


def test_runtime_installs_the_extras_the_build_made_from_mounted_wheels():
    build, runtime = stages()
    assert build[0][1].endswith("AS build")
    assert ("ARG", 'EXTRAS=""') in build and ("ARG", 'EXTRAS=""') in runtime  # both stages see --build-arg EXTRAS
    (wheel,) = [a for i, a in build if i == "RUN" and "pip wheel" in a]
    (install,) = [a for i, a in runtime if i == "RUN" and "pip install" in a]
    assert "--mount=type=bind,from=build,source=/wheels,target=/wheels" in install  # mounted: no layer holds the wheels
    assert not [a for i, a in runtime if i in ("COPY", "ADD") and "/wheels" in a]
    assert "--no-index" in install and "--find-links /wheels" in install
    built = shlex.split(wheel.split("pip wheel", 1)[1])[-1]
    installed = shlex.split(install.split("pip install", 1)[1])[-1]
    for extras in ("", "gnn", "embedded", "gnn,embedded"):
        b, i = extras_expansion(built, extras), extras_expansion(installed, extras)
        assert b == "." + i.removeprefix("mevwatch"), (extras, b, i)  # the same extras, built then installed
    assert extras_expansion(installed, "gnn") == "mevwatch[gnn]"
    user = [a for i, a in runtime if i == "USER"]
    assert user == ["10001:10001"]


def test_each_extra_the_image_and_the_setup_name_exists_and_pulls_what_it_should():
    extras = project()["optional-dependencies"]
    text = (REPO / "Dockerfile").read_text()
    named = set(re.findall(r"EXTRAS=([a-z,]+)", text)) | {"gnn", "embedded"}
    for group in named:
        assert set(group.split(",")) <= set(extras), group
    setup = (REPO / "scripts" / "setup.sh").read_text()
    for group in re.findall(r'"\.\[([a-z,]+)\]"', setup):  # the README's two set-up commands run these
        assert set(group.split(",")) <= set(extras), group
    assert "embedded" in setup  # the demo runs on embedded ClickHouse
    base = closure(set())
    heavy = {"chdb", "pyarrow", "pandas", "torch"}
    assert not base & heavy, base & heavy  # the default image: external ClickHouse, rules only
    assert {"clickhouse-driver", "kafka-python", "confluent-kafka", "web3"} <= base
    assert {"torch", "torch-geometric"} <= closure({"gnn"}) and not {"chdb"} & closure({"gnn"})
    assert {"chdb", "pyarrow", "pandas"} <= closure({"embedded"})


def test_dockerfile_runs_as_the_charts_user():
    text = (REPO / "Dockerfile").read_text()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    uid = values["podSecurityContext"]["runAsUser"]
    assert f"USER {uid}:{uid}" in text and 'ENTRYPOINT ["mevwatch"]' in text
    assert f"EXPOSE {values['service']['port']}" in text


def test_the_embedded_store_missing_is_a_clear_error(tmp_path, monkeypatch):
    """An image without the embedded extra, pointed at no ClickHouse server: a message, not a traceback."""
    import builtins

    from mevwatch.monitor.errors import ConfigError
    from mevwatch.monitor.store.backend import ChdbBackend

    real = builtins.__import__

    def no_chdb(name, *args, **kwargs):
        if name == "chdb" or name.startswith("chdb."):
            raise ImportError("No module named 'chdb'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_chdb)
    with pytest.raises(ConfigError, match=r"mevwatch\[embedded\]"):
        ChdbBackend(tmp_path / "chdb")
