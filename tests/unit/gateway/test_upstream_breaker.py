"""The gateway's breaker per model upstream: after a few outage answers it stops forwarding, one call probes.

Over real HTTP, a gateway in front of the Anthropic emulator, which goes down (529) and comes back.
Time is not compressed: the first probe is due 1 s after the breaker opens (runner.breakers.FIRST_PROBE_S).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from github_emulator.llm import AnthropicEmulator, Reply

from runner.breakers import FIRST_PROBE_S, MODEL_UPSTREAMS
from runner.gateway.upstream import Upstream
from tests.unit.gateway.test_server import KEY, MESSAGE, gateway, post


@pytest.fixture()
def claude() -> Iterator[AnthropicEmulator]:
    with AnthropicEmulator(api_key=KEY) as emu:
        yield emu


def test_the_breaker_opens_after_three_outage_answers_and_one_probe_closes_it(claude: AnthropicEmulator) -> None:
    claude.script([Reply.text("back", input_tokens=10, output_tokens=2)] * 2)
    claude.go_down(529)
    with gateway(claude.base_url) as gw:
        port = gw.serve_tcp()
        forwarded = [post(port, "/v1/messages", MESSAGE)[0] for _ in range(3)]
        assert forwarded == [529] * 3 and len(claude.completions) == 3
        breaker = MODEL_UPSTREAMS.get(Upstream.from_url("anthropic", claude.base_url, KEY).breaker_name,
                                      service="the Anthropic API")
        assert not breaker.up

        status, headers, body = post(port, "/v1/messages", MESSAGE)  # refused here, not sent
        assert status == 502 and headers["x-should-retry"] == "false" and b"did not forward" in body
        assert len(claude.completions) == 3
        assert any("did not forward" in failure for failure in gw.stats.upstream_failures)  # the task will wait

        time.sleep(FIRST_PROBE_S + 0.1)
        assert post(port, "/v1/messages", MESSAGE)[0] == 529  # the probe: it went, and failed
        assert len(claude.completions) == 4 and not breaker.up
        assert post(port, "/v1/messages", MESSAGE)[0] == 502  # the next probe is 2 s later

        claude.come_back()
        time.sleep(2 * FIRST_PROBE_S + 0.1)
        assert post(port, "/v1/messages", MESSAGE)[0] == 200  # the probe answered: closed
        assert breaker.up
        assert post(port, "/v1/messages", MESSAGE)[0] == 200
    assert len(claude.completions) == 6


def test_an_answer_about_the_call_is_no_outage(claude: AnthropicEmulator) -> None:
    """A 400 (a bad request) says the server is up: it never opens the breaker."""
    claude.script([Reply.error(400, "bad request")] * 5)
    with gateway(claude.base_url) as gw:
        port = gw.serve_tcp()
        assert [post(port, "/v1/messages", MESSAGE)[0] for _ in range(5)] == [400] * 5
    assert len(claude.completions) == 5
