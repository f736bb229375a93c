"""Detection rules: parsing (clear ConfigErrors), evaluation, result-set selection, priority components."""

from __future__ import annotations

import math

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from pv.errors import ConfigError, InputError, InvalidTransitionError
from pv.signals.lifecycle import OPEN_STATES, STATES, TRANSITIONS, allowed_targets, check_transition
from pv.signals.priority import priority_score, trend_component
from pv.signals.rules import RuleSet, check_results, evaluate_rules, select_result_set
from tests.conftest import REPO
from tests.signals.helpers import frame, row, strong_row, weak_row


def _rules(**over) -> RuleSet:  # type: ignore[no-untyped-def]
    data = yaml.safe_load((REPO / "config" / "signals.yaml").read_text())
    # the levels of the `any` profile (the four classical criteria), written out so that a test can change one
    # key of them
    data["detection"]["profile"] = "any"
    data["detection"].setdefault("levels", RuleSet.from_mapping(data).snapshot()["detection"]["levels"])
    for path, value in over.items():
        node = data
        keys = path.split(".")
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value
    return RuleSet.from_mapping(data)


def test_shipped_config_loads_with_the_documented_thresholds() -> None:
    rules = RuleSet.load(REPO / "config" / "signals.yaml")
    assert rules.detection.profile == "bcpnn"  # chosen by measurement (docs/signals.md section 11)
    for level in ("pt", "group"):
        rule = rules.detection.levels[level]
        assert [c.name for c in rule.criteria] == ["bcpnn"] and rule.min_n == 3
        assert [str(c) for c in rule.criteria[0].conditions] == ["ic025 > 0"]
    assert rules.feedback.escalation.consecutive_unlabelled_runs == 3
    assert rules.feedback.reopening.factor == 2.0
    assert len(rules.digest()) == 64 and rules.snapshot()["detection"]["result_set"] == "unstratified"


@pytest.mark.parametrize(
    ("path", "value", "needle"),
    [
        ("detection.levels.pt.criteria", [{"name": "x", "conditions": ["prr >> 2"]}],
         "invalid condition 'prr >> 2'"),
        ("detection.levels.pt.criteria", [{"name": "x", "conditions": ["ebgmm >= 2"]}],
         "unknown measure 'ebgmm'"),
        ("detection.levels.pt.combine", "at_least", None),
        ("detection.result_set", "both", "detection.result_set"),
        ("feedback.reopening.factor", 0.5, "feedback.reopening.factor"),
        ("priority.weights", {"strength": 0, "trend": 0}, "weights must be >= 0 and not all zero"),
    ],
)
def test_bad_rules_are_config_errors_naming_the_key(path: str, value, needle) -> None:  # type: ignore[no-untyped-def]
    if needle is None:  # at_least with k=2 of 4 criteria is valid
        assert _rules(**{path: value}).detection.levels["pt"].combine == "at_least"
        return
    with pytest.raises(ConfigError) as err:
        _rules(**{path: value})
    assert needle in str(err.value)
    assert "signals.yaml" in str(err.value)


def test_at_least_k_larger_than_criteria_is_refused() -> None:
    with pytest.raises(ConfigError, match="at_least k=5 but only 4 criteria"):
        _rules(**{"detection.levels.pt.combine": "at_least", "detection.levels.pt.k": 5})


def test_each_criterion_alone_and_the_minimum_count() -> None:
    rules = _rules()  # the `any` profile: the four criteria, each alone enough
    rows = frame(
        row("p", "only eb05", n=3, eb05=2.0),                          # mgps exactly at threshold
        row("p", "only prr", n=3, prr=2.0, prr_chi2=4.0),              # Evans exactly at thresholds
        row("p", "prr low chi2", n=3, prr=3.0, prr_chi2=3.9),          # fails Evans
        row("p", "only ror", n=3, ror_lower=1.01),
        row("p", "ror at 1", n=3, ror_lower=1.0),                      # strict >
        row("p", "only ic", n=3, ic025=0.01),
        row("p", "eb05 but n 2", n=2, eb05=5.0),                       # below min_n
        row("p", "nan everything", n=10),
        weak_row("p", "weak"),
    )
    out = evaluate_rules(rows, rules).set_index("event")
    assert out.loc["only eb05", "criteria_met"] == ["mgps"]
    assert out.loc["only prr", "criteria_met"] == ["prr_evans"]
    assert out["meets"].to_dict() == {
        "only eb05": True, "only prr": True, "prr low chi2": False, "only ror": True, "ror at 1": False,
        "only ic": True, "eb05 but n 2": False, "nan everything": False, "weak": False,
    }


def test_combine_all_and_at_least() -> None:
    rows = frame(row("p", "two", n=5, eb05=2.5, ic025=0.3), row("p", "one", n=5, eb05=2.5),
                 strong_row("p", "four"))
    at_least = evaluate_rules(rows, _rules(**{"detection.levels.pt.combine": "at_least"})).set_index("event")
    assert at_least["meets"].to_dict() == {"two": True, "one": False, "four": True}
    all_ = evaluate_rules(rows, _rules(**{"detection.levels.pt.combine": "all"})).set_index("event")
    assert all_["meets"].to_dict() == {"two": False, "one": False, "four": True}


def test_level_without_rules_never_meets() -> None:
    # without a profile, only the levels listed have rules (with one, it gives every level its rule)
    rules = _rules(**{"detection.profile": None, "detection.levels": {"pt": yaml.safe_load(
        "{min_n: 3, combine: any, criteria: [{name: mgps, conditions: ['eb05 >= 2']}]}")}})
    out = evaluate_rules(frame(strong_row("p", "crs", "group"), strong_row("p", "x")), rules)
    assert out["meets"].tolist() == [False, True]


def test_result_set_preference_falls_back_per_pair() -> None:
    rows = frame(row("p", "a", n=3, eb05=1.0, stratified=False),
                 row("p", "a", n=3, eb05=3.0, stratified=True),
                 row("p", "b", n=3, eb05=2.5, stratified=False))
    strat = select_result_set(rows, "stratified").set_index("event")
    assert strat.loc["a", "eb05"] == 3.0 and bool(strat.loc["a", "stratified"])
    assert strat.loc["b", "eb05"] == 2.5  # no stratified row: the unstratified one is used
    unstrat = select_result_set(rows, "unstratified").set_index("event")
    assert unstrat.loc["a", "eb05"] == 1.0


def test_results_missing_a_column_is_an_input_error() -> None:
    rows = frame(strong_row("p", "a")).drop(columns="eb05")
    with pytest.raises(InputError, match="lack column"):
        check_results(rows)
    bad = frame(strong_row("p", "a", "smq"))
    with pytest.raises(InputError, match="unknown level"):
        check_results(bad)


def test_priority_components_hand_computed() -> None:
    cfg = RuleSet.load(REPO / "config" / "signals.yaml").priority
    p = priority_score(eb05=4.0, ic025=1.0, n=10, n_serious=6, n_deaths=2, unlabelled=True,
                       days_since_first=365, eb05_history=[2.0, 4.0], config=cfg)
    assert p.strength == pytest.approx(2 / 4)          # log2(4) / log2(16)
    assert p.seriousness == pytest.approx((0.6 + 0.2) / 2)
    assert p.novelty == pytest.approx(0.5 + 0.5 * (1 - 365 / 730))
    assert p.trend == pytest.approx(1.0)               # slope 1 per run / 0.5, clipped
    expected = 100 * (0.4 * 0.5 + 0.25 * 0.4 + 0.2 * 0.75 + 0.15 * 1.0)
    assert p.score == pytest.approx(expected)
    # falling trend scores 0; a single point has no trend
    assert trend_component([8.0, 4.0, 2.0], 4, 0.5) == 0.0
    assert trend_component([3.0], 4, 0.5) == 0.0
    assert trend_component([2.0, math.nan, 2.0 * 2 ** 0.25], 4, 0.5) == pytest.approx(0.125 / 0.5)


# -- lifecycle table (pure) ------------------------------------------------------------------------------


@given(st.sampled_from(STATES), st.sampled_from(STATES), st.booleans())
def test_check_transition_agrees_with_the_tables(current: str, target: str, automatic: bool) -> None:
    allowed = target in allowed_targets(current, automatic=automatic)
    try:
        check_transition(1, current, target, automatic=automatic)
        assert allowed
    except InvalidTransitionError as exc:
        assert not allowed
        assert f"from {current!r} to {target!r}" in str(exc)


def test_every_state_is_reachable_from_tracked_and_closed_is_final() -> None:
    seen, todo = {"tracked"}, ["tracked"]
    while todo:
        for nxt in allowed_targets(todo.pop(), automatic=True):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    assert seen == set(STATES)
    assert TRANSITIONS["closed"] == ()
    assert "monitoring" in allowed_targets("new", automatic=True)
    assert "monitoring" not in allowed_targets("new")
    # only the registry opens a tracked finding (to new); a person may validate or refute it; nothing goes back
    assert allowed_targets("tracked") == ("validated", "refuted")
    assert allowed_targets("tracked", automatic=True) == ("validated", "refuted", "new")
    assert not any("tracked" in allowed_targets(s, automatic=True) for s in STATES)
    assert "tracked" not in OPEN_STATES


# -- threshold profiles ------------------------------------------------------------------------------------


def _with_profile(profile: object, **detection: object) -> RuleSet:
    data = yaml.safe_load((REPO / "config" / "signals.yaml").read_text())
    data["detection"].pop("levels", None)
    data["detection"]["profile"] = profile
    data["detection"].update(detection)
    return RuleSet.from_mapping(data)


def test_profiles_give_the_documented_criteria_at_both_levels() -> None:
    expected = {
        "evans": ["prr >= 2", "prr_chi2 >= 4", "n >= 3"],
        "ror": ["ror_lower > 1", "n >= 5"],
        "mhra": ["eb05 >= 1.8", "ebgm >= 2.5", "n >= 3"],
        "eb05": ["eb05 >= 2"],
        "bcpnn": ["ic025 > 0"],
    }
    for name, conditions in expected.items():
        rules = _with_profile(name)
        for level in ("pt", "group"):
            rule = rules.detection.levels[level]
            assert len(rule.criteria) == 1 and [str(c) for c in rule.criteria[0].conditions] == conditions
        assert rules.detection.levels["pt"].min_n == (5 if name == "ror" else 3)
    assert [c.name for c in _with_profile("any").detection.levels["group"].criteria] == [
        "mgps", "prr_evans", "ror", "bcpnn"]


def test_each_profile_judges_the_same_rows_as_its_thresholds() -> None:
    rows = frame(
        row("p", "evans only", n=3, prr=2.0, prr_chi2=4.0, ror_lower=0.9, ebgm=1.5, eb05=1.0, ic025=-0.1),
        row("p", "ror n 4", n=4, prr=1.5, prr_chi2=2.0, ror_lower=1.2, ebgm=1.5, eb05=1.0, ic025=-0.1),
        row("p", "ror n 5", n=5, prr=1.5, prr_chi2=2.0, ror_lower=1.2, ebgm=1.5, eb05=1.0, ic025=-0.1),
        row("p", "mhra", n=3, prr=1.5, prr_chi2=2.0, ror_lower=0.9, ebgm=2.5, eb05=1.8, ic025=-0.1),
        row("p", "mhra low ebgm", n=3, prr=1.5, prr_chi2=2.0, ror_lower=0.9, ebgm=2.4, eb05=1.9, ic025=-0.1),
        row("p", "eb05", n=3, prr=1.5, prr_chi2=2.0, ror_lower=0.9, ebgm=2.2, eb05=2.0, ic025=-0.1),
    )
    meets = {name: set(evaluate_rules(rows, _with_profile(name)).query("meets")["event"])
             for name in ("evans", "ror", "mhra", "eb05", "any")}
    assert meets["evans"] == {"evans only"}
    assert meets["ror"] == {"ror n 5"}                   # n >= 5, where `any` accepts n >= 3
    assert meets["mhra"] == {"mhra"}
    assert meets["eb05"] == {"eb05"}
    assert meets["any"] == {"evans only", "ror n 4", "ror n 5", "eb05"}


def test_explicit_levels_replace_the_profile_at_their_level() -> None:
    pt_rule = {"min_n": 4, "combine": "any", "criteria": [{"name": "ic", "conditions": ["ic025 > 0.5"]}]}
    rules = _with_profile("mhra", levels={"pt": pt_rule})
    assert [c.name for c in rules.detection.levels["pt"].criteria] == ["ic"]
    assert [c.name for c in rules.detection.levels["group"].criteria] == ["mhra"]


def test_a_profile_defined_in_the_file() -> None:
    own = {"strict": {"min_n": 5, "criteria": [{"name": "eb05_3", "conditions": ["eb05 >= 3"]}]}}
    rules = _with_profile("strict", profiles=own)
    assert str(rules.detection.levels["group"].criteria[0].conditions[0]) == "eb05 >= 3"
    assert rules.detection.levels["pt"].min_n == 5


def test_unknown_profile_is_a_config_error_naming_it_and_the_known_ones() -> None:
    with pytest.raises(ConfigError) as err:
        _with_profile("mhra2")
    text = str(err.value)
    assert "signals.yaml" in text and "unknown detection profile 'mhra2'" in text
    assert "known profiles: any, bcpnn, eb05, evans, mhra, ror" in text


def test_the_rule_snapshot_records_the_profile() -> None:
    snap = _with_profile("eb05").snapshot()
    assert snap["detection"]["profile"] == "eb05"
    assert snap["detection"]["levels"]["pt"]["criteria"][0]["conditions"][0]["value"] == 2.0
    # a snapshot read back gives the same rules
    assert RuleSet.from_mapping(snap).digest() == _with_profile("eb05").digest()
    assert RuleSet.load(REPO / "config" / "signals.yaml").snapshot()["detection"]["profile"] is not None
