"""Physics invariants of the tight-binding optics generator (small meshes to stay fast)."""

from __future__ import annotations

import numpy as np
import pytest
import spglib

from scipy.fft import next_fast_len
from scipy.special import dawsn

from lightning_dielectric.data.neighbors import periodic_neighbors
from lightning_dielectric.synthetic.hamiltonian import build_tb_model
from lightning_dielectric.synthetic.optics import (
    WIDTH_RATIO,
    OpticsSettings,
    _width_classes,
    broadened_spectrum,
    irreducible_kpoints,
    optical_response,
    reciprocal,
)
from lightning_dielectric.synthetic.prototypes import MIN_DISTANCE_RATIO, PROTOTYPES, min_distance_ratio, random_structure
from lightning_dielectric.synthetic.slater_koster import bond_parameters, element_params, hopping_blocks, orbital_rotation

FCC = np.array([[0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]])


def _random_rotation(rng) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def _low_symmetry_cell(seed: int = 3):
    """A strained, displaced two-atom cell (B2 AlNi-like) with no symmetry but time reversal."""
    rng = np.random.default_rng(seed)
    lattice = 2.9 * (np.eye(3) + 0.03 * rng.normal(size=(3, 3)))
    positions = np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]]) @ lattice + 0.05 * rng.normal(size=(2, 3))
    return lattice, np.array([13, 28]), positions


def test_hopping_blocks_follow_slater_koster_table():
    a, b = element_params(30), element_params(80)  # Zn (s p d) to Hg (s p d)
    rng = np.random.default_rng(0)
    vec = rng.normal(size=(6, 3))
    vec *= 2.7 / np.linalg.norm(vec, axis=1, keepdims=True)
    t = hopping_blocks(vec, a, b)
    p = bond_parameters(np.full(6, 2.7), a, b)
    cut = t[:, 0, 0] / p["ss_sigma"]  # the (common) cut-off factor
    l, m, n = (vec / 2.7).T
    s3 = np.sqrt(3.0)
    expected = {
        (0, 1): l * p["sp_sigma"],
        (1, 2): l * m * (p["pp_sigma"] - p["pp_pi"]),
        (1, 4): s3 * l**2 * m * p["pd_sigma_b"] + m * (1 - 2 * l**2) * p["pd_pi_b"],
        (3, 8): n * (n**2 - (l**2 + m**2) / 2) * p["pd_sigma_b"] + s3 * n * (l**2 + m**2) * p["pd_pi_b"],
        (0, 7): s3 / 2 * (l**2 - m**2) * p["sd_sigma_b"],
        (4, 4): 3 * l**2 * m**2 * p["dd_sigma"] + (l**2 + m**2 - 4 * l**2 * m**2) * p["dd_pi"] + (n**2 + l**2 * m**2) * p["dd_delta"],
        (5, 7): 1.5 * m * n * (l**2 - m**2) * p["dd_sigma"] - m * n * (1 + 2 * (l**2 - m**2)) * p["dd_pi"]
        + m * n * (1 + (l**2 - m**2) / 2) * p["dd_delta"],
        (8, 8): (n**2 - (l**2 + m**2) / 2) ** 2 * p["dd_sigma"] + 3 * n**2 * (l**2 + m**2) * p["dd_pi"]
        + 0.75 * (l**2 + m**2) ** 2 * p["dd_delta"],
    }
    for (i, j), value in expected.items():
        np.testing.assert_allclose(t[:, i, j], cut * value, atol=1e-12, err_msg=f"element ({i}, {j})")
    # Reverse bond: ⟨β on b|H|α on a⟩ = ⟨α on a|H|β on b⟩.
    np.testing.assert_allclose(hopping_blocks(-vec, b, a), np.swapaxes(t, 1, 2), atol=1e-12)


def test_orbital_rotation_is_orthogonal_and_covariant():
    rng = np.random.default_rng(1)
    r1, r2 = _random_rotation(rng), _random_rotation(rng)
    d1, d2, d12 = orbital_rotation(np.stack([r1, r2, r1 @ r2]))
    np.testing.assert_allclose(d1 @ d1.T, np.eye(9), atol=1e-12)
    np.testing.assert_allclose(d1 @ d2, d12, atol=1e-12)  # a representation
    a, b = element_params(30), element_params(80)
    vec = rng.normal(size=(4, 3)) * 1.6
    np.testing.assert_allclose(hopping_blocks(vec @ r1.T, a, b), d1 @ hopping_blocks(vec, a, b) @ d1.T, atol=1e-12)


def test_hamiltonian_hermitian_and_gradient_is_derivative():
    model = build_tb_model(*_low_symmetry_cell())
    rng = np.random.default_rng(2)
    k = rng.normal(size=(3, 3))
    h, dh = model.hamiltonian(k)
    np.testing.assert_allclose(h, np.conj(np.swapaxes(h, 1, 2)), atol=1e-12)
    step = 1e-6
    for a in range(3):
        shift = np.zeros(3)
        shift[a] = step
        numeric = (model.hamiltonian(k + shift)[0] - model.hamiltonian(k - shift)[0]) / (2 * step)
        np.testing.assert_allclose(dh[:, a], numeric, atol=1e-6)


def test_prototypes_have_their_space_groups_and_draws_respect_distances():
    expected = {"A1": 225, "A2": 229, "A3": 194, "B2": 221, "L1_2": 221, "L1_0": 123, "C15": 227, "L2_1": 225,
                "C1_b": 216, "A15": 223, "C32": 191, "B_h": 187, "D0_3": 225}
    for proto in PROTOTYPES:
        lattice, positions, labels = proto.cell(4.0)
        numbers = [{"A": 29, "B": 13, "C": 25}[x] for x in labels]
        data = spglib.get_symmetry_dataset((lattice, positions @ np.linalg.inv(lattice), numbers), symprec=1e-4)
        assert data.number == expected[proto.name], proto.name
        assert 1 <= len(labels) <= 8
    rng = np.random.default_rng(0)
    for _ in range(30):
        lattice, numbers, positions, _ = random_structure(rng)
        radii = np.array([element_params(int(z)).radius for z in numbers])
        assert min_distance_ratio(lattice, positions, radii) >= MIN_DISTANCE_RATIO
        assert numbers.max() <= 83


def test_min_distance_ratio_equals_full_search():
    """The short first search gives the minimum over all pairs within 3 max r, bit for bit."""
    rng = np.random.default_rng(5)
    for proto in PROTOTYPES:
        for a in (1.0, 3.0, 6.0):  # unit-scale cells (as first drawn), real ones, and sparse ones
            lattice, positions, labels = proto.cell(a)
            positions = positions + 0.05 * rng.normal(size=positions.shape)
            radii = rng.uniform(1.2, 2.0, size=len(labels))
            src, dst, _, dist = periodic_neighbors(lattice, positions, 3.0 * radii.max())
            full = float(np.min(dist / (radii[src] + radii[dst]), initial=np.inf))
            assert min_distance_ratio(lattice, positions, radii) == full, (proto.name, a)


def _complex_fft_spectrum(energies, weights, sigma, settings):
    """Re ε, Im ε the straightforward way: the binned odd histogram of each width class times the
    complex FFT of G_σ + i R_σ, one complex inverse FFT (the formulation the rfft path replaced)."""
    de = settings.bin_width
    e_top = max(settings.e_max_ext, float(energies.max()) + 6 * settings.max_broadening)
    n_bins = int(round(np.ceil(e_top / 20.0) * 20.0 / de)) + 1
    classes = _width_classes(settings.broadening, settings.max_broadening)
    cls = np.clip(np.round(np.log(sigma / classes[0]) / np.log(WIDTH_RATIO)), 0, len(classes) - 1).astype(int)
    hist = np.zeros((len(classes), n_bins + 1))
    i0 = np.floor(energies / de).astype(int)
    frac = energies / de - i0
    np.add.at(hist, (cls, i0), weights * (1 - frac))
    np.add.at(hist, (cls, i0 + 1), weights * frac)
    hist = hist[:, :n_bins]
    odd = np.concatenate([-hist[:, :0:-1], np.zeros((len(classes), 1)), hist[:, 1:]], axis=1)
    x = np.arange(-2 * n_bins, 2 * n_bins + 1) * de
    s = classes[:, None]
    kernel = np.exp(-0.5 * (x / s) ** 2) / (np.sqrt(2 * np.pi) * s) - 1j * np.sqrt(2.0) / (np.pi * s) * dawsn(
        x / (np.sqrt(2.0) * s)
    )
    length = next_fast_len(2 * n_bins - 1 + len(x) - 1)
    full = np.fft.ifft(np.sum(np.fft.fft(odd, length, axis=1) * np.fft.fft(kernel, length, axis=1), axis=0))
    out = full[3 * n_bins - 1 : 4 * n_bins - 1]
    return 1.0 + out.imag, np.maximum(out.real, 0.0)


def test_rfft_spectrum_equals_complex_fft_formula():
    settings = OpticsSettings()
    rng = np.random.default_rng(2)
    energies = np.concatenate([rng.uniform(0.005, 45.0, 400), [0.004, 12.345]])
    weights = rng.uniform(0.0, 2.0, len(energies))
    sigma = rng.uniform(0.1, 1.2, len(energies))  # all width classes, the widest clipped
    re, im = broadened_spectrum(energies, weights, sigma, settings)
    re_ref, im_ref = _complex_fft_spectrum(energies, weights, sigma, settings)
    assert re.shape == re_ref.shape and len(re) > 4000  # grid extended past 45 eV + 6 max_broadening
    scale = np.abs(im_ref).max()
    np.testing.assert_allclose(re, re_ref, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(im, im_ref, rtol=0, atol=1e-12 * scale)


def test_irreducible_weights_sum_to_mesh_and_reduce_cubic_mesh():
    lattice = 3.6 * FCC
    k, w = irreducible_kpoints(lattice, np.zeros((1, 3)), np.array([29]), (8, 8, 8))
    assert w.sum() == 512 and len(k) == 29  # the textbook 29 points of an 8×8×8 Γ-centred fcc mesh
    lattice, numbers, positions = _low_symmetry_cell()
    k, w = irreducible_kpoints(lattice, positions, numbers, (4, 4, 4))
    assert w.sum() == 64 and len(k) == 36  # time reversal only: (64 + 8 self-inverse points) / 2


@pytest.fixture(scope="module")
def low_symmetry_result():
    model = build_tb_model(*_low_symmetry_cell())
    return model, optical_response(model, mesh=(8, 8, 8))


def test_spectra_positive_finite_and_drude_finite(low_symmetry_result):
    _, res = low_symmetry_result
    assert np.all(res.eps_im >= 0) and np.all(np.isfinite(res.eps_im)) and np.all(np.isfinite(res.eps_re))
    assert res.eps_im.max() > 0.1  # a metal with several bands does absorb
    assert np.isfinite(res.drude) and 1.0 < res.drude < 25.0
    assert res.eps_re_ext.shape[0] * OpticsSettings().bin_width >= 40.0


def test_kramers_kronig_consistency(low_symmetry_result):
    """Re ε − 1 from Im ε by an independent discrete KK integral (Maclaurin's odd/even rule).

    Tolerance: 2 % of max |Re ε − 1| on 0.5–20 eV (discretisation of the 0.01 eV grid).
    """
    _, res = low_symmetry_result
    im, h = res.eps_im_ext, OpticsSettings().bin_width
    w = np.arange(len(im)) * h
    idx = np.arange(50, 2001, 25)
    kk = np.empty(len(idx))
    for n, i in enumerate(idx):
        j = np.arange((i + 1) % 2, len(im), 2)  # points with j − i odd: the pole is never hit
        kk[n] = 1.0 + (2 / np.pi) * 2 * h * np.sum(w[j] * im[j] / (w[j] ** 2 - w[i] ** 2))
    scale = np.abs(res.eps_re[50:] - 1).max()
    assert np.abs(kk - res.eps_re_ext[idx]).max() < 0.02 * scale


@pytest.mark.parametrize("adaptive", [0.0, OpticsSettings.adaptive])
def test_supercell_gives_same_spectra(adaptive):
    """A 2×1×1 supercell on the folded mesh reproduces ε and ω_D (to 1e-4 relative).

    Fixed widths check the mesh folding and the velocity operator with positions; adaptive
    widths also check that folded bands, exactly degenerate on two of the four k₁ planes,
    are resolved back into the primitive cell's states.
    """
    tol = 1e-4
    settings = OpticsSettings(adaptive=adaptive)
    lattice, numbers, positions = _low_symmetry_cell()
    res = optical_response(build_tb_model(lattice, numbers, positions), settings, mesh=(8, 8, 8))
    super_lattice = lattice * np.array([[2.0], [1.0], [1.0]])
    super_positions = np.vstack([positions, positions + lattice[0]])
    sup = optical_response(build_tb_model(super_lattice, np.tile(numbers, 2), super_positions), settings, mesh=(4, 8, 8))
    assert abs(sup.drude - res.drude) < tol * res.drude
    np.testing.assert_allclose(sup.eps_im, res.eps_im, atol=tol * res.eps_im.max())
    np.testing.assert_allclose(sup.eps_re, res.eps_re, atol=tol * np.abs(res.eps_re).max())


def test_rotation_and_translation_change_nothing(low_symmetry_result):
    _, res = low_symmetry_result
    lattice, numbers, positions = _low_symmetry_cell()
    rot = _random_rotation(np.random.default_rng(5))
    moved = optical_response(build_tb_model(lattice @ rot.T, numbers, positions @ rot.T + [0.3, -1.7, 2.2]), mesh=(8, 8, 8))
    assert abs(moved.drude - res.drude) < 1e-4 * res.drude
    np.testing.assert_allclose(moved.eps_im, res.eps_im, atol=1e-4 * res.eps_im.max())
    np.testing.assert_allclose(moved.eps_re, res.eps_re, atol=1e-4 * np.abs(res.eps_re).max())


def test_symmetric_wedge_equals_full_mesh():
    """fcc Cu: the irreducible-wedge sum equals the sum over the full mesh (symmetry off)."""
    model = build_tb_model(3.6 * FCC, [29], [[0, 0, 0]])
    wedge = optical_response(model, mesh=(6, 6, 6))
    full = optical_response(model, OpticsSettings(symmetry=False), mesh=(6, 6, 6))
    assert wedge.n_kpoints < full.n_kpoints
    assert abs(wedge.drude - full.drude) < 1e-4 * full.drude
    np.testing.assert_allclose(wedge.eps_im, full.eps_im, atol=1e-4 * full.eps_im.max())


def test_single_s_band_has_no_interband_and_full_band_no_drude():
    lattice = 3.0 * FCC
    one = optical_response(build_tb_model(lattice, [11], [[0, 0, 0]], max_l=0), mesh=(6, 6, 6))
    assert np.all(one.eps_im == 0) and np.all(one.eps_re == 1)
    assert one.drude > 1.0  # half-filled s band: a metal
    full = optical_response(build_tb_model(lattice, [11], [[0, 0, 0]], max_l=0, n_electrons=2), mesh=(6, 6, 6))
    assert full.drude < 1e-8


def test_reference_metals_are_plausible():
    """fcc Al, Cu, Ag, Au, Pt: ω_D within 1–25 eV, spectra finite, Al above the noble metals."""
    from lightning_dielectric.synthetic.reference import reference_results

    results = reference_results()
    for name, r in results.items():
        assert 1.0 < r.drude < 25.0, name
        assert np.all(np.isfinite(r.eps_re)) and np.all(r.eps_im >= 0), name
        assert np.abs(np.diff(r.eps_im)).max() < 0.2 * r.eps_im.max(), name  # smooth on the 0.01 eV grid
    assert results["Al"].drude > max(results[m].drude for m in ("Cu", "Ag", "Au"))


def test_basis_is_s_d_for_transition_and_noble_metals():
    """The s–d model's defining condition: groups 3–11 carry s + d (6 orbitals), no p;
    group 12 keeps s p d, s–p elements s p; the valence electrons are unchanged."""
    from pymatgen.core import Element

    from lightning_dielectric.synthetic.prototypes import ELEMENTS
    from lightning_dielectric.synthetic.slater_koster import D_ORB, P_ORB, S_ORB

    for z in ELEMENTS:
        p, group = element_params(z), Element.from_Z(z).group
        expected = S_ORB + D_ORB if 3 <= group <= 11 else S_ORB + P_ORB + (D_ORB if group == 12 else ())
        assert p.orbitals == expected and len(p.onsite) == p.n_orb, p.symbol
        assert p.n_electrons == (group if group <= 12 else group - 10), p.symbol
        assert p.n_electrons < 2 * p.n_orb, p.symbol  # never a full basis: every element can be a metal
    model = build_tb_model(*_low_symmetry_cell())  # Al (s p) + Ni (s d)
    assert model.n_orb == 4 + 6 and list(model.d_orbitals) == [5, 6, 7, 8, 9]


# Allowed |ħω_D / Ordal − 1|: the 20 % for Ag and Au; Cu is at +30 % (its s band is still
# too wide, docs/synthetic_data.md §5), so its bound only guards against a regression.
DRUDE_TOLERANCE = {"Cu": 0.35, "Ag": 0.20, "Au": 0.20}


@pytest.mark.parametrize("name", ["Cu", "Ag", "Au"])
def test_noble_metals_have_filled_d_bands(name):
    """fcc Cu, Ag, Au (d¹⁰s¹): projected d occupation ≥ 9.6, no low-energy d→d transitions
    (interband Re ε(0) ≤ 20), ħω_D near Ordal et al. (``DRUDE_TOLERANCE``), and the high-energy
    limit: |Re ε_inter(20 eV) − 1| ≤ 0.3."""
    from lightning_dielectric.synthetic.optics import orbital_occupations
    from lightning_dielectric.synthetic.reference import METALS, reference_model

    model = reference_model(name)
    occupations = orbital_occupations(model)
    assert abs(occupations.sum() - 11.0) < 1e-8
    assert occupations[model.d_orbitals].sum() >= 9.6
    res = optical_response(model)
    assert res.eps_re[0] <= 20.0
    assert abs(res.drude / METALS[name][2] - 1) <= DRUDE_TOLERANCE[name]
    assert abs(res.eps_re[-1] - 1) <= 0.3


def _shifted(model, shifts):
    """``model`` with every on-site level of atom i raised by ``shifts[i]`` (eV)."""
    from dataclasses import replace

    atom_of = np.repeat(np.arange(len(model.numbers)), np.diff(model.offsets))
    return replace(model, onsite=model.onsite + shifts[atom_of])


@pytest.mark.parametrize("case", ["low_symmetry", "L1_2", "C15"])
def test_local_charge_neutrality_holds_per_site(case):
    """After the self-consistency every atom holds its valence electrons to the tolerance, and an
    independent full-mesh count (no symmetry, no self-consistency) of the shifted model agrees."""
    from lightning_dielectric.synthetic.optics import orbital_occupations
    from lightning_dielectric.synthetic.prototypes import PROTOTYPES

    if case == "low_symmetry":
        lattice, numbers, positions = _low_symmetry_cell()  # Al + Ni, no symmetry but time reversal
    else:  # ideal cells with equivalent sites: L1_2 AlPt3 (Cu3Au type) and C15 CaAl2 (MgCu2 type)
        proto = next(p for p in PROTOTYPES if p.name == case)
        lattice, positions, labels = proto.cell(4.0 if case == "L1_2" else 7.6)
        numbers = np.array([{"L1_2": {"A": 13, "B": 78}, "C15": {"A": 20, "B": 13}}[case][x] for x in labels])
    model = build_tb_model(lattice, numbers, positions)
    mesh = (5, 5, 5)
    res = optical_response(model, mesh=mesh)
    tol = OpticsSettings().neutrality_tol
    assert np.abs(res.site_charges - model.site_electrons).max() <= tol
    assert np.abs(res.site_shifts).max() > 0.05  # unlike atoms: the shifts are doing something
    assert abs(res.site_shifts.sum()) < 1e-9  # gauge: a common shift only moves μ
    plain = OpticsSettings(symmetry=False, neutrality=False)
    occ = orbital_occupations(_shifted(model, res.site_shifts), plain, mesh=mesh)
    sites = np.bincount(np.repeat(np.arange(len(numbers)), np.diff(model.offsets)), occ)
    np.testing.assert_allclose(sites, model.site_electrons, atol=1e-5)
    unshifted = orbital_occupations(model, plain, mesh=mesh)
    assert np.abs(np.bincount(np.repeat(np.arange(len(numbers)), np.diff(model.offsets)), unshifted)
                  - model.site_electrons).max() > 0.05  # without the correction the sites are charged


def test_one_atom_cells_need_no_shift():
    res = optical_response(build_tb_model(3.6 * FCC, [29], [[0, 0, 0]]), mesh=(6, 6, 6))
    assert res.neutrality_iterations == 0 and np.all(res.site_shifts == 0)
    assert abs(res.site_charges[0] - 11.0) < 1e-9
