"""pearlnet keeps freed array memory for reuse on glibc, unless PEARLNET_MALLOC=system."""

import sys

import pytest

import pearlnet


def test_opting_out_leaves_the_allocator_alone(monkeypatch):
    monkeypatch.setenv("PEARLNET_MALLOC", "system")
    assert pearlnet.keep_freed_memory() is False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux's")
def test_the_thresholds_are_set_on_glibc(monkeypatch):
    import ctypes.util

    monkeypatch.delenv("PEARLNET_MALLOC", raising=False)
    expected = "musl" not in (ctypes.util.find_library("c") or "")
    assert pearlnet.keep_freed_memory() is expected
