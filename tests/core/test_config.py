"""Settings: profiles, TOML overrides, and errors that name the key, the value and what it must be."""

import dataclasses
import json
from pathlib import Path

import pytest

from manifpt_core.config import PROFILES, load_datasets, load_settings
from manifpt_core.errors import InputError
from manifpt_core.names import Method


def test_toml_overrides_the_profile_key_by_key(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('n_reference = 500\n[attributor]\nepochs = 3\n[source]\nkind = "folder"\npath = "/data/x"\n')
    s = load_settings("demo", path)
    assert s.n_reference == 500 and s.attributor.epochs == 3
    assert s.attributor.patience == load_settings("demo").attributor.patience  # untouched keys keep the profile's
    assert s.source.kind == "folder" and s.source.path == "/data/x"


@pytest.mark.parametrize(
    "text, match",
    [
        ("n_referense = 5\n", r"unknown key\(s\) \['n_referense'\].*valid keys: .*n_reference"),
        ("[attributor]\nepoch = 5\n", r"unknown key\(s\) \['attributor.epoch'\]; valid keys of attributor: .*epochs"),
        ("[source]\nkind = 'zip'\n", r"source.kind = 'zip' is not one of \('fashion_mnist', 'folder'\)"),
        ("spaces = ['rgb', 'sift']\n", r"unknown embedding space 'sift'; valid spaces: freq, rgb, sl, ssl"),
        ("device = 'tpu'\n", r"device = 'tpu' is not one of"),
        ("n_per_model = 0\n", r"n_per_model = 0 must be an int > 0"),
        ("[source]\nkind = 'folder'\n", r"needs source.path"),
        ("dataset = 'My Data'\n", r"invalid dataset name 'My Data'"),
        ("not toml [", r"is not valid TOML"),
        ("[encoders.sl]\nstep = 5\n", r"unknown key\(s\) \['encoders.sl.step'\]; valid keys of encoders.sl"),
        ("[encoders.ssl]\nsteps = 0\n", r"encoders.ssl.steps"),
        ("[encoders.cnn]\nsteps = 5\n", r"unknown key\(s\) \['encoders.cnn'\]; valid keys of encoders: \['sl', 'ss"),
        ("[search]\nbackend = 'lsh'\n", r"search.backend = 'lsh' is not one of"),
        ("[search]\nnprobe = 0\n", r"search.nprobe = 0 must be an int >= 1"),
        ("[artifacts]\nkinds = ['nearest', 'pca']\n", r"artifacts.kinds = \['nearest', 'pca'\]"),
        ("[artifacts]\nknn_k = 1\n", r"artifacts.knn_k = 1 must be an int >= 2"),
    ],
)
def test_bad_settings_name_the_value_and_the_fix(tmp_path, text, match):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(InputError, match=match):
        load_settings("demo", path)


def test_unknown_profile_and_missing_file():
    with pytest.raises(InputError, match=r"valid profiles: \['demo', 'factorial', 'full', 'tiny'\]"):
        load_settings("huge")
    with pytest.raises(InputError, match="does not exist"):
        load_settings("demo", "/nonexistent/manifpt.toml")


def test_zoo_names_must_be_unique_and_not_real(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[[zoo]]\nname = "real"\nfamily = "vae"\n')
    with pytest.raises(InputError, match="'real' is reserved"):
        load_settings("demo", path)
    path.write_text('[[zoo]]\nname = "a"\nfamily = "vae"\n[[zoo]]\nname = "a"\nfamily = "dcgan"\n')
    with pytest.raises(InputError, match="twice"):
        load_settings("demo", path)


def test_demo_has_two_fashion_mnist_datasets_with_disjoint_classes():
    from manifpt_core.config import load_datasets

    clothing, footwear = load_datasets("demo")
    assert (clothing.dataset, footwear.dataset) == ("fmnist_clothing", "fmnist_footwear_bags")
    assert not set(clothing.source.classes) & set(footwear.source.classes)
    assert set(clothing.source.classes) | set(footwear.source.classes) == set(range(10))
    assert clothing.zoo == footwear.zoo  # the same architectures on both


def test_a_file_naming_its_own_data_replaces_the_profile_datasets(tmp_path):
    from manifpt_core.config import load_datasets

    path = tmp_path / "c.toml"
    path.write_text('dataset = "mine"\n[source]\nkind = "folder"\npath = "/data/mine"\n')
    (only,) = load_datasets("demo", path)
    assert only.dataset == "mine" and only.source.kind == "folder"
    path.write_text('[[datasets]]\ndataset = "a"\n[[datasets]]\ndataset = "a"\n')
    with pytest.raises(InputError, match="dataset name twice"):
        load_datasets("demo", path)
    path.write_text('[source]\nkind = "folder"\npath = "/x"\nclasses = [1]\n')
    with pytest.raises(InputError, match="source.classes selects Fashion-MNIST labels"):
        load_datasets("demo", path)


def test_learned_spaces_search_and_artifact_kinds_from_toml(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[encoders.sl]\nweights = "/models/resnet50.pth"\n[search]\nbackend = "hnsw"\n'
                    '[artifacts]\nkinds = ["knn"]\nknn_k = 5\n')
    s = load_settings("demo", path)
    assert s.encoders.sl.weights == "/models/resnet50.pth" and s.encoders.ssl.weights is None
    assert s.search.backend == "hnsw" and s.artifacts.neighbours == 5
    assert s.methods == tuple(Method.artifacts(space, "knn") for space in ("rgb", "freq", "sl", "ssl"))
    assert [str(m) for m in s.methods] == ["rgb-knn", "freq-knn", "sl-knn", "ssl-knn"]


def test_demo_and_full_profiles_load():
    demo = load_settings("demo")
    from manifpt_core.zoo import families

    # Every family is in the demo zoo, but the factorial GAN, whose grid is a profile of its own.
    assert {c.family for c in demo.zoo} == set(families()) - {"gan"}
    assert {c.family for c in load_settings("factorial").zoo} == {"gan"}
    assert [c.seed for c in demo.zoo if c.family == "dcgan"] == [0, 1]  # and one architecture twice
    assert len(demo.seeds) >= 3
    assert load_settings("full").n_reference > demo.n_reference


# --- every value checked against its field: the error names the key, the value and what it must be ---------------

BAD_VALUES = [
    # (TOML text, the key and value as the error shows them, what the value must be)
    ("n_reference = 10.5\n", "n_reference = 10.5", "must be an int > 0"),
    ('n_reference = "5"\n', "n_reference = '5'", "must be an int > 0"),
    ("n_reference = 0\n", "n_reference = 0", "must be an int > 0"),
    ("chunk_rows = true\n", "chunk_rows = True", "must be an int > 0"),
    ("chunk_rows = -1\n", "chunk_rows = -1", "must be an int > 0"),
    ('seeds = "012"\n', "seeds = '012'", "must be a list of ints >= 0"),
    ("seeds = [0, 1.5]\n", "seeds[1] = 1.5", "must be an int >= 0"),
    ("data_seed = -3\n", "data_seed = -3", "must be an int >= 0"),
    ('spaces = "rgb"\n', "spaces = 'rgb'", "must be a list of strings"),
    ("dataset = 7\n", "dataset = 7", "must be a string"),
    ("[attributor]\nbatch_size = 0\n", "attributor.batch_size = 0", "must be an int > 0"),
    ("[attributor]\nwidths = [8, 0, 4]\n", "attributor.widths[1] = 0", "must be an int > 0"),
    ("[attributor]\nlr = nan\n", "attributor.lr = nan", "must be a finite number > 0"),
    ("[attributor]\nweight_decay = -1e-4\n", "attributor.weight_decay = -0.0001", "must be a finite number >= 0"),
    ("attributor = 3\n", "attributor = 3", "must be a table"),
    ("[source]\nresize = [32]\n", "source.resize = [32]", "must be a list of 2 ints > 0"),
    ("[source]\nclasses = [1, 10]\n", "source.classes[1] = 10", "must be an int >= 0 and <= 9"),
    ("[artifacts]\nknn_reg = -1\n", "artifacts.knn_reg = -1", "must be a finite number >= 0"),
    ("[search]\ncandidates = -1\n", "search.candidates = -1", "must be an int >= 0"),
    ("[baselines]\nnataraj_levels = 16.5\n", "baselines.nataraj_levels = 16.5", "must be an int >= 2 and <= 256"),
    ("[baselines]\nmethods = 'nataraj'\n", "baselines.methods = 'nataraj'", "must be a list of strings"),
    ("[encoders.sl]\nimage_size = [4, 4]\n", "encoders.sl.image_size[0] = 4", "must be an int >= 8"),
    ("[encoders.ssl]\nlr = true\n", "encoders.ssl.lr = True", "must be a finite number > 0"),
    ('[[zoo]]\nname = "a"\nfamily = "vae"\nseed = 0.5\n', "zoo[0].seed = 0.5", "must be an int >= 0"),
    ('[[zoo]]\nname = "a"\nfamily = "vae"\n[zoo.train]\nsteps = 1.5\n', "zoo[0].train.steps = 1.5",
     "must be an int > 0"),
    ('[[zoo]]\nname = "a"\nfamily = "vae"\n[[zoo]]\nname = "b"\nfamily = "vae"\n[zoo.train]\nlr = "fast"\n',
     "zoo[1].train.lr = 'fast'", "must be a finite number > 0"),
]


@pytest.mark.parametrize("text, shown, expected", BAD_VALUES, ids=[shown for _, shown, _ in BAD_VALUES])
def test_a_bad_value_names_its_key_value_expected_type_and_file(tmp_path, text, shown, expected):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        load_datasets("tiny", path)
    message = str(err.value)
    assert f"{shown} {expected}" in message
    assert message.startswith(f"{path} (over profile 'tiny'): ")


def test_a_value_given_by_a_dataset_entry_is_named_after_the_entry(tmp_path):
    path = tmp_path / "c.toml"
    two = '[[datasets]]\ndataset = "a"\n[[datasets]]\ndataset = "b"\n'
    cases = [
        (two + "n_reference = 10.5\n", "datasets[1].n_reference = 10.5 must be an int > 0"),
        (two + "[datasets.attributor]\nbatch_size = 0\n", "datasets[1].attributor.batch_size = 0 must be an int > 0"),
        (two + "[datasets.encoders.sl]\nsteps = 0\n", "datasets[1].encoders.sl.steps = 0 must be an int > 0"),
        (two + "seeds = [0, 'x']\n", "datasets[1].seeds[1] = 'x' must be an int >= 0"),
        (two + "colour = 1\n", "unknown key(s) ['datasets[1].colour']"),
        (two.replace('"b"', '"B"'), "datasets[1]: invalid dataset name 'B'"),
        # A top-level value keeps its own name, whichever dataset meets it first.
        ("chunk_rows = 0\n" + two, ": chunk_rows = 0 must be an int > 0"),
        ("[attributor]\nepochs = 1.5\n" + two, ": attributor.epochs = 1.5 must be an int > 0"),
    ]
    for text, expected in cases:
        path.write_text(text)
        with pytest.raises(InputError) as err:
            load_datasets("tiny", path)
        assert expected in str(err.value), text


def test_datasets_must_be_a_list_of_tables(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("datasets = 3\n")
    with pytest.raises(InputError, match=r"datasets = 3 must be a list of tables"):
        load_datasets("tiny", path)


def test_semantic_errors_of_nested_settings_name_their_key_and_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[[zoo]]\nname = "a"\nfamily = "vae"\n[zoo.factors]\nloss = "focal"\n')
    with pytest.raises(InputError, match=r"c\.toml \(over profile 'tiny'\): zoo\[0\]: unknown value 'focal'"):
        load_datasets("tiny", path)
    path.write_text("[encoders.sl]\nresize_filter = 'x'\n")
    with pytest.raises(InputError, match=r"c\.toml \(over profile 'tiny'\): encoders\.sl\.resize_filter = 'x' is not"):
        load_datasets("tiny", path)
    path.write_text('[[zoo]]\nname = "real"\nfamily = "vae"\n')
    with pytest.raises(InputError, match=r"zoo entry 'real': the model name 'real' is reserved for the real images"):
        load_datasets("tiny", path)


def test_checked_values_are_converted_to_their_field_types(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("seeds = [3, 1]\n[attributor]\nlr = 1\nwidths = [4, 8]\n[artifacts]\nkinds = ['knn']\n"
                    "[source]\nkind = 'folder'\npath = '/x'\nresize = [32, 32]\n")
    s = load_settings("tiny", path)
    assert s.seeds == (3, 1) and s.attributor.widths == (4, 8) and s.artifacts.kinds == ("knn",)
    assert s.source.resize == (32, 32)
    assert type(s.attributor.lr) is float and s.attributor.lr == 1.0
    assert s == load_settings("tiny", path)  # frozen and hashable, as the pipeline keys on them
    hash(s)


# Pinned values of the built-in profiles: a change of the loader must not change what a profile means.
# After a deliberate change of a profile, rewrite the file with the PROFILE_VALUES snippet in its test below.
PROFILE_VALUES = Path(__file__).with_name("config_profiles.json")


def _profile_values() -> str:
    values = {p: [dataclasses.asdict(s) for s in load_datasets(p)] for p in PROFILES}
    return json.dumps(values, sort_keys=True, indent=1)


def test_built_in_profiles_resolve_to_their_pinned_values():
    # Compared as JSON text, so that an int turned float (1 vs 1.0) is a difference too.
    # To rewrite: PROFILE_VALUES.write_text(_profile_values())
    assert sorted(PROFILES) == ["demo", "factorial", "full", "tiny"]
    assert _profile_values() == PROFILE_VALUES.read_text()
