"""The token list (COMPRESSKIT_HUB_TOKENS_FILE): each learner logs in only under their own name,
which the shared workshop password cannot promise."""

from __future__ import annotations

import pytest

from classroom.hub import Hub, HubError, Learner, LoginRefused

pytestmark = pytest.mark.usefixtures("hub_prerequisites")

TOKENS = {"ada": "ada-token-7f3k2q", "bob": "bob-token-9x8w1m"}


def test_a_token_opens_only_its_own_name(tmp_path):
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("# name token\n" + "".join(f"{name} {token}\n" for name, token in TOKENS.items()))
    hub = Hub(tmp_path / "workshop", tokens_file=tokens)
    try:
        hub.start()
        Learner(hub, "ada", password=TOKENS["ada"]).login()
        Learner(hub, "bob", password=TOKENS["bob"]).login()
        with pytest.raises(LoginRefused):
            Learner(hub, "bob", password=TOKENS["ada"]).login()  # ada's token, bob's name
        with pytest.raises(LoginRefused):
            Learner(hub, "carol", password=TOKENS["ada"]).login()  # a name not on the list
        assert {user["name"] for user in hub.api("GET", "users")} == {"ada", "bob"}
    finally:
        hub.stop()
    assert hub.processes() == []


@pytest.mark.parametrize("line", ["bob short", "Bob Smith bob-token-9x8w1m", "bob"])
def test_a_bad_token_line_stops_the_hub_and_is_named(tmp_path, line):
    tokens = tmp_path / "tokens.txt"
    tokens.write_text(f"ada ada-token-7f3k2q\n{line}\n")
    hub = Hub(tmp_path / "workshop", tokens_file=tokens)
    try:
        with pytest.raises(HubError, match=f"line 2: expected 'learner-name token'.*got '{line}'"):
            hub.start(timeout=60)
    finally:
        hub.stop()
