import pytest

from shared.foundation.loopback import is_loopback


@pytest.mark.parametrize("url", ["http://127.0.0.1:7071/api", "http://localhost/x", "http://[::1]:8080/"])
def test_urls_to_this_machine_are_loopback(url):
    assert is_loopback(url)


@pytest.mark.parametrize("url", ["https://app.azurewebsites.net", "http://10.0.0.4/", "http://localhost.evil.example/",
                                 "http://127.0.0.1.nip.io/", "not a url"])
def test_urls_elsewhere_or_lookalikes_are_not_loopback(url):
    assert not is_loopback(url)
