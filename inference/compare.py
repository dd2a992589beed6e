"""Trained model(s) + baselines + one table: :func:`compare`, the single way this project puts a
model's Table-1 metrics next to the trivial baselines (CLI ``evaluate``/``demo``, the shipping
script, the benchmarks and the notebooks all call it).

Every row is scored on the same batch with the same protocol, so the rows are comparable; the
published rows (paper Table 1) are added only when the setting is the paper's (the table's
caption says otherwise why they are hidden, see ``dive_pyro.evaluation.tables.markdown_table``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from dive_pyro.data.batch import SceneBatch
from dive_pyro.evaluation.baselines import BASELINES
from dive_pyro.evaluation.tables import evaluate_baseline, markdown_table
from dive_pyro.inference.trained import TrainedModel, evaluate_trained, fixed_test_set_for, load_trained

__all__ = ["Comparison", "compare"]

Models = TrainedModel | str | Path | Mapping[str, TrainedModel | str | Path] | None


@dataclass
class Comparison:
    """``results``: method name -> ``evaluate_frames`` output (models first, then baselines);
    ``markdown``: :func:`~dive_pyro.evaluation.tables.markdown_table` of them; ``batch``: what was
    scored; ``scenario``: its name."""

    results: dict[str, dict]
    markdown: str
    batch: SceneBatch
    scenario: str | None


def _as_models(models: Models) -> dict[str | None, TrainedModel]:
    if models is None:
        return {}
    if not isinstance(models, Mapping):
        models = {None: models}
    return {name: m if isinstance(m, TrainedModel) else load_trained(m) for name, m in models.items()}


def compare(
    models: Models,
    batch: SceneBatch | str,
    *,
    baselines: Sequence[str] = tuple(BASELINES),
    num_sequences: int = 1024,
    protocol: str = "dive",
    num_samples: int = 1,
    use_mean: bool = True,
    include_reference: bool = True,
    progress: bool | None = None,
) -> Comparison:
    """Score ``models`` and ``baselines`` on ``batch`` and tabulate them.

    ``models``: a :class:`TrainedModel` or checkpoint path (row name ``"<variant> (step n)"``), a
    mapping ``{row name: model or path}``, or ``None`` for the baselines alone. ``batch``: a
    :class:`SceneBatch`, or a scenario name -- then its fixed test set (``num_sequences`` videos) at
    the first model's resolution (the 64x64 scenes average-pooled for a small model).
    ``num_samples``/``use_mean`` as in :func:`~dive_pyro.inference.trained.evaluate_trained`.
    ``include_reference=False`` never adds the published rows (by default they are added when
    the setting matches the paper's). ``progress``: a bar while scoring each model (``None``: only
    on a terminal).
    """
    trained = _as_models(models)
    unknown = sorted(set(baselines) - set(BASELINES))
    if unknown:
        raise ValueError(f"unknown baseline(s) {unknown}; expected names from {sorted(BASELINES)}")
    if not isinstance(batch, SceneBatch | str):
        raise TypeError(f"batch must be a SceneBatch or a scenario name, got {type(batch).__name__}")
    scenario = batch if isinstance(batch, str) else batch.scenario
    if isinstance(batch, str):
        if trained:
            batch = fixed_test_set_for(next(iter(trained.values())).config, batch, num_sequences=num_sequences)
        else:
            from dive_pyro.data import fixed_test_set

            batch = fixed_test_set(batch, num_sequences=num_sequences)
    results: dict[str, dict] = {}
    for name, model in trained.items():
        results.update(
            evaluate_trained(
                model,
                batch,
                protocol=protocol,
                num_samples=num_samples,
                use_mean=use_mean,
                name=name,
                progress=progress,
            )
        )
    for name in baselines:
        results[name] = evaluate_baseline(name, batch, protocol=protocol)
    table = markdown_table(results, scenario=scenario, include_reference=include_reference)
    return Comparison(results, table, batch, scenario)
