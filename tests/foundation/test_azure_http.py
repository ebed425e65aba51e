import pytest

from shared.foundation.azure_http import is_loopback, json_object


@pytest.mark.parametrize("url", ["http://127.0.0.1:7071/api", "http://localhost/x", "http://[::1]:8080/"])
def test_urls_to_this_machine_are_loopback(url):
    assert is_loopback(url)


@pytest.mark.parametrize("url", ["https://app.azurewebsites.net", "http://10.0.0.4/", "http://localhost.evil.example/",
                                 "http://127.0.0.1.nip.io/", "not a url"])
def test_urls_elsewhere_or_lookalikes_are_not_loopback(url):
    assert not is_loopback(url)


@pytest.mark.parametrize("body, expected", [
    ('{"code": "no_role", "detail": "x"}', {"code": "no_role", "detail": "x"}),
    ("", {}), ("<html>502 Bad Gateway</html>", {}), ('["not", "an", "object"]', {}), ("null", {}),
])
def test_a_reply_body_reads_as_its_json_object_or_empty_when_it_is_not_one(body, expected):
    assert json_object(body) == expected
