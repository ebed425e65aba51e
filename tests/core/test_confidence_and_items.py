from __future__ import annotations

import json
import math
import random

import pytest

from shared.core.confidence import (
    field_agreement, field_confidences, normalise_label_scores, sequential_label_agreement, top_level_value_spans,
)
from shared.errors import InputError, TransientTierError
from shared.pipeline.parsing import parse_input, parse_request
from shared.core.retry import RetryPolicy, call_with_retries


def test_label_scores_normalise_to_a_distribution():
    probs = normalise_label_scores({"a": math.log(0.2), "b": math.log(0.05), "c": -1000.0})
    assert sum(probs.values()) == pytest.approx(1.0)
    assert probs["a"] == pytest.approx(0.8) and probs["b"] == pytest.approx(0.2) and probs["c"] < 1e-100


def test_value_spans_of_a_json_object():
    text = ' {"a": "x y", "b" : 12, "c": {"d": [1, 2]}}'
    spans = top_level_value_spans(text)
    assert {k: text[s:e] for k, (s, e) in spans.items()} == {"a": '"x y"', "b": "12", "c": '{"d": [1, 2]}'}


def test_field_confidence_is_the_joint_probability_of_value_tokens():
    pieces = [('{"', -0.1), ("total", -0.2), ('":"', -0.3), ("9", -0.4), (".00", -0.5), ('","', -0.01),
              ("d", -0.02), ('":"', -0.03), ("é", -0.6), ('"}', -0.7)]
    text = "".join(p for p, _ in pieces)
    conf = field_confidences(text, [(p.encode(), lp) for p, lp in pieces])
    # a token counts when it overlaps the value's span (quotes included)
    assert conf["total"] == pytest.approx(math.exp(-0.3 - 0.4 - 0.5 - 0.01))
    assert conf["d"] == pytest.approx(math.exp(-0.03 - 0.6 - 0.7))


def test_value_spans_are_read_inside_a_code_fence_even_when_its_line_holds_a_brace():
    text = '```{json}\n{"label": "billing", "n": 2}\n```'
    spans = top_level_value_spans(text)
    assert {k: text[s:e] for k, (s, e) in spans.items()} == {"label": '"billing"', "n": "2"}
    conf = field_confidences(text, [(text[:10].encode(), -5.0), (text[10:].encode(), -0.1)])
    assert conf["label"] == pytest.approx(math.exp(-0.1))  # the fence's tokens are no value's


@pytest.mark.parametrize("reply, problem", [
    ('{"label": "billing", "n": ' + "9" * 5000 + "}", "not JSON"),
    ('{"label": "billing", "n": ' + "[" * 5000 + "]" * 5000 + "}", "nested too deeply"),
    ('{"company": "A", "date": "1/2/2018", "address": "B", "total": NaN}', "NaN is not JSON"),
    ('{"company": "A", "date": "1/2/2018", "address": "B", "total": 1e999}', "1e999 is beyond"),
], ids=["integer-too-long", "nested-too-deeply", "nan", "beyond-a-float"])
def test_a_reply_python_cannot_read_as_json_is_invalid_output_with_its_tokens_kept(catalog, reply, problem):
    from shared.core.validation import parse_and_validate
    from shared.errors import InvalidOutputError

    task = catalog.get("support_ticket" if '"label"' in reply else "receipt")
    with pytest.raises(InvalidOutputError, match=problem) as err:
        parse_and_validate(task, reply, 40, 999)
    assert (err.value.tokens_in, err.value.tokens_out) == (40, 999)


@pytest.mark.parametrize("value", [1e-3, float("nan"), float("inf")])
def test_a_token_logprob_that_is_not_a_log_probability_is_refused_and_a_rounding_hair_above_0_reads_as_0(value):
    text = '{"a": 1}'
    with pytest.raises(ValueError, match="not a log-probability"):
        field_confidences(text, [(text.encode(), value)])
    assert field_confidences(text, [(text.encode(), 1e-9)]) == {"a": 1.0}
    assert field_confidences(text, [(text.encode(), float("-inf"))]) == {"a": 0.0}  # probability 0


def test_agreement():
    stream = iter(["a", "b", "a", None, "a"])
    assert sequential_label_agreement(lambda n: [next(stream) for _ in range(n)], 5, None) == ("a", 0.6, 5)
    answer, conf = field_agreement(
        [{"x": "Foo  Bar", "y": 1}, {"x": "foo bar", "y": 2}, None, {"x": "Baz", "y": 2}], ["x", "y"]
    )
    assert answer == {"x": "Foo  Bar", "y": 2} and conf == {"x": 0.5, "y": 0.5}


def test_retry_honours_retry_after_and_gives_up():
    calls, sleeps = [], []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise TransientTierError("429", retry_after=2.5)
        return "ok"

    assert call_with_retries(flaky, RetryPolicy(max_attempts=3), sleep=sleeps.append, rng=random.Random(0)) == "ok"
    assert sleeps and all(s >= 2.5 for s in sleeps)

    def always():
        raise TransientTierError("503")

    sleeps.clear()
    with pytest.raises(TransientTierError):
        call_with_retries(always, RetryPolicy(max_attempts=4, base_delay_s=1, max_delay_s=2), sleep=sleeps.append)
    assert len(sleeps) == 3 and all(0 <= s <= 2 for s in sleeps)


def test_retry_after_too_long_moves_on_at_once():
    sleeps = []

    def throttled():
        raise TransientTierError("429", retry_after=600)

    with pytest.raises(TransientTierError):
        call_with_retries(throttled, RetryPolicy(max_attempts=5), sleep=sleeps.append)
    assert sleeps == []


def test_parse_inputs():
    assert [i.text for i in parse_input("a.txt", "hello\nworld".encode()).items] == ["hello\nworld"]
    one = parse_input("b.json", json.dumps({"id": "x", "text": "t"}).encode()).items
    assert [(i.id, i.text) for i in one] == [("x", "t")]
    many = parse_input("c.json", json.dumps({"items": [{"text": "1"}, {"id": "z", "text": "2"}]}).encode()).items
    assert [i.id for i in many] == ["c-00000", "z"]
    lines = parse_input("d.jsonl", b'{"id":"1","text":"a","label":"x"}\nplain text\n\n{"id": 3}\n{broken\n')
    assert [(i.id, i.text) for i in lines.items] == [("1", "a"), ("d-00002", "plain text")]
    assert [(e.line, e.reason) for e in lines.errors] == [(4, "invalid_item"), (5, "invalid_json")]


def test_a_json_array_is_a_list_of_items_in_a_file_and_a_batch_in_an_http_body():
    parsed = parse_input("arr.json", json.dumps([{"id": "a", "text": "x"}, {"text": "y"}, 5]).encode())
    assert [(i.id, i.text) for i in parsed.items] == [("a", "x"), ("arr-00001", "y")]
    assert [(e.line, e.reason) for e in parsed.errors] == [(3, "invalid_item")]
    items, batch = parse_request(b'[{"id": "a", "text": "x"}, {"id": "b", "text": "y"}]')
    assert [i.id for i in items] == ["a", "b"] and batch
    with pytest.raises(InputError) as err:
        parse_request(b"[]")
    assert err.value.reason == "no_items"


def test_integer_ids_are_read_as_their_decimal_text_and_repeat_the_same_string_id():
    parsed = parse_input("n.jsonl", b'{"id": 7, "text": "a"}\n{"id": 2.5, "text": "b"}\n{"id": "7", "text": "c"}\n'
                         b'{"id": true, "text": "d"}\n{"id": 1e2, "text": "e"}\n{"id": "t", "text": 5}\n')
    assert [i.id for i in parsed.items] == ["7"]
    assert [(e.line, e.reason) for e in parsed.errors] == [(2, "invalid_item"), (3, "duplicate_id"),
                                                           (4, "invalid_item"), (5, "invalid_item"), (6, "invalid_item")]
    items, _ = parse_request(b'{"id": 12, "text": "x"}')
    assert items[0].id == "12"


@pytest.mark.parametrize("body", [b'{"id": NaN, "text": "x"}', b'{"id": "a", "text": "x", "n": Infinity}',
                                  b'[{"id": -Infinity, "text": "x"}]'])
def test_nan_and_infinity_are_not_json(body):
    with pytest.raises(InputError) as err:
        parse_request(body)
    assert err.value.reason == "invalid_json" and "is not JSON" in str(err.value)


@pytest.mark.parametrize("name,data,reason", [
    ("a.txt", b"\xfa\xfb\xfc", "invalid_utf8"),
    ("a.txt", b"  \n", "empty"),
    ("a.pdf", b"%PDF", "unsupported_format"),
    ("a.json", b"{nope", "invalid_json"),
    ("a.json", b'{"id": "x"}', "invalid_item"),
])
def test_unusable_inputs_have_reasons(name, data, reason):
    with pytest.raises(InputError) as err:
        parse_input(name, data)
    assert err.value.reason == reason


def test_an_unpaired_surrogate_or_an_integer_too_long_to_convert_is_an_error_of_its_line_not_of_the_file():
    huge = b"9" * 5000  # past the 4,300 digits Python converts to an int
    parsed = parse_input("h.jsonl", b'{"id":"a","text":"\\ud800 refund"}\n{"id":' + huge + b',"text":"x"}\n'
                         b'{"id":"\\udfff","text":"x"}\n{"id":"ok","text":"fine"}\n')
    assert [i.id for i in parsed.items] == ["ok"]
    assert [(e.line, e.reason) for e in parsed.errors] == [(1, "invalid_item"), (2, "invalid_json"), (3, "invalid_item")]
    assert "unpaired surrogate" in parsed.errors[0].message


def test_a_json_entry_holding_an_unpaired_surrogate_keeps_its_error_writable_as_utf8_and_the_good_entries():
    parsed = parse_input("s.json", b'{"items": [{"id": "ok1", "text": "fine"}, {"id": "b", "text": "", '
                                   b'"note": "\\ud800 caf\xc3\xa9"}, {"id": "\\udfff", "text": "x"}]}')
    assert [i.id for i in parsed.items] == ["ok1"]
    assert [(e.line, e.reason) for e in parsed.errors] == [(2, "empty_text"), (3, "invalid_item")]
    for error in parsed.errors:
        (error.raw + error.message).encode("utf-8")  # what its dead letter holds; it raised before
    assert "\\ud800" in parsed.errors[0].raw


@pytest.mark.parametrize("body,reason", [
    (b'{"id":"a","text":"\\ud800"}', "invalid_item"),
    (b'{"id":' + b"9" * 5000 + b',"text":"x"}', "invalid_json"),
], ids=["unpaired-surrogate", "integer-too-long"])
def test_an_http_body_python_cannot_hold_as_text_is_an_input_error(body, reason):
    with pytest.raises(InputError) as err:
        parse_request(body)
    assert err.value.reason == reason


def test_an_http_body_with_a_byte_order_mark_is_read():
    items, batch = parse_request(b'\xef\xbb\xbf{"items": [{"id": "a", "text": "hi"}]}')
    assert [(i.id, i.text) for i in items] == [("a", "hi")] and batch


@pytest.mark.parametrize("headers,seconds", [
    ({"retry-after": "7"}, 7.0),
    ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
    ({"x-ms-retry-after-ms": "250"}, 0.25),
    ({"retry-after": "Wed, 21 Oct 2026 07:28:00 GMT"}, None),
    ({}, None),
    (None, None),
])
def test_retry_after_headers(headers, seconds):
    from shared.core.retry import retry_after_seconds

    assert retry_after_seconds(headers) == seconds
