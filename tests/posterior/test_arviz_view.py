from dive_pyro.posterior.arviz_view import pose_hdi, pose_summary, to_inference_data
from dive_pyro.posterior.export import sample_posterior
from tests.fixtures import tiny


def test_inference_data_summary_and_hdi():
    model, guide, _, batch = tiny()
    tree = sample_posterior(model, guide, batch, 16, seed=0)
    idata = to_inference_data(tree)
    assert dict(idata.posterior["z_p"].sizes)["chain"] == 1 and idata.posterior.sizes["draw"] == 16
    table = pose_summary(tree, video=0)
    assert len(table) == 2 * 8 * 3  # objects x frames x (scale, x, y)
    z = tree["posterior"]["z_p"].isel(video=0, object=1, time=3).sel(pose_dim="x").values
    row = table.loc["z_p[1, 3, x]"]
    assert abs(row["mean"] - z.mean()) <= 5e-4 + 1e-6 and set(table.columns) >= {
        "mean",
        "sd",
        "hdi_5%",
        "hdi_95%",
    }
    hdi = pose_hdi(tree, 0.9)["position"]
    assert hdi.sizes["hdi"] == 2 and (hdi.sel(hdi="lower") <= hdi.sel(hdi="higher")).all()
