"""``run_demo`` refuses bad arguments before touching its output folder."""

import pytest

from dive_pyro.demo import run_demo


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"checkpoint": "no/such.pt"}, FileNotFoundError, r"no checkpoint at no/such.pt"),
        ({"finetune_steps": -5}, ValueError, r"finetune_steps must be an int >= 0, got -5"),
    ],
)
def test_run_demo_rejects_bad_arguments_first(tmp_path, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        run_demo(tmp_path / "demo", **kwargs)
    assert not (tmp_path / "demo").exists()
