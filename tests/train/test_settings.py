"""Every setting declared once: the dataclass fields drive validation, the command
line's flags and fit's keywords."""

import argparse
import dataclasses
import inspect

import pytest

import partrain
from partrain.cli.parser import build_parser, flag_spelling
from partrain.errors import UsageError
from partrain.train.settings import (OptimizerSettings, TrainSettings, default_chunk_size,
                                     defaults, finite_number, int_or, positive_int)

ALL_FIELDS = [f for cls in (TrainSettings, OptimizerSettings) for f in dataclasses.fields(cls)]


def train_flags():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {a.dest: a for a in sub.choices["train"]._actions}


@pytest.mark.parametrize("field", ALL_FIELDS, ids=lambda f: f.name)
def test_every_setting_is_a_flag_with_its_help_and_choices(field):
    action = train_flags()[field.name]
    assert action.help == field.metadata["help"]
    if field.metadata["choices"]:
        assert list(action.choices) == list(field.metadata["choices"])


def test_fit_takes_every_setting_as_a_keyword_with_its_default():
    params = inspect.signature(partrain.fit).parameters
    for f in ALL_FIELDS:
        assert params[f.name].default == f.default, f.name


def test_fit_refuses_an_unknown_setting_by_name():
    model = partrain.build_model("digits123")
    with pytest.raises(UsageError, match="unknown settings batchsize"):
        partrain.fit(model, [[[0.0]]], [0], batchsize=3)


def test_resolved_fills_steps_chunks_and_evaluations_from_the_data_size():
    s = TrainSettings(epochs=2, batch_size="full").resolved(100)
    assert (s.batch_size, s.steps, s.chunk_size, s.eval_every) == (100, 2, 8, 1)
    s = TrainSettings(batch_size=32).resolved(100)
    assert (s.steps, s.eval_every) == (4, 4)
    assert default_chunk_size(256 * 20) == 20


@pytest.mark.parametrize("bad, message", [
    (dict(steps=3, epochs=2), "`steps` or `epochs`"),
    (dict(steps=0), "`steps` must be a positive integer"),
    (dict(seed=-1), "`seed` must be a non-negative integer"),
    (dict(lr_decay=0.0), "`lr_decay` must lie in"),
    (dict(batch_order="sorted"), "`batch_order` must be one of shuffle"),
    (dict(reduction="fast"), "`reduction` must be one of ordered, allreduce"),
    (dict(workers=0), "`workers` must be a positive integer"),
])
def test_bad_values_name_the_setting_in_python_spelling(bad, message):
    with pytest.raises(UsageError, match=message):
        TrainSettings(**bad).resolved(100)


def test_the_command_line_spells_backticked_names_as_flags():
    assert flag_spelling("give `steps` or `epochs`") == "give --steps or --epochs"
    assert flag_spelling("drop `validation_split`") == "drop --val-split"
    assert flag_spelling("pass `overwrite=True`") == "pass --overwrite"
    assert flag_spelling("use `workers='auto'`") == "use --workers auto"
    assert flag_spelling("`progress=False`") == "--no-progress"
    assert flag_spelling("with `partrain.fit(...)`") == "with `partrain.fit(...)`"


def test_readers_say_what_they_expected():
    with pytest.raises(ValueError, match="expected a positive integer"):
        positive_int("0")
    with pytest.raises(ValueError, match="expected a number"):
        finite_number("fast")
    assert int_or("full")("full") == "full" and int_or("auto")("3") == 3


def test_result_settings_are_the_fields_that_change_bits():
    result = set(TrainSettings().result_settings())
    assert {"batch_size", "seed", "chunk_size", "batch_order", "reduction"} <= result
    assert not result & {"workers", "backend", "out", "overwrite", "progress",
                         "checkpoint_every", "augment"}   # augment: unset, see LATER_FIELDS
    assert defaults(OptimizerSettings) == dict(optimizer="momentum", lr=0.01, momentum=0.9,
                                               weight_decay=0.0)
