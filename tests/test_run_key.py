"""The run cache's key covers what determines a run's numbers, and only that (issue 24): the contents of
every image a run reads, paths as they resolve, the code without its docstrings and comments, and no
module the training does not execute."""
import os

import numpy as np
import pytest

from lifcore.train import deck_config, train
from lifcore.train import store

SMALL = dict(n_neurons=4, patch_size=3, batch_size=16, n_patches=200, cov_batches=5, eval_size=8)


def write_images(folder, seed):
    import skimage.io

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for k in range(3):
        skimage.io.imsave(folder / f"img{k}.png", (rng.random((12, 14, 3)) * 255).astype(np.uint8), check_contrast=False)


def test_a_changed_image_gives_a_new_key_and_a_run_trained_on_it(tmp_path):
    folder = tmp_path / "images"
    write_images(folder, seed=0)
    config = deck_config(3, **SMALL, images=(str(folder),))
    first = config.key()
    old = train(config, cache_dir=tmp_path / "runs", progress=False)
    write_images(folder, seed=1)  # every image replaced, same names
    os.utime(folder / "img0.png", ns=(1, 1))  # even with an old modification time: contents are hashed
    assert config.key() != first
    new = train(config, cache_dir=tmp_path / "runs", progress=False)
    assert not np.allclose(new.input_covariance.numpy(), old.input_covariance.numpy())
    write_images(folder, seed=0)  # the first images back: the first run's key, loaded
    assert config.key() == first


def test_a_relative_path_stands_for_the_files_it_resolves_to_and_the_same_files_elsewhere_are_the_same_run(
        tmp_path, monkeypatch):
    for name, seed in (("a", 0), ("b", 1), ("copy", 0)):
        write_images(tmp_path / name / "images", seed)
    monkeypatch.chdir(tmp_path / "a")
    here = deck_config(3, **SMALL, images=("images",)).key()
    assert here == deck_config(3, **SMALL, images=(str(tmp_path / "a" / "images"),)).key()
    assert here == deck_config(3, **SMALL, images=(str(tmp_path / "copy" / "images"),)).key()  # a shared cache hits
    monkeypatch.chdir(tmp_path / "b")
    assert deck_config(3, **SMALL, images=("images",)).key() != here


def test_docstrings_comments_and_blank_lines_do_not_change_the_code_digest_and_code_does(tmp_path):
    source = tmp_path / "module.py"
    source.write_text('"""A module."""\nimport math\n\n\ndef f(x):\n    """Doubles."""\n    return 2 * x  # twice\n')
    digest = store._code_without_docstrings(source)
    source.write_text('"""Another text,\non two lines."""\nimport math  # for nothing\n\n\ndef f(x):\n'
                      '    """Twice x, now with more words."""\n\n    # a comment\n    return 2 * x\n')
    assert store._code_without_docstrings(source) == digest
    source.write_text('"""A module."""\nimport math\n\n\ndef f(x):\n    """Doubles."""\n    return "# not a comment"\n')
    assert store._code_without_docstrings(source) != digest  # a string that looks like a comment is code
    source.write_text('"""A module."""\nimport math\n\n\ndef f(x):\n    """Doubles."""\n    return 3 * x\n')
    assert store._code_without_docstrings(source) != digest


def test_the_digest_follows_the_coding_model_and_not_the_lif_network():
    modules, stack = set(), ["lifcore.train.loop"]
    while stack:
        name = stack.pop()
        if name in modules or name in store.NOT_NUMBERS or store._module_file(name) is None:
            continue
        modules.add(name)
        stack.extend(store._imports(name, store._module_file(name)))
    assert {"lifcore.coding.softplus", "lifcore.coding.dog", "lifcore.constraints.lagrange", "lifcore.snn.transfer"} <= modules
    assert not {"lifcore.snn.lif", "lifcore.snn.bptt", "lifcore.snn.eprop", "lifcore.train.evaluate"} & modules


@pytest.mark.parametrize("images", [(), ("astronaut", "coffee")])
def test_photographs_are_named_not_hashed(images):
    digests = store.image_digests(images)
    assert all(len(entry) == 1 for entry in digests["train"] + digests["held_out"])
