"""Invalid configuration: a message naming file, line and key; exit 2; nothing touched."""

from __future__ import annotations

import pytest

from monitor.config import load_feeds, load_settings
from monitor.errors import ConfigError
from monitor.scoring import load_rules

GOOD = "feeds:\n  - url: https://example.org/feed.xml\n    name: Example\n"


def expect_error(path, loader, text):
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        loader(path)
    return str(info.value)


@pytest.mark.parametrize("text, expected", [
    (GOOD + "  - url: ftp://example.org/x\n    name: X\n",
     "feeds.yaml:4: feeds[1].url: not an http(s) URL"),
    (GOOD + "    colour: red\n", "feeds.yaml:4: feeds[0].colour: unknown key"),
    (GOOD + "    enabled: NO\n", "feeds.yaml:4: feeds[0].enabled: NO means false or true to "
     "YAML 1.1 tools"),
    (GOOD + "    language: NO\n", 'feeds.yaml:4: feeds[0].language: NO means false or true to '
     'YAML 1.1 tools; write "NO" (quoted) for the text'),
    (GOOD + "    enabled: 'yes'\n", "feeds.yaml:4: feeds[0].enabled: Input should be a valid "
     "boolean"),
    (GOOD + "    interval: forever\n", "feeds.yaml:4: feeds[0].interval: expected a duration"),
    ("feeds:\n  - url: https://a.org/\n    name: 0777\n",
     "feeds.yaml:3: feeds[0].name: Input should be a valid string"),
    ("feeds:\n  - url: https://a.org/\n   name: A\n", "feeds.yaml:3: invalid YAML"),
    ("feeds:\n  - url: https://a.org/\n    url: https://b.org/\n    name: A\n",
     "feeds.yaml:3: invalid YAML: found duplicate key"),
    ("feeds:\n  - url: !!python/object/apply:os.system ['true']\n    name: A\n",
     "feeds.yaml:2: tags (tag:yaml.org,2002:python/object/apply:os.system) are not allowed"),
    ("a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n", "feeds.yaml:2: aliases (*name) are not "
     "allowed"),
    (GOOD + "  - url: https://example.org/feed.xml\n    name: Again\n",
     "feeds.yaml:4: feeds[1].url: duplicate of feeds[0].url"),
])
def test_feeds_errors_name_file_line_and_key(tmp_path, text, expected):
    message = expect_error(tmp_path / "feeds.yaml", load_feeds, text)
    assert message.startswith(str(tmp_path / expected.split(":", 1)[0]) + ":"), message
    assert expected.split(":", 1)[1] in message.removeprefix(str(tmp_path) + "/"), message


def test_settings_defaults_and_overrides(tmp_path):
    assert load_settings(tmp_path / "missing.yaml").request_deadline == 60.0
    path = tmp_path / "settings.yaml"
    path.write_text("default_interval: 15m\ntimezone: Europe/Berlin\nemail:\n  port: 25\n")
    s = load_settings(path)
    assert (s.default_interval, s.timezone, s.email.port) == (900.0, "Europe/Berlin", 25)
    message = expect_error(path, load_settings, "timezone: Mars/Olympus\n")
    assert message.endswith("settings.yaml:1: timezone: unknown time zone 'Mars/Olympus'")


def test_keywords_errors(tmp_path):
    path = tmp_path / "keywords.yaml"
    base = "threshold: 5\nconcepts:\n  c:\n    role: surveillance\n"
    assert "keywords.yaml:5: concepts.c.regex[0]: regex '(a+)+$' repeats a repeated group" in \
        expect_error(path, load_rules, base + "    regex: ['(a+)+$']\n")
    assert "keywords.yaml:5: concepts.c.wieght: unknown key" in \
        expect_error(path, load_rules, base + "    wieght: 3\n")
    assert "keywords.yaml:1: threshold: Input should be greater than 0" in \
        expect_error(path, load_rules, base.replace("threshold: 5", "threshold: 0"))


def test_invalid_yaml_exits_2_and_leaves_the_database_alone(project):
    project.feeds("feeds:\n  - url: https://example.org/a\n    name: A\n    tgas: [x]\n")
    result = project.run("poll", "--once")
    assert result.exit_code == 2
    assert "feeds.yaml:4: feeds[0].tgas: unknown key" in result.output
    assert not project.db.exists()
    assert project.run("check-config").exit_code == 2
    project.feeds("feeds:\n  - url: https://example.org/a\n    name: A\n")
    checked = project.run("check-config")
    assert checked.exit_code == 0 and "ok: 1 feeds" in checked.output
