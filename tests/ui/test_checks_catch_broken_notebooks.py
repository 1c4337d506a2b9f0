"""The browser checks fail when they should: each deliberately broken notebook in
tests/ui/fixtures/ is run through the same `check_in_lab` the chapter tests use, and must be
reported, with a message that says what went wrong. A working explorer must pass."""

from __future__ import annotations

import pytest

from .lab import check_in_lab

pytestmark = pytest.mark.ui


def test_a_working_explorer_passes_every_check(page, lab):
    verdict = check_in_lab(page, lab, "ui-fixtures/widget_ok.ipynb", expect_widgets=True)
    assert verdict.failures == []
    assert verdict.run.widget_outputs == 1
    assert (verdict.move.value_before, verdict.move.value_after) == ("2", "3")
    assert "degree 2" in verdict.move.before and "degree 3" in verdict.move.after
    assert verdict.kernel.peak_bytes >= verdict.kernel.first_bytes > 0 and verdict.server.peak_bytes > 0
    # Text on stderr (a print, a warning) is shown like an error but is not one: not flagged.
    outputs = [o for cell in verdict.run.cells for o in cell["outputs"]]
    assert any(o["output_type"] == "stream" and o["name"] == "stderr" for o in outputs)
    assert page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]').count() >= 1


def test_a_chapter_that_raises_fails(page, lab):
    verdict = check_in_lab(page, lab, "ui-fixtures/raises_midway.ipynb", expect_widgets=False)
    [error] = verdict.run.errors
    assert error.startswith("cell 2: RuntimeError: deliberate failure in a UI-test fixture")
    assert "(at: 1 raise RuntimeError(" in error  # the line the traceback points at
    assert verdict.run.not_run == [3]  # Run All stops at the error
    assert verdict.failures == [f"error output in {error}"]


def test_widgets_that_do_not_render_fail(page, lab):
    verdict = check_in_lab(page, lab, "ui-fixtures/widget_broken.ipynb", expect_widgets=True)
    assert verdict.run.errors == [] and verdict.run.not_run == []  # the kernel side is fine: nbval would pass
    assert verdict.run.widget_outputs == 2
    missing_module, missing_model = verdict.run.widget_problems
    assert missing_module.startswith("widget view 0: error widget") and "compresskit-no-such-widget-module" in missing_module
    assert missing_model == "widget view 1: Error displaying widget: model not found"
    assert verdict.failures == [f"widget not rendered: {p}" for p in verdict.run.widget_problems]


def test_an_explorer_that_does_not_respond_fails(page, lab):
    verdict = check_in_lab(page, lab, "ui-fixtures/widget_unresponsive.ipynb", expect_widgets=True)
    assert verdict.run.problems() == []
    assert verdict.move is not None and verdict.move.value_before != verdict.move.value_after
    assert not verdict.move.changed
    assert len(verdict.failures) == 1 and "did not change" in verdict.failures[0]


def test_a_chapter_whose_kernel_dies_fails(page, lab):
    verdict = check_in_lab(page, lab, "ui-fixtures/kernel_dies.ipynb", expect_widgets=False)
    assert verdict.run.errors == []  # no error output: only the unrun cells and the dialog tell
    assert {2, 3} <= set(verdict.run.not_run)  # the crashing cell and the one after it
    assert any(failure.startswith("code cells never ran (kernel died?)") for failure in verdict.failures)
    assert any("appears to have died" in failure for failure in verdict.failures)
