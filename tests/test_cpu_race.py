"""benchmarks/cpu_race.py: the reference's and fastacgan's training steps timed on a CPU at full size."""

import subprocess

import pytest
from conftest import load_benchmark_module

race_mod = load_benchmark_module("cpu_race")


def test_prints_one_row_per_implementation_with_the_speed_up(capsys, monkeypatch):
    monkeypatch.setattr(race_mod, "cpu_has_bf16", lambda: True)  # the bf16 row whatever this CPU has
    race_mod.main(["--runs", "digits:4", "--steps", "1", "--rounds", "1"])
    rows = [line.split(" | ") for line in capsys.readouterr().out.splitlines() if line.startswith("| digits")]
    assert [r[2] for r in rows] == ["reference (eager fp32)", "fastacgan fp32", "fastacgan bf16"]
    assert rows[0][-1].strip(" |") == "1.00x"
    ms = [float(r[3].removesuffix(" ms")) for r in rows]
    speedups = [float(r[-1].strip(" |x")) for r in rows]
    for m, s in zip(ms, speedups):
        assert m > 0 and s == pytest.approx(ms[0] / m, rel=0.02, abs=0.01)


@pytest.mark.parametrize("bad", ["digits", "digits:0", "nope:4", "cifar10:x"])
def test_bad_runs_are_refused_with_the_entry(bad, capsys):
    with pytest.raises(SystemExit) as e:
        race_mod.main(["--runs", bad])
    assert e.value.code == 2
    assert repr(bad) in capsys.readouterr().err


@pytest.mark.parametrize("malloc, cached", [("fastacgan", [False, True, True]), ("both", [True] * 3),
                                            ("none", [False] * 3)])  # fmt: skip
def test_each_implementation_runs_in_its_own_process_with_its_malloc(malloc, cached, monkeypatch):
    """A process per implementation and round; the reference's leaves malloc as a plain script does, unless
    --malloc-cache both; what the processes that set it said is gathered."""
    cmds = []

    def fake_run(cmd, **kw):
        cmds.append(cmd)
        cache = cmd[cmd.index("--malloc-cache") + 1] == "both"
        return subprocess.CompletedProcess(cmd, 0, stdout=f"{'on' if cache else 'off'}\n{len(cmds)}.5\n", stderr="")

    monkeypatch.setattr(race_mod.subprocess, "run", fake_run)
    said = set()
    results = race_mod.race("cifar10", 64, 3, 2, True, malloc, said)
    assert len(cmds) == 6  # 3 implementations x 2 rounds
    assert [int(c[c.index("--child") + 1]) for c in cmds] == [0, 1, 2, 0, 1, 2]
    assert all(c[c.index("--runs") + 1] == "cifar10:64" and c[c.index("--steps") + 1] == "3" for c in cmds)
    assert [c[c.index("--malloc-cache") + 1] == "both" for c in cmds[:3]] == cached
    assert results == [(name, i + 1.5) for i, name in enumerate(race_mod.IMPLEMENTATIONS)]  # the rounds' least
    assert said == ({"on"} if any(cached) else set())
