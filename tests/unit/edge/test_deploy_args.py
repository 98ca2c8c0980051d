"""What ``edgewise deploy`` hands to ssh, to the device's shell and to the systemd unit.

The user's ssh options come before deploy's defaults (ssh keeps the first value), hosts are
validated and passed after ``--``, every value a remote shell sees is quoted with
``shlex.quote`` (proved by running the generated script under ``sh`` with a recording stand-in
for pip), and every value in the unit file follows systemd's quoting rules (checked by
``systemd-analyze verify`` when it is installed). Bundles here are tiny SYNTHETIC ones.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from edgewise.edge import signing
from edgewise.edge.bundle import BundleWriter, Variant
from edgewise.edge.cli import main
from edgewise.edge.device import remote as remote_mod
from edgewise.edge.device.deploy import DeployConfig
from edgewise.edge.device.release import prepare_release
from edgewise.edge.device.remote import Host, Remote, parse_host, read_inventory, ssh_argv
from edgewise.edge.device.systemd import environment_line, exec_line, exec_word, render_unit
from edgewise.edge.device.venv import venv_recipe
from edgewise.edge.signing import ENV_TRUSTED_KEYS, generate_keypair, sign_bundle


@pytest.fixture(autouse=True)
def _no_ambient_trust(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(ENV_TRUSTED_KEYS, raising=False)
    signing.use_trusted_keys(None)
    yield
    signing.use_trusted_keys(None)


def _tiny_bundle(root: Path) -> Path:
    w = BundleWriter(root, name="t", task="classification", app="generic")
    w.add_bytes("model_float32.tflite", b"\x00" * 64)
    w.meta["input"] = {"shape": [None, 4], "dtype": "float32", "normalization": {"scale": 1.0, "offset": 0.0}}
    w.meta["output"] = {"shape": [None, 2], "dtype": "float32"}
    w.meta["labels"] = ["ok", "bad"]
    w.add_variant(Variant("tflite_float32", "model_float32.tflite", "litert", "float32"))
    return w.finish()


# -- ssh -----------------------------------------------------------------------------------------


def test_user_ssh_options_come_before_the_defaults_so_strict_host_key_checking_holds(tmp_path: Path):
    argv = ssh_argv(Host("pi.local", "pi", 2222, "/k"), ["StrictHostKeyChecking=yes"], tmp_path)
    opts = [argv[i + 1] for i, a in enumerate(argv) if a == "-o"]
    strict = [o for o in opts if o.startswith("StrictHostKeyChecking=")]
    assert strict == ["StrictHostKeyChecking=yes", "StrictHostKeyChecking=accept-new"]  # the user's first
    assert argv[:3] == ["ssh", "-o", "StrictHostKeyChecking=yes"]
    assert argv[argv.index("-p") + 1] == "2222" and argv[argv.index("-i") + 1] == "/k"
    assert "pi@pi.local" not in argv  # the target is added after "--" by the caller


def test_the_host_is_passed_after_double_dash_and_the_script_as_one_quoted_word(monkeypatch, tmp_path):
    seen: list[list[str]] = []

    def fake_run(cmd, **kw):
        seen.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, b"out\n", b"")

    monkeypatch.setattr(remote_mod.subprocess, "run", fake_run)
    r = Remote(parse_host("pi@pi.local"), ["StrictHostKeyChecking=yes"], tmp_path)
    assert r.run("step", "echo 'a b'; echo $HOME") == "out\n"
    r.close()
    run, close = seen
    assert run[-3:-1] == ["--", "pi@pi.local"] and run[-1].startswith("sh -c '")
    assert close[-4:] == ["-O", "exit", "--", "pi@pi.local"]


@pytest.mark.parametrize("spec", [
    "-oProxyCommand=touch /tmp/pwned", "-pi", "pi@-oProxyCommand=x", "pi@host;reboot", "pi@ho st",
    "pi@$(id)", "pi@`id`", "pi@host|x", "pi&@host", "pi@host:0", "pi@host:70000", "pi@host\nx", "@host",
    "pi@[::1;x]:22", "pi@host'", 'pi@"host"',
])
def test_a_host_that_ssh_or_a_shell_could_misread_is_refused_in_one_line(spec: str):
    with pytest.raises(ValueError) as e:
        parse_host(spec)
    assert "\n" not in str(e.value).replace("\\n", "") and str(e.value).startswith("host ")


@pytest.mark.parametrize(("spec", "host", "user", "port"), [
    ("pi@raspberrypi.local:2222", "raspberrypi.local", "pi", 2222), ("pi@[::1]:22", "::1", "pi", 22),
    ("fe80::1", "fe80::1", None, None), ("10.0.0.5", "10.0.0.5", None, None),
    ("deploy_bot@edge-01", "edge-01", "deploy_bot", None),
])
def test_ordinary_hosts_parse(spec: str, host: str, user: str | None, port: int | None):
    h = parse_host(spec)
    assert (h.host, h.user, h.port) == (host, user, port)


def test_an_inventory_line_with_a_bad_host_is_refused(tmp_path: Path):
    inv = tmp_path / "pis.txt"
    inv.write_text("pi@10.0.0.5\n-oProxyCommand=x\n")
    with pytest.raises(ValueError, match="must not start with '-'"):
        read_inventory(inv)


def test_an_ssh_option_that_is_not_key_value_is_refused(tmp_path: Path):
    with pytest.raises(ValueError, match="expected KEY=VALUE"):
        ssh_argv(Host("h"), ["-F/evil"], tmp_path)


# -- the device's shell -----------------------------------------------------------------------------


def _fake_venv(tmp_path: Path) -> tuple[Path, Path]:
    """A "venv" whose python records its arguments one per line (pip's stand-in), and a wheel."""
    venv = tmp_path / "my venv"
    (venv / "bin").mkdir(parents=True)
    py = venv / "bin" / "python"
    py.write_text('#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done >> "$(dirname "$0")/calls"\n'
                  'echo --- >> "$(dirname "$0")/calls"\n')
    py.chmod(0o755)
    wheel = tmp_path / "w" / "edgewise-0.1.0-py3-none-any.whl"
    wheel.parent.mkdir()
    wheel.write_bytes(b"")
    return venv, wheel


def test_pip_args_and_extras_reach_pip_as_exactly_the_words_given(tmp_path: Path):
    import shlex

    venv, wheel = _fake_venv(tmp_path)
    pwn = tmp_path / "pwned"
    pip_args = (f"--find-links '/srv/my wheels' --index-url 'http://x/$(touch {pwn})' ; touch {pwn} "
                f"`touch {pwn}`")
    script = venv_recipe(shlex.quote(str(venv)), shlex.quote(str(wheel)), ["numpy==1.24.2"],
                         pip_args=pip_args, extras="pi,mqtt")
    r = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert not pwn.exists()
    first = (venv / "bin" / "calls").read_text().split("---\n")[0].splitlines()
    assert first[first.index("--find-links") + 1] == "/srv/my wheels"
    assert f"http://x/$(touch {pwn})" in first and ";" in first and f"{pwn}`" in first
    assert first[-1] == f"{wheel}[pi,mqtt]"


@pytest.mark.parametrize("extras", ['pi]" ; reboot ; "', "pi;reboot", "$(id)", "pi, mqtt", "[pi]"])
def test_extras_that_are_not_a_list_of_names_are_refused(extras: str):
    with pytest.raises(ValueError, match="--extras"):
        venv_recipe("v", "w", [], extras=extras)


def test_a_systemctl_command_is_split_into_quoted_words():
    c = DeployConfig(app="classify", systemctl="sudo -n systemctl; touch /tmp/pwned")
    assert c.systemctl_cmd() == "sudo -n 'systemctl;' touch /tmp/pwned"
    assert DeployConfig(app="classify", systemd="user").systemctl_cmd() == "systemctl --user"


def test_unbalanced_quotes_in_run_args_or_pip_args_fail_in_one_line():
    with pytest.raises(ValueError, match="--run-args"):
        DeployConfig(app="classify", run_args="--source 'x").check()
    with pytest.raises(ValueError, match="--pip-args"):
        DeployConfig(app="classify", pip_args='--index-url "x').check()


# -- the unit file ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("word", "expected"), [
    ("plain/path_1.mp4", "plain/path_1.mp4"),
    ("my video.mp4", '"my video.mp4"'),
    ('say "hi"', '"say \\"hi\\""'),
    ("it's", '"it\'s"'),
    ("$HOME", "$$HOME"),
    ("${HOME}/x", '"$${HOME}/x"'),
    ("50%", "50%%"),
    ("%h/x", "%%h/x"),
    ("back\\slash", '"back\\\\slash"'),
    ("tab\\tnot", '"tab\\\\tnot"'),
    (";", "\\;"),
    ("", '""'),
])
def test_exec_words_follow_systemd_quoting(word: str, expected: str):
    assert exec_word(word) == expected


@pytest.mark.parametrize("word", ["a\nExecStartPre=/bin/evil", "a\rb", "nul\x00"])
def test_line_breaks_and_control_characters_are_refused_in_the_unit(word: str):
    with pytest.raises(ValueError, match="control character"):
        exec_word(word)
    with pytest.raises(ValueError, match="control character"):
        environment_line("X", word)
    with pytest.raises(ValueError, match="control character"):
        render_unit("classify", "/b", ["--source", word], user=None, scope="user")


def test_environment_lines_quote_one_assignment_and_double_percent_only():
    assert environment_line("K", 'a b"c\\d$x 50%') == 'Environment="K=a b\\"c\\\\d$x 50%%"'
    with pytest.raises(ValueError, match="letters, digits"):
        environment_line("BAD NAME", "x")


def test_exec_start_needs_an_absolute_program():
    with pytest.raises(ValueError, match="absolute program path"):
        exec_line(["edgewise", "run"])


def test_the_unit_carries_run_args_as_separate_quoted_words_and_the_trusted_keys():
    unit = render_unit("classify", "/home/pi/edge wise", "--source '/data/my video.mp4' --jsonl= --tag 50%",
                       user="pi", scope="system",
                       env={ENV_TRUSTED_KEYS: "/home/pi/edge wise/current/trusted-keys"})
    lines = unit.splitlines()
    assert ('ExecStart="/home/pi/edge wise/venv/bin/edgewise" run classify --bundle '
            '"/home/pi/edge wise/current/bundle" --source "/data/my video.mp4" --jsonl= --tag 50%%') in lines
    assert 'Environment="EDGEWISE_TRUSTED_KEYS=/home/pi/edge wise/current/trusted-keys"' in lines
    assert sum(line.startswith("Exec") for line in lines) == 1


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_itself_accepts_the_unit_with_hard_arguments(tmp_path: Path):
    base = tmp_path / "edge wise %h $HOME"
    (base / "venv" / "bin").mkdir(parents=True)
    exe = base / "venv" / "bin" / "edgewise"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    args = ["--source", 'a "quoted" name', "it's", "$HOME", "${X}", "50%", "back\\slash", ";", "", "x y"]
    unit = tmp_path / "edgewise-classify.service"
    unit.write_text(render_unit("classify", str(base), args, user=None, scope="user",
                                env={ENV_TRUSTED_KEYS: f"{base}/current/trusted-keys"}))
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"})
    complaints = [ln for ln in (r.stdout + r.stderr).splitlines() if str(unit) in ln or "quot" in ln.lower()
                  or "escape" in ln.lower() or "specifier" in ln.lower()]
    assert r.returncode == 0 and not complaints, r.stdout + r.stderr


# -- trusted keys ------------------------------------------------------------------------------------


def test_a_trusted_key_travels_in_the_release_and_an_unsigned_bundle_is_refused_before_upload(tmp_path):
    bundle = _tiny_bundle(tmp_path / "b")
    wheel = tmp_path / "edgewise-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"wheel")
    _, pub, _ = generate_keypair(tmp_path / "release")
    with pytest.raises(ValueError, match="(?i)sign"):
        prepare_release(bundle, wheel, "classify", [pub])
    sign_bundle(bundle, tmp_path / "release")
    rel = prepare_release(bundle, wheel, "classify", [pub])
    assert list(rel.keys) == ["release.pub"] and rel.info["trusted_keys"] == ["release.pub"]
    assert "  trusted-keys/release.pub" in rel.manifest
    with tarfile.open(fileobj=io.BytesIO(rel.tar_bytes())) as tar:
        assert tar.extractfile("trusted-keys/release.pub").read() == pub.read_bytes()


def test_a_private_key_given_as_trusted_key_is_refused(tmp_path: Path):
    bundle = _tiny_bundle(tmp_path / "b")
    wheel = tmp_path / "edgewise-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"wheel")
    priv, _, _ = generate_keypair(tmp_path / "release")
    with pytest.raises(ValueError, match="private key"):
        prepare_release(bundle, wheel, "classify", [priv])


def test_deploy_flags_fail_in_one_line_before_anything_connects(tmp_path: Path, capsys):
    bundle = _tiny_bundle(tmp_path / "b")
    cases = [
        (["--host=-oProxyCommand=touch /tmp/x"], "must not start with '-'"),
        (["--host", "pi@h", "--extras", "pi;reboot"], "--extras"),
        (["--host", "pi@h", "--run-args", "--source 'x"], "--run-args"),
        (["--host", "pi@h", "-o=-F/evil"], "expected KEY=VALUE"),
    ]
    for extra, msg in cases:
        assert main(["deploy", str(bundle), "--app", "classify", *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("edgewise deploy: error:") and msg in err[0], err
    argv = ["deploy", "--rollback", "--host", "pi@h", "--app", "classify", "--trusted-key", "k.pub"]
    assert main(argv) == 2
    assert "a rollback keeps the keys" in capsys.readouterr().err
