"""Face set loaders read the public formats as published (ORL PGM folders, .mat sets, person trees)."""

from __future__ import annotations

import numpy as np
import pytest

from edgewise.train.data.faces import concat, load_mat_faces, load_orl, load_person_tree, load_training_faces


def test_orl_loader_reads_40_people_of_10_pgm_images(data_dir):
    s = load_orl(data_dir / "faces" / "orl")
    assert len(s) == 400 and s.n_ids == 40
    assert s.images[0].shape == (112, 92) and s.images[0].dtype == np.uint8
    assert np.bincount(s.labels).tolist() == [10] * 40
    assert s.names[0] == "s1" and s.names[-1] == "s40"
    assert s.sources[10].endswith("s2/1.pgm")


def test_mat_loader_reads_x_h_w_n_and_label(data_dir):
    s = load_mat_faces(data_dir / "faces" / "extra" / "GT.mat")
    assert len(s) == 750 and s.n_ids == 50
    assert s.images[0].shape == (40, 30)
    assert s.names[0] == "GT/1"


def test_training_faces_exclude_orl_and_offset_labels(data_dir):
    s = load_training_faces(data_dir / "faces", sets=["UMIST", "GT"])
    assert len(s) == 380 + 750 and s.n_ids == 70
    assert not any("orl" in n.lower() or n.startswith("s") for n in s.names)
    assert set(np.unique(s.labels)) == set(range(70))


def test_person_tree_one_identity_per_folder(tmp_path, data_dir):
    import cv2

    orl = load_orl(data_dir / "faces" / "orl")
    for name, k in (("alice", 0), ("bob", 1)):
        (tmp_path / name).mkdir()
        for j in range(3):
            cv2.imwrite(str(tmp_path / name / f"{j}.jpg"), orl.images[k * 10 + j])
    s = load_person_tree(tmp_path)
    assert s.names == ["alice", "bob"] and np.bincount(s.labels).tolist() == [3, 3]
    both = concat([s, s])
    assert both.n_ids == 4 and both.labels.max() == 3


def test_bad_inputs_give_one_line_errors(tmp_path):
    bad = tmp_path / "bad.mat"
    bad.write_bytes(b"not a matlab file")
    with pytest.raises(ValueError, match="bad.mat: not a readable MATLAB file"):
        load_mat_faces(bad)
    with pytest.raises(ValueError, match="no s1 ... s40 folders"):
        load_orl(tmp_path)
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "x.jpg").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="x.jpg: corrupt or unsupported image"):
        load_person_tree(tmp_path)
