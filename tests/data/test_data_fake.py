"""The seeded fake generators write what they describe."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio

from hashsearch.data.fake import fake_dsrsid_sample, matlab_v73_header, write_fake_scene


def test_matlab_header_layout() -> None:
    header = matlab_v73_header()
    assert len(header) == 128
    assert header.startswith(b"MATLAB 7.3 MAT-file") and b"HDF5 schema 1.00 ." in header
    assert header[-4:] == b"\x00\x02IM"


def test_fake_samples_are_seeded() -> None:
    a = fake_dsrsid_sample(3, seed=1, pan_size=16, ms_size=8)
    b = fake_dsrsid_sample(3, seed=1, pan_size=16, ms_size=8)
    c = fake_dsrsid_sample(3, seed=2, pan_size=16, ms_size=8)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0], c[0])


def test_fake_scene_geometry(tmp_path: Path) -> None:
    sc = write_fake_scene(tmp_path, pan_shape=(16, 24), ratio=2, pan_pixel=3.0, origin=(100.0, 900.0),
                          ms_origin_shift=(1, 2), label_pixel=5.0, label_offset=(-1.0, 2.0), nodata_box=(0, 1, 0, 1))
    with rasterio.open(sc.pan) as pan, rasterio.open(sc.ms) as ms, rasterio.open(sc.labels) as lab:
        assert pan.transform.c == 100.0 and pan.transform.f == 900.0 and pan.res == (3.0, 3.0)
        assert ms.res == (6.0, 6.0) and (ms.transform.c, ms.transform.f) == (100.0 - 12.0, 900.0 + 6.0)
        assert (lab.transform.c, lab.transform.f) == (99.0, 902.0) and lab.res == (5.0, 5.0)
        p, m = pan.read(1).astype(float), ms.read()
        assert p[0, 0] == 0 and (m[:, 0, :] == 0).all() and (m[:, :, :2] == 0).all()  # nodata margin / box
        block = np.floor(p[2:4, 2:4].mean() + 0.5)
        assert m[0, 1 + 1, 2 + 1] == block and m[3, 2, 3] == block + 30
        # Labels are the quadrants of the ground around split_xy.
        sx, sy = sc.split_xy
        corners = [(sx - 4, sy + 4), (sx + 4, sy + 4), (sx - 4, sy - 4), (sx + 4, sy - 4)]
        for (x, y), v in zip(corners, [1, 2, 3, 4], strict=True):
            assert next(lab.sample([(x, y)]))[0] == v
