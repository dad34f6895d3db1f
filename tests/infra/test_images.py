"""Images are pinned: a module's job definition runs an explicit tag or digest of its tag-immutable repository.

The synthesized side is in test_stacks.py (test_images_come_from_per_module_repositories_or_the_yaml).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import aws_cdk as cdk
import pytest

from confluence_runtime.errors import ConfigError

from .conftest import CONFIG

SHIPPED = CONFIG.read_text(encoding="utf-8")
TAG_LINE = '  image_tag: "1.0.0"            # every module\'s release in its repository {prefix}-{module} (README: releasing)\n'


def problems(build: Callable[..., cdk.App], path: Path, **context: object) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        build(path, **context)
    return [str(p) for p in caught.value.problems]


def test_a_module_without_a_tag_fails_the_synth(build: Callable[..., cdk.App], tmp_path: Path) -> None:
    assert SHIPPED.count(TAG_LINE) == 1
    path = tmp_path / "confluence.yaml"
    path.write_text(SHIPPED.replace(TAG_LINE, ""), encoding="utf-8")
    found = problems(build, path)
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if text.startswith("    datagen:"))
    assert found[0] == (
        f"{path}:{line}: stages.datagen.datagen.image_tag: missing: job definitions run an explicit tag or digest "
        "of confluence-dev-datagen (set image_tag in defaults or the module, or -c imageTag=TAG)"
    )
    # every module with its own repository, not disable_renew (its image names its own version)
    assert len(found) == 17


def test_a_tag_ecr_would_refuse_is_reported_at_its_line(build: Callable[..., cdk.App], tmp_path: Path) -> None:
    path = tmp_path / "confluence.yaml"
    path.write_text(SHIPPED.replace('image_tag: "1.0.0"', 'image_tag: "1.0 beta"'), encoding="utf-8")
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "image_tag:" in text)
    assert problems(build, path)[0] == (
        f"{path}:{line}: stages.datagen.datagen.image_tag: '1.0 beta' is neither an ECR image tag (letters, digits, "
        "'_', '.', '-', at most 128) nor a sha256: digest"
    )


def test_a_release_from_the_context_overrides_the_yaml(build: Callable[..., cdk.App]) -> None:
    app = build(imageTag="2.0.0")
    batch = next(c for c in app.node.children if isinstance(c, cdk.Stack) and c.node.id.endswith("-batch"))
    assert batch.image_tag == "2.0.0"  # type: ignore[attr-defined]
    assert (
        problems(build, CONFIG, imageTag="not ok")
        == [
            f"{CONFIG}: context imageTag: 'not ok' is neither an ECR image tag (letters, digits, '_', '.', '-', at most "
            "128) nor a sha256: digest"
        ]
        * 17
    )
