"""What a reader types into a chapter (issue 15): every parameter is known and in range before any work,
through the check cell each notebook runs (notebooks/chapter_parameters.py), through papermill as the
README documents it, and through book/build.py with a profile."""
import importlib.util
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
sys.path.insert(0, str(NOTEBOOKS))
import chapter_parameters  # noqa: E402

spec = importlib.util.spec_from_file_location("build", ROOT / "book" / "build.py")
build = importlib.util.module_from_spec(spec)
spec.loader.exec_module(build)

CHAPTERS = sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))
PYTHON = str(Path(sys.executable))


def cells(stem):
    """The parameters cell and the check cell right after it (the check must come before any work)."""
    nb = nbformat.read(NOTEBOOKS / f"{stem}.ipynb", as_version=4)
    index = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    check = nb.cells[index + 1]
    assert "import chapter_parameters" in check.source and "remove-cell" in check.metadata.get("tags", []), stem
    return nb.cells[index].source, check.source


def run_check(stem, **injected):
    """The two cells as the kernel runs them, with papermill's injected values in between."""
    parameters, check = cells(stem)
    namespace = {"__name__": "__main__", "In": [], "Out": {}, "get_ipython": None, "exit": None, "quit": None}
    exec(parameters, namespace)
    namespace.update(injected)
    exec(check, namespace)
    return namespace


@pytest.mark.parametrize("stem", CHAPTERS)
def test_papermill_reads_every_parameter_of_every_chapter(stem, caplog):
    """A trailing comment with '=' in it made papermill give up on the line, and then warn about valid
    parameters as unknown: its inspection must find exactly the names the cell assigns."""
    from papermill.translators import PythonTranslator

    source, _ = cells(stem)
    with caplog.at_level(logging.WARNING, logger="papermill"):
        found = [p.name for p in PythonTranslator.inspect(nbformat.v4.new_code_cell(source))]
    assert found == build.declared_parameters(NOTEBOOKS / f"{stem}.ipynb")
    assert not [r for r in caplog.records if "Unable to parse" in r.getMessage()]


@pytest.mark.parametrize("stem", CHAPTERS)
def test_defaults_pass_and_a_misspelt_parameter_is_named_with_the_known_ones(stem):
    run_check(stem)
    first = build.declared_parameters(NOTEBOOKS / f"{stem}.ipynb")[0]
    with pytest.raises(chapter_parameters.ParameterError,
                       match=rf"unknown parameter {first}x; this notebook's parameters are: {first}, "):
        run_check(stem, **{first + "x": 1})


@pytest.mark.parametrize("profile", sorted(p.stem for p in (ROOT / "book" / "profiles").glob("*.yaml")))
def test_every_profile_names_known_parameters_with_values_in_range(profile):
    data = build.load_profile(profile)
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    notebooks = [(ROOT / e).with_suffix(".ipynb") for e in build.toc_files(toc) if (ROOT / e).with_suffix(".ipynb").exists()]
    assert build.profile_problems(data, profile, notebooks) == []
    for notebook in notebooks:
        run_check(notebook.stem, **build.notebook_parameters(data, notebook.stem, build.declared_parameters(notebook)))


@pytest.mark.parametrize("stem, injected, message", [
    ("01_lif_dynamics", dict(fi_steps=0), r"fi_steps=0: must be an integer >= 100"),
    ("01_lif_dynamics", dict(input_rate=-0.5), r"input_rate=-0.5: must be a finite number >= 0 and <= 1"),
    ("01_lif_dynamics", dict(T=0), r"T=0: must be an integer >= 2"),
    ("01_lif_dynamics", dict(fi_points=0), r"fi_points=0: must be an integer >= 2"),
    ("01_lif_dynamics", dict(seed=-1), r"seed=-1: must be an integer >= 0"),
    ("01_lif_dynamics", dict(device="tpu"), r"device='tpu'"),
    ("02_eprop_vs_bptt", dict(batch=0), r"batch=0: must be an integer >= 1"),
    ("02_eprop_vs_bptt", dict(horizons=[]), r"horizons=\[\]: must be a list of at least 1 value"),
    ("02_eprop_vs_bptt", dict(rec_scales="0.5"), r"rec_scales='0.5': must be a list"),
    ("03_target_rate", dict(lr=float("nan")), r"lr=nan: must be a finite number > 0"),
    ("03_target_rate", dict(progress="no"), r"progress='no': must be True or False"),
    ("04_rate_variance_branching", dict(sigma_factors=[]), r"sigma_factors=\[\]: must be a list"),
    ("04_rate_variance_branching", dict(eval_T=50), r"eval_T=50: must be an integer >= 200"),
    ("04_rate_variance_branching", dict(seeds=[1, 1]), r"seeds=\[1, 1\]: the values must differ"),
    ("toy_gaussian", dict(fr_lr=0.7), r"fr_lr=0.7: must be a finite number > 0 and < 0.5"),
    ("natural_patches", dict(n_patches=100), r"n_patches=100: the covariance of 16 x 16 colour patches"),
    ("where_the_time_goes", dict(dtypes=["float16"]), r"dtypes\[0\]='float16': allowed values are 'float32', 'float64'"),
    ("where_the_time_goes", dict(scaling_batches=[8]), r"scaling_batches=\[8\]: must be a list of at least 2 values"),
    ("covariance_matrices", dict(batch_counts=[0, 10]), r"batch_counts\[0\]=0: must be an integer >= 1"),
    ("kl_vs_mi", dict(deck={"device": "cpu"}), r"deck sets device='cpu': set the notebook's own `device` parameter"),
    ("kl_vs_mi", dict(deck={"n_neuron": 300}), r"deck: unknown TrainConfig field\(s\) n_neuron; allowed: encoder, n_neurons"),
    ("kl_vs_mi", dict(deck={"patch_size": 600}), r"deck: cov_batches x batch_size = 640 patches cannot estimate"),
    ("kl_vs_mi", dict(deck={"lr": "fast"}), r"deck: lr='fast' must be a finite number > 0"),
    ("kl_vs_mi", dict(deck={"seed": -3}), r"deck: seed=-3 must be an integer >= 0"),
    ("kl_vs_mi", dict(deck=[1, 2]), r"deck=\[1, 2\]: must be a dict of TrainConfig fields"),
])
def test_a_value_the_chapter_cannot_compute_with_is_refused_by_name(stem, injected, message):
    with pytest.raises(chapter_parameters.ParameterError, match=message):
        run_check(stem, **injected)


def test_yaml_spellings_of_numbers_and_lists_are_taken_as_meant():
    """PyYAML reads `1e-3` as a string and has no tuples: `-y "deck: {lr: 1e-3, images: [...]}"` works."""
    deck = yaml.safe_load("deck: {lr: 1e-3, steps: 1e3, images: [astronaut, coffee], n_patches: 5000}")["deck"]
    assert deck["lr"] == "1e-3" and deck["steps"] == "1e3"  # what PyYAML gives
    namespace = run_check("kl_vs_mi", deck=deck)
    import chapter_runs

    config = chapter_runs.deck_base(**namespace["deck"], device="cpu")
    assert config.lr == 1e-3 and config.steps == 1000 and config.images == ("astronaut", "coffee")
    namespace = run_check("01_lif_dynamics", fi_steps="2e4", alpha="0.9")
    assert namespace["fi_steps"] == 20000 and namespace["alpha"] == 0.9


def readme_rerun_command() -> list[str]:
    line = next(line for line in (ROOT / "README.md").read_text().splitlines() if line.startswith(".venv/bin/papermill "))
    return line.split()


def test_the_readme_rerun_command_runs_and_stops_on_a_misspelt_parameter(tmp_path):
    command = readme_rerun_command()  # as printed, from the project's root, with its output in tmp_path
    command = [PYTHON, "-m", "papermill"] + [str(tmp_path / "out.ipynb") if a == "out.ipynb" else a for a in command[1:]]
    fine = [a if a != "500" else "30" for a in command]  # the README's command at a smaller size
    result = subprocess.run(fine, capture_output=True, text=True, timeout=300, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Passed unknown parameter" not in result.stderr  # no warning for valid parameters
    typo = [a if a != "n_neurons" else "n_recc" for a in command]
    result = subprocess.run(typo, capture_output=True, text=True, timeout=300, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode != 0
    assert "unknown parameter n_recc; this notebook's parameters are: n_in, n_neurons, T" in result.stdout + result.stderr
    executed = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    ran = [c for c in executed.cells if c.cell_type == "code" and c.get("execution_count")]
    assert "import chapter_parameters" in ran[-1].source  # nothing ran after the check


def build_01(tmp_path, profile_text: str):
    """book/build.py on chapter 01 alone with a profile of its own, into tmp_path/build."""
    profile = tmp_path / "profile.yaml"
    profile.write_text(profile_text)
    return subprocess.run([PYTHON, str(ROOT / "book" / "build.py"), "--profile", str(profile), "--only", "01_lif_dynamics",
                           "--no-html", "--build-dir", str(tmp_path / "build")], capture_output=True, text=True, timeout=300)


def test_build_stops_on_a_bad_value_and_says_which(tmp_path):
    result = build_01(tmp_path, "01_lif_dynamics:\n  fi_steps: 0\n")
    assert result.returncode == 1, result.stderr[-3000:]
    # the builder's own summary names the notebook and the error it stopped on
    assert ("01_lif_dynamics.ipynb failed (papermill exit 1): ParameterError: parameter fi_steps=0: must be an integer >= 100"
            in result.stderr), result.stderr[-3000:]
    assert "Traceback" not in result.stderr.split("[book]", 1)[-1]  # the builder itself did not crash


def test_build_executes_a_chapter(tmp_path):
    result = build_01(tmp_path, "01_lif_dynamics:\n  n_neurons: 10\n  T: 50\n  fi_points: 3\n  fi_steps: 100\n")
    assert result.returncode == 0, result.stderr[-3000:]
    executed = nbformat.read(tmp_path / "build" / "src" / "notebooks" / "01_lif_dynamics.ipynb", as_version=4)
    assert any(c.get("outputs") for c in executed.cells)


@pytest.mark.parametrize("args, message", [
    (["--only", "no_such_chapter"], "--only no_such_chapter: no such notebook in _toc.yml; known: 01_lif_dynamics"),
    (["--profile", "{profile}"], "01_lif_dynamics: unknown parameter n_recc; 01_lif_dynamics's parameters are: n_in"),
])
def test_build_refuses_unknown_names_before_executing_anything(tmp_path, args, message):
    profile = tmp_path / "typo.yaml"
    profile.write_text("01_lif_dynamics:\n  n_recc: 500\n")
    args = [a.format(profile=profile) for a in args]
    result = subprocess.run([PYTHON, str(ROOT / "book" / "build.py"), *args, "--no-html", "--build-dir", str(tmp_path / "b")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and message in result.stderr
    assert not (tmp_path / "b").exists()  # nothing staged, nothing executed


def papermill(stem, yaml_parameters, tmp_path):
    """`papermill` as the README runs it, with `-y` YAML (the spelling of the profiles), device cpu."""
    out = tmp_path / f"{stem}.ipynb"
    result = subprocess.run([PYTHON, "-m", "papermill", str(NOTEBOOKS / f"{stem}.ipynb"), str(out), "--cwd", str(NOTEBOOKS),
                             "-y", yaml_parameters, "-p", "device", "cpu"], capture_output=True, text=True, timeout=600,
                            cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return result, (nbformat.read(out, as_version=4) if out.exists() else None)


def error_of(nb):
    return next((f"{o['ename']}: {o['evalue']}" for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"), None)


@pytest.mark.parametrize("stem, yaml_parameters, message", [
    ("01_lif_dynamics", "{fi_steps: 0}", "ParameterError: parameter fi_steps=0: must be an integer >= 100"),
    ("01_lif_dynamics", "{input_rate: -0.5}", "ParameterError: parameter input_rate=-0.5: must be a finite number >= 0"),
    ("02_eprop_vs_bptt", "{horizons: []}", "ParameterError: parameter horizons=[]: must be a list of at least 1 value"),
    ("04_rate_variance_branching", "{eval_T: 50}", "ParameterError: parameter eval_T=50: must be an integer >= 200"),
    ("kl_vs_mi", "{deck: {device: cpu}}", "ParameterError: parameter deck sets device='cpu'"),
    ("kl_vs_mi", "{deck: {patch_size: 600}}", "ParameterError: parameter deck: cov_batches x batch_size = 640 patches"),
    ("kl_around_rate_step", "{deck: {lr: 1e3}, runs_dir: null}",
     "RuntimeError: the run 'two_losses x1' diverged, and this chapter cannot go on without it: run"),
    # TensorBoard on (the chapters' default): the DivergenceError, not the event writer's "The histogram is empty"
    ("rate_lr_sweep", "{deck: {steps: 20, lr: 1000}, runs_dir: null}", "RuntimeError: the run '"),
])
def test_through_papermill_a_bad_value_stops_the_notebook_with_its_name(stem, yaml_parameters, message, tmp_path):
    yaml_parameters = yaml_parameters.replace("runs_dir: null", f"runs_dir: {tmp_path / 'runs'}")
    result, nb = papermill(stem, yaml_parameters, tmp_path)
    assert result.returncode != 0
    assert error_of(nb).startswith(message), error_of(nb)


def test_through_papermill_yaml_numbers_and_lists_train_and_the_target_rate_page_says_what_its_numbers_say(tmp_path):
    """PyYAML's `1e-3` (a string) and a list of images reach TrainConfig as meant; the target-rate chapter at an
    absurd lr (1e9, the loss rises) no longer says the loss fell."""
    runs = tmp_path / "runs"
    result, nb = papermill("kl_vs_mi", f"{{deck: {{lr: 1e-3, steps: 2e1, images: [astronaut, coffee]}}, runs_dir: {runs}}}", tmp_path)
    assert result.returncode == 0, error_of(nb)
    configs = [json.loads(path.read_text()) for path in runs.glob("*/config.json")]
    config = next(c for c in configs if c["start"] is not None)  # the deck run (its base model has no start)
    assert config["lr"] == 1e-3 and config["steps"] == 20 and config["images"] == ["astronaut", "coffee"]
    assert config["start"]["images"] == ["astronaut", "coffee"]  # the base model trains on the same images

    result, nb = papermill("03_target_rate", "{lr: 1e9, steps: 3, T: 30, n_neurons: 10, batch: 2}", tmp_path)
    assert result.returncode == 0, error_of(nb)
    text = next(o["data"]["text/markdown"] for c in nb.cells for o in c.get("outputs", []) if "text/markdown" in o.get("data", {})
                and "Final held-out losses" in o["data"]["text/markdown"])
    held = [float(v) for v in re.search(r"([\d.e+-]+) against ([\d.e+-]+)", text.split("Final held-out losses")[1]).groups()]
    first = float(re.search(r"from ([\d.e+-]+) at the first step", text).group(1))
    said = re.search(r"the loss\s+(fell|did not fall) with e-prop and (fell|did not fall) with BPTT", text).groups()
    assert said == tuple("fell" if h < first else "did not fall" for h in held), text
