"""The bundled demo runs end to end and scores the LR baselines against the truth."""

import json

import nibabel as nib
import numpy as np

from swigapp.cli import demo


def test_demo_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert demo.main([str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| zerofilled |" in printed and "| swig |" in printed
    table = (out / "derivatives/swigapp-demo/scores.tsv").read_text().splitlines()
    header = table[0].split("\t")
    rows = {
        line.split("\t")[0]: dict(zip(header, line.split("\t"), strict=True)) for line in table[1:]
    }
    assert set(rows) == set(demo.METHODS)
    for row in rows.values():
        # LR input loses detail: imperfect but clearly related to the truth
        assert 0.5 < float(row["T1_SSIM"]) < 0.99
        assert 0.05 < float(row["T1_HFEN"]) < 1.0
    # the shipped model with T1w + T2w guides beats the LR input; FLAIR was never an input
    swig, lr = rows["swig"], rows["zerofilled"]
    assert float(swig["T1_SSIM"]) > float(lr["T1_SSIM"]) + 0.02
    assert float(swig["T2_SSIM"]) > float(lr["T2_SSIM"]) + 0.02
    assert float(swig["FLAIR_SSIM"]) > float(lr["FLAIR_SSIM"]) + 0.1
    anat = out / "derivatives/swigapp-demo/sub-01/anat"
    flair = nib.load(anat / "sub-01_desc-cubic_FLAIR.nii.gz")
    assert flair.shape == (88, 104, 40)  # the tiny slab with 10 mm of room in-plane
    t1 = nib.load(anat / "sub-01_desc-zerofilled_T1map.nii.gz").get_fdata()
    assert 0.8 < np.median(t1[t1 > 0.3]) < 2.0  # seconds
    app = out / "derivatives" / "swigapp"
    assert (app / "sub-01" / "anat" / "sub-01_res-hi_desc-swig_T1map.nii.gz").is_file()
    assert (app / "sub-01.html").is_file()
    assert "<section class='methods'>" in (app / "sub-01.html").read_text()
    for ext in ("md", "html", "bib"):
        assert (app / "sub-01" / "log" / f"sub-01_methods.{ext}").stat().st_size > 1000
    assert len((app / "group_qc.tsv").read_text().splitlines()) == 2
    # the demo's guides see beyond the maps' slab, as a whole-head T1w does: no part of the
    # brain is left to the no-guide fallback (3.3 % was, with guides cut to the maps' slab)
    qc = json.loads((app / "sub-01" / "log" / "sub-01_qc.json").read_text())
    assert qc["GuideFallbackFraction"] == 0.0
    assert not any("field of view" in w for w in qc["Warnings"])
    assert demo.main([str(out)]) == 1  # refuses a non-empty output folder
