"""The CPU thread policy of the commands (fourdnex.threads)."""

from __future__ import annotations

import os

import torch

from fourdnex.threads import THREADS_ENV, apply_thread_policy, policy_threads


def test_policy_is_half_the_cores_and_fixed(monkeypatch):
    monkeypatch.delenv(THREADS_ENV, raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert policy_threads() == max(1, (os.cpu_count() or 1) // 2)
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert policy_threads() == 8
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    assert policy_threads() == 1


def test_environment_overrides(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("OMP_NUM_THREADS", "3")
        assert policy_threads() == 3
        monkeypatch.setenv(THREADS_ENV, "2")
        assert policy_threads() == 2 and apply_thread_policy() == 2
        assert torch.get_num_threads() == 2
        monkeypatch.setenv(THREADS_ENV, "zero")  # not a count: ignored
        assert policy_threads() == 3
    finally:
        torch.set_num_threads(before)
