"""The SQLite gallery stores embeddings per person and forgets a removed person completely."""

from __future__ import annotations

import numpy as np
import pytest

from edgewise.edge.apps.face.gallery import Gallery


def test_add_list_templates(tmp_path):
    rng = np.random.default_rng(0)
    with Gallery(tmp_path / "g.db") as g:
        g.add("alice", rng.normal(size=(3, 16)), model="m1")
        g.add("bob", rng.normal(size=(2, 16)), model="m1")
        g.add("alice", rng.normal(size=(1, 16)), model="m1")
        people = {p["name"]: p["embeddings"] for p in g.people()}
        assert people == {"alice": 4, "bob": 2}
        names, t = g.templates(model="m1")
        assert names == ["alice", "bob"] and t.shape == (2, 16)
        assert np.allclose(np.linalg.norm(t, axis=1), 1.0)
        assert g.templates(model="other")[0] == []


def test_remove_forgets_person_completely_on_disk(tmp_path):
    path = tmp_path / "g.db"
    secret = np.full((2, 64), 1234.5678, np.float32)  # an unmistakable byte pattern
    with Gallery(path) as g:
        g.add("carol_secret_name", secret, model="m1", images=[np.full((8, 8), 7, np.uint8)])
        g.add("dave", np.ones((1, 64)), model="m1")
    assert secret.tobytes()[:16] in path.read_bytes()
    with Gallery(path) as g:
        assert g.remove("carol_secret_name") is True
        assert g.remove("carol_secret_name") is False
        assert [p["name"] for p in g.people()] == ["dave"]
        assert g._db.execute("SELECT COUNT(*) FROM images").fetchone()[0] == 0
    raw = path.read_bytes()
    assert b"carol_secret_name" not in raw
    assert secret.tobytes()[:16] not in raw


def test_bad_embeddings_and_missing_gallery_are_refused(tmp_path):
    with Gallery(tmp_path / "g.db") as g:
        with pytest.raises(ValueError, match="contain NaN"):
            g.add("x", np.full((1, 4), np.nan), model="m")
        with pytest.raises(ValueError, match="person name is empty"):
            g.add(" ", np.ones((1, 4)), model="m")
    with pytest.raises(ValueError, match="no such gallery"):
        Gallery(tmp_path / "missing.db", create=False)


def test_a_new_gallery_is_readable_by_its_owner_only(tmp_path):
    import os
    import stat

    path = tmp_path / "g.db"
    old = os.umask(0o022)  # a default umask would leave it world-readable
    try:
        with Gallery(path) as g:
            g.add("erin", np.ones((1, 8)), model="m")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
