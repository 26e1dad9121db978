"""Confidence intervals on synthetic data with known parameters: each interval covers the truth
at about its nominal rate over 200 simulated studies (seeded, so the counts are fixed).

Coverage bands: with 200 studies, a true 95 % coverage gives 190 +- 3 x 3.1 hits (binomial
standard deviation), so 0.90-0.99 for the exact t-intervals; 0.88-0.99 for the approximate
ones (blocks, bootstrap), which may run a point or two under nominal in small samples."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage, signal, stats

from micronet_tf import measurement_statistics as ms
from micronet_tf.measure import thickness_samples

STUDIES = 200
EXACT = (0.90, 0.99)
APPROXIMATE = (0.88, 0.99)


def covers(interval: ms.Interval, truth: float) -> bool:
    return interval.low <= truth <= interval.high


def boolean_discs(rng: np.random.Generator, shape: tuple, fraction: float, radius: int = 2):
    """A Boolean model of discs on the pixel grid (centres: independent Bernoulli pixels, also
    outside the window): each pixel is covered with probability exactly ``fraction``."""
    y, x = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    disc = y**2 + x**2 <= radius**2
    centre = 1 - (1 - fraction) ** (1 / disc.sum())
    padded = rng.random((shape[0] + 2 * radius, shape[1] + 2 * radius)) < centre
    covered = ndimage.binary_dilation(padded, disc)
    return covered[radius:-radius, radius:-radius].astype(np.uint8)


def test_between_images_t_interval_covers_at_the_nominal_rate() -> None:
    rng = np.random.default_rng(1)
    hits = 0
    for _ in range(STUDIES):
        fractions = rng.normal(0.3, 0.05, size=5)  # five images of a 30 % phase
        interval = ms.between_images(fractions, what="area fractions")
        hits += covers(interval, 0.3)
    assert EXACT[0] <= hits / STUDIES <= EXACT[1], hits
    # The formula itself: mean +- t(n - 1) s / sqrt(n), n = images.
    values = [0.31, 0.27, 0.35, 0.30]
    interval = ms.between_images(values, confidence=0.9)
    half = stats.t.ppf(0.95, 3) * np.std(values, ddof=1) / 2
    assert (interval.low, interval.high) == pytest.approx(
        (np.mean(values) - half, np.mean(values) + half)
    )
    assert interval.n == 4 and interval.level == 0.9 and "images as units" in interval.method
    assert set(interval.to_dict()) == {"estimate", "low", "high", "level", "method", "n"}


def test_between_blocks_covers_and_narrows_with_area() -> None:
    rng = np.random.default_rng(2)
    hits, widths = 0, []
    for _ in range(STUDIES):
        mask = boolean_discs(rng, (144, 144), 0.3)  # 3 x 3 blocks of 48 px, discs of 5 px
        interval = ms.area_fractions_between_blocks(mask, 2, block_size=48)[1]
        assert interval.n == 9 and interval.estimate == pytest.approx(mask.mean())
        hits += covers(interval, 0.3)
        widths.append(interval.high - interval.low)
    assert APPROXIMATE[0] <= hits / STUDIES <= APPROXIMATE[1], hits
    larger = [
        ms.area_fractions_between_blocks(boolean_discs(rng, (288, 288), 0.3), 2, block_size=48)[1]
        for _ in range(20)
    ]
    assert all(i.n == 36 for i in larger)
    # Four times the area: about half the width (sqrt(1/4), and t(35) < t(8)): 0.44 expected.
    ratio = np.mean([i.high - i.low for i in larger]) / np.mean(widths[:20])
    assert 0.3 < ratio < 0.6, ratio


def test_one_image_with_too_few_blocks_gives_no_interval() -> None:
    mask = np.zeros((256, 200), np.uint8)
    mask[:, :60] = 1
    found = ms.area_fractions_between_blocks(mask, 2)  # 128 px blocks: 2 x 1
    for interval, fraction in zip(found, (140 / 200, 60 / 200)):
        assert interval.estimate == pytest.approx(fraction)
        assert interval.low is None and interval.high is None and interval.n == 2
        assert "fewer than the 9 an interval needs: no interval" in interval.note
        assert interval.to_dict()["low"] is None and "note" in interval.to_dict()
    single = ms.between_images([0.4])
    assert single.low is None and single.note == "one image: no interval"


def test_automatic_block_size_follows_the_objects() -> None:
    assert ms.automatic_block_size([]) == 128
    assert ms.automatic_block_size([8.0, 58.6]) == 128
    assert ms.automatic_block_size([8.0, 100.2]) == 201  # twice the largest median diameter


def test_fraction_intervals_are_clipped_to_zero_and_one() -> None:
    interval = ms.between_images([0.001, 0.03], what="area fractions", bounds=(0.0, 1.0))
    assert interval.low == 0.0 and "clipped" in interval.note


def test_bootstrap_covers_mean_and_median_at_the_nominal_rate() -> None:
    rng = np.random.default_rng(3)
    mu, sigma = 1.0, 0.5  # lognormal sizes: mean exp(mu + sigma^2 / 2), median exp(mu)
    hits = {"mean": 0, "median": 0}
    for study in range(STUDIES):
        sizes = rng.lognormal(mu, sigma, size=60)
        found = ms.bootstrap([sizes], resamples=400, seed=study)
        hits["mean"] += covers(found["mean"], np.exp(mu + sigma**2 / 2))
        hits["median"] += covers(found["median"], np.exp(mu))
    for name, count in hits.items():
        assert APPROXIMATE[0] <= count / STUDIES <= APPROXIMATE[1], (name, count)


def test_bootstrap_is_reproducible_with_a_seed() -> None:
    rng = np.random.default_rng(4)
    groups = [rng.lognormal(2, 0.4, size=n) for n in (30, 45, 12)]
    first = ms.bootstrap(groups, resamples=500, seed=7)
    assert first == ms.bootstrap(groups, resamples=500, seed=7)
    other = ms.bootstrap(groups, resamples=500, seed=8)
    assert other["mean"].low != first["mean"].low
    assert first["mean"].estimate == pytest.approx(np.concatenate(groups).mean())
    assert first["median"].estimate == pytest.approx(np.median(np.concatenate(groups)))
    assert "hierarchical" in first["mean"].method and first["mean"].n == 87
    one = ms.bootstrap([[4.0]])
    assert (
        one["mean"].estimate == 4.0
        and one["mean"].low is None
        and "no interval" in one["mean"].note
    )


def test_hierarchical_bootstrap_is_wider_than_naive_and_covers_on_clustered_data() -> None:
    """Objects of one image share a shift (the image's field of view): the images, not the
    objects, are the independent units. The naive bootstrap, which pools the objects, is too
    narrow; the hierarchical one (images, then objects) covers."""
    rng = np.random.default_rng(5)
    mu, sigma, between = 1.0, 0.5, 0.3
    truth = np.exp(mu + sigma**2 / 2 + between**2 / 2)
    hits = {"hierarchical": 0, "naive": 0}
    for study in range(STUDIES):
        shifts = rng.normal(0, between, size=8)  # eight images
        groups = [rng.lognormal(mu + s, sigma, size=rng.integers(20, 41)) for s in shifts]
        nested = ms.bootstrap(groups, statistics=("mean",), resamples=300, seed=study)["mean"]
        naive = ms.bootstrap(
            groups, statistics=("mean",), resamples=300, seed=study, hierarchical=False
        )["mean"]
        assert nested.high - nested.low > naive.high - naive.low
        hits["hierarchical"] += covers(nested, truth)
        hits["naive"] += covers(naive, truth)
    assert APPROXIMATE[0] <= hits["hierarchical"] / STUDIES <= APPROXIMATE[1], hits
    assert hits["naive"] / STUDIES < 0.75, hits  # far below 95 %


def correlated_profile(rng: np.random.Generator, length: int, mean: float) -> np.ndarray:
    """Thickness along a layer: AR(1) noise with a correlation length of about 20 px."""
    noise = signal.lfilter([1.0], [1.0, -0.95], rng.normal(0, 1, size=length + 500))[500:]
    return mean + 2.0 * noise


def test_thickness_blocks_cover_where_raw_samples_do_not() -> None:
    rng = np.random.default_rng(6)
    columns = np.arange(2048)
    where = np.stack([np.full(columns.size, 100), columns], axis=1)
    hits = {"blocks": 0, "samples": 0}
    for _ in range(STUDIES):
        profile = correlated_profile(rng, columns.size, 40.0)
        interval = ms.thickness_between_blocks(profile, where, block_size=128)
        assert interval.n == 16 and "column blocks" in interval.method
        hits["blocks"] += covers(interval, 40.0)
        naive = ms.t_interval(profile)  # every skeleton sample as a unit: wrong
        hits["samples"] += covers(naive, 40.0)
    assert APPROXIMATE[0] <= hits["blocks"] / STUDIES <= APPROXIMATE[1], hits
    assert hits["samples"] / STUDIES < 0.6, hits


def test_thickness_of_a_vertical_band() -> None:
    band = np.zeros((1024, 300), bool)
    band[:, 100:140] = True  # 40 px thick, running top to bottom
    values, where = thickness_samples(band)
    assert ms.layer_direction(where) == "rows"
    interval = ms.thickness_between_blocks(values, where)
    assert "row blocks" in interval.method and interval.n == 8  # 1024 px / 128
    assert interval.low <= 40.0 <= interval.high + 1.0  # the skeleton's ends lower the mean
    short = ms.thickness_between_blocks(values[:100], where[:100])
    assert short.low is None and "no interval" in short.note


def test_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="confidence=1.5: expected a level between 0 and 1"):
        ms.check_confidence(1.5)
    with pytest.raises(
        ValueError, match="resamples=10: expected a whole number of bootstrap resamples >= 100"
    ):
        ms.bootstrap([[1.0, 2.0, 3.0]], resamples=10)
    with pytest.raises(ValueError, match="statistic 'mode'"):
        ms.bootstrap([[1.0, 2.0]], statistics=("mode",))
