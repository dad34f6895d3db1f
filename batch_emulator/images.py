"""Images in moto's ECR with stable digests, so a run record can name the ``sha256:`` digest an image tag named.

ECR's ``imageDigest`` is the SHA-256 of the image manifest, and moto computes it the same way. An image here is a
manifest whose config blob digest is the SHA-256 of ``content`` (default ``REPOSITORY:TAG``): the same name and
content give the same digest in every emulator, and pushing other content under a tag moves the tag to a new digest,
as ``docker push`` of a rebuilt image does on AWS. ``python -m batch_emulator`` has no command for it: tests and
the sandbox call :meth:`EmulatorControl.push_image`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from typing import Any

MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"


def manifest(repository: str, tag: str, content: str = "") -> str:
    """A Docker image manifest (schema 2) standing for ``content``: deterministic, so its digest is stable."""
    body = (content or f"{repository}:{tag}").encode()
    config = {
        "mediaType": "application/vnd.docker.container.image.v1+json",
        "size": len(body),
        "digest": "sha256:" + hashlib.sha256(body).hexdigest(),
    }
    layer = {**config, "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip"}
    return json.dumps({"schemaVersion": 2, "mediaType": MANIFEST_TYPE, "config": config, "layers": [layer]})


def digest_of(manifest_text: str) -> str:
    """ECR's ``imageDigest``: the SHA-256 of the manifest as pushed (moto, left alone, hashes the layers only)."""
    return "sha256:" + hashlib.sha256(manifest_text.encode()).hexdigest()


def push_image(repository: str, tag: str, *, content: str = "", account: str, region: str) -> dict[str, Any]:
    """Create ``repository`` if needed and tag the manifest of ``content`` with ``tag`` (moving the tag if it named
    another image); returns ``{"repository", "tag", "digest"}``."""
    from moto.ecr.exceptions import ImageAlreadyExistsException, RepositoryNotFoundException
    from moto.ecr.models import ecr_backends

    backend = ecr_backends[account][region]
    try:
        backend.describe_repositories(repository_names=[repository])
    except RepositoryNotFoundException:
        backend.create_repository(
            repository_name=repository,
            registry_id=None,
            encryption_config=None,
            image_scan_config=None,
            image_tag_mutability="MUTABLE",
            tags=[],
        )
    text = manifest(repository, tag, content)
    digest = digest_of(text)
    with contextlib.suppress(ImageAlreadyExistsException):  # this content already carries this tag: nothing moves
        backend.put_image(repository, text, tag, digest=digest)
    return {"repository": repository, "tag": tag, "digest": digest}
