"""Thread count and wait policy of training processes."""

import warnings

import pytest
import torch

from dive_pyro.inference import threads
from dive_pyro.inference.threads import passive_wait_missing, resolve_threads, threads_for_run

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def test_default_is_one_thread_on_cpu_and_torch_default_on_cuda():
    assert resolve_threads(None, CPU) == 1
    assert resolve_threads(None, CUDA) is None
    assert resolve_threads(3, CPU, free=4) == 3


def test_more_threads_than_free_cores_are_capped_with_a_warning():
    with pytest.warns(RuntimeWarning, match="only 1 core"):
        assert resolve_threads(2, CPU, free=1) == 1


def test_free_cores_subtract_the_load_of_other_processes(monkeypatch):
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (3.2, 0.0, 0.0))
    assert threads.free_cores() == 2  # 4 CPUs, 2.2 busy with others
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (9.0, 0.0, 0.0))
    assert threads.free_cores() == 1  # never below one
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (0.9, 0.0, 0.0))
    assert threads.free_cores() == 4


def test_wait_policy_is_needed_only_for_several_openmp_threads(monkeypatch):
    monkeypatch.setattr(threads, "uses_openmp", lambda: True)
    assert passive_wait_missing(2, {})
    assert not passive_wait_missing(1, {})
    assert not passive_wait_missing(2, {"OMP_WAIT_POLICY": "PASSIVE"})
    monkeypatch.setattr(threads, "uses_openmp", lambda: False)
    assert not passive_wait_missing(2, {})


def test_threads_for_run_sets_and_restores_and_warns_about_spinning(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setattr(threads, "free_cores", lambda: 8)
    monkeypatch.setattr(threads, "uses_openmp", lambda: True)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    with pytest.warns(RuntimeWarning, match="OMP_WAIT_POLICY=PASSIVE"), threads_for_run(2, CPU) as n:
        assert n == 2 and torch.get_num_threads() == 2
    assert torch.get_num_threads() == before
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with threads_for_run(None, CPU) as n:
            assert n == 1 and torch.get_num_threads() == 1
