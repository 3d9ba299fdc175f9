"""Parsing `levels:` entries: names, mappings, recipes and the errors users see."""
from __future__ import annotations

import pytest

from harness.compress.levels import Level, Prune, parse_level, valid_level_names
from harness.errors import ConfigError
from harness.schema import Node


def level(value, tmp_file: str = "matrix.yaml") -> Level:
    return parse_level(Node(value, tmp_file, "levels[0]"))


@pytest.mark.parametrize("name", ["F16", "Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0", "Q3_K_M", "Q2_K"])
def test_issue_quant_types_are_gguf_levels(name):
    lv = level(name)
    assert (lv.kind, lv.quant, lv.name) == ("gguf", name, name)
    assert lv.recipe == {"format": "gguf", "quant": name}


def test_quant_names_are_case_insensitive_and_normalised():
    assert level("q4_k_m").name == "Q4_K_M"


def test_the_list_is_llama_cpps_whole_list():
    names = valid_level_names()
    # beyond the issue's eight: the rest of LLAMA_FTYPE_*, minus imatrix-only types and flags
    for extra in ("Q5_K_S", "Q3_K_L", "IQ4_XS", "BF16", "F32"):
        assert extra in names
    assert "IQ2_XXS" not in names and "GUESSED" not in names


@pytest.mark.parametrize("name", ["fp32", "fp16", "int8", "int4", "FP16"])
def test_onnx_levels(name):
    lv = level(name)
    assert lv.kind == "onnx" and lv.onnx == name.lower()
    assert lv.recipe == {"format": "onnx", "precision": name.lower()}


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ConfigError) as e:
        level("Q4_K_X")
    msg = str(e.value)
    assert "matrix.yaml: levels[0]" in msg and "Q4_K_X" in msg
    for valid in ("F16", "Q8_0", "Q4_K_M", "Q2_K", "fp16", "int4"):
        assert valid in msg


def test_imatrix_only_type_is_refused_with_reason():
    with pytest.raises(ConfigError, match="importance matrix"):
        level("IQ2_XXS")


def test_prune_mappings():
    mag = level({"name": "q4-prune25", "quant": "Q4_K_M",
                 "prune": {"method": "magnitude", "sparsity": 0.25}})
    assert mag.prune == Prune(method="magnitude", sparsity=0.25)
    assert mag.recipe == {"format": "gguf", "quant": "Q4_K_M", "prune": {
        "method": "magnitude", "scope": "per_tensor", "sparsity": 0.25}}
    drop = level({"name": "q4-drop2", "quant": "q4_k_m",
                  "prune": {"method": "drop_layers", "n_layers": 2}})
    assert drop.prune == Prune(method="drop_layers", n_layers=2) and drop.quant == "Q4_K_M"
    assert drop.recipe["prune"]["rule"] == "last_before_final"
    # the display name is not part of the recipe: same recipe, same cached file
    other = level({"name": "same", "quant": "Q4_K_M", "prune": {"method": "drop_layers", "n_layers": 2}})
    assert other.recipe == drop.recipe


@pytest.mark.parametrize("entry,fragment", [
    ({"name": "x", "quant": "Q4_K_M", "prune": {"method": "magnitude", "sparsity": 1.0}},
     "strictly between 0 and 1"),
    ({"name": "x", "quant": "Q4_K_M", "prune": {"method": "magnitude"}}, "needs 'sparsity'"),
    ({"name": "x", "quant": "Q4_K_M", "prune": {"method": "drop_layers", "n_layers": 0}}, ">= 1"),
    ({"name": "x", "quant": "Q4_K_M", "prune": {"method": "drop_layers", "sparsity": 0.2}},
     "belongs to method magnitude"),
    ({"name": "x", "quant": "Q4_K_M", "prune": {"method": "wanda", "sparsity": 0.2}},
     "magnitude, drop_layers"),
    ({"name": "x", "quant": "Q9_K"}, "unknown compression level 'Q9_K'"),
    ({"name": "Q4_K_M", "quant": "Q4_K_M", "prune": {"method": "magnitude", "sparsity": 0.5}},
     "built-in level name"),
    ({"name": "has space", "quant": "Q4_K_M"}, "not a usable level name"),
    ({"name": "x", "quant": "Q4_K_M", "bits": 4}, "unknown key"),
    ({"quant": "Q4_K_M"}, "missing required key 'name'"),
    (42, "a level is a quant type name"),
])
def test_bad_mappings_say_what_is_wrong(entry, fragment):
    with pytest.raises(ConfigError) as e:
        level(entry)
    assert fragment in str(e.value)


def test_path_level(tmp_path):
    f = tmp_path / "mine.gguf"
    f.write_bytes(b"GGUF")
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text("")
    lv = level({"name": "mine", "path": "mine.gguf"}, str(matrix))  # relative to the matrix file
    assert lv.kind == "path" and lv.path == f
    with pytest.raises(ConfigError, match="GGUF file not found"):
        level({"name": "mine", "path": str(tmp_path / "nope.gguf")})
