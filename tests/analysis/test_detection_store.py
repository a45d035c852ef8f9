import numpy as np
import pytest

from analysis import detection_store
from analysis.detection_store import open_store, write_store

WIDTH, HEIGHT = 20_000, 12_000


def random_points(n, seed=0):
    rng = np.random.default_rng(seed)
    xy = rng.uniform([0, 0], [WIDTH, HEIGHT], (n, 2)).astype(np.float32)
    labels = rng.integers(1, 3, n).astype(np.int8)
    scores = rng.random(n).astype(np.float32)
    return xy, labels, scores


def canonical(xy, labels, scores):
    order = np.lexsort((xy[:, 1], xy[:, 0]))
    return xy[order], labels[order], scores[order]


def test_round_trip(tmp_path):
    xy, labels, scores = random_points(5000)
    write_store(tmp_path / "d.bin", xy, labels, scores, WIDTH, HEIGHT, cell_px=256, mpp=0.25)
    with open_store(tmp_path / "d.bin") as store:
        assert len(store) == 5000
        assert store.counts == {1: int((labels == 1).sum()), 2: int((labels == 2).sum())}
        assert (store.width, store.height, store.mpp) == (WIDTH, HEIGHT, 0.25)
        back = store.all()
    got, want = canonical(back.xy, back.labels, back.scores), canonical(xy, labels, scores)
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
    assert np.abs(got[2] - want[2]).max() <= 0.5 / 255 + 1e-6  # scores kept to 1/255


def test_query_equals_brute_force(tmp_path):
    xy, labels, scores = random_points(100_000, seed=1)
    edges = np.array([[0, 0], [WIDTH - 0.5, HEIGHT - 0.5], [256, 256], [255.99, 512]], np.float32)
    xy = np.concatenate([xy, edges])  # points on cell borders and slide corners
    labels, scores = np.concatenate([labels, [1, 2, 1, 2]]), np.concatenate([scores, [0.1] * 4])
    write_store(tmp_path / "d.bin", xy, labels, scores, WIDTH, HEIGHT, cell_px=256)
    store = open_store(tmp_path / "d.bin")
    rng = np.random.default_rng(2)
    boxes = [(0, 0, WIDTH, HEIGHT), (-500, -500, 300, 300), (256, 256, 512, 513), (WIDTH - 10, HEIGHT - 10, WIDTH + 10, HEIGHT + 10)]
    for _ in range(30):
        x0, y0 = rng.uniform(-1000, WIDTH), rng.uniform(-1000, HEIGHT)
        boxes.append((x0, y0, x0 + rng.uniform(1, 6000), y0 + rng.uniform(1, 4000)))
    for x0, y0, x1, y1 in boxes:
        inside = (xy[:, 0] >= x0) & (xy[:, 0] < x1) & (xy[:, 1] >= y0) & (xy[:, 1] < y1)
        got = store.query(x0, y0, x1, y1)
        assert got.total == len(got) == inside.sum(), (x0, y0, x1, y1)
        g, w = canonical(got.xy, got.labels, got.scores), canonical(xy[inside], labels[inside], scores[inside])
        assert np.array_equal(g[0], w[0]) and np.array_equal(g[1], w[1])
    assert len(store.query(100, 100, 100, 200)) == 0  # empty box


def test_query_thins_to_max_points(tmp_path):
    xy, labels, scores = random_points(20_000, seed=3)
    write_store(tmp_path / "d.bin", xy, labels, scores, WIDTH, HEIGHT)
    store = open_store(tmp_path / "d.bin")
    full = store.query(0, 0, 10_000, 10_000)
    thin = store.query(0, 0, 10_000, 10_000, max_points=500)
    assert len(thin) == 500 and thin.total == len(full) > 500
    full_set = {tuple(p) for p in full.xy.tolist()}
    assert all(tuple(p) in full_set for p in thin.xy.tolist())
    # Spread over the box, not the first 500 hits: both halves of the box are represented.
    assert (thin.xy[:, 1] < 5000).sum() > 150 and (thin.xy[:, 1] >= 5000).sum() > 150


def test_empty_store(tmp_path):
    write_store(tmp_path / "empty.bin", np.zeros((0, 2)), [], [], WIDTH, HEIGHT)
    store = open_store(tmp_path / "empty.bin")
    assert len(store) == 0 and store.counts == {}
    assert len(store.query(0, 0, WIDTH, HEIGHT)) == 0 and len(store.all()) == 0
    assert store.density(1000) == {}


def test_density_counts_every_point_per_class(tmp_path):
    xy, labels, scores = random_points(30_000, seed=5)
    write_store(tmp_path / "d.bin", xy, labels, scores, WIDTH, HEIGHT)
    density = open_store(tmp_path / "d.bin").density(1000, chunk=7000)  # several chunks
    assert set(density) == {1, 2}
    assert density[1].shape == (12, 20)
    assert density[1].sum() == (labels == 1).sum() and density[2].sum() == (labels == 2).sum()
    cell = (xy[:, 0] < 1000) & (xy[:, 1] < 1000) & (labels == 2)
    assert density[2][0, 0] == cell.sum()


def test_failed_write_leaves_no_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    xy, labels, scores = random_points(1000)
    folder = tmp_path / "results"
    target = folder / "d.bin"
    calls = []

    def failing_write(fh, arr, offset):
        calls.append(offset)
        if len(calls) == 2:
            raise OSError("disk full")
        real_write(fh, arr, offset)

    real_write = detection_store._write_array
    monkeypatch.setattr(detection_store, "_write_array", failing_write)
    with pytest.raises(OSError):
        write_store(target, xy, labels, scores, WIDTH, HEIGHT)
    assert list(folder.iterdir()) == []  # neither the file nor a temporary

    monkeypatch.setattr(detection_store, "_write_array", real_write)
    write_store(target, xy[:10], labels[:10], scores[:10], WIDTH, HEIGHT)
    monkeypatch.setattr(detection_store, "_write_array", failing_write)
    calls.clear()
    with pytest.raises(OSError):
        write_store(target, xy, labels, scores, WIDTH, HEIGHT)
    assert [p.name for p in folder.iterdir()] == ["d.bin"]
    assert len(open_store(target)) == 10


def test_rejects_bad_input_and_foreign_files(tmp_path):
    with pytest.raises(ValueError):
        write_store(tmp_path / "d.bin", [[1, 2]], [1, 2], [0.5], WIDTH, HEIGHT)
    with pytest.raises(ValueError):
        write_store(tmp_path / "d.bin", [[np.nan, 2]], [1], [0.5], WIDTH, HEIGHT)
    (tmp_path / "other.bin").write_bytes(b"not a store at all")
    with pytest.raises(ValueError):
        open_store(tmp_path / "other.bin")
