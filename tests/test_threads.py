"""BLAS thread counts of tasks side by side in one process (a thread runner's tasks)."""
import threading

import numpy as np


def _blas_counts() -> set[int]:
    from threadpoolctl import threadpool_info

    return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}


def _set_blas(n: int) -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=n, user_api="blas")  # not restored: the process's count from here on


def test_a_region_leaving_does_not_change_the_count_under_another():
    """Region A enters, B enters, A leaves while B still computes: B must still run on the fixed
    count. (threadpoolctl's context manager would have put A's old count, two, back under B.) The
    main thread had set two, then pinned, as ``curate_flow`` does before its tasks."""
    from curate.threads import BLAS_THREADS, blas_threads, pin_blas

    np.ones((4, 4)) @ np.ones((4, 4))  # BLAS loaded
    _set_blas(2)
    assert _blas_counts() == {2}
    pin_blas()
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, set[int]] = {}

    def a():
        with blas_threads():
            a_in.set()
            b_in.wait(10)
        a_out.set()

    def b():
        a_in.wait(10)
        with blas_threads():
            b_in.set()
            a_out.wait(10)  # A has left; B still inside
            seen["b after a left"] = _blas_counts()

    ts = [threading.Thread(target=a), threading.Thread(target=b)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    assert seen["b after a left"] == {BLAS_THREADS}
    assert _blas_counts() == {BLAS_THREADS}  # left set: later kernels run on the same count


def test_vendi_and_novelty_do_not_depend_on_the_threads_around_them():
    """The figures computed with the process on two BLAS threads, and side by side in threads, equal
    those computed alone on the fixed count; torch's own count is put back after a search."""
    import torch

    from curate.diversity import embedding_metrics
    from curate.novelty import knn_mean_distance
    from curate.threads import pin_blas

    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 64))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ref = x[rng.choice(len(x), 500, replace=False)]
    pin_blas()
    alone = embedding_metrics(x, sample=2000), knn_mean_distance(x, ref, k=5, chunk=256)
    torch_before = torch.get_num_threads()
    out: list = [None] * 4

    def work(i):
        out[i] = embedding_metrics(x, sample=2000), knn_mean_distance(x, ref, k=5, chunk=256)

    ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    for got in out:
        assert got[0] == alone[0]
        assert got[1].tobytes() == alone[1].tobytes()
    assert torch.get_num_threads() == torch_before


def test_a_count_the_main_thread_holds_is_warned_about_from_another_thread():
    """OpenBLAS ignores a worker thread's setting once the main thread set a count: the pin says
    so (naming the library) instead of computing on two threads silently."""
    import pytest

    from curate.threads import pin_blas

    np.ones((4, 4)) @ np.ones((4, 4))
    _set_blas(2)
    caught: list = []

    def worker():
        import warnings

        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            pin_blas()
        caught.extend(w)

    t = threading.Thread(target=worker)
    t.start()
    t.join(30)
    try:
        assert any("openblas" in str(w.message) and "main thread" in str(w.message) for w in caught)
    finally:
        pin_blas()  # the main thread's pin: later tests run on the fixed count
    assert _blas_counts() == {1}
    with pytest.raises(ValueError, match="n must be >= 1"):
        pin_blas(0)
