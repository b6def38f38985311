import logging
from datetime import time
from decimal import Decimal
from pathlib import Path

import pytest

from campaign.config.limit import Limit
from campaign.config.model import CallingHours, load_campaign, parse_duration
from campaign.errors import ConfigError

BASE = """\
campaign: spring-2026
scenario_id: scn_renewal_v3
input:
  path: ../data/contacts.csv
  phone_column: phone
  default_region: us
"""


@pytest.fixture
def campaign_dir(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "contacts.csv").write_text("phone,name\n+12127365000,Al\n")
    (tmp_path / "pipelines").mkdir()
    return tmp_path


def write(campaign_dir: Path, text: str) -> Path:
    path = campaign_dir / "pipelines" / "spring.yaml"
    path.write_text(text)
    return path


def load_error(campaign_dir: Path, extra: str) -> str:
    path = write(campaign_dir, BASE + extra)
    with pytest.raises(ConfigError) as caught:
        load_campaign(path, env={})
    assert caught.value.exit_code == 2
    return str(caught.value)


def test_defaults_and_relative_paths(campaign_dir: Path) -> None:
    config = load_campaign(write(campaign_dir, BASE), env={})
    assert config.input.path == campaign_dir / "data" / "contacts.csv"
    assert config.input.default_region == "US"
    assert config.mode == "calls"
    assert config.limits.calls == [Limit(5, 60.0)]
    assert config.limits.requests == [Limit(60, 60.0), Limit(1000, 3600.0)]
    assert config.retry.max_attempts == 3 and config.retry.min_interval_s == 4 * 3600
    assert config.retry.stop_outcomes == ["opted_out", "wrong_person"]
    assert config.calling_hours is None
    assert config.state_dir == campaign_dir / ".campaign-state"
    assert config.state_path == campaign_dir / ".campaign-state" / "spring-2026.sqlite"
    assert config.output_dir == campaign_dir / "reports" / "spring-2026"
    assert config.api.base_url == "https://api.aitelier.org/v1"
    assert config.priority == 1.0


def test_the_design_example_file_loads(campaign_dir: Path) -> None:
    (campaign_dir / "data" / "dnc.csv").write_text("phone\n")
    extra = """\
mode: batches
suppression: [../data/dnc.csv]
calling_hours: {start: "09:00", end: "20:00", days: [mon, tue, wed, thu, fri, sat]}
retry: {statuses: [no_answer, busy], max_attempts: 3, min_interval: 4h, stop_outcomes: [opted_out]}
limits: {calls: 5/min, requests: [60/min, 1000/h]}
batch: {max_rows: 500}
cost_estimate: "0.12"
api: {base_url: sandbox, key_env: MY_KEY}
state_dir: ../state
output_dir: ../out
"""
    config = load_campaign(write(campaign_dir, BASE + extra), env={"MY_KEY": "avp_live_x"})
    assert config.calling_hours == CallingHours(
        start=time(9), end=time(20), days=frozenset(range(6))
    )
    assert config.cost_estimate == Decimal("0.12")
    assert [listed.path for listed in config.suppression] == [campaign_dir / "data" / "dnc.csv"]
    assert config.is_sandbox
    assert config.api_key() == "avp_live_x"
    assert config.state_dir == campaign_dir / "state"


def test_environment_overrides_key_and_base_url(campaign_dir: Path) -> None:
    env = {"AITELIER_API_KEY": "avp_live_secret", "AITELIER_BASE_URL": "http://127.0.0.1:9/v1"}
    config = load_campaign(write(campaign_dir, BASE), env=env)
    assert config.api.base_url == "http://127.0.0.1:9/v1"
    assert config.require_api_key() == "avp_live_secret"
    for text in (repr(config), str(config), str(config.model_dump())):
        assert "avp_live_secret" not in text


def test_aitelier_base_url_never_turns_a_sandbox_campaign_into_a_real_one(
    campaign_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    env = {"AITELIER_BASE_URL": "https://api.aitelier.org/v1"}
    with caplog.at_level(logging.WARNING, logger="campaign"):
        sandbox = load_campaign(write(campaign_dir, BASE + "api: {base_url: sandbox/}\n"), env=env)
    assert sandbox.is_sandbox and sandbox.api.base_url == "sandbox"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].startswith("AITELIER_BASE_URL is set but ignored")
    caplog.clear()
    real_file = BASE + "api: {base_url: 'https://staging.example.org/v1'}\n"
    with caplog.at_level(logging.WARNING, logger="campaign"):
        real = load_campaign(write(campaign_dir, real_file), env=env)
    assert real.api.base_url == "https://api.aitelier.org/v1"  # a real URL is replaced
    assert not caplog.records


def test_missing_key_is_only_an_error_when_required(campaign_dir: Path) -> None:
    config = load_campaign(write(campaign_dir, BASE), env={})
    assert config.api_key() is None
    with pytest.raises(ConfigError, match="set the environment variable AITELIER_API_KEY"):
        config.require_api_key()
    sandbox = load_campaign(write(campaign_dir, BASE + "api: {base_url: sandbox}\n"), env={})
    assert sandbox.require_api_key() == "avp_test_sandbox"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("retyr: {max_attempts: 2}\n", "retyr: unknown key 'retyr'; did you mean 'retry'?"),
        (
            "retry: {max_atempts: 2}\n",
            "retry.max_atempts: unknown key 'max_atempts'; did you mean 'max_attempts'?",
        ),
        (
            "calling_hours: {strat: '09:00'}\n",
            "calling_hours.strat: unknown key 'strat'; did you mean 'start'?",
        ),
        (
            "retry: {min_interval: 4 hours}\n",
            "retry.min_interval: '4 hours' is not a duration; write e.g. 90s, 30min, 4h or 1.5h",
        ),
        (
            "limits: {calls: 5/minute}\n",
            "limits.calls: '5/minute' is not a limit; write N/<duration> such as 5/min, 1000/h",
        ),
        (
            "limits: {requests: [60/min, lots]}\n",
            "limits.requests: 'lots' is not a limit",
        ),
        (
            "calling_hours: {start: '21:00', end: '20:00'}\n",
            "calling_hours: start 21:00 must be before end 20:00",
        ),
        ("calling_hours: {days: [mon, funday]}\n", "calling_hours.days: 'funday' is not a day"),
        ("calling_hours: {start: '9am'}\n", "calling_hours.start: '9am' is not a time of day"),
        ("calling_hours: always\n", "calling_hours: write 'unrestricted' or"),
        ("mode: batch\n", "mode: Input should be 'calls' or 'batches'"),
        ("batch: {max_rows: 20000}\n", "batch.max_rows: Input should be less than or equal to"),
        ("priority: 0\n", "priority: Input should be greater than 0"),
        ("cost_estimate: cheap\n", "cost_estimate: 'cheap' is not an amount"),
        ("api: {base_url: 'ftp://x'}\n", "api.base_url: 'ftp://x' is not an http(s) URL"),
        (
            "retry: {statuses: [no-answer]}\n",
            "retry.statuses: 'no-answer' is not a final call status that can be retried; "
            "did you mean 'no_answer'?",
        ),
        ("api: {key_env: 'avp_live 123'}\n", "api.key_env: must be the name of an environment"),
    ],
)
def test_errors_name_the_key_and_the_fix(campaign_dir: Path, extra: str, message: str) -> None:
    text = load_error(campaign_dir, extra)
    assert text.startswith(str(campaign_dir / "pipelines" / "spring.yaml") + ": ")
    assert message in text


def test_a_key_pasted_into_key_env_is_not_echoed(campaign_dir: Path) -> None:
    message = load_error(campaign_dir, "api: {key_env: 'avp_live_s3cr3t-key'}\n")
    assert "avp_live_s3cr3t-key" not in message


def test_bad_values_in_required_keys(campaign_dir: Path) -> None:
    text = BASE.replace("spring-2026", "spring 2026/../x")
    path = write(campaign_dir, text)
    with pytest.raises(ConfigError, match=r"campaign: 'spring 2026/../x' must be 1-100"):
        load_campaign(path, env={})
    path = write(campaign_dir, BASE.replace("default_region: us", "default_region: XX"))
    with pytest.raises(ConfigError, match=r"input\.default_region: 'XX' is not an ISO 3166"):
        load_campaign(path, env={})
    path = write(campaign_dir, "campaign: x\ninput: {path: ../data/contacts.csv}\n")
    with pytest.raises(ConfigError, match="scenario_id: required key is missing"):
        load_campaign(path, env={})


def test_missing_files(campaign_dir: Path) -> None:
    with pytest.raises(ConfigError, match="campaign file not found"):
        load_campaign(campaign_dir / "nope.yaml", env={})
    path = write(campaign_dir, BASE.replace("contacts.csv", "nope.csv"))
    with pytest.raises(ConfigError) as caught:
        load_campaign(path, env={})
    assert f"input.path: input file {campaign_dir / 'data' / 'nope.csv'} does not exist" in str(
        caught.value
    )
    message = load_error(campaign_dir, "suppression: [../data/dnc.csv]\n")
    assert "suppression[0]: suppression list" in message


def test_yaml_syntax_error_names_the_line(campaign_dir: Path) -> None:
    path = write(campaign_dir, BASE + "retry: {max_attempts: 3\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_campaign(path, env={})


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("4h", 14400.0), ("30min", 1800.0), ("90s", 90.0), ("1.5h", 5400.0), (120, 120.0)],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_unquoted_times_and_day_ranges(campaign_dir: Path) -> None:
    # YAML 1.1 reads 09:00 unquoted as a base-60 integer; it must still mean nine o'clock
    extra = "calling_hours: {start: 09:00, end: 17:30, days: [mon-fri]}\n"
    config = load_campaign(write(campaign_dir, BASE + extra), env={})
    assert config.calling_hours == CallingHours(
        start=time(9), end=time(17, 30), days=frozenset(range(5))
    )
    config = load_campaign(write(campaign_dir, BASE + "calling_hours: unrestricted\n"), env={})
    assert config.calling_hours == "unrestricted"


def test_every_error_of_a_file_is_reported_at_once_not_one_per_round(campaign_dir: Path) -> None:
    extra = (
        "retyr: {max_attempts: 2}\n"
        "limits: {calls: 5/minute}\n"
        "calling_hours: {strat: '09:00', days: [mon, funday]}\n"
        "priority: 0\n"
    )
    text = load_error(campaign_dir, extra)
    where = str(campaign_dir / "pipelines" / "spring.yaml")
    lines = text.splitlines()
    assert lines[0] == f"{where}: 5 problems in the campaign file:"
    assert lines[1:] == [
        f"  {where}: retyr: unknown key 'retyr'; did you mean 'retry'?",
        f"  {where}: limits.calls: '5/minute' is not a limit; write N/<duration> such as "
        "5/min, 1000/h, 30/10s",
        f"  {where}: calling_hours.days: 'funday' is not a day; use mon, tue, wed, thu, fri, "
        "sat, sun (got ['mon', 'funday'])",
        f"  {where}: calling_hours.strat: unknown key 'strat'; did you mean 'start'?",
        f"  {where}: priority: Input should be greater than 0",
    ]


def test_a_misspelt_required_key_gets_a_did_you_mean(campaign_dir: Path) -> None:
    path = write(campaign_dir, BASE.replace("campaign: spring-2026", "campain: spring-2026"))
    with pytest.raises(ConfigError) as caught:
        load_campaign(path, env={})
    assert str(caught.value) == (
        f"{path}: campain: unknown key 'campain'; did you mean 'campaign'? (campaign is required)"
    )
    nested = write(campaign_dir, BASE.replace("  path:", "  paht:"))
    with pytest.raises(ConfigError) as caught:
        load_campaign(nested, env={})
    assert str(caught.value) == (
        f"{nested}: input.paht: unknown key 'paht'; did you mean 'path'? (input.path is required)"
    )


def test_a_missing_required_key_says_what_to_write(campaign_dir: Path) -> None:
    path = write(campaign_dir, "input: {path: ../data/contacts.csv}\n")
    with pytest.raises(ConfigError) as caught:
        load_campaign(path, env={})
    assert str(caught.value).splitlines()[1:] == [
        f"  {path}: campaign: required key is missing; add e.g. campaign: spring-renewals-2026",
        f"  {path}: scenario_id: required key is missing; add e.g. scenario_id: scn_renewal_v3",
    ]


def test_every_missing_file_is_named_at_once(campaign_dir: Path) -> None:
    extra = "suppression: [../data/dnc.csv, ../data/dnc2.csv]\n"
    path = write(campaign_dir, BASE.replace("contacts.csv", "nope.csv") + extra)
    with pytest.raises(ConfigError) as caught:
        load_campaign(path, env={})
    keys = [problem.key for problem in caught.value.problems]  # type: ignore[attr-defined]
    assert keys == ["input.path", "suppression[0]", "suppression[1]"]


@pytest.mark.parametrize(("value", "ok"), [("0.2", True), ("0", True), ("1", True), ("1.5", False)])
def test_max_reject_share_is_a_share_between_0_and_1(
    campaign_dir: Path, value: str, ok: bool
) -> None:
    path = write(campaign_dir, BASE + f"  max_reject_share: {value}\n")
    if ok:
        assert load_campaign(path, env={}).input.max_reject_share == float(value)
    else:
        with pytest.raises(ConfigError, match=r"input\.max_reject_share: Input should be less"):
            load_campaign(path, env={})


def test_calls_are_paced_evenly_unless_the_file_asks_for_bursts(campaign_dir: Path) -> None:
    assert load_campaign(write(campaign_dir, BASE), env={}).limits.pacing == "even"
    bursts = load_campaign(write(campaign_dir, BASE + "limits: {pacing: burst}\n"), env={})
    assert bursts.limits.pacing == "burst"
    assert bursts.limits.calls == [Limit(5, 60.0)]  # the other limits keep their defaults


def test_an_unknown_pacing_names_the_key_and_the_choices(campaign_dir: Path) -> None:
    message = load_error(campaign_dir, "limits: {pacing: smooth}\n")
    assert "limits.pacing: Input should be 'even' or 'burst'" in message
