"""``dive-pyro impute`` on a small fixture video."""

import numpy as np
import torch

from dive_pyro.cli.parser import main
from dive_pyro.inference.impute import batch_from_frames, impute_video
from dive_pyro.inference.trained import fixed_test_set_for, load_trained


def test_impute_writes_the_library_answer_and_pictures(tmp_path, monkeypatch, tiny_checkpoint, capsys):
    monkeypatch.setenv("DIVE_PYRO_CACHE", str(tmp_path / "cache"))
    trained = load_trained(tiny_checkpoint)
    batch = fixed_test_set_for(trained.config, "out_of_scene", num_sequences=2)
    K = batch.num_observed
    video = batch.observed[:, :K, 0].numpy()  # (B, K, H, W): only the input frames
    np.save(tmp_path / "video.npy", video)
    out, png, gif = tmp_path / "imputed.npy", tmp_path / "imputed.png", tmp_path / "imputed.gif"
    rc = main(
        ["impute", "--checkpoint", str(tiny_checkpoint), "--input", str(tmp_path / "video.npy"), "--out", str(out)]
        + ["--png", str(png), "--gif", str(gif)]
    )
    assert rc == 0, capsys.readouterr().err
    result = np.load(out)
    assert result.shape == (2, batch.num_frames, 1, *batch.frame_size) and result.dtype == np.float32
    expected = impute_video(
        trained.model, trained.guide, batch_from_frames(torch.as_tensor(video), trained.model.config)
    )
    np.testing.assert_array_equal(result, expected.numpy())
    assert png.stat().st_size > 0 and gif.read_bytes()[:6] == b"GIF89a"
    # one video (T, H, W) as uint8 gives the same answer as floats for video 0
    np.save(tmp_path / "one.npy", np.round(video[0] * 255).astype(np.uint8))
    assert (
        main(["impute", "--checkpoint", str(tiny_checkpoint), "--input", str(tmp_path / "one.npy"), "--out", str(out)])
        == 0
    )
    assert np.load(out).shape == (1, batch.num_frames, 1, *batch.frame_size)


def test_impute_rejects_a_video_of_the_wrong_size(tmp_path, tiny_checkpoint, capsys):
    np.save(tmp_path / "big.npy", np.zeros((10, 64, 64), np.float32))
    rc = main(
        [
            "impute",
            "--checkpoint",
            str(tiny_checkpoint),
            "--input",
            str(tmp_path / "big.npy"),
            "--out",
            str(tmp_path / "o.npy"),
        ]
    )
    assert rc == 2
    assert "64x64 but the model expects 16x16" in capsys.readouterr().err
