"""The browser checks fail when they should: each deliberately broken notebook in
tests/ui/fixtures/ is run through the same `check_in_lab` the chapter tests use, and must be
reported, with a message that says what went wrong. A working explorer must pass."""

from __future__ import annotations

import pytest

from .lab import WIDGET_MIME, check_in_lab, code_cells, notebook_open, run_all

pytestmark = pytest.mark.ui


def test_a_working_explorer_passes_every_check(page, lab):
    verdict = check_in_lab(page, lab, "ui-fixtures/widget_ok.ipynb", expect_widgets=True)
    assert verdict.failures == []
    assert verdict.run.widget_outputs == 1
    assert verdict.move.control == "slider"
    assert (verdict.move.value_before, verdict.move.value_after) == ("2", "3")
    assert "degree 2" in verdict.move.before and "degree 3" in verdict.move.after
    assert verdict.kernel_peak_bytes >= verdict.kernel_start_bytes > 0


def test_stderr_and_warnings_are_not_errors(page, lab):
    path = "ui-fixtures/widget_ok.ipynb"
    with notebook_open(page, lab, path):
        run = run_all(page, path)
        outputs = [o for cell in code_cells(page, path) for o in cell["outputs"]]
    assert any(o["output_type"] == "stream" and o["name"] == "stderr" for o in outputs)
    assert page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]').count() >= 1
    assert run.errors == [] and run.problems() == []


def test_a_chapter_that_raises_fails(page, lab):
    verdict = check_in_lab(page, lab, "ui-fixtures/raises_midway.ipynb", expect_widgets=False)
    assert verdict.run.errors == ["cell 2: RuntimeError: deliberate failure in a UI-test fixture"]
    assert verdict.run.not_run == [3]  # Run All stops at the error
    assert verdict.failures == ["error output in cell 2: RuntimeError: deliberate failure in a UI-test fixture"]


def test_a_widget_that_does_not_render_fails(page, lab):
    verdict = check_in_lab(page, lab, "ui-fixtures/widget_broken.ipynb", expect_widgets=True)
    assert verdict.run.errors == [] and verdict.run.not_run == []  # the kernel side is fine: nbval would pass
    assert verdict.run.widget_outputs == 1
    assert any("Error displaying widget" in problem for problem in verdict.run.widget_problems)
    assert verdict.failures and all(f.startswith("widget not rendered") for f in verdict.failures)


def test_an_explorer_that_does_not_respond_fails(page, lab):
    verdict = check_in_lab(page, lab, "ui-fixtures/widget_unresponsive.ipynb", expect_widgets=True)
    assert verdict.run.problems() == []
    assert verdict.move is not None and verdict.move.value_before != verdict.move.value_after
    assert not verdict.move.changed
    assert len(verdict.failures) == 1 and "did not change" in verdict.failures[0]
