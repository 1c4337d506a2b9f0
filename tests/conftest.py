"""Shared test set-up: no network beyond loopback, and a quiet, deterministic torch."""

from __future__ import annotations

import ipaddress
import socket

import pytest
import torch


def _is_loopback(address) -> bool:
    if isinstance(address, tuple):
        host = address[0]
    else:  # a Unix socket path
        return True
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _guarded_connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address):
        raise ConnectionRefusedError(f"tests may not use the network: connection to {address!r} refused")
    return _real_connect(self, address)


def _guarded_connect_ex(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address):
        raise ConnectionRefusedError(f"tests may not use the network: connection to {address!r} refused")
    return _real_connect_ex(self, address)


@pytest.fixture(autouse=True, scope="session")
def no_network():
    """Refuse every connection beyond loopback in the test process (tests/offline.sh also
    runs the whole suite in a network namespace that has only a loopback device)."""
    socket.socket.connect = _guarded_connect
    socket.socket.connect_ex = _guarded_connect_ex
    yield
    socket.socket.connect = _real_connect
    socket.socket.connect_ex = _real_connect_ex


@pytest.fixture(autouse=True)
def _seed():
    """Tests that draw random numbers without a generator still see the same ones each run."""
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def one_thread():
    """Small models train and run fastest on one thread; the caller's setting is restored.

    Use it per test (an argument) or per module (``pytestmark = pytest.mark.usefixtures("one_thread")``).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def sync_playwright_session():
    """One Playwright (sync API) for the whole session, shared by every test that drives Chromium
    (tests/ui and tests/test_book.py). Playwright's sync API refuses a second instance while one is
    open in the same thread ("using Playwright Sync API inside the asyncio loop"), so a
    session-scoped browser in one folder and a module-scoped one elsewhere cannot each start their
    own. Request it only after checking that the package and a browser are there."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        yield playwright
