"""BLAS thread limits of tasks side by side in one process (a thread runner's tasks)."""
import threading

import numpy as np


def _blas_threads() -> set[int]:
    from threadpoolctl import threadpool_info

    return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}


def test_a_limit_holds_until_the_last_region_side_by_side_leaves():
    """Region A enters, B enters, A leaves while B still computes: B's products must still run on
    one thread (threadpool_limits alone would have put A's old limit back under B)."""
    from curate.threads import blas_threads

    np.ones((4, 4)) @ np.ones((4, 4))  # BLAS loaded
    before = _blas_threads()
    a_in, a_out, b_done = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, set[int]] = {}

    def a():
        with blas_threads(1):
            a_in.set()
            b_in.wait()
        a_out.set()

    def b():
        a_in.wait()
        with blas_threads(1):
            b_in.set()
            a_out.wait()  # A has left; B still inside
            seen["b after a left"] = _blas_threads()
        b_done.set()

    b_in = threading.Event()
    ts = [threading.Thread(target=a), threading.Thread(target=b)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    assert b_done.is_set()
    assert seen["b after a left"] == {1}
    assert _blas_threads() == before  # the last to leave put the old limit back
