"""Every row of the bad-input table raises its error, and the message names the argument."""

import pytest
from bad_inputs import ROWS


@pytest.mark.parametrize(
    "function,argument,problem,call,error,match",
    ROWS,
    ids=[f"{r[0]}-{r[1]}-{r[2]}".replace(" ", "_") for r in ROWS],
)
def test_bad_input_raises_a_clear_error(function, argument, problem, call, error, match):
    with pytest.raises(error) as info:
        call()
    assert match in str(info.value), str(info.value)
    assert len(str(info.value)) > 30, "the message should say what to do"
