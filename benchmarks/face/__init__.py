"""``edgewise bench face``: the classic Raspberry Pi face table on ORL, plus open-set figures.

ORL identities are never seen by the embedding network (it trains on faces/extra), so this is
recognition of new people from a few photos.

* Reference protocol (repeated over random draws, counts pooled): 6 ORL people enrolled from 5
  images each, their other 5 images are probes, every image of the other 34 people is a
  stranger. Rows: our embedding (float32, int8) with the bundle's unknown threshold; a
  closed-set CNN classifier (softmax on the embedding backbone, trained on the 6 people) with
  probability threshold p0; Fisherfaces, Eigenfaces and LBPH (``cv2.face``) with and without
  alignment. Accuracy without rejection = closed-set top-1 on the probes; with rejection =
  correct / all accepted faces (an accepted stranger is an error); enrollment rate = accepted
  probes / probes.
* Open set, all 40 people (5 enrolled, 5 probes): rank-1, TAR at FAR = 1 %, ROC.
* Total time per face (detect + align + embed + match) on a 640x480 frame composed from an
  ORL face (ORL images are 92x112 crops, so a camera-sized frame has to be composed), p50 at 1
  and 2 threads.

>>> # edgewise bench face --data $EDGEWISE_DATA --bundle face.bundle --out bench_face
"""

from __future__ import annotations

from .bench import bench_face, bench_main
from .protocols import open_set, six_person_protocol
from .timing import compose_frame, time_per_face

__all__ = ["six_person_protocol", "open_set", "compose_frame", "time_per_face", "bench_face", "bench_main"]
