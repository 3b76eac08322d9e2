"""The paper's model description and parameter names → this package's model and state dict.

``model_config(architecture)`` reads the paper's ``architecture`` dict (as its
``research/scaling_law_base_config/*.json`` hold it) and returns this package's ``class_path`` and
``init_args``:

| paper | here |
|---|---|
| ``type`` ``optimetal_2b`` / ``optimetal_3b`` | ``OptiMetal2B`` / ``OptiMetal3B`` |
| ``hidden_dim`` | ``width`` |
| ``spectra_dim`` | ``spectra_width`` |
| ``twobody_cutoff`` (Å) | ``cutoff`` (Å) |
| ``edge_embedding_dict.num_basis`` | ``num_rbf`` |
| 2B ``message_passing_dict.type`` ``cgconv`` / ``transformer`` | ``conv`` ``"cgc"`` / ``"tc"`` |
| 2B ``message_passing_dict.num_layers`` | ``num_blocks`` |
| 3B ``triplet_block_dict.num_layers`` | ``num_blocks`` |
| 3B ``triplet_block_dict.{edge,node}_graph_mp_dict.heads`` (equal) | ``heads`` |

Settings this package's models fix are checked against :data:`FIXED_SETTINGS` (and 2B's
TransformerConv against 2 heads); any other value is a one-line error naming it. The paper forces
one message-passing layer per triplet-block graph, so ``{edge,node}_graph_mp_dict.num_layers`` is
ignored as it is there.

``convert_state_dict`` renames tensors with the explicit prefix table :data:`KEY_TABLE` (``{i}`` is a
block index; everything after the prefix — ``lins.0.weight``, ``norms.1.module.running_var``,
``conv.lin_f.bias``, … — is the same in both, because both build on the same PyG modules) and
checks that the result has exactly the model's keys and shapes. :data:`CONSTANT_BUFFERS` are fixed
numbers the paper stores (its angle-embedding normalisations); they are checked, not loaded.
"""

from __future__ import annotations

import math
import re

import torch

from lightning_dielectric.data.graphs import DEFAULT_THREEBODY_CUTOFF
from lightning_dielectric.models.embeddings import MAX_DEGREE
from lightning_dielectric.models.paper_file import PaperFormatError

CLASS_PATHS = {
    "optimetal_2b": "lightning_dielectric.models.optimetal2b.OptiMetal2B",
    "optimetal_3b": "lightning_dielectric.models.optimetal3b.OptiMetal3B",
}

FIXED_SETTINGS: dict[str, object] = {
    "activation": "relu",
    "depth": 2,  # hidden layers of every embedding MLP and head
    "node_embedding_dict.type": "group_period",
    "edge_embedding_dict.type": "gaussian",
    "edge_embedding_dict.basis_width": 4.0,  # σ in units of the centre spacing
    "edge_embedding_dict.apply_envelope": True,
    "pooling_dict.type": "vector_attention",
}
FIXED_2B = {"message_passing_dict.hidden_multiplier": 6}
FIXED_3B = {
    "angle_embedding_dict.l_max": MAX_DEGREE,  # 3, also the paper's default when the dict is absent
    "triplet_block_dict.edge_graph_mp_dict.type": "transformer",
    "triplet_block_dict.node_graph_mp_dict.type": "transformer",
    "triplet_block_dict.edge_graph_mp_dict.hidden_multiplier": 6,
    "triplet_block_dict.node_graph_mp_dict.hidden_multiplier": 6,
}
OPTIONAL = {"angle_embedding_dict.l_max"}
TC_HEADS_2B = 2  # OptiMetal2B's TransformerConv head count

KEY_TABLE: dict[str, tuple[tuple[str, str], ...]] = {
    "optimetal_2b": (
        ("node_mlp.", "node_mlp."),
        ("edge_mlp.", "edge_mlp."),
        ("mp_block.layers.{i}.", "blocks.{i}."),  # .conv / .mlp / .norm inside
        ("pooling.mlp.lins.0.", "pool.score."),
        ("spectra_mlp.", "heads.spectra."),
        ("drude_mlp.", "heads.drude."),
    ),
    "optimetal_3b": (
        ("node_mlp.", "node_mlp."),
        ("edge_mlp.", "edge_mlp."),
        ("angle_mlp.", "angle_mlp."),
        ("triplet_block.layers.{i}.node_edge_mlp.lins.0.", "blocks.{i}.edge_lin."),
        ("triplet_block.layers.{i}.edge_norm.", "blocks.{i}.edge_norm."),
        ("triplet_block.layers.{i}.edge_angle_mlp.lins.0.", "blocks.{i}.angle_lin."),
        ("triplet_block.layers.{i}.angle_norm.", "blocks.{i}.angle_norm."),
        ("triplet_block.layers.{i}.edge_graph_mp.layers.0.", "blocks.{i}.line_block."),
        ("triplet_block.layers.{i}.node_graph_mp.layers.0.", "blocks.{i}.atom_block."),
        ("pooling.mlp.lins.0.", "pool.score."),
        ("spectra_mlp.", "heads.spectra."),
        ("drude_mlp.", "heads.drude."),
    ),
}

CONSTANT_BUFFERS: dict[str, dict[str, float]] = {
    "optimetal_2b": {},
    # c_l of Y_l⁰(cos θ) = c_l × (polynomial in cos θ with integer coefficients), as
    # models.embeddings.AngleHarmonics computes them: √((2l+1)/4π) × P_l's leading 1, 1, 1/2, 1/2, 1/8
    "optimetal_3b": {
        "angle_embedding.c0": math.sqrt(1 / (4 * math.pi)),
        "angle_embedding.c1": math.sqrt(3 / (4 * math.pi)),
        "angle_embedding.c2": math.sqrt(5 / (16 * math.pi)),
        "angle_embedding.c3": math.sqrt(7 / (16 * math.pi)),
        "angle_embedding.c4": math.sqrt(9 / (256 * math.pi)),  # l = 4, unused at l_max = 3
    },
}

_MISSING = object()


def _get(architecture: dict, dotted: str):
    value = architecture
    for part in dotted.split("."):
        value = value.get(part, _MISSING) if isinstance(value, dict) else _MISSING
    return value


def _require(architecture: dict, dotted: str, where: str, number: type | None = None):
    """The value at ``dotted``; with ``number`` (int or float), checked to be one and converted."""
    value = _get(architecture, dotted)
    if value is _MISSING:
        raise PaperFormatError(f"{where}: architecture has no '{dotted}'")
    if number is None:
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0 or number(value) != value:
        raise PaperFormatError(f"{where}: {dotted}={value!r} is not a positive {number.__name__}")
    return number(value)


def model_config(architecture: dict, where: str = "architecture",
                 threebody_cutoff: float = DEFAULT_THREEBODY_CUTOFF) -> tuple[str, dict]:
    """``(class_path, init_args)`` of the model the paper's ``architecture`` describes; an OptiMetal3B
    gets ``threebody_cutoff`` (Å), which the paper's files do not record."""
    kind = architecture.get("type")
    if kind not in CLASS_PATHS:
        raise PaperFormatError(f"{where}: architecture type {kind!r} is not implemented here "
                               f"(supported: {', '.join(CLASS_PATHS)})")
    fixed = {**FIXED_SETTINGS, **(FIXED_2B if kind == "optimetal_2b" else FIXED_3B)}
    for dotted, expected in fixed.items():
        value = _get(architecture, dotted)
        if value is _MISSING and dotted in OPTIONAL:
            continue
        if value is _MISSING:
            raise PaperFormatError(f"{where}: architecture has no '{dotted}'")
        if value != expected:
            raise PaperFormatError(f"{where}: {dotted}={value!r} is not supported "
                                   f"(this package's models use {expected!r})")
    init_args = {
        "width": _require(architecture, "hidden_dim", where, int),
        "spectra_width": _require(architecture, "spectra_dim", where, int),
        "cutoff": _require(architecture, "twobody_cutoff", where, float),
        "num_rbf": _require(architecture, "edge_embedding_dict.num_basis", where, int),
    }
    if kind == "optimetal_2b":
        paper_conv = _require(architecture, "message_passing_dict.type", where)
        conv = {"cgconv": "cgc", "transformer": "tc"}.get(paper_conv)
        if conv is None:
            raise PaperFormatError(f"{where}: message_passing_dict.type={paper_conv!r} is not supported "
                                   "(cgconv, transformer)")
        heads = _get(architecture, "message_passing_dict.heads")
        if conv == "tc" and heads != TC_HEADS_2B:
            raise PaperFormatError(f"{where}: message_passing_dict.heads={heads!r} is not supported "
                                   f"(this package's OptiMetal2B uses {TC_HEADS_2B})")
        init_args.update(conv=conv, num_blocks=_require(architecture, "message_passing_dict.num_layers", where, int))
    else:
        edge, node = (_require(architecture, f"triplet_block_dict.{graph}_graph_mp_dict.heads", where, int)
                      for graph in ("edge", "node"))
        if edge != node:
            raise PaperFormatError(f"{where}: edge-graph heads {edge} and node-graph heads {node} differ "
                                   "(this package's OptiMetal3B uses one value)")
        init_args.update(heads=edge, num_blocks=_require(architecture, "triplet_block_dict.num_layers", where, int),
                         threebody_cutoff=float(threebody_cutoff))
    return CLASS_PATHS[kind], init_args


def rename(key: str, table: tuple[tuple[str, str], ...]) -> str | None:
    """``key`` renamed by the first matching prefix of ``table`` (``{i}``: a block index); None if none matches."""
    for source, target in table:
        match = re.compile(re.escape(source).replace(r"\{i\}", r"(\d+)")).match(key)
        if match:
            index = match.group(1) if match.groups() else ""
            return target.replace("{i}", index) + key[match.end():]
    return None


def convert_state_dict(state_dict: dict[str, torch.Tensor], kind: str, model: torch.nn.Module,
                       where: str = "model_state_dict") -> dict[str, torch.Tensor]:
    """The paper's ``state_dict`` under ``model``'s names, cast to its dtypes; :class:`PaperFormatError`
    naming the key for a tensor that is missing, extra, of the wrong shape, or a changed constant."""
    target = model.state_dict()
    constants = CONSTANT_BUFFERS[kind]
    converted: dict[str, torch.Tensor] = {}
    for key, tensor in state_dict.items():
        if key in constants:
            if tensor.numel() != 1 or not math.isclose(float(tensor), constants[key], rel_tol=1e-6):
                raise PaperFormatError(f"{where}: constant {key} is {tensor.tolist()}, expected {constants[key]:.8g}")
            continue
        name = rename(key, KEY_TABLE[kind])
        if name is None or name not in target:
            why = "no entry in the key table" if name is None else f"the model has no {name}"
            raise PaperFormatError(f"{where}: unexpected tensor {key} ({why})")
        if tuple(tensor.shape) != tuple(target[name].shape):
            raise PaperFormatError(f"{where}: tensor {key} has shape {tuple(tensor.shape)}, "
                                   f"expected {tuple(target[name].shape)} for {name}")
        converted[name] = tensor.to(target[name].dtype)
    for key in constants:
        if key not in state_dict:
            raise PaperFormatError(f"{where}: missing constant {key}")
    missing = [name for name in target if name not in converted]
    if missing:
        paper_name = rename(missing[0], tuple((dst, src) for src, dst in KEY_TABLE[kind]))
        raise PaperFormatError(f"{where}: missing tensor {paper_name} "
                               f"(for {missing[0]}; {len(missing)} missing in all)")
    return converted
