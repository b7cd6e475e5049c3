"""Determinism of a run and its record (bnlab.train.determinism): what metrics.json says is what was in force."""

import warnings

import pytest
import torch

from bnlab.train import execute_run
from bnlab.train.determinism import (
    CUBLAS_WORKSPACE,
    CUBLAS_WORKSPACE_ENV,
    determinism_state,
    determinism_warnings,
    prepare_determinism,
)


def quiet(_line):
    pass


@pytest.fixture
def torch_flags():
    """Restore torch's global determinism flags after the test."""
    saved = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    yield
    torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[2], saved[3]


@pytest.fixture
def no_cublas_env(monkeypatch):
    """CUBLAS_WORKSPACE_CONFIG unset for the test, and as it was afterwards (also when the test sets it)."""
    monkeypatch.setenv(CUBLAS_WORKSPACE_ENV, "recorded-so-that-teardown-restores-it")
    monkeypatch.delenv(CUBLAS_WORKSPACE_ENV)


def test_cuda_run_gets_a_cublas_workspace_and_deterministic_cudnn(torch_flags, no_cublas_env):
    # nothing here touches a GPU: the settings are environment and flags, made before any CUDA work
    torch.backends.cudnn.benchmark = True
    prepare_determinism(torch.device("cuda"))
    state = determinism_state()
    assert state == {"deterministic_algorithms": True, "deterministic_warn_only": True,
                     "cublas_workspace_config": CUBLAS_WORKSPACE, "cudnn_deterministic": True,
                     "cudnn_benchmark": False}


def test_a_workspace_the_user_set_is_kept(torch_flags, monkeypatch):
    monkeypatch.setenv(CUBLAS_WORKSPACE_ENV, ":16:8")
    prepare_determinism(torch.device("cuda"))
    assert determinism_state()["cublas_workspace_config"] == ":16:8"


def test_cpu_run_sets_no_cuda_settings(torch_flags, no_cublas_env):
    prepare_determinism(torch.device("cpu"))
    state = determinism_state()
    assert state["deterministic_algorithms"] and state["deterministic_warn_only"]
    assert state["cublas_workspace_config"] is None


def test_the_state_is_read_back_from_torch(torch_flags):
    torch.use_deterministic_algorithms(False)
    assert determinism_state()["deterministic_algorithms"] is False
    torch.use_deterministic_algorithms(True)  # warn_only=False: an error, not a warning
    assert determinism_state()["deterministic_warn_only"] is False
    torch.backends.cudnn.benchmark = True
    assert determinism_state()["cudnn_benchmark"] is True


def test_nondeterministic_ops_are_caught_and_other_warnings_passed_on(torch_flags):
    torch.use_deterministic_algorithms(True, warn_only=True)
    found = []
    with pytest.warns(UserWarning, match="something else"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an outer filter cannot hide the ops from the record
            with determinism_warnings(found):
                for _ in range(3):  # put_ on a CPU tensor has no deterministic implementation
                    torch.zeros(5).put_(torch.tensor([0, 1]), torch.tensor([1.0, 2.0]))
        with determinism_warnings(found):
            warnings.warn("something else")
    assert len(found) == 1 and "put_ does not have a deterministic implementation" in found[0]


def test_the_run_records_what_was_in_force(tmp_path, digits_path, make_spec, torch_flags, no_cublas_env):
    torch.backends.cudnn.benchmark = True  # left over from elsewhere: a CPU run does not touch it, and says so
    metrics = execute_run(make_spec(epochs=1), digits_path, tmp_path, log=quiet)
    recorded = metrics["determinism"]
    assert {k: recorded[k] for k in determinism_state()} == determinism_state()
    assert recorded["deterministic_algorithms"] is True and recorded["deterministic_warn_only"] is True
    assert recorded["cublas_workspace_config"] is None and recorded["cudnn_benchmark"] is True
    assert recorded["nondeterministic_ops"] == []  # the MLP's ops on a CPU are all deterministic
    assert recorded["torch_seed"] == recorded["order_seed"] == 0 and recorded["threads"] == 1


def test_cuda_without_a_gpu_fails_before_any_setting(tmp_path, digits_path, make_spec, no_cublas_env):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(RuntimeError, match="no CUDA device"):
        execute_run(make_spec(), digits_path, tmp_path, device="cuda", log=quiet)
    assert determinism_state()["cublas_workspace_config"] is None
