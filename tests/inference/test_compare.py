import pytest

from dive_pyro.data import generate
from dive_pyro.evaluation import BASELINES, evaluate_baseline
from dive_pyro.inference import compare, evaluate_trained, load_trained


def test_baselines_alone_and_reference_rows_only_at_64x64():
    batch = generate("out_of_scene", 3, seed=0, split="test")
    full = compare(None, batch)
    assert list(full.results) == list(BASELINES)
    assert full.results["zeros"] == evaluate_baseline("zeros", batch)
    assert "(published)" in full.markdown  # 64x64: the paper's rows are comparable
    small = compare(None, batch.downsample(2), baselines=["copy-last"])
    assert list(small.results) == ["copy-last"] and "(published)" not in small.markdown
    with pytest.raises(ValueError, match="unknown baseline"):
        compare(None, batch, baselines=["nope"])
    with pytest.raises(TypeError, match="SceneBatch or a scenario name"):
        compare(None, 3)


def test_model_rows_first_then_baselines(tiny_checkpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("DIVE_PYRO_CACHE", str(tmp_path))
    comparison = compare(tiny_checkpoint, "out_of_scene", num_sequences=4, baselines=("zeros",))
    trained = load_trained(tiny_checkpoint)
    name = f"dive (step {trained.step})"
    assert list(comparison.results) == [name, "zeros"]
    assert comparison.batch.frame_size == (16, 16) and comparison.scenario == "out_of_scene"
    direct = evaluate_trained(trained, comparison.batch)[name]
    assert comparison.results[name]["pred"]["mse"] == pytest.approx(direct["pred"]["mse"], rel=1e-5)
    named = compare({"mine": trained}, comparison.batch, baselines=())
    assert list(named.results) == ["mine"] and "| mine |" in named.markdown
