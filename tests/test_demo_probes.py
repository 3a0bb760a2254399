"""The verb probes of the demo store: one frame against the frames in order."""

from __future__ import annotations

import numpy as np

from xmic.cache.synthetic import write_random_store
from xmic.demo.probes import main, verb_probes


def test_order_only_verbs_are_seen_by_the_ordered_probe_alone(tmp_path, capsys) -> None:
    """Two verbs that differ only in the direction of a motion over time: the centre frame and the frame mean are
    the same for both (up to noise), the frames in order are not."""
    rng = np.random.default_rng(0)
    n, t, d = 120, 16, 16
    verbs = np.arange(n) % 2
    phase = np.sin(2 * np.pi * (np.arange(t) - t // 2) / t)  # 0 at the centre frame, mean 0
    direction = rng.standard_normal(d)
    base = rng.standard_normal((n, 1, d))
    x = base + (2 * verbs - 1)[:, None, None] * phase[None, :, None] * direction + 0.3 * rng.standard_normal((n, t, d))
    views = {"hand": x.astype(np.float16), "full": x.astype(np.float16)}
    store = write_random_store(
        tmp_path / "s.zarr", dataset="synth-epic", n=n, num_frames=t, encoders={"demo-clip": d}, n_verbs=2,
        verbs=verbs, features={"demo-clip": views},
    )  # fmt: skip
    row = verb_probes(store)["synth-epic"]
    assert (row["clips"], row["verbs"], row["chance"]) == (n, 2, 50.0)
    for view in ("hand", "full", "F+H"):
        assert row[view]["ordered"] >= 95.0, row
        assert row[view]["centre"] <= 70.0 and row[view]["mean"] <= 70.0, row
    main([str(store)])
    assert "synth-epic: 120 clips, 2 verbs (chance 50.0 %)" in capsys.readouterr().out
