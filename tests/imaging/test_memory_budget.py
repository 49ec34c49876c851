"""Memory is set by the deployment's budgets, not by the file (issue #17).

Peak memory is measured in a fresh process by ``benchmarks.huge_image_memory`` (``ru_maxrss`` is a high-water mark, which earlier tests
in this process would already have raised).
"""

from __future__ import annotations

from benchmarks.huge_image_memory import big_png, measure, write_archive
from lrclr.imaging.reading import load_image


def test_a_small_zip_of_49_megapixel_pngs_raises_peak_memory_by_at_most_500_mb(tmp_path):
    archive = write_archive(tmp_path / "bomb.zip")
    assert archive.stat().st_size < 600_000
    result = measure(archive)
    assert result["errors"] == [] and result["scored"] == 8
    assert result["peak_rise_mb"] <= 500, result


def test_an_image_over_the_budget_is_decoded_smaller_and_says_so():
    image = load_image(big_png(4000, 0), name="big.png", max_decoded_pixels=4_000_000)
    assert image.pixels.shape == (2000, 2000) and image.decoded_scale == 2
    assert any("1/2 of its 4000 x 4000 pixels" in warning for warning in image.warnings)
    whole = load_image(big_png(4000, 0), name="big.png")
    # Block means: the downsampled image is the full one averaged, not a different picture.
    assert abs(float(image.pixels.mean()) - float(whole.pixels.mean())) < 1e-3
