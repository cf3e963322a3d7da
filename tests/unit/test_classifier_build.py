"""build_classifier: the configured class, its import errors, and the fit cache."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

from cluster.config import GardenConfig, parse_config
from cluster.exceptions import ConfigError
from router.classify import Classifier, build_classifier
from router.policy import Features

pytestmark = pytest.mark.unit

HERE = "tests.unit.test_classifier_build"


class CountingClassifier:
    """Always answers its first label; counts how often it is fitted."""

    fits: ClassVar[int] = 0

    def __init__(self, texts: Sequence[str], labels: Sequence[str], *, bias: float = 1.0) -> None:
        type(self).fits += 1
        self.domains = sorted(set(labels))
        self.n = len(texts)
        self.bias = bias

    def classify(self, text: str) -> Features:
        return Features(self.domains[0], self.bias, {self.domains[0]: self.bias}, "fake")

    def classify_many(self, texts: Sequence[str]) -> list[Features]:
        return [self.classify(t) for t in texts]


class NoClassify:
    def __init__(self, texts: Sequence[str], labels: Sequence[str]) -> None:
        pass


class BuildsNothing:
    """Has classify on the class, but its instances lack classify_many and domains."""

    def __init__(self, texts: Sequence[str], labels: Sequence[str]) -> None:
        pass

    def classify(self, text: str) -> Features:
        return Features("general", 1.0)


def _garden(tmp_path: Path, import_path: str, **options: Any) -> GardenConfig:
    def model(name: str, domains: list[str], exemplars: list[str]) -> dict[str, Any]:
        role = "specialist" if domains else "generalist"
        return {"name": name, "role": role, "domains": domains, "exemplars": exemplars, "tiny": {}}

    data = {
        "data_dir": str(tmp_path / "data"),
        "models": [
            model("law", ["law"], ["Is a verbal contract binding?", "What is a tort?"]),
            model("generalist", [], ["Who wrote Hamlet?", "Why is the sky blue?"]),
        ],
        "router": {"classifier": {"import_path": import_path, "options": options}},
    }
    return parse_config(data)


def test_builds_the_configured_class_with_its_options(tmp_path: Path) -> None:
    clf = build_classifier(_garden(tmp_path, f"{HERE}:CountingClassifier", bias=0.25), cache=False)
    assert isinstance(clf, CountingClassifier) and isinstance(clf, Classifier)
    assert clf.domains == ["general", "law"]
    assert clf.n == 4 and clf.bias == 0.25


@pytest.mark.parametrize(
    ("import_path", "expected"),
    [
        ("no_such_module_xyz:Thing", "cannot import module 'no_such_module_xyz'"),
        (f"{HERE}:Missing", "has no 'Missing'"),
        (f"{HERE}:NoClassify", "has no classify"),
        (f"{HERE}:BuildsNothing", "does not build a classifier"),
    ],
)
def test_bad_import_path_is_a_config_error(tmp_path: Path, import_path: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_classifier(_garden(tmp_path, import_path), cache=False)
    message = str(err.value)
    assert "router.classifier.import_path" in message
    assert import_path in message and expected in message


def test_second_build_loads_the_cache_instead_of_refitting(tmp_path: Path) -> None:
    garden = _garden(tmp_path, f"{HERE}:CountingClassifier", bias=0.5)
    before = CountingClassifier.fits
    first = build_classifier(garden)
    second = build_classifier(garden)
    assert CountingClassifier.fits == before + 1
    assert second is not first and second.classify("x") == first.classify("x")
    files = list((tmp_path / "data" / "cache" / "classifier").glob("*.joblib"))
    assert len(files) == 1 and len(files[0].stem) == 64  # sha256 hex
    # Other options are another fit, under another key.
    build_classifier(_garden(tmp_path, f"{HERE}:CountingClassifier", bias=0.6))
    assert CountingClassifier.fits == before + 2


def test_corrupt_cache_file_is_rebuilt(tmp_path: Path) -> None:
    garden = _garden(tmp_path, f"{HERE}:CountingClassifier", bias=0.7)
    build_classifier(garden)
    (path,) = (tmp_path / "data" / "cache" / "classifier").glob("*.joblib")
    path.write_bytes(b"not a pickle")
    before = CountingClassifier.fits
    assert build_classifier(garden).classify("x").confidence == 0.7
    assert CountingClassifier.fits == before + 1
    assert path.read_bytes() != b"not a pickle"


def test_cache_keeps_only_the_newest_files(tmp_path: Path) -> None:
    from router.classify._cache import KEEP

    for i in range(KEEP + 3):
        build_classifier(_garden(tmp_path, f"{HERE}:CountingClassifier", bias=i / 100))
    files = list((tmp_path / "data" / "cache" / "classifier").glob("*.joblib"))
    assert len(files) == KEEP


def test_the_default_cascade_serves_a_garden_with_one_specialist(tmp_path: Path) -> None:
    """Two classes (one specialist's domain and ``general``): sklearn's binary case."""
    from cluster.config import load_config

    data = load_config(None).model_dump(mode="json", exclude_unset=False)
    data["data_dir"] = str(tmp_path / "data")
    data["models"] = [m for m in data["models"] if m["name"] in ("medicine", "generalist")]
    data["router"]["thresholds"] = {}
    clf = build_classifier(parse_config(data), cache=False)
    texts = [
        "What is the first-line treatment for type 2 diabetes?",
        "Which antibiotic is used for strep throat, and at what dose?",
        "Who painted the ceiling of the Sistine Chapel?",
        "Write a short poem about autumn leaves.",
    ]
    got = clf.classify_many(texts)
    assert [f.domain for f in got] == ["medicine", "medicine", "general", "general"]
    for features in got:
        assert set(features.scores) == {"medicine", "general"}
        assert abs(sum(features.scores.values()) - 1) < 1e-3
        assert 0.5 <= features.confidence <= 1
