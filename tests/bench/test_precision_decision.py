"""The bf16 default rule of bench part 6: every row counts, and a gain is not reported as a cost."""

from bench.precision import decision


def _row(data: str, model: str, diff: float) -> dict:
    return {"data": data, "model": model, "diff_points": diff}


def test_gains_everywhere_lose_nothing():
    assert decision([_row("digits", "mlp", 0.35), _row("mnist1d", "mlp", 0.1)]).startswith("bf16 loses nothing")


def test_a_small_loss_keeps_bf16_possible():
    text = decision([_row("digits", "mlp", 0.2), _row("mnist1d", "mlp", -0.25)])
    assert "at most 0.25 points (mlp on mnist1d)" in text and "may be the GPU default" in text


def test_the_cnn_row_counts_too():
    text = decision([_row("digits", "mlp", 0.1), _row("mnist1d", "mlp", 0.0), _row("digits", "cnn", -0.56)])
    assert text == "bf16 loses 0.56 points on cnn on digits: fp32 stays the default"
