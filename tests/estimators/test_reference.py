"""The reference set of DeepREMAP: nearest neighbours and the novelty threshold."""

import astropy.units as u
import numpy as np
import pytest

from stellarlatent.estimators._reference import ReferenceSet


def _reference(n=300, dim=6, seed=0):
    rng = np.random.default_rng(seed)
    embeddings = rng.normal(size=(n, dim)) * rng.uniform(0.5, 3.0, (n, 1))
    values = np.column_stack([rng.uniform(4000, 7000, n), rng.uniform(-2, 0.5, n)])
    values[3, 1] = np.nan
    return ReferenceSet(embeddings, values, ["teff", "feh"], {"teff": u.K, "feh": u.dex})


def _brute_force(reference, queries, k):
    distances = np.linalg.norm(queries[:, None, :] - reference[None, :, :], axis=2)
    indices = np.argsort(distances, axis=1)[:, :k]
    return np.take_along_axis(distances, indices, axis=1), indices


@pytest.mark.parametrize("normalized", [False, True])
def test_query_finds_the_nearest_reference_spectra(normalized):
    reference = _reference()
    queries = np.random.default_rng(1).normal(size=(40, 6))
    distances, indices = reference.query(queries, 5, normalized=normalized)
    searched = reference.normalized_embeddings if normalized else reference.embeddings
    expected_distances, expected_indices = _brute_force(searched.astype(float), queries, 5)
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_allclose(distances, expected_distances, rtol=1e-6)
    assert distances.dtype == np.float64


def test_a_reference_spectrum_is_its_own_nearest_neighbour():
    reference = _reference()
    distances, indices = reference.query(reference.embeddings[:10], 1)
    np.testing.assert_array_equal(indices[:, 0], np.arange(10))
    np.testing.assert_array_equal(distances[:, 0], 0.0)


def test_the_threshold_is_a_quantile_of_the_nearest_other_distances():
    reference = _reference(n=120)
    distances, _ = _brute_force(reference.embeddings.astype(float),
                                reference.embeddings.astype(float), 2)
    assert reference.threshold(0.9) == pytest.approx(np.quantile(distances[:, 1], 0.9), rel=1e-6)
    assert reference.threshold(0.5, sample=50) <= reference.threshold(1.0)
    one = ReferenceSet(np.ones((1, 3)), np.ones((1, 1)), ["teff"], {"teff": u.K})
    assert one.threshold(0.99) == np.inf


def test_the_table_holds_the_labels_in_their_units():
    reference = _reference()
    assert reference.table.colnames == ["teff", "feh"]
    assert reference.table["teff"].unit == u.K and np.isnan(reference.table["feh"][3].value)
    assert len(reference) == 300 and reference.embeddings.dtype == np.float32


@pytest.mark.parametrize("k", [0, 301, 2.0, True])
def test_a_bad_number_of_neighbours_is_named(k):
    with pytest.raises(ValueError, match=r"n_neighbors must be an integer in \[1, 300\]"):
        _reference().query(np.zeros((2, 6)), k)


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match="do not describe the same 2 labels"):
        ReferenceSet(np.zeros((4, 3)), np.zeros((5, 2)), ["teff", "feh"],
                     {"teff": u.K, "feh": u.dex})
