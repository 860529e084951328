"""``reuse_freed_memory``: inside it, a block freed and allocated again costs no page faults."""

from __future__ import annotations

import resource

import numpy as np
import pytest

from rotelab.engine import allocator
from rotelab.engine.allocator import reuse_freed_memory

pytestmark = pytest.mark.skipif(allocator._glibc() is None, reason="glibc only")


@pytest.fixture(autouse=True)
def small_pages():
    """NumPy asks the kernel for huge pages on blocks of 4 MiB and up (madvise): a block that
    happens to be 2 MiB aligned then faults in 2 huge pages, not 1024 small ones, and the counts
    below depend on where the block landed. Off here, so every page counts."""
    try:
        from numpy._core import multiarray  # NumPy 2
    except ImportError:
        from numpy.core import multiarray
    was = multiarray._set_madvise_hugepage(False)
    yield
    multiarray._set_madvise_hugepage(was)


def _faults_per_cycle(cycles: int = 50, size: int = 4 << 20) -> float:
    """Minor page faults per allocation, first touch and free of a 4 MiB block."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(cycles):
        block = np.ones(size, dtype=np.uint8)  # touches every page
        del block
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / cycles


def test_freed_blocks_are_reused_inside_and_handed_back_after():
    pages = (4 << 20) / resource.getpagesize()
    with reuse_freed_memory():
        _faults_per_cycle(2)  # the first cycles grow the heap
        inside = _faults_per_cycle()
        with reuse_freed_memory():  # nested (a job inside a job): still on
            nested = _faults_per_cycle()
        after_inner = _faults_per_cycle()
    after = _faults_per_cycle()
    with reuse_freed_memory():
        _faults_per_cycle(2)
        again = _faults_per_cycle()
    assert max(inside, nested, after_inner, again) < 0.05 * pages  # the same heap block, no faults
    assert after > 0.5 * pages  # outside: a fresh mmap each time, so every page faults in again
