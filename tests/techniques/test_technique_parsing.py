"""Technique cells: parsing, what ``Cell.apply`` sets on the recipe, and every refusal."""

import pytest

from rotelab.engine import Recipe
from rotelab.errors import InvalidInputError
from rotelab.techniques import BASELINE, TECHNIQUES, Cell, check_cell_for_data, defaults_table, parse_cell, parse_cells
from rotelab.techniques.augment_technique import DEFAULTS, TRANSFORMS


def _apply(text, kind="image"):
    (cell,) = parse_cells(text)
    return cell.apply(Recipe(), kind=kind)


@pytest.mark.parametrize("text,fields", [
    ("l1", {"l1": 1e-3}),
    ("l1=0.001", {"l1": 1e-3}),
    ("l2", {"l2": 1.0}),
    ("l2=0.3", {"l2": 0.3}),
    ("label-smoothing", {"label_smoothing": 0.1}),
    ("label-smoothing=0.25", {"label_smoothing": 0.25}),
    ("mixup", {"mixup": 1.0}),
    ("mixup=1", {"mixup": 1.0}),
    ("cutmix", {"cutmix": 1.0}),
    ("cutmix=0.5", {"cutmix": 0.5}),
    ("early-stop", {"early_stop": 5}),
    ("early-stop=3", {"early_stop": 3}),
    ("augment=flip+rotate", {"augment": ("flip", "rotate")}),
    ("augment=flip+rotate+dropout=0.3+l2=0.1", {"augment": ("flip", "rotate"), "l2": 0.1}),
    (" l2 + mixup=0.4 ", {"l2": 1.0, "mixup": 0.4}),
])
def test_apply_sets_the_recipe_fields(text, fields):
    recipe = _apply(text)
    for name, value in fields.items():
        assert getattr(recipe, name) == value
        assert type(getattr(recipe, name)) is type(value)
    untouched = {f: v for f, v in Recipe().to_dict().items() if f not in fields and f != "model"}
    assert {f: recipe.to_dict()[f] for f in untouched} == untouched


def test_dropout_sets_the_model_and_early_stop_uses_validation():
    assert _apply("dropout").model.dropout == 0.5
    assert _apply("dropout=0.3").model.dropout == 0.3
    assert parse_cell("dropout+early-stop=2").uses_validation
    assert not parse_cell("dropout").uses_validation


@pytest.mark.parametrize("kind", list(DEFAULTS))
def test_bare_augment_takes_the_defaults_of_the_data_kind(kind):
    assert _apply("augment", kind=kind).augment == DEFAULTS[kind]
    assert set(DEFAULTS[kind]) <= set(TRANSFORMS[kind])
    assert "flip" not in DEFAULTS["image"]  # a mirrored digit can be another class


def test_bare_transform_names_continue_the_augment_list():
    assert parse_cell("augment+noise").parts == (("augment", ("noise",)),)
    assert parse_cell("augment=flip+rotate+l2").parts == (("augment", ("flip", "rotate")), ("l2", 1.0))


def test_baseline_labels_and_list_forms():
    cells = parse_cells("baseline, augment=flip+rotate ,dropout=0.3+l2")
    assert [c.label for c in cells] == [BASELINE, "augment=flip+rotate", "dropout=0.3+l2=1.0"]
    assert cells[0] == Cell(()) and cells[0].apply(Recipe(), kind="image") == Recipe()
    assert parse_cells(["l1", "l2"]) == parse_cells("l1,l2")
    assert parse_cell("augment").label == "augment"
    assert {row[0] for row in defaults_table()} == set(TECHNIQUES)


@pytest.mark.parametrize("text,match", [
    ("foo", "unknown technique 'foo': expected baseline or one of augment, mixup"),
    ("rotate", "unknown technique 'rotate'"),  # a transform name needs augment before it
    ("l2+rotate", "unknown technique 'rotate'"),
    ("dropout=1", r"technique dropout strength must be in \[0.0, 1.0\), got 1.0"),
    ("dropout=-0.1", r"technique dropout strength must be in \[0.0, 1.0\)"),
    ("label-smoothing=1", r"technique label-smoothing strength must be in \[0.0, 1.0\)"),
    ("l1=-1e-4", r"technique l1 strength must be in \[0.0, inf\], got -0.0001"),
    ("l2=-0.5", r"technique l2 strength must be in \[0.0, inf\], got -0.5"),
    ("mixup=0", r"technique mixup strength must be in \[1e-06, inf\], got 0.0"),
    ("cutmix=-1", r"technique cutmix strength must be in \[1e-06, inf\]"),
    ("l1=nan", "technique l1: strength must be finite"),
    ("l2=abc", "technique l2: strength must be a number, got 'abc'"),
    ("l2=", "technique l2: strength must be a number, got ''"),
    ("early-stop=2.5", "technique early-stop: strength must be a whole number, got '2.5'"),
    ("early-stop=0", r"technique early-stop strength must be in \[1, inf\], got 0"),
    ("l2+l2=0.1", "technique 'l2' appears twice in 'l2\\+l2=0.1'"),
    ("l2+baseline", "'baseline' cannot be combined with other techniques"),
    ("baseline+l2", "'baseline' cannot be combined with other techniques"),
    ("augment=warp", "unknown augmentation 'warp': expected one of flip, rotate"),
    ("augment=", "augment= needs at least one transform"),
    ("l2,l2=1", "technique cell 'l2=1.0' is listed twice"),
    ("baseline,baseline", "technique cell 'baseline' is listed twice"),
    ("", "techniques is empty"),
    (" , ", "techniques is empty"),
])
def test_every_refusal_names_the_problem(text, match):
    with pytest.raises(InvalidInputError, match=match):
        parse_cells(text)


@pytest.mark.parametrize("text", ["early-stop=inf", "early-stop=nan"])
def test_non_finite_whole_number_is_refused(text):
    with pytest.raises(InvalidInputError, match="technique early-stop"):
        parse_cells(text)


@pytest.mark.parametrize("text,kind,match", [
    ("augment=rotate", "sequence", "augmentation 'rotate' does not apply to sequence data: use shift, scale, noise"),
    ("augment=flip+noise", "vector", "augmentation 'flip' does not apply to vector data: use noise"),
    ("augment=shift", "image", "augmentation 'shift' does not apply to image data: use flip, rotate"),
    ("cutmix", "vector", "cutmix needs images or sequences; use mixup for vector data"),
])
def test_check_cell_for_data_refuses_what_does_not_apply(text, kind, match):
    with pytest.raises(InvalidInputError, match=match):
        check_cell_for_data(parse_cell(text), kind=kind)


@pytest.mark.parametrize("text,kind", [
    ("augment", "image"), ("augment", "sequence"), ("augment", "vector"),
    ("augment=shift+scale+cutmix", "sequence"), ("augment=flip+crop+cutmix+mixup", "image"),
    ("mixup+l1", "vector"),
])
def test_check_cell_for_data_accepts_what_applies(text, kind):
    check_cell_for_data(parse_cell(text), kind=kind)
