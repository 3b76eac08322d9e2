"""The torch Magpie featuriser reproduces matminer's ``ElementProperty.from_preset("magpie")``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matminer.featurizers.composition import ElementProperty
from pymatgen.core import Composition, Element
from torch_geometric.data import Batch

from lightning_dielectric.data import CrystalGraph
from lightning_dielectric.models import MagpieFeatures
from lightning_dielectric.models.embeddings import check_atomic_numbers, group_period

CELLS = [
    [26],  # elemental
    [29, 29, 29, 79],  # Cu3Au
    [79, 29, 29, 29],  # same, other atom order
    [13, 28],  # tie for the mode → minimum of the tied values
    [22, 22, 13, 13, 28, 40, 40, 40],
    [57, 71, 83, 1, 2, 78, 46, 46],  # La, Lu, Bi, H, He
]


def graph(z):
    z = torch.tensor(z)
    return CrystalGraph(z=z, pos=torch.zeros(len(z), 3), cell=torch.eye(3).unsqueeze(0),
                        edge_index=torch.zeros(2, 0, dtype=torch.long))


def test_features_match_matminer():
    featuriser = ElementProperty.from_preset("magpie")
    batch = Batch.from_data_list([graph(z) for z in CELLS])
    ours = MagpieFeatures()(batch.z, batch.batch, batch.num_graphs).numpy()
    assert ours.shape == (len(CELLS), 132)
    for row, z in zip(ours, CELLS):
        comp = Composition({Element.from_Z(k): z.count(k) for k in set(z)})
        np.testing.assert_allclose(row, featuriser.featurize(comp), rtol=1e-12, atol=1e-12)


def test_group_period():
    cases = {1: (1, 1), 2: (18, 1), 13: (13, 3), 26: (8, 4), 57: (3, 6), 71: (3, 6), 72: (4, 6), 83: (15, 6), 86: (18, 6)}
    assert {z: group_period(z) for z in cases} == cases
    with pytest.raises(ValueError, match="Z=92"):
        group_period(92)
    with pytest.raises(ValueError, match=r"Z=\[0, 92\]"):
        check_atomic_numbers([26, 92, 0])
