"""Settings: profiles, TOML overrides, and errors that list the valid choices."""

import pytest

from manifpt_core.config import load_settings
from manifpt_core.errors import InputError


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
        ("[attributor]\nepoch = 5\n", r"unknown key\(s\) \['epoch'\].*\[attributor\].*epochs"),
        ("[source]\nkind = 'zip'\n", r"source.kind = 'zip' is not one of \('fashion_mnist', 'folder'\)"),
        ("spaces = ['rgb', 'sift']\n", r"unknown embedding space 'sift'; valid spaces: freq, rgb, sl, ssl"),
        ("device = 'tpu'\n", r"device = 'tpu' is not one of"),
        ("n_per_model = 0\n", r"n_per_model must be positive, got 0"),
        ("[source]\nkind = 'folder'\n", r"needs source.path"),
        ("dataset = 'My Data'\n", r"invalid dataset name 'My Data'"),
        ("not toml [", r"is not valid TOML"),
        ("[encoders.sl]\nstep = 5\n", r"unknown key\(s\) \['step'\] in encoders.sl"),
        ("[encoders.ssl]\nsteps = 0\n", r"encoders.ssl.steps"),
        ("[encoders.cnn]\nsteps = 5\n", r"unknown key\(s\) \['cnn'\].*\[encoders\]"),
        ("[search]\nbackend = 'lsh'\n", r"search.backend = 'lsh' is not one of"),
        ("[search]\nnprobe = 0\n", r"search.nprobe = 0"),
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
    with pytest.raises(InputError, match=r"valid profiles: \['demo', 'full', 'tiny'\]"):
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
    assert s.methods == ("rgb-knn", "freq-knn", "sl-knn", "ssl-knn")
